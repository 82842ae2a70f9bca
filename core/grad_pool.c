/* Max, average and global average pooling backward over (C, N, H, W) planes, with the
 * window geometry of layer_pool.c (asymmetric padding, ceil mode, count_include_pad). */
#include "grad.h"
#include "grad_simd.h"

#include <stddef.h>
#include <string.h>

/* Gradients of 4 windows of a 2x2 pool: x0, x1 hold the 8 floats of the top row, y0, y1
 * the bottom row, gv the 4 output gradients.  o0, o1 (top) and o2, o3 (bottom) receive
 * gv at the first maximum of each window in row-major order, 0 elsewhere.  No branches:
 * the max first, then masks for the first position equal to it. */
static inline void max2x2_grad4(grad_v4f *o0, grad_v4f *o1, grad_v4f *o2, grad_v4f *o3, grad_v4f x0,
                                grad_v4f x1, grad_v4f y0, grad_v4f y1, grad_v4f gv)
{
    const grad_v4f a = __builtin_shufflevector(x0, x1, 0, 2, 4, 6);
    const grad_v4f b = __builtin_shufflevector(x0, x1, 1, 3, 5, 7);
    const grad_v4f c = __builtin_shufflevector(y0, y1, 0, 2, 4, 6);
    const grad_v4f e = __builtin_shufflevector(y0, y1, 1, 3, 5, 7);
    const grad_v4f ab = grad_select4(a > b, a, b), ce = grad_select4(c > e, c, e);
    const grad_v4f m = grad_select4(ab > ce, ab, ce);
    const grad_v4i ma = a == m, mb = ~ma & (b == m), mc = ~ma & ~mb & (c == m);
    const grad_v4i me = ~(ma | mb | mc);
    const grad_v4f zero = grad_splat4(0.0f);
    const grad_v4f ga = grad_select4(ma, gv, zero), gb = grad_select4(mb, gv, zero);
    const grad_v4f gc = grad_select4(mc, gv, zero), ge = grad_select4(me, gv, zero);
    *o0 = __builtin_shufflevector(ga, gb, 0, 4, 1, 5);
    *o1 = __builtin_shufflevector(ga, gb, 2, 6, 3, 7);
    *o2 = __builtin_shufflevector(gc, ge, 0, 4, 1, 5);
    *o3 = __builtin_shufflevector(gc, ge, 2, 6, 3, 7);
}

/* p[lo], .. p[lo + 3] as a vector, 0 for each index at or past n. */
static inline grad_v4f head4(const float *p, int lo, int n)
{
    return (grad_v4f){lo < n ? p[lo] : 0.0f, lo + 1 < n ? p[lo + 1] : 0.0f,
                      lo + 2 < n ? p[lo + 2] : 0.0f, lo + 3 < n ? p[lo + 3] : 0.0f};
}

/* d[0..4) += v, or = v when !add */
static inline void put4(float *d, grad_v4f v, int add)
{
    grad_store4(d, add ? grad_load4(d) + v : v);
}

/* Four outputs at a time, the last OW % 4 through the same max2x2_grad4(). */
static void maxpool_plane_2x2_backward(float *restrict d, const float *restrict g,
                                       const float *restrict in, const struct cnn_pool2d *p,
                                       int add)
{
    const size_t W = (size_t)p->w;
    const int OW = p->ow;
    for (int oy = 0; oy < p->oh; oy++, g += OW) {
        const float *r0 = in + (size_t)(2 * oy) * W, *r1 = r0 + W;
        float *d0 = d + (size_t)(2 * oy) * W, *d1 = d0 + W;
        int ox = 0;
        grad_v4f o0, o1, o2, o3;
        for (; ox + 4 <= OW; ox += 4) {
            max2x2_grad4(&o0, &o1, &o2, &o3, grad_load4(r0 + 2 * ox), grad_load4(r0 + 2 * ox + 4),
                         grad_load4(r1 + 2 * ox), grad_load4(r1 + 2 * ox + 4), grad_load4(g + ox));
            put4(d0 + 2 * ox, o0, add);
            put4(d0 + 2 * ox + 4, o1, add);
            put4(d1 + 2 * ox, o2, add);
            put4(d1 + 2 * ox + 4, o3, add);
        }
        if (ox < OW) { /* the last 1-3 windows, in vectors built in registers: zero-padded
                        * copies read back as vectors stalled on store forwarding (45% of
                        * this function's time in a training step) */
            const int n = 2 * (OW - ox); /* inputs per row */
            const float *t0 = r0 + 2 * ox, *t1 = r1 + 2 * ox;
            max2x2_grad4(&o0, &o1, &o2, &o3, head4(t0, 0, n), head4(t0, 4, n), head4(t1, 0, n),
                         head4(t1, 4, n), head4(g + ox, 0, n / 2));
            for (int i = 0; i < n; i++) {
                const float u0 = i < 4 ? o0[i] : o1[i - 4], u1 = i < 4 ? o2[i] : o3[i - 4];
                d0[2 * ox + i] = add ? d0[2 * ox + i] + u0 : u0;
                d1[2 * ox + i] = add ? d1[2 * ox + i] + u1 : u1;
            }
        }
    }
}

void cnn_maxpool_backward(float *dinp, const float *dout, const float *inp,
                          const struct cnn_pool2d *p, int N)
{
    const size_t planes = (size_t)p->c * N, in_plane = (size_t)p->h * p->w;
    const size_t out_plane = (size_t)p->oh * p->ow;
    const int plain_2x2 = cnn_pool2d_is_plain_2x2(p);
    for (size_t pl = 0; pl < planes; pl++) {
        const float *in = inp + pl * in_plane;
        const float *g = dout + pl * out_plane;
        float *d = dinp + pl * in_plane;
        if (plain_2x2) {
            maxpool_plane_2x2_backward(d, g, in, p, 1);
            continue;
        }
        if (cnn_pool_dil(p->dh) > 1 || cnn_pool_dil(p->dw) > 1) { /* the forward's argmax */
            for (int oy = 0; oy < p->oh; oy++)
                for (int ox = 0; ox < p->ow; ox++, g++) {
                    const long at = cnn_maxpool_dilated_argmax(in, p, oy, ox);
                    if (at >= 0)
                        d[at] += *g;
                }
            continue;
        }
        for (int oy = 0; oy < p->oh; oy++) {
            int y0, y1;
            cnn_pool_window(oy, p->sh, p->pad_t, p->pad_b, p->kh, p->h, &y0, &y1);
            for (int ox = 0; ox < p->ow; ox++) {
                int x0, x1;
                cnn_pool_window(ox, p->sw, p->pad_l, p->pad_r, p->kw, p->w, &x0, &x1);
                /* Shape rules (pad < kernel) guarantee a non-empty window.  The max
                 * first (a branch-free pass), then the first position holding it. */
                float m = in[(size_t)y0 * p->w + x0];
                for (int y = y0; y < y1; y++) {
                    const float *row = in + (size_t)y * p->w;
                    for (int x = x0; x < x1; x++)
                        m = row[x] > m ? row[x] : m;
                }
                size_t best = (size_t)y0 * p->w + x0;
                for (int y = y0; y < y1; y++) {
                    const float *row = in + (size_t)y * p->w;
                    int x = x0;
                    while (x < x1 && row[x] != m)
                        x++;
                    if (x < x1) {
                        best = (size_t)y * p->w + x;
                        break;
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
            int ph = cnn_pool_window(oy, p->sh, p->pad_t, p->pad_b, p->kh, p->h, &y0, &y1);
            for (int ox = 0; ox < p->ow; ox++) {
                int x0, x1;
                int pw = cnn_pool_window(ox, p->sw, p->pad_l, p->pad_r, p->kw, p->w, &x0, &x1);
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

void cnn_maxpool_backward_set(float *dinp, const float *dout, const float *inp,
                              const struct cnn_pool2d *p, int N)
{
    const size_t planes = (size_t)p->c * N, in_plane = (size_t)p->h * p->w;
    const size_t out_plane = (size_t)p->oh * p->ow;
    if (!cnn_pool2d_is_plain_2x2(p) || 2 * p->oh != p->h || 2 * p->ow != p->w) {
        memset(dinp, 0, planes * in_plane * sizeof(float)); /* windows miss some pixels */
        cnn_maxpool_backward(dinp, dout, inp, p, N);
        return;
    }
    for (size_t pl = 0; pl < planes; pl++) /* the windows tile every plane: written outright */
        maxpool_plane_2x2_backward(dinp + pl * in_plane, dout + pl * out_plane,
                                   inp + pl * in_plane, p, 0);
}
