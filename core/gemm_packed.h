/* GEMMs whose left operand, a conv's weights, was packed once when the model was compiled:
 * C (M x N, row-major, ldc) = alpha * A (M x K) * B (K x N, ldb) + beta * C.
 * The output channels (rows of A and C) fill the vector lanes, 16 at a time, and the output
 * positions (columns of B and C) go 6 at a time through broadcasts, so a ragged column count
 * (49 at a 7x7 map) costs its share: a kernel with columns in the lanes pads them to the
 * vector width (OpenBLAS 0.3.21: 68-73 GFLOP/s on 49 columns, this: 86-92, one Zen 3 core). */
#ifndef CNN_GEMM_PACKED_H
#define CNN_GEMM_PACKED_H

#include <stddef.h>

/* Rows of A per packed panel: a panel is K x 16 floats, row k holding A[r][k] for its 16
 * rows r (zeros past M).  Rows [lo, M) of a packed A, lo a multiple of this, start at
 * ap + lo * K. */
#define CNN_GEMM_PACKED_ROWS 16

/* Floats of a packed M x K matrix. */
size_t cnn_gemm_packed_floats(int M, int K);

/* ap (cnn_gemm_packed_floats(M, K)) = A (M x K, row-major, lda K) in panels. */
void cnn_gemm_pack(float *ap, const float *a, int M, int K);
/* The same in place, for M a multiple of CNN_GEMM_PACKED_ROWS (then a panel takes the floats
 * its rows took).  0, or -1 with a unchanged when the 16-row copy cannot be allocated. */
int cnn_gemm_pack_in_place(float *a, int M, int K);

/* Scratch floats cnn_gemm_packed() needs for a K-deep product (a block of B, repacked). */
size_t cnn_gemm_packed_scratch_floats(int K);

/* 1 when cnn_gemm_packed() runs its AVX2+FMA kernels on this CPU (else plain C loops, which
 * only tests should run: conv plans pack weights only when this is 1). */
int cnn_gemm_packed_vectorised(void);

/* A conv's epilogue, applied as the product is stored (no second pass over C):
 * C = relu?((alpha * A B + beta * C + bias[row]) + res), in that order (the unfused ops'). */
struct cnn_gemm_epilogue {
    const float *bias; /* one per row of C, or NULL */
    const float *res;  /* M x N with leading dimension ldc, or NULL; not C itself, which K
                        * blocks overwrite before the last adds it (beta 1 adds C instead) */
    int relu;          /* then max(v, 0): NaN and -0 become +0, as the session's ReLU */
};

/* The product for M, N, K >= 1; beta == 0 never reads C; ep may be NULL (none).  scratch:
 * the floats above.  Never allocates; any thread; single-threaded. */
void cnn_gemm_packed(int M, int N, int K, float alpha, const float *ap, const float *B, int ldb,
                     float beta, float *C, int ldc, const struct cnn_gemm_epilogue *ep,
                     float *scratch);

/* B as a function that writes blocks of it in the drivers' layout, for a B never stored
 * whole (a conv's im2col: im2col.h).  pack(ctx, dst, k0, kc, n0, nc, width): columns
 * [n0, n0 + nc) of rows [k0, k0 + kc) of B as strips of `width` columns, strip s holding kc
 * rows of width floats (columns n0 + s * width..), zeros past column n0 + nc. */
struct cnn_gemm_b_packer {
    void (*pack)(const void *ctx, float *dst, int k0, int kc, int n0, int nc, int width);
    const void *ctx;
};

/* cnn_gemm_packed() with B from by: the same drivers, each block of B written by by where
 * they would copy it from a matrix. */
void cnn_gemm_packed_by(int M, int N, int K, float alpha, const float *ap,
                        const struct cnn_gemm_b_packer *by, float beta, float *C, int ldc,
                        const struct cnn_gemm_epilogue *ep, float *scratch);
/* The same as it runs without AVX2+FMA: the plain C loops on blocks by writes (tests call
 * it on every CPU). */
void cnn_gemm_packed_by_portable(int M, int N, int K, float alpha, const float *ap,
                                 const struct cnn_gemm_b_packer *by, float beta, float *C, int ldc,
                                 const struct cnn_gemm_epilogue *ep, float *scratch);

/* cnn_gemm_packed() on AVX2+FMA runs one of two drivers by shape, with the same contract
 * (tests call each; without AVX2+FMA both are the plain C loops below).  Narrow: tiles of
 * 16 rows x 6 columns with the rows in the vector lanes, no column padding past 6.  Wide,
 * from CNN_GEMM_PACKED_WIDE_N columns and up to CNN_GEMM_PACKED_WIDE_MAX_K deep: tiles of 4
 * rows x 24 columns with the columns in the lanes, stored without the narrow tile's
 * transpose, which weighs most when K is short.  One Zen 3 core, M = 256: wide/narrow 0.82
 * at K = 64, 0.97-1.0 at 256, 1.01-1.05 from 512 (N 256-784); 1.09-1.17 at N = 196 past K =
 * 64.  ResNet-50's 56x56 1x1 convs -9-12% against OpenBLAS. */
#define CNN_GEMM_PACKED_WIDE_N 256
#define CNN_GEMM_PACKED_WIDE_MAX_K 256
/* On AVX-512 (8 x 48 wide tiles, 48 x 8 narrow ones) wide also past that depth from this many
 * columns (K then runs in blocks of 128, C read back between them).  ResNet-50 at batch 8,
 * one core: its 28x28 1x1 convs with K = 512 (N = 6272) -5%.  At N = 1568 (14x14, K = 1024)
 * wide was 4% slower until it packed B in its first row of tiles; since, GEMM alone
 * 512x1568x1024 152 -> 161 GFLOP/s and those convs at batch 8 -7-12% (op minima); at 392-784
 * columns the two are within 3%. */
#define CNN_GEMM_PACKED_WIDE512_N 1024
void cnn_gemm_packed_narrow(int M, int N, int K, float alpha, const float *ap, const float *B,
                            int ldb, float beta, float *C, int ldc,
                            const struct cnn_gemm_epilogue *ep, float *scratch);
void cnn_gemm_packed_wide(int M, int N, int K, float alpha, const float *ap, const float *B,
                          int ldb, float beta, float *C, int ldc,
                          const struct cnn_gemm_epilogue *ep, float *scratch);

/* The same drivers with AVX-512 kernels, which cnn_gemm_packed() runs instead where
 * cnn_gemm_packed_avx512() is 1 (tests call each; elsewhere they are the plain C loops):
 * narrow tiles of up to 48 rows (three panels, a vector each) x 8 columns, wide tiles of 8 rows x
 * 48 columns (three vectors), and col16 (the narrow driver with tiles of one panel x 16
 * columns in the lanes) past CNN_GEMM_PACKED_COL16_MIN_N up to 16 columns: narrow tiles read
 * A twice there, once per 8 columns.  GEMM alone, 16 planes of 256 x 16 x 512 (a 7x7
 * Winograd conv's at batch 1, A from L3), one core: narrow 0.49-0.50 ms, col16 0.42. */
#define CNN_GEMM_PACKED_COL16_MIN_N 8
int cnn_gemm_packed_avx512(void);
void cnn_gemm_packed_col16_512(int M, int N, int K, float alpha, const float *ap, const float *B,
                               int ldb, float beta, float *C, int ldc,
                               const struct cnn_gemm_epilogue *ep, float *scratch);
void cnn_gemm_packed_narrow512(int M, int N, int K, float alpha, const float *ap, const float *B,
                               int ldb, float beta, float *C, int ldc,
                               const struct cnn_gemm_epilogue *ep, float *scratch);
void cnn_gemm_packed_wide512(int M, int N, int K, float alpha, const float *ap, const float *B,
                             int ldb, float beta, float *C, int ldc,
                             const struct cnn_gemm_epilogue *ep, float *scratch);

/* The plain C loops cnn_gemm_packed() runs without AVX2+FMA; same contract.  Tests. */
void cnn_gemm_packed_portable(int M, int N, int K, float alpha, const float *ap, const float *B,
                              int ldb, float beta, float *C, int ldc,
                              const struct cnn_gemm_epilogue *ep);

#endif
