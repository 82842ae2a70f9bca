/* AVX-512 rows of the Winograd F(2x2,3x3) transforms (layer_winograd.c picks them where
 * cnn_cpu_avx512()): sixteen tiles of one tile row per vector, both halves of B^T d B in
 * registers (no staged rows), and A^T m A interleaved back into output rows in registers.
 * The 4-lane code there needs a staged row, four vectors per row of tiles and lane-by-lane
 * tails; here a tile row of up to 16 tiles (maps up to 32 wide) is one masked vector. */
#include "layer_winograd.h"

#if defined(__x86_64__)
#include "avx512.h"

#include <stdint.h>

/* The columns [start, start + 16) of a row w floats wide that exist.  start may be negative
 * (left padding): the lanes masked off are not read. */
CNN_AVX512_KERNEL static inline __mmask16 cols_mask(int start, int w)
{
    return (__mmask16)(cnn_lanes16(w - start) & ~cnn_lanes16(-start));
}

CNN_AVX512_KERNEL static inline __m512 load_cols(const float *x, int start, __mmask16 m)
{
    return _mm512_maskz_loadu_ps(m, (const void *)((uintptr_t)x + (intptr_t)start * 4));
}

CNN_AVX512_KERNEL void cnn_wino2_input_row_avx512(float *dst, size_t kstride,
                                                  const float *const x[4], int w, int pad_l, int tw)
{
    /* d_j of tile l = s[2 l + j] (s: the vertically transformed row, shifted by pad_l):
     * even and odd lanes of (lo, hi) give d0 and d1; d2 and d3 are d0 and d1 moved down a
     * lane, lane 15 from the next block's first two columns (ex, only read for a full
     * block). */
    const __m512i even =
        _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd =
        _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    const __m512i next0 = _mm512_setr_epi32(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16);
    const __m512i next1 = _mm512_setr_epi32(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 17);
    for (int tx = 0; tx < tw; tx += 16) {
        const int col = 2 * tx - pad_l;
        const __mmask16 m = cnn_lanes16(tw - tx), m_lo = cols_mask(col, w);
        const __mmask16 m_hi = cols_mask(col + 16, w);
        const __mmask16 m_ex = tw - tx >= 16 ? cols_mask(col + 32, w) : 0;
        __m512 lo[4], hi[4], ex[4]; /* input rows 0..3 */
        WINO_UNROLL
        for (int i = 0; i < 4; i++) {
            lo[i] = load_cols(x[i], col, m_lo);
            hi[i] = load_cols(x[i], col + 16, m_hi);
            ex[i] = m_ex ? load_cols(x[i], col + 32, m_ex) : _mm512_setzero_ps();
        }
        WINO_UNROLL
        for (int a = 0; a < 4; a++) { /* row a of B^T d: x0 - x2, x1 + x2, x2 - x1, x1 - x3 */
            __m512 s_lo, s_hi, s_ex;
            switch (a) {
            case 0:
                s_lo = _mm512_sub_ps(lo[0], lo[2]), s_hi = _mm512_sub_ps(hi[0], hi[2]);
                s_ex = _mm512_sub_ps(ex[0], ex[2]);
                break;
            case 1:
                s_lo = _mm512_add_ps(lo[1], lo[2]), s_hi = _mm512_add_ps(hi[1], hi[2]);
                s_ex = _mm512_add_ps(ex[1], ex[2]);
                break;
            case 2:
                s_lo = _mm512_sub_ps(lo[2], lo[1]), s_hi = _mm512_sub_ps(hi[2], hi[1]);
                s_ex = _mm512_sub_ps(ex[2], ex[1]);
                break;
            default:
                s_lo = _mm512_sub_ps(lo[1], lo[3]), s_hi = _mm512_sub_ps(hi[1], hi[3]);
                s_ex = _mm512_sub_ps(ex[1], ex[3]);
                break;
            }
            const __m512 d0 = _mm512_permutex2var_ps(s_lo, even, s_hi);
            const __m512 d1 = _mm512_permutex2var_ps(s_lo, odd, s_hi);
            const __m512 d2 = _mm512_permutex2var_ps(d0, next0, s_ex);
            const __m512 d3 = _mm512_permutex2var_ps(d1, next1, s_ex);
            float *dk = dst + (size_t)(4 * a) * kstride + tx;
            _mm512_mask_storeu_ps(dk, m, _mm512_sub_ps(d0, d2));
            _mm512_mask_storeu_ps(dk + kstride, m, _mm512_add_ps(d1, d2));
            _mm512_mask_storeu_ps(dk + 2 * kstride, m, _mm512_sub_ps(d2, d1));
            _mm512_mask_storeu_ps(dk + 3 * kstride, m, _mm512_sub_ps(d1, d3));
        }
    }
}

/* One output row from a block of tiles: y0[l] and y1[l] to columns 2 l and 2 l + 1 of out
 * (nx of them from out on), + the residual row res (or NULL), ReLU when relu. */
CNN_AVX512_KERNEL static inline void store_row(float *out, const float *res, __m512 y0, __m512 y1,
                                               int nx, int relu)
{
    const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i hi =
        _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    const __mmask16 m_lo = cnn_lanes16(nx), m_hi = cnn_lanes16(nx - 16);
    __m512 v_lo = _mm512_permutex2var_ps(y0, lo, y1), v_hi = _mm512_permutex2var_ps(y0, hi, y1);
    if (res) { /* (conv + bias) + res: the order of the unfused add */
        v_lo = _mm512_add_ps(v_lo, _mm512_maskz_loadu_ps(m_lo, res));
        v_hi = _mm512_add_ps(v_hi, _mm512_maskz_loadu_ps(m_hi, res + 16));
    }
    if (relu) { /* lanes <= 0 and NaN become +0, as wino_relu4() */
        const __m512 zero = _mm512_setzero_ps();
        v_lo = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v_lo, zero, _CMP_GT_OQ), v_lo);
        v_hi = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v_hi, zero, _CMP_GT_OQ), v_hi);
    }
    _mm512_mask_storeu_ps(out, m_lo, v_lo);
    _mm512_mask_storeu_ps(out + 16, m_hi, v_hi);
}

CNN_AVX512_KERNEL void cnn_wino2_output_row_avx512(float *const o[2], const float *const res[2],
                                                   const float *src, size_t kstride, float bias,
                                                   int relu, int tw, int ow)
{
    const __m512 b = _mm512_set1_ps(bias);
    for (int tx = 0; tx < tw; tx += 16) {
        const __mmask16 m = cnn_lanes16(tw - tx);
        __m512 f0[4], f1[4]; /* m A, per row a of m */
        WINO_UNROLL
        for (int a = 0; a < 4; a++) {
            const float *s = src + (size_t)(4 * a) * kstride + tx;
            const __m512 m0 = _mm512_maskz_loadu_ps(m, s);
            const __m512 m1 = _mm512_maskz_loadu_ps(m, s + kstride);
            const __m512 m2 = _mm512_maskz_loadu_ps(m, s + 2 * kstride);
            const __m512 m3 = _mm512_maskz_loadu_ps(m, s + 3 * kstride);
            f0[a] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
            f1[a] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
        }
        const int nx = ow - 2 * tx;
        store_row(o[0] + 2 * tx, res[0] ? res[0] + 2 * tx : NULL,
                  _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(f0[0], f0[1]), f0[2]), b),
                  _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(f1[0], f1[1]), f1[2]), b), nx, relu);
        if (o[1])
            store_row(o[1] + 2 * tx, res[1] ? res[1] + 2 * tx : NULL,
                      _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(f0[1], f0[2]), f0[3]), b),
                      _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(f1[1], f1[2]), f1[3]), b), nx,
                      relu);
    }
}

#else

/* Never called where cnn_cpu_avx512() is 0. */
void cnn_wino2_input_row_avx512(float *dst, size_t kstride, const float *const x[4], int w,
                                int pad_l, int tw)
{
    (void)dst, (void)kstride, (void)x, (void)w, (void)pad_l, (void)tw;
}

void cnn_wino2_output_row_avx512(float *const o[2], const float *const res[2], const float *src,
                                 size_t kstride, float bias, int relu, int tw, int ow)
{
    (void)o, (void)res, (void)src, (void)kstride, (void)bias, (void)relu, (void)tw, (void)ow;
}

#endif
