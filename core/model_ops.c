/* The compiled plan described op by op (model_ops.h): covered layers, kernel variant and
 * FLOPs, read from the ops and alias table compile left behind. */
#include "model_ops.h"

#include "conv_direct.h"
#include "layer.h"
#include "model_internal.h"

int cnn_model_op_count(const struct cnn_model *m)
{
    return m->compiled ? m->n_ops : 0;
}

static const char *conv_variant(const struct cnn_op *op)
{
    if (op->u && op->u_packed)
        return op->wino == 4 ? "winograd F4 packed" : "winograd F2 packed";
    if (op->u)
        return op->wino == 4 ? "winograd F4" : "winograd F2";
    if (op->wd)
        return op->pool.kh ? "direct+maxpool" : "direct";
    if (cnn_conv2d_is_depthwise(&op->conv))
        return "depthwise";
    if (cnn_conv2d_is_pointwise(&op->conv))
        return op->wp ? "pointwise packed" : "pointwise GEMM";
    if (op->conv.kh == 1 && op->conv.kw == 1)
        return op->wp ? "strided 1x1 packed" : "strided 1x1 GEMM";
    return op->wp ? "im2col packed" : "im2col GEMM";
}

static const char *variant(const struct cnn_op *op)
{
    switch (op->kind) {
    case CNN_LAYER_CONV2D:
        return conv_variant(op);
    case CNN_LAYER_DENSE:
        return "GEMM";
    case CNN_LAYER_BATCHNORM:
        return "scale-shift";
    case CNN_LAYER_INPUT:
    case CNN_LAYER_MAXPOOL:
    case CNN_LAYER_AVGPOOL:
    case CNN_LAYER_GLOBAL_AVGPOOL:
    case CNN_LAYER_ACT:
    case CNN_LAYER_DROPOUT:
    case CNN_LAYER_LRN:
    case CNN_LAYER_ADD:
    case CNN_LAYER_CONCAT:
    case CNN_LAYER_FLATTEN:
    case CNN_LAYER_SOFTMAX:
    case CNN_LAYER_GLOBAL_MAXPOOL:
    case CNN_LAYER_PRELU:
    case CNN_LAYER_SCALE_SHIFT:
    case CNN_LAYER_PAD:
    case CNN_LAYER_LOG_SOFTMAX:
    case CNN_LAYER_RESHAPE:
    case CNN_LAYER_TRANSPOSE:
    case CNN_LAYER_KIND_COUNT:
        break;
    }
    return "-";
}

/* Whether layer i is on op k's fused chain: op->out back to op->layer through inputs[0],
 * except at a fused residual add, whose residual (op->inputs[1]) is another op's value. */
static int on_chain(const struct cnn_model *m, const struct cnn_op *op, int i)
{
    for (int j = op->out;;) {
        if (j == i)
            return 1;
        if (j == op->layer || j <= 0)
            return 0;
        const struct cnn_layer *l = &m->layers[j];
        j = l->inputs[0];
        if (op->res && l->kind == CNN_LAYER_ADD && m->alias_of[j] == op->inputs[1])
            j = l->inputs[1];
    }
}

/* Whether op k covers layer i (i >= op->layer): its chain or an alias of its output. */
static int covers(const struct cnn_model *m, const struct cnn_op *op, int i)
{
    if (m->alias_of[i] >= 0 && m->alias_of[i] != i)
        return m->alias_of[i] == op->out;
    return i <= op->out && on_chain(m, op, i);
}

int cnn_model_op_layers(const struct cnn_model *m, int k, int *layers, int max)
{
    const struct cnn_op *op = &m->ops[k];
    int n = 0;
    for (int i = op->layer; i < m->n_layers; i++) {
        if (!covers(m, op, i))
            continue;
        if (n < max)
            layers[n] = i;
        n++;
    }
    return n;
}

void cnn_model_op_info(const struct cnn_model *m, int k, struct cnn_op_info *out)
{
    const struct cnn_op *op = &m->ops[k];
    const struct cnn_layer *l = &m->layers[op->out];
    out->kind = op->kind;
    out->variant = variant(op);
    out->layer = op->layer;
    out->out = op->out;
    out->c = l->c, out->h = l->h, out->w = l->w;
    out->flops = 0;
    for (int i = op->layer; i < m->n_layers; i++) {
        if (!covers(m, op, i))
            continue;
        struct cnn_layer_info li;
        cnn_model_layer_info(m, i, &li);
        out->flops += li.flops;
    }
}
