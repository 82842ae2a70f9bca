/* Model copies for the trainer: its own mutable graph from a loaded model (create), the
 * graph with a resized head (replace_head) and the compiled immutable result (export).
 * All go through model.h's builder, so every copy gets the same shape checks. */
#include "model.h"
#include "model_internal.h"
#include "train.h"
#include "train_internal.h"

#include <stdlib.h>
#include <string.h>

static int copy_labels(struct cnn_model *dst, const struct cnn_model *src, struct cnn_err *err)
{
    if (!src->labels || src->n_labels <= 0)
        return 0;
    const char **names = malloc((size_t)src->n_labels * sizeof *names);
    if (!names)
        return cnn_err_set(err, CNN_ENOMEM, "train: out of memory");
    for (int i = 0; i < src->n_labels; i++)
        names[i] = src->labels[i];
    int rc = cnn_model_set_labels(dst, names, src->n_labels, err);
    free(names);
    return rc;
}

int train_copy_model(const struct cnn_model *src, int head, int head_out, struct cnn_model **out,
                     struct cnn_err *err)
{
    *out = NULL;
    struct cnn_model *m = cnn_model_create(&src->pp, err);
    if (!m)
        return err ? err->code : CNN_ENOMEM;
    int rc = 0;
    for (int i = 1; i < src->n_layers; i++) {
        const struct cnn_layer *l = &src->layers[i];
        struct cnn_layer_desc d = {
            .kind = l->kind, .name = l->name, .n_inputs = l->n_inputs, .inputs = l->inputs};
        memcpy(&d.p, &l->p, sizeof d.p);
        if (i == head)
            d.p.dense.out = head_out;
        rc = cnn_model_add(m, &d, err);
        if (rc < 0)
            goto fail;
    }
    if ((rc = cnn_model_alloc_params(m, err)) != 0)
        goto fail;
    for (int i = 1; i < src->n_layers; i++) {
        const struct cnn_layer *s = &src->layers[i];
        const struct cnn_layer *d = &m->layers[i];
        for (int k = 0; k < s->n_weights && k < d->n_weights; k++) {
            if (s->weight_count[k] == d->weight_count[k])
                memcpy(m->params + d->weight_offset[k], src->params + s->weight_offset[k],
                       s->weight_count[k] * sizeof(float));
        }
    }
    if (head <= 0 && (rc = copy_labels(m, src, err)) != 0)
        goto fail;
    if (src->meta && (rc = cnn_model_set_meta(m, src->meta, err)) != 0)
        goto fail;
    *out = m;
    return 0;
fail:
    cnn_model_destroy(m);
    return rc;
}

int cnn_trainer_export(const struct cnn_trainer *t, const char *meta_lineage,
                       struct cnn_model **out, struct cnn_err *err)
{
    *out = NULL;
    struct cnn_model *m;
    int rc = train_copy_model(t->net, 0, 0, &m, err);
    if (rc)
        return rc;
    if (meta_lineage && (rc = cnn_model_set_meta(m, meta_lineage, err)) != 0)
        goto fail;
    if ((rc = cnn_model_compile(m, err)) != 0)
        goto fail;
    *out = m;
    return 0;
fail:
    cnn_model_destroy(m);
    return rc;
}
