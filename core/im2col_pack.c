/* The im2col matrix as a cnn_gemm_b_packer (im2col.h): the packed GEMM's blocks of B written
 * straight from the input, in its strips, with no im2col matrix in between -- which a
 * strided conv otherwise writes (a gather per row of output) and the driver then reads back
 * to pack.  On AVX-512, 8 columns of a strip row (8 outputs of at most two output rows) take
 * one or two loads of 16 input floats and a permute each, for stride 1 or 2. */
#include "im2col.h"

#include "avx512.h"

#include <stddef.h>
#include <string.h>

int cnn_im2col_packs_fast(const struct cnn_conv2d *p)
{
    /* 8 columns then span at most two output rows, and 8 strided taps 16 floats */
    return cnn_cpu_avx512() && (p->sw == 1 || p->sw == 2) && p->ow >= 7;
}

/* Element (k, column) of the im2col matrix of output rows from s->r0 on. */
static float im2col_at(const struct cnn_im2col_source *s, int k, size_t column)
{
    const struct cnn_conv2d *p = s->p;
    const int kk = k % (p->kh * p->kw), c = k / (p->kh * p->kw);
    const size_t g = (size_t)s->r0 * p->ow + column, plane = (size_t)p->oh * p->ow;
    const int img = (int)(g / plane), oy = (int)(g % plane) / p->ow, ox = (int)(g % plane) % p->ow;
    const int iy = oy * p->sh - p->pad_t + kk / p->kw * p->dh;
    const int ix = ox * p->sw - p->pad_l + kk % p->kw * p->dw;
    if (iy < 0 || iy >= p->h || ix < 0 || ix >= p->w)
        return 0.0f;
    return s->inp[(((size_t)c * s->n + img) * p->h + iy) * p->w + ix];
}

/* Any shape and width, an element at a time: where the vector path does not apply. */
static void pack_plain(const struct cnn_im2col_source *s, float *dst, int k0, int kc, int n0,
                       int nc, int width)
{
    for (int s0 = 0; s0 < nc; s0 += width)
        for (int k = 0; k < kc; k++)
            for (int j = 0; j < width; j++)
                *dst++ = s0 + j < nc ? im2col_at(s, k0 + k, (size_t)n0 + s0 + j) : 0.0f;
}

#if defined(__x86_64__)

/* One output row's run of the 8 columns of a group: lanes [lane, lane + len), outputs
 * (img, oy, ox0..). */
struct run {
    int lane, len, img, oy, ox0;
};

/* Where run r reads tap (ky, kx) of one channel: 16 floats from off (under ld), lane l of the
 * result from idx[l] of them (under lanes). */
struct tap {
    ptrdiff_t off;
    __mmask16 ld, lanes;
    __m512i idx;
};

CNN_AVX512_KERNEL static struct tap tap_of(const struct cnn_conv2d *p, const struct run *r, int ky,
                                           int kx)
{
    struct tap t = {0, 0, 0, _mm512_setzero_si512()};
    const int iy = r->oy * p->sh - p->pad_t + ky * p->dh;
    const int ix0 = r->ox0 * p->sw - p->pad_l + kx * p->dw; /* input column of lane r->lane */
    const int base = ix0 < 0 ? 0 : ix0;
    if (iy < 0 || iy >= p->h || base >= p->w)
        return t;
    const __m512i step =
        _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                           _mm512_set1_epi32(p->sw));
    /* input column of each lane l: ix0 + (l - lane) * sw */
    const __m512i ix = _mm512_add_epi32(step, _mm512_set1_epi32(ix0 - r->lane * p->sw));
    const __mmask16 in_run = (__mmask16)(((1u << r->len) - 1u) << r->lane);
    t.lanes = in_run & _mm512_cmpge_epi32_mask(ix, _mm512_setzero_si512()) &
              _mm512_cmplt_epi32_mask(ix, _mm512_set1_epi32(p->w));
    t.idx = _mm512_sub_epi32(ix, _mm512_set1_epi32(base));
    t.ld = cnn_lanes16(p->w - base);
    t.off = ((ptrdiff_t)r->img * p->h + iy) * p->w + base;
    return t;
}

/* Group g (8 columns from block column col) of every strip row k0..k0 + kc - 1, at dst with
 * rows width floats apart. */
CNN_AVX512_KERNEL static void pack_group(const struct cnn_im2col_source *s, float *dst, int k0,
                                         int kc, size_t col, int count, int width)
{
    const struct cnn_conv2d *p = s->p;
    const int taps = p->kh * p->kw;
    if (count <= 0) {
        for (int k = 0; k < kc; k++)
            _mm256_storeu_ps(dst + (size_t)k * width, _mm256_setzero_ps());
        return;
    }
    struct run runs[2];
    int nruns = 0;
    const size_t plane = (size_t)p->oh * p->ow, g0 = (size_t)s->r0 * p->ow + col;
    for (int j = 0; j < count;) {
        const size_t g = g0 + j;
        const int img = (int)(g / plane), oy = (int)(g % plane) / p->ow;
        const int ox = (int)(g % plane) % p->ow;
        const int len = p->ow - ox < count - j ? p->ow - ox : count - j;
        runs[nruns++] = (struct run){j, len, img, oy, ox};
        j += len;
    }
    const size_t chan = (size_t)s->n * p->h * p->w;
    for (int kk = 0; kk < taps; kk++) {
        const struct tap a = tap_of(p, &runs[0], kk / p->kw, kk % p->kw);
        const struct tap b = nruns > 1 ? tap_of(p, &runs[1], kk / p->kw, kk % p->kw) : a;
        /* the rows k = c * taps + kk of [k0, k0 + kc) */
        const int c_lo = k0 <= kk ? 0 : (k0 - kk + taps - 1) / taps;
        for (int c = c_lo, k = c_lo * taps + kk; k < k0 + kc; c++, k += taps) {
            const float *in = s->inp + (size_t)c * chan;
            __m512 v = _mm512_maskz_permutexvar_ps(a.lanes, a.idx,
                                                   _mm512_maskz_loadu_ps(a.ld, in + a.off));
            if (nruns > 1)
                v = _mm512_mask_permutexvar_ps(v, b.lanes, b.idx,
                                               _mm512_maskz_loadu_ps(b.ld, in + b.off));
            _mm256_storeu_ps(dst + (size_t)(k - k0) * width, _mm512_castps512_ps256(v));
        }
    }
}

static void pack_fast(const struct cnn_im2col_source *s, float *dst, int k0, int kc, int n0, int nc,
                      int width)
{
    for (int s0 = 0; s0 < nc; s0 += width, dst += (size_t)kc * width)
        for (int g = 0; g < width; g += 8)
            pack_group(s, dst + g, k0, kc, (size_t)n0 + s0 + g, nc - s0 - g < 8 ? nc - s0 - g : 8,
                       width);
}

#else

static void pack_fast(const struct cnn_im2col_source *s, float *dst, int k0, int kc, int n0, int nc,
                      int width)
{
    pack_plain(s, dst, k0, kc, n0, nc, width);
}

#endif

void cnn_im2col_pack(const void *ctx, float *dst, int k0, int kc, int n0, int nc, int width)
{
    const struct cnn_im2col_source *s = ctx;
    if (width % 8 == 0 && cnn_im2col_packs_fast(s->p))
        pack_fast(s, dst, k0, kc, n0, nc, width);
    else
        pack_plain(s, dst, k0, kc, n0, nc, width);
}
