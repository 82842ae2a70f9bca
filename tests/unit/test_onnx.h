/* Shared by check_onnx.c, check_onnx_hostile.c and check_onnx_kinds.c: ONNX protos built in an
 * arena (all freed by tox_arena_free), packed with protobuf-c, the conv net both suites start from,
 * and running a compiled model on a batch. */
#ifndef TEST_ONNX_H
#define TEST_ONNX_H

#include "model.h"
#include "onnx.pb-c.h"

#include <stddef.h>
#include <stdint.h>

/* calloc'd memory freed by tox_arena_free(); fails the test when out of memory. */
void *tox_alloc(size_t n);
void tox_arena_free(void);
char *tox_str(const char *s);

/* A float tensor of dims (float_data, v may be NULL for no data) / an int64 one. */
Onnx__TensorProto *tox_tensor_f(const char *name, int nd, const int64_t *dims, const float *v);
Onnx__TensorProto *tox_tensor_i(const char *name, int nd, const int64_t *dims, const int64_t *v,
                                size_t n);

struct tox_graph {
    Onnx__NodeProto *nodes[12000];
    size_t n_nodes;
    Onnx__TensorProto *inits[16];
    size_t n_inits;
    int64_t in_dims[5];
    int in_rank; /* 0: 4 */
    int opset;
    const char *output;
    const char *props[12][2]; /* metadata_props (key, value) */
    size_t n_props;
};

/* Appends a node with up to 3 inputs (NULL ends them; tox_add_input adds more) and one output. */
Onnx__NodeProto *tox_node(struct tox_graph *g, const char *op, const char *name, const char *in0,
                          const char *in1, const char *in2, const char *out);
void tox_add_input(Onnx__NodeProto *n, const char *name);
Onnx__AttributeProto *tox_attr(Onnx__NodeProto *n, const char *name);
void tox_attr_i(Onnx__NodeProto *n, const char *name, int64_t v);
void tox_attr_f(Onnx__NodeProto *n, const char *name, float v);
void tox_attr_ints(Onnx__NodeProto *n, const char *name, int count, const int64_t *v);
/* The ModelProto of g (input "x", output g->output, opset g->opset or 13), malloc'd. */
uint8_t *tox_pack(const struct tox_graph *g, size_t *size);

/* g packed and imported (the test fails when the import does); owned by the caller. */
struct cnn_model *tox_load(const struct tox_graph *g);

/* n pseudo-random floats in [-1, 1) from seed. */
void tox_fill(float *v, size_t n, uint64_t seed);

/* x (N,3,8,8) -> Conv 3x3 pad 1 -> Relu -> MaxPool 2 -> Flatten -> Gemm -> Softmax, with
 * the weights below. */
enum { TOX_OC = 4, TOX_NC = 10, TOX_FEAT = TOX_OC * 4 * 4 };
extern float tox_w[TOX_OC * 3 * 3 * 3], tox_b[TOX_OC], tox_fc[TOX_NC * TOX_FEAT], tox_fb[TOX_NC];
struct tox_graph *tox_conv_net(void);

/* Runs m on batch n of x; copies n * classes outputs into out. */
void tox_run(const struct cnn_model *m, const float *x, int n, float *out);
void tox_assert_close(const float *a, const float *b, size_t n, float tol);
/* m exported at `opset` and read back answers x (n items) with want (k floats) within tol. */
void tox_export_round_trip(const struct cnn_model *m, int opset, const float *x, int n,
                           const float *want, int k, float tol);

#endif
