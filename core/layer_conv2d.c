/* Convolution forward over a (C, N, H, W) batch: per group, im2col of the group's input
 * channels and one SGEMM for the whole batch (1x1 stride-1 convs use the input directly),
 * then a single pass adding bias, a fused residual and the fused activation.  Depthwise
 * convs (one input channel per group, groups > 1) use a direct kernel instead: per group
 * their GEMM would be a tiny GEMV (measured 1.5-2.5x slower).  Scratch stays sized for
 * im2col regardless.
 * Then the conv2d row of the layer-kind table (layer_kind.h): shape, weights, BN folding
 * at compile, the session's forward, and the trainer's forward and backward parts. */
#include "conv_direct.h"
#include "gemm.h"
#include "gemm_packed.h"
#include "grad.h"
#include "im2col.h"
#include "layer.h"
#include "layer_kind.h"
#include "train_internal.h"

#include <stddef.h>
#include <stdlib.h>
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

/* x[i] = max(x[i] + b (+ r[i]), 0) (relu) or x[i] + b (+ r[i]), four lanes at a time like
 * axpy(); r (laid out as x) may be NULL.  (x + b) + r: the order of the unfused add op. */
typedef int v4i __attribute__((vector_size(16)));
static void add_bias(float *x, const float *r, size_t n, float b, int relu)
{
    const v4f bv = {b, b, b, b}, zero = {0, 0, 0, 0};
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        v4f v, rv;
        memcpy(&v, x + i, sizeof v);
        v += bv;
        if (r) {
            memcpy(&rv, r + i, sizeof rv);
            v += rv;
        }
        if (relu)
            v = (v4f)((v4i)v & (v > zero)); /* lanes <= 0 (and NaN) become +0 */
        memcpy(x + i, &v, sizeof v);
    }
    for (; i < n; i++) {
        float v = x[i] + b;
        if (r)
            v += r[i];
        x[i] = relu && !(v > 0.0f) ? 0.0f : v;
    }
}

/* Output columns [c0, c0 + n) of every channel (channel stride ld): adds b[oc] (when b) and
 * res (when res: laid out as out), then applies act; relu, the common case, in the same pass. */
static void bias_act_cols(float *out, const float *res, const float *b, int OC, size_t ld,
                          size_t c0, size_t n, const struct cnn_act_params *act)
{
    const int relu = act->kind == CNN_ACT_RELU;
    for (int oc = 0; oc < OC; oc++) {
        float *o = out + (size_t)oc * ld + c0;
        if (b || res)
            add_bias(o, res ? res + (size_t)oc * ld + c0 : NULL, n, b ? b[oc] : 0.0f, relu);
        if (!(b || res) || !relu)
            cnn_act_apply(o, n, act);
    }
}

/* Columns [c0, c0 + n) of every channel (stride ld) set to the channel's bias. */
static void fill_bias_cols(float *out, const float *b, int OC, size_t ld, size_t c0, size_t n)
{
    for (int oc = 0; oc < OC; oc++) {
        float *o = out + (size_t)oc * ld + c0;
        for (size_t i = 0; i < n; i++)
            o[i] = b[oc];
    }
}

/* Output rows per im2col chunk of a packed conv: cnn_conv2d_chunk_rows()'s, except that when
 * the weights fit L2 with room (at most CNN_CONV_CHUNK_FLOATS), from 256 columns instead of
 * CNN_CONV_MIN_COLS, so the chunk stays in L2 too (about CNN_CONV_CHUNK_FLOATS).  Every chunk
 * reads all the packed weights again: from L3 when they are large.  ResNet-50 .onnx, its
 * layer2 stride-2 3x3 conv (128 channels, K 1152: 1024+ columns were 4.5 MB): batch 1 -10% on
 * one thread, -4-6% on a team of 2; ResNet-18's 512-channel one (K 2304) at batch 8 was 5%
 * slower in two chunks than in one, and keeps its chunk.  Never more rows than
 * cnn_conv2d_chunk_rows(), whose chunk sizes the scratch. */
static int packed_chunk_rows(const struct cnn_conv2d *p, int N)
{
    const int most = cnn_conv2d_chunk_rows(p, N);
    const size_t kdim = (size_t)p->c * p->kh * p->kw, row = kdim * p->ow;
    if ((size_t)p->oc * kdim > CNN_CONV_CHUNK_FLOATS)
        return most;
    size_t rows = CNN_CONV_CHUNK_FLOATS / row;
    const size_t min_rows = (256 + (size_t)p->ow - 1) / (size_t)p->ow;
    if (rows < min_rows)
        rows = min_rows;
    return rows < (size_t)most ? (int)rows : most;
}

/* Whether a conv on packed weights reads its input through cnn_im2col_pack() (im2col_pack.c)
 * instead of im2col chunks: where the packer's vector path runs, except a stride-1 1x1 (its
 * input already is the GEMM's B).  It then needs no im2col scratch. */
static int packs_from_input(const struct cnn_conv2d *p)
{
    return !cnn_conv2d_is_pointwise(p) && cnn_im2col_packs_fast(p);
}

/* forward_rows_res() on weights packed for cnn_gemm_packed() (one group): the bias, the
 * residual and a ReLU go into the GEMM's store, so no other pass touches the output (res ==
 * out: the GEMM adds onto it with beta 1).  col holds the im2col chunk, then the GEMM's
 * packing scratch.  Not inlined: inlined into forward_rows_res(), it made GCC compile that
 * one's bias and epilogue loops 3-5% slower (ResNet-50's 56x56 1x1 convs). */
__attribute__((noinline)) static void
forward_rows_packed(float *out, const float *res, const float *inp, const float *wp,
                    const float *b, float *col, const struct cnn_conv2d *p, int N, int r_lo,
                    int r_hi)
{
    const size_t cols = (size_t)N * p->oh * p->ow; /* GEMM N dimension */
    const int kdim = p->c * p->kh * p->kw;         /* GEMM K dimension */
    const int pointwise = cnn_conv2d_is_pointwise(p), onto_res = res && res == out;
    const int relu = p->act.kind == CNN_ACT_RELU, other_act = !relu && p->act.kind != CNN_ACT_NONE;
    const int from_input = packs_from_input(p); /* else im2col'd chunk by chunk */
    int chunk = pointwise ? r_hi - r_lo : packed_chunk_rows(p, N);
    if (r_hi > r_lo) { /* equal chunks: no short last one */
        const int chunks = (r_hi - r_lo + chunk - 1) / chunk;
        chunk = (r_hi - r_lo + chunks - 1) / chunks;
    }
    float *pack = col + (pointwise || from_input ? 0 : (size_t)kdim * chunk * p->ow);
    for (int r0 = r_lo; r0 < r_hi; r0 += chunk) {
        const int r1 = r0 + chunk < r_hi ? r0 + chunk : r_hi;
        const size_t c0 = (size_t)r0 * p->ow, nc = (size_t)(r1 - r0) * p->ow;
        const struct cnn_gemm_epilogue ep = {b, res && !onto_res ? res + c0 : NULL, relu};
        const float beta = onto_res ? 1.0f : 0.0f;
        if (from_input) {
            const struct cnn_im2col_source src = {inp, N, p, r0};
            const struct cnn_gemm_b_packer by = {cnn_im2col_pack, &src};
            cnn_gemm_packed_by(p->oc, (int)nc, kdim, 1.0f, wp, &by, beta, out + c0, (int)cols, &ep,
                               pack);
        } else { /* pointwise: the C x (N*H*W) input is already the col matrix */
            if (!pointwise)
                cnn_im2col_rows(col, inp, p->c, p, N, r0, r1);
            cnn_gemm_packed(p->oc, (int)nc, kdim, 1.0f, wp, pointwise ? inp + c0 : col,
                            pointwise ? (int)cols : (int)nc, beta, out + c0, (int)cols, &ep, pack);
        }
        for (int oc = 0; other_act && oc < p->oc; oc++)
            cnn_act_apply(out + (size_t)oc * cols + c0, nc, &p->act);
    }
}

/* cnn_conv2d_forward_rows() with a residual: out = act(conv + b + res), res (OC, N, OH, OW)
 * or NULL.  res == out (the session wrote the output over the residual): each GEMM adds
 * onto it (beta 1) and the epilogue adds only the bias.  Otherwise, with a bias, the output
 * starts as the bias and the GEMM adds onto that: the pass a beta-0 GEMM spends zeroing C
 * sets the bias instead, and a conv without residual or activation needs no epilogue.
 * wp: the weights packed (forward_rows_packed()), used instead of w. */
static void forward_rows_res(float *out, const float *res, const float *inp, const float *w,
                             const float *wp, const float *b, float *col,
                             const struct cnn_conv2d *p, int N, int r_lo, int r_hi)
{
    if (wp) {
        forward_rows_packed(out, res, inp, wp, b, col, p, N, r_lo, r_hi);
        return;
    }
    const int G = p->groups, cg = p->c / G, ocg = p->oc / G;
    const size_t in_plane = (size_t)p->h * p->w;
    const size_t cols = (size_t)N * p->oh * p->ow; /* GEMM N dimension */
    const int kdim = cg * p->kh * p->kw;           /* GEMM K dimension */
    const int onto_res = res && res == out, prefill = !onto_res && b;
    const float beta = onto_res || prefill ? 1.0f : 0.0f;
    const float *res_add = onto_res ? NULL : res;  /* added in the epilogue */
    const float *b_add = prefill ? NULL : b;       /* likewise */
    const int epilogue = b_add || res_add || p->act.kind != CNN_ACT_NONE;
    const int pointwise = cnn_conv2d_is_pointwise(p);
    const int chunk = pointwise ? r_hi - r_lo : cnn_conv2d_chunk_rows(p, N);
    for (int g = 0; g < G; g++) {
        const float *in_g = inp + (size_t)g * cg * N * in_plane;
        const float *w_g = w + (size_t)g * ocg * kdim;
        float *out_g = out + (size_t)g * ocg * cols;
        const float *res_g = res_add ? res_add + (size_t)g * ocg * cols : NULL;
        for (int r0 = r_lo; r0 < r_hi; r0 += chunk) {
            const int r1 = r0 + chunk < r_hi ? r0 + chunk : r_hi;
            const size_t c0 = (size_t)r0 * p->ow, nc = (size_t)(r1 - r0) * p->ow;
            if (prefill)
                fill_bias_cols(out_g, b + (size_t)g * ocg, ocg, cols, c0, nc);
            if (pointwise) { /* the (C/G) x (N*H*W) input is already the col matrix */
                cnn_gemm(0, 0, ocg, (int)nc, kdim, 1.0f, w_g, kdim, in_g + c0, (int)cols, beta,
                         out_g + c0, (int)cols);
            } else {
                cnn_im2col_rows(col, in_g, cg, p, N, r0, r1);
                cnn_gemm(0, 0, ocg, (int)nc, kdim, 1.0f, w_g, kdim, col, (int)nc, beta, out_g + c0,
                         (int)cols);
            }
            if (epilogue)
                bias_act_cols(out_g, res_g, b_add ? b_add + (size_t)g * ocg : NULL, ocg, cols,
                              c0, nc, &p->act);
        }
    }
}

void cnn_conv2d_forward_rows(float *out, const float *inp, const float *w, const float *b,
                             float *col, const struct cnn_conv2d *p, int N, int r_lo, int r_hi)
{
    forward_rows_res(out, NULL, inp, w, NULL, b, col, p, N, r_lo, r_hi);
}

void cnn_conv2d_forward(float *out, const float *inp, const float *w, const float *b, float *col,
                        const struct cnn_conv2d *p, int N)
{
    /* A single-channel input with groups == 1 (MNIST-style first layer) is one real GEMM
     * with M = OC, and measured ~4x faster through BLAS than the direct kernel. */
    if (cnn_conv2d_is_depthwise(p)) {
        depthwise_forward(out, inp, w, p, N);
        if (b || p->act.kind != CNN_ACT_NONE) {
            const size_t plane = (size_t)N * p->oh * p->ow;
            bias_act_cols(out, NULL, b, p->oc, plane, 0, plane, &p->act);
        }
        return;
    }
    cnn_conv2d_forward_rows(out, inp, w, b, col, p, N, 0, N * p->oh);
}

/* ---- the conv2d row ------------------------------------------------------------------ */

#define CONV(f) offsetof(struct cnn_conv2d, f)
static const struct cnn_layer_field conv_fields[] = {
    {"oc", CNN_FIELD_INT, CONV(oc)},
    {"kh", CNN_FIELD_INT, CONV(kh)},
    {"kw", CNN_FIELD_INT, CONV(kw)},
    {"sh", CNN_FIELD_INT, CONV(sh)},
    {"sw", CNN_FIELD_INT, CONV(sw)},
    {"dh", CNN_FIELD_INT, CONV(dh)},
    {"dw", CNN_FIELD_INT, CONV(dw)},
    {"pad_t", CNN_FIELD_INT, CONV(pad_t)},
    {"pad_l", CNN_FIELD_INT, CONV(pad_l)},
    {"pad_b", CNN_FIELD_INT, CONV(pad_b)},
    {"pad_r", CNN_FIELD_INT, CONV(pad_r)},
    {"groups", CNN_FIELD_INT, CONV(groups)},
    {"has_bias", CNN_FIELD_FLAG, CONV(has_bias)},
    {"act", CNN_FIELD_ACT, CONV(act.kind)},
    {"act_alpha", CNN_FIELD_FLOAT, CONV(act.alpha)},
    {"act_beta", CNN_FIELD_FLOAT, CONV(act.beta)},
};
static const char *const wb_slots[] = {"w", "b"};

static int conv_infer(const struct cnn_model *m, struct cnn_layer *l, struct cnn_err *err)
{
    const struct cnn_layer *in = cnn_layer_input(m, l, 0);
    struct cnn_conv2d *p = &l->p.conv;
    p->c = in->c, p->h = in->h, p->w = in->w;
    int rc = cnn_conv2d_shape(p, err); /* checks the activation too */
    if (rc)
        return rc;
    l->c = p->oc, l->h = p->oh, l->w = p->ow;
    int dims[4] = {p->oc, p->c / p->groups, p->kh, p->kw};
    if ((rc = cnn_layer_add_slot(l, 4, dims, err)) != 0)
        return rc;
    return p->has_bias ? cnn_layer_add_slot(l, 1, &p->oc, err) : 0;
}

static const struct cnn_act_params *conv_act(const struct cnn_layer *l)
{
    return &l->p.conv.act;
}

static double conv_flops(const struct cnn_layer *l)
{
    return 2.0 * (double)l->weight_count[0] * l->h * l->w;
}

static void conv_init(struct cnn_model *m, int i, uint64_t *rng)
{
    const struct cnn_conv2d *p = &m->layers[i].p.conv;
    cnn_model_init_fan(m, i, (double)(p->c / p->groups) * p->kh * p->kw,
                       (double)(p->oc / p->groups) * p->kh * p->kw, p->act.kind == CNN_ACT_RELU,
                       rng);
}

/* Whether a conv that is neither Winograd nor direct runs its GEMM on packed weights
 * (gemm_packed.h): one group, at least one full panel of output channels, and a small map
 * (at most 16x16 per image: the narrow driver) or a short K (the wide one).  ResNet-50 at
 * batch 1, one Zen 3 core, against OpenBLAS: 14x14 ops 1-5% faster, 7x7 ones 11-20%, 56x56
 * 1x1 convs (K 64 and 256) 9-12%, 28x28 ones (K 128) 4%; on large maps with K past 256 the
 * packed GEMM is even with OpenBLAS, and those stay on it -- except on AVX-512, where the
 * packed kernels beat OpenBLAS's SkylakeX ones there too: ResNet-50 batch 1 on a team of 2,
 * its 28x28 1x1 convs with K 256-512 -22-29% and the stride-2 3x3 one -15%. */
static int conv_packs(const struct cnn_conv2d *p)
{
    const int kdim = p->c * p->kh * p->kw;
    const int shape_gains = p->oh * p->ow <= 256 || kdim <= CNN_GEMM_PACKED_WIDE_MAX_K ||
                            cnn_gemm_packed_avx512();
    return p->groups == 1 && p->oc >= CNN_GEMM_PACKED_ROWS && shape_gains &&
           cnn_gemm_packed_vectorised() && !cnn_conv_direct_applies(p);
}

/* Whether a Winograd conv's planes of U are packed for cnn_gemm_packed(): whole panels of
 * output channels (so a plane keeps its size), and at least 128 input channels (the
 * products' depth): at 64 OpenBLAS was faster. */
static int wino_packs(const struct cnn_conv2d *p)
{
    return p->oc % CNN_GEMM_PACKED_ROWS == 0 && p->c >= 128 && cnn_gemm_packed_vectorised();
}

static size_t conv_folded_floats(const struct cnn_layer *l)
{
    size_t n = l->weight_count[0] + 3 * (size_t)l->p.conv.oc + 48;
    return n + cnn_winograd_plan_floats(&l->p.conv) + 16 +
           cnn_conv_direct_folded_floats(&l->p.conv) +
           (conv_packs(&l->p.conv)
                ? cnn_gemm_packed_floats(l->p.conv.oc, (int)(l->weight_count[0] / l->p.conv.oc))
                : 0) +
           16;
}

/* Folds a batch norm that alone reads the conv into its weights and bias. */
static void conv_fold_bn(struct cnn_compile *cs, struct cnn_op *op, const struct cnn_layer *l)
{
    const struct cnn_model *m = cs->m;
    int j = cnn_compile_sole_consumer(cs, op->out);
    if (j < 0 || m->layers[j].kind != CNN_LAYER_BATCHNORM || op->conv.act.kind != CNN_ACT_NONE)
        return;
    const struct cnn_layer *bn = &m->layers[j];
    int oc = op->conv.oc;
    size_t per = l->weight_count[0] / (size_t)oc;
    float *b = cnn_compile_take(cs, (size_t)oc);
    float *scale = cnn_compile_take(cs, (size_t)oc);
    float *w = cnn_compile_take(cs, l->weight_count[0]); /* last: conv_plan may give it back */
    cnn_batchnorm_scale_shift(m, bn, scale, b);          /* b = shift for now */
    for (int o = 0; o < oc; o++) {
        for (size_t k = 0; k < per; k++)
            w[(size_t)o * per + k] = op->w[(size_t)o * per + k] * scale[o];
        b[o] += (op->b ? op->b[o] : 0.0f) * scale[o];
    }
    op->w = w;
    op->b = b;
    op->conv.has_bias = 1;
    op->conv.act = bn->p.bn.act;
    cs->absorbed[j] = 1;
    op->out = j;
}

static void conv_plan(struct cnn_compile *cs, struct cnn_op *op, const struct cnn_layer *l)
{
    const struct cnn_model *m = cs->m;
    op->conv = l->p.conv;
    op->w = m->params + l->weight_offset[0];
    op->b = l->p.conv.has_bias ? m->params + l->weight_offset[1] : NULL;
    op->wino = cnn_conv2d_winograd_tile(&op->conv);
    if (op->wino > cs->max_wino) /* F(2x2) when F(4x4) is not allowed; 0 when neither is */
        op->wino = cs->max_wino >= 2 ? 2 : 0;
    const int kdim = (int)(l->weight_count[0] / (size_t)op->conv.oc);
    float *u = NULL, *wp = NULL;
    if (op->wino)
        u = cnn_compile_take(cs, op->wino == 4 ? cnn_winograd4_weights_floats(&op->conv)
                                               : cnn_winograd_weights_floats(&op->conv));
    else if (conv_packs(&op->conv)) /* taken before the folded w, which may then go back */
        wp = cnn_compile_take(cs, cnn_gemm_packed_floats(op->conv.oc, kdim));
    const size_t used = cs->folded_used;
    conv_fold_bn(cs, op, l);
    /* an add after it (ResNet: conv, BN, add, relu): not for the direct and depthwise kernels */
    if (op->conv.act.kind == CNN_ACT_NONE && !cnn_conv2d_is_depthwise(&op->conv) &&
        (u || !cnn_conv_direct_applies(&op->conv)))
        cnn_compile_fuse_residual(cs, op);
    cnn_compile_fuse_act(cs, op, &op->conv.act);
    if (!u && !wp) {
        if (cnn_conv_direct_applies(&op->conv))
            cnn_conv_direct_plan(cs, op); /* may fuse a following max pool */
        return;
    }
    if (wp)
        cnn_gemm_pack(wp, op->w, op->conv.oc, kdim); /* from the folded weights */
    else if (op->wino == 4)
        cnn_winograd4_transform_weights(u, op->w, &op->conv);
    else
        cnn_winograd_transform_weights(u, op->w, &op->conv);
    /* The planes stacked are one matrix whose 16-row panels are the planes' own; left for
     * cnn_gemm when a panel's copy cannot be allocated. */
    if (u && wino_packs(&op->conv))
        op->u_packed = cnn_gemm_pack_in_place(u, (op->wino + 2) * (op->wino + 2) * op->conv.oc,
                                              op->conv.c) == 0;
    op->u = u;
    op->wp = wp;
    if (cs->folded_used != used) { /* the folded w (taken last) served only to make u or wp */
        cs->folded_used -= (l->weight_count[0] + 15) & ~(size_t)15;
        op->w = NULL;
    }
}

static size_t conv_scratch(const struct cnn_op *op, int max_n)
{
    if (op->wd)
        return cnn_conv_direct_scratch_floats(&op->conv, op->pool.kh ? &op->pool : NULL);
    size_t n =
        op->wp && packs_from_input(&op->conv) ? 0 : cnn_conv2d_scratch_floats(&op->conv, max_n);
    if (op->wp) /* after the im2col chunk, if any (forward_rows_packed) */
        n += cnn_gemm_packed_scratch_floats(op->conv.c * op->conv.kh * op->conv.kw);
    size_t w4 = op->wino == 4 ? cnn_winograd4_scratch_floats(&op->conv, max_n) : 0;
    if (w4 > n)
        n = w4;
    if (op->u_packed) /* after the Winograd scratch (winograd_range) */
        n += cnn_gemm_packed_scratch_floats(op->conv.c);
    return n;
}

static void conv_run(const struct cnn_model *m, const struct cnn_op *op, const struct cnn_op_run *r)
{
    (void)m;
    const float *res = op->res ? r->in[1] : NULL;
    if (op->wino == 4)
        cnn_conv2d_winograd4_rows(r->out, res, r->in[0], op->u, op->u_packed, op->b, r->col,
                                  &op->conv, r->n, 0, r->n * ((op->conv.oh + 3) / 4));
    else if (op->u)
        cnn_conv2d_winograd_rows(r->out, res, r->in[0], op->u, op->u_packed, op->b, r->col,
                                 &op->conv, r->n, 0, r->n * ((op->conv.oh + 1) / 2));
    else if (op->wd)
        cnn_conv_direct_run_part(op, r, 0, 1);
    else if (res || op->wp) /* never depthwise (conv_plan) */
        forward_rows_res(r->out, res, r->in[0], op->w, op->wp, op->b, r->col, &op->conv, r->n, 0,
                         r->n * op->conv.oh);
    else
        cnn_conv2d_forward(r->out, r->in[0], op->w, op->b, r->col, &op->conv, r->n);
}

/* Output rows (Winograd: tile rows), or output channels when there are fewer than 4 rows
 * per part, as in a late ResNet stage at batch 1 (7 rows, 4 tile rows): each part then
 * unrolls or transforms the whole input itself but reads only its share of the weights.
 * A 1x1 conv (any stride) with more output channels than output pixels splits by channels
 * too: its weights (OC x C) then outweigh its input (C x pixels), and split by rows every
 * part read all the weights, from memory at batch 1.  ResNet-50 .onnx at batch 1 on 2 parts
 * (AVX-512 Xeon): its 14x14 1x1 convs to 1024 channels -8-13%, sum of op minima -3%; its
 * strided 28x28 -> 14x14 one -5%.  (3x3 convs keep the rows: split by channels, every part
 * would unroll the whole input.)  Depthwise: part 0 alone (its direct kernel is cheap). */
static int split_channels(const struct cnn_conv2d *p, int rows, int parts)
{
    if (p->groups != 1 || p->oc < 16 * parts)
        return 0;
    const int one_by_one = p->kh == 1 && p->kw == 1 && p->pad_t == 0 && p->pad_l == 0 &&
                           p->pad_b == 0 && p->pad_r == 0;
    return rows < 4 * parts || (one_by_one && (size_t)p->oc > (size_t)rows * p->ow);
}

/* Inputs of at most this many floats are transformed by every part rather than shared: a
 * second round costs a team barrier, more than transforming the CIFAR net's 32x16x16 and
 * 64x8x8 inputs twice (its batch 1 on a team of 2: median 0.099 -> 0.091 ms, AVX-512 Xeon). */
#define WINO_SHARE_MIN_FLOATS 16384

/* Whether a Winograd op split by output channels shares one input transform over its
 * parts (two rounds): when every tile row fits one chunk, as at batch 1 on 28x28 and smaller
 * maps, and the input is past WINO_SHARE_MIN_FLOATS; else each part transforms the whole
 * input itself. */
static int wino_shares_input(const struct cnn_op *op, int n, int parts)
{
    const struct cnn_conv2d *p = &op->conv;
    if (!op->u || parts < 2 || (size_t)p->c * p->h * p->w * n <= WINO_SHARE_MIN_FLOATS)
        return 0;
    const int t = op->wino, tile_rows = n * ((p->oh + t - 1) / t);
    if (!split_channels(p, tile_rows, parts))
        return 0;
    return (t == 4 ? cnn_winograd4_chunk_rows(p, n) : cnn_winograd_chunk_rows(p, n)) >= tile_rows;
}

static int conv_run_rounds(const struct cnn_op *op, int n, int parts)
{
    return wino_shares_input(op, n, parts) ? 2 : 1;
}

/* Round 0: input channels of V into part 0's scratch; round 1: output channels from it
 * (whole panels of 16 on packed U). */
static void run_part_wino_shared(const struct cnn_op *op, const struct cnn_op_run *r,
                                 const float *res, int part, int parts)
{
    const struct cnn_conv2d *p = &op->conv;
    size_t lo, hi;
    if (r->round == 0) {
        cnn_part_range((size_t)p->c, part, parts, &lo, &hi);
        if (op->wino == 4)
            cnn_conv2d_winograd4_input_part(r->col0, r->in[0], r->col, p, r->n, (int)lo, (int)hi);
        else
            cnn_conv2d_winograd_input_part(r->col0, r->in[0], r->col, p, r->n, (int)lo, (int)hi);
        return;
    }
    const size_t unit = op->u_packed ? CNN_GEMM_PACKED_ROWS : 1;
    cnn_part_range((size_t)p->oc / unit, part, parts, &lo, &hi);
    if (hi <= lo)
        return;
    lo *= unit;
    hi *= unit;
    if (op->wino == 4)
        cnn_conv2d_winograd4_channels_from(r->out, res, r->col0, op->u, op->u_packed, op->b, r->col,
                                           p, r->n, (int)lo, (int)hi);
    else
        cnn_conv2d_winograd_channels_from(r->out, res, r->col0, op->u, op->u_packed, op->b, r->col,
                                          p, r->n, (int)lo, (int)hi);
}

static void conv_run_part(const struct cnn_model *m, const struct cnn_op *op,
                          const struct cnn_op_run *r, int part, int parts)
{
    const struct cnn_conv2d *p = &op->conv;
    const float *res = op->res ? r->in[1] : NULL;
    size_t lo, hi;
    if (op->wd) {
        cnn_conv_direct_run_part(op, r, part, parts);
        return;
    }
    if (op->u) {
        const int t = op->wino, tile_rows = r->n * ((p->oh + t - 1) / t);
        const int by_oc = split_channels(p, tile_rows, parts);
        if (by_oc && wino_shares_input(op, r->n, parts)) {
            run_part_wino_shared(op, r, res, part, parts);
            return;
        }
        const size_t unit = by_oc && op->u_packed ? CNN_GEMM_PACKED_ROWS : 1;
        cnn_part_range(by_oc ? (size_t)p->oc / unit : (size_t)tile_rows, part, parts, &lo, &hi);
        lo *= unit;
        hi *= unit;
        if (hi <= lo)
            return;
        if (t == 4 && by_oc)
            cnn_conv2d_winograd4_channels(r->out, res, r->in[0], op->u, op->u_packed, op->b, r->col,
                                          p, r->n, (int)lo, (int)hi);
        else if (t == 4)
            cnn_conv2d_winograd4_rows(r->out, res, r->in[0], op->u, op->u_packed, op->b, r->col, p,
                                      r->n, (int)lo, (int)hi);
        else if (by_oc)
            cnn_conv2d_winograd_channels(r->out, res, r->in[0], op->u, op->u_packed, op->b, r->col,
                                         p, r->n, (int)lo, (int)hi);
        else
            cnn_conv2d_winograd_rows(r->out, res, r->in[0], op->u, op->u_packed, op->b, r->col, p,
                                     r->n, (int)lo, (int)hi);
        return;
    }
    if (cnn_conv2d_is_depthwise(p)) {
        if (part == 0)
            conv_run(m, op, r);
        return;
    }
    const int rows = r->n * p->oh;
    if (split_channels(p, rows, parts)) {
        const size_t kdim = (size_t)p->c * p->kh * p->kw, cols = (size_t)rows * p->ow;
        struct cnn_conv2d q = *p;
        /* in units of output channels: whole panels of them for packed weights */
        const size_t unit = op->wp ? CNN_GEMM_PACKED_ROWS : 1;
        cnn_part_range(((size_t)p->oc + unit - 1) / unit, part, parts, &lo, &hi);
        lo *= unit;
        hi = hi * unit < (size_t)p->oc ? hi * unit : (size_t)p->oc;
        if (hi <= lo)
            return;
        q.oc = (int)(hi - lo);
        forward_rows_res(r->out + lo * cols, res ? res + lo * cols : NULL, r->in[0],
                         op->w ? op->w + lo * kdim : NULL, op->wp ? op->wp + lo * kdim : NULL,
                         op->b ? op->b + lo : NULL, r->col, &q, r->n, 0, rows);
        return;
    }
    cnn_part_range((size_t)rows, part, parts, &lo, &hi);
    if (hi > lo)
        forward_rows_res(r->out, res, r->in[0], op->w, op->wp, op->b, r->col, p, r->n, (int)lo,
                         (int)hi);
}

static size_t max_size(size_t a, size_t b)
{
    return a > b ? a : b;
}

static int conv_train_alloc(struct cnn_trainer *t, int i, struct train_sizes *sz)
{
    const struct cnn_layer *l = &t->net->layers[i];
    struct train_layer *tl = &t->buf.tl[i];
    const struct cnn_conv2d *p = &l->p.conv;
    const int N = t->cfg.max_batch, wino = !t->cfg.im2col_only;
    struct cnn_conv2d q;
    sz->conv_weights = max_size(sz->conv_weights, l->weight_count[0]);
    sz->scratch = max_size(sz->scratch, cnn_conv2d_scratch_floats(p, N));
    sz->scratch = max_size(sz->scratch, cnn_conv2d_backward_scratch_floats(p, N));
    if (wino && cnn_conv2d_use_winograd(p)) {
        if (!(tl->wino_u = calloc(cnn_winograd_weights_floats(p), sizeof(float))))
            return -1;
        sz->wino_weights = max_size(sz->wino_weights, cnn_winograd_weights_floats(p));
    }
    if (wino && t->buf.tl[l->inputs[0]].needs_grad && cnn_conv2d_backward_winograd_shape(p, &q)) {
        if (!(tl->wino_ub = calloc(cnn_winograd_weights_floats(p), sizeof(float))))
            return -1;
        sz->scratch = max_size(sz->scratch, cnn_winograd_scratch_floats(&q, N));
    }
    return 0;
}

/* This step's transformed weights, for the forward and the backward. */
static void conv_train_prepare(struct cnn_trainer *t, int i, int training)
{
    const struct cnn_layer *l = &t->net->layers[i];
    const float *w = t->net->params + l->weight_offset[0];
    if (t->buf.tl[i].wino_u)
        cnn_winograd_transform_weights(t->buf.tl[i].wino_u, w, &l->p.conv);
    if (t->buf.tl[i].wino_ub && training)
        cnn_conv2d_backward_winograd_weights(t->buf.tl[i].wino_ub, t->buf.wflip, w, &l->p.conv);
}

/* Over whole images (depthwise: part 0 alone), without the fused activation. */
static int conv_train_forward(const struct train_fwd_job *job, int part, int parts,
                              struct cnn_err *err)
{
    (void)err;
    struct cnn_trainer *t = job->t;
    const struct train_view v = train_view(t, job->i, job->n);
    const int n = job->n;
    struct cnn_conv2d q = v.l->p.conv;
    const float *b = q.has_bias ? v.P + v.l->weight_offset[1] : NULL;
    const float *w = v.P + v.l->weight_offset[0];
    size_t lo, hi;
    q.act = train_no_act;
    if (cnn_conv2d_is_depthwise(&q)) {
        if (part == 0)
            cnn_conv2d_forward(v.dst, v.in, w, b, t->buf.scratch[0], &q, n);
        return 0;
    }
    cnn_part_range((size_t)n, part, parts, &lo, &hi); /* whole images */
    if (v.tl->wino_u) {
        const int th = (q.oh + 1) / 2; /* tile rows per image */
        cnn_conv2d_winograd_rows(v.dst, NULL, v.in, v.tl->wino_u, 0, b, t->buf.scratch[part], &q, n,
                                 (int)lo * th, (int)hi * th);
        return 0;
    }
    cnn_conv2d_forward_rows(v.dst, v.in, w, b, t->buf.scratch[part], &q, n, (int)lo * q.oh,
                            (int)hi * q.oh);
    return 0;
}

/* db over output channels [lo, hi) of part. */
static void conv_bias_part(const struct train_bwd_job *job, int part, int parts)
{
    struct cnn_trainer *t = job->t;
    const struct cnn_layer *l = &t->net->layers[job->i];
    const struct cnn_conv2d *p = &l->p.conv;
    struct cnn_conv2d q = *p;
    size_t lo, hi;
    cnn_part_range((size_t)p->oc, part, parts, &lo, &hi);
    q.oc = (int)(hi - lo);
    const size_t cols = (size_t)job->n * p->oh * p->ow;
    if (q.oc > 0)
        cnn_conv2d_backward(NULL, NULL, t->buf.grad + l->weight_offset[1] + lo,
                            job->dout + lo * cols, t->buf.tl[l->inputs[0]].out,
                            t->net->params + l->weight_offset[0], NULL, &q, job->n);
}

/* Over whole images, so parts add into disjoint input pixels but each needs its own
 * weight gradient: part 0 adds into t->buf.grad, part k into t->buf.dw_part[k], summed into
 * t->buf.grad in part order by conv_train_reduce (the same order every run: reproducible). */
static void conv_train_backward(const struct train_bwd_job *job, int part, int parts)
{
    struct cnn_trainer *t = job->t;
    const struct train_view v = train_view(t, job->i, job->n);
    const struct cnn_conv2d *p = &v.l->p.conv;
    const int n = job->n, trainable = v.tl->trainable;
    const float *w = v.P + v.l->weight_offset[0];
    float *dinp = v.dinp;
    float *dw = trainable ? t->buf.grad + v.l->weight_offset[0] : NULL;
    size_t lo, hi;
    if (trainable && p->has_bias)
        conv_bias_part(job, part, parts);
    if (!dinp && !dw)
        return;
    const size_t in_plane = (size_t)p->h * p->w;
    if (cnn_conv2d_is_depthwise(p)) {
        if (part == 0) {
            train_zero_fresh(job, 0, dinp, 0, (size_t)p->c * n * in_plane);
            cnn_conv2d_backward(dinp, dw, NULL, job->dout, v.in, w, t->buf.scratch[0], p, n);
        }
        return;
    }
    if (dw && part > 0) {
        memset(t->buf.dw_part[part], 0, v.l->weight_count[0] * sizeof(float));
        dw = t->buf.dw_part[part];
    }
    cnn_part_range((size_t)n, part, parts, &lo, &hi); /* whole images */
    const float *ub = v.tl->wino_ub;
    struct cnn_conv2d q;
    if (dinp && ub && cnn_conv2d_backward_winograd_shape(p, &q)) {
        const int th = (q.oh + 1) / 2; /* tile rows per image */
        /* a fresh gradient is written outright: the tiles cover every pixel of the images */
        cnn_conv2d_winograd_rows(dinp, job->fresh[0] ? NULL : dinp, job->dout, ub, 0, NULL,
                                 t->buf.scratch[part], &q, n, (int)lo * th, (int)hi * th);
        dinp = NULL; /* done: the rows below only add to dw */
    }
    if (dw && v.tl->wino_u) { /* dw in the transformed domain (2.25x fewer MACs) */
        const int th = (p->oh + 1) / 2;
        float *du = t->buf.du_part[part];
        memset(du, 0, cnn_winograd_weights_floats(p) * sizeof(float));
        cnn_winograd_weight_grad_rows(du, v.in, job->dout, t->buf.scratch[part], p, n, (int)lo * th,
                                      (int)hi * th);
        cnn_winograd_weight_grad_finish(dw, du, p);
        dw = NULL;
    }
    for (int c = 0; dinp && c < p->c; c++) /* this part's images in every channel */
        train_zero_fresh(job, 0, dinp, ((size_t)c * n + lo) * in_plane, (hi - lo) * in_plane);
    if (dinp || dw)
        cnn_conv2d_backward_rows(dinp, dw, job->dout, v.in, w, t->buf.scratch[part], p, n,
                                 (int)lo * p->oh, (int)hi * p->oh);
}

/* Adds the parts' private weight gradients into t->buf.grad, in part order. */
static void conv_train_reduce(struct cnn_trainer *t, int i)
{
    const struct cnn_layer *l = &t->net->layers[i];
    if (!t->buf.tl[i].trainable || t->buf.parts <= 1 || cnn_conv2d_is_depthwise(&l->p.conv))
        return;
    float *dw = t->buf.grad + l->weight_offset[0];
    for (int k = 1; k < t->buf.parts; k++)
        cnn_grad_accumulate(dw, t->buf.dw_part[k], l->weight_count[0]);
}

const struct cnn_layer_kind_ops cnn_kind_conv2d = {
    .name = "conv2d",
    .fields = conv_fields,
    .n_fields = (int)(sizeof conv_fields / sizeof conv_fields[0]),
    .slot_names = wb_slots,
    .learned_slots = 2,
    .decay_slots = 1,
    .infer = conv_infer,
    .fused_act = conv_act,
    .flops = conv_flops,
    .init = conv_init,
    .folded_floats = conv_folded_floats,
    .plan = conv_plan,
    .scratch_floats = conv_scratch,
    .run = conv_run,
    .run_part = conv_run_part,
    .run_rounds = conv_run_rounds,
    .train_alloc = conv_train_alloc,
    .train_prepare = conv_train_prepare,
    .train_forward = conv_train_forward,
    .train_backward = conv_train_backward,
    .train_reduce = conv_train_reduce,
};
