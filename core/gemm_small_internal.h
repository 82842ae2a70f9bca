/* gemm_small.c's AVX-512 tiles (gemm_small_avx512.c). */
#ifndef CNN_GEMM_SMALL_INTERNAL_H
#define CNN_GEMM_SMALL_INTERNAL_H

#include <stddef.h>

/* C (M x N, row stride ldc) = alpha * op(A) (element (i, k) at A[i * ars + k * acs]) x B (K x
 * N, rows contiguous at stride brs) + beta * C; beta == 0 never reads C.  AVX-512 only. */
void cnn_gemm_small_tiles512(int M, int N, int K, float alpha, const float *A, ptrdiff_t ars,
                             ptrdiff_t acs, const float *B, ptrdiff_t brs, float beta, float *C,
                             ptrdiff_t ldc);

#endif
