/* cnn_gemm_small()'s AVX-512 tiles (gemm_small_internal.h), for products whose op(B) rows
 * are contiguous: 8 rows of op(A) broadcast x 48 columns of op(B) (three 16-lane vectors)
 * in 24 accumulators, B read in place with masked loads at a ragged last panel (so nothing
 * is packed), C stored under the same masks. */
#include "avx512.h"
#include "gemm_small_internal.h"

#if defined(__x86_64__)

enum {
    MR = 8,  /* rows of the register tile */
    NR = 48, /* columns: three vectors of 16 */
    KC = 256 /* K block: the tile's 8 rows of op(A), 8 KiB, stay in L1 over a row of tiles */
};

/* Loads and stores of B and C are masked to the columns that exist, and A is read only at
 * the rows and k the driver names. */
#define KERNEL CNN_AVX512_KERNEL
#define INLINE static inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 8")

/* C (mr x w, w <= 16 nv) = alpha * the product over kc of op(A) rows at a (row stride ars, k
 * stride acs) and kc rows of B at b (stride brs) + beta * C.  mr and nv are constants after
 * inlining, so the accumulators stay in registers. */
KERNEL INLINE void tile(int mr, int nv, int w, int kc, const float *a, ptrdiff_t ars, ptrdiff_t acs,
                        const float *b, ptrdiff_t brs, float alpha, float beta, float *c,
                        ptrdiff_t ldc)
{
    /* the lanes of columns [16 v, w) of vector v */
    const __mmask16 m0 = cnn_lanes16(w), m1 = cnn_lanes16(w - 16), m2 = cnn_lanes16(w - 32);
    __m512 acc[MR][3];
    UNROLL
    for (int r = 0; r < mr; r++)
        acc[r][0] = acc[r][1] = acc[r][2] = _mm512_setzero_ps();
#pragma GCC unroll 2
    for (int k = 0; k < kc; k++) {
        const float *bk = b + k * brs;
        const __m512 b0 = _mm512_maskz_loadu_ps(m0, bk);
        const __m512 b1 = nv > 1 ? _mm512_maskz_loadu_ps(m1, bk + 16) : b0;
        const __m512 b2 = nv > 2 ? _mm512_maskz_loadu_ps(m2, bk + 32) : b0;
        UNROLL
        for (int r = 0; r < mr; r++) {
            const __m512 x = _mm512_set1_ps(a[r * ars + k * acs]);
            acc[r][0] = _mm512_fmadd_ps(x, b0, acc[r][0]);
            if (nv > 1)
                acc[r][1] = _mm512_fmadd_ps(x, b1, acc[r][1]);
            if (nv > 2)
                acc[r][2] = _mm512_fmadd_ps(x, b2, acc[r][2]);
        }
    }
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    UNROLL
    for (int r = 0; r < mr; r++) {
        UNROLL
        for (int v = 0; v < nv; v++) {
            float *cv = c + r * ldc + 16 * v;
            const __mmask16 m = v == 0 ? m0 : v == 1 ? m1 : m2;
            __m512 x = _mm512_mul_ps(acc[r][v], va);
            if (beta != 0.0f) /* beta == 0 never reads C */
                x = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, cv), vb, x);
            _mm512_mask_storeu_ps(cv, m, x);
        }
    }
}

#define TILE_CASE(r, v)                                                                            \
    case (r)*3 + (v)-1:                                                                            \
        tile(r, v, w, kc, a, ars, acs, b, brs, alpha, beta, c, ldc);                               \
        break;

/* tile() for mr (1..MR) rows and w (1..NR) columns, mr and the vector count constants. */
KERNEL static void tile_any(int mr, int w, int kc, const float *a, ptrdiff_t ars, ptrdiff_t acs,
                            const float *b, ptrdiff_t brs, float alpha, float beta, float *c,
                            ptrdiff_t ldc)
{
    switch (mr * 3 + (w + 15) / 16 - 1) {
        /* clang-format off */
        TILE_CASE(1, 1) TILE_CASE(1, 2) TILE_CASE(1, 3) TILE_CASE(2, 1) TILE_CASE(2, 2)
        TILE_CASE(2, 3) TILE_CASE(3, 1) TILE_CASE(3, 2) TILE_CASE(3, 3) TILE_CASE(4, 1)
        TILE_CASE(4, 2) TILE_CASE(4, 3) TILE_CASE(5, 1) TILE_CASE(5, 2) TILE_CASE(5, 3)
        TILE_CASE(6, 1) TILE_CASE(6, 2) TILE_CASE(6, 3) TILE_CASE(7, 1) TILE_CASE(7, 2)
        TILE_CASE(7, 3) TILE_CASE(8, 1) TILE_CASE(8, 2) TILE_CASE(8, 3)
        /* clang-format on */
    }
}

void cnn_gemm_small_tiles512(int M, int N, int K, float alpha, const float *A, ptrdiff_t ars,
                             ptrdiff_t acs, const float *B, ptrdiff_t brs, float beta, float *C,
                             ptrdiff_t ldc)
{
    /* One column tile (a dense layer at batch 5-48): no K blocks.  Nothing re-reads a K block
     * of A's rows, and whole rows are streams the prefetchers follow, where 8 rows x 1 KiB
     * pieces left each tile waiting on memory. */
    const int kb = N <= NR ? K : KC;
    for (int k0 = 0; k0 < K; k0 += kb) {
        const int kc = K - k0 < kb ? K - k0 : kb;
        const float be = k0 ? 1.0f : beta;
        for (int i0 = 0; i0 < M; i0 += MR) {
            const int mr = M - i0 < MR ? M - i0 : MR;
            const float *ai = A + i0 * ars + k0 * acs;
            for (int j0 = 0; j0 < N; j0 += NR)
                tile_any(mr, N - j0 < NR ? N - j0 : NR, kc, ai, ars, acs, B + k0 * brs + j0, brs,
                         alpha, be, C + i0 * ldc + j0, ldc);
        }
    }
}

#else /* not x86-64: never called */

void cnn_gemm_small_tiles512(int M, int N, int K, float alpha, const float *A, ptrdiff_t ars,
                             ptrdiff_t acs, const float *B, ptrdiff_t brs, float beta, float *C,
                             ptrdiff_t ldc)
{
    (void)M, (void)N, (void)K, (void)alpha, (void)A, (void)ars, (void)acs, (void)B, (void)brs;
    (void)beta, (void)C, (void)ldc;
}

#endif
