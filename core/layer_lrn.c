/* Local response normalisation across channels (AlexNet, ONNX LRN, PyTorch):
 * y = x / (k + alpha/size * sum of x^2 over channels c-(size-1)/2 .. c+size/2)^beta.
 * In (C, N, H, W) each channel is one contiguous block of n_hw floats.  Then the lrn row
 * of the layer-kind table (layer_kind.h). */
#include "grad.h"
#include "layer.h"
#include "layer_kind.h"
#include "train_internal.h"

#include <math.h>
#include <stddef.h>

void cnn_lrn_forward(float *out, const float *inp, const struct cnn_lrn *p, int C, size_t n_hw)
{
    const float a = p->alpha / (float)p->size;
    for (int c = 0; c < C; c++) {
        int lo = c - (p->size - 1) / 2, hi = c + p->size / 2;
        lo = lo < 0 ? 0 : lo;
        hi = hi > C - 1 ? C - 1 : hi;
        float *y = out + (size_t)c * n_hw;
        /* First the window's sum of squares into y, then the normalisation in place. */
        for (size_t i = 0; i < n_hw; i++)
            y[i] = 0.0f;
        for (int j = lo; j <= hi; j++) {
            const float *x = inp + (size_t)j * n_hw;
            for (size_t i = 0; i < n_hw; i++)
                y[i] += x[i] * x[i];
        }
        const float *x = inp + (size_t)c * n_hw;
        if (p->beta == 0.75f) { /* AlexNet, GoogLeNet: t^-3/4 = 1/sqrt(t*sqrt(t)), 2x faster */
            for (size_t i = 0; i < n_hw; i++) {
                float t = p->k + a * y[i];
                y[i] = x[i] / sqrtf(t * sqrtf(t));
            }
        } else {
            for (size_t i = 0; i < n_hw; i++)
                y[i] = x[i] * powf(p->k + a * y[i], -p->beta);
        }
    }
}

/* ---- the lrn row --------------------------------------------------------------------- */

#define LRN(f) offsetof(struct cnn_lrn, f)
static const struct cnn_layer_field lrn_fields[] = {
    {"size", CNN_FIELD_INT, LRN(size)},
    {"alpha", CNN_FIELD_FLOAT, LRN(alpha)},
    {"beta", CNN_FIELD_FLOAT, LRN(beta)},
    {"k", CNN_FIELD_FLOAT, LRN(k)},
};

static int lrn_infer(const struct cnn_model *m, struct cnn_layer *l, struct cnn_err *err)
{
    const struct cnn_lrn *p = &l->p.lrn;
    if (p->size < 1 || p->size > 1023 || !isfinite(p->alpha) || !isfinite(p->beta) ||
        !(p->k > 0.0f) || !isfinite(p->k))
        return cnn_err_set(err, CNN_EINVAL, "layer %s: lrn size/alpha/beta/k invalid", l->name);
    return cnn_layer_same_shape(m, l);
}

static void lrn_run(const struct cnn_model *m, const struct cnn_op *op, const struct cnn_op_run *r)
{
    const struct cnn_layer *il = &m->layers[op->inputs[0]];
    cnn_lrn_forward(r->out, r->in[0], &m->layers[op->layer].p.lrn, il->c,
                    (size_t)il->h * (size_t)il->w * (size_t)r->n);
}

static int lrn_train_alloc(struct cnn_trainer *t, int i, struct train_sizes *sz)
{
    const struct cnn_layer *l = &t->net->layers[i];
    size_t n = cnn_lrn_backward_scratch_floats(
        l->c, (size_t)l->h * (size_t)l->w * (size_t)t->cfg.max_batch);
    if (n > sz->scratch)
        sz->scratch = n;
    return 0;
}

/* Not split: part 0 alone. */
static int lrn_train_forward(const struct train_fwd_job *job, int part, int parts,
                             struct cnn_err *err)
{
    (void)parts, (void)err;
    const struct train_view v = train_view(job->t, job->i, job->n);
    if (part == 0)
        cnn_lrn_forward(v.dst, v.in, &v.l->p.lrn, v.il->c, v.n_hw);
    return 0;
}

static void lrn_train_backward(const struct train_bwd_job *job, int part, int parts)
{
    (void)parts;
    const struct train_view v = train_view(job->t, job->i, job->n);
    if (v.dinp && part == 0) {
        train_zero_fresh(job, 0, v.dinp, 0, v.count);
        cnn_lrn_backward(v.dinp, job->dout, v.in, job->t->buf.scratch[0], &v.l->p.lrn, v.il->c,
                         v.n_hw);
    }
}

const struct cnn_layer_kind_ops cnn_kind_lrn = {
    .name = "lrn",
    .fields = lrn_fields,
    .n_fields = (int)(sizeof lrn_fields / sizeof lrn_fields[0]),
    .infer = lrn_infer,
    .run = lrn_run,
    .train_alloc = lrn_train_alloc,
    .train_forward = lrn_train_forward,
    .train_backward = lrn_train_backward,
};
