/* ONNX operator rows onto the layer kinds added for ONNX (docs/engine.md): Add/Sub/Mul/Div
 * by a scalar or per-channel constant (scale_shift; folded when both operands are
 * constants; an Add after a bias-free MatMul/Gemm becomes its bias), PRelu, HardSigmoid
 * (x * HardSigmoid(x, 1/6, 1/2) is a HardSwish), HardSwish, GlobalMaxPool, constant Pad. */
#include "onnx_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define ONNX_PAD_MAX (1 << 24) /* = CNN_MAX_DIM; the pad kind checks the output size */

/* How constant t broadcasts onto the layer value x: one value for all (*channels = 1) or
 * one per channel (*channels = C), right-aligned against (N,C,H,W) or (N,C) as ONNX
 * broadcasting does (opset >= 7); any other shape is unsupported. */
static int channel_broadcast(struct onnx_ctx *c, const struct onnx_value *x,
                             const struct onnx_tensor *t, const char *what, int *channels)
{
    int ch, h, w;
    onnx_layer_shape(c, x->layer, &ch, &h, &w);
    if (t->is_int)
        return onnx_node_err(c, CNN_EFORMAT, "%s is not float", what);
    if (t->ndims > x->rank)
        return onnx_node_err(c, CNN_EFORMAT, "unsupported: %s of rank %d on a rank %d tensor", what,
                             t->ndims, x->rank);
    *channels = 1;
    int legacy =
        c->opset < 7 &&
        (strcmp(c->node->op_type, "PRelu") == 0 ||
         (onnx_attr_int(c->node, "broadcast", 0) && onnx_attr_int(c->node, "axis", -1) == 1));
    if (legacy && t->ndims == 1 && t->dims[0] == ch) { /* opset < 7: PRelu's 1-D slope and */
        *channels = ch; /* an Add/Mul.. operand with broadcast=1 axis=1 are per channel */
        return 0;
    }
    for (int j = 0; j < t->ndims; j++) {
        int p = x->rank - t->ndims + j; /* the axis of x that dim j lines up with */
        if (t->dims[j] == 1)
            continue;
        if (p == 1 && t->dims[j] == ch) {
            *channels = ch;
            continue;
        }
        return onnx_node_err(c, CNN_EFORMAT,
                             "unsupported: %s dim %d of %lld on a (N,%d,%d,%d) tensor (a scalar, "
                             "one value per channel or a shape that broadcasts to one item)",
                             what, j, (long long)t->dims[j], ch, h, w);
    }
    if (t->count != (size_t)*channels)
        return onnx_node_err(c, CNN_EFORMAT, "%s has %zu values", what, t->count);
    return 0;
}

/* Constant t broadcast (ONNX rules, right-aligned; a leading batch dim must be 1) to one
 * item of layer value x: C*H*W floats in the item's order (owned), or NULL when t does not
 * broadcast so (no error set) or on no memory (error set). */
static float *broadcast_item(struct onnx_ctx *c, const struct onnx_value *x,
                             const struct onnx_tensor *t, size_t *count)
{
    int64_t d[4];
    onnx_layer_dims(c, x, d);
    const int r = x->rank;
    if (t->is_int || t->ndims > r || (t->ndims == r && t->dims[0] != 1))
        return NULL;
    size_t tstride[4] = {0, 0, 0, 0}, n = 1, s = 1;
    for (int j = t->ndims - 1; j >= 0; j--) { /* t's dim j lines up with x's axis p */
        const int p = r - t->ndims + j;
        if (t->dims[j] != 1 && (p == 0 || t->dims[j] != d[p]))
            return NULL;
        tstride[p] = t->dims[j] == 1 ? 0 : s;
        s *= (size_t)t->dims[j];
    }
    for (int p = 1; p < r; p++)
        n *= (size_t)d[p];
    float *v = malloc(n * sizeof *v);
    if (!v) {
        onnx_node_err(c, CNN_ENOMEM, "out of memory");
        return NULL;
    }
    size_t idx[4] = {0, 0, 0, 0};
    for (size_t i = 0; i < n; i++) {
        size_t at = 0;
        for (int p = 1; p < r; p++)
            at += idx[p] * tstride[p];
        v[i] = t->f[at];
        for (int p = r - 1; p >= 1 && ++idx[p] == (size_t)d[p]; p--)
            idx[p] = 0;
    }
    *count = n;
    return v;
}

/* a op b on constants of equal shapes or with a scalar operand. */
static int fold_arith(struct onnx_ctx *c, const struct onnx_tensor *a, const struct onnx_tensor *b,
                      char op)
{
    const struct onnx_tensor *big = a->count >= b->count ? a : b;
    const struct onnx_tensor *small = big == a ? b : a;
    if (a->is_int != b->is_int || (small->count != 1 && small->count != big->count))
        return onnx_node_err(c, CNN_EFORMAT, "unsupported: broadcast of constants");
    struct onnx_tensor *o = onnx_tensor_new(big->is_int, big->ndims, big->dims, c->err);
    if (!o)
        return onnx_err_code(c);
    for (size_t k = 0; k < o->count; k++) {
        size_t ja = a->count == 1 ? 0 : k, jb = b->count == 1 ? 0 : k;
        if (!o->is_int) {
            float x = a->f[ja], y = b->f[jb];
            o->f[k] = op == 'A' ? x + y : op == 'S' ? x - y : op == 'M' ? x * y : x / y;
            continue;
        }
        int64_t x = a->i[ja], y = b->i[jb], r = 0;
        int bad = op == 'A'   ? __builtin_add_overflow(x, y, &r)
                  : op == 'S' ? __builtin_sub_overflow(x, y, &r)
                  : op == 'M' ? __builtin_mul_overflow(x, y, &r)
                              : y == 0 || (x == INT64_MIN && y == -1);
        if (op == 'D' && !bad) /* ONNX integer Div truncates like C */
            r = x / y;
        if (bad) {
            onnx_tensor_free(o);
            return onnx_node_err(c, CNN_EFORMAT, "integer overflow or division by zero");
        }
        o->i[k] = r;
    }
    return onnx_set_const(c, 0, o);
}

int onnx_op_arith(struct onnx_ctx *c, const Onnx__NodeProto *n)
{
    struct onnx_value *a, *b;
    int rc;
    if ((rc = onnx_input(c, 0, 0, &a)) || (rc = onnx_input(c, 1, 0, &b)))
        return rc;
    char op = n->op_type[0]; /* Add, Sub, Mul, Div */
    if (a->t && b->t)
        return fold_arith(c, a->t, b->t, op);
    if (!a->t && !b->t)
        return onnx_node_err(c, CNN_EFORMAT, "unsupported: %s of two tensors", n->op_type);
    int const_first = a->t != NULL, channels;
    struct onnx_value *x = const_first ? b : a;
    const struct onnx_tensor *t = const_first ? a->t : b->t;
    if (op == 'D' && const_first)
        return onnx_node_err(c, CNN_EFORMAT, "unsupported: a constant divided by a tensor");
    size_t n_item = 0;
    float *item = NULL; /* per element of an item when not a scalar or per channel */
    if ((rc = channel_broadcast(c, x, t, "constant operand", &channels))) {
        if (!(item = broadcast_item(c, x, t, &n_item)))
            return onnx_err_code(c) == CNN_ENOMEM
                       ? CNN_ENOMEM
                       : onnx_node_err(c, CNN_EFORMAT,
                                       "unsupported: a constant operand of rank %d that does not "
                                       "broadcast to one item (it spans the batch or mismatches)",
                                       t->ndims);
        if (n_item > (size_t)ONNX_MAX_CHANNELS) {
            free(item);
            return onnx_node_err(c, CNN_ELIMIT, "constant of %zu values per item", n_item);
        }
        channels = (int)n_item;
        rc = 0;
    }
    float *wts[2] = {malloc((size_t)channels * sizeof(float)),
                     malloc((size_t)channels * sizeof(float))};
    size_t cnt[2] = {(size_t)channels, (size_t)channels};
    if (!wts[0] || !wts[1]) {
        free(wts[0]);
        free(wts[1]);
        free(item);
        return onnx_node_err(c, CNN_ENOMEM, "out of memory");
    }
    for (int k = 0; k < channels; k++) { /* y = x * scale + shift */
        float v = item ? item[k] : t->f[k];
        wts[0][k] = op == 'M' ? v : op == 'D' ? 1.0f / v : op == 'S' && const_first ? -1.0f : 1.0f;
        wts[1][k] = op == 'A' ? v : op == 'S' ? (const_first ? v : -v) : 0.0f;
        if (!isfinite(wts[0][k]) || !isfinite(wts[1][k]))
            rc = onnx_node_err(c, CNN_EFORMAT, "unsupported: non-finite constant %g", v);
    }
    free(item);
    if (rc) {
        free(wts[0]);
        free(wts[1]);
        return rc;
    }
    struct cnn_layer_desc d = {.kind = CNN_LAYER_SCALE_SHIFT};
    d.p.ss.channels = channels;
    return onnx_add_layer(c, &d, 1, &x->layer, x->rank, wts, cnt, 2);
}

/* The sole reader of name after the current node, or NULL (none, several, a graph output,
 * or the look-ahead budget spent: a hostile file of many MatMuls stays linear). */
static const Onnx__NodeProto *sole_reader(struct onnx_ctx *c, const char *name)
{
    const Onnx__GraphProto *g = c->graph;
    const Onnx__NodeProto *found = NULL;
    for (size_t o = 0; o < g->n_output; o++)
        if (g->output[o]->name && strcmp(g->output[o]->name, name) == 0)
            return NULL;
    for (size_t k = c->node_index + 1; k < g->n_node; k++) {
        if (c->scan_budget == 0)
            return NULL;
        c->scan_budget--;
        for (size_t i = 0; i < g->node[k]->n_input; i++)
            if (g->node[k]->input[i] && strcmp(g->node[k]->input[i], name) == 0) {
                if (found)
                    return NULL;
                found = g->node[k];
            }
    }
    return found;
}

float *onnx_take_bias(struct onnx_ctx *c, int64_t out)
{
    const Onnx__NodeProto *add;
    if (!c->graph || c->node->n_output != 1 || !c->node->output[0] ||
        !(add = sole_reader(c, c->node->output[0])))
        return NULL;
    if (!add->op_type || strcmp(add->op_type, "Add") != 0 || add->n_input != 2 || !add->input[0] ||
        !add->input[1] || (add->domain && add->domain[0] && strcmp(add->domain, "ai.onnx") != 0))
        return NULL;
    int first = strcmp(add->input[0], c->node->output[0]) == 0;
    const struct onnx_value *v = onnx_value_find(c, add->input[first ? 1 : 0]);
    const struct onnx_tensor *t = v ? v->t : NULL;
    if (!t || t->is_int || t->count != (size_t)out || t->ndims < 1 || t->ndims > 2 ||
        (t->ndims == 2 && t->dims[0] != 1))
        return NULL;
    float *b = malloc((size_t)out * sizeof *b);
    if (b) {
        memcpy(b, t->f, (size_t)out * sizeof *b);
        c->fused = add;
        c->fused_from = c->node->output[0];
    }
    return b;
}

/* HardSigmoid; x * HardSigmoid(x, 1/6, 1/2) (HardSwish before opset 14, as `cnn convert`
 * writes it) becomes one hard_swish when that Mul alone reads the HardSigmoid. */
int onnx_op_hard_sigmoid(struct onnx_ctx *c, const Onnx__NodeProto *n)
{
    float alpha = onnx_attr_float(n, "alpha", 0.2f), beta = onnx_attr_float(n, "beta", 0.5f);
    const Onnx__NodeProto *mul;
    if (fabsf(alpha - 1.0f / 6.0f) <= 1e-7f && beta == 0.5f && n->n_input >= 1 && n->input[0] &&
        n->n_output == 1 && n->output[0] && (mul = sole_reader(c, n->output[0])) != NULL &&
        mul->op_type && strcmp(mul->op_type, "Mul") == 0 && mul->n_input == 2 && mul->input[0] &&
        mul->input[1] && (!mul->domain || !mul->domain[0] || !strcmp(mul->domain, "ai.onnx"))) {
        int hs_first = strcmp(mul->input[0], n->output[0]) == 0;
        if (strcmp(mul->input[hs_first ? 1 : 0], n->input[0]) == 0) {
            int rc = onnx_add_act(c, CNN_ACT_HARD_SWISH, 0, 0);
            if (rc >= 0) {
                c->fused = mul;
                c->fused_from = n->output[0];
            }
            return rc;
        }
    }
    return onnx_add_act(c, CNN_ACT_HARD_SIGMOID, alpha, beta);
}

int onnx_op_hard_swish(struct onnx_ctx *c, const Onnx__NodeProto *n)
{
    (void)n;
    return onnx_add_act(c, CNN_ACT_HARD_SWISH, 0, 0);
}

int onnx_op_global_maxpool(struct onnx_ctx *c, const Onnx__NodeProto *n)
{
    (void)n;
    struct onnx_value *x;
    int ch, h, w, rc;
    if ((rc = onnx_image_input(c, &x, &ch, &h, &w)))
        return rc;
    struct cnn_layer_desc d = {.kind = CNN_LAYER_GLOBAL_MAXPOOL};
    return onnx_add_layer(c, &d, 1, &x->layer, x->rank, NULL, NULL, 0);
}

/* PRelu: the slope a constant of one value or one per channel, in any shape that
 * broadcasts so ((C,1,1), (1,C,1,1), (1), ...). */
int onnx_op_prelu(struct onnx_ctx *c, const Onnx__NodeProto *n)
{
    (void)n;
    struct onnx_value *x;
    struct onnx_tensor *t;
    int rc, channels;
    if ((rc = onnx_input_layer(c, 0, &x)) || (rc = onnx_input_const(c, 1, 0, &t)))
        return rc;
    float *wts[1] = {NULL};
    size_t n_item = 0;
    if ((rc = channel_broadcast(c, x, t, "slope", &channels)) == 0) {
        wts[0] = onnx_copy_floats(c, t, 1.0f);
    } else if ((wts[0] = broadcast_item(c, x, t, &n_item)) != NULL) { /* one per element */
        if (n_item > (size_t)ONNX_MAX_CHANNELS) {
            free(wts[0]);
            return onnx_node_err(c, CNN_ELIMIT, "slope of %zu values per item", n_item);
        }
        channels = (int)n_item;
    } else {
        return onnx_err_code(c) == CNN_ENOMEM ? CNN_ENOMEM : rc; /* channel_broadcast's why */
    }
    size_t cnt[1] = {(size_t)channels};
    if (!wts[0])
        return onnx_err_code(c);
    struct cnn_layer_desc d = {.kind = CNN_LAYER_PRELU};
    d.p.prelu.channels = channels;
    return onnx_add_layer(c, &d, 1, &x->layer, x->rank, wts, cnt, 1);
}

/* The 8 pads (begins then ends of N,C,H,W) from input 1 (and axes, input 3) of opset >= 11;
 * the constant value from input 2. */
static int pad_inputs(struct onnx_ctx *c, int64_t pads[8], float *value)
{
    struct onnx_tensor *pt, *vt, *at;
    int rc;
    if ((rc = onnx_input_const(c, 1, 0, &pt)) || (rc = onnx_input_const(c, 2, 1, &vt)) ||
        (rc = onnx_input_const(c, 3, 1, &at)))
        return rc;
    size_t n_ax = at ? at->count : 4;
    if (!pt->is_int || pt->ndims != 1 || n_ax > 4 || pt->count != 2 * n_ax ||
        (at && (!at->is_int || at->ndims != 1)))
        return onnx_node_err(c, CNN_EFORMAT, "pads are not %zu integers (or bad axes)", 2 * n_ax);
    memset(pads, 0, 8 * sizeof *pads);
    for (size_t k = 0; k < n_ax; k++) {
        int a = at ? onnx_norm_axis(at->i[k], 4) : (int)k;
        if (a < 0)
            return onnx_node_err(c, CNN_EFORMAT, "axis %lld out of range", (long long)at->i[k]);
        pads[a] = pt->i[k];
        pads[a + 4] = pt->i[k + n_ax];
    }
    if (vt && vt->count > 1)
        return onnx_node_err(c, CNN_EFORMAT, "constant_value is not a scalar");
    if (vt && vt->count)
        *value = vt->is_int ? (float)vt->i[0] : vt->f[0];
    return 0;
}

/* Pad in constant mode on H and W (negative pads crop): attributes before opset 11
 * ("paddings" in opset 1), inputs from 11 on. */
int onnx_op_pad(struct onnx_ctx *c, const Onnx__NodeProto *n)
{
    struct onnx_value *x;
    int ch, h, w, rc;
    if ((rc = onnx_image_input(c, &x, &ch, &h, &w)))
        return rc;
    if (x->rank != 4)
        return onnx_node_err(c, CNN_EFORMAT, "unsupported: Pad of a rank-%d tensor (N,C,H,W only)",
                             x->rank);
    if (onnx_attr(n, "mode") && !onnx_attr_is(n, "mode", "constant"))
        return onnx_node_err(c, CNN_EFORMAT, "unsupported: mode other than constant");
    int64_t pads[8];
    float value = 0.0f;
    if (c->opset < 11) {
        if (onnx_attr_ints(n, c->opset < 2 ? "paddings" : "pads", pads, 8) != 8)
            return onnx_node_err(c, CNN_EFORMAT, "unsupported: pads not of a 4-D tensor");
        value = onnx_attr_float(n, "value", 0.0f);
    } else if ((rc = pad_inputs(c, pads, &value))) {
        return rc;
    }
    if (pads[0] || pads[1] || pads[4] || pads[5])
        return onnx_node_err(c, CNN_EFORMAT, "unsupported: padding of N or C");
    for (int k = 2; k < 8; k++)
        if (pads[k] < -ONNX_PAD_MAX || pads[k] > ONNX_PAD_MAX)
            return onnx_node_err(c, CNN_EFORMAT, "pad %lld out of range", (long long)pads[k]);
    if (!isfinite(value))
        return onnx_node_err(c, CNN_EFORMAT, "unsupported: non-finite pad value");
    struct cnn_layer_desc d = {.kind = CNN_LAYER_PAD};
    d.p.pad = (struct cnn_pad){.pad_t = (int)pads[2],
                               .pad_l = (int)pads[3],
                               .pad_b = (int)pads[6],
                               .pad_r = (int)pads[7],
                               .value = value};
    return onnx_add_layer(c, &d, 1, &x->layer, 4, NULL, NULL, 0);
}
