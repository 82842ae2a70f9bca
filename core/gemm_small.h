/* Small row-major SGEMMs computed without BLAS: cnn_gemm() sends every product with
 * M * N * K <= CNN_GEMM_SMALL_MAX_MNK here, so OpenBLAS's own small-matrix path (which calls
 * malloc on every GEMM with its SkylakeX kernels, see gemm.c) is never entered. */
#ifndef CNN_GEMM_SMALL_H
#define CNN_GEMM_SMALL_H

/* Products of at most this many multiply-adds (M * N * K) go to cnn_gemm_small().  OpenBLAS
 * 0.3.21 permits its small-matrix kernels only at or below 100 * 100 * 100. */
#define CNN_GEMM_SMALL_MAX_MNK 1000000.0

/* Products at most this many columns wide, neither operand transposed, go to cnn_gemm_small()
 * whatever their size: OpenBLAS packs all of A on every call, which costs as much as the
 * product when N is this narrow (a Winograd F(2x2) GEMM of a 7x7 map at batch 1 is
 * 512x16x512: 0.142 ms in OpenBLAS, 0.095 ms here), while gemm_small streams A once. */
#define CNN_GEMM_SMALL_MAX_N 32

/* cnn_gemm()'s contract for M, N, K >= 1: C = alpha * op(A) * op(B) + beta * C, row-major,
 * beta == 0 never reads C.  AVX2+FMA kernels when the CPU has them, else plain C loops.
 * Never allocates (its panels, < 24 KiB, are on the stack); any thread; single-threaded. */
void cnn_gemm_small(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                    int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* cnn_gemm_small() without its AVX-512 tiles (8 rows x 48 columns, for a non-transposed
 * op(B), which it runs on CPUs with AVX-512): the AVX2 kernels, or the plain C loops.  Tests
 * run both. */
void cnn_gemm_small_avx2(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                         int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* The plain C loops cnn_gemm_small() uses on CPUs without AVX2+FMA; same contract.  Tests. */
void cnn_gemm_small_portable(int trans_a, int trans_b, int M, int N, int K, float alpha,
                             const float *A, int lda, const float *B, int ldb, float beta, float *C,
                             int ldc);

/* 1 when cnn_gemm_small() runs the AVX2+FMA kernels on this CPU, else 0. */
int cnn_gemm_small_vectorised(void);

#endif
