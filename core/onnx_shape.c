/* The ONNX rows that only regroup or permute each item's values -- Reshape, Transpose,
 * Flatten (Squeeze/Unsqueeze of layer outputs come here through onnx_layer_as) -- and the
 * value shapes they work on: ranks 2..8 of (N, ...) held as the engine's (C, H, W), mapped
 * onto nothing (an alias), reshape, flatten or transpose layers (docs/onnx.md). */
#include "onnx_internal.h"

#include <stdio.h>
#include <string.h>

int onnx_flatten_layer(struct onnx_ctx *c, struct onnx_value *x, int define)
{
    if (x->rank == 2)
        return define ? onnx_alias(c, 0, x) : x->layer;
    struct cnn_layer_desc d = {.kind = CNN_LAYER_FLATTEN};
    return onnx_add_layer(c, &d, 1, &x->layer, define ? 2 : 0, NULL, NULL, 0);
}

void onnx_layer_dims(const struct onnx_ctx *c, const struct onnx_value *x, int64_t *dims)
{
    if (x->rank > 4) {
        memcpy(dims, x->dims, (size_t)x->rank * sizeof *dims);
        return;
    }
    int ch, h, w;
    onnx_layer_shape(c, x->layer, &ch, &h, &w);
    dims[0] = ONNX_DIM_BATCH;
    dims[1] = ch;
    dims[2] = x->rank == 3 ? w : h; /* (N, C, L) is (N, C, 1, L) */
    dims[3] = x->rank == 3 ? 1 : w;
}

int onnx_any_rank(const char *op_type)
{
    static const char *const ops[] = {"Reshape", "Transpose", "Squeeze", "Unsqueeze",
                                      "Flatten", "Identity",  "Dropout", "Shape"};
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++)
        if (strcmp(ops[k], op_type) == 0)
            return 1;
    return 0;
}

/* The model's per-image (C, H, W) of a value of ONNX dims (N, d1..): (N, K) is (K, 1, 1),
 * (N, C, L) is (C, 1, L), (N, C, D.., W) of rank 5..8 is (C, product of D.., W); 0 when nd
 * is not 2..8 or a dim is out of 1..ONNX_MAX_DIM. */
static int engine_shape(int nd, const int64_t *dims, int64_t chw[3])
{
    if (nd < 2 || nd > CNN_ONNX_MAX_DIMS)
        return 0;
    chw[0] = dims[1];
    chw[1] = 1;
    chw[2] = nd >= 3 ? dims[nd - 1] : 1;
    for (int k = 2; k < nd - 1; k++) {
        if (dims[k] < 1 || dims[k] > ONNX_MAX_DIM)
            return 0;
        chw[1] *= dims[k]; /* at most 2^24 before each step: no overflow */
        if (chw[1] > ONNX_MAX_DIM)
            return 0;
    }
    for (int k = 0; k < 3; k++)
        if (chw[k] < 1 || chw[k] > ONNX_MAX_DIM)
            return 0;
    return 1;
}

/* Output 0 of the node is layer l seen as the rank-nd value of dims. */
static int define_layer(struct onnx_ctx *c, int l, int nd, const int64_t *dims)
{
    struct onnx_value v = {.layer = l, .rank = nd};
    if (nd > 4)
        memcpy(v.dims, dims, (size_t)nd * sizeof *dims);
    return onnx_alias(c, 0, &v);
}

/* "d1,d2,.." of dims[1..nd) into buf. */
static void dims_str(char *buf, size_t size, int nd, const int64_t *dims)
{
    int len = 0;
    buf[0] = 0;
    for (int k = 1; k < nd && len >= 0 && (size_t)len < size; k++)
        len +=
            snprintf(buf + len, size - (size_t)len, "%s%lld", k > 1 ? "," : "", (long long)dims[k]);
}

int onnx_layer_as(struct onnx_ctx *c, struct onnx_value *x, int nd, const int64_t *dims)
{
    int64_t in[CNN_ONNX_MAX_DIMS], want[3];
    int ch, h, w;
    onnx_layer_shape(c, x->layer, &ch, &h, &w);
    onnx_layer_dims(c, x, in);
    const int64_t feat = (int64_t)ch * h * w;
    int shaped = nd >= 2 && dims[0] == ONNX_DIM_BATCH && engine_shape(nd, dims, want);
    if (!shaped || want[0] * want[1] > feat || want[0] * want[1] * want[2] != feat) {
        char from[64], to[96];
        dims_str(from, sizeof from, x->rank, in);
        dims_str(to, sizeof to, nd, dims);
        return onnx_node_err(c, CNN_EFORMAT,
                             "unsupported: (N,%s) to (N,%s): not the batch and the same %lld "
                             "values per item",
                             from, to, (long long)feat);
    }
    if (want[0] == ch && want[1] == h && want[2] == w) /* the same data and layout */
        return define_layer(c, x->layer, nd, dims);
    struct cnn_layer_desc d = {.kind = CNN_LAYER_TRANSPOSE};
    int l;
    if (want[0] == feat && want[1] == 1 && want[2] == 1) {
        l = onnx_flatten_layer(c, x, 0);
    } else if (want[0] == ch) { /* a new H x W of each plane: the same memory */
        d.kind = CNN_LAYER_RESHAPE;
        d.p.reshape = (struct cnn_reshape){.h = (int)want[1], .w = (int)want[2]};
        l = onnx_add_layer(c, &d, 1, &x->layer, 0, NULL, NULL, 0);
    } else { /* other channels: the identity perm regroups the item's values */
        d.p.tr = (struct cnn_transpose){.d = {ch, h, w, 1, 1, 1},
                                        .perm = {0, 1, 2, 3, 4, 5},
                                        .c = (int)want[0],
                                        .h = (int)want[1],
                                        .w = (int)want[2]};
        l = onnx_add_layer(c, &d, 1, &x->layer, 0, NULL, NULL, 0);
    }
    return l < 0 ? l : define_layer(c, l, nd, dims);
}

/* The transpose layer of a permutation of the item's axes of layer value x: the axes
 * above 1 (in their input order) merge into runs that stay adjacent and in order in the
 * output; at most CNN_TRANSPOSE_DIMS runs (padded with leading 1s), else unsupported.  in:
 * x's dims, perm (np = x->rank entries, perm[0] = 0), out: the output's dims.  An identity
 * after the merge moves no data beyond a regrouping: onnx_layer_as. */
static int transpose_layer(struct onnx_ctx *c, struct onnx_value *x, const int64_t *in,
                           const int64_t *perm, int np, const int64_t *out)
{
    enum { TD = CNN_TRANSPOSE_DIMS };
    int rank_of[CNN_ONNX_MAX_DIMS], seq[CNN_ONNX_MAX_DIMS], n_axes = 0, n_seq = 0;
    for (int a = 1; a < np; a++) /* rank_of[a]: the place of axis a among the axes above 1 */
        rank_of[a] = in[a] != 1 ? n_axes++ : -1;
    for (int k = 1; k < np; k++)
        if (in[perm[k]] != 1)
            seq[n_seq++] = rank_of[perm[k]];
    int run_of[CNN_ONNX_MAX_DIMS], n_runs = 0; /* run_of[rank]: its run, in output order */
    for (int j = 0; j < n_seq; j++) {
        if (j == 0 || seq[j] != seq[j - 1] + 1)
            n_runs++;
        run_of[seq[j]] = n_runs - 1;
    }
    if (n_runs > TD)
        return onnx_node_err(
            c, CNN_EFORMAT, "unsupported: transpose of %d groups of axes (at most %d)", n_runs, TD);
    int64_t size[TD];
    int order[TD], n_ord = 0, identity = 1; /* order: the runs in input order */
    for (int r = 0; r < TD; r++)
        size[r] = 1;
    for (int r = 0; r < n_axes; r++)
        if (r == 0 || run_of[r] != run_of[r - 1])
            order[n_ord++] = run_of[r];
    for (int a = 1; a < np; a++)
        if (rank_of[a] >= 0)
            size[run_of[rank_of[a]]] *= in[a];
    struct cnn_transpose t;
    const int pad = TD - n_runs;
    for (int k = 0; k < TD; k++)
        t.d[k] = 1, t.perm[k] = k;
    for (int q = 0; q < n_ord; q++) { /* view dim pad + q is run order[q] */
        t.d[pad + q] = (int)size[order[q]];
        t.perm[pad + order[q]] = pad + q;
        identity &= order[q] == q;
    }
    if (identity)
        return onnx_layer_as(c, x, np, out);
    int64_t want[3];
    if (!engine_shape(np, out, want))
        return onnx_node_err(c, CNN_EFORMAT, "unsupported: output dims out of range");
    t.c = (int)want[0], t.h = (int)want[1], t.w = (int)want[2];
    struct cnn_layer_desc d = {.kind = CNN_LAYER_TRANSPOSE};
    d.p.tr = t;
    int l = onnx_add_layer(c, &d, 1, &x->layer, 0, NULL, NULL, 0);
    return l < 0 ? l : define_layer(c, l, np, out);
}

/* Transpose of a constant: folded (any perm).  Of a layer output: the batch stays first
 * (perm[0] = 0); an identity or flatten of static shapes moves no data, any other perm of
 * the item's axes is a transpose layer (transpose_layer). */
int onnx_op_transpose(struct onnx_ctx *c, const Onnx__NodeProto *n)
{
    struct onnx_value *x;
    int64_t perm[CNN_ONNX_MAX_DIMS];
    int rc = onnx_input(c, 0, 0, &x);
    if (rc)
        return rc;
    int np = onnx_attr_ints(n, "perm", perm, CNN_ONNX_MAX_DIMS);
    if (np < 0)
        return onnx_node_err(c, CNN_EFORMAT, "perm too long");
    if (x->t) /* of a constant (a weight PyTorch transposes before MatMul): folded */
        return onnx_transpose_const(c, x->t, perm, np);
    int64_t in[CNN_ONNX_MAX_DIMS], out[CNN_ONNX_MAX_DIMS];
    onnx_layer_dims(c, x, in);
    if (np == 0) /* default: reversed */
        for (np = 0; np < x->rank; np++)
            perm[np] = x->rank - 1 - np;
    if (np != x->rank)
        return onnx_node_err(c, CNN_EFORMAT, "perm of %d entries for rank %d", np, x->rank);
    int seen = 0;
    for (int k = 0; k < np; k++) {
        if (perm[k] < 0 || perm[k] >= np || (seen >> perm[k]) & 1)
            return onnx_node_err(c, CNN_EFORMAT, "perm is not a permutation");
        seen |= 1 << perm[k];
        out[k] = in[perm[k]];
    }
    if (perm[0] != 0)
        return onnx_node_err(c, CNN_EFORMAT,
                             "unsupported: perm moves the batch (axis %d first; only the axes "
                             "of each item may move)",
                             (int)perm[0]);
    return transpose_layer(c, x, in, perm, np, out);
}

int onnx_op_flatten(struct onnx_ctx *c, const Onnx__NodeProto *n)
{
    struct onnx_value *x;
    int rc = onnx_input(c, 0, 0, &x);
    if (rc)
        return rc;
    int64_t axis = onnx_attr_int(n, "axis", 1);
    if (x->t) {
        int a = axis == x->t->ndims ? x->t->ndims : onnx_norm_axis(axis, x->t->ndims);
        if (a < 0)
            return onnx_node_err(c, CNN_EFORMAT, "axis out of range");
        int64_t dims[2] = {1, 1};
        for (int k = 0; k < x->t->ndims; k++)
            dims[k < a ? 0 : 1] *= x->t->dims[k];
        return onnx_const_reshaped(c, x->t, 2, dims);
    }
    int a = axis == x->rank ? x->rank : onnx_norm_axis(axis, x->rank);
    int64_t in[CNN_ONNX_MAX_DIMS], lead = 1;
    onnx_layer_dims(c, x, in);
    for (int k = 1; k < a; k++)
        lead *= in[k];
    /* (N * lead, rest): the (N, C*H*W) flatten when lead is 1, or axis 0 with batch 1 */
    if (a < 0 || (a == 0 ? c->batch != 1 : lead != 1))
        return onnx_node_err(c, CNN_EFORMAT,
                             "unsupported: axis %lld (batch-preserving axis 1 only)",
                             (long long)axis);
    return onnx_flatten_layer(c, x, 1);
}

/* Reshape of a constant, or of a layer to (N, -1) / (N, K) (a flatten) or (N, K, 1, 1). */
int onnx_op_reshape(struct onnx_ctx *c, const Onnx__NodeProto *n)
{
    struct onnx_value *x;
    struct onnx_tensor *s;
    int rc;
    if ((rc = onnx_input(c, 0, 0, &x)) || (rc = onnx_input_const(c, 1, 0, &s)))
        return rc;
    if (!s->is_int || s->ndims != 1 || s->count > CNN_ONNX_MAX_DIMS)
        return onnx_node_err(c, CNN_EFORMAT, "shape is not a 1-D integer tensor of rank <= %d",
                             CNN_ONNX_MAX_DIMS);
    int64_t dims[CNN_ONNX_MAX_DIMS] = {0}, xd[CNN_ONNX_MAX_DIMS];
    size_t known = 1;
    int infer = -1, nd = (int)s->count, allowzero = onnx_attr_int(n, "allowzero", 0) != 0;
    if (!x->t)
        onnx_layer_dims(c, x, xd);
    for (int k = 0; k < nd; k++) {
        int64_t v = s->i[k];
        if (x->t && v == 0 && !allowzero && k < x->t->ndims)
            v = x->t->dims[k];
        else if (!x->t && v == 0 && !allowzero && k > 0 && k < x->rank)
            v = xd[k]; /* 0 copies the input's dim */
        if (v == -1 && infer < 0) {
            infer = k;
            dims[k] = -1;
            continue;
        }
        if (!x->t && k == 0 && (v == ONNX_DIM_BATCH || v == 0 || v == c->batch))
            v = 0; /* the batch */
        if (v < 0 || v > ONNX_MAX_TENSOR_FLOATS || (!x->t && k == 0 && v))
            return onnx_node_err(c, CNN_EFORMAT, "%sshape entry %lld invalid",
                                 !x->t && k == 0 ? "unsupported: batch " : "", (long long)s->i[k]);
        dims[k] = v;
        if ((k > 0 || x->t) && v && known <= ONNX_MAX_TENSOR_FLOATS)
            known *= (size_t)v; /* both <= 2^30: no overflow */
        else if (k > 0 || x->t)
            known = v ? SIZE_MAX : 0;
    }
    if (x->t) {
        if (infer >= 0)
            dims[infer] = known ? (int64_t)(x->t->count / known) : 0;
        return onnx_const_reshaped(c, x->t, nd, dims);
    }
    int ch, h, w;
    onnx_layer_shape(c, x->layer, &ch, &h, &w);
    const int64_t feat = (int64_t)ch * h * w;
    /* the batch entry was 0 (copy), the folded batch, the input's fixed batch size or -1 */
    dims[0] = ONNX_DIM_BATCH;
    if (infer > 0)
        dims[infer] =
            known && known != SIZE_MAX && feat % (int64_t)known == 0 ? feat / (int64_t)known : -1;
    return onnx_layer_as(c, x, nd, dims);
}
