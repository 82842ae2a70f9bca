/* The test binary's own cblas_sgemm (blas_spy.c): counts the GEMMs handed to OpenBLAS and
 * flags those OpenBLAS 0.3.21's SkylakeX kernels would run through their small-matrix path,
 * then forwards to OpenBLAS.  Counters are per process and thread-safe. */
#ifndef BLAS_SPY_H
#define BLAS_SPY_H

/* OpenBLAS 0.3.21's SkylakeX small-kernel permit for a column-major GEMM
 * (C m x n, k inner; transa/transb as OpenBLAS sees them): 1 when it takes the small path. */
int blas_spy_small_permit(int transa, int transb, long m, long n, long k);
/* 1 when that small path also mallocs (only its NN kernel does, for some m and k). */
int blas_spy_small_allocates(int transa, int transb, long m, long n, long k);
/* Both rules for a row-major cnn_gemm(trans_a, trans_b, M, N, K) call as cblas passes it on. */
int blas_spy_rowmajor_permit(int trans_a, int trans_b, long M, long N, long K);
int blas_spy_rowmajor_allocates(int trans_a, int trans_b, long M, long N, long K);

/* Calls that reached cblas_sgemm so far; those of them the permit lets through; those of
 * them that would allocate. */
long blas_spy_calls(void);
long blas_spy_small_calls(void);
long blas_spy_allocating_calls(void);
/* The last call the permit let through, as "ta tb M N K" of the cblas (row-major) call;
 * "none" before any. */
void blas_spy_last_small(char *buf, int size);

#endif
