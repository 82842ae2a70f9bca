/* The trainer's forward pass over the UNFUSED layer graph, and its buffers: every layer
 * runs as itself (batch norm with batch statistics, dropout active, a layer's own
 * activation as a separate step), keeping each layer's output (and pre-activation when it
 * has a fused activation) for the backward (train_backward.c).
 * DESIGN: with cfg.threads > 1 each layer is split into parts run by a worker team, the
 * way that keeps the maths of one thread: convs over whole images, dense layers over
 * output features, batch norm and pools over channels, elementwise layers over ranges;
 * what cannot split (dropout's generator, LRN, softmax, flatten) runs in part 0. */
#include "grad.h"
#include "grad_simd.h"
#include "layer.h"
#include "model_internal.h"
#include "tensor.h"
#include "train.h"
#include "train_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const struct cnn_act_params *train_layer_act(const struct cnn_layer *l)
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
    const struct cnn_act_params *a = train_layer_act(l);
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

void train_graph_detach(struct cnn_trainer *t)
{
    t->tl = NULL;
    t->grad = t->mom = t->tmp = t->wflip = t->target = t->bn_scale = t->bn_shift = NULL;
    t->workers = NULL;
    t->scratch = t->dw_part = t->du_part = NULL;
    t->part_err = NULL;
    t->parts = 0;
}

int train_graph_alloc(struct cnn_trainer *t, struct cnn_err *err)
{
    const struct cnn_model *m = t->net;
    const size_t N = (size_t)t->cfg.max_batch;
    t->tl = calloc((size_t)m->n_layers, sizeof *t->tl);
    t->grad = alloc_floats(m->n_params);
    t->mom = alloc_floats(m->n_params);
    if (!t->tl || !t->grad || !t->mom)
        goto nomem;
    size_t scratch = 0, biggest = 0, conv_weights = 0, wino_weights = 0;
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
            const struct cnn_conv2d *p = &l->p.conv;
            struct cnn_conv2d q;
            conv_weights = max_size(conv_weights, l->weight_count[0]);
            scratch = max_size(scratch, cnn_conv2d_scratch_floats(p, (int)N));
            scratch = max_size(scratch, cnn_conv2d_backward_scratch_floats(p, (int)N));
            const int wino = !t->cfg.im2col_only;
            if (wino && cnn_conv2d_use_winograd(p)) {
                if (!(tl->wino_u = alloc_floats(cnn_winograd_weights_floats(p))))
                    goto nomem;
                wino_weights = max_size(wino_weights, cnn_winograd_weights_floats(p));
            }
            if (wino && t->tl[l->inputs[0]].needs_grad &&
                cnn_conv2d_backward_winograd_shape(p, &q)) {
                if (!(tl->wino_ub = alloc_floats(cnn_winograd_weights_floats(p))))
                    goto nomem;
                scratch = max_size(scratch, cnn_winograd_scratch_floats(&q, (int)N));
            }
        } else if (l->kind == CNN_LAYER_LRN) {
            scratch = max_size(
                scratch, cnn_lrn_backward_scratch_floats(l->c, (size_t)l->h * (size_t)l->w * N));
        }
    }
    if (scratch == SIZE_MAX)
        goto nomem;
    t->parts = t->cfg.threads > 1 ? t->cfg.threads : 1;
    if (t->parts > 1 && !(t->workers = cnn_workers_create(t->parts, err))) {
        train_graph_free(t);
        return err ? err->code : CNN_ENOMEM;
    }
    t->scratch = calloc((size_t)t->parts, sizeof *t->scratch);
    t->dw_part = calloc((size_t)t->parts, sizeof *t->dw_part);
    t->du_part = calloc((size_t)t->parts, sizeof *t->du_part);
    t->part_err = calloc((size_t)t->parts, sizeof *t->part_err);
    if (!t->scratch || !t->dw_part || !t->du_part || !t->part_err)
        goto nomem;
    for (int k = 0; k < t->parts; k++) {
        if (!(t->scratch[k] = alloc_floats(scratch)))
            goto nomem;
        if (k > 0 && !(t->dw_part[k] = alloc_floats(conv_weights)))
            goto nomem;
        if (wino_weights && !(t->du_part[k] = alloc_floats(wino_weights)))
            goto nomem;
    }
    t->tmp = alloc_floats(biggest);
    t->wflip = alloc_floats(conv_weights);
    t->target = alloc_floats(biggest);
    t->bn_scale = alloc_floats((size_t)max_c);
    t->bn_shift = alloc_floats((size_t)max_c);
    if (!t->tmp || !t->wflip || !t->target || !t->bn_scale || !t->bn_shift)
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
            free(tl->wino_u);
            free(tl->wino_ub);
        }
    }
    cnn_workers_destroy(t->workers);
    for (int k = 0; k < t->parts; k++) {
        if (t->scratch)
            free(t->scratch[k]);
        if (t->dw_part)
            free(t->dw_part[k]);
        if (t->du_part)
            free(t->du_part[k]);
    }
    free(t->scratch);
    free(t->dw_part);
    free(t->du_part);
    free(t->part_err);
    free(t->tl);
    free(t->grad);
    free(t->mom);
    free(t->tmp);
    free(t->wflip);
    free(t->target);
    free(t->bn_scale);
    free(t->bn_shift);
    train_graph_detach(t);
}

static const struct cnn_act_params no_act = {CNN_ACT_NONE, 0.0f, 0.0f};

/* dst = act(src) for n floats; relu (most of the activations) in one vectorised pass: at
 * -O2 the plain loop stays scalar with a branch per value. */
static void act_copy(float *restrict dst, const float *restrict src, size_t n,
                     const struct cnn_act_params *act)
{
    if (act->kind == CNN_ACT_RELU) {
        const grad_v4f zero = grad_splat4(0.0f);
        size_t i = 0;
        for (; i + 4 <= n; i += 4) {
            const grad_v4f v = grad_load4(src + i);
            grad_store4(dst + i, grad_select4(v > zero, v, zero)); /* NaN -> 0 as below */
        }
        for (; i < n; i++)
            dst[i] = src[i] > 0.0f ? src[i] : 0.0f;
        return;
    }
    memcpy(dst, src, n * sizeof(float));
    cnn_act_apply(dst, n, act);
}

/* One layer's forward for a worker team: layer i over n items, part `part` of `parts`. */
struct forward_job {
    struct cnn_trainer *t;
    int i, n, training, update_stats;
};

/* Part `part` of the layer: see the DESIGN note at the top for how each kind splits. */
static int forward_part(const struct forward_job *job, int part, int parts, struct cnn_err *err)
{
    struct cnn_trainer *t = job->t;
    const int i = job->i, n = job->n;
    const struct cnn_model *m = t->net;
    const struct cnn_layer *l = &m->layers[i];
    struct train_layer *tl = &t->tl[i];
    const struct cnn_layer *il = &m->layers[l->inputs[0]];
    const float *in = t->tl[l->inputs[0]].out;
    float *const P = m->params;
    float *dst = tl->pre ? tl->pre : tl->out;
    const size_t hw = (size_t)il->h * (size_t)il->w;
    const size_t n_hw = hw * (size_t)n;
    const size_t count = (size_t)il->c * n_hw;
    size_t lo, hi;
    switch (l->kind) {
    case CNN_LAYER_CONV2D: {
        struct cnn_conv2d q = l->p.conv;
        const float *b = q.has_bias ? P + l->weight_offset[1] : NULL;
        q.act = no_act;
        if (cnn_conv2d_is_depthwise(&q)) {
            if (part == 0)
                cnn_conv2d_forward(dst, in, P + l->weight_offset[0], b, t->scratch[0], &q, n);
            break;
        }
        cnn_part_range((size_t)n, part, parts, &lo, &hi); /* whole images */
        if (tl->wino_u) {
            const int th = (q.oh + 1) / 2; /* tile rows per image */
            cnn_conv2d_winograd_rows(dst, in, tl->wino_u, b, t->scratch[part], &q, n,
                                     (int)lo * th, (int)hi * th, 0);
            break;
        }
        cnn_conv2d_forward_rows(dst, in, P + l->weight_offset[0], b, t->scratch[part], &q, n,
                                (int)lo * q.oh, (int)hi * q.oh);
        break;
    }
    case CNN_LAYER_DENSE: { /* output features [lo, hi): rows of w, b and out */
        struct cnn_dense q = l->p.dense;
        q.act = no_act;
        cnn_part_range((size_t)q.out, part, parts, &lo, &hi);
        q.out = (int)(hi - lo);
        if (q.out > 0)
            cnn_dense_forward(dst + lo * (size_t)n, in, P + l->weight_offset[0] + lo * (size_t)q.in,
                              q.has_bias ? P + l->weight_offset[1] + lo : NULL, &q, n);
        break;
    }
    case CNN_LAYER_MAXPOOL:
    case CNN_LAYER_AVGPOOL: { /* channels [lo, lo + q.c) */
        const struct cnn_pool2d q = train_pool_part(&l->p.pool, part, parts, &lo);
        const size_t out_chan = (size_t)l->h * l->w * (size_t)n;
        if (q.c == 0)
            break;
        if (l->kind == CNN_LAYER_MAXPOOL)
            cnn_maxpool_forward(dst + lo * out_chan, in + lo * n_hw, &q, n);
        else
            cnn_avgpool_forward(dst + lo * out_chan, in + lo * n_hw, &q, n);
        break;
    }
    case CNN_LAYER_GLOBAL_AVGPOOL:
        cnn_part_range((size_t)il->c * (size_t)n, part, parts, &lo, &hi);
        cnn_global_avgpool_forward(dst + lo, in + lo * hw, hi - lo, hw);
        break;
    case CNN_LAYER_ACT:
        cnn_part_range(count, part, parts, &lo, &hi);
        act_copy(dst + lo, in + lo, hi - lo, &l->p.act);
        break;
    case CNN_LAYER_BATCHNORM: { /* channels [lo, hi) */
        const float *gamma = P + l->weight_offset[0], *beta = P + l->weight_offset[1];
        float *mean = P + l->weight_offset[2], *var = P + l->weight_offset[3];
        cnn_part_range((size_t)il->c, part, parts, &lo, &hi);
        if (hi == lo)
            break;
        if (job->training && tl->trainable) {
            const int upd = job->update_stats;
            return cnn_batchnorm_train_forward(
                dst + lo * n_hw, tl->save_mean + lo, tl->save_inv_std + lo, upd ? mean + lo : NULL,
                upd ? var + lo : NULL, in + lo * n_hw, gamma + lo, beta + lo, l->p.bn.eps,
                t->cfg.bn_momentum, (int)(hi - lo), n_hw, err);
        }
        for (size_t c = lo; c < hi; c++) {
            float sc = gamma[c] / sqrtf(var[c] + l->p.bn.eps);
            t->bn_scale[c] = sc;
            t->bn_shift[c] = beta[c] - mean[c] * sc;
        }
        cnn_scale_shift_forward(dst + lo * n_hw, in + lo * n_hw, t->bn_scale + lo, t->bn_shift + lo,
                                (int)(hi - lo), n_hw, &no_act);
        break;
    }
    case CNN_LAYER_DROPOUT:
        if (job->training) { /* one generator: the masks must not depend on the split */
            if (part == 0)
                cnn_dropout_train_forward(dst, tl->mask, in, l->p.dropout_rate, count, &t->rng);
        } else {
            cnn_part_range(count, part, parts, &lo, &hi);
            memcpy(dst + lo, in + lo, (hi - lo) * sizeof(float));
        }
        break;
    case CNN_LAYER_LRN:
        if (part == 0)
            cnn_lrn_forward(dst, in, &l->p.lrn, il->c, n_hw);
        break;
    case CNN_LAYER_ADD: {
        const float *ins[CNN_MAX_INPUTS];
        cnn_part_range(count, part, parts, &lo, &hi);
        for (int k = 0; k < l->n_inputs; k++)
            ins[k] = t->tl[l->inputs[k]].out + lo;
        cnn_add_forward(dst + lo, ins, l->n_inputs, hi - lo, &no_act);
        break;
    }
    case CNN_LAYER_CONCAT: {
        size_t off = 0;
        for (int k = 0; k < l->n_inputs; k++) {
            const struct cnn_layer *src = &m->layers[l->inputs[k]];
            size_t len = (size_t)src->c * n_hw;
            cnn_part_range(len, part, parts, &lo, &hi);
            memcpy(dst + off + lo, t->tl[l->inputs[k]].out + lo, (hi - lo) * sizeof(float));
            off += len;
        }
        break;
    }
    case CNN_LAYER_FLATTEN:
        if (part == 0)
            cnn_flatten_forward(dst, in, il->c, n, (int)hw);
        break;
    case CNN_LAYER_SOFTMAX:
        if (part == 0)
            cnn_softmax_forward(dst, in, il->c, n);
        break;
    default:
        return cnn_err_set(err, CNN_EINVAL, "train: layer %s has unknown kind %d", l->name,
                           (int)l->kind);
    }
    return 0;
}

static void forward_work(void *ctx, int part, int parts)
{
    const struct forward_job *job = ctx;
    struct cnn_err *err = &job->t->part_err[part];
    err->code = 0;
    forward_part(job, part, parts, err);
}

/* The layer's fused activation, pre -> out, over element ranges. */
static void fused_act_work(void *ctx, int part, int parts)
{
    const struct forward_job *job = ctx;
    const struct cnn_layer *l = &job->t->net->layers[job->i];
    const struct train_layer *tl = &job->t->tl[job->i];
    size_t lo, hi;
    cnn_part_range((size_t)tl->n_out * (size_t)job->n, part, parts, &lo, &hi);
    act_copy(tl->out + lo, tl->pre + lo, hi - lo, train_layer_act(l));
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
        struct forward_job job = {t, i, n, training, update_stats};
        const struct cnn_layer *l = &t->net->layers[i];
        const float *w = t->net->params + l->weight_offset[0];
        if (t->tl[i].wino_u) /* this step's weights, for the forward and the backward */
            cnn_winograd_transform_weights(t->tl[i].wino_u, w, &l->p.conv);
        if (t->tl[i].wino_ub && training)
            cnn_conv2d_backward_winograd_weights(t->tl[i].wino_ub, t->wflip, w, &l->p.conv);
        cnn_workers_run(t->workers, forward_work, &job);
        for (int k = 0; k < t->parts; k++) {
            if (t->part_err[k].code) {
                if (err)
                    *err = t->part_err[k];
                return t->part_err[k].code;
            }
        }
        if (t->tl[i].pre)
            cnn_workers_run(t->workers, fused_act_work, &job);
    }
    return 0;
}
