/* Internal to the ONNX exporter: the export in progress, shared by core/onnx_export.c (the
 * model: graph input and output, metadata, opset) and core/onnx_export_layers.c (the nodes
 * of each layer kind). */
#ifndef CNN_ONNX_EXPORT_INTERNAL_H
#define CNN_ONNX_EXPORT_INTERNAL_H

#include "model_internal.h"
#include "onnx_write.h"

/* Nodes per layer: main op(s) (scale_shift: Mul, Add), activation (hard swish before
 * opset 14: two), Flatten and Reshape of its output. */
#define OX_NODES_PER_LAYER 6
#define OX_INITS_PER_LAYER 8 /* 4 weight slots, clip min/max, dropout ratio, zero bias */
#define OX_MAX_PROPS 8       /* metadata_props */

/* One export in progress. */
struct ox {
    struct cnn_onnx_writer w; /* the model being built; owns every allocation below */
    const struct cnn_model *m;
    int opset;
    struct cnn_err *err;     /* = w.err, never NULL */
    const char **val;        /* per layer: the ONNX value holding its output */
    int *rank;               /* per layer: 2 for (N, C), 4 for (N, C, H, W) */
    const char **as2, **as4; /* per layer: its value flattened / reshaped, once made */
    int have_shape4;         /* the [0, -1, 1, 1] Reshape shape is an initializer */
};

/* The nodes of layer i (i > 0), writing x->val[i] and setting x->rank[i]. */
int cnn_onnx_export_layer(struct ox *x, int i);

#endif
