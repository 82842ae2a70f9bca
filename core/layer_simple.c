/* The rows of the layer-kind table (layer_kind.h) for the small kinds without weights:
 * input (layer 0 only, never run), dropout (an alias of its input at inference, a mask
 * while training), flatten (to the dense layout; an alias when already (C,1,1)), softmax
 * over the channels at each position (or a plane, or a row) and reshape (a plane read as
 * another h x w: an alias).  Their kernels are in layer_act.c, layer_log_softmax.c and
 * grad_*.c; none of them splits over a worker team except the trainer's copies (dropout at
 * inference, reshape). */
#include "grad.h"
#include "layer.h"
#include "layer_kind.h"
#include "tensor.h"
#include "train_internal.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* ---- input: built by cnn_model_create, never added, planned or run ------------------- */

static int input_infer(const struct cnn_model *m, struct cnn_layer *l, struct cnn_err *err)
{
    (void)m;
    return cnn_err_set(err, CNN_EINVAL, "layer %s: only layer 0 is an input", l->name);
}

static void no_run(const struct cnn_model *m, const struct cnn_op *op, const struct cnn_op_run *r)
{
    (void)m, (void)op, (void)r;
}

static int no_train_forward(const struct train_fwd_job *job, int part, int parts,
                            struct cnn_err *err)
{
    (void)job, (void)part, (void)parts, (void)err;
    return 0;
}

static void no_train_backward(const struct train_bwd_job *job, int part, int parts)
{
    (void)job, (void)part, (void)parts;
}

const struct cnn_layer_kind_ops cnn_kind_input = {
    .name = "input",
    .infer = input_infer,
    .run = no_run,
    .train_forward = no_train_forward,
    .train_backward = no_train_backward,
};

/* ---- dropout ------------------------------------------------------------------------- */

static const struct cnn_layer_field dropout_fields[] = {{"rate", CNN_FIELD_FLOAT, 0}};

static int dropout_infer(const struct cnn_model *m, struct cnn_layer *l, struct cnn_err *err)
{
    if (!(l->p.dropout_rate >= 0.0f && l->p.dropout_rate < 1.0f))
        return cnn_err_set(err, CNN_EINVAL, "layer %s: dropout rate must be in [0, 1)", l->name);
    return cnn_layer_same_shape(m, l);
}

static int always_alias(const struct cnn_model *m, const struct cnn_layer *l)
{
    (void)m, (void)l;
    return 1;
}

static int dropout_train_alloc(struct cnn_trainer *t, int i, struct train_sizes *sz)
{
    (void)sz;
    size_t count = (size_t)t->buf.tl[i].n_out * (size_t)t->cfg.max_batch;
    return (t->buf.tl[i].mask = calloc(count ? count : 1, 1)) ? 0 : -1;
}

static int dropout_train_forward(const struct train_fwd_job *job, int part, int parts,
                                 struct cnn_err *err)
{
    (void)err;
    struct cnn_trainer *t = job->t;
    const struct train_view v = train_view(t, job->i, job->n);
    size_t lo, hi;
    if (part == 0)
        v.tl->mask_off = !job->training; /* read by the backward of an explanation */
    if (job->training) { /* one generator: the masks must not depend on the split */
        if (part == 0)
            cnn_dropout_train_forward(v.dst, v.tl->mask, v.in, v.l->p.dropout_rate, v.count,
                                      &t->rng);
    } else {
        cnn_part_range(v.count, part, parts, &lo, &hi);
        memcpy(v.dst + lo, v.in + lo, (hi - lo) * sizeof(float));
    }
    return 0;
}

static void dropout_train_backward(const struct train_bwd_job *job, int part, int parts)
{
    const struct train_view v = train_view(job->t, job->i, job->n);
    size_t lo, hi;
    cnn_part_range(v.count, part, parts, &lo, &hi);
    train_zero_fresh(job, 0, v.dinp, lo, hi - lo);
    if (v.dinp && v.tl->mask_off) {
        for (size_t i = lo; i < hi; i++)
            v.dinp[i] += job->dout[i];
    } else if (v.dinp)
        cnn_dropout_backward(v.dinp + lo, job->dout + lo, v.tl->mask + lo, v.l->p.dropout_rate,
                             hi - lo);
}

const struct cnn_layer_kind_ops cnn_kind_dropout = {
    .name = "dropout",
    .fields = dropout_fields,
    .n_fields = 1,
    .infer = dropout_infer,
    .is_alias = always_alias,
    .run = no_run, /* an alias: never in the plan */
    .train_alloc = dropout_train_alloc,
    .train_forward = dropout_train_forward,
    .train_backward = dropout_train_backward,
};

/* ---- flatten ------------------------------------------------------------------------- */

static int flatten_infer(const struct cnn_model *m, struct cnn_layer *l, struct cnn_err *err)
{
    const struct cnn_layer *in = cnn_layer_input(m, l, 0);
    size_t n;
    int dims[3] = {in->c, in->h, in->w};
    if (cnn_dims_count(dims, 3, &n) || n > CNN_MAX_DIM)
        return cnn_err_set(err, CNN_ELIMIT, "layer %s: flatten size too large", l->name);
    l->c = (int)n, l->h = l->w = 1;
    return 0;
}

static int flatten_is_alias(const struct cnn_model *m, const struct cnn_layer *l)
{
    const struct cnn_layer *in = cnn_layer_input(m, l, 0);
    return in->h == 1 && in->w == 1;
}

static void flatten_run(const struct cnn_model *m, const struct cnn_op *op,
                        const struct cnn_op_run *r)
{
    const struct cnn_layer *il = &m->layers[op->inputs[0]];
    cnn_flatten_forward(r->out, r->in[0], il->c, r->n, il->h * il->w);
}

static int flatten_train_forward(const struct train_fwd_job *job, int part, int parts,
                                 struct cnn_err *err)
{
    (void)parts, (void)err;
    const struct train_view v = train_view(job->t, job->i, job->n);
    if (part == 0)
        cnn_flatten_forward(v.dst, v.in, v.il->c, job->n, (int)v.hw);
    return 0;
}

static void flatten_train_backward(const struct train_bwd_job *job, int part, int parts)
{
    (void)parts;
    const struct train_view v = train_view(job->t, job->i, job->n);
    if (v.dinp && part == 0) {
        train_zero_fresh(job, 0, v.dinp, 0, v.count);
        cnn_flatten_backward(v.dinp, job->dout, v.il->c, job->n, (int)v.hw);
    }
}

const struct cnn_layer_kind_ops cnn_kind_flatten = {
    .name = "flatten",
    .infer = flatten_infer,
    .is_alias = flatten_is_alias,
    .run = flatten_run,
    .train_forward = flatten_train_forward,
    .train_backward = flatten_train_backward,
};

/* ---- softmax ------------------------------------------------------------------------- */

/* Over p.sm.span (the channels at each position, each plane or each row): the fields, the
 * shape check and the kernels are shared with log_softmax (layer_log_softmax.c). */
static void softmax_run(const struct cnn_model *m, const struct cnn_op *op,
                        const struct cnn_op_run *r)
{
    const struct cnn_layer *il = &m->layers[op->inputs[0]];
    cnn_softmax_span_forward(r->out, r->in[0], &m->layers[op->layer].p.sm, il->c, r->n, il->h,
                             il->w, 0);
}

static int softmax_train_forward(const struct train_fwd_job *job, int part, int parts,
                                 struct cnn_err *err)
{
    (void)parts, (void)err;
    const struct train_view v = train_view(job->t, job->i, job->n);
    if (part == 0)
        cnn_softmax_span_forward(v.dst, v.in, &v.l->p.sm, v.il->c, job->n, v.il->h, v.il->w, 0);
    return 0;
}

static void softmax_train_backward(const struct train_bwd_job *job, int part, int parts)
{
    (void)parts;
    const struct train_view v = train_view(job->t, job->i, job->n);
    if (v.dinp && part == 0) {
        train_zero_fresh(job, 0, v.dinp, 0, v.count);
        cnn_softmax_span_backward(v.dinp, job->dout, v.tl->out, &v.l->p.sm, v.il->c, job->n,
                                  v.il->h, v.il->w, 0);
    }
}

const struct cnn_layer_kind_ops cnn_kind_softmax = {
    .name = "softmax",
    .fields = cnn_softmax_fields,
    .n_fields = 1,
    .infer = cnn_softmax_infer,
    .run = softmax_run,
    .train_forward = softmax_train_forward,
    .train_backward = softmax_train_backward,
};

/* ---- reshape: each channel's H x W plane read as h x w (h * w = H * W) ------------------
 * In the (C, N, H, W) layout that is the same memory, so at inference it is an alias of its
 * input; the trainer copies forward and passes the gradient back unchanged.  What ONNX
 * Reshape/Unsqueeze/Squeeze between (N, C, L), (N, C, L, 1) and (N, C, H, W) of the same
 * planes become. */

static const struct cnn_layer_field reshape_fields[] = {
    {"h", CNN_FIELD_INT, offsetof(struct cnn_reshape, h)},
    {"w", CNN_FIELD_INT, offsetof(struct cnn_reshape, w)},
};

static int reshape_infer(const struct cnn_model *m, struct cnn_layer *l, struct cnn_err *err)
{
    const struct cnn_layer *in = cnn_layer_input(m, l, 0);
    const struct cnn_reshape *p = &l->p.reshape;
    if (p->h < 1 || p->w < 1 || (long long)p->h * p->w != (long long)in->h * in->w)
        return cnn_err_set(err, CNN_EINVAL, "layer %s: reshape %dx%d of a %dx%d plane", l->name,
                           p->h, p->w, in->h, in->w);
    l->c = in->c, l->h = p->h, l->w = p->w;
    return 0;
}

static void reshape_run(const struct cnn_model *m, const struct cnn_op *op,
                        const struct cnn_op_run *r)
{
    (void)m, (void)op, (void)r; /* an alias: never in the plan */
}

static int reshape_train_forward(const struct train_fwd_job *job, int part, int parts,
                                 struct cnn_err *err)
{
    (void)err;
    const struct train_view v = train_view(job->t, job->i, job->n);
    size_t lo, hi;
    cnn_part_range(v.count, part, parts, &lo, &hi);
    memcpy(v.dst + lo, v.in + lo, (hi - lo) * sizeof(float));
    return 0;
}

static void reshape_train_backward(const struct train_bwd_job *job, int part, int parts)
{
    const struct train_view v = train_view(job->t, job->i, job->n);
    size_t lo, hi;
    cnn_part_range(v.count, part, parts, &lo, &hi);
    train_zero_fresh(job, 0, v.dinp, lo, hi - lo);
    if (v.dinp)
        cnn_grad_accumulate(v.dinp + lo, job->dout + lo, hi - lo);
}

const struct cnn_layer_kind_ops cnn_kind_reshape = {
    .name = "reshape",
    .fields = reshape_fields,
    .n_fields = 2,
    .infer = reshape_infer,
    .is_alias = always_alias,
    .run = reshape_run,
    .train_forward = reshape_train_forward,
    .train_backward = reshape_train_backward,
};
