/* The direct conv's AVX-512 kernels (conv_direct_internal.h): the AVX2 tile of
 * layer_conv_direct.c -- output channels x 2 vectors, accumulated over (c, ky, kx) from the
 * input rows with the weights broadcast -- on vectors of 16 outputs, so twice the outputs
 * per instruction, and 8 channels rather than 6 (16 accumulators of the 32 registers: a
 * ResNet stem's 64 channels in 8 whole tiles, and 8 loads for 16 FMAs); a fused 2x2 pool
 * takes the two rows of 16 down to 8 values. */
#include "avx512.h"
#include "conv_direct_internal.h"

#if defined(__x86_64__)

enum { DR = CNN_DIRECT_DR_WIDE, BLOCK = CNN_DIRECT_BLOCK };

#define KERNEL CNN_AVX512_KERNEL
#define INLINE inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 8")

/* acc[r][v] = sum over (c, ky, kx) of weight (r, k) * the 16 inputs vector v reads there;
 * full and s2 as the AVX2 accumulate(). */
KERNEL static INLINE void accumulate(__m512 acc[DR][2], const struct tile *t, int kw, int full,
                                     int s2)
{
    const __mmask16 m0 = cnn_lanes16(t->n[0]), m1 = cnn_lanes16(t->n[1]);
    const float *wp = t->wp;
    UNROLL
    for (int r = 0; r < DR; r++)
        acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (int c = 0; c < t->C; c++) {
        for (int ky = 0; ky < t->KH; ky++) {
            const ptrdiff_t off = c * t->cs + ky * t->rs;
            const float *a0 = t->s[0] + off, *a1 = t->s[1] + off;
            UNROLL
            for (int kx = 0; kx < kw; kx++) {
                const ptrdiff_t x = s2 ? (kx & 1) * t->ps + (kx >> 1) : kx;
                const __m512 b0 =
                    full ? _mm512_loadu_ps(a0 + x) : _mm512_maskz_loadu_ps(m0, a0 + x);
                const __m512 b1 =
                    full ? _mm512_loadu_ps(a1 + x) : _mm512_maskz_loadu_ps(m1, a1 + x);
                UNROLL
                for (int r = 0; r < DR; r++) {
                    const __m512 w = _mm512_set1_ps(wp[r]);
                    acc[r][0] = _mm512_fmadd_ps(w, b0, acc[r][0]);
                    acc[r][1] = _mm512_fmadd_ps(w, b1, acc[r][1]);
                }
                wp += BLOCK;
            }
        }
    }
}

KERNEL static INLINE __m512 bias_relu(__m512 x, const struct tile *t, int r)
{
    if (t->b)
        x = _mm512_add_ps(x, _mm512_set1_ps(t->b[r]));
    if (t->relu) /* max_ps returns its second operand for NaN: NaN -> 0, as add_bias does */
        x = _mm512_max_ps(x, _mm512_setzero_ps());
    return x;
}

KERNEL static INLINE void store(__m512 acc[DR][2], const struct tile *t, int full)
{
    const __mmask16 m0 = cnn_lanes16(t->n[0]), m1 = cnn_lanes16(t->n[1]);
    UNROLL
    for (int r = 0; r < DR; r++) {
        if (r >= t->mr)
            break;
        float *o0 = t->o[0] + r * t->ocs, *o1 = t->o[1] + r * t->ocs;
        if (full) {
            _mm512_storeu_ps(o0, bias_relu(acc[r][0], t, r));
            _mm512_storeu_ps(o1, bias_relu(acc[r][1], t, r));
        } else {
            _mm512_mask_storeu_ps(o0, m0, bias_relu(acc[r][0], t, r));
            _mm512_mask_storeu_ps(o1, m1, bias_relu(acc[r][1], t, r));
        }
    }
}

/* Max of the two rows, then of adjacent columns: 16 columns -> 8 pooled values, then bias
 * and relu (max commutes with both). */
KERNEL static INLINE void pool(__m512 acc[DR][2], const struct tile *t, int full)
{
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 0, 0, 0, 0, 0, 0, 0, 0);
    const __mmask8 m = (__mmask8)((1u << t->n_out) - 1u);
    UNROLL
    for (int r = 0; r < DR; r++) {
        if (r >= t->mr)
            break;
        const __m512 x = _mm512_max_ps(acc[r][0], acc[r][1]);
        const __m512 y =
            _mm512_max_ps(_mm512_permutexvar_ps(even, x), _mm512_permutexvar_ps(odd, x));
        __m256 v = _mm512_castps512_ps256(y);
        if (t->b)
            v = _mm256_add_ps(v, _mm256_set1_ps(t->b[r]));
        if (t->relu) /* NaN -> 0, as bias_relu() */
            v = _mm256_max_ps(v, _mm256_setzero_ps());
        if (full) /* 16 conv columns: 8 pooled ones */
            _mm256_storeu_ps(t->o[0] + r * t->ocs, v);
        else
            _mm256_mask_storeu_ps(t->o[0] + r * t->ocs, m, v);
    }
}

#define KERNEL_FN(name, epilogue, kwexpr, full, s2)                                                \
    KERNEL static void name(const struct tile *t)                                                  \
    {                                                                                              \
        __m512 acc[DR][2];                                                                         \
        accumulate(acc, t, kwexpr, full, s2);                                                      \
        epilogue(acc, t, full);                                                                    \
    }
#define KERNEL_FNS(name, epilogue, kwexpr, s2)                                                     \
    KERNEL_FN(name, epilogue, kwexpr, 0, s2)                                                       \
    KERNEL_FN(name##_full, epilogue, kwexpr, 1, s2)
KERNEL_FNS(k3, store, 3, 0)
KERNEL_FNS(k5, store, 5, 0)
KERNEL_FNS(kany, store, t->KW, 0)
KERNEL_FNS(s2_k3, store, 3, 1)
KERNEL_FNS(s2_k7, store, 7, 1)
KERNEL_FNS(s2_kany, store, t->KW, 1)
KERNEL_FNS(pool_k3, pool, 3, 0)
KERNEL_FNS(pool_k5, pool, 5, 0)
KERNEL_FNS(pool_kany, pool, t->KW, 0)

/* [0 stride 1, 1 stride 2, 2 pooled][kw 3, 5 (stride 2: 7), other][full] */
static const tile_fn KERNELS[3][3][2] = {
    {{k3, k3_full}, {k5, k5_full}, {kany, kany_full}},
    {{s2_k3, s2_k3_full}, {s2_k7, s2_k7_full}, {s2_kany, s2_kany_full}},
    {{pool_k3, pool_k3_full}, {pool_k5, pool_k5_full}, {pool_kany, pool_kany_full}},
};

tile_fn cnn_direct_pick_avx512(const struct tile *t, int pooled)
{
    const int full = t->n[0] == 16 && t->n[1] == 16, s2 = t->ps != 0;
    const int kw = t->KW == 3 ? 0 : t->KW == (s2 ? 7 : 5) ? 1 : 2;
    return KERNELS[pooled ? 2 : s2][kw][full];
}

#else /* never called: the AVX2 path's applies() is 0 off x86-64 */

tile_fn cnn_direct_pick_avx512(const struct tile *t, int pooled)
{
    (void)t, (void)pooled;
    return (tile_fn)0;
}

#endif
