/* Builders of ONNX files for the onnx suites (test_onnx.h): protos from an arena, packed
 * with protobuf-c, a small conv net, and running a model on a batch. */
#include "test_onnx.h"

#include "onnx.h"
#include "onnx_export.h"

#include "session.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a tiny arena so built protos are freed in one go ---- */

static void **g_arena;
static size_t g_n_arena, g_cap_arena;

void *tox_alloc(size_t n)
{
    if (g_n_arena == g_cap_arena) {
        g_cap_arena = g_cap_arena ? 2 * g_cap_arena : 1024;
        g_arena = realloc(g_arena, g_cap_arena * sizeof *g_arena);
        ck_assert_ptr_nonnull(g_arena);
    }
    void *p = calloc(1, n ? n : 1);
    ck_assert_ptr_nonnull(p);
    return g_arena[g_n_arena++] = p;
}

void tox_arena_free(void)
{
    for (size_t k = 0; k < g_n_arena; k++)
        free(g_arena[k]);
    free(g_arena);
    g_arena = NULL;
    g_n_arena = g_cap_arena = 0;
}

char *tox_str(const char *s)
{
    char *p = tox_alloc(strlen(s) + 1);
    strcpy(p, s);
    return p;
}

Onnx__TensorProto *tox_tensor_f(const char *name, int nd, const int64_t *dims, const float *v)
{
    Onnx__TensorProto *t = tox_alloc(sizeof *t);
    onnx__tensor_proto__init(t);
    t->name = tox_str(name);
    t->n_dims = (size_t)nd;
    t->dims = tox_alloc((size_t)nd * sizeof *t->dims);
    if (nd)
        memcpy(t->dims, dims, (size_t)nd * sizeof *dims);
    t->has_data_type = 1;
    t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    size_t n = 1;
    for (int k = 0; k < nd; k++)
        n *= (size_t)dims[k];
    t->n_float_data = v ? n : 0;
    t->float_data = v ? tox_alloc(n * sizeof(float)) : NULL;
    if (v)
        memcpy(t->float_data, v, n * sizeof(float));
    return t;
}

Onnx__NodeProto *tox_node(struct tox_graph *g, const char *op, const char *name, const char *in0,
                          const char *in1, const char *in2, const char *out)
{
    Onnx__NodeProto *n = tox_alloc(sizeof *n);
    onnx__node_proto__init(n);
    n->op_type = tox_str(op);
    n->name = tox_str(name);
    const char *ins[3] = {in0, in1, in2};
    n->input = tox_alloc(8 * sizeof *n->input); /* room for tox_add_input() */
    for (int k = 0; k < 3 && ins[k]; k++)
        n->input[n->n_input++] = tox_str(ins[k]);
    n->n_output = 1;
    n->output = tox_alloc(sizeof *n->output);
    n->output[0] = tox_str(out);
    n->attribute = tox_alloc(8 * sizeof *n->attribute);
    g->nodes[g->n_nodes++] = n;
    return n;
}

void tox_add_input(Onnx__NodeProto *n, const char *name)
{
    n->input[n->n_input++] = tox_str(name);
}

Onnx__AttributeProto *tox_attr(Onnx__NodeProto *n, const char *name)
{
    Onnx__AttributeProto *a = tox_alloc(sizeof *a);
    onnx__attribute_proto__init(a);
    a->name = tox_str(name);
    n->attribute[n->n_attribute++] = a;
    return a;
}

void tox_attr_i(Onnx__NodeProto *n, const char *name, int64_t v)
{
    Onnx__AttributeProto *a = tox_attr(n, name);
    a->has_type = a->has_i = 1;
    a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
    a->i = v;
}

void tox_attr_f(Onnx__NodeProto *n, const char *name, float v)
{
    Onnx__AttributeProto *a = tox_attr(n, name);
    a->has_type = a->has_f = 1;
    a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
    a->f = v;
}

void tox_attr_ints(Onnx__NodeProto *n, const char *name, int count, const int64_t *v)
{
    Onnx__AttributeProto *a = tox_attr(n, name);
    a->has_type = 1;
    a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
    a->n_ints = (size_t)count;
    a->ints = tox_alloc((size_t)count * sizeof *a->ints);
    memcpy(a->ints, v, (size_t)count * sizeof *v);
}

static Onnx__ValueInfoProto *vinfo(const char *name, int nd, const int64_t *dims)
{
    Onnx__ValueInfoProto *vi = tox_alloc(sizeof *vi);
    onnx__value_info_proto__init(vi);
    vi->name = tox_str(name);
    Onnx__TypeProto *tp = tox_alloc(sizeof *tp);
    onnx__type_proto__init(tp);
    Onnx__TypeProto__Tensor *tt = tox_alloc(sizeof *tt);
    onnx__type_proto__tensor__init(tt);
    tt->has_elem_type = 1;
    tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    Onnx__TensorShapeProto *sp = tox_alloc(sizeof *sp);
    onnx__tensor_shape_proto__init(sp);
    sp->n_dim = (size_t)nd;
    sp->dim = tox_alloc((size_t)nd * sizeof *sp->dim);
    for (int k = 0; k < nd; k++) {
        Onnx__TensorShapeProto__Dimension *d = tox_alloc(sizeof *d);
        onnx__tensor_shape_proto__dimension__init(d);
        if (dims[k] < 0) {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            d->dim_param = tox_str("N");
        } else {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d->dim_value = dims[k];
        }
        sp->dim[k] = d;
    }
    tt->shape = sp;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    vi->type = tp;
    return vi;
}

/* Packs g (input "x" of in_dims, output g->output) into a malloc'd buffer. */
uint8_t *tox_pack(const struct tox_graph *g, size_t *size)
{
    Onnx__ModelProto *m = tox_alloc(sizeof *m);
    onnx__model_proto__init(m);
    m->has_ir_version = 1;
    m->ir_version = 7;
    Onnx__OperatorSetIdProto *op = tox_alloc(sizeof *op);
    onnx__operator_set_id_proto__init(op);
    op->domain = tox_str("");
    op->has_version = 1;
    op->version = g->opset ? g->opset : 13;
    m->n_opset_import = 1;
    m->opset_import = tox_alloc(sizeof *m->opset_import);
    m->opset_import[0] = op;
    Onnx__GraphProto *gp = tox_alloc(sizeof *gp);
    onnx__graph_proto__init(gp);
    gp->name = tox_str("g");
    gp->n_node = g->n_nodes;
    gp->node = (Onnx__NodeProto **)g->nodes;
    gp->n_initializer = g->n_inits;
    gp->initializer = (Onnx__TensorProto **)g->inits;
    gp->n_input = 1;
    gp->input = tox_alloc(sizeof *gp->input);
    gp->input[0] = vinfo("x", g->in_rank ? g->in_rank : 4, g->in_dims);
    gp->n_output = 1;
    gp->output = tox_alloc(sizeof *gp->output);
    int64_t od[2] = {-1, 1};
    gp->output[0] = vinfo(g->output, 2, od);
    m->graph = gp;
    m->n_metadata_props = g->n_props;
    m->metadata_props = tox_alloc((g->n_props + 1) * sizeof *m->metadata_props);
    for (size_t k = 0; k < g->n_props; k++) {
        Onnx__StringStringEntryProto *e = tox_alloc(sizeof *e);
        onnx__string_string_entry_proto__init(e);
        e->key = tox_str(g->props[k][0]);
        e->value = tox_str(g->props[k][1]);
        m->metadata_props[k] = e;
    }
    *size = onnx__model_proto__get_packed_size(m);
    uint8_t *buf = malloc(*size);
    ck_assert_ptr_nonnull(buf);
    onnx__model_proto__pack(m, buf);
    return buf;
}

static float frand(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((*s >> 40) & 0xffff) / 32768.0f - 1.0f;
}

void tox_fill(float *v, size_t n, uint64_t seed)
{
    for (size_t k = 0; k < n; k++)
        v[k] = frand(&seed);
}

/* ---- the conv net, ONNX and native ---- */

float tox_w[TOX_OC * 3 * 3 * 3], tox_b[TOX_OC], tox_fc[TOX_NC * TOX_FEAT], tox_fb[TOX_NC];

/* x (1,3,8,8) -> Conv 3x3 pad 1 -> Relu -> MaxPool 2 -> Flatten -> Gemm -> Softmax. */
struct tox_graph *tox_conv_net(void)
{
    tox_fill(tox_w, sizeof tox_w / 4, 1);
    tox_fill(tox_b, sizeof tox_b / 4, 2);
    tox_fill(tox_fc, sizeof tox_fc / 4, 3);
    tox_fill(tox_fb, sizeof tox_fb / 4, 4);
    struct tox_graph *g = tox_alloc(sizeof *g);
    int64_t in[4] = {-1, 3, 8, 8}, wd[4] = {TOX_OC, 3, 3, 3}, bd[1] = {TOX_OC},
            fd[2] = {TOX_NC, TOX_FEAT}, fbd[1] = {TOX_NC}, k2[2] = {2, 2}, p1[4] = {1, 1, 1, 1};
    memcpy(g->in_dims, in, sizeof in);
    g->inits[g->n_inits++] = tox_tensor_f("W", 4, wd, tox_w);
    g->inits[g->n_inits++] = tox_tensor_f("B", 1, bd, tox_b);
    g->inits[g->n_inits++] = tox_tensor_f("FC", 2, fd, tox_fc);
    g->inits[g->n_inits++] = tox_tensor_f("FB", 1, fbd, tox_fb);
    Onnx__NodeProto *n = tox_node(g, "Conv", "conv1", "x", "W", "B", "c");
    tox_attr_ints(n, "pads", 4, p1);
    tox_node(g, "Relu", "relu1", "c", NULL, NULL, "r");
    n = tox_node(g, "MaxPool", "pool1", "r", NULL, NULL, "p");
    tox_attr_ints(n, "kernel_shape", 2, k2);
    tox_attr_ints(n, "strides", 2, k2);
    tox_node(g, "Flatten", "flat", "p", NULL, NULL, "f");
    n = tox_node(g, "Gemm", "fc", "f", "FC", "FB", "y");
    tox_attr_i(n, "transB", 1);
    tox_node(g, "Softmax", "prob", "y", NULL, NULL, "out");
    g->output = "out";
    return g;
}

Onnx__TensorProto *tox_tensor_i(const char *name, int nd, const int64_t *dims, const int64_t *v,
                                size_t n)
{
    Onnx__TensorProto *t = tox_tensor_f(name, nd, dims, NULL);
    t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
    t->n_int64_data = n;
    t->int64_data = tox_alloc(n * sizeof *t->int64_data);
    memcpy(t->int64_data, v, n * sizeof *v);
    return t;
}

/* Runs m on batch n of x and copies the outputs (n * classes floats) into out. */
struct cnn_model *tox_load(const struct tox_graph *g)
{
    size_t size;
    uint8_t *buf = tox_pack(g, &size);
    struct cnn_err err = {0};
    struct cnn_model *m = NULL;
    int rc = cnn_onnx_load_mem(buf, size, NULL, 0, &m, &err);
    free(buf);
    ck_assert_msg(rc == 0, "%s", err.msg);
    return m;
}

void tox_run(const struct cnn_model *m, const float *x, int n, float *out)
{
    struct cnn_err err = {0};
    struct cnn_session *s = cnn_session_create(m, n, &err);
    ck_assert_ptr_nonnull(s);
    const float *p;
    ck_assert_int_eq(cnn_session_forward(s, m, x, n, &p, &err), 0);
    memcpy(out, p, (size_t)n * (size_t)cnn_model_num_classes(m) * sizeof *out);
    cnn_session_destroy(s);
}

void tox_assert_close(const float *a, const float *b, size_t n, float tol)
{
    for (size_t k = 0; k < n; k++)
        ck_assert_msg(fabsf(a[k] - b[k]) <= tol, "value %zu: %g vs %g", k, a[k], b[k]);
}

void tox_export_round_trip(const struct cnn_model *m, int opset, const float *x, int n,
                           const float *want, int k, float tol)
{
    void *data;
    size_t size;
    struct cnn_err err = {0};
    ck_assert_msg(cnn_onnx_export_mem(m, opset, &data, &size, &err) == 0, "%s", err.msg);
    struct cnn_model *back = NULL;
    ck_assert_msg(cnn_onnx_load_mem(data, size, NULL, 0, &back, &err) == 0, "%s", err.msg);
    float *got = malloc((size_t)k * sizeof *got);
    ck_assert_ptr_nonnull(got);
    tox_run(back, x, n, got);
    tox_assert_close(got, want, k, tol);
    free(got);
    free(data);
    cnn_model_destroy(back);
}
