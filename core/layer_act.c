/* Elementwise and reshaping kernels: activations, per-channel scale+shift (folded batch
 * norm), residual add, softmax over classes, flatten to the dense layout, global average
 * pooling.  All tensors are (C, N, ...) as described in layer.h.  Then the act row of the
 * layer-kind table (layer_kind.h). */
#include "grad.h"
#include "layer.h"
#include "layer_kind.h"
#include "train_internal.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

void cnn_act_apply(float *x, size_t n, const struct cnn_act_params *act)
{
    const float a = act->alpha, b = act->beta;
    switch (act->kind) {
    case CNN_ACT_NONE:
    case CNN_ACT_COUNT:
        break;
    case CNN_ACT_RELU:
        for (size_t i = 0; i < n; i++)
            x[i] = x[i] > 0.0f ? x[i] : 0.0f;
        break;
    case CNN_ACT_LEAKY_RELU:
        for (size_t i = 0; i < n; i++)
            x[i] = x[i] > 0.0f ? x[i] : a * x[i];
        break;
    case CNN_ACT_CLIP:
        for (size_t i = 0; i < n; i++)
            x[i] = x[i] < a ? a : (x[i] > b ? b : x[i]);
        break;
    case CNN_ACT_SIGMOID:
        for (size_t i = 0; i < n; i++)
            x[i] = 1.0f / (1.0f + expf(-x[i]));
        break;
    case CNN_ACT_TANH:
        for (size_t i = 0; i < n; i++)
            x[i] = tanhf(x[i]);
        break;
    case CNN_ACT_HARD_SIGMOID: /* NaN stays NaN: the comparisons are false */
        for (size_t i = 0; i < n; i++) {
            const float t = a * x[i] + b;
            x[i] = t < 0.0f ? 0.0f : (t > 1.0f ? 1.0f : t);
        }
        break;
    case CNN_ACT_HARD_SWISH:
        for (size_t i = 0; i < n; i++) {
            const float t = x[i] * (1.0f / 6.0f) + 0.5f;
            x[i] *= t < 0.0f ? 0.0f : (t > 1.0f ? 1.0f : t);
        }
        break;
    }
}

void cnn_scale_shift_forward(float *out, const float *inp, const float *scale, const float *shift,
                             int C, size_t n_hw, const struct cnn_act_params *act)
{
    for (int c = 0; c < C; c++) {
        const float s = scale[c], t = shift[c];
        const float *x = inp + (size_t)c * n_hw;
        float *y = out + (size_t)c * n_hw;
        for (size_t i = 0; i < n_hw; i++)
            y[i] = x[i] * s + t;
        cnn_act_apply(y, n_hw, act);
    }
}

void cnn_add_forward(float *out, const float *const *inputs, int n_inputs, size_t count,
                     const struct cnn_act_params *act)
{
    if (n_inputs <= 0)
        return;
    const float *a = inputs[0];
    if (n_inputs == 1) {
        for (size_t i = 0; i < count; i++)
            out[i] = a[i];
    } else {
        const float *b = inputs[1];
        for (size_t i = 0; i < count; i++)
            out[i] = a[i] + b[i];
        for (int k = 2; k < n_inputs; k++) {
            const float *x = inputs[k];
            for (size_t i = 0; i < count; i++)
                out[i] += x[i];
        }
    }
    cnn_act_apply(out, count, act);
}

void cnn_softmax_forward(float *out, const float *inp, int K, int N)
{
    for (int n = 0; n < N; n++) {
        float m = -INFINITY;
        for (int k = 0; k < K; k++)
            m = inp[(size_t)k * N + n] > m ? inp[(size_t)k * N + n] : m;
        float sum = 0.0f;
        for (int k = 0; k < K; k++) {
            float e = expf(inp[(size_t)k * N + n] - m);
            out[(size_t)k * N + n] = e;
            sum += e;
        }
        const float inv = 1.0f / sum;
        for (int k = 0; k < K; k++)
            out[(size_t)k * N + n] *= inv;
    }
}

void cnn_flatten_forward(float *out, const float *inp, int C, int N, int hw)
{
    if (N == 1) { /* (C, 1, H, W) is (C*H*W, 1) already */
        memcpy(out, inp, sizeof(float) * (size_t)C * hw);
        return;
    }
    for (int c = 0; c < C; c++)
        for (int n = 0; n < N; n++) {
            const float *x = inp + ((size_t)c * N + n) * hw;
            float *y = out + (size_t)c * hw * N + n;
            for (int i = 0; i < hw; i++)
                y[(size_t)i * N] = x[i];
        }
}

void cnn_global_avgpool_forward(float *out, const float *inp, size_t planes, size_t hw)
{
    for (size_t p = 0; p < planes; p++) {
        const float *x = inp + p * hw;
        float sum = 0.0f;
        for (size_t i = 0; i < hw; i++)
            sum += x[i];
        out[p] = hw ? sum / (float)hw : 0.0f;
    }
}

/* ---- the act row --------------------------------------------------------------------- */

#define ACT(f) offsetof(struct cnn_act_params, f)
static const struct cnn_layer_field act_fields[] = {
    {"act", CNN_FIELD_ACT, ACT(kind)},
    {"alpha", CNN_FIELD_FLOAT, ACT(alpha)},
    {"beta", CNN_FIELD_FLOAT, ACT(beta)},
};

static int act_infer(const struct cnn_model *m, struct cnn_layer *l, struct cnn_err *err)
{
    int rc = cnn_act_check(&l->p.act, l->name, err);
    return rc ? rc : cnn_layer_same_shape(m, l);
}

static void act_plan(struct cnn_compile *cs, struct cnn_op *op, const struct cnn_layer *l)
{
    (void)cs;
    op->act = l->p.act;
}

static void act_run(const struct cnn_model *m, const struct cnn_op *op, const struct cnn_op_run *r)
{
    const struct cnn_layer *il = &m->layers[op->inputs[0]];
    size_t count = (size_t)il->c * il->h * il->w * (size_t)r->n;
    if (r->out != r->in[0])
        memcpy(r->out, r->in[0], count * sizeof(float));
    cnn_act_apply(r->out, count, &op->act);
}

static void act_run_part(const struct cnn_model *m, const struct cnn_op *op,
                         const struct cnn_op_run *r, int part, int parts)
{
    const struct cnn_layer *il = &m->layers[op->inputs[0]];
    size_t lo, hi;
    cnn_part_range((size_t)il->c * il->h * il->w * (size_t)r->n, part, parts, &lo, &hi);
    if (r->out != r->in[0])
        memcpy(r->out + lo, r->in[0] + lo, (hi - lo) * sizeof(float));
    cnn_act_apply(r->out + lo, hi - lo, &op->act);
}

static int act_train_forward(const struct train_fwd_job *job, int part, int parts,
                             struct cnn_err *err)
{
    (void)err;
    const struct train_view v = train_view(job->t, job->i, job->n);
    size_t lo, hi;
    cnn_part_range(v.count, part, parts, &lo, &hi);
    train_act_copy(v.dst + lo, v.in + lo, hi - lo, &v.l->p.act);
    return 0;
}

static void act_train_backward(const struct train_bwd_job *job, int part, int parts)
{
    const struct train_view v = train_view(job->t, job->i, job->n);
    size_t lo, hi;
    cnn_part_range(v.count, part, parts, &lo, &hi);
    if (v.dinp && job->fresh[0]) /* written outright: no zeroing pass */
        cnn_act_backward_set(v.dinp + lo, job->dout + lo, v.in + lo, v.tl->out + lo, hi - lo,
                             &v.l->p.act);
    else if (v.dinp)
        cnn_act_backward(v.dinp + lo, job->dout + lo, v.in + lo, v.tl->out + lo, hi - lo,
                         &v.l->p.act);
}

const struct cnn_layer_kind_ops cnn_kind_act = {
    .name = "act",
    .fields = act_fields,
    .n_fields = (int)(sizeof act_fields / sizeof act_fields[0]),
    .infer = act_infer,
    .plan = act_plan,
    .in_place = 1,
    .run = act_run,
    .run_part = act_run_part,
    .train_forward = act_train_forward,
    .train_backward = act_train_backward,
};
