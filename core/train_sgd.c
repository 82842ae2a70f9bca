/* SGD for the trainer: the learning-rate schedule (constant, step, cosine, linear warm-up)
 * and the update with momentum, Nesterov and weight decay, written as torch.optim.SGD
 * (dampening 0) so that one step matches PyTorch (tests/fixtures/make_sgd_step.py). */
#include "grad_simd.h"
#include "layer_kind.h"
#include "train.h"
#include "train_internal.h"

#include <math.h>

float train_lr_at(const struct cnn_train_config *cfg, long step)
{
    double lr = cfg->lr;
    switch (cfg->schedule) {
    case CNN_LR_CONSTANT:
        break;
    case CNN_LR_STEP: {
        long epoch = step / cfg->steps_per_epoch;
        lr *= pow(cfg->step_gamma, (double)(epoch / cfg->step_epochs));
        break;
    }
    case CNN_LR_COSINE: {
        long span = cfg->total_steps - cfg->warmup_steps;
        long s = step - cfg->warmup_steps;
        if (s < 0)
            s = 0;
        if (s > span)
            s = span;
        lr *= 0.5 * (1.0 + cos(3.14159265358979323846 * (double)s / (double)span));
        break;
    }
    }
    if (step < cfg->warmup_steps)
        lr *= (double)(step + 1) / (double)cfg->warmup_steps;
    return (float)lr;
}

/* One pass over the slot: weight decay, momentum and the step fused, four lanes at a time
 * (grad_simd.h: -O2 keeps the plain loop scalar), the momentum and Nesterov branches taken
 * once per slot; per value the same operations in the same order as torch.optim.SGD. */
static void update_slot(float *restrict w, const float *restrict g, float *restrict buf, size_t n,
                        float lr, float mom, int nesterov, float wd)
{
    const grad_v4f lrv = grad_splat4(lr), mv = grad_splat4(mom), wdv = grad_splat4(wd);
    const int use_mom = mom != 0.0f;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const grad_v4f wi = grad_load4(w + i), d = grad_load4(g + i) + wdv * wi;
        grad_v4f step = d;
        if (use_mom) {
            const grad_v4f b = mv * grad_load4(buf + i) + d;
            grad_store4(buf + i, b);
            step = nesterov ? d + mv * b : b;
        }
        grad_store4(w + i, wi - lrv * step);
    }
    for (; i < n; i++) {
        float d = g[i] + wd * w[i];
        if (use_mom) {
            buf[i] = mom * buf[i] + d;
            d = nesterov ? d + mom * buf[i] : buf[i];
        }
        w[i] -= lr * d;
    }
}

void train_sgd_update(struct cnn_trainer *t, float lr)
{
    const struct cnn_model *m = t->net;
    const struct cnn_train_config *c = &t->cfg;
    for (int i = t->freeze_idx + 1; i < m->n_layers; i++) {
        const struct cnn_layer *l = &m->layers[i];
        const struct cnn_layer_kind_ops *k = cnn_layer_kind_ops(l->kind);
        /* the row says which slots are learned (not BN's running statistics) and which
         * decay (conv/dense weights, never biases or BN params) */
        for (int s = 0; s < k->learned_slots && s < l->n_weights; s++) {
            size_t off = l->weight_offset[s];
            float wd = s < k->decay_slots ? c->weight_decay : 0.0f;
            update_slot(m->params + off, t->buf.grad + off, t->buf.mom + off, l->weight_count[s],
                        lr, c->momentum, c->nesterov, wd);
        }
    }
}
