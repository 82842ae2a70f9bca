/* The add and concat rows of the layer-kind table (layer_kind.h): the two kinds with more
 * than one input.  Add sums inputs of equal shape (residual connections; a following
 * activation fuses into it at compile, and a two-input add that alone reads a conv is
 * absorbed by that conv: cnn_compile_fuse_residual), concat stacks inputs over channels
 * (in (C, N, H, W) each input is one contiguous block, so a copy per input), over H (a
 * copy per plane) or over W (a copy per row). */
#include "grad.h"
#include "layer.h"
#include "layer_kind.h"
#include "train_internal.h"

#include <stddef.h>
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

/* ---- concat: over C (each input one contiguous block of (C, N, H, W)), H or W (per
 * plane or per row: `outer` runs of each input's chunk, one after the other) ----------- */

static const struct cnn_layer_field concat_fields[] = {
    {"axis", CNN_FIELD_INT, offsetof(struct cnn_concat, axis)}};

static int concat_infer(const struct cnn_model *m, struct cnn_layer *l, struct cnn_err *err)
{
    const struct cnn_layer *in = cnn_layer_input(m, l, 0);
    const int axis = l->p.cat.axis;
    if (axis < 0 || axis >= CNN_CONCAT_AXIS_COUNT)
        return cnn_err_set(err, CNN_EINVAL, "layer %s: concat axis %d unknown", l->name, axis);
    long total = 0;
    for (int i = 0; i < l->n_inputs; i++) {
        const struct cnn_layer *o = cnn_layer_input(m, l, i);
        const int same[3] = {o->c == in->c, o->h == in->h, o->w == in->w};
        if ((axis != CNN_CONCAT_CHANNELS && !same[0]) || (axis != CNN_CONCAT_H && !same[1]) ||
            (axis != CNN_CONCAT_W && !same[2]))
            return cnn_err_set(err, CNN_EINVAL,
                               "layer %s: concat input %s is %dx%dx%d, expected %dx%dx%d but for "
                               "the %s",
                               l->name, o->name, o->c, o->h, o->w, in->c, in->h, in->w,
                               axis == CNN_CONCAT_CHANNELS ? "channels"
                               : axis == CNN_CONCAT_H      ? "height"
                                                           : "width");
        total += axis == CNN_CONCAT_CHANNELS ? o->c : axis == CNN_CONCAT_H ? o->h : o->w;
    }
    if (total > CNN_MAX_DIM)
        return cnn_err_set(err, CNN_ELIMIT, "layer %s: concat of %ld along its axis", l->name,
                           total);
    l->c = in->c, l->h = in->h, l->w = in->w;
    *(axis == CNN_CONCAT_CHANNELS ? &l->c : axis == CNN_CONCAT_H ? &l->h : &l->w) = (int)total;
    return 0;
}

/* Floats of one run of input k (its whole block for channels) and the runs per input. */
static size_t concat_chunk(const struct cnn_model *m, const struct cnn_layer *l, int k, int n,
                           size_t *outer)
{
    const struct cnn_layer *o = cnn_layer_input(m, l, k);
    const size_t planes = (size_t)o->c * (size_t)n;
    if (l->p.cat.axis == CNN_CONCAT_H) {
        *outer = planes;
        return (size_t)o->h * o->w;
    }
    if (l->p.cat.axis == CNN_CONCAT_W) {
        *outer = planes * (size_t)o->h;
        return (size_t)o->w;
    }
    *outer = 1; /* channels */
    return planes * (size_t)o->h * o->w;
}

/* Runs [lo, hi) of every input into out (back 0), or out's runs added back into each
 * input's gradient d[k] (back 1; NULL ones skipped). */
static void concat_runs(const struct cnn_model *m, const struct cnn_layer *l, int n, float *out,
                        float *const *d, const float *const *in, size_t lo, size_t hi, int back)
{
    size_t outer, row = 0, off = 0;
    for (int k = 0; k < l->n_inputs; k++)
        row += concat_chunk(m, l, k, n, &outer);
    for (int k = 0; k < l->n_inputs; k++) {
        const size_t len = concat_chunk(m, l, k, n, &outer);
        for (size_t r = lo; r < hi; r++) {
            float *o = out + r * row + off;
            if (!back)
                memcpy(o, in[k] + r * len, len * sizeof(float));
            else if (d[k])
                cnn_grad_accumulate(d[k] + r * len, o, len);
        }
        off += len;
    }
}

static void concat_run(const struct cnn_model *m, const struct cnn_op *op,
                       const struct cnn_op_run *r)
{
    const struct cnn_layer *l = &m->layers[op->layer];
    size_t outer;
    concat_chunk(m, l, 0, r->n, &outer);
    concat_runs(m, l, r->n, r->out, NULL, r->in, 0, outer, 0);
}

/* Channels: element ranges of each input's block; H or W: ranges of the runs. */
static int concat_train_forward(const struct train_fwd_job *job, int part, int parts,
                                struct cnn_err *err)
{
    (void)err;
    struct cnn_trainer *t = job->t;
    const struct train_view v = train_view(t, job->i, job->n);
    const float *ins[CNN_MAX_INPUTS];
    size_t off = 0, lo, hi, outer;
    for (int k = 0; k < v.l->n_inputs; k++)
        ins[k] = t->buf.tl[v.l->inputs[k]].out;
    if (v.l->p.cat.axis != CNN_CONCAT_CHANNELS) {
        concat_chunk(t->net, v.l, 0, job->n, &outer);
        cnn_part_range(outer, part, parts, &lo, &hi);
        concat_runs(t->net, v.l, job->n, v.dst, NULL, ins, lo, hi, 0);
        return 0;
    }
    for (int k = 0; k < v.l->n_inputs; k++) {
        size_t len = (size_t)cnn_layer_input(t->net, v.l, k)->c * v.n_hw;
        cnn_part_range(len, part, parts, &lo, &hi);
        memcpy(v.dst + off + lo, ins[k] + lo, (hi - lo) * sizeof(float));
        off += len;
    }
    return 0;
}

static void concat_train_backward(const struct train_bwd_job *job, int part, int parts)
{
    struct cnn_trainer *t = job->t;
    const struct train_view v = train_view(t, job->i, job->n);
    float *ds[CNN_MAX_INPUTS];
    size_t off = 0, lo, hi, outer;
    for (int k = 0; k < v.l->n_inputs; k++) {
        const struct cnn_layer *o = cnn_layer_input(t->net, v.l, k);
        const size_t count = (size_t)o->c * o->h * o->w * (size_t)job->n;
        ds[k] = train_din(t, v.l, k);
        if (v.l->p.cat.axis != CNN_CONCAT_CHANNELS) { /* zero the whole input: part 0 */
            if (part == 0)
                train_zero_fresh(job, k, ds[k], 0, count);
            continue;
        }
        cnn_part_range(count, part, parts, &lo, &hi);
        train_zero_fresh(job, k, ds[k], lo, hi - lo);
        if (ds[k])
            cnn_grad_accumulate(ds[k] + lo, job->dout + off + lo, hi - lo);
        off += count;
    }
    if (v.l->p.cat.axis != CNN_CONCAT_CHANNELS && part == 0) {
        concat_chunk(t->net, v.l, 0, job->n, &outer);
        concat_runs(t->net, v.l, job->n, (float *)job->dout, ds, NULL, 0, outer, 1);
    }
}

const struct cnn_layer_kind_ops cnn_kind_concat = {
    .name = "concat",
    .multi_input = 1,
    .fields = concat_fields,
    .n_fields = 1,
    .infer = concat_infer,
    .run = concat_run,
    .train_forward = concat_train_forward,
    .train_backward = concat_train_backward,
};
