/* Convolution forward over a (C, N, H, W) batch: per group, im2col of the group's input
 * channels and one SGEMM for the whole batch (1x1 stride-1 convs use the input directly),
 * then a single pass adding bias and the fused activation.  Depthwise convs (one input
 * channel per group) use a direct kernel instead: their GEMM would be a tiny GEMV. */
#include "gemm.h"
#include "im2col.h"
#include "layer.h"

#include <stddef.h>

/* Output index range [*lo, *hi) whose input coordinate o*s - pad + off lies in [0, in). */
static void valid_range(int out, int in, int s, int pad, int off, int *lo, int *hi)
{
    int start = off - pad;
    int l = start >= 0 ? 0 : (-start + s - 1) / s;
    int h = start > in - 1 ? 0 : (in - 1 - start) / s + 1;
    if (h > out)
        h = out;
    if (l > h)
        l = h;
    *lo = l;
    *hi = h;
}

/* One output plane of a depthwise conv: out (OH, OW) = sum over taps of w * shifted in (H, W).
 * The plane is zeroed first; bias and act come in the common pass afterwards. */
static void depthwise_plane(float *out, const float *in, const float *w,
                            const struct cnn_conv2d *p)
{
    const int W = p->w, OW = p->ow, sw = p->sw;
    for (size_t i = 0; i < (size_t)p->oh * OW; i++)
        out[i] = 0.0f;
    for (int ky = 0; ky < p->kh; ky++) {
        int oy_lo, oy_hi;
        valid_range(p->oh, p->h, p->sh, p->pad_t, ky * p->dh, &oy_lo, &oy_hi);
        for (int kx = 0; kx < p->kw; kx++) {
            int ox_lo, ox_hi;
            valid_range(OW, W, sw, p->pad_l, kx * p->dw, &ox_lo, &ox_hi);
            const float wk = w[ky * p->kw + kx];
            const int ix0 = ox_lo * sw - p->pad_l + kx * p->dw;
            for (int oy = oy_lo; oy < oy_hi; oy++) {
                const int iy = oy * p->sh - p->pad_t + ky * p->dh;
                const float *s = in + (size_t)iy * W + ix0;
                float *d = out + (size_t)oy * OW + ox_lo;
                if (sw == 1) {
                    for (int i = 0; i < ox_hi - ox_lo; i++)
                        d[i] += wk * s[i];
                } else {
                    for (int i = 0; i < ox_hi - ox_lo; i++)
                        d[i] += wk * s[(size_t)i * sw];
                }
            }
        }
    }
}

static void depthwise_forward(float *out, const float *inp, const float *w,
                              const struct cnn_conv2d *p, int N)
{
    const int ocg = p->oc / p->groups;
    const size_t in_plane = (size_t)p->h * p->w, out_plane = (size_t)p->oh * p->ow;
    const size_t taps = (size_t)p->kh * p->kw;
    for (int oc = 0; oc < p->oc; oc++) {
        const float *in_c = inp + (size_t)(oc / ocg) * N * in_plane;
        for (int n = 0; n < N; n++)
            depthwise_plane(out + ((size_t)oc * N + n) * out_plane, in_c + n * in_plane,
                            w + (size_t)oc * taps, p);
    }
}

/* Adds b[oc] (when b) to each output channel block of n floats, then applies act. */
static void bias_act(float *out, const float *b, int OC, size_t n,
                     const struct cnn_act_params *act)
{
    for (int oc = 0; oc < OC; oc++) {
        float *o = out + (size_t)oc * n;
        if (b) {
            const float bv = b[oc];
            if (act->kind == CNN_ACT_RELU) { /* the common case, fused into one loop */
                for (size_t i = 0; i < n; i++) {
                    float v = o[i] + bv;
                    o[i] = v > 0.0f ? v : 0.0f;
                }
                continue;
            }
            for (size_t i = 0; i < n; i++)
                o[i] += bv;
        }
        cnn_act_apply(o, n, act);
    }
}

void cnn_conv2d_forward(float *out, const float *inp, const float *w, const float *b,
                        float *col, const struct cnn_conv2d *p, int N)
{
    const int G = p->groups, cg = p->c / G, ocg = p->oc / G;
    const size_t in_plane = (size_t)p->h * p->w;
    const size_t cols = (size_t)N * p->oh * p->ow; /* GEMM N dimension */
    const int kdim = cg * p->kh * p->kw;            /* GEMM K dimension */

    if (cg == 1 && !cnn_conv2d_is_pointwise(p)) {
        depthwise_forward(out, inp, w, p, N);
    } else {
        for (int g = 0; g < G; g++) {
            const float *in_g = inp + (size_t)g * cg * N * in_plane;
            const float *bmat = in_g; /* pointwise: (C/G) x (N*H*W) is already the col matrix */
            if (!cnn_conv2d_is_pointwise(p)) {
                cnn_im2col(col, in_g, cg, p, N);
                bmat = col;
            }
            cnn_gemm(0, 0, ocg, (int)cols, kdim, 1.0f, w + (size_t)g * ocg * kdim, kdim, bmat,
                     (int)cols, 0.0f, out + (size_t)g * ocg * cols, (int)cols);
        }
    }
    if (b || p->act.kind != CNN_ACT_NONE)
        bias_act(out, b, p->oc, cols, &p->act);
}
