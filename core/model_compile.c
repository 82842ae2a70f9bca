/* Compiling a model for inference: weight checks, the op list with each value's last
 * reader (which the session uses to reuse buffers) and the helpers each kind's plan step
 * (its row, layer_kind.h) uses for batch-norm folding, residual-add and activation fusion
 * and aliasing of no-op layers (dropout, trivial flatten). */
#include "model.h"
#include "big_block.h"
#include "layer_kind.h"
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
        const struct cnn_layer_kind_ops *k = cnn_layer_kind_ops(l->kind);
        int rc = k->check_weights ? k->check_weights(m, l, err) : 0;
        if (rc)
            return rc;
    }
    return 0;
}

int cnn_compile_sole_consumer(const struct cnn_compile *cs, int layer)
{
    if (layer == cs->m->n_layers - 1 || cs->n_consumers[layer] != 1)
        return -1;
    return cs->consumer[layer];
}

float *cnn_compile_take(struct cnn_compile *cs, size_t n)
{
    float *p = cs->folded + cs->folded_used;
    cs->folded_used += (n + 15) & ~(size_t)15;
    return p;
}

void cnn_compile_fuse_act(struct cnn_compile *cs, struct cnn_op *op, struct cnn_act_params *act)
{
    if (act->kind != CNN_ACT_NONE)
        return;
    int j = cnn_compile_sole_consumer(cs, op->out);
    if (j < 0 || cs->m->layers[j].kind != CNN_LAYER_ACT)
        return;
    *act = cs->m->layers[j].p.act;
    cs->absorbed[j] = 1;
    op->out = j;
}

int cnn_compile_fuse_residual(struct cnn_compile *cs, struct cnn_op *op)
{
    struct cnn_model *m = cs->m;
    const int j = cnn_compile_sole_consumer(cs, op->out);
    if (!cs->fuse_residual || j < 0 || m->layers[j].kind != CNN_LAYER_ADD ||
        m->layers[j].n_inputs != 2 || op->n_inputs != 1)
        return 0;
    const struct cnn_layer *add = &m->layers[j];
    const int other = add->inputs[add->inputs[0] == op->out ? 1 : 0];
    const int res = m->alias_of[other]; /* -1: planned after op (e.g. the later of two convs) */
    if (res < 0 || op->inputs + 1 != m->op_inputs + cs->used_inputs)
        return 0;
    m->op_inputs[cs->used_inputs++] = res; /* the add's two entries are never used */
    op->n_inputs = 2;
    op->res = 1;
    cs->absorbed[j] = 1;
    op->out = j;
    return 1;
}

static size_t folded_bound(const struct cnn_model *m)
{
    size_t n = 0;
    for (int i = 1; i < m->n_layers; i++) {
        const struct cnn_layer_kind_ops *k = cnn_layer_kind_ops(m->layers[i].kind);
        if (k->folded_floats)
            n += k->folded_floats(&m->layers[i]);
    }
    return n ? n : 16;
}

/* Appends the op of layer i (its row fills the kind's part) or makes i an alias. */
static void plan_layer(struct cnn_compile *cs, int i)
{
    struct cnn_model *m = cs->m;
    const struct cnn_layer *l = &m->layers[i];
    const struct cnn_layer_kind_ops *k = cnn_layer_kind_ops(l->kind);
    if (k->is_alias && k->is_alias(m, l)) {
        m->alias_of[i] = m->alias_of[l->inputs[0]];
        return;
    }
    struct cnn_op *op = &m->ops[m->n_ops++];
    op->kind = l->kind;
    op->layer = i;
    op->out = i;
    op->n_inputs = l->n_inputs;
    op->inputs = m->op_inputs + cs->used_inputs;
    for (int j = 0; j < l->n_inputs; j++)
        m->op_inputs[cs->used_inputs++] = m->alias_of[l->inputs[j]];
    if (k->plan)
        k->plan(cs, op, l);
    m->alias_of[op->out] = op->out;
}

/* Each value's last reader; the model output lives to the end. */
static void plan_last_use(struct cnn_model *m)
{
    for (int v = 0; v < m->n_layers; v++)
        m->last_use[v] = -1;
    for (int k = 0; k < m->n_ops; k++) {
        for (int j = 0; j < m->ops[k].n_inputs; j++)
            m->last_use[m->ops[k].inputs[j]] = k;
    }
    m->last_use[m->alias_of[m->n_layers - 1]] = m->n_ops;
}

int cnn_model_compile(struct cnn_model *m, struct cnn_err *err)
{
    return cnn_model_compile_wino(m, 4, err);
}

int cnn_model_compile_wino(struct cnn_model *m, int max_tile, struct cnn_err *err)
{
    return cnn_model_compile_plan(m, max_tile, 1, err);
}

int cnn_model_compile_plan(struct cnn_model *m, int max_tile, int fuse_residual,
                           struct cnn_err *err)
{
    if (m->compiled)
        return cnn_err_set(err, CNN_EINVAL, "model: already compiled");
    if (max_tile != 0 && max_tile != 2 && max_tile != 4)
        return cnn_err_set(err, CNN_EINVAL, "model: Winograd tile %d is not 0, 2 or 4", max_tile);
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
    struct cnn_compile cs = {.m = m, .max_wino = max_tile, .fuse_residual = fuse_residual};
    cs.n_consumers = calloc((size_t)n, sizeof(int));
    cs.consumer = calloc((size_t)n, sizeof(int));
    cs.absorbed = calloc((size_t)n, 1);
    m->ops = calloc((size_t)n, sizeof *m->ops);
    m->alias_of = malloc((size_t)n * sizeof(int));
    m->last_use = malloc((size_t)n * sizeof(int));
    for (int i = 1; i < n; i++)
        total_inputs += m->layers[i].n_inputs;
    m->op_inputs = malloc((size_t)total_inputs * sizeof(int));
    m->folded_bytes = ((folded_bound(m) + 15) & ~(size_t)15) * sizeof(float);
    m->folded = cnn_big_block(m->folded_bytes);
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

    m->n_ops = 0;
    for (int i = 0; i < n; i++)
        m->alias_of[i] = i == 0 ? 0 : -1; /* absorbed layers are set by their op */
    for (int i = 1; i < n; i++) {
        if (!cs.absorbed[i])
            plan_layer(&cs, i);
    }
    plan_last_use(m);
    m->compiled = 1;
    rc = 0;
    goto done;
fail:
    free(m->ops), m->ops = NULL;
    free(m->alias_of), m->alias_of = NULL;
    free(m->last_use), m->last_use = NULL;
    free(m->op_inputs), m->op_inputs = NULL;
    cnn_big_block_free(m->folded, m->folded_bytes), m->folded = NULL;
done:
    free(cs.n_consumers);
    free(cs.consumer);
    free(cs.absorbed);
    return rc;
}
