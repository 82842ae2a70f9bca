/* The compiled plan of a model described op by op, for profilers and tools (cnn bench
 * --profile): which layers each op covers (a conv with its folded batch norm, fused
 * activation and pool, and the no-op layers that alias its output), its kernel variant,
 * output shape and FLOPs.  Read-only; any thread once the model is compiled. */
#ifndef CNN_MODEL_OPS_H
#define CNN_MODEL_OPS_H

#include "model.h"

struct cnn_op_info {
    enum cnn_layer_kind kind; /* of the op's first layer */
    const char *variant;      /* static: "winograd F4", "pointwise GEMM", ... or "-" */
    int layer;                /* the op's first layer */
    int out;                  /* the layer whose output it writes */
    int c, h, w;              /* output per image */
    double flops;             /* per image: sum of cnn_model_layer_info().flops it covers */
};

/* Ops of the compiled plan in run order; 0 when m is not compiled. */
int cnn_model_op_count(const struct cnn_model *m);
/* Describes op k (0..cnn_model_op_count - 1). */
void cnn_model_op_info(const struct cnn_model *m, int k, struct cnn_op_info *out);
/* The layers op k covers, in layer order, into layers[0..max); returns how many there are
 * (may exceed max: then only the first max are stored).  Every layer but the input, and
 * aliases of it, is covered by exactly one op. */
int cnn_model_op_layers(const struct cnn_model *m, int k, int *layers, int max);

#endif
