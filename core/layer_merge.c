/* The add and concat rows of the layer-kind table (layer_kind.h): the two kinds with more
 * than one input.  Add sums inputs of equal shape (residual connections; a following
 * activation fuses into it at compile), concat stacks inputs of equal H, W over channels;
 * in (C, N, H, W) each input is one contiguous block, so concat is a copy per input. */
#include "grad.h"
#include "layer.h"
#include "layer_kind.h"
#include "train_internal.h"

#include <string.h>

static int add_infer(const struct cnn_model *m, struct cnn_layer *l, struct cnn_err *err)
{
    const struct cnn_layer *in = cnn_layer_input(m, l, 0);
    if (l->n_inputs < 2)
        return cnn_err_set(err, CNN_EINVAL, "layer %s: add needs 2 or more inputs", l->name);
    for (int i = 1; i < l->n_inputs; i++) {
        const struct cnn_layer *o = cnn_layer_input(m, l, i);
        if (o->c != in->c || o->h != in->h || o->w != in->w)
            return cnn_err_set(err, CNN_EINVAL,
                               "layer %s: add inputs differ: %dx%dx%d vs %dx%dx%d (%s)", l->name,
                               in->c, in->h, in->w, o->c, o->h, o->w, o->name);
    }
    return cnn_layer_same_shape(m, l);
}

static void add_plan(struct cnn_compile *cs, struct cnn_op *op, const struct cnn_layer *l)
{
    (void)l;
    cnn_compile_fuse_act(cs, op, &op->act);
}

static void add_run(const struct cnn_model *m, const struct cnn_op *op, const struct cnn_op_run *r)
{
    const struct cnn_layer *il = &m->layers[op->inputs[0]];
    cnn_add_forward(r->out, r->in, op->n_inputs, (size_t)il->c * il->h * il->w * (size_t)r->n,
                    &op->act);
}

static void add_run_part(const struct cnn_model *m, const struct cnn_op *op,
                         const struct cnn_op_run *r, int part, int parts)
{
    const struct cnn_layer *il = &m->layers[op->inputs[0]];
    const float *ins[CNN_MAX_INPUTS];
    size_t lo, hi;
    cnn_part_range((size_t)il->c * il->h * il->w * (size_t)r->n, part, parts, &lo, &hi);
    for (int k = 0; k < op->n_inputs; k++)
        ins[k] = r->in[k] + lo;
    cnn_add_forward(r->out + lo, ins, op->n_inputs, hi - lo, &op->act);
}

/* Element ranges [lo, hi) of every input. */
static int add_train_forward(const struct train_fwd_job *job, int part, int parts,
                             struct cnn_err *err)
{
    (void)err;
    struct cnn_trainer *t = job->t;
    const struct train_view v = train_view(t, job->i, job->n);
    const float *ins[CNN_MAX_INPUTS];
    size_t lo, hi;
    cnn_part_range(v.count, part, parts, &lo, &hi);
    for (int k = 0; k < v.l->n_inputs; k++)
        ins[k] = t->buf.tl[v.l->inputs[k]].out + lo;
    cnn_add_forward(v.dst + lo, ins, v.l->n_inputs, hi - lo, &train_no_act);
    return 0;
}

static void add_train_backward(const struct train_bwd_job *job, int part, int parts)
{
    struct cnn_trainer *t = job->t;
    const struct train_view v = train_view(t, job->i, job->n);
    size_t lo, hi;
    cnn_part_range(v.count, part, parts, &lo, &hi);
    for (int k = 0; k < v.l->n_inputs; k++) {
        float *d = train_din(t, v.l, k);
        train_zero_fresh(job, k, d, lo, hi - lo);
        if (d)
            cnn_grad_accumulate(d + lo, job->dout + lo, hi - lo);
    }
}

const struct cnn_layer_kind_ops cnn_kind_add = {
    .name = "add",
    .multi_input = 1,
    .infer = add_infer,
    .plan = add_plan,
    .in_place = 1,
    .run = add_run,
    .run_part = add_run_part,
    .train_forward = add_train_forward,
    .train_backward = add_train_backward,
};

static int concat_infer(const struct cnn_model *m, struct cnn_layer *l, struct cnn_err *err)
{
    const struct cnn_layer *in = cnn_layer_input(m, l, 0);
    long total = 0;
    for (int i = 0; i < l->n_inputs; i++) {
        const struct cnn_layer *o = cnn_layer_input(m, l, i);
        if (o->h != in->h || o->w != in->w)
            return cnn_err_set(err, CNN_EINVAL,
                               "layer %s: concat input %s is %dx%d, expected %dx%d", l->name,
                               o->name, o->h, o->w, in->h, in->w);
        total += o->c;
    }
    if (total > CNN_MAX_DIM)
        return cnn_err_set(err, CNN_ELIMIT, "layer %s: concat has %ld channels", l->name, total);
    l->c = (int)total, l->h = in->h, l->w = in->w;
    return 0;
}

static void concat_run(const struct cnn_model *m, const struct cnn_op *op,
                       const struct cnn_op_run *r)
{
    const struct cnn_layer *il = &m->layers[op->inputs[0]];
    const size_t n_hw = (size_t)il->h * il->w * (size_t)r->n;
    size_t off = 0;
    for (int j = 0; j < op->n_inputs; j++) {
        size_t len = (size_t)m->layers[op->inputs[j]].c * n_hw;
        memcpy(r->out + off, r->in[j], len * sizeof(float));
        off += len;
    }
}

/* Element ranges of each input's block. */
static int concat_train_forward(const struct train_fwd_job *job, int part, int parts,
                                struct cnn_err *err)
{
    (void)err;
    struct cnn_trainer *t = job->t;
    const struct train_view v = train_view(t, job->i, job->n);
    size_t off = 0, lo, hi;
    for (int k = 0; k < v.l->n_inputs; k++) {
        size_t len = (size_t)cnn_layer_input(t->net, v.l, k)->c * v.n_hw;
        cnn_part_range(len, part, parts, &lo, &hi);
        memcpy(v.dst + off + lo, t->buf.tl[v.l->inputs[k]].out + lo, (hi - lo) * sizeof(float));
        off += len;
    }
    return 0;
}

static void concat_train_backward(const struct train_bwd_job *job, int part, int parts)
{
    struct cnn_trainer *t = job->t;
    const struct train_view v = train_view(t, job->i, job->n);
    size_t off = 0, lo, hi;
    for (int k = 0; k < v.l->n_inputs; k++) {
        size_t len = (size_t)cnn_layer_input(t->net, v.l, k)->c * v.n_hw;
        float *d = train_din(t, v.l, k);
        cnn_part_range(len, part, parts, &lo, &hi);
        train_zero_fresh(job, k, d, lo, hi - lo);
        if (d)
            cnn_grad_accumulate(d + lo, job->dout + off + lo, hi - lo);
        off += len;
    }
}

const struct cnn_layer_kind_ops cnn_kind_concat = {
    .name = "concat",
    .multi_input = 1,
    .infer = concat_infer,
    .run = concat_run,
    .train_forward = concat_train_forward,
    .train_backward = concat_train_backward,
};
