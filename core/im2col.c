/* im2col / col2im over a (C, N, H, W) batch: the unrolled matrix a convolution multiplies.
 * Per col row (c, ky, kx) and output row (n, oy) the valid ox range is computed once, so the
 * inner loops are a zero fill, a memcpy (stride 1) or a strided copy, with no bounds checks. */
#include "im2col.h"

#include <stddef.h>
#include <string.h>

/* Output index range [*lo, *hi) whose input coordinate o*s - pad + off lies in [0, in). */
static void valid_range(int out, int in, int s, int pad, int off, int *lo, int *hi)
{
    int start = off - pad; /* input coordinate of output 0 */
    int l = start >= 0 ? 0 : (-start + s - 1) / s;
    int h = start > in - 1 ? 0 : (in - 1 - start) / s + 1;
    if (h > out)
        h = out;
    if (l > h)
        l = h;
    *lo = l;
    *hi = h;
}

/* One col row segment for output grid row (n, oy): OW values of channel plane src_n. */
static inline void copy_row(float *dst, const float *src_n, int oy, int oy_lo, int oy_hi,
                            int ox_lo, int ox_hi, int ix0, const struct cnn_conv2d *p,
                            int ky)
{
    const int OW = p->ow, sw = p->sw;
    if (oy < oy_lo || oy >= oy_hi) {
        memset(dst, 0, sizeof(float) * (size_t)OW);
        return;
    }
    const int iy = oy * p->sh - p->pad_t + ky * p->dh;
    const float *src = src_n + (size_t)iy * p->w + ix0;
    for (int ox = 0; ox < ox_lo; ox++)
        dst[ox] = 0.0f;
    float *d = dst + ox_lo;
    const int nvalid = ox_hi - ox_lo;
    if (sw == 1) {
        memcpy(d, src, sizeof(float) * (size_t)nvalid);
    } else {
        for (int i = 0; i < nvalid; i++)
            d[i] = src[(size_t)i * sw];
    }
    for (int ox = ox_hi; ox < OW; ox++)
        dst[ox] = 0.0f;
}

void cnn_im2col_rows(float *col, const float *inp, int C, const struct cnn_conv2d *p, int N,
                     int r0, int r1)
{
    const int H = p->h, W = p->w, OH = p->oh, OW = p->ow, sw = p->sw;
    const size_t hw = (size_t)H * W, chan = (size_t)N * hw;
    float *dst = col;
    for (int c = 0; c < C; c++) {
        const float *src_c = inp + (size_t)c * chan;
        for (int ky = 0; ky < p->kh; ky++) {
            int oy_lo, oy_hi;
            valid_range(OH, H, p->sh, p->pad_t, ky * p->dh, &oy_lo, &oy_hi);
            for (int kx = 0; kx < p->kw; kx++) {
                int ox_lo, ox_hi;
                valid_range(OW, W, sw, p->pad_l, kx * p->dw, &ox_lo, &ox_hi);
                const int ix0 = ox_lo * sw - p->pad_l + kx * p->dw;
                int n = r0 / OH, oy = r0 % OH;
                for (int r = r0; r < r1; r++) {
                    copy_row(dst, src_c + (size_t)n * hw, oy, oy_lo, oy_hi, ox_lo, ox_hi, ix0,
                             p, ky);
                    dst += OW;
                    if (++oy == OH) {
                        oy = 0;
                        n++;
                    }
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
            valid_range(OH, H, p->sh, p->pad_t, ky * p->dh, &oy_lo, &oy_hi);
            for (int kx = 0; kx < p->kw; kx++) {
                int ox_lo, ox_hi;
                valid_range(OW, W, sw, p->pad_l, kx * p->dw, &ox_lo, &ox_hi);
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
