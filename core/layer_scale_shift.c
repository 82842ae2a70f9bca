/* Per-channel (or scalar, or per-element) constant affine, y = x * scale[c] + shift[c] then
 * a fused activation: what ONNX Mul/Add/Sub/Div by a constant of shape (C,1,1), (1), () --
 * or any shape broadcasting to the item, e.g. (W) along each row: channels = C*H*W, one
 * scale and shift per element of an item -- become on import.  The weights are constants:
 * the trainer passes the gradient through to the input and never updates them.  Compile
 * expands a shared scale and shift to every channel and runs the layer as batch norm's
 * scale-shift op (cnn_scale_shift_forward); per element, each (c, n) plane of H*W values is
 * that op with H*W one-value "channels". */
#include "layer.h"
#include "layer_kind.h"
#include "train_internal.h"

#include <stddef.h>

void cnn_scale_shift_backward(float *dinp, const float *dout, const float *scale, int shared, int C,
                              size_t n_hw)
{
    for (int c = 0; c < C; c++) {
        const float s = scale[shared ? 0 : c];
        const float *g = dout + (size_t)c * n_hw;
        float *d = dinp + (size_t)c * n_hw;
        for (size_t i = 0; i < n_hw; i++)
            d[i] += g[i] * s;
    }
}

/* ---- the scale_shift row ------------------------------------------------------------- */

#define SS(f) offsetof(struct cnn_scale_shift, f)
static const struct cnn_layer_field ss_fields[] = {
    {"channels", CNN_FIELD_INT, SS(channels)},
    {"act", CNN_FIELD_ACT, SS(act.kind)},
    {"act_alpha", CNN_FIELD_FLOAT, SS(act.alpha)},
    {"act_beta", CNN_FIELD_FLOAT, SS(act.beta)},
};
static const char *const ss_slots[] = {"scale", "shift"};

/* One scale and shift per element of an item (channels = C*H*W with H*W > 1). */
static int ss_per_element(const struct cnn_layer *l)
{
    return l->h * l->w > 1 && (long long)l->p.ss.channels == (long long)l->c * l->h * l->w;
}

static int ss_infer(const struct cnn_model *m, struct cnn_layer *l, struct cnn_err *err)
{
    const struct cnn_layer *in = cnn_layer_input(m, l, 0);
    const int C = in->c;
    const long long chw = (long long)C * in->h * in->w;
    const struct cnn_scale_shift *p = &l->p.ss;
    if (p->channels != 1 && p->channels != C && p->channels != chw)
        return cnn_err_set(err, CNN_EINVAL,
                           "layer %s: scale_shift channels %d (want 1, %d or %lld)", l->name,
                           p->channels, C, chw);
    int rc = cnn_act_check(&p->act, l->name, err);
    if (rc)
        return rc;
    cnn_layer_same_shape(m, l);
    for (int s = 0; s < 2; s++) /* scale, shift */
        if ((rc = cnn_layer_add_slot(l, 1, &p->channels, err)) != 0)
            return rc;
    return 0;
}

static const struct cnn_act_params *ss_act(const struct cnn_layer *l)
{
    return &l->p.ss.act;
}

/* The identity: scale 1, shift 0. */
static void ss_init(struct cnn_model *m, int i, uint64_t *rng)
{
    (void)rng;
    const struct cnn_layer *l = &m->layers[i];
    float *scale = m->params + l->weight_offset[0], *shift = m->params + l->weight_offset[1];
    for (size_t k = 0; k < l->weight_count[0]; k++) {
        scale[k] = 1.0f;
        shift[k] = 0.0f;
    }
}

static size_t ss_folded_floats(const struct cnn_layer *l)
{
    return 2 * (size_t)l->c + 32;
}

/* Scale and shift for every channel (op->w, op->b; per element: the weights as they are),
 * and the following activation fused. */
static void ss_plan(struct cnn_compile *cs, struct cnn_op *op, const struct cnn_layer *l)
{
    const int shared = l->p.ss.channels == 1;
    const float *scale = cs->m->params + l->weight_offset[0];
    const float *shift = cs->m->params + l->weight_offset[1];
    op->act = l->p.ss.act;
    cnn_compile_fuse_act(cs, op, &op->act);
    if (ss_per_element(l)) {
        op->w = scale;
        op->b = shift;
        return;
    }
    float *s = cnn_compile_take(cs, (size_t)l->c), *t = cnn_compile_take(cs, (size_t)l->c);
    for (int c = 0; c < l->c; c++) {
        s[c] = scale[shared ? 0 : c];
        t[c] = shift[shared ? 0 : c];
    }
    op->w = s;
    op->b = t;
}

/* Per element: each (c, n) plane with its channel's H*W scales and shifts. */
static void ss_planes(float *out, const float *in, const float *scale, const float *shift,
                      int c0, int c1, int N, size_t hw, const struct cnn_act_params *act)
{
    for (int c = c0; c < c1; c++)
        for (int n = 0; n < N; n++) {
            const size_t at = ((size_t)c * N + n) * hw;
            cnn_scale_shift_forward(out + at, in + at, scale + c * hw, shift + c * hw, (int)hw, 1,
                                    act);
        }
}

static void ss_run(const struct cnn_model *m, const struct cnn_op *op, const struct cnn_op_run *r)
{
    const struct cnn_layer *il = &m->layers[op->inputs[0]];
    const size_t hw = (size_t)il->h * (size_t)il->w;
    if (ss_per_element(&m->layers[op->layer]))
        ss_planes(r->out, r->in[0], op->w, op->b, 0, il->c, r->n, hw, &op->act);
    else
        cnn_scale_shift_forward(r->out, r->in[0], op->w, op->b, il->c, hw * (size_t)r->n,
                                &op->act);
}

/* Channels [lo, hi), without the fused activation. */
static int ss_train_forward(const struct train_fwd_job *job, int part, int parts,
                            struct cnn_err *err)
{
    (void)err;
    const struct train_view v = train_view(job->t, job->i, job->n);
    const int shared = v.l->p.ss.channels == 1;
    const float *scale = v.P + v.l->weight_offset[0], *shift = v.P + v.l->weight_offset[1];
    size_t lo, hi;
    cnn_part_range((size_t)v.il->c, part, parts, &lo, &hi);
    if (ss_per_element(v.l)) {
        ss_planes(v.dst, v.in, scale, shift, (int)lo, (int)hi, job->n, v.hw, &train_no_act);
        return 0;
    }
    for (size_t c = lo; c < hi; c++) {
        const size_t k = shared ? 0 : c;
        cnn_scale_shift_forward(v.dst + c * v.n_hw, v.in + c * v.n_hw, scale + k, shift + k, 1,
                                v.n_hw, &train_no_act);
    }
    return 0;
}

static void ss_train_backward(const struct train_bwd_job *job, int part, int parts)
{
    const struct train_view v = train_view(job->t, job->i, job->n);
    const int shared = v.l->p.ss.channels == 1;
    const float *scale = v.P + v.l->weight_offset[0];
    size_t lo, hi;
    cnn_part_range((size_t)v.il->c, part, parts, &lo, &hi);
    train_zero_fresh(job, 0, v.dinp, lo * v.n_hw, (hi - lo) * v.n_hw);
    if (v.dinp && ss_per_element(v.l)) {
        for (size_t c = lo; c < hi; c++)
            for (int n = 0; n < job->n; n++) {
                const size_t at = (c * (size_t)job->n + (size_t)n) * v.hw;
                cnn_scale_shift_backward(v.dinp + at, job->dout + at, scale + c * v.hw, 0,
                                         (int)v.hw, 1);
            }
    } else if (v.dinp) {
        cnn_scale_shift_backward(v.dinp + lo * v.n_hw, job->dout + lo * v.n_hw,
                                 shared ? scale : scale + lo, shared, (int)(hi - lo), v.n_hw);
    }
}

const struct cnn_layer_kind_ops cnn_kind_scale_shift = {
    .name = "scale_shift",
    .fields = ss_fields,
    .n_fields = (int)(sizeof ss_fields / sizeof ss_fields[0]),
    .slot_names = ss_slots,
    .learned_slots = 0, /* constants (ONNX initializers), see the header comment */
    .infer = ss_infer,
    .fused_act = ss_act,
    .init = ss_init,
    .folded_floats = ss_folded_floats,
    .plan = ss_plan,
    .in_place = 1,
    .run = ss_run,
    .train_forward = ss_train_forward,
    .train_backward = ss_train_backward,
};
