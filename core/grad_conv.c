/* Convolution backward over a (C, N, H, W) batch, chunked like the forward: per group and
 * chunk of output rows, dW += dout * col^T (im2col of the chunk) and dcol = W^T * dout,
 * scattered back with col2im; two GEMMs per chunk.  Pointwise convs use the input as col
 * directly (no scratch); depthwise convs use a direct row kernel, as the forward does,
 * because their per-group GEMMs would be GEMVs. */
#include "gemm.h"
#include "grad.h"
#include "grad_simd.h"
#include "im2col.h"

#include <stddef.h>
#include <stdint.h>

/* d[i] += a * s[i] */
static void axpy(float *restrict d, const float *restrict s, float a, int n)
{
    const grad_v4f av = grad_splat4(a);
    int i = 0;
    for (; i + 4 <= n; i += 4)
        grad_store4(d + i, grad_load4(d + i) + av * grad_load4(s + i));
    for (; i < n; i++)
        d[i] += a * s[i];
}

/* sum of a[i] * b[i], four partial sums */
static float dot(const float *restrict a, const float *restrict b, int n)
{
    grad_v4f acc = grad_splat4(0.0f);
    int i = 0;
    for (; i + 4 <= n; i += 4)
        acc += grad_load4(a + i) * grad_load4(b + i);
    float s = grad_hsum4(acc);
    for (; i < n; i++)
        s += a[i] * b[i];
    return s;
}

size_t cnn_conv2d_backward_scratch_floats(const struct cnn_conv2d *p, int N)
{
    if (N <= 0 || p->groups <= 0 || cnn_conv2d_is_pointwise(p) || cnn_conv2d_is_depthwise(p))
        return 0;
    size_t dims[5] = {(size_t)(p->c / p->groups), (size_t)p->kh, (size_t)p->kw,
                      (size_t)cnn_conv2d_chunk_rows(p, N), (size_t)p->ow};
    size_t n = 1;
    for (int i = 0; i < 5; i++)
        if (__builtin_mul_overflow(n, dims[i], &n))
            return SIZE_MAX;
    return n;
}

/* dinp += col2im of col for output grid rows [r0, r1) (row r = n * OH + oy); col is
 * (C*KH*KW) x ((r1 - r0) * OW), the layout cnn_im2col_rows() writes. */
static void col2im_rows(float *dinp, const float *col, int C, const struct cnn_conv2d *p, int N,
                        int r0, int r1)
{
    const int H = p->h, W = p->w, OH = p->oh, OW = p->ow, sw = p->sw;
    const size_t hw = (size_t)H * W, chan = (size_t)N * hw;
    const size_t ld = (size_t)(r1 - r0) * OW;
    for (int c = 0; c < C; c++) {
        float *dst_c = dinp + (size_t)c * chan;
        for (int ky = 0; ky < p->kh; ky++) {
            int oy_lo, oy_hi;
            cnn_conv_valid_range(OH, H, p->sh, p->pad_t, ky * p->dh, &oy_lo, &oy_hi);
            for (int kx = 0; kx < p->kw; kx++, col += ld) {
                int ox_lo, ox_hi;
                cnn_conv_valid_range(OW, W, sw, p->pad_l, kx * p->dw, &ox_lo, &ox_hi);
                const int ix0 = ox_lo * sw - p->pad_l + kx * p->dw;
                const int nvalid = ox_hi - ox_lo;
                for (int r = r0; r < r1;) { /* one image's part of the chunk at a time */
                    const int n = r / OH, ya = r % OH;
                    const int yb = (r1 - n * OH) < OH ? r1 - n * OH : OH;
                    const int v0 = ya > oy_lo ? ya : oy_lo, v1 = yb < oy_hi ? yb : oy_hi;
                    float *dst_n = dst_c + (size_t)n * hw;
                    const float *src = col + (size_t)(r - r0) * OW;
                    for (int oy = v0; oy < v1; oy++) {
                        const int iy = oy * p->sh - p->pad_t + ky * p->dh;
                        float *restrict d = dst_n + (size_t)iy * W + ix0;
                        const float *restrict s = src + (size_t)(oy - ya) * OW + ox_lo;
                        if (sw == 1) {
                            grad_add(d, s, (size_t)nvalid);
                        } else {
                            for (int i = 0; i < nvalid; i++)
                                d[(size_t)i * sw] += s[i];
                        }
                    }
                    r += yb - ya;
                }
            }
        }
    }
}

/* One (oc, n) plane of a depthwise conv: dw (KH*KW) += taps of dout x shifted in, and
 * din (H, W) += w taps x shifted dout.  Row by row, mirroring depthwise_plane() of the
 * forward; either of dw, din may be NULL. */
static void depthwise_plane_backward(float *din, float *dw, const float *dout, const float *in,
                                     const float *w, const struct cnn_conv2d *p)
{
    const int W = p->w, OW = p->ow, sw = p->sw;
    for (int oy = 0; oy < p->oh; oy++) {
        const float *restrict g = dout + (size_t)oy * OW;
        for (int ky = 0; ky < p->kh; ky++) {
            const int iy = oy * p->sh - p->pad_t + ky * p->dh;
            if (iy < 0 || iy >= p->h) /* per row and tap, never per pixel */
                continue;
            for (int kx = 0; kx < p->kw; kx++) {
                int lo, hi;
                cnn_conv_valid_range(OW, W, sw, p->pad_l, kx * p->dw, &lo, &hi);
                const size_t off = (size_t)iy * W + (size_t)(lo * sw - p->pad_l + kx * p->dw);
                const int n = hi - lo;
                const float *restrict gs = g + lo;
                if (dw) {
                    const float *restrict s = in + off;
                    float acc = 0.0f;
                    if (sw == 1) {
                        acc = dot(gs, s, n);
                    } else {
                        for (int i = 0; i < n; i++)
                            acc += gs[i] * s[(size_t)i * sw];
                    }
                    dw[ky * p->kw + kx] += acc;
                }
                if (din) {
                    float *restrict d = din + off;
                    const float wk = w[ky * p->kw + kx];
                    if (sw == 1) {
                        axpy(d, gs, wk, n);
                    } else {
                        for (int i = 0; i < n; i++)
                            d[(size_t)i * sw] += wk * gs[i];
                    }
                }
            }
        }
    }
}

static void depthwise_backward(float *dinp, float *dw, const float *dout, const float *inp,
                               const float *w, const struct cnn_conv2d *p, int N)
{
    const int ocg = p->oc / p->groups;
    const size_t in_plane = (size_t)p->h * p->w, out_plane = (size_t)p->oh * p->ow;
    const size_t taps = (size_t)p->kh * p->kw;
    for (int oc = 0; oc < p->oc; oc++) {
        const size_t ic = (size_t)(oc / ocg) * N * in_plane;
        for (int n = 0; n < N; n++)
            depthwise_plane_backward(dinp ? dinp + ic + n * in_plane : NULL,
                                     dw ? dw + (size_t)oc * taps : NULL,
                                     dout + ((size_t)oc * N + n) * out_plane,
                                     inp + ic + n * in_plane, w + (size_t)oc * taps, p);
    }
}

void cnn_conv2d_backward_rows(float *dinp, float *dw, const float *dout, const float *inp,
                              const float *w, float *scratch, const struct cnn_conv2d *p, int N,
                              int r_lo, int r_hi)
{
    const int G = p->groups, cg = p->c / G, ocg = p->oc / G;
    const size_t in_plane = (size_t)p->h * p->w;
    const size_t cols = (size_t)N * p->oh * p->ow; /* forward GEMM N dimension */
    const int kdim = cg * p->kh * p->kw;           /* forward GEMM K dimension */
    const int pointwise = cnn_conv2d_is_pointwise(p);
    const int chunk = pointwise ? r_hi - r_lo : cnn_conv2d_chunk_rows(p, N);
    for (int g = 0; g < G; g++) {
        const float *in_g = inp + (size_t)g * cg * N * in_plane;
        const float *dout_g = dout + (size_t)g * ocg * cols;
        const float *w_g = w + (size_t)g * ocg * kdim;
        for (int r0 = r_lo; r0 < r_hi; r0 += chunk) {
            const int r1 = r0 + chunk < r_hi ? r0 + chunk : r_hi;
            const size_t c0 = (size_t)r0 * p->ow, nc = (size_t)(r1 - r0) * p->ow;
            if (pointwise) { /* the input (C/G) x (N*H*W) is the col matrix */
                if (dw)
                    cnn_gemm(0, 1, ocg, kdim, (int)nc, 1.0f, dout_g + c0, (int)cols, in_g + c0,
                             (int)cols, 1.0f, dw + (size_t)g * ocg * kdim, kdim);
                if (dinp)
                    cnn_gemm(1, 0, kdim, (int)nc, ocg, 1.0f, w_g, kdim, dout_g + c0, (int)cols,
                             1.0f, dinp + (size_t)g * cg * N * in_plane + c0, (int)cols);
                continue;
            }
            if (dw) {
                cnn_im2col_rows(scratch, in_g, cg, p, N, r0, r1);
                cnn_gemm(0, 1, ocg, kdim, (int)nc, 1.0f, dout_g + c0, (int)cols, scratch, (int)nc,
                         1.0f, dw + (size_t)g * ocg * kdim, kdim);
            }
            if (dinp) {
                cnn_gemm(1, 0, kdim, (int)nc, ocg, 1.0f, w_g, kdim, dout_g + c0, (int)cols, 0.0f,
                         scratch, (int)nc);
                col2im_rows(dinp + (size_t)g * cg * N * in_plane, scratch, cg, p, N, r0, r1);
            }
        }
    }
}

int cnn_conv2d_backward_winograd_shape(const struct cnn_conv2d *p, struct cnn_conv2d *q)
{
    if (!cnn_conv2d_use_winograd(p))
        return 0;
    const int pads[4] = {p->pad_t, p->pad_l, p->pad_b, p->pad_r};
    for (int i = 0; i < 4; i++)
        if (pads[i] < 0 || pads[i] > 2)
            return 0;
    *q = *p;
    q->c = p->oc, q->h = p->oh, q->w = p->ow;
    q->oc = p->c, q->oh = p->h, q->ow = p->w;
    q->pad_t = 2 - p->pad_t, q->pad_l = 2 - p->pad_l;
    q->pad_b = 2 - p->pad_b, q->pad_r = 2 - p->pad_r;
    q->has_bias = 0;
    q->act = (struct cnn_act_params){CNN_ACT_NONE, 0.0f, 0.0f};
    return cnn_conv2d_use_winograd(q);
}

void cnn_conv2d_backward_winograd_weights(float *u, float *tmp, const float *w,
                                          const struct cnn_conv2d *p)
{
    struct cnn_conv2d q;
    if (!cnn_conv2d_backward_winograd_shape(p, &q))
        return;
    for (int oc = 0; oc < p->oc; oc++) /* tmp (C, OC, 3, 3): w transposed, kernels rotated */
        for (int c = 0; c < p->c; c++)
            for (int k = 0; k < 9; k++)
                tmp[((size_t)c * p->oc + oc) * 9 + k] = w[((size_t)oc * p->c + c) * 9 + 8 - k];
    cnn_winograd_transform_weights(u, tmp, &q);
}

void cnn_conv2d_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                         const float *w, float *scratch, const struct cnn_conv2d *p, int N)
{
    const size_t cols = (size_t)N * p->oh * p->ow;
    if (db)
        for (int oc = 0; oc < p->oc; oc++)
            db[oc] += (float)grad_sum(dout + (size_t)oc * cols, cols);
    if (!dinp && !dw)
        return;
    if (cnn_conv2d_is_depthwise(p))
        depthwise_backward(dinp, dw, dout, inp, w, p, N);
    else
        cnn_conv2d_backward_rows(dinp, dw, dout, inp, w, scratch, p, N, 0, N * p->oh);
}
