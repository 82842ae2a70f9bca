/* Log-softmax over the channels of a (K,1,1) input (ONNX LogSoftmax on a classifier):
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

static int lsm_infer(const struct cnn_model *m, struct cnn_layer *l, struct cnn_err *err)
{
    const struct cnn_layer *in = cnn_layer_input(m, l, 0);
    if (in->h != 1 || in->w != 1)
        return cnn_err_set(err, CNN_EINVAL, "layer %s: log_softmax needs a (K,1,1) input", l->name);
    return cnn_layer_same_shape(m, l);
}

static void lsm_run(const struct cnn_model *m, const struct cnn_op *op, const struct cnn_op_run *r)
{
    cnn_log_softmax_forward(r->out, r->in[0], m->layers[op->inputs[0]].c, r->n);
}

/* Not split: part 0 alone (as softmax). */
static int lsm_train_forward(const struct train_fwd_job *job, int part, int parts,
                             struct cnn_err *err)
{
    (void)parts, (void)err;
    const struct train_view v = train_view(job->t, job->i, job->n);
    if (part == 0)
        cnn_log_softmax_forward(v.dst, v.in, v.il->c, job->n);
    return 0;
}

static void lsm_train_backward(const struct train_bwd_job *job, int part, int parts)
{
    (void)parts;
    const struct train_view v = train_view(job->t, job->i, job->n);
    if (v.dinp && part == 0) {
        train_zero_fresh(job, 0, v.dinp, 0, v.count);
        cnn_log_softmax_backward(v.dinp, job->dout, v.tl->out, v.il->c, job->n);
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
