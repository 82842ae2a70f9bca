/* The trainer's forward pass over the UNFUSED layer graph, and its buffers: every layer
 * runs as itself (batch norm with batch statistics, dropout active, a layer's own
 * activation as a separate step), keeping each layer's output (and pre-activation when it
 * has a fused activation) for the backward (train_backward.c).  Each kind's forward part is
 * its row's train_forward (layer_kind.h, layer_<kind>.c).
 * DESIGN: with cfg.threads > 1 each layer is split into parts run by a worker team, the
 * way that keeps the maths of one thread: convs over whole images, dense layers over
 * output features, batch norm and pools over channels, elementwise layers over ranges;
 * what cannot split (dropout's generator, LRN, softmax, flatten) runs in part 0. */
#include "grad.h"
#include "grad_simd.h"
#include "layer.h"
#include "layer_kind.h"
#include "model_internal.h"
#include "tensor.h"
#include "train.h"
#include "train_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const struct cnn_act_params *train_layer_act(const struct cnn_layer *l)
{
    const struct cnn_layer_kind_ops *k = cnn_layer_kind_ops(l->kind);
    return k->fused_act ? k->fused_act(l) : NULL;
}

static int has_fused_act(const struct cnn_layer *l)
{
    const struct cnn_act_params *a = train_layer_act(l);
    return a && a->kind != CNN_ACT_NONE;
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

/* Sets relu_fused on each trainable batch norm (no fused activation of its own, not the
 * loss layer) whose output feeds only a relu right after it. */
static void mark_relu_fused(struct cnn_trainer *t)
{
    const struct cnn_model *m = t->net;
    for (int i = 1; i + 1 < m->n_layers && !t->cfg.unfused; i++) {
        const struct cnn_layer *l = &m->layers[i], *r = &m->layers[i + 1];
        if (l->kind != CNN_LAYER_BATCHNORM || !t->buf.tl[i].trainable || t->buf.tl[i].pre ||
            i == t->loss_layer || r->kind != CNN_LAYER_ACT || r->p.act.kind != CNN_ACT_RELU ||
            r->n_inputs != 1 || r->inputs[0] != i || t->buf.tl[i + 1].pre)
            continue;
        int consumers = 0;
        for (int j = i + 1; j < m->n_layers; j++)
            for (int k = 0; k < m->layers[j].n_inputs; k++)
                consumers += m->layers[j].inputs[k] == i;
        t->buf.tl[i].relu_fused = consumers == 1;
    }
}

int train_graph_alloc(struct cnn_trainer *t, struct cnn_err *err)
{
    const struct cnn_model *m = t->net;
    const size_t N = (size_t)t->cfg.max_batch;
    t->buf.tl = calloc((size_t)m->n_layers, sizeof *t->buf.tl);
    t->buf.n_tl = t->buf.tl ? m->n_layers : 0;
    t->buf.grad = alloc_floats(m->n_params);
    t->buf.mom = alloc_floats(m->n_params);
    if (!t->buf.tl || !t->buf.grad || !t->buf.mom)
        goto nomem;
    size_t biggest = 0;
    struct train_sizes sz = {.max_c = 1};
    for (int i = 0; i < m->n_layers; i++) {
        const struct cnn_layer *l = &m->layers[i];
        struct train_layer *tl = &t->buf.tl[i];
        tl->n_out = l->c * l->h * l->w;
        tl->trainable = cnn_layer_kind_ops(l->kind)->learned_slots > 0 && i > t->freeze_idx;
        if (i == 0) {
            tl->needs_grad = t->cfg.input_grad;
        } else {
            tl->needs_grad = tl->trainable;
            for (int k = 0; k < l->n_inputs; k++)
                tl->needs_grad |= t->buf.tl[l->inputs[k]].needs_grad;
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
        const struct cnn_layer_kind_ops *k = cnn_layer_kind_ops(l->kind);
        if (k->train_alloc && k->train_alloc(t, i, &sz))
            goto nomem;
    }
    if (sz.scratch == SIZE_MAX)
        goto nomem;
    mark_relu_fused(t);
    t->buf.parts = t->cfg.threads > 1 ? t->cfg.threads : 1;
    if (t->buf.parts > 1 && !(t->buf.workers = cnn_workers_create(t->buf.parts, err))) {
        train_graph_free(&t->buf);
        return err ? err->code : CNN_ENOMEM;
    }
    t->buf.scratch = calloc((size_t)t->buf.parts, sizeof *t->buf.scratch);
    t->buf.dw_part = calloc((size_t)t->buf.parts, sizeof *t->buf.dw_part);
    t->buf.du_part = calloc((size_t)t->buf.parts, sizeof *t->buf.du_part);
    t->buf.part_err = calloc((size_t)t->buf.parts, sizeof *t->buf.part_err);
    if (!t->buf.scratch || !t->buf.dw_part || !t->buf.du_part || !t->buf.part_err)
        goto nomem;
    for (int k = 0; k < t->buf.parts; k++) {
        if (!(t->buf.scratch[k] = alloc_floats(sz.scratch)))
            goto nomem;
        if (k > 0 && !(t->buf.dw_part[k] = alloc_floats(sz.conv_weights)))
            goto nomem;
        if (sz.wino_weights && !(t->buf.du_part[k] = alloc_floats(sz.wino_weights)))
            goto nomem;
    }
    t->buf.tmp = alloc_floats(biggest);
    t->buf.wflip = alloc_floats(sz.conv_weights);
    t->buf.target = alloc_floats(biggest);
    t->buf.bn_scale = alloc_floats((size_t)sz.max_c);
    t->buf.bn_shift = alloc_floats((size_t)sz.max_c);
    if (!t->buf.tmp || !t->buf.wflip || !t->buf.target || !t->buf.bn_scale || !t->buf.bn_shift)
        goto nomem;
    return 0;
nomem:
    train_graph_free(&t->buf);
    return cnn_err_set(err, CNN_ENOMEM, "train: out of memory for batch %d", t->cfg.max_batch);
}

void train_graph_free(struct train_bufs *b)
{
    for (int i = 0; i < b->n_tl; i++) {
        struct train_layer *tl = &b->tl[i];
        free(tl->out);
        free(tl->pre);
        free(tl->dout);
        free(tl->save_mean);
        free(tl->save_inv_std);
        free(tl->mask);
        free(tl->wino_u);
        free(tl->wino_ub);
    }
    cnn_workers_destroy(b->workers);
    for (int k = 0; k < b->parts; k++) {
        if (b->scratch)
            free(b->scratch[k]);
        if (b->dw_part)
            free(b->dw_part[k]);
        if (b->du_part)
            free(b->du_part[k]);
    }
    free(b->scratch);
    free(b->dw_part);
    free(b->du_part);
    free(b->part_err);
    free(b->tl);
    free(b->grad);
    free(b->mom);
    free(b->tmp);
    free(b->wflip);
    free(b->target);
    free(b->bn_scale);
    free(b->bn_shift);
    *b = (struct train_bufs){0};
}

const struct cnn_act_params train_no_act = {CNN_ACT_NONE, 0.0f, 0.0f};

/* dst = act(src) for n floats; relu (most of the activations) in one vectorised pass: at
 * -O2 the plain loop stays scalar with a branch per value. */
void train_act_copy(float *restrict dst, const float *restrict src, size_t n,
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

static void forward_work(void *ctx, int part, int parts)
{
    const struct train_fwd_job *job = ctx;
    struct cnn_err *err = &job->t->buf.part_err[part];
    err->code = 0;
    cnn_layer_kind_ops(job->t->net->layers[job->i].kind)->train_forward(job, part, parts, err);
}

/* The layer's fused activation, pre -> out, over element ranges. */
static void fused_act_work(void *ctx, int part, int parts)
{
    const struct train_fwd_job *job = ctx;
    const struct cnn_layer *l = &job->t->net->layers[job->i];
    const struct train_layer *tl = &job->t->buf.tl[job->i];
    size_t lo, hi;
    cnn_part_range((size_t)tl->n_out * (size_t)job->n, part, parts, &lo, &hi);
    train_act_copy(tl->out + lo, tl->pre + lo, hi - lo, train_layer_act(l));
}

/* A relu_fused batch norm (layer job->i) over channels: its batch statistics, and the
 * relu's output (layer i + 1) written straight from them. */
static void bn_relu_forward_work(void *ctx, int part, int parts)
{
    const struct train_fwd_job *job = ctx;
    struct cnn_trainer *t = job->t;
    struct cnn_err *err = &t->buf.part_err[part];
    const struct train_view v = train_view(t, job->i, job->n);
    const float *gamma = v.P + v.l->weight_offset[0], *beta = v.P + v.l->weight_offset[1];
    float *mean = v.P + v.l->weight_offset[2], *var = v.P + v.l->weight_offset[3];
    const int upd = job->update_stats;
    size_t lo, hi;
    err->code = 0;
    cnn_part_range((size_t)v.il->c, part, parts, &lo, &hi);
    if (hi > lo)
        cnn_batchnorm_relu_train_forward(
            t->buf.tl[job->i + 1].out + lo * v.n_hw, v.tl->save_mean + lo,
            v.tl->save_inv_std + lo, upd ? mean + lo : NULL, upd ? var + lo : NULL,
            v.in + lo * v.n_hw, gamma + lo, beta + lo, v.l->p.bn.eps, t->cfg.bn_momentum,
            (int)(hi - lo), v.n_hw, err);
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
    swap_outer(t->buf.tl[0].out, images, n, in->c, (size_t)in->h * (size_t)in->w);
    t->buf.fused = training;
    for (int i = 1; i <= last; i++) {
        struct train_fwd_job job = {t, i, n, training, update_stats};
        const struct cnn_layer_kind_ops *kind = cnn_layer_kind_ops(t->net->layers[i].kind);
        const int pair = training && t->buf.tl[i].relu_fused && i < last;
        if (kind->train_prepare)
            kind->train_prepare(t, i, training);
        cnn_workers_run(t->buf.workers, pair ? bn_relu_forward_work : forward_work, &job);
        i += pair; /* the relu is done */
        for (int k = 0; k < t->buf.parts; k++) {
            if (t->buf.part_err[k].code) {
                if (err)
                    *err = t->buf.part_err[k];
                return t->buf.part_err[k].code;
            }
        }
        if (t->buf.tl[i].pre)
            cnn_workers_run(t->buf.workers, fused_act_work, &job);
    }
    return 0;
}
