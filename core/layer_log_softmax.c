/* Log-softmax over a span of a (C, H, W) value (enum cnn_softmax_span: the channels at each
 * position -- on a (K,1,1) input the classes --, each plane, each row; ONNX LogSoftmax axes):
 * y = x - max - log(sum exp(x - max)), stable for any logits.  Its kernels and the
 * log_softmax row of the layer-kind table (layer_kind.h).  Cross-entropy training reads it
 * as it reads logits: softmax(log_softmax(x)) = softmax(x), so loss and gradient match. */
#include "grad.h"
#include "layer.h"
#include "layer_kind.h"
#include "train_internal.h"

#include <math.h>
#include <stddef.h>

void cnn_log_softmax_forward(float *out, const float *inp, int K, int N)
{
    for (int n = 0; n < N; n++) {
        float m = -INFINITY;
        for (int k = 0; k < K; k++)
            m = inp[(size_t)k * N + n] > m ? inp[(size_t)k * N + n] : m;
        double sum = 0.0;
        for (int k = 0; k < K; k++)
            sum += exp((double)inp[(size_t)k * N + n] - m);
        const float lse = m + (float)log(sum);
        for (int k = 0; k < K; k++)
            out[(size_t)k * N + n] = inp[(size_t)k * N + n] - lse;
    }
}

void cnn_log_softmax_backward(float *dinp, const float *dout, const float *out, int K, int N)
{
    for (int n = 0; n < N; n++) {
        double sum = 0.0;
        for (int k = 0; k < K; k++)
            sum += dout[(size_t)k * N + n];
        for (int k = 0; k < K; k++) {
            const size_t i = (size_t)k * N + n;
            dinp[i] += dout[i] - expf(out[i]) * (float)sum;
        }
    }
}

/* ---- softmax and log-softmax over a span (both rows use these) ------------------------ */

void cnn_softmax_span_forward(float *out, const float *inp, const struct cnn_softmax *p, int C,
                              int N, int H, int W, int log)
{
    void (*f)(float *, const float *, int, int) = log ? cnn_log_softmax_forward
                                                      : cnn_softmax_forward;
    if (p->span == CNN_SOFTMAX_CHANNELS) {
        f(out, inp, C, N * H * W);
        return;
    }
    const size_t len = p->span == CNN_SOFTMAX_PLANE ? (size_t)H * W : (size_t)W;
    const size_t rows = (size_t)C * N * H * W / len;
    for (size_t r = 0; r < rows; r++)
        f(out + r * len, inp + r * len, (int)len, 1);
}

void cnn_softmax_span_backward(float *dinp, const float *dout, const float *out,
                               const struct cnn_softmax *p, int C, int N, int H, int W, int log)
{
    void (*f)(float *, const float *, const float *, int, int) =
        log ? cnn_log_softmax_backward : cnn_softmax_backward;
    if (p->span == CNN_SOFTMAX_CHANNELS) {
        f(dinp, dout, out, C, N * H * W);
        return;
    }
    const size_t len = p->span == CNN_SOFTMAX_PLANE ? (size_t)H * W : (size_t)W;
    const size_t rows = (size_t)C * N * H * W / len;
    for (size_t r = 0; r < rows; r++)
        f(dinp + r * len, dout + r * len, out + r * len, (int)len, 1);
}

const struct cnn_layer_field cnn_softmax_fields[1] = {
    {"span", CNN_FIELD_INT, offsetof(struct cnn_softmax, span)}};

int cnn_softmax_infer(const struct cnn_model *m, struct cnn_layer *l, struct cnn_err *err)
{
    if (l->p.sm.span < 0 || l->p.sm.span >= CNN_SOFTMAX_SPAN_COUNT)
        return cnn_err_set(err, CNN_EINVAL, "layer %s: %s span %d out of range 0..%d", l->name,
                           cnn_layer_kind_name(l->kind), l->p.sm.span,
                           CNN_SOFTMAX_SPAN_COUNT - 1);
    return cnn_layer_same_shape(m, l);
}

/* ---- the log_softmax row ------------------------------------------------------------- */

static void lsm_run(const struct cnn_model *m, const struct cnn_op *op, const struct cnn_op_run *r)
{
    const struct cnn_layer *il = &m->layers[op->inputs[0]];
    cnn_softmax_span_forward(r->out, r->in[0], &m->layers[op->layer].p.sm, il->c, r->n, il->h,
                             il->w, 1);
}

/* Not split: part 0 alone (as softmax). */
static int lsm_train_forward(const struct train_fwd_job *job, int part, int parts,
                             struct cnn_err *err)
{
    (void)parts, (void)err;
    const struct train_view v = train_view(job->t, job->i, job->n);
    if (part == 0)
        cnn_softmax_span_forward(v.dst, v.in, &v.l->p.sm, v.il->c, job->n, v.il->h, v.il->w, 1);
    return 0;
}

static void lsm_train_backward(const struct train_bwd_job *job, int part, int parts)
{
    (void)parts;
    const struct train_view v = train_view(job->t, job->i, job->n);
    if (v.dinp && part == 0) {
        train_zero_fresh(job, 0, v.dinp, 0, v.count);
        cnn_softmax_span_backward(v.dinp, job->dout, v.tl->out, &v.l->p.sm, v.il->c, job->n,
                                  v.il->h, v.il->w, 1);
    }
}

const struct cnn_layer_kind_ops cnn_kind_log_softmax = {
    .name = "log_softmax",
    .fields = cnn_softmax_fields,
    .n_fields = 1,
    .infer = cnn_softmax_infer,
    .in_place = 1, /* each item's max and sum are taken before any of its outputs is written */
    .run = lsm_run,
    .train_forward = lsm_train_forward,
    .train_backward = lsm_train_backward,
};
