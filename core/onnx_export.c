/* Model -> ONNX ModelProto (onnx_export.h): one node per layer of the stored graph (plus a
 * node for a fused activation and Flatten/Reshape where the rank must change: ONNX Gemm and
 * Softmax take (N, C), Conv and pooling (N, C, H, W)), weights as raw little-endian float
 * initializers that borrow the model's parameter block, then protobuf-c packs it straight
 * into a durable temp file.  Every protobuf struct lives in one arena freed at the end. */
#include "onnx_export.h"
#include "durable.h"
#include "layer_kind.h"
#include "model_internal.h"
#include "onnx.pb-c.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "raw_data holds little-endian floats");

#define OX_MAX_ATTRS 6        /* of one node: Conv and AveragePool have 5 */
#define OX_NODES_PER_LAYER 4  /* main op, activation, Flatten and Reshape of its output */
#define OX_INITS_PER_LAYER 8  /* 4 weight slots, clip min/max, dropout ratio, zero bias */
#define OX_MAX_PROPS 8        /* metadata_props */
#define OX_SHAPE_NC11 "cnn.shape_n_c_1_1"

struct ox_mem {
    struct ox_mem *next;
    max_align_t data[];
};

/* One export in progress. */
struct ox {
    const struct cnn_model *m;
    int opset;
    struct cnn_err *err;
    struct ox_mem *mem; /* every allocation below, freed by ox_free */
    Onnx__ModelProto model;
    Onnx__GraphProto graph;
    size_t cap_node, cap_init;
    const char **val;        /* per layer: the ONNX value holding its output */
    int *rank;               /* per layer: 2 for (N, C), 4 for (N, C, H, W) */
    const char **as2, **as4; /* per layer: its value flattened / reshaped, once made */
    int have_shape4;         /* the [0, -1, 1, 1] Reshape shape is an initializer */
};

static void *ox_alloc(struct ox *x, size_t n)
{
    struct ox_mem *b = calloc(1, sizeof *b + n);
    if (!b)
        return NULL;
    b->next = x->mem;
    x->mem = b;
    return b->data;
}

static void ox_free(struct ox *x)
{
    while (x->mem) {
        struct ox_mem *b = x->mem;
        x->mem = b->next;
        free(b);
    }
}

static int ox_oom(struct ox *x)
{
    return cnn_err_set(x->err, CNN_ENOMEM, "onnx export: out of memory");
}

static char *ox_str(struct ox *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *ox_str(struct ox *x, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = n < 0 ? NULL : ox_alloc(x, (size_t)n + 1);
    if (!s)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* A node appended to the graph, writing `out`; the caller fills input[0..n_in). */
static Onnx__NodeProto *ox_node(struct ox *x, const char *op, const char *out, int n_in)
{
    Onnx__NodeProto *n = ox_alloc(x, sizeof *n);
    char **in = ox_alloc(x, (size_t)n_in * sizeof *in);
    char **outs = ox_alloc(x, sizeof *outs);
    Onnx__AttributeProto **attrs = ox_alloc(x, OX_MAX_ATTRS * sizeof *attrs);
    if (!n || !in || !outs || !attrs || x->graph.n_node == x->cap_node)
        return NULL;
    onnx__node_proto__init(n);
    n->op_type = (char *)op;
    n->name = (char *)out;
    n->n_input = (size_t)n_in;
    n->input = in;
    n->n_output = 1;
    n->output = outs;
    outs[0] = (char *)out;
    n->attribute = attrs;
    x->graph.node[x->graph.n_node++] = n;
    return n;
}

static Onnx__AttributeProto *ox_attr(struct ox *x, Onnx__NodeProto *n, const char *name,
                                     Onnx__AttributeProto__AttributeType type)
{
    Onnx__AttributeProto *a = ox_alloc(x, sizeof *a);
    if (!a || n->n_attribute == OX_MAX_ATTRS)
        return NULL;
    onnx__attribute_proto__init(a);
    a->name = (char *)name;
    a->has_type = 1;
    a->type = type;
    n->attribute[n->n_attribute++] = a;
    return a;
}

static int ox_attr_int(struct ox *x, Onnx__NodeProto *n, const char *name, int64_t v)
{
    Onnx__AttributeProto *a = ox_attr(x, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    if (!a)
        return ox_oom(x);
    a->has_i = 1;
    a->i = v;
    return 0;
}

static int ox_attr_float(struct ox *x, Onnx__NodeProto *n, const char *name, float v)
{
    Onnx__AttributeProto *a = ox_attr(x, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    if (!a)
        return ox_oom(x);
    a->has_f = 1;
    a->f = v;
    return 0;
}

static int ox_attr_ints(struct ox *x, Onnx__NodeProto *n, const char *name, const int64_t *v,
                        int k)
{
    Onnx__AttributeProto *a = ox_attr(x, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    int64_t *copy = ox_alloc(x, (size_t)k * sizeof *copy);
    if (!a || !copy)
        return ox_oom(x);
    memcpy(copy, v, (size_t)k * sizeof *copy);
    a->n_ints = (size_t)k;
    a->ints = copy;
    return 0;
}

/* An initializer of `bytes` bytes at data (borrowed: it must outlive the packing). */
static int ox_tensor(struct ox *x, const char *name, int32_t type, int ndims, const int64_t *dims,
                     const void *data, size_t bytes)
{
    Onnx__TensorProto *t = ox_alloc(x, sizeof *t);
    int64_t *d = ox_alloc(x, (size_t)(ndims ? ndims : 1) * sizeof *d);
    if (!t || !d || !name || x->graph.n_initializer == x->cap_init)
        return ox_oom(x);
    onnx__tensor_proto__init(t);
    memcpy(d, dims, (size_t)ndims * sizeof *d);
    t->name = (char *)name;
    t->has_data_type = 1;
    t->data_type = type;
    t->n_dims = (size_t)ndims;
    t->dims = d;
    t->has_raw_data = 1;
    t->raw_data.len = bytes;
    t->raw_data.data = (uint8_t *)data;
    x->graph.initializer[x->graph.n_initializer++] = t;
    return 0;
}

/* A scalar float initializer "<base>.<what>" holding v; *name gets its name. */
static int ox_scalar(struct ox *x, const char *base, const char *what, float v, const char **name)
{
    float *p = ox_alloc(x, sizeof *p);
    if (!p)
        return ox_oom(x);
    *p = v;
    *name = ox_str(x, "%s.%s", base, what);
    return ox_tensor(x, *name, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 0, NULL, p, sizeof *p);
}

/* The weight slots of layer l as initializers "<layer>.<slot>"; names[s] gets each name. */
static int ox_weights(struct ox *x, const struct cnn_layer *l, const char **names)
{
    const char *const *slot = cnn_layer_kind_ops(l->kind)->slot_names;
    for (int s = 0; s < l->n_weights; s++) {
        int64_t d[CNN_MAX_WEIGHT_DIMS];
        for (int k = 0; k < l->weight_ndims[s]; k++)
            d[k] = l->weight_dims[s][k];
        names[s] = slot ? ox_str(x, "%s.%s", l->name, slot[s]) : ox_str(x, "%s.%d", l->name, s);
        int rc = ox_tensor(x, names[s], ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, l->weight_ndims[s],
                           d, x->m->params + l->weight_offset[s],
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
    const char *out = ox_str(x, "%s/flat", x->val[i]);
    Onnx__NodeProto *n = out ? ox_node(x, "Flatten", out, 1) : NULL;
    if (!n || ox_attr_int(x, n, "axis", 1))
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
        if (ox_tensor(x, OX_SHAPE_NC11, ONNX__TENSOR_PROTO__DATA_TYPE__INT64, 1, &four, shape,
                      sizeof shape))
            return NULL;
        x->have_shape4 = 1;
    }
    const char *out = ox_str(x, "%s/nchw", x->val[i]);
    Onnx__NodeProto *n = out ? ox_node(x, "Reshape", out, 2) : NULL;
    if (!n)
        return NULL;
    n->input[0] = (char *)x->val[i];
    n->input[1] = OX_SHAPE_NC11;
    return x->as4[i] = out;
}

/* Activation a of layer l from value `in` to `out`; Identity for none. */
static int ox_act(struct ox *x, const struct cnn_layer *l, const struct cnn_act_params *a,
                  const char *in, const char *out)
{
    const char *op = NULL;
    switch (a->kind) {
    case CNN_ACT_NONE: op = "Identity"; break;
    case CNN_ACT_RELU: op = "Relu"; break;
    case CNN_ACT_LEAKY_RELU: op = "LeakyRelu"; break;
    case CNN_ACT_CLIP: op = "Clip"; break;
    case CNN_ACT_SIGMOID: op = "Sigmoid"; break;
    case CNN_ACT_TANH: op = "Tanh"; break;
    case CNN_ACT_COUNT: break;
    }
    if (!op)
        return cnn_err_set(x->err, CNN_EINVAL, "onnx export: layer %s: activation %d has no ONNX form",
                           l->name, (int)a->kind);
    const int clip_inputs = a->kind == CNN_ACT_CLIP && x->opset >= 11;
    Onnx__NodeProto *n = ox_node(x, op, out, clip_inputs ? 3 : 1);
    if (!n)
        return ox_oom(x);
    n->input[0] = (char *)in;
    if (a->kind == CNN_ACT_LEAKY_RELU)
        return ox_attr_float(x, n, "alpha", a->alpha);
    if (a->kind != CNN_ACT_CLIP)
        return 0;
    if (!clip_inputs) /* Clip-6: min and max are attributes */
        return ox_attr_float(x, n, "min", a->alpha) || ox_attr_float(x, n, "max", a->beta)
                   ? CNN_ENOMEM : 0;
    const char *lo, *hi;
    int rc = ox_scalar(x, out, "min", a->alpha, &lo);
    if (rc == 0)
        rc = ox_scalar(x, out, "max", a->beta, &hi);
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
    return ox_attr_ints(x, n, "kernel_shape", k, 2) || ox_attr_ints(x, n, "strides", s, 2) ||
                   ox_attr_ints(x, n, "pads", p, 4)
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
        return ox_oom(x);
    int rc = ox_weights(x, l, w);
    if (rc)
        return rc;
    Onnx__NodeProto *n = ox_node(x, "Conv", out, 1 + l->n_weights);
    if (!n)
        return ox_oom(x);
    n->input[0] = (char *)in;
    for (int s = 0; s < l->n_weights; s++)
        n->input[1 + s] = (char *)w[s];
    const int pad[4] = {p->pad_t, p->pad_l, p->pad_b, p->pad_r};
    const int64_t dil[2] = {p->dh, p->dw};
    x->rank[i] = 4;
    return ox_window(x, n, p->kh, p->kw, p->sh, p->sw, pad) ||
                   ox_attr_ints(x, n, "dilations", dil, 2) ||
                   ox_attr_int(x, n, "group", p->groups)
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
        return ox_oom(x);
    int rc = ox_weights(x, l, w);
    if (rc)
        return rc;
    if (!l->p.dense.has_bias && x->opset < 11) {
        const int64_t d = l->p.dense.out;
        float *zero = ox_alloc(x, (size_t)d * sizeof *zero);
        w[1] = ox_str(x, "%s.zero_bias", l->name);
        if (!zero || (rc = ox_tensor(x, w[1], ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 1, &d, zero,
                                     (size_t)d * sizeof *zero)))
            return zero ? rc : ox_oom(x);
    }
    const int n_in = l->p.dense.has_bias || x->opset < 11 ? 3 : 2;
    Onnx__NodeProto *n = ox_node(x, "Gemm", out, n_in);
    if (!n)
        return ox_oom(x);
    n->input[0] = (char *)in;
    for (int s = 1; s < n_in; s++)
        n->input[s] = (char *)w[s - 1];
    x->rank[i] = 2;
    return ox_attr_int(x, n, "transB", 1);
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
    if (onnx_pool_out(p->h, p->pad_t + p->pad_b, p->kh, p->sh, ceil_mode) != p->oh ||
        onnx_pool_out(p->w, p->pad_l + p->pad_r, p->kw, p->sw, ceil_mode) != p->ow)
        return cnn_err_set(x->err, CNN_EINVAL,
                           "onnx export: layer %s: pooled size %dx%d has no ONNX form at opset %d "
                           "(ceil_mode needs opset 10; no window may start in the end padding)",
                           l->name, p->oh, p->ow, x->opset);
    const char *in = ox_need4(x, l->inputs[0]);
    const int avg = l->kind == CNN_LAYER_AVGPOOL;
    Onnx__NodeProto *n = in ? ox_node(x, avg ? "AveragePool" : "MaxPool", out, 1) : NULL;
    if (!n)
        return ox_oom(x);
    n->input[0] = (char *)in;
    x->rank[i] = 4;
    const int pad[4] = {p->pad_t, p->pad_l, p->pad_b, p->pad_r};
    int rc = ox_window(x, n, p->kh, p->kw, p->sh, p->sw, pad);
    if (rc == 0 && ceil_mode)
        rc = ox_attr_int(x, n, "ceil_mode", 1);
    if (rc == 0 && avg && p->count_include_pad)
        rc = ox_attr_int(x, n, "count_include_pad", 1);
    return rc;
}

/* A node `op` reading layer i's input 0 as it is (rank kept) or as (N, C, H, W) (want 4). */
static Onnx__NodeProto *ox_unary(struct ox *x, int i, const char *op, const char *out, int want,
                                 int n_in)
{
    const struct cnn_layer *l = &x->m->layers[i];
    const int src = l->inputs[0];
    const char *in = want == 4 ? ox_need4(x, src) : want == 2 ? ox_need2(x, src) : x->val[src];
    Onnx__NodeProto *n = in ? ox_node(x, op, out, n_in) : NULL;
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
        return ox_oom(x);
    for (int s = 0; s < 4; s++)
        n->input[1 + s] = (char *)w[s];
    return ox_attr_float(x, n, "epsilon", l->p.bn.eps);
}

/* Dropout: ratio an attribute before opset 12, an input from 12 on. */
static int ox_dropout(struct ox *x, int i, const char *out)
{
    const struct cnn_layer *l = &x->m->layers[i];
    Onnx__NodeProto *n = ox_unary(x, i, "Dropout", out, 0, x->opset >= 12 ? 2 : 1);
    if (!n)
        return ox_oom(x);
    if (x->opset < 12)
        return ox_attr_float(x, n, "ratio", l->p.dropout_rate);
    const char *ratio;
    int rc = ox_scalar(x, out, "ratio", l->p.dropout_rate, &ratio);
    n->input[1] = (char *)ratio;
    return rc;
}

static int ox_lrn(struct ox *x, int i, const char *out)
{
    const struct cnn_lrn *p = &x->m->layers[i].p.lrn;
    Onnx__NodeProto *n = ox_unary(x, i, "LRN", out, 4, 1);
    if (!n)
        return ox_oom(x);
    return ox_attr_int(x, n, "size", p->size) || ox_attr_float(x, n, "alpha", p->alpha) ||
                   ox_attr_float(x, n, "beta", p->beta) || ox_attr_float(x, n, "bias", p->k)
               ? CNN_ENOMEM
               : 0;
}

/* Add (Sum for other than two inputs) or Concat on axis 1; inputs brought to one rank. */
static int ox_merge(struct ox *x, int i, const char *out)
{
    const struct cnn_layer *l = &x->m->layers[i];
    const int concat = l->kind == CNN_LAYER_CONCAT;
    int want = 2;
    for (int k = 0; k < l->n_inputs; k++)
        if (x->rank[l->inputs[k]] == 4)
            want = 4;
    const char *in[CNN_MAX_INPUTS]; /* conversions first: nodes stay in topological order */
    for (int k = 0; k < l->n_inputs; k++)
        if (!(in[k] = want == 4 ? ox_need4(x, l->inputs[k]) : ox_need2(x, l->inputs[k])))
            return ox_oom(x);
    const char *op = concat ? "Concat" : l->n_inputs == 2 ? "Add" : "Sum";
    Onnx__NodeProto *n = ox_node(x, op, out, l->n_inputs);
    if (!n)
        return ox_oom(x);
    for (int k = 0; k < l->n_inputs; k++)
        n->input[k] = (char *)in[k];
    x->rank[i] = want;
    return concat ? ox_attr_int(x, n, "axis", 1) : 0;
}

/* The nodes of layer i (i > 0).  A fused activation writes the layer's value from the main
 * node's "<value>/preact". */
static int ox_layer(struct ox *x, int i)
{
    const struct cnn_layer *l = &x->m->layers[i];
    const struct cnn_layer_kind_ops *ops = cnn_layer_kind_ops(l->kind);
    const struct cnn_act_params *act = ops && ops->fused_act ? ops->fused_act(l) : NULL;
    if (act && act->kind == CNN_ACT_NONE)
        act = NULL;
    const char *out = act ? ox_str(x, "%s/preact", x->val[i]) : x->val[i];
    if (!out)
        return ox_oom(x);
    Onnx__NodeProto *n = NULL;
    int rc = 0;
    switch (l->kind) {
    case CNN_LAYER_INPUT:
    case CNN_LAYER_KIND_COUNT:
        return cnn_err_set(x->err, CNN_EINVAL, "onnx export: layer %s: %s has no ONNX form here",
                           l->name, ops ? ops->name : "unknown kind");
    case CNN_LAYER_CONV2D: rc = ox_conv(x, i, out); break;
    case CNN_LAYER_DENSE: rc = ox_dense(x, i, out); break;
    case CNN_LAYER_MAXPOOL:
    case CNN_LAYER_AVGPOOL: rc = ox_pool(x, i, out); break;
    case CNN_LAYER_GLOBAL_AVGPOOL:
        rc = (n = ox_unary(x, i, "GlobalAveragePool", out, 4, 1)) ? 0 : ox_oom(x);
        break;
    case CNN_LAYER_ACT:
        x->rank[i] = x->rank[l->inputs[0]];
        rc = ox_act(x, l, &l->p.act, x->val[l->inputs[0]], out);
        break;
    case CNN_LAYER_BATCHNORM: rc = ox_batchnorm(x, i, out); break;
    case CNN_LAYER_DROPOUT: rc = ox_dropout(x, i, out); break;
    case CNN_LAYER_LRN: rc = ox_lrn(x, i, out); break;
    case CNN_LAYER_ADD:
    case CNN_LAYER_CONCAT: rc = ox_merge(x, i, out); break;
    case CNN_LAYER_FLATTEN:
        n = ox_unary(x, i, "Flatten", out, 0, 1);
        x->rank[i] = 2;
        rc = n ? ox_attr_int(x, n, "axis", 1) : ox_oom(x);
        break;
    case CNN_LAYER_SOFTMAX:
        n = ox_unary(x, i, "Softmax", out, 2, 1);
        rc = n ? ox_attr_int(x, n, "axis", 1) : ox_oom(x);
        break;
    }
    if (rc == 0 && act)
        rc = ox_act(x, l, act, out, x->val[i]);
    return rc;
}

/* A float tensor value_info: (N, d[0], ...) with N the dynamic batch "N". */
static Onnx__ValueInfoProto *ox_value_info(struct ox *x, const char *name, int ndims,
                                           const int *d)
{
    Onnx__ValueInfoProto *v = ox_alloc(x, sizeof *v);
    Onnx__TypeProto *t = ox_alloc(x, sizeof *t);
    Onnx__TypeProto__Tensor *tt = ox_alloc(x, sizeof *tt);
    Onnx__TensorShapeProto *sh = ox_alloc(x, sizeof *sh);
    Onnx__TensorShapeProto__Dimension **dims = ox_alloc(x, (size_t)(ndims + 1) * sizeof *dims);
    if (!v || !t || !tt || !sh || !dims)
        return NULL;
    for (int k = 0; k <= ndims; k++) {
        dims[k] = ox_alloc(x, sizeof *dims[k]);
        if (!dims[k])
            return NULL;
        onnx__tensor_shape_proto__dimension__init(dims[k]);
        if (k == 0) {
            dims[k]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            dims[k]->dim_param = "N";
        } else {
            dims[k]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            dims[k]->dim_value = d[k - 1];
        }
    }
    onnx__tensor_shape_proto__init(sh);
    sh->n_dim = (size_t)ndims + 1;
    sh->dim = dims;
    onnx__type_proto__tensor__init(tt);
    tt->has_elem_type = 1;
    tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    tt->shape = sh;
    onnx__type_proto__init(t);
    t->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    t->tensor_type = tt;
    onnx__value_info_proto__init(v);
    v->name = (char *)name;
    v->type = t;
    return v;
}

/* "output" (N, K) from the last layer: its last node renamed when that already writes a
 * (N, K) value, else a Flatten. */
static int ox_output(struct ox *x)
{
    const int last = x->m->n_layers - 1;
    const int k = cnn_model_num_classes(x->m);
    Onnx__NodeProto *tail = x->graph.n_node ? x->graph.node[x->graph.n_node - 1] : NULL;
    if (x->rank[last] == 2 && tail && tail->output[0] == x->val[last]) {
        tail->output[0] = "output";
        tail->name = "output";
    } else {
        Onnx__NodeProto *n = ox_node(x, "Flatten", "output", 1);
        if (!n || ox_attr_int(x, n, "axis", 1))
            return ox_oom(x);
        n->input[0] = (char *)x->val[last];
    }
    const struct cnn_preproc *pp = &x->m->pp;
    const int in_dims[3] = {pp->c, pp->h, pp->w};
    Onnx__ValueInfoProto **io = ox_alloc(x, 2 * sizeof *io);
    if (!io || !(io[0] = ox_value_info(x, "input", 3, in_dims)) ||
        !(io[1] = ox_value_info(x, "output", 1, &k)))
        return ox_oom(x);
    x->graph.n_input = 1;
    x->graph.input = io;
    x->graph.n_output = 1;
    x->graph.output = io + 1;
    return 0;
}

static int ox_prop(struct ox *x, const char *key, const char *value)
{
    Onnx__StringStringEntryProto *e = ox_alloc(x, sizeof *e);
    if (!e || !value || x->model.n_metadata_props == OX_MAX_PROPS)
        return ox_oom(x);
    onnx__string_string_entry_proto__init(e);
    e->key = (char *)key;
    e->value = (char *)value;
    x->model.metadata_props[x->model.n_metadata_props++] = e;
    return 0;
}

/* "a,b,c" of the c used channels of v. */
static char *ox_floats(struct ox *x, const float *v, int c)
{
    return c == 3 ? ox_str(x, "%.9g,%.9g,%.9g", v[0], v[1], v[2]) : ox_str(x, "%.9g", v[0]);
}

/* Labels (one a line), preprocessing and the model's metadata text: docs/onnx.md. */
static int ox_props(struct ox *x)
{
    const struct cnn_model *m = x->m;
    const struct cnn_preproc *pp = &m->pp;
    x->model.metadata_props = ox_alloc(x, OX_MAX_PROPS * sizeof *x->model.metadata_props);
    if (!x->model.metadata_props)
        return ox_oom(x);
    int rc = ox_prop(x, "cnn.resize", pp->resize == CNN_RESIZE_SHORTER_CROP ? "shorter_crop"
                                                                            : "stretch");
    if (rc == 0 && pp->resize == CNN_RESIZE_SHORTER_CROP)
        rc = ox_prop(x, "cnn.resize_short", ox_str(x, "%d", pp->resize_short));
    if (rc == 0)
        rc = ox_prop(x, "cnn.invert", pp->invert ? "1" : "0");
    if (rc == 0)
        rc = ox_prop(x, "cnn.mean", ox_floats(x, pp->mean, pp->c));
    if (rc == 0)
        rc = ox_prop(x, "cnn.std", ox_floats(x, pp->std, pp->c));
    if (rc == 0 && m->meta && m->meta[0])
        rc = ox_prop(x, "cnn.meta", m->meta);
    if (rc || !m->labels)
        return rc;
    char *text = ox_alloc(x, (size_t)m->n_labels * CNN_LABEL_MAX + 1), *p = text;
    if (!text)
        return ox_oom(x);
    for (int i = 0; i < m->n_labels; i++) {
        if (strchr(m->labels[i], '\n'))
            return cnn_err_set(x->err, CNN_EINVAL, "onnx export: label %d holds a newline", i);
        p += sprintf(p, "%s%s", i ? "\n" : "", m->labels[i]);
    }
    return ox_prop(x, "cnn.labels", text);
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Every value and initializer name is unique (a layer may be named like a derived value). */
static int ox_check_names(struct ox *x)
{
    const Onnx__GraphProto *g = &x->graph;
    const char **names = ox_alloc(x, (g->n_node + g->n_initializer + 1) * sizeof *names);
    if (!names)
        return ox_oom(x);
    size_t n = 0;
    names[n++] = "input";
    for (size_t i = 0; i < g->n_node; i++)
        names[n++] = g->node[i]->output[0];
    for (size_t i = 0; i < g->n_initializer; i++)
        names[n++] = g->initializer[i]->name;
    qsort(names, n, sizeof *names, cmp_name);
    for (size_t i = 1; i < n; i++)
        if (strcmp(names[i - 1], names[i]) == 0)
            return cnn_err_set(x->err, CNN_EINVAL,
                               "onnx export: the name '%.60s' would be used twice (rename the layer)",
                               names[i]);
    return 0;
}

/* IR version of the ONNX release that introduced each opset (docs/Versioning.md), at least
 * 4: IR 3 wants every initializer listed as a graph input too. */
static int64_t ox_ir_version(int opset)
{
    return opset <= 9 ? 4 : opset == 10 ? 5 : opset == 11 ? 6 : opset <= 14 ? 7 : 8;
}

/* The value name of layer i: its own name, except that "input" and "output" stay the graph's. */
static const char *ox_value_name(struct ox *x, int i)
{
    const char *name = x->m->layers[i].name;
    if (i == 0)
        return "input";
    if (strcmp(name, "input") == 0 || strcmp(name, "output") == 0)
        return ox_str(x, "%s_%d", name, i);
    return name;
}

/* Builds x->model for x->m; on failure the error is in x->err. */
static int ox_build(struct ox *x)
{
    const struct cnn_model *m = x->m;
    const size_t L = (size_t)m->n_layers;
    x->cap_node = OX_NODES_PER_LAYER * L + 1;
    x->cap_init = OX_INITS_PER_LAYER * L + 1;
    x->graph.node = ox_alloc(x, x->cap_node * sizeof *x->graph.node);
    x->graph.initializer = ox_alloc(x, x->cap_init * sizeof *x->graph.initializer);
    x->val = ox_alloc(x, L * sizeof *x->val);
    x->as2 = ox_alloc(x, L * sizeof *x->as2);
    x->as4 = ox_alloc(x, L * sizeof *x->as4);
    x->rank = ox_alloc(x, L * sizeof *x->rank);
    Onnx__OperatorSetIdProto *ops = ox_alloc(x, sizeof *ops);
    Onnx__OperatorSetIdProto **opsp = ox_alloc(x, sizeof *opsp);
    if (!x->graph.node || !x->graph.initializer || !x->val || !x->as2 || !x->as4 || !x->rank ||
        !ops || !opsp)
        return ox_oom(x);
    for (size_t i = 0; i < L; i++)
        if (!(x->val[i] = ox_value_name(x, (int)i)))
            return ox_oom(x);
    x->rank[0] = 4;
    for (int i = 1; i < m->n_layers; i++) {
        int rc = ox_layer(x, i);
        if (rc)
            return rc;
    }
    int rc = ox_output(x);
    if (rc == 0)
        rc = ox_check_names(x);
    if (rc == 0)
        rc = ox_props(x);
    if (rc)
        return rc;
    char arch[CNN_NAME_MAX];
    cnn_model_meta_value(m, "arch", arch, sizeof arch);
    x->graph.name = arch[0] ? ox_str(x, "%s", arch) : "cnn";
    onnx__operator_set_id_proto__init(ops);
    ops->domain = "";
    ops->has_version = 1;
    ops->version = x->opset;
    opsp[0] = ops;
    x->model.has_ir_version = 1;
    x->model.ir_version = ox_ir_version(x->opset);
    x->model.n_opset_import = 1;
    x->model.opset_import = opsp;
    x->model.producer_name = "cnnd";
    x->model.graph = &x->graph;
    return x->graph.name ? 0 : ox_oom(x);
}

static int ox_begin(struct ox *x, const struct cnn_model *m, int opset, struct cnn_err *err)
{
    memset(x, 0, sizeof *x);
    x->m = m;
    x->opset = opset;
    x->err = err;
    onnx__model_proto__init(&x->model);
    onnx__graph_proto__init(&x->graph);
    if (opset < CNN_ONNX_OPSET_MIN || opset > CNN_ONNX_OPSET_MAX)
        return cnn_err_set(err, CNN_EINVAL, "onnx export: opset %d outside %d..%d", opset,
                           CNN_ONNX_OPSET_MIN, CNN_ONNX_OPSET_MAX);
    if (!m->params)
        return cnn_err_set(err, CNN_EINVAL, "onnx export: the model has no weights");
    int rc = ox_build(x);
    if (rc == 0 && onnx__model_proto__get_packed_size(&x->model) > INT32_MAX)
        rc = cnn_err_set(err, CNN_ELIMIT,
                         "onnx export: over 2 GiB (protobuf's limit; external data not written)");
    return rc;
}

/* Buffered protobuf-c sink writing to a file descriptor. */
struct ox_sink {
    ProtobufCBuffer base;
    int fd;
    int error; /* errno value of the first failed write */
    size_t used;
    uint8_t buf[1 << 16];
};

static void ox_sink_flush(struct ox_sink *s)
{
    if (s->used && !s->error)
        s->error = cnn_durable_write_all(s->fd, s->buf, s->used);
    s->used = 0;
}

static void ox_sink_append(ProtobufCBuffer *b, size_t len, const uint8_t *data)
{
    struct ox_sink *s = (struct ox_sink *)b;
    if (s->used + len > sizeof s->buf)
        ox_sink_flush(s);
    if (len > sizeof s->buf) {
        if (!s->error)
            s->error = cnn_durable_write_all(s->fd, data, len);
        return;
    }
    memcpy(s->buf + s->used, data, len);
    s->used += len;
}

static int ox_fill(int fd, void *ctx)
{
    struct ox_sink *s = malloc(sizeof *s);
    if (!s)
        return ENOMEM;
    s->base.append = ox_sink_append;
    s->fd = fd;
    s->error = 0;
    s->used = 0;
    onnx__model_proto__pack_to_buffer(&((struct ox *)ctx)->model, &s->base);
    ox_sink_flush(s);
    int e = s->error;
    free(s);
    return e;
}

int cnn_onnx_export_save(const struct cnn_model *m, const char *path, int opset,
                         struct cnn_err *err)
{
    struct cnn_err local = {0};
    if (!err)
        err = &local;
    struct ox x;
    int rc = ox_begin(&x, m, opset, err);
    if (rc == 0)
        rc = cnn_durable_stream(path, 0644, ox_fill, &x, err);
    ox_free(&x);
    return rc;
}

int cnn_onnx_export_mem(const struct cnn_model *m, int opset, void **data, size_t *size,
                        struct cnn_err *err)
{
    struct cnn_err local = {0};
    if (!err)
        err = &local;
    *data = NULL;
    *size = 0;
    struct ox x;
    int rc = ox_begin(&x, m, opset, err);
    if (rc == 0) {
        size_t n = onnx__model_proto__get_packed_size(&x.model);
        uint8_t *buf = malloc(n ? n : 1);
        if (buf) {
            *size = onnx__model_proto__pack(&x.model, buf);
            *data = buf;
        } else {
            rc = cnn_err_set(err, CNN_ENOMEM, "onnx export: out of memory for %zu bytes", n);
        }
    }
    ox_free(&x);
    return rc;
}
