/* Log-softmax over the channels at each position (ONNX LogSoftmax axis 1 from opset 13; on a
 * (K,1,1) input over the classes):
 * y = x - max - log(sum exp(x - max)), stable for any logits.  Its kernels and the
 * log_softmax row of the layer-kind table (layer_kind.h).  Cross-entropy training reads it
 * as it reads logits: softmax(log_softmax(x)) = softmax(x), so loss and gradient match. */
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

/* ---- the log_softmax row ------------------------------------------------------------- */

/* In the (C, N, H, W) layout the (K, N) kernels with N * H * W columns. */
static int lsm_infer(const struct cnn_model *m, struct cnn_layer *l, struct cnn_err *err)
{
    (void)err;
    return cnn_layer_same_shape(m, l);
}

static void lsm_run(const struct cnn_model *m, const struct cnn_op *op, const struct cnn_op_run *r)
{
    const struct cnn_layer *il = &m->layers[op->inputs[0]];
    cnn_log_softmax_forward(r->out, r->in[0], il->c, r->n * il->h * il->w);
}

/* Not split: part 0 alone (as softmax). */
static int lsm_train_forward(const struct train_fwd_job *job, int part, int parts,
                             struct cnn_err *err)
{
    (void)parts, (void)err;
    const struct train_view v = train_view(job->t, job->i, job->n);
    if (part == 0)
        cnn_log_softmax_forward(v.dst, v.in, v.il->c, job->n * v.il->h * v.il->w);
    return 0;
}

static void lsm_train_backward(const struct train_bwd_job *job, int part, int parts)
{
    (void)parts;
    const struct train_view v = train_view(job->t, job->i, job->n);
    if (v.dinp && part == 0) {
        train_zero_fresh(job, 0, v.dinp, 0, v.count);
        cnn_log_softmax_backward(v.dinp, job->dout, v.tl->out, v.il->c,
                                 job->n * v.il->h * v.il->w);
    }
}

const struct cnn_layer_kind_ops cnn_kind_log_softmax = {
    .name = "log_softmax",
    .infer = lsm_infer,
    .in_place = 1, /* each item's max and sum are taken before any of its outputs is written */
    .run = lsm_run,
    .train_forward = lsm_train_forward,
    .train_backward = lsm_train_backward,
};
