/* ONNX nodes folded at load: Constant, and the Shape / Gather / Unsqueeze / Squeeze / Cast /
 * Concat chains on constants that PyTorch's exporter writes before Reshape (the batch size
 * stays symbolic, ONNX_DIM_BATCH); the helpers the op rows of onnx_ops.c share for
 * constants and axes. */
#include "onnx_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int onnx_op_constant(struct onnx_ctx *c, const Onnx__NodeProto *n)
{
    const Onnx__AttributeProto *a = onnx_attr(n, "value");
    struct onnx_tensor *t = NULL;
    int rc;
    if (a && a->t) {
        /* named by its output; a node without one is refused by onnx_set_const */
        const char *who = n->n_output && n->output[0] ? n->output[0] : "(no output)";
        if ((rc = onnx_tensor_decode(a->t, who, &t, c->err)))
            return rc;
        return onnx_set_const(c, 0, t);
    }
    int64_t one = 1;
    if ((a = onnx_attr(n, "value_float")) && a->has_f) {
        if ((t = onnx_tensor_new(0, 0, &one, c->err)))
            t->f[0] = a->f;
    } else if ((a = onnx_attr(n, "value_int")) && a->has_i) {
        if ((t = onnx_tensor_new(1, 0, &one, c->err)))
            t->i[0] = a->i;
    } else if ((a = onnx_attr(n, "value_floats"))) {
        int64_t len = (int64_t)a->n_floats;
        if ((t = onnx_tensor_new(0, 1, &len, c->err)) && len)
            memcpy(t->f, a->floats, a->n_floats * sizeof *t->f);
    } else if ((a = onnx_attr(n, "value_ints"))) {
        int64_t len = (int64_t)a->n_ints;
        if ((t = onnx_tensor_new(1, 1, &len, c->err)) && len)
            memcpy(t->i, a->ints, a->n_ints * sizeof *t->i);
    } else {
        return onnx_node_err(c, CNN_EFORMAT, "unsupported: value kind (sparse or string)");
    }
    return t ? onnx_set_const(c, 0, t) : onnx_err_code(c);
}

/* A new constant with t's type and values and the given shape (count must match). */
int onnx_const_reshaped(struct onnx_ctx *c, const struct onnx_tensor *t, int nd,
                        const int64_t *dims)
{
    size_t count; /* checked before allocating: the shape may ask for billions */
    if (onnx_dims_count(nd, dims, &count, c->err))
        return onnx_err_code(c);
    if (count != t->count)
        return onnx_node_err(c, CNN_EFORMAT, "shape does not match %zu values", t->count);
    struct onnx_tensor *o = onnx_tensor_new(t->is_int, nd, dims, c->err);
    if (!o)
        return onnx_err_code(c);
    if (t->is_int)
        memcpy(o->i, t->i, t->count * sizeof *o->i);
    else
        memcpy(o->f, t->f, t->count * sizeof *o->f);
    return onnx_set_const(c, 0, o);
}

/* axis in -rank..rank-1 -> 0..rank-1, or -1 when out of range. */
int onnx_norm_axis(int64_t axis, int rank)
{
    if (axis < -rank || axis >= rank)
        return -1;
    return (int)(axis < 0 ? axis + rank : axis);
}

/* Concat of constants along axis (the shape chains). */
int onnx_concat_consts(struct onnx_ctx *c, const Onnx__NodeProto *n, int64_t axis)
{
    struct onnx_tensor *first;
    int rc = onnx_input_const(c, 0, 0, &first);
    if (rc)
        return rc;
    int nd = first->ndims, a = onnx_norm_axis(axis, nd);
    if (a < 0)
        return onnx_node_err(c, CNN_EFORMAT, "axis out of range");
    int64_t dims[CNN_ONNX_MAX_DIMS];
    memcpy(dims, first->dims, sizeof dims);
    dims[a] = 0;
    for (size_t k = 0; k < n->n_input; k++) {
        struct onnx_tensor *t;
        if ((rc = onnx_input_const(c, (int)k, 0, &t)))
            return rc;
        int same = t->ndims == nd && t->is_int == first->is_int;
        for (int d = 0; same && d < nd; d++)
            same = d == a || t->dims[d] == first->dims[d];
        if (!same || t->dims[a] > ONNX_MAX_TENSOR_FLOATS)
            return onnx_node_err(c, CNN_EFORMAT, "inputs of different shapes or types");
        dims[a] += t->dims[a];
    }
    struct onnx_tensor *o = onnx_tensor_new(first->is_int, nd, dims, c->err);
    if (!o)
        return onnx_err_code(c);
    size_t outer = 1, inner = 1, off = 0, esz = first->is_int ? 8 : 4;
    for (int d = 0; d < a; d++)
        outer *= (size_t)dims[d];
    for (int d = a + 1; d < nd; d++)
        inner *= (size_t)dims[d];
    char *dst = first->is_int ? (char *)o->i : (char *)o->f;
    for (size_t i = 0; i < outer; i++)
        for (size_t k = 0; k < n->n_input; k++) {
            struct onnx_tensor *t = onnx_value_find(c, n->input[k])->t;
            size_t len = (size_t)t->dims[a] * inner * esz;
            const char *src = t->is_int ? (const char *)t->i : (const char *)t->f;
            memcpy(dst + off, src + i * len, len);
            off += len;
        }
    return onnx_set_const(c, 0, o);
}

int onnx_transpose_const(struct onnx_ctx *c, const struct onnx_tensor *t, const int64_t *perm,
                         int np)
{
    const int nd = t->ndims;
    int64_t p[CNN_ONNX_MAX_DIMS], dims[CNN_ONNX_MAX_DIMS];
    size_t st[CNN_ONNX_MAX_DIMS], idx[CNN_ONNX_MAX_DIMS] = {0};
    unsigned seen = 0;
    if (np != 0 && np != nd)
        return onnx_node_err(c, CNN_EFORMAT, "perm of %d entries for rank %d", np, nd);
    for (int k = 0; k < nd; k++) {
        p[k] = np ? perm[k] : nd - 1 - k; /* default: reversed */
        if (p[k] < 0 || p[k] >= nd || (seen >> p[k]) & 1u)
            return onnx_node_err(c, CNN_EFORMAT, "perm is not a permutation");
        seen |= 1u << p[k];
        dims[k] = t->dims[p[k]];
    }
    for (int k = nd - 1; k >= 0; k--)
        st[k] = k == nd - 1 ? 1 : st[k + 1] * (size_t)t->dims[k + 1];
    struct onnx_tensor *o = onnx_tensor_new(t->is_int, nd, dims, c->err);
    if (!o)
        return onnx_err_code(c);
    for (size_t i = 0; i < o->count; i++) {
        size_t src = 0;
        for (int k = 0; k < nd; k++)
            src += idx[k] * st[p[k]];
        if (o->is_int)
            o->i[i] = t->i[src];
        else
            o->f[i] = t->f[src];
        for (int k = nd - 1; k >= 0 && ++idx[k] == (size_t)dims[k]; k--)
            idx[k] = 0;
    }
    return onnx_set_const(c, 0, o);
}

/* Shape of a layer output (the batch entry folded as ONNX_DIM_BATCH) or of a constant. */
int onnx_op_shape(struct onnx_ctx *c, const Onnx__NodeProto *n)
{
    struct onnx_value *x;
    int rc = onnx_input(c, 0, 0, &x);
    if (rc)
        return rc;
    int64_t full[CNN_ONNX_MAX_DIMS];
    int nd;
    if (x->t) {
        nd = x->t->ndims;
        memcpy(full, x->t->dims, sizeof full);
    } else {
        nd = x->rank;
        onnx_layer_dims(c, x, full);
    }
    int64_t start = onnx_attr_int(n, "start", 0), end = onnx_attr_int(n, "end", nd);
    start = start < 0 ? start + nd : start;
    end = end < 0 ? end + nd : end;
    start = start < 0 ? 0 : start > nd ? nd : start;
    end = end < start ? start : end > nd ? nd : end;
    int64_t len = end - start;
    struct onnx_tensor *o = onnx_tensor_new(1, 1, &len, c->err);
    if (!o)
        return onnx_err_code(c);
    memcpy(o->i, full + start, (size_t)len * sizeof *o->i);
    return onnx_set_const(c, 0, o);
}

/* Gather on a 1-D constant along axis 0. */
int onnx_op_gather(struct onnx_ctx *c, const Onnx__NodeProto *n)
{
    struct onnx_tensor *data, *idx;
    int rc;
    if ((rc = onnx_input_const(c, 0, 0, &data)) || (rc = onnx_input_const(c, 1, 0, &idx)))
        return rc;
    if (data->ndims != 1 || !idx->is_int || onnx_norm_axis(onnx_attr_int(n, "axis", 0), 1) != 0)
        return onnx_node_err(c, CNN_EFORMAT, "unsupported: gather other than 1-D on axis 0");
    struct onnx_tensor *o = onnx_tensor_new(data->is_int, idx->ndims, idx->dims, c->err);
    if (!o)
        return onnx_err_code(c);
    for (size_t k = 0; k < idx->count; k++) {
        int64_t j = idx->i[k] < 0 ? idx->i[k] + (int64_t)data->count : idx->i[k];
        if (j < 0 || j >= (int64_t)data->count) {
            onnx_tensor_free(o);
            return onnx_node_err(c, CNN_EFORMAT, "index %lld out of range", (long long)idx->i[k]);
        }
        if (o->is_int)
            o->i[k] = data->i[j];
        else
            o->f[k] = data->f[j];
    }
    return onnx_set_const(c, 0, o);
}

/* The axes of Unsqueeze / Squeeze: attribute before opset 13, input 1 from 13 on. */
static int axes_of(struct onnx_ctx *c, const Onnx__NodeProto *n, int64_t *axes, int *na)
{
    if (c->opset < 13) {
        *na = onnx_attr_ints(n, "axes", axes, CNN_ONNX_MAX_DIMS);
    } else {
        struct onnx_tensor *t;
        int rc = onnx_input_const(c, 1, 1, &t);
        if (rc)
            return rc;
        if (t && (!t->is_int || t->count > CNN_ONNX_MAX_DIMS))
            return onnx_node_err(c, CNN_EFORMAT, "axes invalid");
        *na = t ? (int)t->count : 0;
        if (t)
            memcpy(axes, t->i, t->count * sizeof *axes);
    }
    return *na < 0 ? onnx_node_err(c, CNN_EFORMAT, "too many axes") : 0;
}

/* Unsqueeze and Squeeze: only the dims change (of a constant, or of a layer output when
 * the batch stays first: onnx_layer_as). */
int onnx_op_squeeze(struct onnx_ctx *c, const Onnx__NodeProto *n)
{
    struct onnx_value *v;
    int64_t axes[CNN_ONNX_MAX_DIMS], dims[CNN_ONNX_MAX_DIMS], in[CNN_ONNX_MAX_DIMS];
    int na = 0, rc;
    if ((rc = onnx_input(c, 0, 0, &v)) || (rc = axes_of(c, n, axes, &na)))
        return rc;
    int nd = v->t ? v->t->ndims : v->rank;
    if (v->t)
        memcpy(in, v->t->dims, (size_t)nd * sizeof *in);
    else
        onnx_layer_dims(c, v, in);
    int un = strcmp(n->op_type, "Unsqueeze") == 0, out = un ? nd + na : 0;
    if (out > CNN_ONNX_MAX_DIMS || (un && na == 0))
        return onnx_node_err(c, CNN_EFORMAT, "rank out of range");
    int mark[CNN_ONNX_MAX_DIMS] = {0};
    for (int k = 0; k < na; k++) {
        int a = onnx_norm_axis(axes[k], un ? out : nd);
        if (!v->t && a == 0)
            return onnx_node_err(c, CNN_EFORMAT, "unsupported: axis 0 (the batch)");
        if (a < 0 || mark[a] || (!un && in[a] != 1))
            return onnx_node_err(c, CNN_EFORMAT, "axis %lld invalid", (long long)axes[k]);
        mark[a] = 1;
    }
    if (un) {
        for (int k = 0, j = 0; k < out; k++)
            dims[k] = mark[k] ? 1 : in[j++];
    } else {
        for (int k = 0; k < nd; k++)
            if (na ? !mark[k] : in[k] != 1)
                dims[out++] = in[k];
    }
    return v->t ? onnx_const_reshaped(c, v->t, out, dims) : onnx_layer_as(c, v, out, dims);
}

/* Cast of a constant to float or an integer type; of a layer output to float (a no-op). */
int onnx_op_cast(struct onnx_ctx *c, const Onnx__NodeProto *n)
{
    struct onnx_value *x;
    int rc = onnx_input(c, 0, 0, &x);
    if (rc)
        return rc;
    int64_t to = onnx_attr_int(n, "to", 0);
    int to_int =
        to == ONNX__TENSOR_PROTO__DATA_TYPE__INT64 || to == ONNX__TENSOR_PROTO__DATA_TYPE__INT32;
    if (!to_int && to != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
        return onnx_node_err(c, CNN_EFORMAT, "unsupported: cast to type %lld", (long long)to);
    if (!x->t) {
        if (to_int)
            return onnx_node_err(c, CNN_EFORMAT, "unsupported: cast of a tensor to integers");
        return onnx_alias(c, 0, x);
    }
    struct onnx_tensor *o = onnx_tensor_new(to_int, x->t->ndims, x->t->dims, c->err);
    if (!o)
        return onnx_err_code(c);
    for (size_t k = 0; k < o->count; k++) {
        if (to_int && x->t->is_int)
            o->i[k] = x->t->i[k];
        else if (to_int)
            o->i[k] = isfinite(x->t->f[k]) && fabsf(x->t->f[k]) < 9e18f ? (int64_t)x->t->f[k] : 0;
        else
            o->f[k] = x->t->is_int ? (float)x->t->i[k] : x->t->f[k];
    }
    return onnx_set_const(c, 0, o);
}
