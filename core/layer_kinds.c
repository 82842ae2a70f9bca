/* The table of layer kinds: finds the row of each kind (the rows live in layer_<kind>.c),
 * kind and activation names, and the checks and helpers the rows share. */
#include "layer_kind.h"

#include "tensor.h"

#include <math.h>

extern const struct cnn_layer_kind_ops cnn_kind_input, cnn_kind_conv2d, cnn_kind_dense,
    cnn_kind_maxpool, cnn_kind_avgpool, cnn_kind_global_avgpool, cnn_kind_act,
    cnn_kind_batchnorm, cnn_kind_dropout, cnn_kind_lrn, cnn_kind_add, cnn_kind_concat,
    cnn_kind_flatten, cnn_kind_softmax, cnn_kind_global_maxpool, cnn_kind_prelu,
    cnn_kind_scale_shift, cnn_kind_pad, cnn_kind_log_softmax, cnn_kind_reshape,
    cnn_kind_transpose;

/* One case per kind and no default: -Wswitch names a kind without a row. */
const struct cnn_layer_kind_ops *cnn_layer_kind_ops(enum cnn_layer_kind kind)
{
    switch (kind) {
    case CNN_LAYER_INPUT:
        return &cnn_kind_input;
    case CNN_LAYER_CONV2D:
        return &cnn_kind_conv2d;
    case CNN_LAYER_DENSE:
        return &cnn_kind_dense;
    case CNN_LAYER_MAXPOOL:
        return &cnn_kind_maxpool;
    case CNN_LAYER_AVGPOOL:
        return &cnn_kind_avgpool;
    case CNN_LAYER_GLOBAL_AVGPOOL:
        return &cnn_kind_global_avgpool;
    case CNN_LAYER_ACT:
        return &cnn_kind_act;
    case CNN_LAYER_BATCHNORM:
        return &cnn_kind_batchnorm;
    case CNN_LAYER_DROPOUT:
        return &cnn_kind_dropout;
    case CNN_LAYER_LRN:
        return &cnn_kind_lrn;
    case CNN_LAYER_ADD:
        return &cnn_kind_add;
    case CNN_LAYER_CONCAT:
        return &cnn_kind_concat;
    case CNN_LAYER_FLATTEN:
        return &cnn_kind_flatten;
    case CNN_LAYER_SOFTMAX:
        return &cnn_kind_softmax;
    case CNN_LAYER_GLOBAL_MAXPOOL:
        return &cnn_kind_global_maxpool;
    case CNN_LAYER_PRELU:
        return &cnn_kind_prelu;
    case CNN_LAYER_SCALE_SHIFT:
        return &cnn_kind_scale_shift;
    case CNN_LAYER_PAD:
        return &cnn_kind_pad;
    case CNN_LAYER_LOG_SOFTMAX:
        return &cnn_kind_log_softmax;
    case CNN_LAYER_RESHAPE:
        return &cnn_kind_reshape;
    case CNN_LAYER_TRANSPOSE:
        return &cnn_kind_transpose;
    case CNN_LAYER_KIND_COUNT:
        break;
    }
    return NULL;
}

const char *cnn_layer_kind_name(enum cnn_layer_kind kind)
{
    const struct cnn_layer_kind_ops *k = cnn_layer_kind_ops(kind);
    return k ? k->name : "unknown";
}

const char *cnn_act_name(enum cnn_act kind)
{
    static const char *const names[CNN_ACT_COUNT] = {
        [CNN_ACT_NONE] = "none",       [CNN_ACT_RELU] = "relu",
        [CNN_ACT_LEAKY_RELU] = "leaky_relu", [CNN_ACT_CLIP] = "clip",
        [CNN_ACT_SIGMOID] = "sigmoid", [CNN_ACT_TANH] = "tanh",
        [CNN_ACT_HARD_SIGMOID] = "hard_sigmoid", [CNN_ACT_HARD_SWISH] = "hard_swish",
    };
    return (int)kind >= 0 && kind < CNN_ACT_COUNT ? names[kind] : "unknown";
}

int cnn_act_check(const struct cnn_act_params *a, const char *who, struct cnn_err *err)
{
    if ((int)a->kind < 0 || a->kind >= CNN_ACT_COUNT)
        return cnn_err_set(err, CNN_EINVAL, "%s: unknown activation %d", who,
                           (int)a->kind);
    if (!isfinite(a->alpha) || !isfinite(a->beta))
        return cnn_err_set(err, CNN_EINVAL, "%s: activation parameter not finite", who);
    if (a->kind == CNN_ACT_CLIP && a->alpha > a->beta)
        return cnn_err_set(err, CNN_EINVAL, "%s: clip min %g > max %g", who,
                           (double)a->alpha, (double)a->beta);
    return 0;
}

int cnn_layer_add_slot(struct cnn_layer *l, int ndims, const int *d, struct cnn_err *err)
{
    size_t count;
    const int s = l->n_weights;
    if (s >= CNN_MAX_WEIGHTS_PER_LAYER || ndims < 1 || ndims > CNN_MAX_WEIGHT_DIMS)
        return cnn_err_set(err, CNN_EINVAL, "layer %s: bad weight slot %d", l->name, s);
    if (cnn_dims_count(d, ndims, &count) || count > CNN_MAX_IMAGE_FLOATS)
        return cnn_err_set(err, CNN_ELIMIT, "layer %s: %s weights too large", l->name,
                           cnn_layer_kind_name(l->kind));
    l->weight_ndims[s] = ndims;
    for (int k = 0; k < ndims; k++)
        l->weight_dims[s][k] = d[k];
    l->weight_count[s] = count;
    l->n_weights++;
    return 0;
}

int cnn_layer_same_shape(const struct cnn_model *m, struct cnn_layer *l)
{
    const struct cnn_layer *in = cnn_layer_input(m, l, 0);
    l->c = in->c, l->h = in->h, l->w = in->w;
    return 0;
}
