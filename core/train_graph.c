/* The trainer's forward and backward passes over the UNFUSED layer graph: every layer runs
 * as itself (batch norm with batch statistics, dropout active, a layer's own activation as
 * a separate step), keeping each layer's output (and pre-activation when it has a fused
 * activation) for the backward, which walks the DAG in reverse and accumulates into the
 * gradient of each layer's inputs with the kernels of grad.h. */
#include "grad.h"
#include "layer.h"
#include "model_internal.h"
#include "tensor.h"
#include "train.h"
#include "train_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const struct cnn_act_params *layer_act(const struct cnn_layer *l)
{
    switch (l->kind) {
    case CNN_LAYER_CONV2D:
        return &l->p.conv.act;
    case CNN_LAYER_DENSE:
        return &l->p.dense.act;
    case CNN_LAYER_BATCHNORM:
        return &l->p.bn.act;
    default:
        return NULL; /* ACT layers are their own activation; ADD has none in a layer desc */
    }
}

static int has_fused_act(const struct cnn_layer *l)
{
    const struct cnn_act_params *a = layer_act(l);
    return a && a->kind != CNN_ACT_NONE;
}

static int has_learned(const struct cnn_layer *l)
{
    return l->kind == CNN_LAYER_CONV2D || l->kind == CNN_LAYER_DENSE ||
           l->kind == CNN_LAYER_BATCHNORM;
}

static float *alloc_floats(size_t n)
{
    size_t bytes;
    if (cnn_mul_size(n ? n : 1, sizeof(float), &bytes))
        return NULL;
    return calloc(1, bytes);
}

static size_t max_size(size_t a, size_t b)
{
    return a > b ? a : b;
}

int train_graph_alloc(struct cnn_trainer *t, struct cnn_err *err)
{
    const struct cnn_model *m = t->net;
    const size_t N = (size_t)t->cfg.max_batch;
    t->tl = calloc((size_t)m->n_layers, sizeof *t->tl);
    t->grad = alloc_floats(m->n_params);
    t->mom = alloc_floats(m->n_params);
    t->add_in = calloc(CNN_MAX_INPUTS, sizeof *t->add_in);
    if (!t->tl || !t->grad || !t->mom || !t->add_in)
        goto nomem;
    size_t scratch = 0, biggest = 0;
    int max_c = 1;
    for (int i = 0; i < m->n_layers; i++) {
        const struct cnn_layer *l = &m->layers[i];
        struct train_layer *tl = &t->tl[i];
        tl->n_out = l->c * l->h * l->w;
        tl->trainable = has_learned(l) && i > t->freeze_idx;
        if (i == 0) {
            tl->needs_grad = t->cfg.input_grad;
        } else {
            tl->needs_grad = tl->trainable;
            for (int k = 0; k < l->n_inputs; k++)
                tl->needs_grad |= t->tl[l->inputs[k]].needs_grad;
        }
        size_t count;
        if (cnn_mul_size((size_t)tl->n_out, N, &count))
            goto nomem;
        biggest = max_size(biggest, count);
        if (!(tl->out = alloc_floats(count)))
            goto nomem;
        if (has_fused_act(l) && !(tl->pre = alloc_floats(count)))
            goto nomem;
        if (tl->needs_grad && !(tl->dout = alloc_floats(count)))
            goto nomem;
        if (l->kind == CNN_LAYER_BATCHNORM) {
            tl->save_mean = alloc_floats((size_t)l->c);
            tl->save_inv_std = alloc_floats((size_t)l->c);
            if (!tl->save_mean || !tl->save_inv_std)
                goto nomem;
            if (l->c > max_c)
                max_c = l->c;
        }
        if (l->kind == CNN_LAYER_DROPOUT && !(tl->mask = calloc(count ? count : 1, 1)))
            goto nomem;
        if (l->kind == CNN_LAYER_CONV2D) {
            scratch = max_size(scratch, cnn_conv2d_scratch_floats(&l->p.conv, (int)N));
            scratch = max_size(scratch, cnn_conv2d_backward_scratch_floats(&l->p.conv, (int)N));
        } else if (l->kind == CNN_LAYER_LRN) {
            scratch = max_size(
                scratch, cnn_lrn_backward_scratch_floats(l->c, (size_t)l->h * (size_t)l->w * N));
        }
    }
    if (scratch == SIZE_MAX)
        goto nomem;
    t->scratch = alloc_floats(scratch);
    t->tmp = alloc_floats(biggest);
    t->target = alloc_floats(biggest);
    t->bn_scale = alloc_floats((size_t)max_c);
    t->bn_shift = alloc_floats((size_t)max_c);
    if (!t->scratch || !t->tmp || !t->target || !t->bn_scale || !t->bn_shift)
        goto nomem;
    return 0;
nomem:
    train_graph_free(t);
    return cnn_err_set(err, CNN_ENOMEM, "train: out of memory for batch %d", t->cfg.max_batch);
}

void train_graph_free(struct cnn_trainer *t)
{
    if (t->tl) {
        for (int i = 0; i < t->net->n_layers; i++) {
            struct train_layer *tl = &t->tl[i];
            free(tl->out);
            free(tl->pre);
            free(tl->dout);
            free(tl->save_mean);
            free(tl->save_inv_std);
            free(tl->mask);
        }
    }
    free(t->tl);
    free(t->grad);
    free(t->mom);
    free(t->add_in);
    free(t->scratch);
    free(t->tmp);
    free(t->target);
    free(t->bn_scale);
    free(t->bn_shift);
    t->tl = NULL;
    t->grad = t->mom = t->scratch = t->tmp = t->target = t->bn_scale = t->bn_shift = NULL;
    t->add_in = NULL;
}

static const struct cnn_act_params no_act = {CNN_ACT_NONE, 0.0f, 0.0f};

/* dst = act(src) for n floats; relu in one pass (it is most of the activations). */
static void act_copy(float *restrict dst, const float *restrict src, size_t n,
                     const struct cnn_act_params *act)
{
    if (act->kind == CNN_ACT_RELU) {
        for (size_t i = 0; i < n; i++)
            dst[i] = src[i] > 0.0f ? src[i] : 0.0f;
        return;
    }
    memcpy(dst, src, n * sizeof(float));
    cnn_act_apply(dst, n, act);
}

/* Runs layer i forward for n items into tl->pre (when it has a fused act) or tl->out. */
static int forward_layer(struct cnn_trainer *t, int i, int n, int training, int update_stats,
                         struct cnn_err *err)
{
    const struct cnn_model *m = t->net;
    const struct cnn_layer *l = &m->layers[i];
    struct train_layer *tl = &t->tl[i];
    const struct cnn_layer *il = &m->layers[l->inputs[0]];
    const float *in = t->tl[l->inputs[0]].out;
    const float *const P = m->params;
    float *dst = tl->pre ? tl->pre : tl->out;
    const size_t hw = (size_t)il->h * (size_t)il->w;
    const size_t n_hw = hw * (size_t)n;
    const size_t count = (size_t)il->c * n_hw;
    switch (l->kind) {
    case CNN_LAYER_CONV2D: {
        struct cnn_conv2d q = l->p.conv;
        q.act = no_act;
        cnn_conv2d_forward(dst, in, P + l->weight_offset[0],
                           q.has_bias ? P + l->weight_offset[1] : NULL, t->scratch, &q, n);
        break;
    }
    case CNN_LAYER_DENSE: {
        struct cnn_dense q = l->p.dense;
        q.act = no_act;
        cnn_dense_forward(dst, in, P + l->weight_offset[0],
                          q.has_bias ? P + l->weight_offset[1] : NULL, &q, n);
        break;
    }
    case CNN_LAYER_MAXPOOL:
        cnn_maxpool_forward(dst, in, &l->p.pool, n);
        break;
    case CNN_LAYER_AVGPOOL:
        cnn_avgpool_forward(dst, in, &l->p.pool, n);
        break;
    case CNN_LAYER_GLOBAL_AVGPOOL:
        cnn_global_avgpool_forward(dst, in, (size_t)il->c * (size_t)n, hw);
        break;
    case CNN_LAYER_ACT:
        act_copy(dst, in, count, &l->p.act);
        break;
    case CNN_LAYER_BATCHNORM: {
        const float *gamma = P + l->weight_offset[0], *beta = P + l->weight_offset[1];
        float *mean = m->params + l->weight_offset[2], *var = m->params + l->weight_offset[3];
        if (training && tl->trainable) {
            int rc = cnn_batchnorm_train_forward(dst, tl->save_mean, tl->save_inv_std,
                                                 update_stats ? mean : NULL,
                                                 update_stats ? var : NULL, in, gamma, beta,
                                                 l->p.bn.eps, t->cfg.bn_momentum, il->c, n_hw, err);
            if (rc)
                return rc;
        } else {
            for (int c = 0; c < il->c; c++) {
                float s = gamma[c] / sqrtf(var[c] + l->p.bn.eps);
                t->bn_scale[c] = s;
                t->bn_shift[c] = beta[c] - mean[c] * s;
            }
            cnn_scale_shift_forward(dst, in, t->bn_scale, t->bn_shift, il->c, n_hw, &no_act);
        }
        break;
    }
    case CNN_LAYER_DROPOUT:
        if (training)
            cnn_dropout_train_forward(dst, tl->mask, in, l->p.dropout_rate, count, &t->rng);
        else
            memcpy(dst, in, count * sizeof(float));
        break;
    case CNN_LAYER_LRN:
        cnn_lrn_forward(dst, in, &l->p.lrn, il->c, n_hw);
        break;
    case CNN_LAYER_ADD:
        for (int k = 0; k < l->n_inputs; k++)
            t->add_in[k] = t->tl[l->inputs[k]].out;
        cnn_add_forward(dst, t->add_in, l->n_inputs, count, &no_act);
        break;
    case CNN_LAYER_CONCAT: {
        size_t off = 0;
        for (int k = 0; k < l->n_inputs; k++) {
            const struct cnn_layer *src = &m->layers[l->inputs[k]];
            size_t len = (size_t)src->c * n_hw;
            memcpy(dst + off, t->tl[l->inputs[k]].out, len * sizeof(float));
            off += len;
        }
        break;
    }
    case CNN_LAYER_FLATTEN:
        cnn_flatten_forward(dst, in, il->c, n, (int)hw);
        break;
    case CNN_LAYER_SOFTMAX:
        cnn_softmax_forward(dst, in, il->c, n);
        break;
    default:
        return cnn_err_set(err, CNN_EINVAL, "train: layer %s has unknown kind %d", l->name,
                           (int)l->kind);
    }
    if (tl->pre)
        act_copy(tl->out, tl->pre, (size_t)tl->n_out * (size_t)n, layer_act(l));
    return 0;
}

/* (a, b, inner) -> (b, a, inner): NCHW <-> (C, N, H, W). */
static void swap_outer(float *dst, const float *src, int a, int b, size_t inner)
{
    for (int i = 0; i < a; i++) {
        for (int j = 0; j < b; j++)
            memcpy(dst + ((size_t)j * a + i) * inner, src + ((size_t)i * b + j) * inner,
                   inner * sizeof(float));
    }
}

int train_forward(struct cnn_trainer *t, const float *images, int n, int last, int training,
                  int update_stats, struct cnn_err *err)
{
    const struct cnn_layer *in = &t->net->layers[0];
    swap_outer(t->tl[0].out, images, n, in->c, (size_t)in->h * (size_t)in->w);
    for (int i = 1; i <= last; i++) {
        int rc = forward_layer(t, i, n, training, update_stats, err);
        if (rc)
            return rc;
    }
    return 0;
}

void train_zero_grads(struct cnn_trainer *t, int n)
{
    memset(t->grad, 0, t->net->n_params * sizeof(float));
    for (int i = 0; i < t->net->n_layers; i++) {
        struct train_layer *tl = &t->tl[i];
        if (tl->dout)
            memset(tl->dout, 0, (size_t)tl->n_out * (size_t)n * sizeof(float));
    }
}

/* Gradient buffer of input k of layer l, or NULL when nothing upstream needs it. */
static float *din(struct cnn_trainer *t, const struct cnn_layer *l, int k)
{
    return t->tl[l->inputs[k]].dout;
}

static void backward_layer(struct cnn_trainer *t, int i, int n)
{
    const struct cnn_model *m = t->net;
    const struct cnn_layer *l = &m->layers[i];
    struct train_layer *tl = &t->tl[i];
    const struct cnn_layer *il = &m->layers[l->inputs[0]];
    const float *in = t->tl[l->inputs[0]].out;
    float *dinp = din(t, l, 0);
    const size_t hw = (size_t)il->h * (size_t)il->w;
    const size_t n_hw = hw * (size_t)n;
    const size_t count = (size_t)il->c * n_hw;
    const float *const P = m->params;
    float *dw = tl->trainable ? t->grad + l->weight_offset[0] : NULL;
    float *db = tl->trainable && l->n_weights > 1 ? t->grad + l->weight_offset[1] : NULL;
    const float *dout = tl->dout;
    if (tl->pre) { /* the layer's fused activation first: dout of the pre-activation */
        size_t out_count = (size_t)tl->n_out * (size_t)n;
        memset(t->tmp, 0, out_count * sizeof(float));
        cnn_act_backward(t->tmp, tl->dout, tl->pre, tl->out, out_count, layer_act(l));
        dout = t->tmp;
    }
    switch (l->kind) {
    case CNN_LAYER_CONV2D:
        if (dinp || dw)
            cnn_conv2d_backward(dinp, dw, l->p.conv.has_bias ? db : NULL, dout, in,
                                P + l->weight_offset[0], t->scratch, &l->p.conv, n);
        break;
    case CNN_LAYER_DENSE:
        if (dinp || dw)
            cnn_dense_backward(dinp, dw, l->p.dense.has_bias ? db : NULL, dout, in,
                               P + l->weight_offset[0], &l->p.dense, n);
        break;
    case CNN_LAYER_MAXPOOL:
        if (dinp)
            cnn_maxpool_backward(dinp, dout, in, &l->p.pool, n);
        break;
    case CNN_LAYER_AVGPOOL:
        if (dinp)
            cnn_avgpool_backward(dinp, dout, &l->p.pool, n);
        break;
    case CNN_LAYER_GLOBAL_AVGPOOL:
        if (dinp)
            cnn_global_avgpool_backward(dinp, dout, (size_t)il->c * (size_t)n, hw);
        break;
    case CNN_LAYER_ACT:
        if (dinp)
            cnn_act_backward(dinp, dout, in, tl->out, count, &l->p.act);
        break;
    case CNN_LAYER_BATCHNORM: {
        const float *gamma = P + l->weight_offset[0];
        if (tl->trainable)
            cnn_batchnorm_train_backward(dinp, dw, db, dout, in, gamma, tl->save_mean,
                                         tl->save_inv_std, il->c, n_hw);
        else if (dinp) /* frozen: ran with its running statistics */
            cnn_batchnorm_eval_backward(dinp, NULL, NULL, dout, in, gamma, P + l->weight_offset[2],
                                        P + l->weight_offset[3], l->p.bn.eps, il->c, n_hw);
        break;
    }
    case CNN_LAYER_DROPOUT:
        if (dinp)
            cnn_dropout_backward(dinp, dout, tl->mask, l->p.dropout_rate, count);
        break;
    case CNN_LAYER_LRN:
        if (dinp)
            cnn_lrn_backward(dinp, dout, in, t->scratch, &l->p.lrn, il->c, n_hw);
        break;
    case CNN_LAYER_ADD:
        for (int k = 0; k < l->n_inputs; k++) {
            float *d = din(t, l, k);
            if (d)
                cnn_grad_accumulate(d, dout, count);
        }
        break;
    case CNN_LAYER_CONCAT: {
        size_t off = 0;
        for (int k = 0; k < l->n_inputs; k++) {
            size_t len = (size_t)m->layers[l->inputs[k]].c * n_hw;
            float *d = din(t, l, k);
            if (d)
                cnn_grad_accumulate(d, dout + off, len);
            off += len;
        }
        break;
    }
    case CNN_LAYER_FLATTEN:
        if (dinp)
            cnn_flatten_backward(dinp, dout, il->c, n, (int)hw);
        break;
    case CNN_LAYER_SOFTMAX:
        if (dinp)
            cnn_softmax_backward(dinp, dout, tl->out, il->c, n);
        break;
    default:
        break;
    }
}

void train_backward(struct cnn_trainer *t, int n)
{
    for (int i = t->loss_layer; i >= 1; i--) {
        if (t->tl[i].needs_grad)
            backward_layer(t, i, n);
    }
}
