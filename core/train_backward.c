/* The trainer's backward pass (see train_graph.c for the forward and how a layer splits
 * over a worker team): walks the DAG in reverse from the loss layer and accumulates into
 * the gradient of each layer's inputs and into t->grad with the kernels of grad.h.  A conv
 * splits over whole images, so its parts add into disjoint input pixels but each needs its
 * own weight gradient: part 0 adds into t->grad, part k into t->dw_part[k], summed into
 * t->grad in part order after the round (the same order every run: reproducible). */
#include "gemm.h"
#include "grad.h"
#include "layer.h"
#include "model_internal.h"
#include "train.h"
#include "train_internal.h"

#include <string.h>

struct backward_job {
    struct cnn_trainer *t;
    int i, n;
    const float *dout; /* gradient of the layer's output before its fused activation */
    /* fresh[k]: input k's gradient holds nothing yet this step, so each part zeroes its own
     * region of it right before adding into it (or writes it outright), in cache, instead
     * of a memset of every gradient buffer at the start of the step */
    int fresh[CNN_MAX_INPUTS];
};

/* d[off, off + len) = 0 when input k's gradient is fresh. */
static void zero_fresh(const struct backward_job *job, int k, float *d, size_t off, size_t len)
{
    if (job->fresh[k] && d && len)
        memset(d + off, 0, len * sizeof(float));
}

/* Gradient buffer of input k of layer l, or NULL when nothing upstream needs it. */
static float *din(struct cnn_trainer *t, const struct cnn_layer *l, int k)
{
    return t->tl[l->inputs[k]].dout;
}

static void conv_part(const struct backward_job *job, int part, int parts)
{
    struct cnn_trainer *t = job->t;
    const struct cnn_layer *l = &t->net->layers[job->i];
    const struct cnn_conv2d *p = &l->p.conv;
    const int n = job->n, trainable = job->t->tl[job->i].trainable;
    const float *in = t->tl[l->inputs[0]].out, *w = t->net->params + l->weight_offset[0];
    float *dinp = din(t, l, 0);
    float *dw = trainable ? t->grad + l->weight_offset[0] : NULL;
    size_t lo, hi;
    if (trainable && p->has_bias) { /* db over output channels [lo, hi) */
        struct cnn_conv2d q = *p;
        cnn_part_range((size_t)p->oc, part, parts, &lo, &hi);
        q.oc = (int)(hi - lo);
        const size_t cols = (size_t)n * p->oh * p->ow;
        if (q.oc > 0)
            cnn_conv2d_backward(NULL, NULL, t->grad + l->weight_offset[1] + lo,
                                job->dout + lo * cols, in, w, NULL, &q, n);
    }
    if (!dinp && !dw)
        return;
    const size_t in_plane = (size_t)p->h * p->w;
    if (cnn_conv2d_is_depthwise(p)) {
        if (part == 0) {
            zero_fresh(job, 0, dinp, 0, (size_t)p->c * n * in_plane);
            cnn_conv2d_backward(dinp, dw, NULL, job->dout, in, w, t->scratch[0], p, n);
        }
        return;
    }
    if (dw && part > 0) {
        memset(t->dw_part[part], 0, l->weight_count[0] * sizeof(float));
        dw = t->dw_part[part];
    }
    cnn_part_range((size_t)n, part, parts, &lo, &hi); /* whole images */
    const float *ub = t->tl[job->i].wino_ub;
    struct cnn_conv2d q;
    if (dinp && ub && cnn_conv2d_backward_winograd_shape(p, &q)) {
        const int th = (q.oh + 1) / 2; /* tile rows per image */
        /* a fresh gradient is written outright: the tiles cover every pixel of the images */
        cnn_conv2d_winograd_rows(dinp, job->dout, ub, NULL, t->scratch[part], &q, n, (int)lo * th,
                                 (int)hi * th, !job->fresh[0]);
        dinp = NULL; /* done: the rows below only add to dw */
    }
    if (dw && t->tl[job->i].wino_u) { /* dw in the transformed domain (2.25x fewer MACs) */
        const int th = (p->oh + 1) / 2;
        float *du = t->du_part[part];
        memset(du, 0, cnn_winograd_weights_floats(p) * sizeof(float));
        cnn_winograd_weight_grad_rows(du, in, job->dout, t->scratch[part], p, n, (int)lo * th,
                                      (int)hi * th);
        cnn_winograd_weight_grad_finish(dw, du, p);
        dw = NULL;
    }
    for (int c = 0; dinp && c < p->c; c++) /* this part's images in every channel */
        zero_fresh(job, 0, dinp, ((size_t)c * n + lo) * in_plane, (hi - lo) * in_plane);
    if (dinp || dw)
        cnn_conv2d_backward_rows(dinp, dw, job->dout, in, w, t->scratch[part], p, n,
                                 (int)lo * p->oh, (int)hi * p->oh);
}

/* dw, db over output features [lo, hi); dinp over input features. */
static void dense_part(const struct backward_job *job, int part, int parts)
{
    struct cnn_trainer *t = job->t;
    const struct cnn_layer *l = &t->net->layers[job->i];
    const struct cnn_dense *p = &l->p.dense;
    const int n = job->n;
    const float *in = t->tl[l->inputs[0]].out, *w = t->net->params + l->weight_offset[0];
    float *dinp = din(t, l, 0);
    size_t lo, hi;
    if (t->tl[job->i].trainable) {
        struct cnn_dense q = *p;
        cnn_part_range((size_t)p->out, part, parts, &lo, &hi);
        q.out = (int)(hi - lo);
        float *db = p->has_bias ? t->grad + l->weight_offset[1] + lo : NULL;
        if (q.out > 0)
            cnn_dense_backward(NULL, t->grad + l->weight_offset[0] + lo * (size_t)p->in, db,
                               job->dout + lo * (size_t)n, in, w + lo * (size_t)p->in, &q, n);
    }
    if (dinp) { /* dinp rows [lo, hi) += w[:, lo:hi]^T * dout */
        cnn_part_range((size_t)p->in, part, parts, &lo, &hi);
        if (hi > lo)
            cnn_gemm(1, 0, (int)(hi - lo), n, p->out, 1.0f, w + lo, p->in, job->dout, n,
                     job->fresh[0] ? 0.0f : 1.0f, dinp + lo * (size_t)n, n);
    }
}

static void backward_part(const struct backward_job *job, int part, int parts)
{
    struct cnn_trainer *t = job->t;
    const struct cnn_model *m = t->net;
    const struct cnn_layer *l = &m->layers[job->i];
    struct train_layer *tl = &t->tl[job->i];
    const struct cnn_layer *il = &m->layers[l->inputs[0]];
    const float *in = t->tl[l->inputs[0]].out;
    float *dinp = din(t, l, 0);
    const int n = job->n;
    const size_t hw = (size_t)il->h * (size_t)il->w;
    const size_t n_hw = hw * (size_t)n;
    const size_t count = (size_t)il->c * n_hw;
    const float *const P = m->params;
    const float *dout = job->dout;
    size_t lo, hi;
    switch (l->kind) {
    case CNN_LAYER_CONV2D:
        conv_part(job, part, parts);
        break;
    case CNN_LAYER_DENSE:
        dense_part(job, part, parts);
        break;
    case CNN_LAYER_MAXPOOL:
    case CNN_LAYER_AVGPOOL: { /* channels [lo, lo + q.c) */
        const struct cnn_pool2d q = train_pool_part(&l->p.pool, part, parts, &lo);
        const size_t out_chan = (size_t)l->h * l->w * (size_t)n;
        if (!dinp || q.c == 0)
            break;
        zero_fresh(job, 0, dinp, lo * n_hw, (size_t)q.c * n_hw);
        if (l->kind == CNN_LAYER_MAXPOOL)
            cnn_maxpool_backward(dinp + lo * n_hw, dout + lo * out_chan, in + lo * n_hw, &q, n);
        else
            cnn_avgpool_backward(dinp + lo * n_hw, dout + lo * out_chan, &q, n);
        break;
    }
    case CNN_LAYER_GLOBAL_AVGPOOL:
        cnn_part_range((size_t)il->c * (size_t)n, part, parts, &lo, &hi);
        zero_fresh(job, 0, dinp, lo * hw, (hi - lo) * hw);
        if (dinp)
            cnn_global_avgpool_backward(dinp + lo * hw, dout + lo, hi - lo, hw);
        break;
    case CNN_LAYER_ACT:
        cnn_part_range(count, part, parts, &lo, &hi);
        zero_fresh(job, 0, dinp, lo, hi - lo);
        if (dinp)
            cnn_act_backward(dinp + lo, dout + lo, in + lo, tl->out + lo, hi - lo, &l->p.act);
        break;
    case CNN_LAYER_BATCHNORM: { /* channels [lo, hi) */
        const float *gamma = P + l->weight_offset[0];
        cnn_part_range((size_t)il->c, part, parts, &lo, &hi);
        const int c = (int)(hi - lo);
        float *dgamma = tl->trainable ? t->grad + l->weight_offset[0] + lo : NULL;
        float *dbeta = tl->trainable ? t->grad + l->weight_offset[1] + lo : NULL;
        float *d = dinp ? dinp + lo * n_hw : NULL;
        if (c == 0)
            break;
        zero_fresh(job, 0, dinp, lo * n_hw, (hi - lo) * n_hw);
        if (tl->trainable)
            cnn_batchnorm_train_backward(d, dgamma, dbeta, dout + lo * n_hw, in + lo * n_hw,
                                         gamma + lo, tl->save_mean + lo, tl->save_inv_std + lo, c,
                                         n_hw);
        else if (d) /* frozen: ran with its running statistics */
            cnn_batchnorm_eval_backward(d, NULL, NULL, dout + lo * n_hw, in + lo * n_hw, gamma + lo,
                                        P + l->weight_offset[2] + lo, P + l->weight_offset[3] + lo,
                                        l->p.bn.eps, c, n_hw);
        break;
    }
    case CNN_LAYER_DROPOUT:
        cnn_part_range(count, part, parts, &lo, &hi);
        zero_fresh(job, 0, dinp, lo, hi - lo);
        if (dinp)
            cnn_dropout_backward(dinp + lo, dout + lo, tl->mask + lo, l->p.dropout_rate, hi - lo);
        break;
    case CNN_LAYER_LRN:
        if (dinp && part == 0) {
            zero_fresh(job, 0, dinp, 0, count);
            cnn_lrn_backward(dinp, dout, in, t->scratch[0], &l->p.lrn, il->c, n_hw);
        }
        break;
    case CNN_LAYER_ADD:
        cnn_part_range(count, part, parts, &lo, &hi);
        for (int k = 0; k < l->n_inputs; k++) {
            float *d = din(t, l, k);
            zero_fresh(job, k, d, lo, hi - lo);
            if (d)
                cnn_grad_accumulate(d + lo, dout + lo, hi - lo);
        }
        break;
    case CNN_LAYER_CONCAT: {
        size_t off = 0;
        for (int k = 0; k < l->n_inputs; k++) {
            size_t len = (size_t)m->layers[l->inputs[k]].c * n_hw;
            float *d = din(t, l, k);
            cnn_part_range(len, part, parts, &lo, &hi);
            zero_fresh(job, k, d, lo, hi - lo);
            if (d)
                cnn_grad_accumulate(d + lo, dout + off + lo, hi - lo);
            off += len;
        }
        break;
    }
    case CNN_LAYER_FLATTEN:
        if (dinp && part == 0) {
            zero_fresh(job, 0, dinp, 0, count);
            cnn_flatten_backward(dinp, dout, il->c, n, (int)hw);
        }
        break;
    case CNN_LAYER_SOFTMAX:
        if (dinp && part == 0) {
            zero_fresh(job, 0, dinp, 0, count);
            cnn_softmax_backward(dinp, dout, tl->out, il->c, n);
        }
        break;
    default:
        break;
    }
}

static void backward_work(void *ctx, int part, int parts)
{
    backward_part(ctx, part, parts);
}

/* The layer's fused activation first: t->tmp = gradient of its pre-activation. */
static void fused_act_backward_work(void *ctx, int part, int parts)
{
    const struct backward_job *job = ctx;
    const struct train_layer *tl = &job->t->tl[job->i];
    float *tmp = job->t->tmp;
    size_t lo, hi;
    cnn_part_range((size_t)tl->n_out * (size_t)job->n, part, parts, &lo, &hi);
    memset(tmp + lo, 0, (hi - lo) * sizeof(float));
    cnn_act_backward(tmp + lo, tl->dout + lo, tl->pre + lo, tl->out + lo, hi - lo,
                     train_layer_act(&job->t->net->layers[job->i]));
}

/* Adds the parts' private conv weight gradients into t->grad, in part order. */
static void reduce_conv_weights(struct cnn_trainer *t, const struct cnn_layer *l)
{
    float *dw = t->grad + l->weight_offset[0];
    for (int k = 1; k < t->parts; k++)
        cnn_grad_accumulate(dw, t->dw_part[k], l->weight_count[0]);
}

/* Zeroes the gradient of layer i, which received nothing this step (no consumer reached
 * it: a dead branch, the input, or a layer after the loss). */
static void zero_unreached(struct cnn_trainer *t, int i, int n)
{
    struct train_layer *tl = &t->tl[i];
    if (tl->dout && !tl->dout_ready)
        memset(tl->dout, 0, (size_t)tl->n_out * (size_t)n * sizeof(float));
    tl->dout_ready = 1;
}

void train_backward(struct cnn_trainer *t, int n)
{
    t->tl[t->loss_layer].dout_ready = 1; /* the loss wrote it */
    for (int i = t->loss_layer; i >= 1; i--) {
        struct train_layer *tl = &t->tl[i];
        const struct cnn_layer *l = &t->net->layers[i];
        if (!tl->needs_grad)
            continue;
        zero_unreached(t, i, n);
        struct backward_job job = {.t = t, .i = i, .n = n, .dout = tl->dout};
        for (int k = 0; k < l->n_inputs; k++) { /* the first writer of each buffer zeroes it */
            struct train_layer *src = &t->tl[l->inputs[k]];
            job.fresh[k] = src->dout && !src->dout_ready;
            for (int j = 0; j < k; j++)
                if (l->inputs[j] == l->inputs[k])
                    job.fresh[k] = 0;
        }
        if (tl->pre) {
            cnn_workers_run(t->workers, fused_act_backward_work, &job);
            job.dout = t->tmp;
        }
        cnn_workers_run(t->workers, backward_work, &job);
        for (int k = 0; k < l->n_inputs; k++)
            t->tl[l->inputs[k]].dout_ready = 1;
        if (l->kind == CNN_LAYER_CONV2D && tl->trainable && t->parts > 1 &&
            !cnn_conv2d_is_depthwise(&l->p.conv))
            reduce_conv_weights(t, l);
    }
    for (int i = 0; i < t->net->n_layers; i++)
        zero_unreached(t, i, n);
}

static void zero_work(void *ctx, int part, int parts)
{
    struct cnn_trainer *t = ctx;
    size_t lo, hi;
    cnn_part_range(t->net->n_params, part, parts, &lo, &hi);
    memset(t->grad + lo, 0, (hi - lo) * sizeof(float));
}

void train_zero_grads(struct cnn_trainer *t, int n)
{
    (void)n;
    cnn_workers_run(t->workers, zero_work, t);
    for (int i = 0; i < t->net->n_layers; i++)
        t->tl[i].dout_ready = 0; /* zeroed lazily by its first writer, see backward_job */
}
