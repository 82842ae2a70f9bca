/* The trainer's backward pass (see train_graph.c for the forward and how a layer splits
 * over a worker team): walks the DAG in reverse from the loss layer; each layer's parts
 * run its row's train_backward (layer_kind.h), which accumulates into the gradient of the
 * layer's inputs and into t->buf.grad with the kernels of grad.h, then its train_reduce. */
#include "grad.h"
#include "layer.h"
#include "layer_kind.h"
#include "model_internal.h"
#include "train.h"
#include "train_internal.h"

#include <string.h>

static void backward_work(void *ctx, int part, int parts)
{
    const struct train_bwd_job *job = ctx;
    cnn_layer_kind_ops(job->t->net->layers[job->i].kind)->train_backward(job, part, parts);
}

/* The layer's fused activation first: t->buf.tmp = gradient of its pre-activation. */
static void fused_act_backward_work(void *ctx, int part, int parts)
{
    const struct train_bwd_job *job = ctx;
    const struct train_layer *tl = &job->t->buf.tl[job->i];
    float *tmp = job->t->buf.tmp;
    size_t lo, hi;
    cnn_part_range((size_t)tl->n_out * (size_t)job->n, part, parts, &lo, &hi);
    cnn_act_backward_set(tmp + lo, tl->dout + lo, tl->pre + lo, tl->out + lo, hi - lo,
                         train_layer_act(&job->t->net->layers[job->i]));
}

/* A relu_fused batch norm (layer job->i) over channels, from the relu's dout (job->dout)
 * and output: dgamma, dbeta and its input's gradient (written when fresh). */
static void bn_relu_backward_work(void *ctx, int part, int parts)
{
    const struct train_bwd_job *job = ctx;
    struct cnn_trainer *t = job->t;
    const struct train_view v = train_view(t, job->i, job->n);
    const size_t n_hw = v.n_hw;
    size_t lo, hi;
    cnn_part_range((size_t)v.il->c, part, parts, &lo, &hi);
    if (hi == lo)
        return;
    float *g = t->buf.grad;
    cnn_batchnorm_relu_train_backward(
        v.dinp ? v.dinp + lo * n_hw : NULL, g + v.l->weight_offset[0] + lo,
        g + v.l->weight_offset[1] + lo, job->dout + lo * n_hw,
        t->buf.tl[job->i + 1].out + lo * n_hw, v.in + lo * n_hw, v.P + v.l->weight_offset[0] + lo,
        v.tl->save_mean + lo, v.tl->save_inv_std + lo, (int)(hi - lo), n_hw, !job->fresh[0]);
}

/* Zeroes the gradient of layer i, which received nothing this step (no consumer reached
 * it: a dead branch, the input, or a layer after the loss). */
static void zero_unreached(struct cnn_trainer *t, int i, int n)
{
    struct train_layer *tl = &t->buf.tl[i];
    if (tl->dout && !tl->dout_ready)
        memset(tl->dout, 0, (size_t)tl->n_out * (size_t)n * sizeof(float));
    tl->dout_ready = 1;
}

void train_backward(struct cnn_trainer *t, int n)
{
    t->buf.tl[t->loss_layer].dout_ready = 1; /* the loss wrote it */
    for (int i = t->loss_layer; i >= 1; i--) {
        struct train_layer *tl = &t->buf.tl[i];
        const struct cnn_layer *l = &t->net->layers[i];
        if (!tl->needs_grad)
            continue;
        zero_unreached(t, i, n);
        if (train_relu_fused_away(t, i)) { /* its batch norm goes from this dout */
            t->buf.tl[i - 1].dout_ready = 1;
            continue;
        }
        const int pair = t->buf.fused && tl->relu_fused;
        struct train_bwd_job job = {.t = t, .i = i, .n = n, .dout = tl->dout};
        if (pair)
            job.dout = t->buf.tl[i + 1].dout;
        for (int k = 0; k < l->n_inputs; k++) { /* the first writer of each buffer zeroes it */
            struct train_layer *src = &t->buf.tl[l->inputs[k]];
            job.fresh[k] = src->dout && !src->dout_ready;
            for (int j = 0; j < k; j++)
                if (l->inputs[j] == l->inputs[k])
                    job.fresh[k] = 0;
        }
        if (tl->pre) {
            cnn_workers_run(t->buf.workers, fused_act_backward_work, &job);
            job.dout = t->buf.tmp;
        }
        cnn_workers_run(t->buf.workers, pair ? bn_relu_backward_work : backward_work, &job);
        for (int k = 0; k < l->n_inputs; k++)
            t->buf.tl[l->inputs[k]].dout_ready = 1;
        const struct cnn_layer_kind_ops *k = cnn_layer_kind_ops(l->kind);
        if (k->train_reduce)
            k->train_reduce(t, i);
    }
    for (int i = 0; i < t->net->n_layers; i++)
        zero_unreached(t, i, n);
}

static void zero_work(void *ctx, int part, int parts)
{
    struct cnn_trainer *t = ctx;
    size_t lo, hi;
    cnn_part_range(t->net->n_params, part, parts, &lo, &hi);
    memset(t->buf.grad + lo, 0, (hi - lo) * sizeof(float));
}

void train_zero_grads(struct cnn_trainer *t, int n)
{
    (void)n;
    cnn_workers_run(t->buf.workers, zero_work, t);
    for (int i = 0; i < t->net->n_layers; i++)
        t->buf.tl[i].dout_ready = 0; /* zeroed lazily by its first writer, see train_bwd_job */
}
