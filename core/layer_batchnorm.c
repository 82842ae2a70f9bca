/* The batchnorm row of the layer-kind table (layer_kind.h): four weight slots (gamma, beta,
 * running mean and variance; SGD learns the first two), folded into the preceding conv at
 * compile (layer_conv2d.c) or run as a per-channel scale and shift; the trainer uses batch
 * statistics (grad_norm.c) unless the layer is frozen or evaluating. */
#include "grad.h"
#include "layer.h"
#include "layer_kind.h"
#include "train_internal.h"

#include <math.h>
#include <stdlib.h>

#define BN(f) offsetof(struct cnn_batchnorm, f)
static const struct cnn_layer_field bn_fields[] = {
    {"eps", CNN_FIELD_FLOAT, BN(eps)},
    {"act", CNN_FIELD_ACT, BN(act.kind)},
    {"act_alpha", CNN_FIELD_FLOAT, BN(act.alpha)},
    {"act_beta", CNN_FIELD_FLOAT, BN(act.beta)},
};
static const char *const bn_slots[] = {"gamma", "beta", "mean", "var"};

static int bn_infer(const struct cnn_model *m, struct cnn_layer *l, struct cnn_err *err)
{
    if (!(l->p.bn.eps > 0.0f) || !isfinite(l->p.bn.eps))
        return cnn_err_set(err, CNN_EINVAL, "layer %s: batchnorm eps must be > 0", l->name);
    int rc = cnn_act_check(&l->p.bn.act, l->name, err);
    if (rc)
        return rc;
    cnn_layer_same_shape(m, l);
    for (int s = 0; s < 4; s++) /* gamma, beta, running mean, running var */
        if ((rc = cnn_layer_add_slot(l, 1, &l->c, err)) != 0)
            return rc;
    return 0;
}

static const struct cnn_act_params *bn_act(const struct cnn_layer *l)
{
    return &l->p.bn.act;
}

static void bn_init(struct cnn_model *m, int i, uint64_t *rng)
{
    (void)rng;
    const struct cnn_layer *l = &m->layers[i];
    float *gamma = m->params + l->weight_offset[0];
    float *var = m->params + l->weight_offset[3];
    for (int c = 0; c < l->c; c++) {
        gamma[c] = 1.0f;
        var[c] = 1.0f;
    }
    memset(m->params + l->weight_offset[1], 0, (size_t)l->c * sizeof(float));
    memset(m->params + l->weight_offset[2], 0, (size_t)l->c * sizeof(float));
}

static int bn_check_weights(const struct cnn_model *m, const struct cnn_layer *l,
                            struct cnn_err *err)
{
    const float *var = m->params + l->weight_offset[3];
    for (int c = 0; c < l->c; c++) {
        if (var[c] < 0.0f)
            return cnn_err_set(err, CNN_EFORMAT,
                               "layer %s: batchnorm variance of channel %d is negative", l->name,
                               c);
    }
    return 0;
}

void cnn_batchnorm_scale_shift(const struct cnn_model *m, const struct cnn_layer *bn, float *scale,
                               float *shift)
{
    const float *gamma = m->params + bn->weight_offset[0];
    const float *beta = m->params + bn->weight_offset[1];
    const float *mean = m->params + bn->weight_offset[2];
    const float *var = m->params + bn->weight_offset[3];
    for (int c = 0; c < bn->c; c++) {
        float s = gamma[c] / sqrtf(var[c] + bn->p.bn.eps);
        scale[c] = s;
        shift[c] = beta[c] - mean[c] * s;
    }
}

static size_t bn_folded_floats(const struct cnn_layer *l)
{
    return 2 * (size_t)l->c + 32;
}

/* A batch norm no conv absorbed: a standalone scale and shift (op->w, op->b). */
static void bn_plan(struct cnn_compile *cs, struct cnn_op *op, const struct cnn_layer *l)
{
    float *scale = cnn_compile_take(cs, (size_t)l->c);
    float *shift = cnn_compile_take(cs, (size_t)l->c);
    cnn_batchnorm_scale_shift(cs->m, l, scale, shift);
    op->w = scale;
    op->b = shift;
    op->act = l->p.bn.act;
    cnn_compile_fuse_act(cs, op, &op->act);
}

static void bn_run(const struct cnn_model *m, const struct cnn_op *op, const struct cnn_op_run *r)
{
    const struct cnn_layer *il = &m->layers[op->inputs[0]];
    cnn_scale_shift_forward(r->out, r->in[0], op->w, op->b, il->c,
                            (size_t)il->h * (size_t)il->w * (size_t)r->n, &op->act);
}

static int bn_train_alloc(struct cnn_trainer *t, int i, struct train_sizes *sz)
{
    const struct cnn_layer *l = &t->net->layers[i];
    struct train_layer *tl = &t->buf.tl[i];
    tl->save_mean = calloc((size_t)l->c, sizeof(float));
    tl->save_inv_std = calloc((size_t)l->c, sizeof(float));
    if (!tl->save_mean || !tl->save_inv_std)
        return -1;
    if (l->c > sz->max_c)
        sz->max_c = l->c;
    return 0;
}

/* Channels [lo, hi): batch statistics when training a trainable layer, else the running
 * ones; without the fused activation. */
static int bn_train_forward(const struct train_fwd_job *job, int part, int parts,
                            struct cnn_err *err)
{
    struct cnn_trainer *t = job->t;
    const struct train_view v = train_view(t, job->i, job->n);
    const struct cnn_layer *l = v.l;
    const float *gamma = v.P + l->weight_offset[0], *beta = v.P + l->weight_offset[1];
    float *mean = v.P + l->weight_offset[2], *var = v.P + l->weight_offset[3];
    const size_t n_hw = v.n_hw;
    size_t lo, hi;
    cnn_part_range((size_t)v.il->c, part, parts, &lo, &hi);
    if (hi == lo)
        return 0;
    if (job->training && v.tl->trainable) {
        const int upd = job->update_stats;
        return cnn_batchnorm_train_forward(
            v.dst + lo * n_hw, v.tl->save_mean + lo, v.tl->save_inv_std + lo,
            upd ? mean + lo : NULL, upd ? var + lo : NULL, v.in + lo * n_hw, gamma + lo,
            beta + lo, l->p.bn.eps, t->cfg.bn_momentum, (int)(hi - lo), n_hw, err);
    }
    for (size_t c = lo; c < hi; c++) {
        float sc = gamma[c] / sqrtf(var[c] + l->p.bn.eps);
        t->buf.bn_scale[c] = sc;
        t->buf.bn_shift[c] = beta[c] - mean[c] * sc;
    }
    cnn_scale_shift_forward(v.dst + lo * n_hw, v.in + lo * n_hw, t->buf.bn_scale + lo,
                            t->buf.bn_shift + lo, (int)(hi - lo), n_hw, &train_no_act);
    return 0;
}

static void bn_train_backward(const struct train_bwd_job *job, int part, int parts)
{
    struct cnn_trainer *t = job->t;
    const struct train_view v = train_view(t, job->i, job->n);
    const struct cnn_layer *l = v.l;
    const float *gamma = v.P + l->weight_offset[0];
    const size_t n_hw = v.n_hw;
    size_t lo, hi;
    cnn_part_range((size_t)v.il->c, part, parts, &lo, &hi);
    const int c = (int)(hi - lo);
    const int trainable = v.tl->trainable;
    float *dgamma = trainable ? t->buf.grad + l->weight_offset[0] + lo : NULL;
    float *dbeta = trainable ? t->buf.grad + l->weight_offset[1] + lo : NULL;
    float *d = v.dinp ? v.dinp + lo * n_hw : NULL;
    if (c == 0)
        return;
    if (trainable && job->fresh[0] && d) { /* written outright: no zeroing pass */
        cnn_batchnorm_train_backward_set(d, dgamma, dbeta, job->dout + lo * n_hw,
                                         v.in + lo * n_hw, gamma + lo, v.tl->save_mean + lo,
                                         v.tl->save_inv_std + lo, c, n_hw);
        return;
    }
    train_zero_fresh(job, 0, v.dinp, lo * n_hw, (hi - lo) * n_hw);
    if (trainable)
        cnn_batchnorm_train_backward(d, dgamma, dbeta, job->dout + lo * n_hw, v.in + lo * n_hw,
                                     gamma + lo, v.tl->save_mean + lo, v.tl->save_inv_std + lo, c,
                                     n_hw);
    else if (d) /* frozen: ran with its running statistics */
        cnn_batchnorm_eval_backward(d, NULL, NULL, job->dout + lo * n_hw, v.in + lo * n_hw,
                                    gamma + lo, v.P + l->weight_offset[2] + lo,
                                    v.P + l->weight_offset[3] + lo, l->p.bn.eps, c, n_hw);
}

const struct cnn_layer_kind_ops cnn_kind_batchnorm = {
    .name = "batchnorm",
    .fields = bn_fields,
    .n_fields = (int)(sizeof bn_fields / sizeof bn_fields[0]),
    .slot_names = bn_slots,
    .learned_slots = 2, /* gamma, beta; the running statistics are not learned */
    .decay_slots = 0,
    .infer = bn_infer,
    .fused_act = bn_act,
    .init = bn_init,
    .check_weights = bn_check_weights,
    .folded_floats = bn_folded_floats,
    .plan = bn_plan,
    .in_place = 1,
    .run = bn_run,
    .train_alloc = bn_train_alloc,
    .train_forward = bn_train_forward,
    .train_backward = bn_train_backward,
};
