/* im2col / col2im over a (C, N, H, W) batch: the unrolled matrix a convolution multiplies.
 * Per col row (c, ky, kx) and output row (n, oy) the valid ox range is computed once, so the
 * inner loops are a zero fill, a memcpy (stride 1) or a strided copy, with no bounds checks. */
#include "im2col.h"

#include <stddef.h>
#include <string.h>

typedef float v4f __attribute__((vector_size(16)));

/* d[i] = src[2 * i] for n values: pairs of loads and one shuffle per 4 outputs, since -O2
 * leaves strided gathers scalar (the 7x7 stride-2 stem of ResNet spends its im2col here). */
static void gather_stride2(float *restrict d, const float *restrict src, int n)
{
    int i = 0;
    for (; i + 4 <= n && 2 * i + 8 <= 2 * n - 1; i += 4) {
        v4f a, b;
        memcpy(&a, src + 2 * i, sizeof a);
        memcpy(&b, src + 2 * i + 4, sizeof b);
        v4f r = __builtin_shufflevector(a, b, 0, 2, 4, 6);
        memcpy(d + i, &r, sizeof r);
    }
    for (; i < n; i++)
        d[i] = src[2 * i];
}

/* dst[i] = src[i]: short rows (LeNet's 8-24 floats) are dominated by the memcpy call, so
 * they are copied four lanes at a time inline; long rows go to memcpy. */
static inline void copy_floats(float *restrict dst, const float *restrict src, int n)
{
    if (n >= 64) {
        memcpy(dst, src, sizeof(float) * (size_t)n);
        return;
    }
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        v4f v;
        memcpy(&v, src + i, sizeof v);
        memcpy(dst + i, &v, sizeof v);
    }
    for (; i < n; i++)
        dst[i] = src[i];
}

/* One col row segment for output grid row oy (inside the valid range of this ky):
 * OW values from channel plane src_n, zero where the window hangs over the padding. */
static inline void copy_row(float *dst, const float *src_n, int oy, int ox_lo, int ox_hi,
                            int ix0, const struct cnn_conv2d *p, int ky)
{
    const int OW = p->ow, sw = p->sw;
    const int iy = oy * p->sh - p->pad_t + ky * p->dh;
    const float *src = src_n + (size_t)iy * p->w + ix0;
    for (int ox = 0; ox < ox_lo; ox++)
        dst[ox] = 0.0f;
    float *d = dst + ox_lo;
    const int nvalid = ox_hi - ox_lo;
    if (sw == 1) {
        copy_floats(d, src, nvalid);
    } else if (sw == 2) {
        gather_stride2(d, src, nvalid);
    } else {
        for (int i = 0; i < nvalid; i++)
            d[i] = src[(size_t)i * sw];
    }
    for (int ox = ox_hi; ox < OW; ox++)
        dst[ox] = 0.0f;
}

/* Valid rows [y0, y1) of one image when stride is 1 and OW == W: consecutive output rows
 * read consecutive input rows, so the whole run is one shifted memcpy of the plane; the
 * values that wrapped in from the neighbouring row at the left/right edges are then the
 * padding positions, and are zeroed. Reads stay inside the plane. */
static void copy_rows_block(float *dst, const float *src_n, int y0, int y1, int ox_lo,
                            int ox_hi, const struct cnn_conv2d *p, int ky, int kx)
{
    const int W = p->w;
    const long plane = (long)p->h * W;
    const long start = (long)(y0 - p->pad_t + ky * p->dh) * W + (kx * p->dw - p->pad_l);
    long t0 = 0, t1 = (long)(y1 - y0) * W;
    if (start + t0 < 0)
        t0 = -start;
    if (start + t1 > plane)
        t1 = plane - start;
    if (t1 > t0)
        memcpy(dst + t0, src_n + start + t0, sizeof(float) * (size_t)(t1 - t0));
    for (int y = 0; y < y1 - y0; y++) {
        float *row = dst + (size_t)y * W;
        for (int ox = 0; ox < ox_lo; ox++)
            row[ox] = 0.0f;
        for (int ox = ox_hi; ox < W; ox++)
            row[ox] = 0.0f;
    }
    /* positions clipped off the plane ends are edge positions of the first/last row */
}

/* Stride 1 without padding (LeNet-style "valid" convs): every window is inside the
 * input, so each col row segment is a plain copy; the loop keeps no bounds logic at all,
 * which matters when rows are 8 floats long. */
static void im2col_valid_s1(float *dst, const float *inp, int C, const struct cnn_conv2d *p,
                            int N, int r0, int r1)
{
    const int W = p->w, OH = p->oh, OW = p->ow;
    const size_t hw = (size_t)p->h * W, chan = (size_t)N * hw;
    for (int c = 0; c < C; c++)
        for (int ky = 0; ky < p->kh; ky++)
            for (int kx = 0; kx < p->kw; kx++) {
                const float *base = inp + (size_t)c * chan + (size_t)ky * p->dh * W + kx * p->dw;
                int n = r0 / OH, oy = r0 % OH;
                const float *src = base + (size_t)n * hw + (size_t)oy * W;
                for (int r = r0; r < r1; r++) {
                    copy_floats(dst, src, OW);
                    dst += OW;
                    src += W;
                    if (++oy == OH) {
                        oy = 0;
                        src += hw - (size_t)OH * W;
                    }
                }
            }
}

void cnn_im2col_rows(float *col, const float *inp, int C, const struct cnn_conv2d *p, int N,
                     int r0, int r1)
{
    if (p->sh == 1 && p->sw == 1 && p->pad_t == 0 && p->pad_l == 0 && p->pad_b == 0 &&
        p->pad_r == 0) {
        im2col_valid_s1(col, inp, C, p, N, r0, r1);
        return;
    }
    const int H = p->h, W = p->w, OH = p->oh, OW = p->ow, sw = p->sw;
    const size_t hw = (size_t)H * W, chan = (size_t)N * hw;
    const int block = p->sh == 1 && sw == 1 && OW == W;
    float *dst = col;
    for (int c = 0; c < C; c++) {
        const float *src_c = inp + (size_t)c * chan;
        for (int ky = 0; ky < p->kh; ky++) {
            int oy_lo, oy_hi;
            cnn_conv_valid_range(OH, H, p->sh, p->pad_t, ky * p->dh, &oy_lo, &oy_hi);
            for (int kx = 0; kx < p->kw; kx++) {
                int ox_lo, ox_hi;
                cnn_conv_valid_range(OW, W, sw, p->pad_l, kx * p->dw, &ox_lo, &ox_hi);
                const int ix0 = ox_lo * sw - p->pad_l + kx * p->dw;
                for (int r = r0; r < r1;) { /* one image's part of the chunk at a time */
                    const int n = r / OH, ya = r % OH;
                    const int yb = (r1 - n * OH) < OH ? r1 - n * OH : OH;
                    const float *src_n = src_c + (size_t)n * hw;
                    const int v0 = ya > oy_lo ? ya : oy_lo, v1 = yb < oy_hi ? yb : oy_hi;
                    if (v0 >= v1) {
                        memset(dst, 0, sizeof(float) * (size_t)(yb - ya) * OW);
                    } else {
                        memset(dst, 0, sizeof(float) * (size_t)(v0 - ya) * OW);
                        float *dv = dst + (size_t)(v0 - ya) * OW;
                        if (block) {
                            copy_rows_block(dv, src_n, v0, v1, ox_lo, ox_hi, p, ky, kx);
                        } else {
                            for (int oy = v0; oy < v1; oy++)
                                copy_row(dv + (size_t)(oy - v0) * OW, src_n, oy, ox_lo, ox_hi,
                                         ix0, p, ky);
                        }
                        memset(dst + (size_t)(v1 - ya) * OW, 0,
                               sizeof(float) * (size_t)(yb - v1) * OW);
                    }
                    dst += (size_t)(yb - ya) * OW;
                    r += yb - ya;
                }
            }
        }
    }
}

void cnn_im2col(float *col, const float *inp, int C, const struct cnn_conv2d *p, int N)
{
    cnn_im2col_rows(col, inp, C, p, N, 0, N * p->oh);
}

void cnn_col2im(float *dinp, const float *col, int C, const struct cnn_conv2d *p, int N)
{
    const int H = p->h, W = p->w, OH = p->oh, OW = p->ow, sw = p->sw;
    const size_t hw = (size_t)H * W, chan = (size_t)N * hw, plane_out = (size_t)OH * OW;
    const float *src = col;
    for (int c = 0; c < C; c++) {
        float *dst_c = dinp + (size_t)c * chan;
        for (int ky = 0; ky < p->kh; ky++) {
            int oy_lo, oy_hi;
            cnn_conv_valid_range(OH, H, p->sh, p->pad_t, ky * p->dh, &oy_lo, &oy_hi);
            for (int kx = 0; kx < p->kw; kx++) {
                int ox_lo, ox_hi;
                cnn_conv_valid_range(OW, W, sw, p->pad_l, kx * p->dw, &ox_lo, &ox_hi);
                const int ix0 = ox_lo * sw - p->pad_l + kx * p->dw;
                const int nvalid = ox_hi - ox_lo;
                for (int n = 0; n < N; n++) {
                    float *dst_n = dst_c + (size_t)n * hw;
                    for (int oy = oy_lo; oy < oy_hi; oy++) {
                        const int iy = oy * p->sh - p->pad_t + ky * p->dh;
                        float *d = dst_n + (size_t)iy * W + ix0;
                        const float *s = src + (size_t)oy * OW + ox_lo;
                        for (int i = 0; i < nvalid; i++)
                            d[(size_t)i * sw] += s[i];
                    }
                    src += plane_out;
                }
            }
        }
    }
}
