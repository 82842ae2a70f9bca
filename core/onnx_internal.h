/* Shared by onnx_import.c (graph walk, model building), onnx_tensor.c (TensorProto
 * decoding, the nesting pre-scan, the value table), onnx_ops.c (one table row per ONNX
 * operator), onnx_kinds.c (rows onto the kinds added for ONNX), onnx_fold.c (ops folded
 * on constants), onnx_shape.c (Reshape, Transpose, Flatten of layer values) and onnx_meta.c
 * (cnn.* metadata_props).  Not for use outside those files. */
#ifndef CNN_ONNX_INTERNAL_H
#define CNN_ONNX_INTERNAL_H

#include "model.h"
#include "onnx.h"
#include "onnx.pb-c.h"

#include <stddef.h>
#include <stdint.h>

#define ONNX_MAX_NODES 100000       /* nodes of the main graph */
#define ONNX_SCAN_BUDGET (1u << 22) /* node visits of onnx_take_bias per model */
#define ONNX_MAX_NESTING 64         /* protobuf message nesting accepted by the pre-scan */
#define ONNX_MAX_TENSOR_FLOATS (1u << 30)
#define ONNX_DIM_BATCH INT64_MIN    /* in a folded shape: the (dynamic) batch size */
#define ONNX_MAX_CHANNELS (1 << 24) /* outputs of a conv or dense (= CNN_MAX_DIM) */
#define ONNX_MAX_DIM (1 << 24)      /* an engine C, H or W (= CNN_MAX_DIM) */

/* A constant: an initializer, a Constant node or a folded shape computation. */
struct onnx_tensor {
    int is_int; /* int64 values (shapes, indices, axes) in i, else f */
    int ndims;
    int64_t dims[CNN_ONNX_MAX_DIMS];
    size_t count; /* product of dims (1 for a scalar) */
    float *f;     /* owned */
    int64_t *i;   /* owned */
};

/* A named value of the graph: a layer's output or a constant. */
struct onnx_value {
    const char *name;      /* borrowed from the unpacked proto */
    int layer;             /* >= 0: output of this layer; -1: constant */
    int rank;              /* layer values: 4 (N,C,H,W), 3 (N,C,L) = (C,1,L), 2 (N,C) = (C,1,1);
                            * 5..8 (N,C,D..,W) = (C, product of D.., W), see dims */
    struct onnx_tensor *t; /* constants: owned by the table */
    int64_t dims[CNN_ONNX_MAX_DIMS]; /* rank > 4: the dims, dims[0] = ONNX_DIM_BATCH */
};

/* A weight waiting for the parameter block: copied into (layer, slot) after alloc. */
struct onnx_pending {
    int layer, slot;
    float *data; /* owned */
    size_t count;
};

struct onnx_ctx {
    struct cnn_model *m; /* being built, owned until handed out */
    struct cnn_err *err;
    int opset;
    int64_t batch;               /* the image input's fixed batch size, 0 when dynamic */
    const Onnx__NodeProto *node; /* the node being imported, for messages */
    const Onnx__GraphProto *graph;
    size_t node_index;            /* of node in graph */
    const Onnx__NodeProto *fused; /* a later node folded into an earlier layer: its output */
    const char *fused_from;       /* is then this value (borrowed from the proto) */
    size_t scan_budget;           /* node visits left for onnx_take_bias's look-ahead */
    struct onnx_value *vals;      /* open-addressing hash on name */
    size_t cap_vals, n_vals;
    struct onnx_pending *pend;
    size_t n_pend, cap_pend;
};

/* ---- onnx_tensor.c ---- */
void onnx_tensor_free(struct onnx_tensor *t);
/* *count = the product of dims (rank, each dim and the product checked, nothing allocated). */
int onnx_dims_count(int ndims, const int64_t *dims, size_t *count, struct cnn_err *err);
/* New tensor of the given shape with zeroed values (is_int picks i or f). */
struct onnx_tensor *onnx_tensor_new(int is_int, int ndims, const int64_t *dims,
                                    struct cnn_err *err);
/* Decodes a TensorProto (float, double, int32, int64; raw_data or typed fields; no external
 * data) with every dim and product checked.  who names it in messages. */
int onnx_tensor_decode(const Onnx__TensorProto *tp, const char *who, struct onnx_tensor **out,
                       struct cnn_err *err);
/* 0 when the protobuf message in buf nests at most ONNX_MAX_NESTING deep (protobuf-c's
 * unpacker recurses without a limit), else CNN_EFORMAT. */
int onnx_check_nesting(const uint8_t *buf, size_t size, struct cnn_err *err);
/* The value named name, or NULL. */
struct onnx_value *onnx_value_find(struct onnx_ctx *c, const char *name);
/* Adds name (layer >= 0 with rank, or the owned constant t); a second definition of a name
 * is CNN_EFORMAT.  t is freed on failure. */
int onnx_value_add(struct onnx_ctx *c, const char *name, int layer, int rank,
                   struct onnx_tensor *t);
void onnx_values_free(struct onnx_ctx *c);

/* ---- onnx_import.c: helpers for the op rows ---- */
/* "onnx: node 'NAME' (OP, opset N): " + fmt into c->err; returns code. */
int onnx_node_err(struct onnx_ctx *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The node's input i (absent or "" -> NULL when optional, else an error). */
int onnx_input(struct onnx_ctx *c, int i, int optional, struct onnx_value **out);
/* Input i as a constant (error naming it when it is a layer output). */
int onnx_input_const(struct onnx_ctx *c, int i, int optional, struct onnx_tensor **out);
/* Input i as a layer output (error when constant). */
int onnx_input_layer(struct onnx_ctx *c, int i, struct onnx_value **out);
const Onnx__AttributeProto *onnx_attr(const Onnx__NodeProto *n, const char *name);
int64_t onnx_attr_int(const Onnx__NodeProto *n, const char *name, int64_t def);
float onnx_attr_float(const Onnx__NodeProto *n, const char *name, float def);
/* Copies attribute ints (at most max) into v; returns the count, 0 when absent, -1 when
 * more than max. */
int onnx_attr_ints(const Onnx__NodeProto *n, const char *name, int64_t *v, int max);
/* 1 when the attribute is a string equal to s. */
int onnx_attr_is(const Onnx__NodeProto *n, const char *name, const char *s);
/* Adds a layer reading the given layers; weights[k] (owned, count[k] floats; NULL for
 * none) go to slot k after alloc and are freed here on failure.  Output 0 of the node gets
 * the layer with rank (rank 0: not yet, an inner layer of the node).  Returns the layer's
 * index or CNN_E*. */
int onnx_add_layer(struct onnx_ctx *c, struct cnn_layer_desc *d, int n_in, const int *in, int rank,
                   float **weights, const size_t *count, int n_weights);
/* Output i of the node is the existing value v (Identity, Dropout). */
int onnx_alias(struct onnx_ctx *c, int i, const struct onnx_value *v);
/* Output i of the node is the constant t (owned; freed on failure). */
int onnx_set_const(struct onnx_ctx *c, int i, struct onnx_tensor *t);
/* The code of the error set last (for helpers that return NULL). */
int onnx_err_code(const struct onnx_ctx *c);
/* The model's per-image shape of layer l. */
void onnx_layer_shape(const struct onnx_ctx *c, int l, int *ch, int *h, int *w);

/* ---- onnx_fold.c: constants ---- */
/* axis in -rank..rank-1 -> 0..rank-1, or -1 when out of range. */
int onnx_norm_axis(int64_t axis, int rank);
/* Output 0 is a copy of t with the given shape (count must match). */
int onnx_const_reshaped(struct onnx_ctx *c, const struct onnx_tensor *t, int nd,
                        const int64_t *dims);
/* Output 0 is constant t with its axes permuted by perm (np entries; np 0: reversed). */
int onnx_transpose_const(struct onnx_ctx *c, const struct onnx_tensor *t, const int64_t *perm,
                         int np);
/* Output 0 is the concatenation of the node's constant inputs along axis. */
int onnx_concat_consts(struct onnx_ctx *c, const Onnx__NodeProto *n, int64_t axis);
/* Op rows that fold (see onnx_op_fn). */
int onnx_op_constant(struct onnx_ctx *c, const Onnx__NodeProto *n);
int onnx_op_shape(struct onnx_ctx *c, const Onnx__NodeProto *n);
int onnx_op_gather(struct onnx_ctx *c, const Onnx__NodeProto *n);
int onnx_op_squeeze(struct onnx_ctx *c, const Onnx__NodeProto *n); /* and Unsqueeze */
int onnx_op_cast(struct onnx_ctx *c, const Onnx__NodeProto *n);

/* ---- onnx_meta.c: the cnn.* metadata_props of `cnn convert` ---- */
/* Overrides pp (the input's c, h, w already set) from cnn.resize, cnn.resize_short,
 * cnn.invert, cnn.channel_order, cnn.mean, cnn.std; CNN_EFORMAT naming the key when one is
 * malformed. */
int onnx_meta_preproc(const Onnx__ModelProto *mp, struct cnn_preproc *pp, struct cnn_err *err);
/* Sets m's labels from cnn.labels (one a line, one per class) and its metadata text from
 * cnn.meta. */
int onnx_meta_apply(const Onnx__ModelProto *mp, struct cnn_model *m, struct cnn_err *err);

/* ---- onnx_ops.c ---- */
/* A copy of t's floats scaled by a (owned; NULL on failure with the error set). */
float *onnx_copy_floats(struct onnx_ctx *c, const struct onnx_tensor *t, float a);
/* The layer input 0 of a spatial op, (N,C,H,W) or (N,C,L) (= (N,C,1,L): x->rank - 2
 * spatial dims), and its per-image shape. */
int onnx_image_input(struct onnx_ctx *c, struct onnx_value **x, int *ch, int *h, int *w);
/* An activation layer over input 0, keeping its rank. */
int onnx_add_act(struct onnx_ctx *c, enum cnn_act kind, float alpha, float beta);

/* ---- onnx_shape.c: values seen with other dims ---- */
/* Layer x as a (N, C*H*W) value: x itself when already flat, else a flatten layer; define:
 * output 0 of the node is it (returns >= 0), else its layer index. */
int onnx_flatten_layer(struct onnx_ctx *c, struct onnx_value *x, int define);
int onnx_op_transpose(struct onnx_ctx *c, const Onnx__NodeProto *n);
int onnx_op_flatten(struct onnx_ctx *c, const Onnx__NodeProto *n);
int onnx_op_reshape(struct onnx_ctx *c, const Onnx__NodeProto *n);
/* The dims of layer value x: (batch marker ONNX_DIM_BATCH, C, H, W); rank 3 (batch, C, L,
 * 1); rank 2 uses 2 (the rest 1); rank 5..8 its x->rank dims (dims holds
 * CNN_ONNX_MAX_DIMS).  Only the ops of onnx_any_rank() see values of rank > 4. */
void onnx_layer_dims(const struct onnx_ctx *c, const struct onnx_value *x, int64_t *dims);
/* 1 when op_type reads layer values of rank 5..8 (the shape ops that only regroup or
 * permute an item's values: Reshape, Transpose, Squeeze, Unsqueeze, Flatten, Identity,
 * Dropout, Shape); onnx_input refuses such a value to any other op. */
int onnx_any_rank(const char *op_type);
/* Output 0 is x seen with dims (nd of them, dims[0] the batch marker, the same count of
 * values per item): the same (C, H, W) (an alias), a new H x W of each channel (a reshape
 * layer), (N, C*H*W) / (N, C*H*W, 1, 1) (a flatten), or other channels (a transpose layer
 * with the identity perm: in the (C, N, H, W) layout that moves data). */
int onnx_layer_as(struct onnx_ctx *c, struct onnx_value *x, int nd, const int64_t *dims);

/* ---- onnx_kinds.c: rows onto the kinds added for ONNX ---- */
/* Add/Sub/Mul/Div with a constant operand: folded when both are constants (equal shapes or
 * a scalar), else a scale_shift layer (the constant a scalar or per channel). */
int onnx_op_arith(struct onnx_ctx *c, const Onnx__NodeProto *n);
/* For a bias-free dense of out outputs made from the current node (MatMul, Gemm without
 * C): when an Add of a constant of out values ((out) or (1,out)) alone reads the node's
 * output, a copy of that constant (owned) and c->fused set to that Add (its output is then
 * the dense's); else NULL (no error). */
float *onnx_take_bias(struct onnx_ctx *c, int64_t out);
int onnx_op_hard_sigmoid(struct onnx_ctx *c, const Onnx__NodeProto *n);
int onnx_op_hard_swish(struct onnx_ctx *c, const Onnx__NodeProto *n);
int onnx_op_global_maxpool(struct onnx_ctx *c, const Onnx__NodeProto *n);
int onnx_op_prelu(struct onnx_ctx *c, const Onnx__NodeProto *n);
int onnx_op_pad(struct onnx_ctx *c, const Onnx__NodeProto *n);

/* Imports node n: >= 0 on success, CNN_E* with the message set. */
typedef int (*onnx_op_fn)(struct onnx_ctx *c, const Onnx__NodeProto *n);
/* The row of op_type (default domain), NULL when unsupported. */
onnx_op_fn onnx_op_find(const char *op_type);

#endif
