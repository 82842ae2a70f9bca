/* The trainer's life cycle and step API: config checks, the mutable copy of a model,
 * head replacement, one SGD step, evaluation and the accessors.  The graph passes are in
 * train_graph.c, the optimizer in train_sgd.c, model copies and export in train_export.c. */
#include "train.h"

#include "grad.h"
#include "model_internal.h"
#include "train_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cnn_train_config_default(struct cnn_train_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->lr = 0.01f;
    cfg->momentum = 0.9f;
    cfg->schedule = CNN_LR_CONSTANT;
    cfg->step_epochs = 1;
    cfg->step_gamma = 0.1f;
    cfg->steps_per_epoch = 1;
    cfg->loss = CNN_LOSS_XENT;
    cfg->max_batch = 32;
    cfg->bn_momentum = 0.1f;
}

static int check_config(const struct cnn_train_config *c, struct cnn_err *err)
{
    if (!(c->lr > 0.0f) || !isfinite(c->lr))
        return cnn_err_set(err, CNN_EINVAL, "train: learning rate must be > 0");
    if (!(c->momentum >= 0.0f && c->momentum < 1.0f))
        return cnn_err_set(err, CNN_EINVAL, "train: momentum must be in [0, 1)");
    if (c->threads < 0 || c->threads > 256)
        return cnn_err_set(err, CNN_EINVAL, "train: threads must be in 0..256");
    if (c->nesterov && c->momentum == 0.0f)
        return cnn_err_set(err, CNN_EINVAL, "train: Nesterov needs momentum > 0");
    if (!(c->weight_decay >= 0.0f) || !isfinite(c->weight_decay))
        return cnn_err_set(err, CNN_EINVAL, "train: weight decay must be >= 0");
    if (c->steps_per_epoch < 1)
        return cnn_err_set(err, CNN_EINVAL, "train: steps_per_epoch must be >= 1");
    if (c->warmup_steps < 0)
        return cnn_err_set(err, CNN_EINVAL, "train: warmup_steps must be >= 0");
    switch (c->schedule) {
    case CNN_LR_CONSTANT:
        break;
    case CNN_LR_STEP:
        if (c->step_epochs < 1 || !(c->step_gamma > 0.0f && c->step_gamma <= 1.0f))
            return cnn_err_set(err, CNN_EINVAL,
                               "train: step schedule needs step_epochs >= 1, gamma in (0, 1]");
        break;
    case CNN_LR_COSINE:
        if (c->total_steps <= c->warmup_steps)
            return cnn_err_set(err, CNN_EINVAL,
                               "train: cosine schedule needs total_steps (%ld) > warmup (%ld)",
                               c->total_steps, c->warmup_steps);
        break;
    default:
        return cnn_err_set(err, CNN_EINVAL, "train: unknown schedule %d", (int)c->schedule);
    }
    if (c->loss != CNN_LOSS_XENT && c->loss != CNN_LOSS_MSE)
        return cnn_err_set(err, CNN_EINVAL, "train: unknown loss %d", (int)c->loss);
    if (c->max_batch < 1 || c->max_batch > 65536)
        return cnn_err_set(err, CNN_EINVAL, "train: max batch %d out of range 1..65536",
                           c->max_batch);
    if (!(c->bn_momentum >= 0.0f && c->bn_momentum <= 1.0f))
        return cnn_err_set(err, CNN_EINVAL, "train: bn_momentum must be in [0, 1]");
    return 0;
}

/* The loss reads the logits before a final softmax over the classes ((K,1,1)) for
 * cross-entropy. */
static int pick_loss_layer(const struct cnn_trainer *t)
{
    const struct cnn_model *m = t->net;
    int last = m->n_layers - 1;
    const struct cnn_layer *l = &m->layers[last];
    if (t->cfg.loss == CNN_LOSS_XENT && l->kind == CNN_LAYER_SOFTMAX && l->inputs[0] > 0 &&
        l->h == 1 && l->w == 1 && l->p.sm.span == CNN_SOFTMAX_CHANNELS)
        return l->inputs[0];
    return last;
}

/* (Re)builds the per-layer buffers after t->net or the freeze point changed. */
static int setup(struct cnn_trainer *t, struct cnn_err *err)
{
    t->loss_layer = pick_loss_layer(t);
    return train_graph_alloc(t, err);
}

struct cnn_trainer *cnn_trainer_create(const struct cnn_model *m,
                                       const struct cnn_train_config *cfg, struct cnn_err *err)
{
    if (!m || !cfg) {
        cnn_err_set(err, CNN_EINVAL, "train: no model or config");
        return NULL;
    }
    if (check_config(cfg, err))
        return NULL;
    if (!m->params || m->n_layers < 2) {
        cnn_err_set(err, CNN_EINVAL, "train: model has no layers or no parameters");
        return NULL;
    }
    struct cnn_trainer *t = calloc(1, sizeof *t);
    if (!t) {
        cnn_err_set(err, CNN_ENOMEM, "train: out of memory");
        return NULL;
    }
    t->cfg = *cfg;
    t->rng = cfg->seed;
    if (cfg->freeze_upto) {
        int f = cnn_model_find_layer(m, cfg->freeze_upto);
        if (f < 0) {
            cnn_err_set(err, CNN_ENOENT, "train: no layer named '%.48s' to freeze",
                        cfg->freeze_upto);
            goto fail;
        }
        t->freeze_idx = f;
    }
    t->cfg.freeze_upto = NULL; /* resolved; the caller's string is not kept */
    if (train_copy_model(m, 0, 0, &t->net, err))
        goto fail;
    if (setup(t, err))
        goto fail;
    return t;
fail:
    cnn_trainer_destroy(t);
    return NULL;
}

void cnn_trainer_destroy(struct cnn_trainer *t)
{
    if (!t)
        return;
    train_graph_free(&t->buf);
    cnn_model_destroy(t->net);
    free(t);
}

/* splitmix64, as model.c uses for initialisation: identical on every platform. */
static uint64_t head_rng(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

int cnn_trainer_replace_head(struct cnn_trainer *t, const char *const *labels, int n,
                             struct cnn_err *err)
{
    const struct cnn_model *old = t->net;
    int head = -1;
    for (int i = old->n_layers - 1; i > 0 && head < 0; i--) {
        if (old->layers[i].kind == CNN_LAYER_DENSE)
            head = i;
    }
    if (head < 0)
        return cnn_err_set(err, CNN_EINVAL, "train: model has no dense layer to replace");
    for (int i = head + 1; i < old->n_layers; i++) {
        if (old->layers[i].n_weights > 0)
            return cnn_err_set(err, CNN_EINVAL, "train: layer %s after the head %s carries weights",
                               old->layers[i].name, old->layers[head].name);
    }
    if (n < 1 || n > CNN_MAX_CLASSES)
        return cnn_err_set(err, CNN_EINVAL, "train: %d classes out of range 1..%d", n,
                           CNN_MAX_CLASSES);
    struct cnn_trainer nt = *t;   /* built aside; t changes only on success */
    nt.buf = (struct train_bufs){0}; /* t's buffers stay t's until then */
    int rc = train_copy_model(old, head, n, &nt.net, err);
    if (rc)
        return rc;
    if (labels && (rc = cnn_model_set_labels(nt.net, labels, n, err)) != 0)
        goto fail;
    if ((rc = setup(&nt, err)) != 0)
        goto fail;
    /* keep the momentum of every unchanged slot; the head's starts at 0 */
    for (int i = 1; i < old->n_layers; i++) {
        const struct cnn_layer *a = &old->layers[i], *b = &nt.net->layers[i];
        for (int s = 0; s < a->n_weights && i != head; s++)
            memcpy(nt.buf.mom + b->weight_offset[s], t->buf.mom + a->weight_offset[s],
                   a->weight_count[s] * sizeof(float));
    }
    const struct cnn_layer *h = &nt.net->layers[head];
    float *w = nt.net->params + h->weight_offset[0];
    double scale = sqrt(6.0 / (double)(h->p.dense.in + h->p.dense.out));
    uint64_t s = t->cfg.seed ^ 0x68656164ull; /* "head": apart from the dropout stream */
    for (size_t k = 0; k < h->weight_count[0]; k++) {
        double u = ((double)(head_rng(&s) >> 11) + 0.5) / 9007199254740992.0;
        w[k] = (float)((2.0 * u - 1.0) * scale);
    }
    if (h->n_weights > 1)
        memset(nt.net->params + h->weight_offset[1], 0, h->weight_count[1] * sizeof(float));
    train_graph_free(&t->buf);
    cnn_model_destroy(t->net);
    *t = nt;
    return 0;
fail:
    train_graph_free(&nt.buf);
    cnn_model_destroy(nt.net);
    return rc;
}

static int check_batch(const struct cnn_trainer *t, const float *images, const int *labels,
                       const float *targets, int n, int need_labels, struct cnn_err *err)
{
    if (n < 1 || n > t->cfg.max_batch)
        return cnn_err_set(err, CNN_EINVAL, "train: batch %d outside 1..%d", n, t->cfg.max_batch);
    if (!images)
        return cnn_err_set(err, CNN_EINVAL, "train: no images");
    const struct cnn_layer *in = &t->net->layers[0];
    size_t count = (size_t)in->c * in->h * in->w * (size_t)n;
    for (size_t i = 0; i < count; i++) {
        if (!isfinite(images[i]))
            return cnn_err_set(err, CNN_EINVAL, "train: input value %zu is not finite", i);
    }
    int K = cnn_trainer_num_classes(t);
    if (need_labels && !labels)
        return cnn_err_set(err, CNN_EINVAL, "train: labels are required");
    for (int i = 0; labels && i < n; i++) {
        if (labels[i] < 0 || labels[i] >= K)
            return cnn_err_set(err, CNN_EINVAL, "train: label %d of item %d outside 0..%d",
                               labels[i], i, K - 1);
    }
    if (targets) {
        size_t tc = (size_t)K * (size_t)n;
        for (size_t i = 0; i < tc; i++) {
            if (!isfinite(targets[i]))
                return cnn_err_set(err, CNN_EINVAL, "train: target value %zu is not finite", i);
        }
    }
    return 0;
}

/* Items whose first maximal output (out in (K, N)) is the label. */
static int count_correct(const float *out, const int *labels, int K, int n)
{
    int correct = 0;
    for (int j = 0; j < n; j++) {
        int best = 0;
        for (int k = 1; k < K; k++) {
            if (out[(size_t)k * n + j] > out[(size_t)best * n + j])
                best = k;
        }
        correct += best == labels[j];
    }
    return correct;
}

/* Forward, loss and backward; update_stats moves the BN running statistics. */
static int forward_backward(struct cnn_trainer *t, const float *images, const int *labels,
                            const float *targets, int n, int update_stats,
                            struct cnn_train_stats *st, struct cnn_err *err)
{
    const int mse = t->cfg.loss == CNN_LOSS_MSE;
    if (mse && !targets)
        return cnn_err_set(err, CNN_EINVAL, "train: squared-error loss needs targets");
    int rc = check_batch(t, images, labels, mse ? targets : NULL, n, !mse, err);
    if (rc)
        return rc;
    for (int i = 1; i <= t->loss_layer; i++) {
        const struct cnn_layer *l = &t->net->layers[i];
        if (l->kind == CNN_LAYER_BATCHNORM && t->buf.tl[i].trainable && (long)n * l->h * l->w < 2)
            return cnn_err_set(err, CNN_EINVAL,
                               "train: batch norm %s needs a batch of 2 or more here", l->name);
    }
    if (t->cfg.cancel && atomic_load_explicit(t->cfg.cancel, memory_order_relaxed))
        return cnn_err_set(err, CNN_ECANCELED, "train: cancelled");
    rc = train_forward(t, images, n, t->loss_layer, 1, update_stats, err);
    if (rc)
        return rc;
    train_zero_grads(t, n);
    struct train_layer *ll = &t->buf.tl[t->loss_layer];
    const struct cnn_layer *l = &t->net->layers[t->loss_layer];
    int K = l->c * l->h * l->w;
    float loss;
    int correct = 0;
    if (!mse) {
        rc = cnn_softmax_xent(&loss, ll->dout, &correct, ll->out, labels, K, n, err);
        if (rc)
            return rc;
    } else {
        const size_t hw = (size_t)l->h * l->w;
        /* NCHW targets -> (C, N, H, W) like the activations */
        for (int j = 0; j < n; j++)
            for (int c = 0; c < l->c; c++)
                memcpy(t->buf.target + ((size_t)c * n + j) * hw,
                       targets + ((size_t)j * l->c + c) * hw, hw * sizeof(float));
        size_t count = (size_t)K * n;
        loss = cnn_mse_loss(ll->dout, ll->out, t->buf.target, count);
        if (labels && hw == 1)
            correct = count_correct(ll->out, labels, K, n); /* a classifier's (K, N) */
    }
    if (!isfinite(loss))
        return cnn_err_set(err, CNN_EINVAL, "train: loss is not finite (diverged?)");
    train_backward(t, n);
    if (st) {
        st->loss = loss;
        st->correct = correct;
        st->n = n;
        st->lr = cnn_trainer_lr(t);
        st->step = t->steps;
    }
    return 0;
}

int cnn_trainer_step(struct cnn_trainer *t, const float *images, const int *labels,
                     const float *targets, int n, struct cnn_train_stats *out, struct cnn_err *err)
{
    struct cnn_train_stats st;
    int rc = forward_backward(t, images, labels, targets, n, 1, &st, err);
    if (rc)
        return rc;
    train_sgd_update(t, st.lr);
    t->steps++;
    st.step = t->steps;
    if (out)
        *out = st;
    return 0;
}

int cnn_trainer_compute_gradients(struct cnn_trainer *t, const float *images, const int *labels,
                                  const float *targets, int n, struct cnn_train_stats *out,
                                  struct cnn_err *err)
{
    return forward_backward(t, images, labels, targets, n, 0, out, err);
}

int cnn_trainer_evaluate(struct cnn_trainer *t, const float *images, const int *labels, int n,
                         float *probs, int *correct, struct cnn_err *err)
{
    int rc = check_batch(t, images, labels, NULL, n, 0, err);
    if (rc)
        return rc;
    int last = t->net->n_layers - 1;
    if ((rc = train_forward(t, images, n, last, 0, 0, err)) != 0)
        return rc;
    const struct cnn_layer *l = &t->net->layers[last];
    const float *out = t->buf.tl[last].out;
    const size_t hw = (size_t)l->h * l->w;
    if (probs) {
        for (int j = 0; j < n; j++)
            for (int c = 0; c < l->c; c++)
                memcpy(probs + ((size_t)j * l->c + c) * hw, out + ((size_t)c * n + j) * hw,
                       hw * sizeof(float));
    }
    if (correct) /* a classifier's (K, N) output */
        *correct = labels && hw == 1 ? count_correct(out, labels, l->c, n) : 0;
    return 0;
}

float cnn_trainer_lr(const struct cnn_trainer *t)
{
    return train_lr_at(&t->cfg, t->steps);
}

long cnn_trainer_step_count(const struct cnn_trainer *t)
{
    return t->steps;
}

long cnn_trainer_epoch(const struct cnn_trainer *t)
{
    return t->steps / t->cfg.steps_per_epoch;
}

int cnn_trainer_num_classes(const struct cnn_trainer *t)
{
    return cnn_model_num_classes(t->net);
}

int cnn_trainer_describe(const struct cnn_trainer *t, char *buf, size_t size)
{
    static const char *const sched[] = {"constant", "step", "cosine"};
    const struct cnn_train_config *c = &t->cfg;
    return snprintf(buf, size,
                    "lr=%g\nmomentum=%g\nnesterov=%d\nweight_decay=%g\nschedule=%s\n"
                    "step_epochs=%d\nstep_gamma=%g\nwarmup_steps=%ld\ntotal_steps=%ld\n"
                    "loss=%s\nseed=%llu\nbatch=%d\nbn_momentum=%g\nfrozen_upto=%s\n"
                    "steps=%ld\n",
                    (double)c->lr, (double)c->momentum, c->nesterov, (double)c->weight_decay,
                    sched[c->schedule], c->step_epochs, (double)c->step_gamma, c->warmup_steps,
                    c->total_steps, c->loss == CNN_LOSS_MSE ? "mse" : "xent",
                    (unsigned long long)c->seed, c->max_batch, (double)c->bn_momentum,
                    t->freeze_idx > 0 ? t->net->layers[t->freeze_idx].name : "-", t->steps);
}

float *cnn_trainer_weights(struct cnn_trainer *t, int layer, int slot, size_t *count)
{
    return cnn_model_weights_mut(t->net, layer, slot, count);
}

const float *cnn_trainer_grad(const struct cnn_trainer *t, int layer, int slot, size_t *count)
{
    const struct cnn_model *m = t->net;
    if (layer < 0 || layer >= m->n_layers || slot < 0 || slot >= m->layers[layer].n_weights)
        return NULL;
    if (count)
        *count = m->layers[layer].weight_count[slot];
    return t->buf.grad + m->layers[layer].weight_offset[slot];
}

const float *cnn_trainer_input_grad(const struct cnn_trainer *t)
{
    return t->buf.tl[0].dout;
}
