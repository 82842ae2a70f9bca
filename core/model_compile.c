/* Compiling a model for inference: weight checks, batch-norm folding into the preceding
 * conv, activation fusion, aliasing of no-op layers (dropout, trivial flatten), and the
 * op list with each value's last reader, which the session uses to reuse buffers. */
#include "model.h"
#include "model_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int check_weights(const struct cnn_model *m, struct cnn_err *err)
{
    for (int i = 1; i < m->n_layers; i++) {
        const struct cnn_layer *l = &m->layers[i];
        for (int s = 0; s < l->n_weights; s++) {
            const float *w = m->params + l->weight_offset[s];
            for (size_t k = 0; k < l->weight_count[s]; k++) {
                if (!isfinite(w[k]))
                    return cnn_err_set(err, CNN_EFORMAT,
                                       "layer %s: weight %d[%zu] is not finite (NaN or Inf)",
                                       l->name, s, k);
            }
        }
        if (l->kind == CNN_LAYER_BATCHNORM) {
            const float *var = m->params + l->weight_offset[3];
            for (int c = 0; c < l->c; c++) {
                if (var[c] < 0.0f)
                    return cnn_err_set(err, CNN_EFORMAT,
                                       "layer %s: batchnorm variance of channel %d is negative",
                                       l->name, c);
            }
        }
    }
    return 0;
}

/* BN as y = x * scale + shift, per channel. */
static void bn_scale_shift(const struct cnn_model *m, const struct cnn_layer *bn, float *scale,
                           float *shift)
{
    const float *gamma = m->params + bn->weight_offset[0];
    const float *beta = m->params + bn->weight_offset[1];
    const float *mean = m->params + bn->weight_offset[2];
    const float *var = m->params + bn->weight_offset[3];
    for (int c = 0; c < bn->c; c++) {
        float s = gamma[c] / sqrtf(var[c] + bn->p.bn.eps);
        scale[c] = s;
        shift[c] = beta[c] - mean[c] * s;
    }
}

struct compile_state {
    struct cnn_model *m;
    int *n_consumers;
    int *consumer;   /* one consumer of each layer (the only one when n_consumers == 1) */
    char *absorbed;  /* layer fused into an earlier op */
    float *folded;
    size_t folded_used;
};

/* The single-input layer that alone reads `layer`, or -1. */
static int sole_consumer(const struct compile_state *cs, int layer)
{
    if (layer == cs->m->n_layers - 1 || cs->n_consumers[layer] != 1)
        return -1;
    return cs->consumer[layer];
}

static float *take_folded(struct compile_state *cs, size_t n)
{
    float *p = cs->folded + cs->folded_used;
    cs->folded_used += (n + 15) & ~(size_t)15;
    return p;
}

/* Absorbs a following activation layer into *act when it is the sole consumer. */
static void fuse_act(struct compile_state *cs, struct cnn_op *op, struct cnn_act_params *act)
{
    if (act->kind != CNN_ACT_NONE)
        return;
    int j = sole_consumer(cs, op->out);
    if (j < 0 || cs->m->layers[j].kind != CNN_LAYER_ACT)
        return;
    *act = cs->m->layers[j].p.act;
    cs->absorbed[j] = 1;
    op->out = j;
}

static void plan_conv(struct compile_state *cs, struct cnn_op *op, const struct cnn_layer *l)
{
    const struct cnn_model *m = cs->m;
    op->conv = l->p.conv;
    op->w = m->params + l->weight_offset[0];
    op->b = l->p.conv.has_bias ? m->params + l->weight_offset[1] : NULL;
    int j = sole_consumer(cs, op->out);
    if (j >= 0 && m->layers[j].kind == CNN_LAYER_BATCHNORM && op->conv.act.kind == CNN_ACT_NONE) {
        const struct cnn_layer *bn = &m->layers[j];
        int oc = op->conv.oc;
        size_t per = l->weight_count[0] / (size_t)oc;
        float *w = take_folded(cs, l->weight_count[0]);
        float *b = take_folded(cs, (size_t)oc);
        float *scale = take_folded(cs, (size_t)oc);
        bn_scale_shift(m, bn, scale, b); /* b = shift for now */
        for (int o = 0; o < oc; o++) {
            for (size_t k = 0; k < per; k++)
                w[(size_t)o * per + k] = op->w[(size_t)o * per + k] * scale[o];
            b[o] += (op->b ? op->b[o] : 0.0f) * scale[o];
        }
        op->w = w;
        op->b = b;
        op->conv.has_bias = 1;
        op->conv.act = bn->p.bn.act;
        cs->absorbed[j] = 1;
        op->out = j;
    }
    fuse_act(cs, op, &op->conv.act);
    if (cnn_conv2d_use_winograd(&op->conv)) { /* from the folded weights */
        float *u = take_folded(cs, cnn_winograd_weights_floats(&op->conv));
        cnn_winograd_transform_weights(u, op->w, &op->conv);
        op->u = u;
    }
}

static size_t folded_bound(const struct cnn_model *m)
{
    size_t n = 0;
    for (int i = 1; i < m->n_layers; i++) {
        const struct cnn_layer *l = &m->layers[i];
        if (l->kind == CNN_LAYER_CONV2D) {
            n += l->weight_count[0] + 3 * (size_t)l->p.conv.oc + 48;
            if (cnn_conv2d_use_winograd(&l->p.conv))
                n += cnn_winograd_weights_floats(&l->p.conv) + 16;
        } else if (l->kind == CNN_LAYER_BATCHNORM)
            n += 2 * (size_t)l->c + 32;
    }
    return n ? n : 16;
}

int cnn_model_compile(struct cnn_model *m, struct cnn_err *err)
{
    if (m->compiled)
        return cnn_err_set(err, CNN_EINVAL, "model: already compiled");
    if (!m->params)
        return cnn_err_set(err, CNN_EINVAL, "model: no parameters (alloc or load first)");
    if (m->n_layers < 2)
        return cnn_err_set(err, CNN_EINVAL, "model: no layers after the input");
    if (m->labels && m->n_labels != cnn_model_num_classes(m))
        return cnn_err_set(err, CNN_EFORMAT, "model: %d labels for %d classes", m->n_labels,
                           cnn_model_num_classes(m));
    int rc = check_weights(m, err);
    if (rc)
        return rc;

    int n = m->n_layers, total_inputs = 0;
    struct compile_state cs = {.m = m};
    cs.n_consumers = calloc((size_t)n, sizeof(int));
    cs.consumer = calloc((size_t)n, sizeof(int));
    cs.absorbed = calloc((size_t)n, 1);
    m->ops = calloc((size_t)n, sizeof *m->ops);
    m->alias_of = malloc((size_t)n * sizeof(int));
    m->last_use = malloc((size_t)n * sizeof(int));
    for (int i = 1; i < n; i++)
        total_inputs += m->layers[i].n_inputs;
    m->op_inputs = malloc((size_t)total_inputs * sizeof(int));
    m->folded = aligned_alloc(64, ((folded_bound(m) + 15) & ~(size_t)15) * sizeof(float));
    cs.folded = m->folded;
    if (!cs.n_consumers || !cs.consumer || !cs.absorbed || !m->ops || !m->alias_of ||
        !m->last_use || !m->op_inputs || !m->folded) {
        rc = cnn_err_set(err, CNN_ENOMEM, "model: out of memory compiling");
        goto fail;
    }
    for (int i = 1; i < n; i++) {
        for (int k = 0; k < m->layers[i].n_inputs; k++) {
            int src = m->layers[i].inputs[k];
            cs.n_consumers[src]++;
            cs.consumer[src] = i;
        }
    }

    int used_inputs = 0;
    m->n_ops = 0;
    for (int i = 0; i < n; i++)
        m->alias_of[i] = i == 0 ? 0 : -1; /* absorbed layers are set by their op */
    for (int i = 1; i < n; i++) {
        const struct cnn_layer *l = &m->layers[i];
        if (cs.absorbed[i])
            continue;
        const struct cnn_layer *in = &m->layers[l->inputs[0]];
        if (l->kind == CNN_LAYER_DROPOUT ||
            (l->kind == CNN_LAYER_FLATTEN && in->h == 1 && in->w == 1)) {
            m->alias_of[i] = m->alias_of[l->inputs[0]];
            continue;
        }
        struct cnn_op *op = &m->ops[m->n_ops++];
        op->kind = l->kind;
        op->layer = i;
        op->out = i;
        op->n_inputs = l->n_inputs;
        op->inputs = m->op_inputs + used_inputs;
        for (int k = 0; k < l->n_inputs; k++)
            m->op_inputs[used_inputs++] = m->alias_of[l->inputs[k]];
        switch (l->kind) {
        case CNN_LAYER_CONV2D:
            plan_conv(&cs, op, l);
            break;
        case CNN_LAYER_DENSE:
            op->dense = l->p.dense;
            op->w = m->params + l->weight_offset[0];
            op->b = l->p.dense.has_bias ? m->params + l->weight_offset[1] : NULL;
            fuse_act(&cs, op, &op->dense.act);
            break;
        case CNN_LAYER_BATCHNORM: {
            float *scale = take_folded(&cs, (size_t)l->c);
            float *shift = take_folded(&cs, (size_t)l->c);
            bn_scale_shift(m, l, scale, shift);
            op->w = scale;
            op->b = shift;
            op->act = l->p.bn.act;
            fuse_act(&cs, op, &op->act);
            break;
        }
        case CNN_LAYER_ADD:
            fuse_act(&cs, op, &op->act);
            break;
        case CNN_LAYER_ACT:
            op->act = l->p.act;
            break;
        default:
            break;
        }
        m->alias_of[op->out] = op->out;
    }
    for (int v = 0; v < n; v++)
        m->last_use[v] = -1;
    for (int k = 0; k < m->n_ops; k++) {
        for (int j = 0; j < m->ops[k].n_inputs; j++)
            m->last_use[m->ops[k].inputs[j]] = k;
    }
    m->last_use[m->alias_of[n - 1]] = m->n_ops; /* the model output lives to the end */
    m->compiled = 1;
    rc = 0;
    goto done;
fail:
    free(m->ops), m->ops = NULL;
    free(m->alias_of), m->alias_of = NULL;
    free(m->last_use), m->last_use = NULL;
    free(m->op_inputs), m->op_inputs = NULL;
    free(m->folded), m->folded = NULL;
done:
    free(cs.n_consumers);
    free(cs.consumer);
    free(cs.absorbed);
    return rc;
}
