/* The packed GEMM's AVX-512 kernels (gemm_packed_internal.h), which the drivers in
 * gemm_packed.c run on CPUs with AVX-512: twice the AVX2 kernels' lanes, and 32 registers.
 * Narrow: a panel of A (16 rows) is one vector, so a tile takes up to three panels (48 rows)
 * x 8 columns of B broadcast, 24 accumulators; its result is transposed in 8 x 8 blocks and
 * stored into rows of C.  On one core of an AVX-512 Xeon (model 167), against tiles of 2 x
 * 12 and 4 x 6 panels x columns: ResNet-18 batch 1 (sum of op minima) 19.31 ms at 2 x 12,
 * 18.52 here, 19.21 at 4 x 6; ResNet-50 51.42, 50.06, 50.92.  Wide: 8 rows of A (half a
 * panel) broadcast x 48 columns of B (three vectors), 24 accumulators, stored as rows of C.
 * Ragged columns go through masked loads and stores. */
#include "avx512.h"
#include "gemm_packed_internal.h"

#if defined(__x86_64__)

enum {
    PR = CNN_PACKED_PR,
    NP = 3,  /* panels per narrow tile */
    PC = 8,  /* columns per narrow strip */
    WR = 8,  /* rows per wide tile */
    WC = 48, /* columns per wide strip */
    /* The narrow tile asks for the panel rows this many k steps ahead (see gemm_packed.c). */
    PREFETCH_K = 32
};

/* They read the panels and strips the driver hands them and write only the rows and
 * columns it names. */
#define KERNEL CNN_AVX512_KERNEL
#define INLINE static inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 16")

/* acc[(q * PC + j) * PR...] (16 floats: column j, rows of panel q) = the product over kc of
 * np panels (a vector per k each) and a strip (kc x PC, broadcast).  np and cols are
 * constants after inlining, so the accumulators stay in registers. */
KERNEL INLINE void narrow_product(int np, int cols, int kc, const float *panel, ptrdiff_t stride,
                                  const float *strip, float *acc)
{
    __m512 s[NP][PC];
    UNROLL
    for (int q = 0; q < np; q++) {
        UNROLL
        for (int j = 0; j < cols; j++)
            s[q][j] = _mm512_setzero_ps();
    }
#pragma GCC unroll 2
    for (int k = 0; k < kc; k++) {
        __m512 a[NP];
        UNROLL
        for (int q = 0; q < np; q++) {
            __builtin_prefetch(panel + q * stride + (k + PREFETCH_K) * PR);
            a[q] = _mm512_loadu_ps(panel + q * stride + k * PR);
        }
        UNROLL
        for (int j = 0; j < cols; j++) {
            const __m512 b = _mm512_set1_ps(strip[k * PC + j]);
            UNROLL
            for (int q = 0; q < np; q++)
                s[q][j] = _mm512_fmadd_ps(b, a[q], s[q][j]);
        }
    }
    UNROLL
    for (int q = 0; q < np; q++) {
        UNROLL
        for (int j = 0; j < cols; j++)
            _mm512_storeu_ps(acc + (q * PC + j) * PR, s[q][j]);
    }
}

/* C rows [0, rows) x columns [0, cols) = alpha * acc^T + beta * C, then ep: each 8 x 8 block
 * (8 rows of a panel, 8 columns) is transposed into rows of C, stored under a mask of the
 * block's columns. */
KERNEL static void narrow_store(const float *acc, int rows, int cols, float alpha, float beta,
                                float *c, ptrdiff_t ldc, const struct cnn_gemm_epilogue *ep)
{
    const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    const __m256 zero = _mm256_setzero_ps();
    const float *bias = ep ? ep->bias : NULL, *res = ep ? ep->res : NULL;
    const int relu = ep && ep->relu;
    for (int j0 = 0; j0 < cols; j0 += 8) {
        const int nc = cols - j0 < 8 ? cols - j0 : 8;
        const __mmask8 m = (__mmask8)((1u << nc) - 1u);
        for (int r0 = 0; r0 < rows; r0 += 8) {
            const float *block = acc + ((r0 / PR) * PC + j0) * PR + r0 % PR;
            __m256 t[8];
            for (int j = 0; j < 8; j++)
                t[j] = j < nc ? _mm256_mul_ps(_mm256_loadu_ps(block + j * PR), va) : zero;
            cnn_packed_transpose8(t);
            const int n = rows - r0 < 8 ? rows - r0 : 8;
            for (int i = 0; i < n; i++) {
                const int row = r0 + i;
                float *ci = c + row * ldc + j0;
                __m256 v = t[i];
                if (beta != 0.0f) /* beta == 0 never reads C */
                    v = _mm256_fmadd_ps(_mm256_maskz_loadu_ps(m, ci), vb, v);
                if (bias)
                    v = _mm256_add_ps(v, _mm256_set1_ps(bias[row]));
                if (res)
                    v = _mm256_add_ps(v, _mm256_maskz_loadu_ps(m, res + row * ldc + j0));
                if (relu) /* max(NaN, 0) and max(-0, 0) are the second operand: +0 */
                    v = _mm256_max_ps(v, zero);
                _mm256_mask_storeu_ps(ci, m, v);
            }
        }
    }
}

#define NARROW_NP(n, q)                                                                            \
    case q:                                                                                        \
        narrow_product(q, n, kc, panel, panel_stride, strip, acc);                                 \
        break;
#define NARROW_CASE(n)                                                                             \
    case n:                                                                                        \
        switch ((rows + PR - 1) / PR) {                                                            \
            NARROW_NP(n, 1) NARROW_NP(n, 2) NARROW_NP(n, 3)                                        \
        }                                                                                          \
        break;

KERNEL static void narrow_tile(int cols, int rows, int kc, const float *panel,
                               ptrdiff_t panel_stride, const float *strip, float alpha, float beta,
                               float *c, ptrdiff_t ldc, const struct cnn_gemm_epilogue *ep)
{
    float acc[NP * PC * PR] __attribute__((aligned(64)));
    switch (cols) {
        /* clang-format off */
        NARROW_CASE(1) NARROW_CASE(2) NARROW_CASE(3) NARROW_CASE(4)
        NARROW_CASE(5) NARROW_CASE(6) NARROW_CASE(7) NARROW_CASE(8)
        /* clang-format on */
    }
    narrow_store(acc, rows, cols, alpha, beta, c, ldc, ep);
}

const struct cnn_packed_narrow cnn_packed_narrow_avx512 = {NP, PC, narrow_tile};

/* The product over kc of 8 rows of A (broadcast from a at stride PR) and a strip (kc x 48 of
 * B) in 24 accumulators, stored into rows [0, rows) and columns [0, cols) of c as alpha *
 * product + beta * C, then ep.  The store indexes the accumulators only by constants, so
 * they stay in registers (see gemm_packed.c's store_wide). */
KERNEL static void wide_tile(int rows, int cols, int kc, const float *a, const float *strip,
                             float alpha, float beta, float *c, ptrdiff_t ldc,
                             const struct cnn_gemm_epilogue *ep)
{
    __m512 s[WR][3];
    UNROLL
    for (int r = 0; r < WR; r++)
        s[r][0] = s[r][1] = s[r][2] = _mm512_setzero_ps();
    for (int k = 0; k < kc; k++) {
        const float *b = strip + k * WC;
        const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
        const __m512 b2 = _mm512_loadu_ps(b + 32);
        UNROLL
        for (int r = 0; r < WR; r++) {
            const __m512 x = _mm512_set1_ps(a[k * PR + r]);
            s[r][0] = _mm512_fmadd_ps(x, b0, s[r][0]);
            s[r][1] = _mm512_fmadd_ps(x, b1, s[r][1]);
            s[r][2] = _mm512_fmadd_ps(x, b2, s[r][2]);
        }
    }
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    const __m512 zero = _mm512_setzero_ps();
    UNROLL
    for (int r = 0; r < WR; r++) {
        if (r >= rows)
            break;
        float *cr = c + r * ldc;
        const float *res = ep && ep->res ? ep->res + r * ldc : NULL;
        const __m512 bias = ep && ep->bias ? _mm512_set1_ps(ep->bias[r]) : zero;
        UNROLL
        for (int j = 0; j < 3; j++) {
            if (16 * j >= cols)
                break;
            const __mmask16 m = cnn_lanes16(cols - 16 * j); /* columns [16 j, cols) */
            __m512 v = _mm512_mul_ps(s[r][j], va);
            if (beta != 0.0f) /* beta == 0 never reads C */
                v = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, cr + 16 * j), vb, v);
            if (ep) {
                if (ep->bias)
                    v = _mm512_add_ps(v, bias);
                if (res)
                    v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, res + 16 * j));
                if (ep->relu) /* max(NaN, 0) and max(-0, 0) are the second operand: +0 */
                    v = _mm512_max_ps(v, zero);
            }
            _mm512_mask_storeu_ps(cr + 16 * j, m, v);
        }
    }
}

const struct cnn_packed_wide cnn_packed_wide_avx512 = {WR, WC, wide_tile};

#endif
