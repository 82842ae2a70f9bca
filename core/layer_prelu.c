/* PReLU (ONNX PRelu, torch.nn.PReLU): y = x > 0 ? x : slope * x with a learned slope per
 * channel, one shared by all channels (initialised to 0.25, as PyTorch), or one per element
 * of an item (ONNX slopes that vary along H or W).  Its kernels and the prelu row of the
 * layer-kind table (layer_kind.h). */
#include "layer.h"
#include "layer_kind.h"
#include "train_internal.h"

#include <stddef.h>

void cnn_prelu_forward(float *out, const float *inp, const float *slope, int shared, int C,
                       size_t n_hw)
{
    for (int c = 0; c < C; c++) {
        const float a = slope[shared ? 0 : c];
        const float *x = inp + (size_t)c * n_hw;
        float *y = out + (size_t)c * n_hw;
        for (size_t i = 0; i < n_hw; i++)
            y[i] = x[i] > 0.0f ? x[i] : a * x[i];
    }
}

void cnn_prelu_backward(float *dinp, float *dslope, const float *dout, const float *inp,
                        const float *slope, int shared, int C, size_t n_hw)
{
    for (int c = 0; c < C; c++) {
        const float a = slope[shared ? 0 : c];
        const float *x = inp + (size_t)c * n_hw, *g = dout + (size_t)c * n_hw;
        if (dinp) {
            float *d = dinp + (size_t)c * n_hw;
            for (size_t i = 0; i < n_hw; i++)
                d[i] += x[i] > 0.0f ? g[i] : a * g[i];
        }
        if (dslope) {
            double s = 0.0;
            for (size_t i = 0; i < n_hw; i++)
                s += x[i] > 0.0f ? 0.0 : (double)g[i] * x[i];
            dslope[shared ? 0 : c] += (float)s;
        }
    }
}

/* ---- the prelu row ------------------------------------------------------------------- */

static const struct cnn_layer_field prelu_fields[] = {
    {"channels", CNN_FIELD_INT, offsetof(struct cnn_prelu, channels)},
};
static const char *const prelu_slots[] = {"slope"};

/* One slope per element of an item (C*H*W of them, H*W > 1). */
static int prelu_per_element(const struct cnn_layer *l)
{
    return l->h * l->w > 1 && (long long)l->p.prelu.channels == (long long)l->c * l->h * l->w;
}

static int prelu_infer(const struct cnn_model *m, struct cnn_layer *l, struct cnn_err *err)
{
    const struct cnn_layer *in = cnn_layer_input(m, l, 0);
    const int C = in->c;
    const long long chw = (long long)C * in->h * in->w;
    if (l->p.prelu.channels != 1 && l->p.prelu.channels != C && l->p.prelu.channels != chw)
        return cnn_err_set(err, CNN_EINVAL, "layer %s: prelu channels %d (want 1, %d or %lld)",
                           l->name, l->p.prelu.channels, C, chw);
    cnn_layer_same_shape(m, l);
    return cnn_layer_add_slot(l, 1, &l->p.prelu.channels, err);
}

static void prelu_init(struct cnn_model *m, int i, uint64_t *rng)
{
    (void)rng;
    const struct cnn_layer *l = &m->layers[i];
    float *slope = m->params + l->weight_offset[0];
    for (size_t k = 0; k < l->weight_count[0]; k++)
        slope[k] = 0.25f;
}

static void prelu_plan(struct cnn_compile *cs, struct cnn_op *op, const struct cnn_layer *l)
{
    op->w = cs->m->params + l->weight_offset[0];
}

/* Per element: channels [c0, c1) of (C, N, hw), each plane an hw-"channel" call of n_hw 1. */
static void prelu_planes(float *out, const float *in, const float *slope, int c0, int c1, int N,
                         size_t hw)
{
    for (int c = c0; c < c1; c++)
        for (int n = 0; n < N; n++) {
            const size_t at = ((size_t)c * N + n) * hw;
            cnn_prelu_forward(out + at, in + at, slope + c * hw, 0, (int)hw, 1);
        }
}

static void prelu_run(const struct cnn_model *m, const struct cnn_op *op,
                      const struct cnn_op_run *r)
{
    const struct cnn_layer *il = &m->layers[op->inputs[0]];
    const size_t hw = (size_t)il->h * (size_t)il->w;
    if (prelu_per_element(&m->layers[op->layer]))
        prelu_planes(r->out, r->in[0], op->w, 0, il->c, r->n, hw);
    else
        cnn_prelu_forward(r->out, r->in[0], op->w, m->layers[op->layer].p.prelu.channels == 1,
                          il->c, hw * (size_t)r->n);
}

/* Channels [lo, hi). */
static int prelu_train_forward(const struct train_fwd_job *job, int part, int parts,
                               struct cnn_err *err)
{
    (void)err;
    const struct train_view v = train_view(job->t, job->i, job->n);
    const int shared = v.l->p.prelu.channels == 1;
    const float *slope = v.P + v.l->weight_offset[0];
    size_t lo, hi;
    cnn_part_range((size_t)v.il->c, part, parts, &lo, &hi);
    if (prelu_per_element(v.l))
        prelu_planes(v.dst, v.in, slope, (int)lo, (int)hi, job->n, v.hw);
    else
        cnn_prelu_forward(v.dst + lo * v.n_hw, v.in + lo * v.n_hw, shared ? slope : slope + lo,
                          shared, (int)(hi - lo), v.n_hw);
    return 0;
}

/* Channels [lo, hi); a shared slope's gradient sums over every channel, so part 0 alone
 * computes it (the sum then does not depend on the split). */
static void prelu_train_backward(const struct train_bwd_job *job, int part, int parts)
{
    const struct train_view v = train_view(job->t, job->i, job->n);
    const int shared = v.l->p.prelu.channels == 1;
    const float *slope = v.P + v.l->weight_offset[0];
    float *dslope = v.tl->trainable ? job->t->buf.grad + v.l->weight_offset[0] : NULL;
    size_t lo, hi;
    if (shared && parts > 1) {
        if (part != 0)
            return;
        parts = 1;
    }
    cnn_part_range((size_t)v.il->c, part, parts, &lo, &hi);
    train_zero_fresh(job, 0, v.dinp, lo * v.n_hw, (hi - lo) * v.n_hw);
    if (prelu_per_element(v.l)) { /* each plane: hw "channels" of one value */
        for (size_t c = lo; c < hi; c++)
            for (int n = 0; n < job->n; n++) {
                const size_t at = (c * (size_t)job->n + (size_t)n) * v.hw;
                cnn_prelu_backward(v.dinp ? v.dinp + at : NULL, dslope ? dslope + c * v.hw : NULL,
                                   job->dout + at, v.in + at, slope + c * v.hw, 0, (int)v.hw, 1);
            }
        return;
    }
    cnn_prelu_backward(v.dinp ? v.dinp + lo * v.n_hw : NULL,
                       dslope && !shared ? dslope + lo : dslope, job->dout + lo * v.n_hw,
                       v.in + lo * v.n_hw, shared ? slope : slope + lo, shared, (int)(hi - lo),
                       v.n_hw);
}

const struct cnn_layer_kind_ops cnn_kind_prelu = {
    .name = "prelu",
    .fields = prelu_fields,
    .n_fields = 1,
    .slot_names = prelu_slots,
    .learned_slots = 1,
    .decay_slots = 0, /* PyTorch's advice for PReLU: no weight decay on the slope */
    .infer = prelu_infer,
    .init = prelu_init,
    .plan = prelu_plan,
    .in_place = 1,
    .run = prelu_run,
    .train_forward = prelu_train_forward,
    .train_backward = prelu_train_backward,
};
