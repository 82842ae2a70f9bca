/* Model -> ONNX, the nodes of each layer kind (core/onnx_export.c builds the model around
 * them): one node per stored layer, plus a node for a fused activation and a Flatten/Reshape
 * where the rank must change (ONNX Gemm and Softmax take (N, C), Conv and pooling
 * (N, C, H, W)); weights become raw little-endian float initializers that borrow the model's
 * parameter block. */
#include "layer_kind.h"
#include "onnx_export_internal.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "raw_data holds little-endian floats");

#define OX_SHAPE_NC11 "cnn.shape_n_c_1_1"

/* The weight slots of layer l as initializers "<layer>.<slot>"; names[s] gets each name. */
static int ox_weights(struct ox *x, const struct cnn_layer *l, const char **names)
{
    const char *const *slot = cnn_layer_kind_ops(l->kind)->slot_names;
    for (int s = 0; s < l->n_weights; s++) {
        int64_t d[CNN_MAX_WEIGHT_DIMS];
        for (int k = 0; k < l->weight_ndims[s]; k++)
            d[k] = l->weight_dims[s][k];
        names[s] = slot ? cnn_onnx_write_str(&x->w, "%s.%s", l->name, slot[s])
                        : cnn_onnx_write_str(&x->w, "%s.%d", l->name, s);
        int rc = cnn_onnx_write_tensor(&x->w, names[s], ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT,
                                       l->weight_ndims[s], d, x->m->params + l->weight_offset[s],
                                       l->weight_count[s] * sizeof(float));
        if (rc)
            return rc;
    }
    return 0;
}

/* The output of layer i as (N, C*H*W): a Flatten node the first time one is needed. */
static const char *ox_need2(struct ox *x, int i)
{
    if (x->rank[i] == 2)
        return x->val[i];
    if (x->as2[i])
        return x->as2[i];
    const char *out = cnn_onnx_write_str(&x->w, "%s/flat", x->val[i]);
    Onnx__NodeProto *n = out ? cnn_onnx_write_node(&x->w, "Flatten", out, 1) : NULL;
    if (!n || cnn_onnx_write_attr_int(&x->w, n, "axis", 1))
        return NULL;
    n->input[0] = (char *)x->val[i];
    return x->as2[i] = out;
}

/* The output of layer i as (N, C, H, W): a (N, C) value goes through Reshape [0, -1, 1, 1]. */
static const char *ox_need4(struct ox *x, int i)
{
    static const int64_t shape[4] = {0, -1, 1, 1};
    static const int64_t four = 4;
    if (x->rank[i] == 4)
        return x->val[i];
    if (x->as4[i])
        return x->as4[i];
    if (!x->have_shape4) {
        if (cnn_onnx_write_tensor(&x->w, OX_SHAPE_NC11, ONNX__TENSOR_PROTO__DATA_TYPE__INT64, 1,
                                  &four, shape, sizeof shape))
            return NULL;
        x->have_shape4 = 1;
    }
    const char *out = cnn_onnx_write_str(&x->w, "%s/nchw", x->val[i]);
    Onnx__NodeProto *n = out ? cnn_onnx_write_node(&x->w, "Reshape", out, 2) : NULL;
    if (!n)
        return NULL;
    n->input[0] = (char *)x->val[i];
    n->input[1] = OX_SHAPE_NC11;
    return x->as4[i] = out;
}

/* Hard swish from `in` to `out`: HardSwish from opset 14, before that
 * Mul(x, HardSigmoid(x; alpha 1/6, beta 1/2)) (the same function). */
static int ox_hard_swish(struct ox *x, const char *in, const char *out)
{
    if (x->opset >= 14) {
        Onnx__NodeProto *n = cnn_onnx_write_node(&x->w, "HardSwish", out, 1);
        if (!n)
            return cnn_onnx_write_oom(&x->w);
        n->input[0] = (char *)in;
        return 0;
    }
    const char *gate = cnn_onnx_write_str(&x->w, "%s/hsig", out);
    Onnx__NodeProto *h = gate ? cnn_onnx_write_node(&x->w, "HardSigmoid", gate, 1) : NULL;
    if (!h || cnn_onnx_write_attr_float(&x->w, h, "alpha", 1.0f / 6.0f) ||
        cnn_onnx_write_attr_float(&x->w, h, "beta", 0.5f))
        return cnn_onnx_write_oom(&x->w);
    h->input[0] = (char *)in;
    Onnx__NodeProto *n = cnn_onnx_write_node(&x->w, "Mul", out, 2);
    if (!n)
        return cnn_onnx_write_oom(&x->w);
    n->input[0] = (char *)in;
    n->input[1] = (char *)gate;
    return 0;
}

/* Activation a of layer l from value `in` to `out`; Identity for none. */
static int ox_act(struct ox *x, const struct cnn_layer *l, const struct cnn_act_params *a,
                  const char *in, const char *out)
{
    const char *op = NULL;
    switch (a->kind) {
    case CNN_ACT_NONE:
        op = "Identity";
        break;
    case CNN_ACT_RELU:
        op = "Relu";
        break;
    case CNN_ACT_LEAKY_RELU:
        op = "LeakyRelu";
        break;
    case CNN_ACT_CLIP:
        op = "Clip";
        break;
    case CNN_ACT_SIGMOID:
        op = "Sigmoid";
        break;
    case CNN_ACT_TANH:
        op = "Tanh";
        break;
    case CNN_ACT_HARD_SIGMOID:
        op = "HardSigmoid";
        break;
    case CNN_ACT_HARD_SWISH:
        return ox_hard_swish(x, in, out);
    case CNN_ACT_COUNT:
        break;
    }
    if (!op)
        return cnn_err_set(x->err, CNN_EINVAL,
                           "onnx export: layer %s: activation %d has no ONNX form", l->name,
                           (int)a->kind);
    const int clip_inputs = a->kind == CNN_ACT_CLIP && x->opset >= 11;
    Onnx__NodeProto *n = cnn_onnx_write_node(&x->w, op, out, clip_inputs ? 3 : 1);
    if (!n)
        return cnn_onnx_write_oom(&x->w);
    n->input[0] = (char *)in;
    if (a->kind == CNN_ACT_LEAKY_RELU)
        return cnn_onnx_write_attr_float(&x->w, n, "alpha", a->alpha);
    if (a->kind == CNN_ACT_HARD_SIGMOID)
        return cnn_onnx_write_attr_float(&x->w, n, "alpha", a->alpha) ||
                       cnn_onnx_write_attr_float(&x->w, n, "beta", a->beta)
                   ? CNN_ENOMEM
                   : 0;
    if (a->kind != CNN_ACT_CLIP)
        return 0;
    if (!clip_inputs) /* Clip-6: min and max are attributes */
        return cnn_onnx_write_attr_float(&x->w, n, "min", a->alpha) ||
                       cnn_onnx_write_attr_float(&x->w, n, "max", a->beta)
                   ? CNN_ENOMEM
                   : 0;
    const char *lo, *hi;
    int rc = cnn_onnx_write_scalar(&x->w, out, "min", a->alpha, &lo);
    if (rc == 0)
        rc = cnn_onnx_write_scalar(&x->w, out, "max", a->beta, &hi);
    if (rc == 0) {
        n->input[1] = (char *)lo;
        n->input[2] = (char *)hi;
    }
    return rc;
}

/* kernel_shape, strides and pads (top, left, bottom, right = ONNX's begins then ends). */
static int ox_window(struct ox *x, Onnx__NodeProto *n, int kh, int kw, int sh, int sw,
                     const int pad[4])
{
    const int64_t k[2] = {kh, kw}, s[2] = {sh, sw};
    const int64_t p[4] = {pad[0], pad[1], pad[2], pad[3]};
    return cnn_onnx_write_attr_ints(&x->w, n, "kernel_shape", k, 2) ||
                   cnn_onnx_write_attr_ints(&x->w, n, "strides", s, 2) ||
                   cnn_onnx_write_attr_ints(&x->w, n, "pads", p, 4)
               ? CNN_ENOMEM
               : 0;
}

static int ox_conv(struct ox *x, int i, const char *out)
{
    const struct cnn_layer *l = &x->m->layers[i];
    const struct cnn_conv2d *p = &l->p.conv;
    const char *w[CNN_MAX_WEIGHTS_PER_LAYER];
    const char *in = ox_need4(x, l->inputs[0]);
    if (!in)
        return cnn_onnx_write_oom(&x->w);
    int rc = ox_weights(x, l, w);
    if (rc)
        return rc;
    Onnx__NodeProto *n = cnn_onnx_write_node(&x->w, "Conv", out, 1 + l->n_weights);
    if (!n)
        return cnn_onnx_write_oom(&x->w);
    n->input[0] = (char *)in;
    for (int s = 0; s < l->n_weights; s++)
        n->input[1 + s] = (char *)w[s];
    const int pad[4] = {p->pad_t, p->pad_l, p->pad_b, p->pad_r};
    const int64_t dil[2] = {p->dh, p->dw};
    x->rank[i] = 4;
    return ox_window(x, n, p->kh, p->kw, p->sh, p->sw, pad) ||
                   cnn_onnx_write_attr_ints(&x->w, n, "dilations", dil, 2) ||
                   cnn_onnx_write_attr_int(&x->w, n, "group", p->groups)
               ? CNN_ENOMEM
               : 0;
}

/* Gemm (transB = 1: w is (OUT, IN)); before opset 11 C is required, a zero bias then. */
static int ox_dense(struct ox *x, int i, const char *out)
{
    const struct cnn_layer *l = &x->m->layers[i];
    const char *w[CNN_MAX_WEIGHTS_PER_LAYER];
    const char *in = ox_need2(x, l->inputs[0]);
    if (!in)
        return cnn_onnx_write_oom(&x->w);
    int rc = ox_weights(x, l, w);
    if (rc)
        return rc;
    if (!l->p.dense.has_bias && x->opset < 11) {
        const int64_t d = l->p.dense.out;
        float *zero = cnn_onnx_write_alloc(&x->w, (size_t)d * sizeof *zero);
        w[1] = cnn_onnx_write_str(&x->w, "%s.zero_bias", l->name);
        if (!zero || (rc = cnn_onnx_write_tensor(&x->w, w[1], ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT,
                                                 1, &d, zero, (size_t)d * sizeof *zero)))
            return zero ? rc : cnn_onnx_write_oom(&x->w);
    }
    const int n_in = l->p.dense.has_bias || x->opset < 11 ? 3 : 2;
    Onnx__NodeProto *n = cnn_onnx_write_node(&x->w, "Gemm", out, n_in);
    if (!n)
        return cnn_onnx_write_oom(&x->w);
    n->input[0] = (char *)in;
    for (int s = 1; s < n_in; s++)
        n->input[s] = (char *)w[s - 1];
    x->rank[i] = 2;
    return cnn_onnx_write_attr_int(&x->w, n, "transB", 1);
}

/* Output length of a pooled axis as ONNX (opsets 7-17) computes it. */
static long long onnx_pool_out(int in, int pads, int k, int s, int ceil_mode)
{
    long long span = (long long)in + pads - k;
    if (span < 0)
        return -1;
    return (ceil_mode ? (span + s - 1) / s : span / s) + 1;
}

static int ox_pool(struct ox *x, int i, const char *out)
{
    const struct cnn_layer *l = &x->m->layers[i];
    const struct cnn_pool2d *p = &l->p.pool;
    const int ceil_mode = p->ceil_mode && x->opset >= 10; /* MaxPool-10, AveragePool-10 */
    const int dh = cnn_pool_dil(p->dh), dw = cnn_pool_dil(p->dw), dilated = dh > 1 || dw > 1;
    if (dilated && x->opset < 10)
        return cnn_err_set(x->err, CNN_EINVAL,
                           "onnx export: layer %s: MaxPool dilations need opset 10 or later",
                           l->name);
    if (onnx_pool_out(p->h, p->pad_t + p->pad_b, cnn_pool_extent(p->kh, dh), p->sh, ceil_mode) !=
            p->oh ||
        onnx_pool_out(p->w, p->pad_l + p->pad_r, cnn_pool_extent(p->kw, dw), p->sw, ceil_mode) !=
            p->ow)
        return cnn_err_set(x->err, CNN_EINVAL,
                           "onnx export: layer %s: pooled size %dx%d has no ONNX form at opset %d "
                           "(ceil_mode needs opset 10; no window may start in the end padding)",
                           l->name, p->oh, p->ow, x->opset);
    const char *in = ox_need4(x, l->inputs[0]);
    const int avg = l->kind == CNN_LAYER_AVGPOOL;
    Onnx__NodeProto *n =
        in ? cnn_onnx_write_node(&x->w, avg ? "AveragePool" : "MaxPool", out, 1) : NULL;
    if (!n)
        return cnn_onnx_write_oom(&x->w);
    n->input[0] = (char *)in;
    x->rank[i] = 4;
    const int pad[4] = {p->pad_t, p->pad_l, p->pad_b, p->pad_r};
    int rc = ox_window(x, n, p->kh, p->kw, p->sh, p->sw, pad);
    if (rc == 0 && ceil_mode)
        rc = cnn_onnx_write_attr_int(&x->w, n, "ceil_mode", 1);
    if (rc == 0 && avg && p->count_include_pad)
        rc = cnn_onnx_write_attr_int(&x->w, n, "count_include_pad", 1);
    const int64_t dil[2] = {dh, dw};
    if (rc == 0 && dilated)
        rc = cnn_onnx_write_attr_ints(&x->w, n, "dilations", dil, 2);
    return rc;
}

/* A node `op` reading layer i's input 0 as it is (rank kept) or as (N, C, H, W) (want 4). */
static Onnx__NodeProto *ox_unary(struct ox *x, int i, const char *op, const char *out, int want,
                                 int n_in)
{
    const struct cnn_layer *l = &x->m->layers[i];
    const int src = l->inputs[0];
    const char *in = want == 4 ? ox_need4(x, src) : want == 2 ? ox_need2(x, src) : x->val[src];
    Onnx__NodeProto *n = in ? cnn_onnx_write_node(&x->w, op, out, n_in) : NULL;
    if (!n)
        return NULL;
    n->input[0] = (char *)in;
    x->rank[i] = want ? want : x->rank[src];
    return n;
}

static int ox_batchnorm(struct ox *x, int i, const char *out)
{
    const struct cnn_layer *l = &x->m->layers[i];
    const char *w[CNN_MAX_WEIGHTS_PER_LAYER];
    int rc = ox_weights(x, l, w);
    if (rc)
        return rc;
    Onnx__NodeProto *n = ox_unary(x, i, "BatchNormalization", out, 0, 5);
    if (!n)
        return cnn_onnx_write_oom(&x->w);
    for (int s = 0; s < 4; s++)
        n->input[1 + s] = (char *)w[s];
    return cnn_onnx_write_attr_float(&x->w, n, "epsilon", l->p.bn.eps);
}

/* Dropout: ratio an attribute before opset 12, an input from 12 on. */
static int ox_dropout(struct ox *x, int i, const char *out)
{
    const struct cnn_layer *l = &x->m->layers[i];
    Onnx__NodeProto *n = ox_unary(x, i, "Dropout", out, 0, x->opset >= 12 ? 2 : 1);
    if (!n)
        return cnn_onnx_write_oom(&x->w);
    if (x->opset < 12)
        return cnn_onnx_write_attr_float(&x->w, n, "ratio", l->p.dropout_rate);
    const char *ratio;
    int rc = cnn_onnx_write_scalar(&x->w, out, "ratio", l->p.dropout_rate, &ratio);
    n->input[1] = (char *)ratio;
    return rc;
}

static int ox_lrn(struct ox *x, int i, const char *out)
{
    const struct cnn_lrn *p = &x->m->layers[i].p.lrn;
    Onnx__NodeProto *n = ox_unary(x, i, "LRN", out, 4, 1);
    if (!n)
        return cnn_onnx_write_oom(&x->w);
    return cnn_onnx_write_attr_int(&x->w, n, "size", p->size) ||
                   cnn_onnx_write_attr_float(&x->w, n, "alpha", p->alpha) ||
                   cnn_onnx_write_attr_float(&x->w, n, "beta", p->beta) ||
                   cnn_onnx_write_attr_float(&x->w, n, "bias", p->k)
               ? CNN_ENOMEM
               : 0;
}

/* Add (Sum for other than two inputs) or Concat on axis 1 (channels), 2 (H) or 3 (W, on
 * 4-D inputs); inputs brought to one rank. */
static int ox_merge(struct ox *x, int i, const char *out)
{
    const struct cnn_layer *l = &x->m->layers[i];
    const int concat = l->kind == CNN_LAYER_CONCAT;
    const int axis = concat ? 1 + l->p.cat.axis : 1;
    int want = axis > 1 ? 4 : 2;
    for (int k = 0; k < l->n_inputs; k++)
        if (x->rank[l->inputs[k]] == 4)
            want = 4;
    const char *in[CNN_MAX_INPUTS]; /* conversions first: nodes stay in topological order */
    for (int k = 0; k < l->n_inputs; k++)
        if (!(in[k] = want == 4 ? ox_need4(x, l->inputs[k]) : ox_need2(x, l->inputs[k])))
            return cnn_onnx_write_oom(&x->w);
    const char *op = concat ? "Concat" : l->n_inputs == 2 ? "Add" : "Sum";
    Onnx__NodeProto *n = cnn_onnx_write_node(&x->w, op, out, l->n_inputs);
    if (!n)
        return cnn_onnx_write_oom(&x->w);
    for (int k = 0; k < l->n_inputs; k++)
        n->input[k] = (char *)in[k];
    x->rank[i] = want;
    return concat ? cnn_onnx_write_attr_int(&x->w, n, "axis", axis) : 0;
}

/* The weight slots of layer l (prelu, scale_shift: 1 or C floats each; scale_shift per
 * element C*H*W) as initializers that broadcast over a value of the given rank: a scalar,
 * (C, 1, 1) or (C), or (C, H, W). */
static int ox_channel_weights(struct ox *x, const struct cnn_layer *l, int rank, const char **names)
{
    const char *const *slot = cnn_layer_kind_ops(l->kind)->slot_names;
    const int per_element = l->h * l->w > 1 && l->weight_count[0] == (size_t)l->c * l->h * l->w;
    for (int s = 0; s < l->n_weights; s++) {
        const int64_t d[3] = {per_element ? l->c : (int64_t)l->weight_count[s],
                              per_element ? l->h : 1, per_element ? l->w : 1};
        const int ndims = l->weight_count[s] == 1 ? 0 : rank == 4 ? 3 : 1;
        names[s] = cnn_onnx_write_str(&x->w, "%s.%s", l->name, slot[s]);
        int rc = cnn_onnx_write_tensor(&x->w, names[s], ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, ndims,
                                       d, x->m->params + l->weight_offset[s],
                                       l->weight_count[s] * sizeof(float));
        if (rc)
            return rc;
    }
    return 0;
}

/* PRelu (slope per channel or shared), or scale_shift as Mul by scale then Add of shift. */
static int ox_per_channel(struct ox *x, int i, const char *out)
{
    const struct cnn_layer *l = &x->m->layers[i];
    const int prelu = l->kind == CNN_LAYER_PRELU;
    const char *w[CNN_MAX_WEIGHTS_PER_LAYER];
    int rc = ox_channel_weights(x, l, x->rank[l->inputs[0]], w);
    if (rc)
        return rc;
    const char *scaled = prelu ? out : cnn_onnx_write_str(&x->w, "%s/scaled", out);
    Onnx__NodeProto *n = scaled ? ox_unary(x, i, prelu ? "PRelu" : "Mul", scaled, 0, 2) : NULL;
    if (!n)
        return cnn_onnx_write_oom(&x->w);
    n->input[1] = (char *)w[0];
    if (prelu)
        return 0;
    if (!(n = cnn_onnx_write_node(&x->w, "Add", out, 2)))
        return cnn_onnx_write_oom(&x->w);
    n->input[0] = (char *)scaled;
    n->input[1] = (char *)w[1];
    return 0;
}

/* An int64 initializer "<base>.<what>" of n values; *name gets its name. */
static int ox_ints(struct ox *x, const char *base, const char *what, const int64_t *v, int64_t n,
                   const char **name)
{
    int64_t *copy = cnn_onnx_write_alloc(&x->w, (size_t)n * sizeof *copy);
    *name = cnn_onnx_write_str(&x->w, "%s.%s", base, what);
    if (!copy || !*name)
        return cnn_onnx_write_oom(&x->w);
    memcpy(copy, v, (size_t)n * sizeof *copy);
    return cnn_onnx_write_tensor(&x->w, *name, ONNX__TENSOR_PROTO__DATA_TYPE__INT64, 1, &n, copy,
                                 (size_t)n * sizeof *copy);
}

/* Reshape of each channel plane: Reshape to [0, C, h, w] (initializer `<layer>.shape`). */
static int ox_reshape(struct ox *x, int i, const char *out)
{
    const struct cnn_layer *l = &x->m->layers[i];
    const int64_t shape[4] = {0, l->c, l->h, l->w};
    const char *name;
    int rc = ox_ints(x, l->name, "shape", shape, 4, &name);
    if (rc)
        return rc;
    Onnx__NodeProto *n = ox_unary(x, i, "Reshape", out, 4, 2);
    if (!n)
        return cnn_onnx_write_oom(&x->w);
    n->input[1] = (char *)name;
    return 0;
}

/* Transpose of each item: Reshape to [0, d..] (`<layer>.view`), Transpose perm [0, 1 +
 * perm..], Reshape to [0, c, h, w] (`<layer>.shape`); leading view dims of 1 that the perm
 * leaves in place are left out. */
static int ox_transpose(struct ox *x, int i, const char *out)
{
    const struct cnn_layer *l = &x->m->layers[i];
    const struct cnn_transpose *p = &l->p.tr;
    int skip = 0;
    while (skip < CNN_TRANSPOSE_DIMS - 1 && p->d[skip] == 1 && p->perm[skip] == skip)
        skip++;
    const int nv = 1 + CNN_TRANSPOSE_DIMS - skip;
    int64_t view[1 + CNN_TRANSPOSE_DIMS] = {0}, perm[1 + CNN_TRANSPOSE_DIMS] = {0};
    for (int k = skip; k < CNN_TRANSPOSE_DIMS; k++) {
        view[1 + k - skip] = p->d[k];
        perm[1 + k - skip] = 1 + p->perm[k] - skip;
    }
    const int64_t shape[4] = {0, l->c, l->h, l->w};
    const char *vname, *sname;
    const char *viewed = cnn_onnx_write_str(&x->w, "%s/view", out);
    const char *permuted = cnn_onnx_write_str(&x->w, "%s/perm", out);
    if (!viewed || !permuted)
        return cnn_onnx_write_oom(&x->w);
    int rc = ox_ints(x, l->name, "view", view, nv, &vname);
    if (rc == 0)
        rc = ox_ints(x, l->name, "shape", shape, 4, &sname);
    if (rc)
        return rc;
    Onnx__NodeProto *n = ox_unary(x, i, "Reshape", viewed, 4, 2);
    if (!n)
        return cnn_onnx_write_oom(&x->w);
    n->input[1] = (char *)vname;
    if (!(n = cnn_onnx_write_node(&x->w, "Transpose", permuted, 1)) ||
        cnn_onnx_write_attr_ints(&x->w, n, "perm", perm, nv))
        return cnn_onnx_write_oom(&x->w);
    n->input[0] = (char *)viewed;
    if (!(n = cnn_onnx_write_node(&x->w, "Reshape", out, 2)))
        return cnn_onnx_write_oom(&x->w);
    n->input[0] = (char *)permuted;
    n->input[1] = (char *)sname;
    return 0;
}

/* Pad of H and W ([0, 0, t, l, 0, 0, b, r]; negative crops, as Pad-2 and Pad-11 allow),
 * mode constant: pads and value attributes before opset 11, inputs from 11 on. */
static int ox_pad(struct ox *x, int i, const char *out)
{
    const struct cnn_pad *p = &x->m->layers[i].p.pad;
    const int as_inputs = x->opset >= 11;
    int64_t *pads = cnn_onnx_write_alloc(&x->w, 8 * sizeof *pads);
    Onnx__NodeProto *n = pads ? ox_unary(x, i, "Pad", out, 4, as_inputs ? 3 : 1) : NULL;
    if (!n)
        return cnn_onnx_write_oom(&x->w);
    pads[2] = p->pad_t, pads[3] = p->pad_l, pads[6] = p->pad_b, pads[7] = p->pad_r;
    if (!as_inputs)
        return cnn_onnx_write_attr_ints(&x->w, n, "pads", pads, 8) ||
                       cnn_onnx_write_attr_float(&x->w, n, "value", p->value)
                   ? CNN_ENOMEM
                   : 0;
    const int64_t eight = 8;
    const char *name = cnn_onnx_write_str(&x->w, "%s.pads", out), *value;
    int rc = cnn_onnx_write_tensor(&x->w, name, ONNX__TENSOR_PROTO__DATA_TYPE__INT64, 1, &eight,
                                   pads, 8 * sizeof *pads);
    if (rc == 0)
        rc = cnn_onnx_write_scalar(&x->w, out, "value", p->value, &value);
    if (rc == 0) {
        n->input[1] = (char *)name;
        n->input[2] = (char *)value;
    }
    return rc;
}

/* Softmax / LogSoftmax by span: the channels (axis 1 on (N, K), or at each position of a
 * (N, C, H, W) value, which only opset 13 expresses: before it axis 1 spans C*H*W), each row
 * (axis 3 at every opset: the coercion to 2-D at the last axis is the same), each plane (axis
 * 2 before opset 13; from 13 only when H = 1, as axis 3). */
static int ox_softmax(struct ox *x, int i, const char *out)
{
    const struct cnn_layer *l = &x->m->layers[i];
    const struct cnn_layer *il = &x->m->layers[l->inputs[0]];
    int spatial = il->h > 1 || il->w > 1, span = l->p.sm.span, axis = 1;
    if (span == CNN_SOFTMAX_ROW || (span == CNN_SOFTMAX_PLANE && il->h == 1))
        axis = 3;
    else if (span == CNN_SOFTMAX_PLANE)
        axis = 2;
    if ((axis == 1 && spatial && x->opset < 13) || (axis == 2 && x->opset >= 13))
        return cnn_err_set(x->err, CNN_EINVAL,
                           "onnx export: layer %s: softmax over %s of a %dx%dx%d value needs "
                           "opset %s 13",
                           l->name, axis == 1 ? "the channels" : "each plane", il->c, il->h,
                           il->w, axis == 1 ? ">=" : "<");
    Onnx__NodeProto *n = ox_unary(x, i, l->kind == CNN_LAYER_SOFTMAX ? "Softmax" : "LogSoftmax",
                                  out, axis > 1 || spatial ? 4 : 2, 1);
    return n ? cnn_onnx_write_attr_int(&x->w, n, "axis", axis) : cnn_onnx_write_oom(&x->w);
}

/* The nodes of layer i (i > 0).  A fused activation writes the layer's value from the main
 * node's "<value>/preact". */
int cnn_onnx_export_layer(struct ox *x, int i)
{
    const struct cnn_layer *l = &x->m->layers[i];
    const struct cnn_layer_kind_ops *ops = cnn_layer_kind_ops(l->kind);
    const struct cnn_act_params *act = ops && ops->fused_act ? ops->fused_act(l) : NULL;
    if (act && act->kind == CNN_ACT_NONE)
        act = NULL;
    const char *out = act ? cnn_onnx_write_str(&x->w, "%s/preact", x->val[i]) : x->val[i];
    if (!out)
        return cnn_onnx_write_oom(&x->w);
    Onnx__NodeProto *n = NULL;
    int rc = 0;
    switch (l->kind) {
    case CNN_LAYER_INPUT:
    case CNN_LAYER_KIND_COUNT:
        return cnn_err_set(x->err, CNN_EINVAL, "onnx export: layer %s: %s has no ONNX form here",
                           l->name, ops ? ops->name : "unknown kind");
    case CNN_LAYER_CONV2D:
        rc = ox_conv(x, i, out);
        break;
    case CNN_LAYER_DENSE:
        rc = ox_dense(x, i, out);
        break;
    case CNN_LAYER_MAXPOOL:
    case CNN_LAYER_AVGPOOL:
        rc = ox_pool(x, i, out);
        break;
    case CNN_LAYER_GLOBAL_AVGPOOL:
        rc = (n = ox_unary(x, i, "GlobalAveragePool", out, 4, 1)) ? 0 : cnn_onnx_write_oom(&x->w);
        break;
    case CNN_LAYER_ACT:
        x->rank[i] = x->rank[l->inputs[0]];
        rc = ox_act(x, l, &l->p.act, x->val[l->inputs[0]], out);
        break;
    case CNN_LAYER_BATCHNORM:
        rc = ox_batchnorm(x, i, out);
        break;
    case CNN_LAYER_DROPOUT:
        rc = ox_dropout(x, i, out);
        break;
    case CNN_LAYER_LRN:
        rc = ox_lrn(x, i, out);
        break;
    case CNN_LAYER_ADD:
    case CNN_LAYER_CONCAT:
        rc = ox_merge(x, i, out);
        break;
    case CNN_LAYER_FLATTEN:
        n = ox_unary(x, i, "Flatten", out, 0, 1);
        x->rank[i] = 2;
        rc = n ? cnn_onnx_write_attr_int(&x->w, n, "axis", 1) : cnn_onnx_write_oom(&x->w);
        break;
    case CNN_LAYER_SOFTMAX:
    case CNN_LAYER_LOG_SOFTMAX: /* on (N, K) opset < 13's 2-D coercion is the same */
        rc = ox_softmax(x, i, out);
        break;
    case CNN_LAYER_GLOBAL_MAXPOOL:
        rc = (n = ox_unary(x, i, "GlobalMaxPool", out, 4, 1)) ? 0 : cnn_onnx_write_oom(&x->w);
        break;
    case CNN_LAYER_PRELU:
    case CNN_LAYER_SCALE_SHIFT:
        rc = ox_per_channel(x, i, out);
        break;
    case CNN_LAYER_PAD:
        rc = ox_pad(x, i, out);
        break;
    case CNN_LAYER_RESHAPE:
        rc = ox_reshape(x, i, out);
        break;
    case CNN_LAYER_TRANSPOSE:
        rc = ox_transpose(x, i, out);
        break;
    }
    if (rc == 0 && act)
        rc = ox_act(x, l, act, out, x->val[i]);
    return rc;
}
