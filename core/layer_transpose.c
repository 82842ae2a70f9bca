/* Transpose: each item's C*H*W values viewed as up to 6 row-major dims, the axes permuted,
 * the result read as a new (c, h, w) (struct cnn_transpose).  In the (C, N, H, W) layout a
 * change of the channel grouping moves data even for the identity perm, so ONNX Transpose,
 * and Reshape/Unsqueeze/Squeeze that change C, become this kind.  Its kernels and the
 * transpose row of the layer-kind table (layer_kind.h). */
#include "layer.h"
#include "layer_kind.h"
#include "tensor.h"
#include "train_internal.h"

#include <stddef.h>

#define TD CNN_TRANSPOSE_DIMS

/* Every output value of every item in order, with the input value it is: forward (back 0)
 * dst = out, src = inp, dst[o] = src[i]; backward (back 1) dst = dinp, src = dout,
 * dst[i] += src[o].  Item flat index f of a (C', N, P) tensor is at (f / P) * N * P + n * P
 * + f % P.  The output dims run as an odometer over all but the last, whose run is the
 * inner loop; base is the item index of the run's first value. */
static void permute(float *dst, const float *src, const struct cnn_transpose *p, int HW, int N,
                    int back)
{
    size_t s[TD], st[TD], e[TD], count = 1;
    s[TD - 1] = 1;
    for (int k = TD - 2; k >= 0; k--)
        s[k] = s[k + 1] * (size_t)p->d[k + 1];
    for (int k = 0; k < TD; k++) {
        st[k] = s[p->perm[k]];
        e[k] = (size_t)p->d[p->perm[k]];
        count *= e[k];
    }
    const size_t hw = (size_t)HW, ohw = (size_t)p->h * (size_t)p->w;
    const size_t in_row = (size_t)N * hw, out_row = (size_t)N * ohw, runs = count / e[TD - 1];
    for (int n = 0; n < N; n++) {
        size_t oc = 0, opos = 0, base = 0, at[TD] = {0}; /* at: the odometer */
        for (size_t r = 0; r < runs; r++) {
            for (size_t t = 0; t < e[TD - 1]; t++) {
                const size_t i = base + t * st[TD - 1];
                const size_t ia = (i / hw) * in_row + (size_t)n * hw + i % hw;
                const size_t oa = oc * out_row + (size_t)n * ohw + opos;
                if (back)
                    dst[ia] += src[oa];
                else
                    dst[oa] = src[ia];
                if (++opos == ohw)
                    opos = 0, oc++;
            }
            for (int k = TD - 2; k >= 0; k--) {
                base += st[k];
                if (++at[k] < e[k])
                    break;
                base -= st[k] * e[k];
                at[k] = 0;
            }
        }
    }
}

void cnn_transpose_forward(float *out, const float *inp, const struct cnn_transpose *p, int HW,
                           int N)
{
    permute(out, inp, p, HW, N, 0);
}

void cnn_transpose_backward(float *dinp, const float *dout, const struct cnn_transpose *p, int HW,
                            int N)
{
    permute(dinp, dout, p, HW, N, 1);
}

/* ---- the transpose row ---------------------------------------------------------------- */

#define TR(f) offsetof(struct cnn_transpose, f)
static const struct cnn_layer_field transpose_fields[] = {
    {"d0", CNN_FIELD_INT, TR(d[0])},       {"d1", CNN_FIELD_INT, TR(d[1])},
    {"d2", CNN_FIELD_INT, TR(d[2])},       {"d3", CNN_FIELD_INT, TR(d[3])},
    {"d4", CNN_FIELD_INT, TR(d[4])},       {"d5", CNN_FIELD_INT, TR(d[5])},
    {"perm0", CNN_FIELD_INT, TR(perm[0])}, {"perm1", CNN_FIELD_INT, TR(perm[1])},
    {"perm2", CNN_FIELD_INT, TR(perm[2])}, {"perm3", CNN_FIELD_INT, TR(perm[3])},
    {"perm4", CNN_FIELD_INT, TR(perm[4])}, {"perm5", CNN_FIELD_INT, TR(perm[5])},
    {"c", CNN_FIELD_INT, TR(c)},           {"h", CNN_FIELD_INT, TR(h)},
    {"w", CNN_FIELD_INT, TR(w)},
};
_Static_assert(TD == 6, "the fields above list 6 view dims");

static int transpose_infer(const struct cnn_model *m, struct cnn_layer *l, struct cnn_err *err)
{
    const struct cnn_layer *in = cnn_layer_input(m, l, 0);
    const struct cnn_transpose *p = &l->p.tr;
    const int in_dims[3] = {in->c, in->h, in->w}, out_dims[3] = {p->c, p->h, p->w};
    size_t n_in, n_view, n_out;
    int seen = 0;
    for (int k = 0; k < TD; k++) {
        if (p->perm[k] < 0 || p->perm[k] >= TD || (seen >> p->perm[k]) & 1)
            return cnn_err_set(err, CNN_EINVAL,
                               "layer %s: transpose perm entry %d (%d) makes no permutation of "
                               "0..%d",
                               l->name, k, p->perm[k], TD - 1);
        seen |= 1 << p->perm[k];
        if (p->d[k] < 1)
            return cnn_err_set(err, CNN_EINVAL, "layer %s: transpose view dim %d is %d", l->name, k,
                               p->d[k]);
    }
    for (int k = 0; k < 3; k++)
        if (out_dims[k] < 1 || out_dims[k] > CNN_MAX_DIM)
            return cnn_err_set(err, CNN_EINVAL, "layer %s: transpose output %dx%dx%d out of range",
                               l->name, p->c, p->h, p->w);
    if (cnn_dims_count(in_dims, 3, &n_in) || cnn_dims_count(p->d, TD, &n_view) ||
        cnn_dims_count(out_dims, 3, &n_out) || n_view != n_in || n_out != n_in)
        return cnn_err_set(err, CNN_EINVAL,
                           "layer %s: transpose of a %dx%dx%d item viewed as "
                           "%dx%dx%dx%dx%dx%d to %dx%dx%d: the counts differ",
                           l->name, in->c, in->h, in->w, p->d[0], p->d[1], p->d[2], p->d[3],
                           p->d[4], p->d[5], p->c, p->h, p->w);
    l->c = p->c, l->h = p->h, l->w = p->w;
    return 0;
}

/* The same memory when the dims above 1 keep their order and the channels stay. */
static int transpose_is_alias(const struct cnn_model *m, const struct cnn_layer *l)
{
    const struct cnn_layer *in = cnn_layer_input(m, l, 0);
    int last = -1;
    for (int k = 0; k < TD; k++) {
        if (l->p.tr.d[l->p.tr.perm[k]] == 1)
            continue;
        if (l->p.tr.perm[k] < last)
            return 0;
        last = l->p.tr.perm[k];
    }
    return l->c == in->c;
}

static void transpose_run(const struct cnn_model *m, const struct cnn_op *op,
                          const struct cnn_op_run *r)
{
    const struct cnn_layer *il = &m->layers[op->inputs[0]];
    cnn_transpose_forward(r->out, r->in[0], &m->layers[op->layer].p.tr, il->h * il->w, r->n);
}

static int transpose_train_forward(const struct train_fwd_job *job, int part, int parts,
                                   struct cnn_err *err)
{
    (void)parts, (void)err;
    const struct train_view v = train_view(job->t, job->i, job->n);
    if (part == 0)
        cnn_transpose_forward(v.dst, v.in, &v.l->p.tr, (int)v.hw, job->n);
    return 0;
}

static void transpose_train_backward(const struct train_bwd_job *job, int part, int parts)
{
    (void)parts;
    const struct train_view v = train_view(job->t, job->i, job->n);
    if (v.dinp && part == 0) {
        train_zero_fresh(job, 0, v.dinp, 0, v.count);
        cnn_transpose_backward(v.dinp, job->dout, &v.l->p.tr, (int)v.hw, job->n);
    }
}

const struct cnn_layer_kind_ops cnn_kind_transpose = {
    .name = "transpose",
    .fields = transpose_fields,
    .n_fields = (int)(sizeof transpose_fields / sizeof transpose_fields[0]),
    .infer = transpose_infer,
    .is_alias = transpose_is_alias,
    .run = transpose_run,
    .train_forward = transpose_train_forward,
    .train_backward = transpose_train_backward,
};
