/* Max, average and global average pooling backward over (C, N, H, W) planes, with the
 * window geometry of layer_pool.c (asymmetric padding, ceil mode, count_include_pad). */
#include "grad.h"

#include <stddef.h>

/* Clipped input range [*lo, *hi) of window o and its size counting padding but not the
 * ceil-mode overhang beyond the padded input; the same rule as layer_pool.c. */
static int window(int o, int s, int pad_lo, int pad_hi, int k, int in, int *lo, int *hi)
{
    int start = o * s - pad_lo;
    int end = start + k;
    if (end > in + pad_hi)
        end = in + pad_hi;
    int padded = end - start;
    *lo = start < 0 ? 0 : start;
    *hi = end > in ? in : end;
    return padded;
}

void cnn_maxpool_backward(float *dinp, const float *dout, const float *inp,
                          const struct cnn_pool2d *p, int N)
{
    const size_t planes = (size_t)p->c * N, in_plane = (size_t)p->h * p->w;
    const size_t out_plane = (size_t)p->oh * p->ow;
    for (size_t pl = 0; pl < planes; pl++) {
        const float *in = inp + pl * in_plane;
        const float *g = dout + pl * out_plane;
        float *d = dinp + pl * in_plane;
        for (int oy = 0; oy < p->oh; oy++) {
            int y0, y1;
            window(oy, p->sh, p->pad_t, p->pad_b, p->kh, p->h, &y0, &y1);
            for (int ox = 0; ox < p->ow; ox++) {
                int x0, x1;
                window(ox, p->sw, p->pad_l, p->pad_r, p->kw, p->w, &x0, &x1);
                /* Shape rules (pad < kernel) guarantee a non-empty window. */
                size_t best = (size_t)y0 * p->w + x0;
                float m = in[best];
                for (int y = y0; y < y1; y++) {
                    const size_t row = (size_t)y * p->w;
                    for (int x = x0; x < x1; x++) {
                        const int gt = in[row + x] > m; /* strict: the first maximum wins */
                        m = gt ? in[row + x] : m;
                        best = gt ? row + x : best;
                    }
                }
                d[best] += *g++;
            }
        }
    }
}

void cnn_avgpool_backward(float *dinp, const float *dout, const struct cnn_pool2d *p, int N)
{
    const size_t planes = (size_t)p->c * N, in_plane = (size_t)p->h * p->w;
    const size_t out_plane = (size_t)p->oh * p->ow;
    for (size_t pl = 0; pl < planes; pl++) {
        const float *g = dout + pl * out_plane;
        float *d = dinp + pl * in_plane;
        for (int oy = 0; oy < p->oh; oy++) {
            int y0, y1;
            int ph = window(oy, p->sh, p->pad_t, p->pad_b, p->kh, p->h, &y0, &y1);
            for (int ox = 0; ox < p->ow; ox++) {
                int x0, x1;
                int pw = window(ox, p->sw, p->pad_l, p->pad_r, p->kw, p->w, &x0, &x1);
                int count = p->count_include_pad ? ph * pw : (y1 - y0) * (x1 - x0);
                const float v = count > 0 ? *g / (float)count : 0.0f;
                g++;
                for (int y = y0; y < y1; y++) {
                    float *row = d + (size_t)y * p->w;
                    for (int x = x0; x < x1; x++)
                        row[x] += v;
                }
            }
        }
    }
}

void cnn_global_avgpool_backward(float *dinp, const float *dout, size_t planes, size_t hw)
{
    if (hw == 0)
        return;
    for (size_t pl = 0; pl < planes; pl++) {
        const float v = dout[pl] / (float)hw;
        float *d = dinp + pl * hw;
        for (size_t i = 0; i < hw; i++)
            d[i] += v;
    }
}
