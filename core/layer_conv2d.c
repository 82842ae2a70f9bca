/* Convolution forward over a (C, N, H, W) batch: per group, im2col of the group's input
 * channels and one SGEMM for the whole batch (1x1 stride-1 convs use the input directly),
 * then a single pass adding bias and the fused activation.  Depthwise convs (one input
 * channel per group, groups > 1) use a direct kernel instead: per group their GEMM would
 * be a tiny GEMV (measured 1.5-2.5x slower).  Scratch stays sized for im2col regardless. */
#include "gemm.h"
#include "im2col.h"
#include "layer.h"

#include <stddef.h>
#include <string.h>

/* d[i] += a * s[i]; four lanes at a time (GCC/clang vector extension) because -O2 does not
 * vectorize loops of unknown length, and this is the whole cost of a depthwise conv.
 * memcpy does the unaligned loads and stores; the result equals the scalar loop. */
typedef float v4f __attribute__((vector_size(16)));
static void axpy(float *restrict d, const float *restrict s, float a, int n)
{
    const v4f av = {a, a, a, a};
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        v4f x, y;
        memcpy(&x, s + i, sizeof x);
        memcpy(&y, d + i, sizeof y);
        y += av * x;
        memcpy(d + i, &y, sizeof y);
    }
    for (; i < n; i++)
        d[i] += a * s[i];
}

/* One output plane of a depthwise conv: out (OH, OW) = sum over taps of w * shifted in (H, W).
 * Row by row, so the output row being accumulated stays in L1 across all taps. */
static void depthwise_plane(float *restrict out, const float *restrict in, const float *restrict w,
                            const struct cnn_conv2d *p)
{
    const int W = p->w, OW = p->ow, sw = p->sw;
    for (int oy = 0; oy < p->oh; oy++) {
        float *restrict row = out + (size_t)oy * OW;
        for (int ox = 0; ox < OW; ox++)
            row[ox] = 0.0f;
        for (int ky = 0; ky < p->kh; ky++) {
            const int iy = oy * p->sh - p->pad_t + ky * p->dh;
            if (iy < 0 || iy >= p->h) /* per row and tap, never per pixel */
                continue;
            const float *in_row = in + (size_t)iy * W;
            for (int kx = 0; kx < p->kw; kx++) {
                int lo, hi;
                cnn_conv_valid_range(OW, W, sw, p->pad_l, kx * p->dw, &lo, &hi);
                const float wk = w[ky * p->kw + kx];
                const float *restrict s = in_row + (lo * sw - p->pad_l + kx * p->dw);
                float *restrict d = row + lo;
                const int n = hi - lo;
                if (sw == 1) {
                    axpy(d, s, wk, n);
                } else {
                    for (int i = 0; i < n; i++)
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

/* x[i] = max(x[i] + b, 0) (relu) or x[i] + b, four lanes at a time like axpy(). */
typedef int v4i __attribute__((vector_size(16)));
static void add_bias(float *x, size_t n, float b, int relu)
{
    const v4f bv = {b, b, b, b}, zero = {0, 0, 0, 0};
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        v4f v;
        memcpy(&v, x + i, sizeof v);
        v += bv;
        if (relu)
            v = (v4f)((v4i)v & (v > zero)); /* lanes <= 0 (and NaN) become +0 */
        memcpy(x + i, &v, sizeof v);
    }
    for (; i < n; i++) {
        float v = x[i] + b;
        x[i] = relu && !(v > 0.0f) ? 0.0f : v;
    }
}

/* Adds b[oc] (when b) to each output channel block of n floats, then applies act. */
static void bias_act(float *out, const float *b, int OC, size_t n, const struct cnn_act_params *act)
{
    const int relu = act->kind == CNN_ACT_RELU;
    for (int oc = 0; oc < OC; oc++) {
        float *o = out + (size_t)oc * n;
        if (b)
            add_bias(o, n, b[oc], relu); /* relu, the common case, fused into this pass */
        if (!b || !relu)
            cnn_act_apply(o, n, act);
    }
}

/* bias_act() on output columns [c0, c0 + n) of every channel (channel stride ld). */
static void bias_act_cols(float *out, const float *b, int OC, size_t ld, size_t c0, size_t n,
                          const struct cnn_act_params *act)
{
    const int relu = act->kind == CNN_ACT_RELU;
    for (int oc = 0; oc < OC; oc++) {
        float *o = out + (size_t)oc * ld + c0;
        if (b)
            add_bias(o, n, b[oc], relu);
        if (!b || !relu)
            cnn_act_apply(o, n, act);
    }
}

void cnn_conv2d_forward_rows(float *out, const float *inp, const float *w, const float *b,
                             float *col, const struct cnn_conv2d *p, int N, int r_lo, int r_hi)
{
    const int G = p->groups, cg = p->c / G, ocg = p->oc / G;
    const size_t in_plane = (size_t)p->h * p->w;
    const size_t cols = (size_t)N * p->oh * p->ow; /* GEMM N dimension */
    const int kdim = cg * p->kh * p->kw;           /* GEMM K dimension */
    const int epilogue = b || p->act.kind != CNN_ACT_NONE;
    const int pointwise = cnn_conv2d_is_pointwise(p);
    const int chunk = pointwise ? r_hi - r_lo : cnn_conv2d_chunk_rows(p, N);
    for (int g = 0; g < G; g++) {
        const float *in_g = inp + (size_t)g * cg * N * in_plane;
        const float *w_g = w + (size_t)g * ocg * kdim;
        float *out_g = out + (size_t)g * ocg * cols;
        for (int r0 = r_lo; r0 < r_hi; r0 += chunk) {
            const int r1 = r0 + chunk < r_hi ? r0 + chunk : r_hi;
            const size_t c0 = (size_t)r0 * p->ow, nc = (size_t)(r1 - r0) * p->ow;
            if (pointwise) { /* the (C/G) x (N*H*W) input is already the col matrix */
                cnn_gemm(0, 0, ocg, (int)nc, kdim, 1.0f, w_g, kdim, in_g + c0, (int)cols, 0.0f,
                         out_g + c0, (int)cols);
            } else {
                cnn_im2col_rows(col, in_g, cg, p, N, r0, r1);
                cnn_gemm(0, 0, ocg, (int)nc, kdim, 1.0f, w_g, kdim, col, (int)nc, 0.0f, out_g + c0,
                         (int)cols);
            }
            if (epilogue)
                bias_act_cols(out_g, b ? b + (size_t)g * ocg : NULL, ocg, cols, c0, nc, &p->act);
        }
    }
}

void cnn_conv2d_forward(float *out, const float *inp, const float *w, const float *b, float *col,
                        const struct cnn_conv2d *p, int N)
{
    /* A single-channel input with groups == 1 (MNIST-style first layer) is one real GEMM
     * with M = OC, and measured ~4x faster through BLAS than the direct kernel. */
    if (cnn_conv2d_is_depthwise(p)) {
        depthwise_forward(out, inp, w, p, N);
        if (b || p->act.kind != CNN_ACT_NONE)
            bias_act(out, b, p->oc, (size_t)N * p->oh * p->ow, &p->act);
        return;
    }
    cnn_conv2d_forward_rows(out, inp, w, b, col, p, N, 0, N * p->oh);
}
