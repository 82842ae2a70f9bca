/* The ONNX operator table: one row per op_type, each mapping a node onto the existing layer
 * kinds (docs/onnx.md), or folding it when its inputs are constants (those rows live in
 * onnx_fold.c).  A new layer kind becomes one more row here. */
#include "onnx_internal.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

float *onnx_copy_floats(struct onnx_ctx *c, const struct onnx_tensor *t, float a)
{
    float *w = t->is_int ? NULL : malloc((t->count ? t->count : 1) * sizeof *w);
    if (!w) {
        onnx_node_err(c, t->is_int ? CNN_EFORMAT : CNN_ENOMEM,
                      t->is_int ? "weights are not float" : "out of memory");
        return NULL;
    }
    if (a == 1.0f)
        memcpy(w, t->f, t->count * sizeof *w);
    else
        for (size_t k = 0; k < t->count; k++)
            w[k] = a * t->f[k];
    return w;
}

/* Attribute name of nsp ints (2-D: H, W; 1-D: the length, on W) into v[2] (H first), def
 * where absent; 0, or -1 when the count is neither 0 nor nsp. */
static int spatial_ints(const Onnx__NodeProto *n, const char *name, int nsp, int64_t v[2],
                        int64_t def)
{
    int64_t a[2];
    int got = onnx_attr_ints(n, name, a, 2);
    v[0] = v[1] = def;
    if (got != 0 && got != nsp)
        return -1;
    v[0] = got == 2 ? a[0] : def;
    v[1] = got == 2 ? a[1] : got == 1 ? a[0] : def;
    return got;
}

/* Strides and pads (t, l, b, r) of a window op (conv, pools) over nsp spatial dims (2, or 1
 * on a (N, C, L) value seen as (N, C, 1, L)) from strides / pads / auto_pad. */
static int window(struct onnx_ctx *c, const Onnx__NodeProto *n, int nsp, int h, int w,
                  const int k[2], const int dil[2], int s[2], int pads[4])
{
    int64_t v[4];
    if (spatial_ints(n, "strides", nsp, v, 1) < 0)
        return onnx_node_err(c, CNN_EFORMAT, "unsupported: strides not %d-D", nsp);
    for (int d = 0; d < 2; d++) {
        if (v[d] < 1 || v[d] > 4096)
            return onnx_node_err(c, CNN_EFORMAT, "stride %lld out of range", (long long)v[d]);
        s[d] = (int)v[d];
    }
    int np = onnx_attr_ints(n, "pads", v, 4);
    if (np != 0 && np != 2 * nsp)
        return onnx_node_err(c, CNN_EFORMAT, "unsupported: %d pads (%d-D)", np, nsp);
    for (int d = 0; d < np; d++)
        if (v[d] < 0 || v[d] > 4096)
            return onnx_node_err(c, CNN_EFORMAT, "pad %lld out of range", (long long)v[d]);
    for (int d = 0; d < 4; d++) /* 1-D: (begin, end) of W */
        pads[d] = !np || (nsp == 1 && d % 2 == 0) ? 0 : (int)v[nsp == 1 ? d / 2 : d];
    int upper = onnx_attr_is(n, "auto_pad", "SAME_UPPER");
    if (upper || onnx_attr_is(n, "auto_pad", "SAME_LOWER")) {
        int in[2] = {h, w};
        for (int d = 0; d < 2; d++) {
            long long out = (in[d] + s[d] - 1) / s[d];
            long long total = (out - 1) * s[d] + (long long)(k[d] - 1) * dil[d] + 1 - in[d];
            if (total < 0)
                total = 0;
            int lo = (int)(upper ? total / 2 : total - total / 2);
            pads[d] = lo;
            pads[d + 2] = (int)total - lo;
        }
    } else if (onnx_attr_is(n, "auto_pad", "VALID")) {
        memset(pads, 0, 4 * sizeof *pads);
    } else if (onnx_attr(n, "auto_pad") && !onnx_attr_is(n, "auto_pad", "NOTSET")) {
        return onnx_node_err(c, CNN_EFORMAT, "unknown auto_pad");
    }
    return 0;
}

int onnx_image_input(struct onnx_ctx *c, struct onnx_value **x, int *ch, int *h, int *w)
{
    int rc = onnx_input_layer(c, 0, x);
    if (rc)
        return rc;
    if ((*x)->rank != 4 && (*x)->rank != 3)
        return onnx_node_err(c, CNN_EFORMAT, "unsupported: input of rank %d (needs N,C,H,W or N,C,L)",
                             (*x)->rank);
    onnx_layer_shape(c, (*x)->layer, ch, h, w);
    return 0;
}

static int op_conv(struct onnx_ctx *c, const Onnx__NodeProto *n)
{
    struct onnx_value *x;
    struct onnx_tensor *wt, *bt;
    int ch, h, w, rc;
    if ((rc = onnx_image_input(c, &x, &ch, &h, &w)) || (rc = onnx_input_const(c, 1, 0, &wt)) ||
        (rc = onnx_input_const(c, 2, 1, &bt)))
        return rc;
    int nsp = x->rank - 2; /* 1-D on (N, C, L) = (N, C, 1, L): kernel (1, k) */
    if (wt->ndims != nsp + 2)
        return onnx_node_err(c, CNN_EFORMAT,
                             "unsupported: weight of rank %d (%d-D conv on a rank %d input)",
                             wt->ndims, nsp, x->rank);
    int64_t v[2];
    if (spatial_ints(n, "dilations", nsp, v, 1) < 0)
        return onnx_node_err(c, CNN_EFORMAT, "unsupported: dilations not %d-D", nsp);
    int k[2] = {nsp == 2 ? (int)wt->dims[2] : 1, (int)wt->dims[nsp + 1]}, dil[2], s[2], pads[4];
    for (int d = 0; d < 2; d++) {
        if (v[d] < 1 || v[d] > 1024)
            return onnx_node_err(c, CNN_EFORMAT, "dilation out of range");
        dil[d] = (int)v[d];
    }
    int nk = spatial_ints(n, "kernel_shape", nsp, v, 0);
    if (nk < 0 || (nk && (v[0] != (nsp == 2 ? k[0] : 0) || v[1] != k[1])))
        return onnx_node_err(c, CNN_EFORMAT, "kernel_shape does not match the weights");
    if ((rc = window(c, n, nsp, h, w, k, dil, s, pads)))
        return rc;
    int64_t group = onnx_attr_int(n, "group", 1);
    if (group < 1 || group > ch || wt->dims[0] > ONNX_MAX_CHANNELS)
        return onnx_node_err(c, CNN_EFORMAT, "group %lld out of range", (long long)group);
    if (wt->dims[1] * group != ch)
        return onnx_node_err(c, CNN_EFORMAT,
                             "weight (%lld,%lld,..) does not fit %d channels in %lld groups",
                             (long long)wt->dims[0], (long long)wt->dims[1], ch, (long long)group);
    if (bt && (bt->count != (size_t)wt->dims[0] || bt->is_int))
        return onnx_node_err(c, CNN_EFORMAT, "bias of %zu values for %lld outputs", bt->count,
                             (long long)wt->dims[0]);
    struct cnn_layer_desc d = {.kind = CNN_LAYER_CONV2D};
    d.p.conv = (struct cnn_conv2d){.oc = (int)wt->dims[0],
                                   .kh = k[0],
                                   .kw = k[1],
                                   .sh = s[0],
                                   .sw = s[1],
                                   .dh = dil[0],
                                   .dw = dil[1],
                                   .pad_t = pads[0],
                                   .pad_l = pads[1],
                                   .pad_b = pads[2],
                                   .pad_r = pads[3],
                                   .groups = (int)group,
                                   .has_bias = bt != NULL};
    float *wts[2] = {onnx_copy_floats(c, wt, 1.0f), NULL};
    size_t cnt[2] = {wt->count, bt ? bt->count : 0};
    if (!wts[0])
        return onnx_err_code(c);
    if (bt && !(wts[1] = onnx_copy_floats(c, bt, 1.0f))) {
        free(wts[0]);
        return onnx_err_code(c);
    }
    return onnx_add_layer(c, &d, 1, &x->layer, x->rank, wts, cnt, 2);
}

/* A flattened (N, K) layer input: rank 2, or rank 4 with a 1x1 map. */
static int vector_input(struct onnx_ctx *c, struct onnx_value **x, int *k)
{
    int rc = onnx_input_layer(c, 0, x);
    if (rc)
        return rc;
    int ch, h, w;
    onnx_layer_shape(c, (*x)->layer, &ch, &h, &w);
    if (h != 1 || w != 1)
        return onnx_node_err(c, CNN_EFORMAT, "unsupported: input (%d,%d,%d) is not flat", ch, h, w);
    *k = ch;
    return 0;
}

/* Dense layer of out outputs over x with w (out, in) and optional bias b (both owned). */
static int add_dense(struct onnx_ctx *c, struct onnx_value *x, int out, float *w, size_t nw,
                     float *b)
{
    struct cnn_layer_desc d = {.kind = CNN_LAYER_DENSE};
    d.p.dense = (struct cnn_dense){.out = out, .has_bias = b != NULL};
    float *wts[2] = {w, b};
    size_t cnt[2] = {nw, (size_t)out};
    return onnx_add_layer(c, &d, 1, &x->layer, 2, wts, cnt, 2);
}

/* (rows, cols) -> (cols, rows), scaled by a; owned result. */
static float *transpose(struct onnx_ctx *c, const struct onnx_tensor *t, float a)
{
    size_t r = (size_t)t->dims[0], q = (size_t)t->dims[1];
    float *w = t->is_int ? NULL : malloc((t->count ? t->count : 1) * sizeof *w);
    if (!w) {
        onnx_node_err(c, t->is_int ? CNN_EFORMAT : CNN_ENOMEM, "weights not float or no memory");
        return NULL;
    }
    for (size_t i = 0; i < r; i++)
        for (size_t j = 0; j < q; j++)
            w[j * r + i] = a * t->f[i * q + j];
    return w;
}

static int op_gemm(struct onnx_ctx *c, const Onnx__NodeProto *n)
{
    struct onnx_value *x;
    struct onnx_tensor *bt, *ct;
    int k, rc;
    if ((rc = vector_input(c, &x, &k)) || (rc = onnx_input_const(c, 1, 0, &bt)) ||
        (rc = onnx_input_const(c, 2, 1, &ct)))
        return rc;
    if (onnx_attr_int(n, "transA", 0))
        return onnx_node_err(c, CNN_EFORMAT, "unsupported: transA on the data input");
    int trans_b = onnx_attr_int(n, "transB", 0) != 0;
    float alpha = onnx_attr_float(n, "alpha", 1.0f), beta = onnx_attr_float(n, "beta", 1.0f);
    if (bt->ndims != 2 || bt->dims[trans_b ? 1 : 0] != k)
        return onnx_node_err(c, CNN_EFORMAT, "B does not match the input's %d features", k);
    int64_t out = bt->dims[trans_b ? 0 : 1];
    if (out < 1 || out > ONNX_MAX_CHANNELS)
        return onnx_node_err(c, CNN_EFORMAT, "%lld outputs out of range", (long long)out);
    if (ct && (ct->is_int || (ct->count != 1 && ct->count != (size_t)out) ||
               (ct->ndims == 2 && ct->dims[0] != 1)))
        return onnx_node_err(c, CNN_EFORMAT, "unsupported: C of shape other than (N) or (1,N)");
    float *w = trans_b ? onnx_copy_floats(c, bt, alpha) : transpose(c, bt, alpha);
    float *b = ct && w ? malloc((size_t)out * sizeof *b) : NULL;
    if (!w || (ct && !b)) {
        free(w);
        return w ? onnx_node_err(c, CNN_ENOMEM, "out of memory") : onnx_err_code(c);
    }
    for (int64_t o = 0; ct && o < out; o++)
        b[o] = beta * ct->f[ct->count == 1 ? 0 : o];
    if (!ct)
        b = onnx_take_bias(c, out);
    return add_dense(c, x, (int)out, w, bt->count, b);
}

static int op_matmul(struct onnx_ctx *c, const Onnx__NodeProto *n)
{
    (void)n;
    struct onnx_value *x;
    struct onnx_tensor *bt;
    int k, rc;
    if ((rc = vector_input(c, &x, &k)) || (rc = onnx_input_const(c, 1, 0, &bt)))
        return rc;
    if (x->rank != 2)
        return onnx_node_err(c, CNN_EFORMAT, "unsupported: input of rank 4 (2-D MatMul only)");
    if (bt->ndims != 2 || bt->dims[0] != k || bt->dims[1] < 1 || bt->dims[1] > ONNX_MAX_CHANNELS)
        return onnx_node_err(c, CNN_EFORMAT, "unsupported: B is not a (%d, N) matrix", k);
    float *w = transpose(c, bt, 1.0f);
    if (!w)
        return onnx_err_code(c);
    return add_dense(c, x, (int)bt->dims[1], w, bt->count, onnx_take_bias(c, bt->dims[1]));
}

int onnx_add_act(struct onnx_ctx *c, enum cnn_act kind, float alpha, float beta)
{
    struct onnx_value *x;
    int rc = onnx_input_layer(c, 0, &x);
    if (rc)
        return rc;
    struct cnn_layer_desc d = {.kind = CNN_LAYER_ACT};
    d.p.act = (struct cnn_act_params){.kind = kind, .alpha = alpha, .beta = beta};
    return onnx_add_layer(c, &d, 1, &x->layer, x->rank, NULL, NULL, 0);
}

static int op_relu(struct onnx_ctx *c, const Onnx__NodeProto *n)
{
    (void)n;
    return onnx_add_act(c, CNN_ACT_RELU, 0, 0);
}

static int op_leaky_relu(struct onnx_ctx *c, const Onnx__NodeProto *n)
{
    return onnx_add_act(c, CNN_ACT_LEAKY_RELU, onnx_attr_float(n, "alpha", 0.01f), 0);
}

static int op_sigmoid(struct onnx_ctx *c, const Onnx__NodeProto *n)
{
    (void)n;
    return onnx_add_act(c, CNN_ACT_SIGMOID, 0, 0);
}

static int op_tanh(struct onnx_ctx *c, const Onnx__NodeProto *n)
{
    (void)n;
    return onnx_add_act(c, CNN_ACT_TANH, 0, 0);
}

/* Clip: min/max attributes before opset 11, optional scalar inputs 1 and 2 from 11 on. */
static int op_clip(struct onnx_ctx *c, const Onnx__NodeProto *n)
{
    float lim[2] = {-FLT_MAX, FLT_MAX};
    if (c->opset < 11) {
        lim[0] = onnx_attr_float(n, "min", lim[0]);
        lim[1] = onnx_attr_float(n, "max", lim[1]);
    }
    for (int k = 0; k < 2 && c->opset >= 11; k++) {
        struct onnx_tensor *t;
        int rc = onnx_input_const(c, k + 1, 1, &t);
        if (rc)
            return rc;
        if (t && (t->count != 1 || t->is_int))
            return onnx_node_err(c, CNN_EFORMAT, "unsupported: non-scalar or integer bound");
        if (t)
            lim[k] = t->f[0];
    }
    if (!(lim[0] <= lim[1]))
        return onnx_node_err(c, CNN_EFORMAT, "unsupported: min > max");
    return onnx_add_act(c, CNN_ACT_CLIP, fmaxf(lim[0], -FLT_MAX), fminf(lim[1], FLT_MAX));
}

static int add_pool(struct onnx_ctx *c, const Onnx__NodeProto *n, enum cnn_layer_kind kind)
{
    struct onnx_value *x;
    int ch, h, w, rc;
    if ((rc = onnx_image_input(c, &x, &ch, &h, &w)))
        return rc;
    if (n->n_output > 1 && n->output[1][0])
        return onnx_node_err(c, CNN_EFORMAT, "unsupported: the Indices output");
    int64_t v[2];
    int nsp = x->rank - 2; /* 1-D on (N, C, L) = (N, C, 1, L): kernel (1, k) */
    int nk = spatial_ints(n, "kernel_shape", nsp, v, 1);
    if (nk != nsp || v[0] < 1 || v[1] < 1 || v[0] > 4096 || v[1] > 4096)
        return onnx_node_err(c, CNN_EFORMAT, "unsupported: kernel_shape not %d-D", nsp);
    int k[2] = {(int)v[0], (int)v[1]}, dil[2], s[2], pads[4];
    int nd = spatial_ints(n, "dilations", nsp, v, 1); /* MaxPool from opset 10 */
    if (nd < 0 || v[0] < 1 || v[1] < 1 || v[0] > 4096 || v[1] > 4096)
        return onnx_node_err(c, CNN_EFORMAT, "dilations invalid");
    if (onnx_attr_int(n, "storage_order", 0) ||
        (kind == CNN_LAYER_AVGPOOL && (v[0] != 1 || v[1] != 1)))
        return onnx_node_err(c, CNN_EFORMAT, "unsupported: %s",
                             kind == CNN_LAYER_AVGPOOL ? "AveragePool dilations (opset 19)"
                                                       : "storage_order");
    dil[0] = (int)v[0];
    dil[1] = (int)v[1];
    if ((rc = window(c, n, nsp, h, w, k, dil, s, pads)))
        return rc;
    struct cnn_layer_desc d = {.kind = kind};
    d.p.pool =
        (struct cnn_pool2d){.kh = k[0],
                            .kw = k[1],
                            .sh = s[0],
                            .sw = s[1],
                            .pad_t = pads[0],
                            .pad_l = pads[1],
                            .pad_b = pads[2],
                            .pad_r = pads[3],
                            .ceil_mode = onnx_attr_int(n, "ceil_mode", 0) != 0,
                            .count_include_pad = onnx_attr_int(n, "count_include_pad", 0) != 0,
                            .dh = dil[0] > 1 ? dil[0] : 0,
                            .dw = dil[1] > 1 ? dil[1] : 0};
    return onnx_add_layer(c, &d, 1, &x->layer, x->rank, NULL, NULL, 0);
}

static int op_maxpool(struct onnx_ctx *c, const Onnx__NodeProto *n)
{
    return add_pool(c, n, CNN_LAYER_MAXPOOL);
}

static int op_avgpool(struct onnx_ctx *c, const Onnx__NodeProto *n)
{
    return add_pool(c, n, CNN_LAYER_AVGPOOL);
}

static int op_global_avgpool(struct onnx_ctx *c, const Onnx__NodeProto *n)
{
    (void)n;
    struct onnx_value *x;
    int ch, h, w, rc;
    if ((rc = onnx_image_input(c, &x, &ch, &h, &w)))
        return rc;
    struct cnn_layer_desc d = {.kind = CNN_LAYER_GLOBAL_AVGPOOL};
    return onnx_add_layer(c, &d, 1, &x->layer, x->rank, NULL, NULL, 0);
}

static int op_batchnorm(struct onnx_ctx *c, const Onnx__NodeProto *n)
{
    struct onnx_value *x;
    int rc = onnx_input_layer(c, 0, &x);
    if (rc)
        return rc;
    if (onnx_attr_int(n, "training_mode", 0) || (n->n_output > 1 && n->output[1][0]))
        return onnx_node_err(c, CNN_EFORMAT, "unsupported: training mode");
    if (c->opset < 9 && onnx_attr_int(n, "spatial", 1) == 0)
        return onnx_node_err(c, CNN_EFORMAT, "unsupported: spatial=0 (per-activation statistics)");
    int ch, h, w;
    onnx_layer_shape(c, x->layer, &ch, &h, &w);
    float *wts[4] = {NULL};
    size_t cnt[4] = {(size_t)ch, (size_t)ch, (size_t)ch, (size_t)ch};
    for (int k = 0; k < 4 && rc == 0; k++) { /* scale, B, mean, var = gamma, beta, mean, var */
        struct onnx_tensor *t;
        if ((rc = onnx_input_const(c, k + 1, 0, &t)) == 0 && t->count != (size_t)ch)
            rc = onnx_node_err(c, CNN_EFORMAT, "input %d has %zu values for %d channels", k + 1,
                               t->count, ch);
        if (rc == 0 && !(wts[k] = onnx_copy_floats(c, t, 1.0f)))
            rc = onnx_err_code(c);
    }
    if (rc) {
        for (int k = 0; k < 4; k++)
            free(wts[k]);
        return rc;
    }
    struct cnn_layer_desc d = {.kind = CNN_LAYER_BATCHNORM};
    d.p.bn.eps = onnx_attr_float(n, "epsilon", 1e-5f);
    return onnx_add_layer(c, &d, 1, &x->layer, x->rank, wts, cnt, 4);
}

static int op_lrn(struct onnx_ctx *c, const Onnx__NodeProto *n)
{
    struct onnx_value *x;
    int ch, h, w, rc;
    if ((rc = onnx_image_input(c, &x, &ch, &h, &w)))
        return rc;
    int64_t size = onnx_attr_int(n, "size", 0);
    if (size < 1 || size > 1023)
        return onnx_node_err(c, CNN_EFORMAT, "size %lld out of range", (long long)size);
    struct cnn_layer_desc d = {.kind = CNN_LAYER_LRN};
    d.p.lrn = (struct cnn_lrn){.size = (int)size,
                               .alpha = onnx_attr_float(n, "alpha", 1e-4f),
                               .beta = onnx_attr_float(n, "beta", 0.75f),
                               .k = onnx_attr_float(n, "bias", 1.0f)};
    return onnx_add_layer(c, &d, 1, &x->layer, x->rank, NULL, NULL, 0);
}

/* Identity, and Dropout at inference (the mask output unsupported, training mode too). */
static int op_identity(struct onnx_ctx *c, const Onnx__NodeProto *n)
{
    struct onnx_value *x;
    int rc = onnx_input(c, 0, 0, &x);
    if (rc)
        return rc;
    if (strcmp(n->op_type, "Dropout") == 0) {
        struct onnx_tensor *train;
        if (n->n_output > 1 && n->output[1][0])
            return onnx_node_err(c, CNN_EFORMAT, "unsupported: the mask output");
        if ((rc = onnx_input_const(c, 2, 1, &train)))
            return rc;
        if (train && train->count && (train->is_int ? train->i[0] != 0 : train->f[0] != 0))
            return onnx_node_err(c, CNN_EFORMAT, "unsupported: training mode");
    }
    return onnx_alias(c, 0, x);
}

static int op_concat(struct onnx_ctx *c, const Onnx__NodeProto *n)
{
    struct onnx_value *x;
    int rc = onnx_input(c, 0, 0, &x);
    if (rc)
        return rc;
    int64_t axis = onnx_attr_int(n, "axis", 1);
    if (x->t)
        return onnx_concat_consts(c, n, axis);
    if (n->n_input > CNN_MAX_INPUTS)
        return onnx_node_err(c, CNN_EFORMAT, "%zu inputs (at most %d)", n->n_input, CNN_MAX_INPUTS);
    /* the engine's axis: 1 is C; H and W are 2 and 3 of (N, C, H, W), L is 2 of (N, C, L) */
    const int a = onnx_norm_axis(axis, x->rank);
    struct cnn_layer_desc d = {.kind = CNN_LAYER_CONCAT};
    if (a == 1)
        d.p.cat.axis = CNN_CONCAT_CHANNELS;
    else if (x->rank == 4 && a == 2)
        d.p.cat.axis = CNN_CONCAT_H;
    else if (a == x->rank - 1 && a > 1)
        d.p.cat.axis = CNN_CONCAT_W;
    else
        return onnx_node_err(c, CNN_EFORMAT, "unsupported: axis %lld of rank %d (%s)",
                             (long long)axis, x->rank, a == 0 ? "the batch" : "out of range");
    int in[CNN_MAX_INPUTS];
    for (size_t k = 0; k < n->n_input; k++) {
        struct onnx_value *v;
        if ((rc = onnx_input_layer(c, (int)k, &v)))
            return rc;
        if (v->rank != x->rank)
            return onnx_node_err(c, CNN_EFORMAT, "inputs of different ranks");
        in[k] = v->layer;
    }
    return onnx_add_layer(c, &d, (int)n->n_input, in, x->rank, NULL, NULL, 0);
}

/* Add of two layer outputs of one shape; with a constant operand see onnx_op_arith (or
 * onnx_take_bias). */
static int op_add(struct onnx_ctx *c, const Onnx__NodeProto *n)
{
    struct onnx_value *a, *b;
    int rc;
    if ((rc = onnx_input(c, 0, 0, &a)) || (rc = onnx_input(c, 1, 0, &b)))
        return rc;
    if (a->t || b->t)
        return onnx_op_arith(c, n);
    if (a->rank != b->rank)
        return onnx_node_err(c, CNN_EFORMAT, "unsupported: broadcast");
    int in[2] = {a->layer, b->layer};
    struct cnn_layer_desc d = {.kind = CNN_LAYER_ADD};
    return onnx_add_layer(c, &d, 2, in, a->rank, NULL, NULL, 0);
}

/* Softmax and LogSoftmax.  Axis 1: on (N, K) over the features of each item; before opset
 * 13 the axis-1 softmax of a (N, C, H, W) or (N, C, L) input is over the flattened C*H*W, from
 * 13 on over C at each position (span channels, no flatten).  The last axis of (N, C, H, W)
 * or (N, C, L) = (N, C, 1, L): over each row (span row; before opset 13 the coercion to 2-D
 * at the last axis is the same).  Axis 2 of (N, C, H, W) before opset 13: over each H*W plane
 * (span plane).  Others (the batch; H alone from opset 13): unsupported. */
static int op_softmax(struct onnx_ctx *c, const Onnx__NodeProto *n)
{
    struct onnx_value *x;
    int rc = onnx_input_layer(c, 0, &x);
    if (rc)
        return rc;
    int ch, h, w;
    onnx_layer_shape(c, x->layer, &ch, &h, &w);
    int axis = onnx_norm_axis(onnx_attr_int(n, "axis", c->opset < 13 ? 1 : -1), x->rank);
    struct cnn_layer_desc d = {.kind = strcmp(n->op_type, "LogSoftmax") == 0 ? CNN_LAYER_LOG_SOFTMAX
                                                                             : CNN_LAYER_SOFTMAX};
    if (axis == 1) {
        int per_position = c->opset >= 13 && x->rank > 2 && (h > 1 || w > 1);
        int in = per_position ? x->layer : onnx_flatten_layer(c, x, 0);
        if (in < 0)
            return in;
        return onnx_add_layer(c, &d, 1, &in, per_position ? x->rank : 2, NULL, NULL, 0);
    }
    if (axis > 1 && axis == x->rank - 1)
        d.p.sm.span = CNN_SOFTMAX_ROW;
    else if (axis == 2 && x->rank == 4 && c->opset < 13)
        d.p.sm.span = CNN_SOFTMAX_PLANE;
    else
        return onnx_node_err(c, CNN_EFORMAT,
                             "unsupported: softmax axis %d of rank %d (%s)", axis, x->rank,
                             axis == 0 ? "the batch" : "H alone");
    return onnx_add_layer(c, &d, 1, &x->layer, x->rank, NULL, NULL, 0);
}

/* One row per ONNX operator of the default domain (the rows onto the kinds added for ONNX
 * live in onnx_kinds.c, the folding ones in onnx_fold.c, the shape ones in onnx_shape.c). */
static const struct {
    const char *op;
    onnx_op_fn fn;
} OPS[] = {
    {"Conv", op_conv},
    {"Gemm", op_gemm},
    {"MatMul", op_matmul},
    {"Relu", op_relu},
    {"LeakyRelu", op_leaky_relu},
    {"Sigmoid", op_sigmoid},
    {"Tanh", op_tanh},
    {"Clip", op_clip},
    {"MaxPool", op_maxpool},
    {"AveragePool", op_avgpool},
    {"GlobalAveragePool", op_global_avgpool},
    {"BatchNormalization", op_batchnorm},
    {"LRN", op_lrn},
    {"Dropout", op_identity},
    {"Identity", op_identity},
    {"Constant", onnx_op_constant},
    {"Flatten", onnx_op_flatten},
    {"Concat", op_concat},
    {"Add", op_add},
    {"Sub", onnx_op_arith},
    {"Mul", onnx_op_arith},
    {"Div", onnx_op_arith},
    {"Softmax", op_softmax},
    {"LogSoftmax", op_softmax},
    {"HardSigmoid", onnx_op_hard_sigmoid},
    {"HardSwish", onnx_op_hard_swish},
    {"GlobalMaxPool", onnx_op_global_maxpool},
    {"PRelu", onnx_op_prelu},
    {"Pad", onnx_op_pad},
    {"Reshape", onnx_op_reshape},
    {"Transpose", onnx_op_transpose},
    {"Shape", onnx_op_shape},
    {"Gather", onnx_op_gather},
    {"Unsqueeze", onnx_op_squeeze},
    {"Squeeze", onnx_op_squeeze},
    {"Cast", onnx_op_cast},
};

onnx_op_fn onnx_op_find(const char *op_type)
{
    for (size_t k = 0; k < sizeof OPS / sizeof OPS[0]; k++)
        if (strcmp(OPS[k].op, op_type) == 0)
            return OPS[k].fn;
    return NULL;
}
