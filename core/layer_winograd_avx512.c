/* AVX-512 rows of the Winograd transforms, F(2x2,3x3) (layer_winograd.c) and F(4x4,3x3)
 * (layer_winograd4.c), which pick them where cnn_cpu_avx512(): sixteen tiles of one tile row
 * per vector.  F(2x2) keeps both halves of B^T d B in registers (no staged rows); F(4x4)
 * keeps its six transformed rows as five vectors each.  A^T m A is interleaved back into
 * output rows in registers.  The 4-lane code there needs a staged row, several vectors per
 * row of tiles and lane-by-lane tails; here a tile row of up to 16 tiles is one masked
 * vector.  The operations and their order are those of the 4-lane code, so both give the
 * same floats (suite layers_conv checks it). */
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

CNN_AVX512_KERNEL void cnn_wino2_input_rows_avx512(float *dst, size_t kstride,
                                                   const float *const x[][4], int g, int w,
                                                   int pad_l, int tw)
{
    /* Row r's transformed columns s[0 .. 2 tw + 2) fit one vector (tw <= 7).  Lane l of
     * d_j takes s[2 l' + j] of the tile row it belongs to (l' = its tile in that row): tile
     * rows 0, 1 come from one two-source permute, rows 2, 3 from another, blended in above
     * lane 2 tw. */
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    __m512i base[2]; /* per pair of tile rows: lane -> 2 l' (first row) or 16 + 2 l' (second) */
    for (int q = 0; q < 2; q++) {
        const __m512i l = _mm512_sub_epi32(iota, _mm512_set1_epi32(2 * q * tw));
        const __mmask16 second = _mm512_cmpge_epi32_mask(l, _mm512_set1_epi32(tw));
        const __m512i first = _mm512_add_epi32(l, l);
        base[q] = _mm512_mask_add_epi32(first, second, first, _mm512_set1_epi32(16 - 2 * tw));
    }
    const __mmask16 upper = (__mmask16)~cnn_lanes16(2 * tw), m = cnn_lanes16(g * tw);
    const __mmask16 mc = cols_mask(-pad_l, w);
    __m512 s[4][4]; /* s[r][a]: row a of B^T d for tile row r (zero past g) */
    for (int r = 0; r < 4; r++) {
        if (r >= g) {
            s[r][0] = s[r][1] = s[r][2] = s[r][3] = _mm512_setzero_ps();
            continue;
        }
        const __m512 x0 = load_cols(x[r][0], -pad_l, mc), x1 = load_cols(x[r][1], -pad_l, mc);
        const __m512 x2 = load_cols(x[r][2], -pad_l, mc), x3 = load_cols(x[r][3], -pad_l, mc);
        s[r][0] = _mm512_sub_ps(x0, x2), s[r][1] = _mm512_add_ps(x1, x2);
        s[r][2] = _mm512_sub_ps(x2, x1), s[r][3] = _mm512_sub_ps(x1, x3);
    }
    WINO_UNROLL
    for (int a = 0; a < 4; a++) {
        __m512 d[4];
        WINO_UNROLL
        for (int j = 0; j < 4; j++) {
            const __m512i off = _mm512_set1_epi32(j);
            d[j] = _mm512_permutex2var_ps(s[0][a], _mm512_add_epi32(base[0], off), s[1][a]);
            if (g > 2)
                d[j] = _mm512_mask_blend_ps(upper, d[j],
                                            _mm512_permutex2var_ps(s[2][a],
                                                                   _mm512_add_epi32(base[1], off),
                                                                   s[3][a]));
        }
        float *dk = dst + (size_t)(4 * a) * kstride;
        _mm512_mask_storeu_ps(dk, m, _mm512_sub_ps(d[0], d[2]));
        _mm512_mask_storeu_ps(dk + kstride, m, _mm512_add_ps(d[1], d[2]));
        _mm512_mask_storeu_ps(dk + 2 * kstride, m, _mm512_sub_ps(d[2], d[1]));
        _mm512_mask_storeu_ps(dk + 3 * kstride, m, _mm512_sub_ps(d[1], d[3]));
    }
}

/* Two-source permute index interleaving lanes first.. of a and b: a[first], b[first],
 * a[first + 1], b[first + 1], .. (8 pairs). */
CNN_AVX512_KERNEL static inline __m512i pair_index(int first)
{
    return _mm512_add_epi32(
        _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23),
        _mm512_set1_epi32(first));
}

/* One output row from a block of tiles starting at lane `lane`: y0[lane + l] and
 * y1[lane + l] to columns 2 l and 2 l + 1 of out (nx of them from out on; lane > 0 only with
 * nx <= 16), + the residual row res (or NULL), ReLU when relu. */
CNN_AVX512_KERNEL static inline void store_row(float *out, const float *res, __m512 y0, __m512 y1,
                                               int nx, int relu, int lane)
{
    const __m512i lo = pair_index(lane), hi = pair_index(8);
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

/* A^T m A + bias of the tiles in lanes m of M at src (planes kstride apart): y[p][q] is
 * output row p, column q of each tile. */
CNN_AVX512_KERNEL static inline void wino2_y(__m512 y[2][2], const float *src, size_t kstride,
                                             __mmask16 m, __m512 b)
{
    __m512 f0[4], f1[4]; /* m A, per row a of m */
    WINO_UNROLL
    for (int a = 0; a < 4; a++) {
        const float *s = src + (size_t)(4 * a) * kstride;
        const __m512 m0 = _mm512_maskz_loadu_ps(m, s);
        const __m512 m1 = _mm512_maskz_loadu_ps(m, s + kstride);
        const __m512 m2 = _mm512_maskz_loadu_ps(m, s + 2 * kstride);
        const __m512 m3 = _mm512_maskz_loadu_ps(m, s + 3 * kstride);
        f0[a] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
        f1[a] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
    }
    y[0][0] = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(f0[0], f0[1]), f0[2]), b);
    y[0][1] = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(f1[0], f1[1]), f1[2]), b);
    y[1][0] = _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(f0[1], f0[2]), f0[3]), b);
    y[1][1] = _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(f1[1], f1[2]), f1[3]), b);
}

CNN_AVX512_KERNEL void cnn_wino2_output_row_avx512(float *const o[2], const float *const res[2],
                                                   const float *src, size_t kstride, float bias,
                                                   int relu, int tw, int ow)
{
    const __m512 b = _mm512_set1_ps(bias);
    for (int tx = 0; tx < tw; tx += 16) {
        __m512 y[2][2];
        wino2_y(y, src + tx, kstride, cnn_lanes16(tw - tx), b);
        for (int row = 0; row < 2 && o[row]; row++)
            store_row(o[row] + 2 * tx, res[row] ? res[row] + 2 * tx : NULL, y[row][0], y[row][1],
                      ow - 2 * tx, relu, 0);
    }
}

CNN_AVX512_KERNEL void cnn_wino2_output_rows_avx512(float *o[][2],
                                                    const float *res[][2], int g,
                                                    const float *src, size_t kstride, float bias,
                                                    int relu, int tw, int ow)
{
    /* g tile rows of tw tiles each, consecutive in M: one vector holds them all, tile row j
     * in lanes [j tw, (j + 1) tw). */
    __m512 y[2][2];
    wino2_y(y, src, kstride, cnn_lanes16(g * tw), _mm512_set1_ps(bias));
    for (int j = 0; j < g; j++)
        for (int row = 0; row < 2 && o[j][row]; row++)
            store_row(o[j][row], res[j][row], y[row][0], y[row][1], ow, relu, j * tw);
}

/* B^T x along one axis (F(4x4)), the same operations as bt6() in layer_winograd4.c:
 * x0..x5 -> (4x0 - 5x2 + x4, -4x1 - 4x2 + x3 + x4, 4x1 - 4x2 - x3 + x4, -2x1 - x2 + 2x3 + x4,
 * 2x1 - x2 - 2x3 + x4, 4x1 - 5x3 + x5), in place. */
CNN_AVX512_KERNEL static inline void bt6_16(__m512 x[6])
{
    const __m512 four = _mm512_set1_ps(4.0f), five = _mm512_set1_ps(5.0f);
    const __m512 two = _mm512_set1_ps(2.0f);
    const __m512 a = _mm512_sub_ps(x[4], _mm512_mul_ps(four, x[2]));
    const __m512 b = _mm512_sub_ps(x[3], _mm512_mul_ps(four, x[1]));
    const __m512 c = _mm512_sub_ps(x[4], x[2]);
    const __m512 d = _mm512_mul_ps(two, _mm512_sub_ps(x[3], x[1]));
    const __m512 r0 =
        _mm512_add_ps(_mm512_sub_ps(_mm512_mul_ps(four, x[0]), _mm512_mul_ps(five, x[2])), x[4]);
    const __m512 r5 =
        _mm512_add_ps(_mm512_sub_ps(_mm512_mul_ps(four, x[1]), _mm512_mul_ps(five, x[3])), x[5]);
    x[0] = r0, x[1] = _mm512_add_ps(a, b), x[2] = _mm512_sub_ps(a, b);
    x[3] = _mm512_add_ps(c, d), x[4] = _mm512_sub_ps(c, d), x[5] = r5;
}

CNN_AVX512_KERNEL void cnn_wino4_input_row_avx512(float *dst, size_t kstride,
                                                  const float *const x[6], int w, int pad_l, int tw)
{
    /* d_j of tile l = s[4 l + j] (s: the vertically transformed row, shifted by pad_l).
     * For j < 4 the lanes of tiles 0..7 come from s vectors 0, 1 and those of tiles 8..15
     * from vectors 2, 3 by the same index; d4, d5 are d0, d1 moved down a lane, lane 15
     * from vector 4 (only computed for a full block). */
    static const int stride4[4][16] = {
        {0, 4, 8, 12, 16, 20, 24, 28, 0, 4, 8, 12, 16, 20, 24, 28},
        {1, 5, 9, 13, 17, 21, 25, 29, 1, 5, 9, 13, 17, 21, 25, 29},
        {2, 6, 10, 14, 18, 22, 26, 30, 2, 6, 10, 14, 18, 22, 26, 30},
        {3, 7, 11, 15, 19, 23, 27, 31, 3, 7, 11, 15, 19, 23, 27, 31}};
    const __m512i next0 = _mm512_setr_epi32(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16);
    const __m512i next1 = _mm512_setr_epi32(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 17);
    __m512i idx[4];
    for (int j = 0; j < 4; j++)
        idx[j] = _mm512_loadu_si512(stride4[j]);
    for (int tx = 0; tx < tw; tx += 16) {
        const int cnt = tw - tx < 16 ? tw - tx : 16, col = 4 * tx - pad_l;
        const int nq = (4 * cnt + 2 + 15) / 16; /* s vectors the block reads: s[0 .. 4 cnt + 2) */
        const __mmask16 m = cnn_lanes16(cnt);
        __m512 s[6][5]; /* s[a][q] = columns 16 q .. 16 q + 15 of row a of B^T d */
        for (int q = 0; q < 5; q++) {
            __m512 r[6];
            if (q < nq) {
                const __mmask16 mq = cols_mask(col + 16 * q, w);
                WINO_UNROLL
                for (int i = 0; i < 6; i++)
                    r[i] = load_cols(x[i], col + 16 * q, mq);
                bt6_16(r);
            } else {
                WINO_UNROLL
                for (int i = 0; i < 6; i++)
                    r[i] = _mm512_setzero_ps();
            }
            WINO_UNROLL
            for (int a = 0; a < 6; a++)
                s[a][q] = r[a];
        }
        for (int a = 0; a < 6; a++) { /* V_k, k = 6 a + j */
            __m512 d[6];
            WINO_UNROLL
            for (int j = 0; j < 4; j++)
                d[j] = _mm512_mask_blend_ps((__mmask16)0xFF00,
                                            _mm512_permutex2var_ps(s[a][0], idx[j], s[a][1]),
                                            _mm512_permutex2var_ps(s[a][2], idx[j], s[a][3]));
            d[4] = _mm512_permutex2var_ps(d[0], next0, s[a][4]);
            d[5] = _mm512_permutex2var_ps(d[1], next1, s[a][4]);
            bt6_16(d);
            float *dk = dst + (size_t)(6 * a) * kstride + tx;
            WINO_UNROLL
            for (int j = 0; j < 6; j++)
                _mm512_mask_storeu_ps(dk + (size_t)j * kstride, m, d[j]);
        }
    }
}

/* Lane indices for tile rows 2 q and 2 q + 1 of a group (tw <= 4 tiles each, lanes
 * [2 q tw, 2 q tw + 2 tw)): base picks column 4 l' of the first row (source a) or of the
 * second (source b, + 16); next0 / next1 pick lane l + 1, or at a row's last tile lane
 * 16 + (0 | 1) / 16 + (2 | 3) of the vector holding both rows' columns 4 tw, 4 tw + 1. */
struct wino4_pair_idx {
    __m512i base, next0, next1;
};

CNN_AVX512_KERNEL static inline struct wino4_pair_idx wino4_pair_idx(int q, int tw)
{
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i l = _mm512_sub_epi32(iota, _mm512_set1_epi32(2 * q * tw));
    const __mmask16 second = _mm512_cmpge_epi32_mask(l, _mm512_set1_epi32(tw));
    const __m512i four_l = _mm512_slli_epi32(l, 2);
    struct wino4_pair_idx x;
    x.base = _mm512_mask_add_epi32(four_l, second, four_l, _mm512_set1_epi32(16 - 4 * tw));
    const __mmask16 last0 = _mm512_cmpeq_epi32_mask(l, _mm512_set1_epi32(tw - 1));
    const __mmask16 last1 = _mm512_cmpeq_epi32_mask(l, _mm512_set1_epi32(2 * tw - 1));
    const __m512i up = _mm512_add_epi32(iota, _mm512_set1_epi32(1));
    x.next0 = _mm512_mask_mov_epi32(_mm512_mask_mov_epi32(up, last0, _mm512_set1_epi32(16)), last1,
                                    _mm512_set1_epi32(18));
    x.next1 = _mm512_mask_mov_epi32(_mm512_mask_mov_epi32(up, last0, _mm512_set1_epi32(17)), last1,
                                    _mm512_set1_epi32(19));
    return x;
}

/* d_0..d_5 of tile rows r0, r1 (row a of B^T d, columns 0..15 in lo, 16..31 in hi) in the
 * pair's lanes. */
CNN_AVX512_KERNEL static inline void wino4_pair_d(__m512 d[6], const struct wino4_pair_idx *x,
                                                  __m512 lo0, __m512 hi0, __m512 lo1, __m512 hi1,
                                                  int tw)
{
    WINO_UNROLL
    for (int j = 0; j < 4; j++)
        d[j] = _mm512_permutex2var_ps(lo0, _mm512_add_epi32(x->base, _mm512_set1_epi32(j)), lo1);
    const int e = (4 * tw) & 15; /* columns 4 tw, 4 tw + 1: in hi when tw = 4 */
    const __m512i ei = _mm512_setr_epi32(e, e + 1, 16 + e, 17 + e, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m512 ex = 4 * tw >= 16 ? _mm512_permutex2var_ps(hi0, ei, hi1)
                                   : _mm512_permutex2var_ps(lo0, ei, lo1);
    d[4] = _mm512_permutex2var_ps(d[0], x->next0, ex);
    d[5] = _mm512_permutex2var_ps(d[1], x->next1, ex);
}

CNN_AVX512_KERNEL void cnn_wino4_input_rows_avx512(float *dst, size_t kstride,
                                                   const float *const x[][6], int g, int w,
                                                   int pad_l, int tw)
{
    /* Up to 4 tile rows of tw <= 4 tiles: a row's columns s[0 .. 4 tw + 2) fit lo (and hi's
     * first two at tw = 4); pairs of rows meet in one vector by two-source permutes, the
     * second pair blended in above lane 2 tw. */
    const struct wino4_pair_idx p0 = wino4_pair_idx(0, tw), p1 = wino4_pair_idx(1, tw);
    const __mmask16 upper = (__mmask16)~cnn_lanes16(2 * tw), m = cnn_lanes16(g * tw);
    const __mmask16 m_lo = cols_mask(-pad_l, w);
    const __mmask16 m_hi = 4 * tw + 2 > 16 ? cols_mask(16 - pad_l, w) : 0;
    __m512 lo[4][6], hi[4][6]; /* [tile row][a] (zero past g) */
    for (int r = 0; r < 4; r++) {
        __m512 v[6], u[6];
        WINO_UNROLL
        for (int i = 0; i < 6; i++) {
            v[i] = r < g ? load_cols(x[r][i], -pad_l, m_lo) : _mm512_setzero_ps();
            u[i] = r < g && m_hi ? load_cols(x[r][i], 16 - pad_l, m_hi) : _mm512_setzero_ps();
        }
        bt6_16(v);
        bt6_16(u);
        WINO_UNROLL
        for (int a = 0; a < 6; a++)
            lo[r][a] = v[a], hi[r][a] = u[a];
    }
    for (int a = 0; a < 6; a++) { /* V_k, k = 6 a + j */
        __m512 d[6];
        wino4_pair_d(d, &p0, lo[0][a], hi[0][a], lo[1][a], hi[1][a], tw);
        if (g > 2) {
            __m512 e[6];
            wino4_pair_d(e, &p1, lo[2][a], hi[2][a], lo[3][a], hi[3][a], tw);
            WINO_UNROLL
            for (int j = 0; j < 6; j++)
                d[j] = _mm512_mask_blend_ps(upper, d[j], e[j]);
        }
        bt6_16(d);
        float *dk = dst + (size_t)(6 * a) * kstride;
        WINO_UNROLL
        for (int j = 0; j < 6; j++)
            _mm512_mask_storeu_ps(dk + (size_t)j * kstride, m, d[j]);
    }
}

/* A^T m along one axis (F(4x4)), the same operations as at6() in layer_winograd4.c:
 * m0..m5 -> (m0 + m1 + m2 + m3 + m4, (m1 - m2) + 2 (m3 - m4), (m1 + m2) + 4 (m3 + m4),
 * (m1 - m2) + 8 (m3 - m4) + m5). */
CNN_AVX512_KERNEL static inline void at6_16(__m512 y[4], const __m512 m[6])
{
    const __m512 s12 = _mm512_add_ps(m[1], m[2]), d12 = _mm512_sub_ps(m[1], m[2]);
    const __m512 s34 = _mm512_add_ps(m[3], m[4]), d34 = _mm512_sub_ps(m[3], m[4]);
    y[0] = _mm512_add_ps(_mm512_add_ps(m[0], s12), s34);
    y[1] = _mm512_add_ps(d12, _mm512_mul_ps(_mm512_set1_ps(2.0f), d34));
    y[2] = _mm512_add_ps(s12, _mm512_mul_ps(_mm512_set1_ps(4.0f), s34));
    y[3] = _mm512_add_ps(_mm512_add_ps(d12, _mm512_mul_ps(_mm512_set1_ps(8.0f), d34)), m[5]);
}

/* Output columns [0, nx) of a block (nx <= 64): column 4 l + q is lane lane + l of y[q];
 * + res (or NULL), ReLU when relu.  lane > 0 only with nx <= 32. */
CNN_AVX512_KERNEL static inline void store_row4_16(float *out, const float *res, const __m512 y[4],
                                                   int nx, int relu, int lane)
{
    const __m512i pair_lo = pair_index(lane), pair_hi = pair_index(8);
    const __m512i quad_lo =
        _mm512_setr_epi32(0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23);
    const __m512i quad_hi =
        _mm512_setr_epi32(8, 9, 24, 25, 10, 11, 26, 27, 12, 13, 28, 29, 14, 15, 30, 31);
    const __m512 zero = _mm512_setzero_ps();
    for (int h = 0; 32 * h < nx; h++) { /* tiles 8 h .. 8 h + 7: columns 32 h .. 32 h + 31 */
        const __m512i pair = h ? pair_hi : pair_lo;
        const __m512 p01 = _mm512_permutex2var_ps(y[0], pair, y[1]);
        const __m512 p23 = _mm512_permutex2var_ps(y[2], pair, y[3]);
        for (int g = 0; g < 2 && 32 * h + 16 * g < nx; g++) {
            const int c0 = 32 * h + 16 * g;
            const __mmask16 mk = cnn_lanes16(nx - c0);
            __m512 v = _mm512_permutex2var_ps(p01, g ? quad_hi : quad_lo, p23);
            if (res) /* (conv + bias) + res: the order of the unfused add */
                v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mk, res + c0));
            if (relu) /* lanes <= 0 and NaN become +0, as wino_relu4() */
                v = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, zero, _CMP_GT_OQ), v);
            _mm512_mask_storeu_ps(out + c0, mk, v);
        }
    }
}

/* A^T m A of the tiles in lanes m of M at src (planes kstride apart): y[q][p] is output row
 * p, column q of each tile. */
CNN_AVX512_KERNEL static inline void wino4_y(__m512 y[4][4], const float *src, size_t kstride,
                                             __mmask16 m)
{
    __m512 f[4][6]; /* f[q][a] = (m A)[a][q], per row a of m */
    for (int a = 0; a < 6; a++) {
        __m512 ma[6], fa[4];
        WINO_UNROLL
        for (int j = 0; j < 6; j++)
            ma[j] = _mm512_maskz_loadu_ps(m, src + (size_t)(6 * a + j) * kstride);
        at6_16(fa, ma);
        WINO_UNROLL
        for (int q = 0; q < 4; q++)
            f[q][a] = fa[q];
    }
    WINO_UNROLL
    for (int q = 0; q < 4; q++)
        at6_16(y[q], f[q]);
}

CNN_AVX512_KERNEL void cnn_wino4_output_row_avx512(float *out, const float *res, size_t ow,
                                                   int rows, const float *src, size_t kstride,
                                                   float bias, int relu, int tw)
{
    const __m512 b = _mm512_set1_ps(bias);
    for (int tx = 0; tx < tw; tx += 16) {
        __m512 y[4][4];
        wino4_y(y, src + tx, kstride, cnn_lanes16(tw - tx));
        const int nx = (int)ow - 4 * tx < 64 ? (int)ow - 4 * tx : 64;
        for (int pr = 0; pr < rows; pr++) {
            const __m512 row[4] = {_mm512_add_ps(y[0][pr], b), _mm512_add_ps(y[1][pr], b),
                                   _mm512_add_ps(y[2][pr], b), _mm512_add_ps(y[3][pr], b)};
            const size_t o = (size_t)pr * ow + 4 * (size_t)tx;
            store_row4_16(out + o, res ? res + o : NULL, row, nx, relu, 0);
        }
    }
}

CNN_AVX512_KERNEL void cnn_wino4_output_rows_avx512(float *const out[], const float *const res[],
                                                    const int rows[], int g, size_t ow,
                                                    const float *src, size_t kstride, float bias,
                                                    int relu, int tw)
{
    /* g tile rows of tw tiles each (g tw <= 16, tw <= 8), consecutive in M: tile row j in
     * lanes [j tw, (j + 1) tw) of every vector. */
    const __m512 b = _mm512_set1_ps(bias);
    __m512 y[4][4];
    wino4_y(y, src, kstride, cnn_lanes16(g * tw));
    for (int j = 0; j < g; j++)
        for (int pr = 0; pr < rows[j]; pr++) {
            const __m512 row[4] = {_mm512_add_ps(y[0][pr], b), _mm512_add_ps(y[1][pr], b),
                                   _mm512_add_ps(y[2][pr], b), _mm512_add_ps(y[3][pr], b)};
            const size_t o = (size_t)pr * ow;
            store_row4_16(out[j] + o, res[j] ? res[j] + o : NULL, row, (int)ow, relu, j * tw);
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

void cnn_wino2_input_rows_avx512(float *dst, size_t kstride, const float *const x[][4], int g,
                                 int w, int pad_l, int tw)
{
    (void)dst, (void)kstride, (void)x, (void)g, (void)w, (void)pad_l, (void)tw;
}

void cnn_wino4_input_rows_avx512(float *dst, size_t kstride, const float *const x[][6], int g,
                                 int w, int pad_l, int tw)
{
    (void)dst, (void)kstride, (void)x, (void)g, (void)w, (void)pad_l, (void)tw;
}

void cnn_wino2_output_rows_avx512(float *o[][2], const float *res[][2], int g,
                                  const float *src, size_t kstride, float bias, int relu, int tw,
                                  int ow)
{
    (void)o, (void)res, (void)g, (void)src, (void)kstride, (void)bias, (void)relu, (void)tw,
        (void)ow;
}

void cnn_wino4_output_rows_avx512(float *const out[], const float *const res[], const int rows[],
                                  int g, size_t ow, const float *src, size_t kstride, float bias,
                                  int relu, int tw)
{
    (void)out, (void)res, (void)rows, (void)g, (void)ow, (void)src, (void)kstride, (void)bias,
        (void)relu, (void)tw;
}

void cnn_wino4_input_row_avx512(float *dst, size_t kstride, const float *const x[6], int w,
                                int pad_l, int tw)
{
    (void)dst, (void)kstride, (void)x, (void)w, (void)pad_l, (void)tw;
}

void cnn_wino4_output_row_avx512(float *out, const float *res, size_t ow, int rows,
                                 const float *src, size_t kstride, float bias, int relu, int tw)
{
    (void)out, (void)res, (void)ow, (void)rows, (void)src, (void)kstride, (void)bias, (void)relu,
        (void)tw;
}

#endif
