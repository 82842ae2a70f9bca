/* Fully connected forward for a batch: out (OUT, N) = w (OUT, IN) * inp (IN, N) in one
 * SGEMM, then one pass adding bias and the fused activation per output row.  Then the dense
 * row of the layer-kind table (layer_kind.h). */
#include "gemm.h"
#include "grad.h"
#include "layer.h"
#include "layer_kind.h"
#include "train_internal.h"

#include <stddef.h>

void cnn_dense_forward(float *out, const float *inp, const float *w, const float *b,
                       const struct cnn_dense *p, int N)
{
    cnn_gemm(0, 0, p->out, N, p->in, 1.0f, w, p->in, inp, N, 0.0f, out, N);
    if (!b && p->act.kind == CNN_ACT_NONE)
        return;
    for (int o = 0; b && o < p->out; o++) {
        float *row = out + (size_t)o * N;
        for (int n = 0; n < N; n++)
            row[n] += b[o];
    }
    cnn_act_apply(out, (size_t)p->out * N, &p->act); /* once: at batch 1 a row is one float */
}

/* ---- the dense row ------------------------------------------------------------------- */

#define DENSE(f) offsetof(struct cnn_dense, f)
static const struct cnn_layer_field dense_fields[] = {
    {"in", CNN_FIELD_DERIVED, DENSE(in)},
    {"out", CNN_FIELD_INT, DENSE(out)},
    {"has_bias", CNN_FIELD_FLAG, DENSE(has_bias)},
    {"act", CNN_FIELD_ACT, DENSE(act.kind)},
    {"act_alpha", CNN_FIELD_FLOAT, DENSE(act.alpha)},
    {"act_beta", CNN_FIELD_FLOAT, DENSE(act.beta)},
};
static const char *const wb_slots[] = {"w", "b"};

static int dense_infer(const struct cnn_model *m, struct cnn_layer *l, struct cnn_err *err)
{
    const struct cnn_layer *in = cnn_layer_input(m, l, 0);
    struct cnn_dense *p = &l->p.dense;
    if (in->h != 1 || in->w != 1)
        return cnn_err_set(err, CNN_EINVAL,
                           "layer %s: dense input is %dx%dx%d, add a flatten layer first",
                           l->name, in->c, in->h, in->w);
    if (p->out < 1 || p->out > CNN_MAX_DIM)
        return cnn_err_set(err, CNN_EINVAL, "layer %s: dense out %d out of range", l->name,
                           p->out);
    int rc = cnn_act_check(&p->act, l->name, err);
    if (rc)
        return rc;
    p->in = in->c;
    l->c = p->out;
    l->h = l->w = 1;
    int dims[2] = {p->out, p->in};
    if ((rc = cnn_layer_add_slot(l, 2, dims, err)) != 0)
        return rc;
    return p->has_bias ? cnn_layer_add_slot(l, 1, &p->out, err) : 0;
}

static const struct cnn_act_params *dense_act(const struct cnn_layer *l)
{
    return &l->p.dense.act;
}

static double dense_flops(const struct cnn_layer *l)
{
    return 2.0 * (double)l->weight_count[0];
}

static void dense_init(struct cnn_model *m, int i, uint64_t *rng)
{
    const struct cnn_dense *p = &m->layers[i].p.dense;
    cnn_model_init_fan(m, i, p->in, p->out, p->act.kind == CNN_ACT_RELU, rng);
}

static void dense_plan(struct cnn_compile *cs, struct cnn_op *op, const struct cnn_layer *l)
{
    op->dense = l->p.dense;
    op->w = cs->m->params + l->weight_offset[0];
    op->b = l->p.dense.has_bias ? cs->m->params + l->weight_offset[1] : NULL;
    cnn_compile_fuse_act(cs, op, &op->dense.act);
}

static void dense_run(const struct cnn_model *m, const struct cnn_op *op,
                      const struct cnn_op_run *r)
{
    (void)m;
    cnn_dense_forward(r->out, r->in[0], op->w, op->b, &op->dense, r->n);
}

/* Output features [lo, hi) of part: rows of w, b and out. */
static void dense_run_part(const struct cnn_model *m, const struct cnn_op *op,
                           const struct cnn_op_run *r, int part, int parts)
{
    (void)m;
    struct cnn_dense q = op->dense;
    size_t lo, hi;
    cnn_part_range((size_t)q.out, part, parts, &lo, &hi);
    q.out = (int)(hi - lo);
    if (q.out > 0)
        cnn_dense_forward(r->out + lo * (size_t)r->n, r->in[0], op->w + lo * (size_t)q.in,
                          op->b ? op->b + lo : NULL, &q, r->n);
}

/* Output features [lo, hi): rows of w, b and out; without the fused activation. */
static int dense_train_forward(const struct train_fwd_job *job, int part, int parts,
                               struct cnn_err *err)
{
    (void)err;
    const struct train_view v = train_view(job->t, job->i, job->n);
    const int n = job->n;
    struct cnn_dense q = v.l->p.dense;
    size_t lo, hi;
    q.act = train_no_act;
    cnn_part_range((size_t)q.out, part, parts, &lo, &hi);
    q.out = (int)(hi - lo);
    if (q.out > 0)
        cnn_dense_forward(v.dst + lo * (size_t)n, v.in,
                          v.P + v.l->weight_offset[0] + lo * (size_t)q.in,
                          q.has_bias ? v.P + v.l->weight_offset[1] + lo : NULL, &q, n);
    return 0;
}

/* dw, db over output features [lo, hi); dinp over input features. */
static void dense_train_backward(const struct train_bwd_job *job, int part, int parts)
{
    struct cnn_trainer *t = job->t;
    const struct train_view v = train_view(t, job->i, job->n);
    const struct cnn_layer *l = v.l;
    const struct cnn_dense *p = &l->p.dense;
    const int n = job->n;
    const float *w = v.P + l->weight_offset[0];
    size_t lo, hi;
    if (v.tl->trainable) {
        struct cnn_dense q = *p;
        cnn_part_range((size_t)p->out, part, parts, &lo, &hi);
        q.out = (int)(hi - lo);
        float *db = p->has_bias ? t->buf.grad + l->weight_offset[1] + lo : NULL;
        if (q.out > 0)
            cnn_dense_backward(NULL, t->buf.grad + l->weight_offset[0] + lo * (size_t)p->in, db,
                               job->dout + lo * (size_t)n, v.in, w + lo * (size_t)p->in, &q, n);
    }
    if (v.dinp) { /* dinp rows [lo, hi) += w[:, lo:hi]^T * dout */
        cnn_part_range((size_t)p->in, part, parts, &lo, &hi);
        if (hi > lo)
            cnn_gemm(1, 0, (int)(hi - lo), n, p->out, 1.0f, w + lo, p->in, job->dout, n,
                     job->fresh[0] ? 0.0f : 1.0f, v.dinp + lo * (size_t)n, n);
    }
}

const struct cnn_layer_kind_ops cnn_kind_dense = {
    .name = "dense",
    .fields = dense_fields,
    .n_fields = (int)(sizeof dense_fields / sizeof dense_fields[0]),
    .slot_names = wb_slots,
    .learned_slots = 2,
    .decay_slots = 1,
    .infer = dense_infer,
    .fused_act = dense_act,
    .flops = dense_flops,
    .init = dense_init,
    .plan = dense_plan,
    .run = dense_run,
    .run_part = dense_run_part,
    .train_forward = dense_train_forward,
    .train_backward = dense_train_backward,
};
