/* Elementwise and reshaping kernels: activations, per-channel scale+shift (folded batch
 * norm), residual add, softmax over classes, flatten to the dense layout, global average
 * pooling.  All tensors are (C, N, ...) as described in layer.h.  Then the act row of the
 * layer-kind table (layer_kind.h). */
#include "grad.h"
#include "grad_simd.h"
#include "layer.h"
#include "layer_kind.h"
#include "train_internal.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

/* One activation on four lanes: the scalar act_one() below lane by lane, without branches
 * (-O2 turns the scalar selects into branches, which mispredict on real activations: about
 * half of a ReLU's inputs are negative, in no order).  NaN goes where act_one() sends it. */
static grad_v4f act_four(grad_v4f v, const struct cnn_act_params *act)
{
    const grad_v4f zero = grad_splat4(0.0f), one = grad_splat4(1.0f);
    const grad_v4f a = grad_splat4(act->alpha), b = grad_splat4(act->beta);
    grad_v4f t;
    switch (act->kind) {
    case CNN_ACT_RELU:
        return (grad_v4f)((grad_v4i)v & (v > zero)); /* lanes <= 0 and NaN become +0 */
    case CNN_ACT_LEAKY_RELU:
        return grad_select4(v > zero, v, a * v);
    case CNN_ACT_CLIP:
        return grad_select4(v < a, a, grad_select4(v > b, b, v));
    case CNN_ACT_HARD_SIGMOID:
        t = a * v + b;
        return grad_select4(t < zero, zero, grad_select4(t > one, one, t));
    case CNN_ACT_HARD_SWISH:
        t = v * grad_splat4(1.0f / 6.0f) + grad_splat4(0.5f);
        return v * grad_select4(t < zero, zero, grad_select4(t > one, one, t));
    case CNN_ACT_NONE:
    case CNN_ACT_SIGMOID:
    case CNN_ACT_TANH:
    case CNN_ACT_COUNT:
        break;
    }
    return v; /* not reached: cnn_act_apply() runs these kinds lane by lane */
}

static float act_one(float x, const struct cnn_act_params *act)
{
    const float a = act->alpha, b = act->beta;
    float t;
    switch (act->kind) {
    case CNN_ACT_NONE:
    case CNN_ACT_COUNT:
        return x;
    case CNN_ACT_RELU:
        return x > 0.0f ? x : 0.0f;
    case CNN_ACT_LEAKY_RELU:
        return x > 0.0f ? x : a * x;
    case CNN_ACT_CLIP:
        return x < a ? a : (x > b ? b : x);
    case CNN_ACT_SIGMOID:
        return 1.0f / (1.0f + expf(-x));
    case CNN_ACT_TANH:
        return tanhf(x);
    case CNN_ACT_HARD_SIGMOID: /* NaN stays NaN: the comparisons are false */
        t = a * x + b;
        return t < 0.0f ? 0.0f : (t > 1.0f ? 1.0f : t);
    case CNN_ACT_HARD_SWISH:
        t = x * (1.0f / 6.0f) + 0.5f;
        return x * (t < 0.0f ? 0.0f : (t > 1.0f ? 1.0f : t));
    }
    return x;
}

/* The piecewise-linear kinds, which act_four() runs four lanes at a time. */
static int act_is_linear_pieces(enum cnn_act k)
{
    return k == CNN_ACT_RELU || k == CNN_ACT_LEAKY_RELU || k == CNN_ACT_CLIP ||
           k == CNN_ACT_HARD_SIGMOID || k == CNN_ACT_HARD_SWISH;
}

void cnn_act_apply(float *x, size_t n, const struct cnn_act_params *act)
{
    if (act->kind == CNN_ACT_NONE)
        return;
    size_t i = 0;
    if (act_is_linear_pieces(act->kind)) {
        for (; i + 4 <= n; i += 4)
            grad_store4(x + i, act_four(grad_load4(x + i), act));
    }
    for (; i < n; i++)
        x[i] = act_one(x[i], act);
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

/* d[i] = a[i] + b[i] (d may be a or b: each lane is read before it is written). */
static void add2(float *d, const float *a, const float *b, size_t n)
{
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
        grad_store4(d + i, grad_load4(a + i) + grad_load4(b + i));
    for (; i < n; i++)
        d[i] = a[i] + b[i];
}

/* In blocks that stay in L1, so the sums and the activation are one pass over memory (the
 * residual add of a ResNet block reads and writes MBs: two passes cost twice).  out may be
 * inputs[0]: the session runs add in place. */
#define ADD_BLOCK 1024
void cnn_add_forward(float *out, const float *const *inputs, int n_inputs, size_t count,
                     const struct cnn_act_params *act)
{
    if (n_inputs <= 0)
        return;
    for (size_t i0 = 0; i0 < count; i0 += ADD_BLOCK) {
        const size_t n = count - i0 < ADD_BLOCK ? count - i0 : ADD_BLOCK;
        if (n_inputs == 1) {
            if (out != inputs[0])
                memmove(out + i0, inputs[0] + i0, n * sizeof(float));
        } else {
            add2(out + i0, inputs[0] + i0, inputs[1] + i0, n);
        }
        for (int k = 2; k < n_inputs; k++)
            add2(out + i0, out + i0, inputs[k] + i0, n);
        cnn_act_apply(out + i0, n, act);
    }
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
