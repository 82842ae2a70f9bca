/* Suite `onnx_export`: exports the test networks (every layer kind, rank changes, fused
 * activations) with cnn_onnx_export_mem/_save, unpacks the bytes again with protobuf-c's
 * onnx__model_proto__unpack and checks the structure against the model: node op types in
 * order, attribute values, initializer dims and bytes equal to the weights, input/output
 * shapes, opset and IR version, metadata_props; the errors (opset out of range, ceil mode
 * before opset 10, name clashes, newline labels, missing folder); `cnn convert`; and the
 * kinds added for ONNX import (test_kinds_nets.h) at opsets 10, 13, 14 and 17. */
#include "model_internal.h"
#include "onnx.pb-c.h"
#include "onnx_export.h"
#include "test_kinds_nets.h"
#include "test_nets.h"
#include "test_onnx_nets.h"
#include "test_util.h"

#include <check.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

/* Exports m at opset and unpacks it (asserting both work); free with onnx_free(). */
static Onnx__ModelProto *export_unpack(const struct cnn_model *m, int opset)
{
    void *data;
    size_t size;
    struct cnn_err err = {0};
    ck_assert_msg(cnn_onnx_export_mem(m, opset, &data, &size, &err) == 0, "export: %s", err.msg);
    Onnx__ModelProto *p = onnx__model_proto__unpack(NULL, size, data);
    free(data);
    ck_assert_msg(p != NULL, "the exported bytes do not unpack");
    ck_assert_ptr_nonnull(p->graph);
    return p;
}

static void onnx_free(Onnx__ModelProto *p)
{
    onnx__model_proto__free_unpacked(p, NULL);
}

static const Onnx__NodeProto *node_writing(const Onnx__ModelProto *p, const char *value)
{
    for (size_t i = 0; i < p->graph->n_node; i++)
        if (strcmp(p->graph->node[i]->output[0], value) == 0)
            return p->graph->node[i];
    ck_abort_msg("no node writes %s", value);
    return NULL;
}

static const Onnx__AttributeProto *attr(const Onnx__NodeProto *n, const char *name)
{
    for (size_t i = 0; i < n->n_attribute; i++)
        if (strcmp(n->attribute[i]->name, name) == 0)
            return n->attribute[i];
    return NULL;
}

static int64_t attr_i(const Onnx__NodeProto *n, const char *name)
{
    const Onnx__AttributeProto *a = attr(n, name);
    ck_assert_msg(a && a->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT, "%s: no int %s",
                  n->name, name);
    return a->i;
}

static float attr_f(const Onnx__NodeProto *n, const char *name)
{
    const Onnx__AttributeProto *a = attr(n, name);
    ck_assert_msg(a && a->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT, "%s: no float %s",
                  n->name, name);
    return a->f;
}

/* Asserts attribute `name` of n holds the k ints v. */
static void attr_ints_eq(const Onnx__NodeProto *n, const char *name, const int64_t *v, size_t k)
{
    const Onnx__AttributeProto *a = attr(n, name);
    ck_assert_msg(a && a->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS, "%s: no ints %s",
                  n->name, name);
    ck_assert_uint_eq(a->n_ints, k);
    for (size_t i = 0; i < k; i++)
        ck_assert_msg(a->ints[i] == v[i], "%s.%s[%zu] = %lld, want %lld", n->name, name, i,
                      (long long)a->ints[i], (long long)v[i]);
}

static const Onnx__TensorProto *init(const Onnx__ModelProto *p, const char *name)
{
    for (size_t i = 0; i < p->graph->n_initializer; i++)
        if (strcmp(p->graph->initializer[i]->name, name) == 0)
            return p->graph->initializer[i];
    return NULL;
}

/* The one float of a scalar initializer. */
static float scalar(const Onnx__ModelProto *p, const char *name)
{
    const Onnx__TensorProto *t = init(p, name);
    ck_assert_msg(t && t->n_dims == 0 && t->raw_data.len == 4, "no scalar %s", name);
    float v;
    memcpy(&v, t->raw_data.data, 4);
    return v;
}

static const char *prop(const Onnx__ModelProto *p, const char *key)
{
    for (size_t i = 0; i < p->n_metadata_props; i++)
        if (strcmp(p->metadata_props[i]->key, key) == 0)
            return p->metadata_props[i]->value;
    return NULL;
}

static void ops_eq(const Onnx__ModelProto *p, const char *const *ops, size_t n)
{
    ck_assert_uint_eq(p->graph->n_node, n);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(strcmp(p->graph->node[i]->op_type, ops[i]) == 0, "node %zu: %s, want %s", i,
                      p->graph->node[i]->op_type, ops[i]);
}

/* Asserts v is a float tensor (N, d[0..k)) with N the parameter "N". */
static void value_shape_eq(const Onnx__ValueInfoProto *v, const char *name, const int *d, int k)
{
    ck_assert_str_eq(v->name, name);
    ck_assert_int_eq(v->type->value_case, ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE);
    ck_assert_int_eq(v->type->tensor_type->elem_type, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT);
    const Onnx__TensorShapeProto *s = v->type->tensor_type->shape;
    ck_assert_uint_eq(s->n_dim, (size_t)k + 1);
    ck_assert_int_eq(s->dim[0]->value_case, ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM);
    ck_assert_str_eq(s->dim[0]->dim_param, "N");
    for (int i = 0; i < k; i++) {
        ck_assert_int_eq(s->dim[i + 1]->value_case,
                         ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE);
        ck_assert_int_eq(s->dim[i + 1]->dim_value, d[i]);
    }
}

/* Every weight slot of every layer is the initializer "<layer>.<slot>" with the slot's dims
 * and exactly its bytes; returns how many were compared. */
static int weights_eq(const Onnx__ModelProto *p, const struct cnn_model *m)
{
    static const char *const slot_names[][4] = {
        [CNN_LAYER_CONV2D] = {"w", "b"},
        [CNN_LAYER_DENSE] = {"w", "b"},
        [CNN_LAYER_BATCHNORM] = {"gamma", "beta", "mean", "var"}};
    int compared = 0;
    for (int i = 1; i < m->n_layers; i++) {
        const struct cnn_layer *l = &m->layers[i];
        for (int s = 0; s < l->n_weights; s++) {
            char name[128];
            snprintf(name, sizeof name, "%s.%s", l->name, slot_names[l->kind][s]);
            const Onnx__TensorProto *t = init(p, name);
            ck_assert_msg(t != NULL, "no initializer %s", name);
            ck_assert_int_eq(t->data_type, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT);
            ck_assert_uint_eq(t->n_dims, (size_t)l->weight_ndims[s]);
            for (int k = 0; k < l->weight_ndims[s]; k++)
                ck_assert_int_eq(t->dims[k], l->weight_dims[s][k]);
            ck_assert_uint_eq(t->raw_data.len, l->weight_count[s] * sizeof(float));
            ck_assert_msg(
                memcmp(t->raw_data.data, m->params + l->weight_offset[s], t->raw_data.len) == 0,
                "%s: bytes differ from the model's weights", name);
            compared++;
        }
    }
    return compared;
}

START_TEST(test_export_dag_has_every_kind_in_graph_order)
{
    static const char *const ops[] = {"Conv",
                                      "BatchNormalization",
                                      "Relu",
                                      "Conv",
                                      "BatchNormalization",
                                      "LeakyRelu",
                                      "Conv",
                                      "BatchNormalization",
                                      "Clip",
                                      "Conv",
                                      "BatchNormalization",
                                      "Add",
                                      "Relu",
                                      "MaxPool",
                                      "Conv",
                                      "Tanh",
                                      "Conv",
                                      "Sigmoid",
                                      "Concat",
                                      "BatchNormalization",
                                      "Relu",
                                      "LRN",
                                      "AveragePool",
                                      "Dropout",
                                      "Flatten",
                                      "Gemm",
                                      "Relu",
                                      "Gemm",
                                      "Softmax"};
    struct cnn_model *m = compiled(test_net_dag(3));
    Onnx__ModelProto *p = export_unpack(m, 13);
    ck_assert(p->has_ir_version);
    ck_assert_int_eq(p->ir_version, 7);
    ck_assert_uint_eq(p->n_opset_import, 1);
    ck_assert(p->opset_import[0]->domain == NULL || p->opset_import[0]->domain[0] == '\0');
    ck_assert_int_eq(p->opset_import[0]->version, 13);
    ck_assert_str_eq(p->producer_name, "cnnd");
    ops_eq(p, ops, sizeof ops / sizeof ops[0]);
    ck_assert_uint_eq(p->graph->n_input, 1);
    ck_assert_uint_eq(p->graph->n_output, 1);
    const int in[3] = {3, 13, 11}, out[1] = {5};
    value_shape_eq(p->graph->input[0], "input", in, 3);
    value_shape_eq(p->graph->output[0], "output", out, 1);
    ck_assert_str_eq(p->graph->node[0]->input[0], "input");
    ck_assert_str_eq(p->graph->node[p->graph->n_node - 1]->output[0], "output");
    /* 6 convs (4 with a bias) + 5 BNs + 2 dense: all weight slots, byte for byte */
    ck_assert_int_eq(weights_eq(p, m), 6 + 4 + 5 * 4 + 2 * 2);
    onnx_free(p);
    cnn_model_destroy(m);
}
END_TEST

START_TEST(test_export_dag_attributes_match_layer_params)
{
    struct cnn_model *m = compiled(test_net_dag(3));
    Onnx__ModelProto *p = export_unpack(m, 13);
    const Onnx__NodeProto *c2 = node_writing(p, "c2");
    attr_ints_eq(c2, "kernel_shape", (const int64_t[]){3, 3}, 2);
    attr_ints_eq(c2, "strides", (const int64_t[]){2, 2}, 2);
    attr_ints_eq(c2, "pads", (const int64_t[]){1, 0, 2, 1}, 4); /* t, l, b, r */
    attr_ints_eq(c2, "dilations", (const int64_t[]){1, 1}, 2);
    ck_assert_int_eq(attr_i(c2, "group"), 2);
    ck_assert_uint_eq(c2->n_input, 3);
    ck_assert_str_eq(c2->input[1], "c2.w");
    ck_assert_str_eq(c2->input[2], "c2.b");
    const Onnx__NodeProto *dw = node_writing(p, "dw");
    attr_ints_eq(dw, "dilations", (const int64_t[]){2, 2}, 2);
    attr_ints_eq(dw, "pads", (const int64_t[]){2, 2, 2, 2}, 4);
    ck_assert_int_eq(attr_i(dw, "group"), 8);
    ck_assert_uint_eq(dw->n_input, 2); /* no bias */
    ck_assert_float_eq(attr_f(node_writing(p, "c2_leaky"), "alpha"), 0.1f);
    const Onnx__NodeProto *clip = node_writing(p, "dw_relu6");
    ck_assert_uint_eq(clip->n_input, 3);
    ck_assert_float_eq(scalar(p, clip->input[1]), 0.0f);
    ck_assert_float_eq(scalar(p, clip->input[2]), 6.0f);
    ck_assert_float_eq(attr_f(node_writing(p, "c1_bn"), "epsilon"), 1e-5f);
    const Onnx__NodeProto *pool = node_writing(p, "b_pool");
    attr_ints_eq(pool, "pads", (const int64_t[]){1, 1, 1, 1}, 4);
    ck_assert_ptr_null(attr(pool, "ceil_mode"));
    const Onnx__NodeProto *avg = node_writing(p, "avg");
    ck_assert_int_eq(attr_i(avg, "ceil_mode"), 1);
    ck_assert_ptr_null(attr(avg, "count_include_pad"));
    const Onnx__NodeProto *lrn = node_writing(p, "lrn");
    ck_assert_int_eq(attr_i(lrn, "size"), 5);
    ck_assert_float_eq(attr_f(lrn, "alpha"), 1e-2f);
    ck_assert_float_eq(attr_f(lrn, "beta"), 0.75f);
    ck_assert_float_eq(attr_f(lrn, "bias"), 2.0f);
    const Onnx__NodeProto *cat = node_writing(p, "cat");
    ck_assert_int_eq(attr_i(cat, "axis"), 1);
    ck_assert_uint_eq(cat->n_input, 4);
    ck_assert_str_eq(cat->input[1], "b_pool");
    /* the BN's fused relu is a node of its own behind the BN */
    ck_assert_str_eq(node_writing(p, "cat_bn")->op_type, "Relu");
    ck_assert_str_eq(node_writing(p, "cat_bn/preact")->op_type, "BatchNormalization");
    const Onnx__NodeProto *drop = node_writing(p, "drop");
    ck_assert_uint_eq(drop->n_input, 2); /* opset 12+: ratio is an input */
    ck_assert_float_eq(scalar(p, drop->input[1]), 0.5f);
    ck_assert_int_eq(attr_i(node_writing(p, "fc1"), "transB"), 1);
    ck_assert_int_eq(attr_i(node_writing(p, "flat"), "axis"), 1);
    ck_assert_int_eq(attr_i(node_writing(p, "output"), "axis"), 1);
    onnx_free(p);
    cnn_model_destroy(m);
}
END_TEST

/* (N, C) <-> (N, C, H, W) changes, fused conv/dense activations, and the opset < 11 forms. */
START_TEST(test_export_ranks_at_opset_10)
{
    static const char *const ops[] = {"Conv",
                                      "LeakyRelu",
                                      "AveragePool",
                                      "GlobalAveragePool",
                                      "Flatten",
                                      "Gemm",
                                      "Sigmoid",
                                      "Reshape",
                                      "Add",
                                      "Conv",
                                      "Clip",
                                      "Flatten",
                                      "Gemm",
                                      "Tanh",
                                      "BatchNormalization",
                                      "Relu",
                                      "Softmax"};
    struct cnn_model *m = compiled(test_net_ranks(4));
    Onnx__ModelProto *p = export_unpack(m, 10);
    ck_assert_int_eq(p->ir_version, 5);
    ck_assert_int_eq(p->opset_import[0]->version, 10);
    ops_eq(p, ops, sizeof ops / sizeof ops[0]);
    const Onnx__NodeProto *gemm = node_writing(p, "fc/preact");
    ck_assert_str_eq(gemm->input[0], "gap/flat");
    const Onnx__NodeProto *sum = node_writing(p, "sum");
    ck_assert_str_eq(sum->input[0], "gap");
    ck_assert_str_eq(sum->input[1], "fc/nchw");
    const Onnx__NodeProto *reshape = node_writing(p, "fc/nchw");
    const Onnx__TensorProto *shape = init(p, reshape->input[1]);
    ck_assert_ptr_nonnull(shape);
    ck_assert_int_eq(shape->data_type, ONNX__TENSOR_PROTO__DATA_TYPE__INT64);
    int64_t want[4] = {0, -1, 1, 1}, got[4];
    ck_assert_uint_eq(shape->raw_data.len, sizeof got);
    memcpy(got, shape->raw_data.data, sizeof got);
    ck_assert(memcmp(got, want, sizeof got) == 0);
    const Onnx__NodeProto *clip = node_writing(p, "mix"); /* Clip-6: attributes */
    ck_assert_uint_eq(clip->n_input, 1);
    ck_assert_float_eq(attr_f(clip, "min"), -0.5f);
    ck_assert_float_eq(attr_f(clip, "max"), 0.5f);
    const Onnx__NodeProto *fc2 = node_writing(p, "fc2"); /* Gemm before 11 needs C: zeros */
    ck_assert_uint_eq(fc2->n_input, 3);
    const Onnx__TensorProto *zero = init(p, fc2->input[2]);
    ck_assert_msg(zero && zero->n_dims == 1 && zero->dims[0] == 5 && zero->raw_data.len == 20,
                  "zero bias of fc2");
    for (int i = 0; i < 20; i++)
        ck_assert_int_eq(zero->raw_data.data[i], 0);
    const Onnx__NodeProto *avg = node_writing(p, "avg");
    ck_assert_int_eq(attr_i(avg, "ceil_mode"), 1);
    ck_assert_int_eq(attr_i(avg, "count_include_pad"), 1);
    ck_assert_str_eq(node_writing(p, "fbn/preact")->input[0], "th");
    ck_assert_int_eq(weights_eq(p, m), 2 + 2 + 2 + 1 + 4);
    onnx_free(p);
    cnn_model_destroy(m);
}
END_TEST

START_TEST(test_export_metadata_props_hold_labels_and_preprocessing)
{
    struct cnn_model *m = compiled(test_net_ranks(4));
    struct cnn_err err = {0};
    ck_assert_int_eq(cnn_model_set_meta(m, "arch=ranks\ntrained_by=test", &err), 0);
    Onnx__ModelProto *p = export_unpack(m, 13);
    ck_assert_str_eq(prop(p, "cnn.labels"), "k0\nk1\nk2\nk3\nk4");
    ck_assert_str_eq(prop(p, "cnn.resize"), "shorter_crop");
    ck_assert_str_eq(prop(p, "cnn.resize_short"), "8");
    ck_assert_str_eq(prop(p, "cnn.invert"), "0");
    ck_assert_str_eq(prop(p, "cnn.channel_order"), "rgb");
    ck_assert_str_eq(prop(p, "cnn.mean"), "0.5,0.25,0");
    ck_assert_str_eq(prop(p, "cnn.std"), "2,1,0.5");
    ck_assert_str_eq(prop(p, "cnn.meta"), "arch=ranks\ntrained_by=test");
    ck_assert_str_eq(p->graph->name, "ranks");
    onnx_free(p);
    struct cnn_preproc bgr = *cnn_model_preproc(m);
    bgr.bgr = 1;
    ck_assert_int_eq(cnn_model_set_preproc(m, &bgr, &err), 0);
    p = export_unpack(m, 13);
    ck_assert_str_eq(prop(p, "cnn.channel_order"), "bgr");
    onnx_free(p);
    cnn_model_destroy(m);
    m = compiled(test_net_small(1)); /* gray: one value each, no crop size */
    p = export_unpack(m, 13);
    ck_assert_str_eq(prop(p, "cnn.mean"), "0.5");
    ck_assert_str_eq(prop(p, "cnn.std"), "0.25");
    ck_assert_str_eq(prop(p, "cnn.resize"), "stretch");
    ck_assert_ptr_null(prop(p, "cnn.resize_short"));
    ck_assert_ptr_null(prop(p, "cnn.channel_order")); /* gray: no order */
    ck_assert_ptr_null(prop(p, "cnn.meta"));
    ck_assert_str_eq(prop(p, "cnn.labels"), "zero\none\ntwo\nthree");
    onnx_free(p);
    cnn_model_destroy(m);
}
END_TEST

START_TEST(test_export_opset_forms_and_limits)
{
    struct cnn_model *m = compiled(test_net_dag(3));
    struct cnn_err err = {0};
    void *data = NULL;
    size_t size = 0;
    ck_assert_int_eq(cnn_onnx_export_mem(m, 6, &data, &size, &err), CNN_EINVAL);
    ck_assert_ptr_null(data);
    ck_assert_int_eq(cnn_onnx_export_mem(m, 18, &data, &size, &err), CNN_EINVAL);
    /* the avg pool's ceil mode changes its size: no form before MaxPool/AveragePool-10 */
    ck_assert_int_eq(cnn_onnx_export_mem(m, 9, &data, &size, &err), CNN_EINVAL);
    ck_assert_msg(strstr(err.msg, "layer avg") && strstr(err.msg, "ceil_mode"), "%s", err.msg);
    ck_assert_ptr_null(data);
    Onnx__ModelProto *p = export_unpack(m, 11); /* Dropout-10: ratio attribute */
    const Onnx__NodeProto *drop = node_writing(p, "drop");
    ck_assert_uint_eq(drop->n_input, 1);
    ck_assert_float_eq(attr_f(drop, "ratio"), 0.5f);
    ck_assert_int_eq(p->ir_version, 6);
    onnx_free(p);
    p = export_unpack(m, 17);
    ck_assert_int_eq(p->ir_version, 8);
    onnx_free(p);
    cnn_model_destroy(m);
    m = compiled(test_net_wide(2)); /* no ceil mode: opset 7 works */
    p = export_unpack(m, 7);
    ck_assert_int_eq(p->ir_version, 4);
    ck_assert_int_eq(p->opset_import[0]->version, 7);
    ck_assert_int_eq(weights_eq(p, m) > 0, 1);
    onnx_free(p);
    cnn_model_destroy(m);
}
END_TEST

/* ---- the kinds added for ONNX import (test_kinds_nets.h) ---------------------------- */

/* Initializer `name` is the float weight slot `slot` of layer `layer` of m, shaped dims[0..k)
 * (a per-channel broadcast shape, not the slot's own). */
static void channel_init_eq(const Onnx__ModelProto *p, const struct cnn_model *m, const char *name,
                            const char *layer, int slot, const int64_t *dims, size_t k)
{
    const struct cnn_layer *l = NULL;
    for (int i = 1; i < m->n_layers && !l; i++)
        if (strcmp(m->layers[i].name, layer) == 0)
            l = &m->layers[i];
    ck_assert_msg(l != NULL, "no layer %s", layer);
    const Onnx__TensorProto *t = init(p, name);
    ck_assert_msg(t != NULL, "no initializer %s", name);
    ck_assert_int_eq(t->data_type, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT);
    ck_assert_uint_eq(t->n_dims, k);
    for (size_t d = 0; d < k; d++)
        ck_assert_int_eq(t->dims[d], dims[d]);
    ck_assert_uint_eq(t->raw_data.len, l->weight_count[slot] * sizeof(float));
    ck_assert_msg(memcmp(t->raw_data.data, m->params + l->weight_offset[slot], t->raw_data.len) ==
                      0,
                  "%s: bytes differ from the model's weights", name);
}

static void inputs_eq(const Onnx__NodeProto *n, const char *a, const char *b, const char *c)
{
    const char *want[3] = {a, b, c};
    const size_t k = c ? 3 : b ? 2 : 1;
    ck_assert_msg(n->n_input == k, "%s: %zu inputs, want %zu", n->name, n->n_input, k);
    for (size_t i = 0; i < k; i++)
        ck_assert_str_eq(n->input[i], want[i]);
}

/* Opset 13: hard swish as Mul(x, HardSigmoid(x; 1/6, 1/2)), Pad's pads and value as inputs,
 * PRelu and scale-shift (Mul, Add) with (C, 1, 1) or scalar initializers. */
START_TEST(test_export_new_kinds_at_opset_13)
{
    static const char *const ops[] = {"Conv",
                                      "HardSigmoid",
                                      "Mul",
                                      "Pad",
                                      "BatchNormalization",
                                      "HardSigmoid",
                                      "Conv",
                                      "Reshape",
                                      "Reshape",
                                      "Transpose",
                                      "Reshape",
                                      "PRelu",
                                      "Mul",
                                      "Add",
                                      "HardSigmoid",
                                      "Mul",
                                      "GlobalMaxPool",
                                      "GlobalAveragePool",
                                      "Concat",
                                      "PRelu",
                                      "Mul",
                                      "Add",
                                      "LeakyRelu",
                                      "Flatten",
                                      "Gemm",
                                      "HardSigmoid",
                                      "Gemm",
                                      "LogSoftmax"};
    struct cnn_model *m = compiled(test_net_kinds(5));
    Onnx__ModelProto *p = export_unpack(m, 13);
    ops_eq(p, ops, sizeof ops / sizeof ops[0]);
    const Onnx__NodeProto *n = node_writing(p, "conv1/hsig");
    inputs_eq(n, "conv1/preact", NULL, NULL);
    ck_assert_float_eq(attr_f(n, "alpha"), 1.0f / 6.0f);
    ck_assert_float_eq(attr_f(n, "beta"), 0.5f);
    inputs_eq(node_writing(p, "conv1"), "conv1/preact", "conv1/hsig", NULL);
    inputs_eq(node_writing(p, "hswish2"), "ss1", "hswish2/hsig", NULL);
    n = node_writing(p, "pad1");
    inputs_eq(n, "conv1", "pad1.pads", "pad1.value");
    ck_assert_uint_eq(n->n_attribute, 0); /* mode: the default, constant */
    const Onnx__TensorProto *t = init(p, "pad1.pads");
    const int64_t want[8] = {0, 0, 1, 2, 0, 0, 0, -1};
    int64_t got[8];
    ck_assert_msg(t && t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__INT64 && t->n_dims == 1 &&
                      t->dims[0] == 8 && t->raw_data.len == sizeof got,
                  "pad1.pads");
    memcpy(got, t->raw_data.data, sizeof got);
    ck_assert(memcmp(got, want, sizeof got) == 0);
    ck_assert_float_eq(scalar(p, "pad1.value"), 0.3f);
    n = node_writing(p, "hsig1");
    ck_assert_float_eq(attr_f(n, "alpha"), 0.5f);
    ck_assert_float_eq(attr_f(n, "beta"), 0.5f);
    const int64_t c8[3] = {8, 1, 1};
    n = node_writing(p, "reshape1");
    inputs_eq(n, "conv2", "reshape1.shape", NULL);
    t = init(p, "reshape1.shape");
    const int64_t want_shape[4] = {0, 8, 2, 6};
    ck_assert_msg(t && t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__INT64 && t->n_dims == 1 &&
                      t->dims[0] == 4 && t->raw_data.len == sizeof want_shape &&
                      memcmp(t->raw_data.data, want_shape, sizeof want_shape) == 0,
                  "reshape1.shape");
    /* transpose1: view 2x4x2x6, perm (1,3,0,2) after the batch, back to 8x2x6 */
    n = node_writing(p, "transpose1/view");
    inputs_eq(n, "reshape1", "transpose1.view", NULL);
    const int64_t want_view[5] = {0, 2, 4, 2, 6}, want_perm[5] = {0, 2, 4, 1, 3};
    t = init(p, "transpose1.view");
    ck_assert_msg(t && t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__INT64 && t->n_dims == 1 &&
                      t->dims[0] == 5 && t->raw_data.len == sizeof want_view &&
                      memcmp(t->raw_data.data, want_view, sizeof want_view) == 0,
                  "transpose1.view");
    n = node_writing(p, "transpose1/perm");
    ck_assert_str_eq(n->op_type, "Transpose");
    inputs_eq(n, "transpose1/view", NULL, NULL);
    attr_ints_eq(n, "perm", want_perm, 5);
    n = node_writing(p, "transpose1");
    ck_assert_str_eq(n->op_type, "Reshape");
    inputs_eq(n, "transpose1/perm", "transpose1.shape", NULL);
    t = init(p, "transpose1.shape");
    ck_assert_msg(t && t->n_dims == 1 && t->dims[0] == 4 &&
                      t->raw_data.len == sizeof want_shape &&
                      memcmp(t->raw_data.data, want_shape, sizeof want_shape) == 0,
                  "transpose1.shape");
    inputs_eq(node_writing(p, "prelu1"), "transpose1", "prelu1.slope", NULL);
    channel_init_eq(p, m, "prelu1.slope", "prelu1", 0, c8, 3);
    inputs_eq(node_writing(p, "ss1/scaled"), "prelu1", "ss1.scale", NULL);
    inputs_eq(node_writing(p, "ss1"), "ss1/scaled", "ss1.shift", NULL);
    channel_init_eq(p, m, "ss1.scale", "ss1", 0, c8, 3);
    channel_init_eq(p, m, "ss1.shift", "ss1", 1, c8, 3);
    inputs_eq(node_writing(p, "gmp"), "hswish2", NULL, NULL);
    channel_init_eq(p, m, "prelu2.slope", "prelu2", 0, NULL, 0); /* shared: scalars */
    channel_init_eq(p, m, "ss2.scale", "ss2", 0, NULL, 0);
    channel_init_eq(p, m, "ss2.shift", "ss2", 1, NULL, 0);
    inputs_eq(node_writing(p, "ss2/preact/scaled"), "prelu2", "ss2.scale", NULL);
    inputs_eq(node_writing(p, "ss2/preact"), "ss2/preact/scaled", "ss2.shift", NULL);
    n = node_writing(p, "ss2");
    ck_assert_str_eq(n->op_type, "LeakyRelu");
    ck_assert_float_eq(attr_f(n, "alpha"), 0.1f);
    n = node_writing(p, "output");
    ck_assert_str_eq(n->op_type, "LogSoftmax");
    inputs_eq(n, "fc2", NULL, NULL);
    ck_assert_int_eq(attr_i(n, "axis"), 1);
    onnx_free(p);
    cnn_model_destroy(m);
}
END_TEST

/* Opset 17: HardSwish nodes; opset 10: Pad-2's pads and value attributes (negative crops). */
START_TEST(test_export_new_kinds_at_opsets_17_and_10)
{
    struct cnn_model *m = compiled(test_net_kinds(5));
    Onnx__ModelProto *p = export_unpack(m, 17);
    ck_assert_uint_eq(p->graph->n_node, 26); /* two hard swishes, one node each */
    const Onnx__NodeProto *n = node_writing(p, "conv1");
    ck_assert_str_eq(n->op_type, "HardSwish");
    inputs_eq(n, "conv1/preact", NULL, NULL);
    ck_assert_uint_eq(n->n_attribute, 0);
    ck_assert_str_eq(node_writing(p, "hswish2")->op_type, "HardSwish");
    inputs_eq(node_writing(p, "pad1"), "conv1", "pad1.pads", "pad1.value");
    onnx_free(p);
    p = export_unpack(m, 10);
    ck_assert_uint_eq(p->graph->n_node, 28);
    n = node_writing(p, "pad1");
    ck_assert_str_eq(n->op_type, "Pad");
    inputs_eq(n, "conv1", NULL, NULL);
    const int64_t pads[8] = {0, 0, 1, 2, 0, 0, 0, -1};
    attr_ints_eq(n, "pads", pads, 8);
    ck_assert_float_eq(attr_f(n, "value"), 0.3f);
    ck_assert_ptr_null(init(p, "pad1.pads"));
    ck_assert_str_eq(node_writing(p, "conv1")->op_type, "Mul");
    n = node_writing(p, "output");
    ck_assert_str_eq(n->op_type, "LogSoftmax");
    ck_assert_int_eq(attr_i(n, "axis"), 1);
    onnx_free(p);
    cnn_model_destroy(m);
}
END_TEST

/* PReLU and scale-shift on a (N, C) value: per-channel initializers shaped (C), which
 * broadcast over (N, C) as (C, 1, 1) would not. */
START_TEST(test_export_per_channel_on_a_flat_value)
{
    struct cnn_model *m = compiled(test_net_kinds_flat(2));
    Onnx__ModelProto *p = export_unpack(m, 14);
    static const char *const ops[] = {"Flatten", "Gemm",      "PRelu", "Mul",
                                      "Add",     "HardSwish", "Gemm",  "Softmax"};
    ops_eq(p, ops, sizeof ops / sizeof ops[0]);
    const int64_t c6[1] = {6};
    channel_init_eq(p, m, "pr.slope", "pr", 0, c6, 1);
    channel_init_eq(p, m, "ss.scale", "ss", 0, c6, 1);
    channel_init_eq(p, m, "ss.shift", "ss", 1, c6, 1);
    inputs_eq(node_writing(p, "ss"), "ss/preact", NULL, NULL);
    onnx_free(p);
    cnn_model_destroy(m);
}
END_TEST

/* A model whose output is still (C, H, W) gets a Flatten to "output" (N, C*H*W). */
START_TEST(test_export_4d_output_is_flattened)
{
    struct cnn_preproc pp = {.c = 1, .h = 4, .w = 4, .mean = {0}, .std = {1}};
    struct cnn_err err = {0};
    struct cnn_model *m = cnn_model_create(&pp, &err);
    struct cnn_layer_desc d = {.kind = CNN_LAYER_MAXPOOL, .name = "output"}; /* the name too */
    d.p.pool = (struct cnn_pool2d){.kh = 2, .kw = 2, .sh = 2, .sw = 2};
    add(m, d);
    ck_assert_int_eq(cnn_model_alloc_params(m, &err), 0);
    compiled(m);
    Onnx__ModelProto *p = export_unpack(m, 13);
    static const char *const ops[] = {"MaxPool", "Flatten"};
    ops_eq(p, ops, 2);
    ck_assert_str_eq(p->graph->node[0]->output[0], "output_1");
    ck_assert_str_eq(p->graph->node[1]->input[0], "output_1");
    const int out[1] = {4};
    value_shape_eq(p->graph->output[0], "output", out, 1);
    ck_assert_uint_eq(p->graph->n_initializer, 0);
    onnx_free(p);
    cnn_model_destroy(m);
}
END_TEST

START_TEST(test_export_refuses_name_clash_and_newline_label)
{
    struct cnn_preproc pp = {.c = 1, .h = 4, .w = 4, .mean = {0}, .std = {1}};
    struct cnn_err err = {0};
    struct cnn_model *m = cnn_model_create(&pp, &err);
    add(m, onnx_test_conv("a", 2, 1, 0, 0, (struct cnn_act_params){CNN_ACT_RELU, 0, 0}));
    add(m, (struct cnn_layer_desc){.kind = CNN_LAYER_GLOBAL_AVGPOOL, .name = "a/preact"});
    add(m, (struct cnn_layer_desc){.kind = CNN_LAYER_SOFTMAX, .name = "prob"});
    const char *labels[2] = {"x", "two\nlines"};
    ck_assert_int_eq(cnn_model_set_labels(m, labels, 2, &err), 0);
    ck_assert_int_eq(cnn_model_alloc_params(m, &err), 0);
    compiled(m);
    void *data = NULL;
    size_t size;
    ck_assert_int_eq(cnn_onnx_export_mem(m, 13, &data, &size, &err), CNN_EINVAL);
    ck_assert_msg(strstr(err.msg, "'a/preact'") != NULL, "%s", err.msg);
    ck_assert_ptr_null(data);
    cnn_model_destroy(m);
    m = compiled(test_net_small(1));
    ck_assert_int_eq(cnn_model_set_labels(m, labels, 0, &err), CNN_EINVAL); /* 4 classes */
    const char *four[4] = {"a", "b", "c\nd", "e"};
    ck_assert_int_eq(cnn_model_set_labels(m, four, 4, &err), 0);
    ck_assert_int_eq(cnn_onnx_export_mem(m, 13, &data, &size, &err), CNN_EINVAL);
    ck_assert_msg(strstr(err.msg, "label 2") != NULL, "%s", err.msg);
    cnn_model_destroy(m);
}
END_TEST

/* The file holds exactly the bytes of the memory export; nothing else is left in the folder;
 * a missing folder is CNN_ENOENT. */
START_TEST(test_export_save_writes_the_packed_bytes_durably)
{
    char dir[256], path[512];
    make_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/net.onnx", dir);
    struct cnn_model *m = compiled(test_net_wide(2));
    struct cnn_err err = {0};
    ck_assert_msg(cnn_onnx_export_save(m, path, 13, &err) == 0, "%s", err.msg);
    void *data;
    size_t size, n;
    ck_assert_int_eq(cnn_onnx_export_mem(m, 13, &data, &size, &err), 0);
    unsigned char *file = read_all(path, &n);
    ck_assert_uint_eq(n, size);
    ck_assert(memcmp(file, data, n) == 0);
    free(file);
    free(data);
    DIR *d = opendir(dir);
    int entries = 0;
    for (struct dirent *e; (e = readdir(d));)
        entries += e->d_name[0] != '.';
    closedir(d);
    ck_assert_int_eq(entries, 1);
    snprintf(path, sizeof path, "%s/missing/net.onnx", dir);
    ck_assert_int_eq(cnn_onnx_export_save(m, path, 13, &err), CNN_ENOENT);
    cnn_model_destroy(m);
    rm_tree(dir);
}
END_TEST

START_TEST(test_model_set_preproc_keeps_the_input_shape)
{
    struct cnn_model *m = compiled(test_net_small(1));
    struct cnn_preproc pp = *cnn_model_preproc(m);
    struct cnn_err err = {0};
    pp.h = 9;
    ck_assert_int_eq(cnn_model_set_preproc(m, &pp, &err), CNN_EINVAL);
    pp.h = 8;
    pp.std[0] = 0;
    ck_assert_int_eq(cnn_model_set_preproc(m, &pp, &err), CNN_EINVAL);
    ck_assert_float_eq(cnn_model_preproc(m)->std[0], 0.25f);
    pp.std[0] = 0.5f;
    pp.resize = CNN_RESIZE_SHORTER_CROP;
    pp.resize_short = 10;
    ck_assert_int_eq(cnn_model_set_preproc(m, &pp, &err), 0);
    ck_assert_float_eq(cnn_model_preproc(m)->std[0], 0.5f);
    ck_assert_int_eq(cnn_model_preproc(m)->resize_short, 10);
    cnn_model_destroy(m);
}
END_TEST

/* Runs "$CNN_TOOL convert ARGS" in the shell; returns its exit status. */
static int cnn_convert(const char *args)
{
    const char *tool = getenv("CNN_TOOL");
    ck_assert_msg(tool != NULL, "CNN_TOOL is not set (make unit sets it)");
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' convert %s >/dev/null 2>&1", tool, args);
    int st = system(cmd);
    ck_assert(WIFEXITED(st));
    return WEXITSTATUS(st);
}

START_TEST(test_cnn_convert_sets_labels_and_preprocessing)
{
    char dir[256], src[512], lab[512], args[2048], out[512];
    make_tmpdir(dir, sizeof dir);
    snprintf(src, sizeof src, "%s/in.cnn", dir);
    snprintf(lab, sizeof lab, "%s/labels.txt", dir);
    snprintf(out, sizeof out, "%s/out.cnn", dir);
    struct cnn_model *m = compiled(test_net_small(1));
    struct cnn_err err = {0};
    ck_assert_int_eq(cnn_model_save(m, src, &err), 0);
    cnn_model_destroy(m);
    FILE *f = fopen(lab, "w");
    fputs("cat\r\ndog\nbird\nfish", f);
    fclose(f);
    snprintf(args, sizeof args, "'%s' '%s' --labels '%s' --mean 0.25 --std 0.5 --resize crop", src,
             out, lab);
    ck_assert_int_eq(cnn_convert(args), 0);
    ck_assert_int_eq(cnn_model_load(out, &m, &err), 0);
    ck_assert_str_eq(cnn_model_label(m, 0), "cat");
    ck_assert_str_eq(cnn_model_label(m, 3), "fish");
    ck_assert_float_eq(cnn_model_preproc(m)->mean[0], 0.25f);
    ck_assert_float_eq(cnn_model_preproc(m)->std[0], 0.5f);
    ck_assert_int_eq(cnn_model_preproc(m)->resize, CNN_RESIZE_SHORTER_CROP);
    ck_assert_int_eq(cnn_model_preproc(m)->resize_short, 10); /* 8 * 256 / 224, rounded up */
    cnn_model_destroy(m);
    snprintf(args, sizeof args, "'%s' '%s/o.onnx' --opset 9", out, dir);
    ck_assert_int_eq(cnn_convert(args), 0);
    snprintf(args, sizeof args, "'%s' '%s' --opset 13", src, out); /* --opset: .onnx only */
    ck_assert_int_eq(cnn_convert(args), 2);
    snprintf(args, sizeof args, "'%s' '%s/o.onnx' --opset 18", src, dir);
    ck_assert_int_eq(cnn_convert(args), 2);
    snprintf(args, sizeof args, "'%s' '%s' --resize sideways", src, out);
    ck_assert_int_eq(cnn_convert(args), 2);
    snprintf(args, sizeof args, "'%s' '%s' --mean 1,2", src, out); /* 1 channel */
    ck_assert_int_eq(cnn_convert(args), 2);
    f = fopen(lab, "w");
    fputs("one\ntwo\n", f);
    fclose(f);
    snprintf(args, sizeof args, "'%s' '%s' --labels '%s'", src, out, lab);
    ck_assert_int_eq(cnn_convert(args), 1); /* 2 labels for 4 classes */
    snprintf(args, sizeof args, "'%s/none.cnn' '%s/x.onnx'", dir, dir);
    ck_assert_int_eq(cnn_convert(args), 1);
    rm_tree(dir);
}
END_TEST

Suite *onnx_export_suite(void)
{
    Suite *s = suite_create("onnx_export");
    TCase *tc = tcase_create("export");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_export_dag_has_every_kind_in_graph_order);
    tcase_add_test(tc, test_export_dag_attributes_match_layer_params);
    tcase_add_test(tc, test_export_ranks_at_opset_10);
    tcase_add_test(tc, test_export_metadata_props_hold_labels_and_preprocessing);
    tcase_add_test(tc, test_export_opset_forms_and_limits);
    tcase_add_test(tc, test_export_new_kinds_at_opset_13);
    tcase_add_test(tc, test_export_new_kinds_at_opsets_17_and_10);
    tcase_add_test(tc, test_export_per_channel_on_a_flat_value);
    tcase_add_test(tc, test_export_4d_output_is_flattened);
    tcase_add_test(tc, test_export_refuses_name_clash_and_newline_label);
    tcase_add_test(tc, test_export_save_writes_the_packed_bytes_durably);
    tcase_add_test(tc, test_model_set_preproc_keeps_the_input_shape);
    tcase_add_test(tc, test_cnn_convert_sets_labels_and_preprocessing);
    suite_add_tcase(s, tc);
    return s;
}
