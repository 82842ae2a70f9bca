/* Suite onnx: ONNX files packed here with protobuf-c.  A small conv net imported from ONNX
 * gives the outputs of the same net built natively with the same weights (through a file
 * path too), Gemm's transB / alpha / beta against a naive product, and hostile files
 * (truncated, wrong types, huge or overflowing dims, cycles, dangling names, unknown ops,
 * raw_data mismatch, external data, 10,000 nodes, deep nesting) each get a clear error. */
#include "model.h"
#include "onnx.h"
#include "onnx.pb-c.h"
#include "session.h"
#include "test_util.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a tiny arena so built protos are freed in one go ---- */

static void **g_arena;
static size_t g_n_arena, g_cap_arena;

static void *alloc(size_t n)
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

static void arena_free(void)
{
    for (size_t k = 0; k < g_n_arena; k++)
        free(g_arena[k]);
    free(g_arena);
    g_arena = NULL;
    g_n_arena = g_cap_arena = 0;
}

static char *str(const char *s)
{
    char *p = alloc(strlen(s) + 1);
    strcpy(p, s);
    return p;
}

static Onnx__TensorProto *tensor_f(const char *name, int nd, const int64_t *dims,
                                   const float *v)
{
    Onnx__TensorProto *t = alloc(sizeof *t);
    onnx__tensor_proto__init(t);
    t->name = str(name);
    t->n_dims = (size_t)nd;
    t->dims = alloc((size_t)nd * sizeof *t->dims);
    if (nd)
        memcpy(t->dims, dims, (size_t)nd * sizeof *dims);
    t->has_data_type = 1;
    t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    size_t n = 1;
    for (int k = 0; k < nd; k++)
        n *= (size_t)dims[k];
    t->n_float_data = v ? n : 0;
    t->float_data = v ? alloc(n * sizeof(float)) : NULL;
    if (v)
        memcpy(t->float_data, v, n * sizeof(float));
    return t;
}

struct graph {
    Onnx__NodeProto *nodes[12000];
    size_t n_nodes;
    Onnx__TensorProto *inits[16];
    size_t n_inits;
    int64_t in_dims[4];
    int in_rank; /* 0: 4 */
    int opset;
    const char *output;
};

static Onnx__NodeProto *node(struct graph *g, const char *op, const char *name, const char *in0,
                             const char *in1, const char *in2, const char *out)
{
    Onnx__NodeProto *n = alloc(sizeof *n);
    onnx__node_proto__init(n);
    n->op_type = str(op);
    n->name = str(name);
    const char *ins[3] = {in0, in1, in2};
    n->input = alloc(8 * sizeof *n->input); /* room for add_input() */
    for (int k = 0; k < 3 && ins[k]; k++)
        n->input[n->n_input++] = str(ins[k]);
    n->n_output = 1;
    n->output = alloc(sizeof *n->output);
    n->output[0] = str(out);
    n->attribute = alloc(8 * sizeof *n->attribute);
    g->nodes[g->n_nodes++] = n;
    return n;
}

static void add_input(Onnx__NodeProto *n, const char *name)
{
    n->input[n->n_input++] = str(name);
}

static Onnx__AttributeProto *attr(Onnx__NodeProto *n, const char *name)
{
    Onnx__AttributeProto *a = alloc(sizeof *a);
    onnx__attribute_proto__init(a);
    a->name = str(name);
    n->attribute[n->n_attribute++] = a;
    return a;
}

static void attr_i(Onnx__NodeProto *n, const char *name, int64_t v)
{
    Onnx__AttributeProto *a = attr(n, name);
    a->has_type = a->has_i = 1;
    a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
    a->i = v;
}

static void attr_f(Onnx__NodeProto *n, const char *name, float v)
{
    Onnx__AttributeProto *a = attr(n, name);
    a->has_type = a->has_f = 1;
    a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
    a->f = v;
}

static void attr_ints(Onnx__NodeProto *n, const char *name, int count, const int64_t *v)
{
    Onnx__AttributeProto *a = attr(n, name);
    a->has_type = 1;
    a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
    a->n_ints = (size_t)count;
    a->ints = alloc((size_t)count * sizeof *a->ints);
    memcpy(a->ints, v, (size_t)count * sizeof *v);
}

static Onnx__ValueInfoProto *vinfo(const char *name, int nd, const int64_t *dims)
{
    Onnx__ValueInfoProto *vi = alloc(sizeof *vi);
    onnx__value_info_proto__init(vi);
    vi->name = str(name);
    Onnx__TypeProto *tp = alloc(sizeof *tp);
    onnx__type_proto__init(tp);
    Onnx__TypeProto__Tensor *tt = alloc(sizeof *tt);
    onnx__type_proto__tensor__init(tt);
    tt->has_elem_type = 1;
    tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    Onnx__TensorShapeProto *sp = alloc(sizeof *sp);
    onnx__tensor_shape_proto__init(sp);
    sp->n_dim = (size_t)nd;
    sp->dim = alloc((size_t)nd * sizeof *sp->dim);
    for (int k = 0; k < nd; k++) {
        Onnx__TensorShapeProto__Dimension *d = alloc(sizeof *d);
        onnx__tensor_shape_proto__dimension__init(d);
        if (dims[k] < 0) {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            d->dim_param = str("N");
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
static uint8_t *pack(const struct graph *g, size_t *size)
{
    Onnx__ModelProto *m = alloc(sizeof *m);
    onnx__model_proto__init(m);
    m->has_ir_version = 1;
    m->ir_version = 7;
    Onnx__OperatorSetIdProto *op = alloc(sizeof *op);
    onnx__operator_set_id_proto__init(op);
    op->domain = str("");
    op->has_version = 1;
    op->version = g->opset ? g->opset : 13;
    m->n_opset_import = 1;
    m->opset_import = alloc(sizeof *m->opset_import);
    m->opset_import[0] = op;
    Onnx__GraphProto *gp = alloc(sizeof *gp);
    onnx__graph_proto__init(gp);
    gp->name = str("g");
    gp->n_node = g->n_nodes;
    gp->node = (Onnx__NodeProto **)g->nodes;
    gp->n_initializer = g->n_inits;
    gp->initializer = (Onnx__TensorProto **)g->inits;
    gp->n_input = 1;
    gp->input = alloc(sizeof *gp->input);
    gp->input[0] = vinfo("x", g->in_rank ? g->in_rank : 4, g->in_dims);
    gp->n_output = 1;
    gp->output = alloc(sizeof *gp->output);
    int64_t od[2] = {-1, 1};
    gp->output[0] = vinfo(g->output, 2, od);
    m->graph = gp;
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

static void fill(float *v, size_t n, uint64_t seed)
{
    for (size_t k = 0; k < n; k++)
        v[k] = frand(&seed);
}

/* ---- the conv net, ONNX and native ---- */

enum { OC = 4, NC = 10, FEAT = OC * 4 * 4 };
static float g_w[OC * 3 * 3 * 3], g_b[OC], g_fc[NC * FEAT], g_fb[NC];

/* x (1,3,8,8) -> Conv 3x3 pad 1 -> Relu -> MaxPool 2 -> Flatten -> Gemm -> Softmax. */
static struct graph *conv_net(void)
{
    fill(g_w, sizeof g_w / 4, 1);
    fill(g_b, sizeof g_b / 4, 2);
    fill(g_fc, sizeof g_fc / 4, 3);
    fill(g_fb, sizeof g_fb / 4, 4);
    struct graph *g = alloc(sizeof *g);
    int64_t in[4] = {-1, 3, 8, 8}, wd[4] = {OC, 3, 3, 3}, bd[1] = {OC}, fd[2] = {NC, FEAT},
            fbd[1] = {NC}, k2[2] = {2, 2}, p1[4] = {1, 1, 1, 1};
    memcpy(g->in_dims, in, sizeof in);
    g->inits[g->n_inits++] = tensor_f("W", 4, wd, g_w);
    g->inits[g->n_inits++] = tensor_f("B", 1, bd, g_b);
    g->inits[g->n_inits++] = tensor_f("FC", 2, fd, g_fc);
    g->inits[g->n_inits++] = tensor_f("FB", 1, fbd, g_fb);
    Onnx__NodeProto *n = node(g, "Conv", "conv1", "x", "W", "B", "c");
    attr_ints(n, "pads", 4, p1);
    node(g, "Relu", "relu1", "c", NULL, NULL, "r");
    n = node(g, "MaxPool", "pool1", "r", NULL, NULL, "p");
    attr_ints(n, "kernel_shape", 2, k2);
    attr_ints(n, "strides", 2, k2);
    node(g, "Flatten", "flat", "p", NULL, NULL, "f");
    n = node(g, "Gemm", "fc", "f", "FC", "FB", "y");
    attr_i(n, "transB", 1);
    node(g, "Softmax", "prob", "y", NULL, NULL, "out");
    g->output = "out";
    return g;
}

static struct cnn_model *native_net(void)
{
    struct cnn_preproc pp = {.c = 3, .h = 8, .w = 8, .std = {1, 1, 1}};
    struct cnn_err err = {0};
    struct cnn_model *m = cnn_model_create(&pp, &err);
    ck_assert_ptr_nonnull(m);
    struct cnn_layer_desc d = {.kind = CNN_LAYER_CONV2D};
    d.p.conv = (struct cnn_conv2d){.oc = OC, .kh = 3, .kw = 3, .sh = 1, .sw = 1, .dh = 1,
                                   .dw = 1, .pad_t = 1, .pad_l = 1, .pad_b = 1, .pad_r = 1,
                                   .groups = 1, .has_bias = 1};
    ck_assert_int_eq(cnn_model_add(m, &d, &err), 1);
    d = (struct cnn_layer_desc){.kind = CNN_LAYER_ACT, .p.act.kind = CNN_ACT_RELU};
    ck_assert_int_eq(cnn_model_add(m, &d, &err), 2);
    d = (struct cnn_layer_desc){.kind = CNN_LAYER_MAXPOOL};
    d.p.pool = (struct cnn_pool2d){.kh = 2, .kw = 2, .sh = 2, .sw = 2};
    ck_assert_int_eq(cnn_model_add(m, &d, &err), 3);
    d = (struct cnn_layer_desc){.kind = CNN_LAYER_FLATTEN};
    ck_assert_int_eq(cnn_model_add(m, &d, &err), 4);
    d = (struct cnn_layer_desc){.kind = CNN_LAYER_DENSE, .p.dense = {.out = NC, .has_bias = 1}};
    ck_assert_int_eq(cnn_model_add(m, &d, &err), 5);
    d = (struct cnn_layer_desc){.kind = CNN_LAYER_SOFTMAX};
    ck_assert_int_eq(cnn_model_add(m, &d, &err), 6);
    ck_assert_int_eq(cnn_model_alloc_params(m, &err), 0);
    size_t n;
    memcpy(cnn_model_weights_mut(m, 1, 0, &n), g_w, sizeof g_w);
    memcpy(cnn_model_weights_mut(m, 1, 1, &n), g_b, sizeof g_b);
    memcpy(cnn_model_weights_mut(m, 5, 0, &n), g_fc, sizeof g_fc);
    memcpy(cnn_model_weights_mut(m, 5, 1, &n), g_fb, sizeof g_fb);
    ck_assert_int_eq(cnn_model_compile(m, &err), 0);
    return m;
}

/* Runs m on batch n of x and copies the outputs (n * classes floats) into out. */
static void run(const struct cnn_model *m, const float *x, int n, float *out)
{
    struct cnn_err err = {0};
    struct cnn_session *s = cnn_session_create(m, n, &err);
    ck_assert_ptr_nonnull(s);
    const float *p;
    ck_assert_int_eq(cnn_session_forward(s, m, x, n, &p, &err), 0);
    memcpy(out, p, (size_t)n * (size_t)cnn_model_num_classes(m) * sizeof *out);
    cnn_session_destroy(s);
}

static void assert_close(const float *a, const float *b, size_t n, float tol)
{
    for (size_t k = 0; k < n; k++)
        ck_assert_msg(fabsf(a[k] - b[k]) <= tol, "value %zu: %g vs %g", k, a[k], b[k]);
}

START_TEST(test_conv_net_matches_native_build)
{
    size_t size;
    uint8_t *buf = pack(conv_net(), &size);
    struct cnn_err err = {0};
    struct cnn_model *m = NULL, *ref = native_net();
    ck_assert_msg(cnn_onnx_load_mem(buf, size, NULL, 0, &m, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(cnn_model_num_classes(m), NC);
    ck_assert_int_eq(cnn_model_preproc(m)->c, 3);
    ck_assert_int_eq(cnn_model_preproc(m)->h, 8);
    float x[3 * 3 * 8 * 8], a[3 * NC], b[3 * NC];
    fill(x, sizeof x / 4, 9);
    run(m, x, 3, a);
    run(ref, x, 3, b);
    assert_close(a, b, 3 * NC, 1e-6f);
    cnn_model_destroy(m);
    /* the same file through cnn_model_load by its .onnx name */
    char dir[64], path[96];
    make_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(buf, 1, size, f), size);
    fclose(f);
    ck_assert_msg(cnn_model_load(path, &m, &err) == 0, "%s", err.msg);
    run(m, x, 3, a);
    assert_close(a, b, 3 * NC, 1e-6f);
    cnn_model_destroy(m);
    rm_tree(dir);
    cnn_model_destroy(ref);
    free(buf);
    arena_free();
}
END_TEST

/* Gemm with transB 0, alpha and beta, after GlobalAveragePool, against a naive product. */
START_TEST(test_gemm_alpha_beta_transposed_matches_naive)
{
    struct graph *g = alloc(sizeof *g);
    int64_t in[4] = {2, 3, 4, 4}, bd[2] = {3, 5}, cd[2] = {1, 5};
    float bm[15], cv[5];
    fill(bm, 15, 5);
    fill(cv, 5, 6);
    memcpy(g->in_dims, in, sizeof in);
    g->inits[g->n_inits++] = tensor_f("Bm", 2, bd, bm);
    g->inits[g->n_inits++] = tensor_f("Cv", 2, cd, cv);
    node(g, "GlobalAveragePool", "gap", "x", NULL, NULL, "p");
    node(g, "Flatten", "flat", "p", NULL, NULL, "f");
    Onnx__NodeProto *n = node(g, "Gemm", "fc", "f", "Bm", "Cv", "y");
    attr_f(n, "alpha", 0.5f);
    attr_f(n, "beta", 2.0f);
    g->output = "y";
    size_t size;
    uint8_t *buf = pack(g, &size);
    struct cnn_err err = {0};
    struct cnn_model *m = NULL;
    ck_assert_msg(cnn_onnx_load_mem(buf, size, NULL, 0, &m, &err) == 0, "%s", err.msg);
    float x[2 * 48], got[10], want[10];
    fill(x, 96, 7);
    run(m, x, 2, got);
    for (int i = 0; i < 2; i++)
        for (int o = 0; o < 5; o++) {
            double acc = 0;
            for (int c = 0; c < 3; c++) {
                double mean = 0;
                for (int k = 0; k < 16; k++)
                    mean += x[i * 48 + c * 16 + k];
                acc += mean / 16 * bm[c * 5 + o];
            }
            want[i * 5 + o] = (float)(0.5 * acc + 2.0 * cv[o]);
        }
    assert_close(got, want, 10, 1e-5f);
    cnn_model_destroy(m);
    free(buf);
    arena_free();
}
END_TEST

/* ---- every mapped op in one net, against the native build ---- */

static Onnx__TensorProto *tensor_i(const char *name, int nd, const int64_t *dims,
                                   const int64_t *v, size_t n)
{
    Onnx__TensorProto *t = tensor_f(name, nd, dims, NULL);
    t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
    t->n_int64_data = n;
    t->int64_data = alloc(n * sizeof *t->int64_data);
    memcpy(t->int64_data, v, n * sizeof *v);
    return t;
}

static Onnx__TensorProto *init_f(struct graph *g, const char *name, int nd, const int64_t *dims,
                                 float *v, uint64_t seed)
{
    size_t n = 1;
    for (int k = 0; k < nd; k++)
        n *= (size_t)dims[k];
    fill(v, n, seed);
    return g->inits[g->n_inits++] = tensor_f(name, nd, dims, v);
}

static float g_dw[27], g_bn[4][3], g_pw[24], g_pb[8], g_mm[96], g_fc2[30], g_fb2[5];

/* x (N,3,7,7) -> depthwise dilated asymmetric-pad conv -> BN -> Clip(0,6) -> 1x1 conv
 * SAME_UPPER stride 2 -> LRN -> [LRN, Sigmoid] concat -> AveragePool count_include_pad ->
 * GlobalAveragePool -> Shape/Gather/Unsqueeze/Concat -> Reshape -> MatMul -> LeakyRelu ->
 * Dropout -> Identity -> Gemm -> Tanh -> Softmax. */
static struct graph *op_chain(void)
{
    struct graph *g = alloc(sizeof *g);
    int64_t in[4] = {-1, 3, 7, 7}, d_dw[4] = {3, 1, 3, 3}, d3[1] = {3}, d_pw[4] = {8, 3, 1, 1},
            d8[1] = {8}, d_mm[2] = {16, 6}, d_fc[2] = {5, 6}, d5[1] = {5}, d1[1] = {1};
    memcpy(g->in_dims, in, sizeof in);
    init_f(g, "dw_w", 4, d_dw, g_dw, 11);
    static const char *const bn_names[4] = {"bn_s", "bn_b", "bn_m", "bn_v"};
    for (int k = 0; k < 4; k++)
        fill(g_bn[k], 3, 20 + (uint64_t)k);
    for (int k = 0; k < 3; k++)
        g_bn[3][k] = fabsf(g_bn[3][k]) + 0.1f; /* variance */
    for (int k = 0; k < 4; k++)
        g->inits[g->n_inits++] = tensor_f(bn_names[k], 1, d3, g_bn[k]);
    float lo = 0.0f, hi = 6.0f;
    g->inits[g->n_inits++] = tensor_f("cmin", 0, NULL, &lo);
    g->inits[g->n_inits++] = tensor_f("cmax", 0, NULL, &hi);
    init_f(g, "pw_w", 4, d_pw, g_pw, 12);
    init_f(g, "pw_b", 1, d8, g_pb, 13);
    init_f(g, "mm_b", 2, d_mm, g_mm, 14);
    init_f(g, "fc_w", 2, d_fc, g_fc2, 15);
    init_f(g, "fc_b", 1, d5, g_fb2, 16);
    int64_t zero = 0, minus1 = -1;
    g->inits[g->n_inits++] = tensor_i("idx0", 0, NULL, &zero, 1);
    g->inits[g->n_inits++] = tensor_i("ax0", 1, d1, &zero, 1);
    g->inits[g->n_inits++] = tensor_i("m1", 1, d1, &minus1, 1);
    static const int64_t dil[2] = {2, 2}, pads[4] = {1, 0, 2, 1}, s2[2] = {2, 2},
                         k2[2] = {2, 2}, s1[2] = {1, 1}, ap_pads[4] = {1, 1, 0, 0};
    Onnx__NodeProto *n = node(g, "Conv", "dw", "x", "dw_w", NULL, "dw");
    attr_i(n, "group", 3);
    attr_ints(n, "dilations", 2, dil);
    attr_ints(n, "pads", 4, pads);
    n = node(g, "BatchNormalization", "bn", "dw", "bn_s", "bn_b", "bn");
    add_input(n, "bn_m");
    add_input(n, "bn_v");
    attr_f(n, "epsilon", 1e-3f);
    node(g, "Clip", "clip", "bn", "cmin", "cmax", "clip");
    n = node(g, "Conv", "pw", "clip", "pw_w", "pw_b", "pw");
    attr_ints(n, "strides", 2, s2);
    Onnx__AttributeProto *a = attr(n, "auto_pad");
    a->has_s = 1;
    a->s.data = (uint8_t *)str("SAME_UPPER");
    a->s.len = 10;
    n = node(g, "LRN", "lrn", "pw", NULL, NULL, "lrn");
    attr_i(n, "size", 3);
    attr_f(n, "alpha", 0.01f);
    attr_f(n, "bias", 2.0f);
    node(g, "Sigmoid", "sig", "lrn", NULL, NULL, "sig");
    n = node(g, "Concat", "cat", "lrn", "sig", NULL, "cat");
    attr_i(n, "axis", 1);
    n = node(g, "AveragePool", "ap", "cat", NULL, NULL, "ap");
    attr_ints(n, "kernel_shape", 2, k2);
    attr_ints(n, "strides", 2, s1);
    attr_ints(n, "pads", 4, ap_pads);
    attr_i(n, "count_include_pad", 1);
    node(g, "GlobalAveragePool", "gap", "ap", NULL, NULL, "gap");
    node(g, "Shape", "shp", "gap", NULL, NULL, "shp");
    node(g, "Gather", "g0", "shp", "idx0", NULL, "batch");
    node(g, "Unsqueeze", "u", "batch", "ax0", NULL, "batch1");
    n = node(g, "Concat", "sc", "batch1", "m1", NULL, "newshape");
    attr_i(n, "axis", 0);
    node(g, "Reshape", "rs", "gap", "newshape", NULL, "flat");
    node(g, "MatMul", "mm", "flat", "mm_b", NULL, "mm");
    n = node(g, "LeakyRelu", "lr", "mm", NULL, NULL, "lr");
    attr_f(n, "alpha", 0.2f);
    node(g, "Dropout", "do", "lr", NULL, NULL, "do");
    node(g, "Identity", "id", "do", NULL, NULL, "id");
    n = node(g, "Gemm", "fc", "id", "fc_w", "fc_b", "fc");
    attr_i(n, "transB", 1);
    node(g, "Tanh", "th", "fc", NULL, NULL, "th");
    node(g, "Softmax", "sm", "th", NULL, NULL, "out");
    g->output = "out";
    return g;
}

static int add_native(struct cnn_model *m, struct cnn_layer_desc d, int n_in, int in0, int in1)
{
    struct cnn_err err = {0};
    int in[2] = {in0, in1};
    d.n_inputs = n_in;
    d.inputs = in;
    int idx = cnn_model_add(m, &d, &err);
    ck_assert_msg(idx > 0, "%s", err.msg);
    return idx;
}

static void set_w(struct cnn_model *m, int layer, int slot, const float *v, size_t n)
{
    size_t count;
    float *w = cnn_model_weights_mut(m, layer, slot, &count);
    ck_assert_uint_eq(count, n);
    memcpy(w, v, n * sizeof *v);
}

static struct cnn_model *native_chain(void)
{
    struct cnn_preproc pp = {.c = 3, .h = 7, .w = 7, .std = {1, 1, 1}};
    struct cnn_err err = {0};
    struct cnn_model *m = cnn_model_create(&pp, &err);
    ck_assert_ptr_nonnull(m);
    struct cnn_layer_desc d = {.kind = CNN_LAYER_CONV2D};
    d.p.conv = (struct cnn_conv2d){.oc = 3, .kh = 3, .kw = 3, .sh = 1, .sw = 1, .dh = 2,
                                   .dw = 2, .pad_t = 1, .pad_l = 0, .pad_b = 2, .pad_r = 1,
                                   .groups = 3};
    int dw = add_native(m, d, 1, 0, 0);
    int bn = add_native(m, (struct cnn_layer_desc){.kind = CNN_LAYER_BATCHNORM, .p.bn.eps = 1e-3f},
                        1, dw, 0);
    int clip = add_native(m, (struct cnn_layer_desc){.kind = CNN_LAYER_ACT,
                                                     .p.act = {CNN_ACT_CLIP, 0.0f, 6.0f}},
                          1, bn, 0);
    d.p.conv = (struct cnn_conv2d){.oc = 8, .kh = 1, .kw = 1, .sh = 2, .sw = 2, .dh = 1, .dw = 1,
                                   .groups = 1, .has_bias = 1}; /* SAME_UPPER: no pad here */
    int pw = add_native(m, d, 1, clip, 0);
    int lrn = add_native(m, (struct cnn_layer_desc){.kind = CNN_LAYER_LRN,
                                                    .p.lrn = {3, 0.01f, 0.75f, 2.0f}},
                         1, pw, 0);
    int sig = add_native(m, (struct cnn_layer_desc){.kind = CNN_LAYER_ACT,
                                                    .p.act.kind = CNN_ACT_SIGMOID},
                         1, lrn, 0);
    int cat = add_native(m, (struct cnn_layer_desc){.kind = CNN_LAYER_CONCAT}, 2, lrn, sig);
    struct cnn_layer_desc pd = {.kind = CNN_LAYER_AVGPOOL};
    pd.p.pool = (struct cnn_pool2d){.kh = 2, .kw = 2, .sh = 1, .sw = 1, .pad_t = 1, .pad_l = 1,
                                    .count_include_pad = 1};
    int ap = add_native(m, pd, 1, cat, 0);
    int gap = add_native(m, (struct cnn_layer_desc){.kind = CNN_LAYER_GLOBAL_AVGPOOL}, 1, ap, 0);
    int fl = add_native(m, (struct cnn_layer_desc){.kind = CNN_LAYER_FLATTEN}, 1, gap, 0);
    int mm = add_native(m, (struct cnn_layer_desc){.kind = CNN_LAYER_DENSE, .p.dense.out = 6}, 1,
                        fl, 0);
    int lr = add_native(m, (struct cnn_layer_desc){.kind = CNN_LAYER_ACT,
                                                   .p.act = {CNN_ACT_LEAKY_RELU, 0.2f, 0}},
                        1, mm, 0);
    int fc = add_native(m, (struct cnn_layer_desc){.kind = CNN_LAYER_DENSE,
                                                   .p.dense = {.out = 5, .has_bias = 1}},
                        1, lr, 0);
    int th = add_native(m, (struct cnn_layer_desc){.kind = CNN_LAYER_ACT,
                                                   .p.act.kind = CNN_ACT_TANH},
                        1, fc, 0);
    add_native(m, (struct cnn_layer_desc){.kind = CNN_LAYER_SOFTMAX}, 1, th, 0);
    ck_assert_int_eq(cnn_model_alloc_params(m, &err), 0);
    set_w(m, dw, 0, g_dw, 27);
    for (int k = 0; k < 4; k++)
        set_w(m, bn, k, g_bn[k], 3);
    set_w(m, pw, 0, g_pw, 24);
    set_w(m, pw, 1, g_pb, 8);
    float mmt[96]; /* MatMul's B is (16, 6): the dense layer wants (6, 16) */
    for (int i = 0; i < 16; i++)
        for (int o = 0; o < 6; o++)
            mmt[o * 16 + i] = g_mm[i * 6 + o];
    set_w(m, mm, 0, mmt, 96);
    set_w(m, fc, 0, g_fc2, 30);
    set_w(m, fc, 1, g_fb2, 5);
    ck_assert_int_eq(cnn_model_compile(m, &err), 0);
    return m;
}

START_TEST(test_op_chain_matches_native_build)
{
    size_t size;
    uint8_t *buf = pack(op_chain(), &size);
    struct cnn_err err = {0};
    struct cnn_model *m = NULL, *ref = native_chain();
    ck_assert_msg(cnn_onnx_load_mem(buf, size, NULL, 0, &m, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(cnn_model_num_classes(m), 5);
    float x[2 * 3 * 7 * 7], a[10], b[10];
    fill(x, sizeof x / 4, 17);
    for (size_t k = 0; k < sizeof x / 4; k++)
        x[k] *= 4.0f; /* so that Clip cuts at both ends */
    run(m, x, 2, a);
    run(ref, x, 2, b);
    assert_close(a, b, 10, 1e-6f);
    cnn_model_destroy(m);
    cnn_model_destroy(ref);
    free(buf);
    arena_free();
}
END_TEST

/* Opset 9: Clip's bounds are attributes; Softmax(axis 1) of (N,C,H,W) is over C*H*W.  From
 * opset 13 that softmax is over C alone: refused as unsupported (H, W > 1). */
START_TEST(test_opset_differences_clip_and_softmax)
{
    struct graph *g = alloc(sizeof *g);
    int64_t in[4] = {1, 3, 4, 4};
    memcpy(g->in_dims, in, sizeof in);
    Onnx__NodeProto *n = node(g, "Clip", "clip", "x", NULL, NULL, "c");
    attr_f(n, "min", -0.5f);
    attr_f(n, "max", 0.25f);
    n = node(g, "Softmax", "sm", "c", NULL, NULL, "out");
    attr_i(n, "axis", 1);
    g->output = "out";
    g->opset = 9;
    size_t size;
    uint8_t *buf = pack(g, &size);
    struct cnn_err err = {0};
    struct cnn_model *m = NULL;
    ck_assert_msg(cnn_onnx_load_mem(buf, size, NULL, 0, &m, &err) == 0, "%s", err.msg);
    float x[48], got[48], want[48];
    fill(x, 48, 23);
    run(m, x, 1, got);
    double sum = 0;
    for (int k = 0; k < 48; k++)
        sum += exp(fmin(fmax(x[k], -0.5), 0.25));
    for (int k = 0; k < 48; k++)
        want[k] = (float)(exp(fmin(fmax(x[k], -0.5), 0.25)) / sum);
    assert_close(got, want, 48, 1e-6f);
    cnn_model_destroy(m);
    free(buf);
    g->opset = 13;
    buf = pack(g, &size);
    ck_assert_int_eq(cnn_onnx_load_mem(buf, size, NULL, 0, &m, &err), CNN_EFORMAT);
    ck_assert_ptr_null(m);
    ck_assert_msg(strstr(err.msg, "node 'sm' (Softmax, opset 13): unsupported"), "%s", err.msg);
    free(buf);
    arena_free();
}
END_TEST

/* ---- hostile files ---- */

/* Wraps inner as field `field` (length-delimited) in front of it, writing backwards at *pos. */
static void wrap(uint8_t *buf, size_t *pos, size_t inner_len, int field)
{
    uint8_t tmp[12];
    int n = 0;
    size_t v = inner_len;
    do {
        tmp[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    *pos -= (size_t)n;
    memcpy(buf + *pos, tmp, (size_t)n);
    buf[--*pos] = (uint8_t)(field << 3 | 2);
}

/* graph -> node -> attribute -> g -> graph ... 20,000 levels deep, as a ModelProto. */
static uint8_t *deep_nesting(size_t *size)
{
    size_t cap = 1 << 20, pos = cap;
    uint8_t *buf = malloc(cap);
    ck_assert_ptr_nonnull(buf);
    for (int k = 0; k < 20000; k++) {
        wrap(buf, &pos, cap - pos, 6); /* AttributeProto.g */
        wrap(buf, &pos, cap - pos, 5); /* NodeProto.attribute */
        wrap(buf, &pos, cap - pos, 1); /* GraphProto.node */
    }
    wrap(buf, &pos, cap - pos, 7); /* ModelProto.graph */
    *size = cap - pos;
    memmove(buf, buf + pos, *size);
    return buf;
}

enum { N_HOSTILE = 15 };

static const struct {
    int code;
    const char *msg;
} HOSTILE[N_HOSTILE] = {
    {CNN_EFORMAT, "not a valid ModelProto"},                          /* truncated */
    {CNN_EFORMAT, "unsupported data type 8"},                         /* string weights */
    {CNN_EFORMAT, "out of range"},                                    /* huge dim */
    {CNN_ELIMIT, "more than"},                                        /* product overflows */
    {CNN_EFORMAT, "names nothing defined before it"},                 /* cycle */
    {CNN_EFORMAT, "input 'W' names nothing"},                         /* missing initializer */
    {CNN_EFORMAT, "node 'conv7' (Foo, opset 13): unsupported operator"}, /* unknown op */
    {CNN_EFORMAT, "raw_data has 10 bytes"},                           /* raw size mismatch */
    {CNN_EFORMAT, "external data"},                                   /* outside the folder */
    {CNN_ELIMIT, "layers"},                                           /* 10,000 nodes */
    {CNN_EFORMAT, "nested more than"},                                /* deep subgraphs */
    {CNN_EFORMAT, "input 'nope' names nothing"},                      /* dangling input */
    {CNN_EFORMAT, "not a valid ModelProto"},                          /* garbage */
    {CNN_EFORMAT, "input rank 3"},                                    /* not N,C,H,W */
    {CNN_EFORMAT, "out of range"},                                    /* negative dim */
};

static uint8_t *hostile_file(int i, size_t *size)
{
    struct graph *g = conv_net();
    Onnx__TensorProto *w = g->inits[0];
    static const int64_t huge[4] = {(int64_t)1 << 40, 3, 3, 3},
                         over[4] = {1 << 30, 1 << 30, 1 << 30, 4}, neg[4] = {-1, 3, 3, 3};
    switch (i) {
    case 1:
        w->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__STRING;
        break;
    case 2:
    case 3:
    case 14:
        w->n_float_data = 0;
        memcpy(w->dims, i == 2 ? huge : i == 3 ? over : neg, sizeof huge);
        break;
    case 4:
        g->n_nodes = 0;
        node(g, "Relu", "a", "b", NULL, NULL, "a_out");
        node(g, "Relu", "b", "a_out", NULL, NULL, "b");
        g->output = "b";
        break;
    case 5:
        g->inits[0] = g->inits[--g->n_inits];
        break;
    case 6:
        g->nodes[1] = node(g, "Foo", "conv7", "c", NULL, NULL, "r");
        g->n_nodes--;
        g->nodes[g->n_nodes - 1] = g->nodes[g->n_nodes];
        g->nodes[1]->op_type = str("Foo");
        break;
    case 7:
        w->n_float_data = 0;
        w->has_raw_data = 1;
        w->raw_data.len = 10;
        w->raw_data.data = alloc(10);
        break;
    case 8: {
        w->n_float_data = 0;
        w->has_data_location = 1;
        w->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
        Onnx__StringStringEntryProto *e = alloc(sizeof *e);
        onnx__string_string_entry_proto__init(e);
        e->key = str("location");
        e->value = str("../../../etc/passwd");
        w->n_external_data = 1;
        w->external_data = alloc(sizeof *w->external_data);
        w->external_data[0] = e;
        break;
    }
    case 9: {
        g->n_nodes = 0;
        char in[16] = "x", out[16];
        for (int k = 0; k < 10000; k++) {
            snprintf(out, sizeof out, "r%d", k);
            node(g, "Relu", out, in, NULL, NULL, out);
            strcpy(in, out);
        }
        g->output = "r9999";
        break;
    }
    case 10:
        return deep_nesting(size);
    case 11:
        g->nodes[1]->input[0] = str("nope");
        break;
    case 12: {
        uint8_t *buf = malloc(4096);
        ck_assert_ptr_nonnull(buf);
        for (int k = 0; k < 4096; k++)
            buf[k] = (uint8_t)(k * 131 + 7) | 0x07; /* wire type 7: never valid */
        *size = 4096;
        return buf;
    }
    case 13:
        g->in_rank = 3;
        break;
    }
    uint8_t *buf = pack(g, size);
    if (i == 0)
        *size = *size / 2;
    return buf;
}

START_TEST(test_hostile_file_rejected_with_clear_error)
{
    size_t size;
    uint8_t *buf = hostile_file(_i, &size);
    struct cnn_err err = {0};
    struct cnn_model *m = (struct cnn_model *)&err; /* must be reset to NULL */
    int rc = cnn_onnx_load_mem(buf, size, NULL, 0, &m, &err);
    ck_assert_msg(rc == HOSTILE[_i].code, "case %d: rc %d (%s)", _i, rc, err.msg);
    ck_assert_ptr_null(m);
    ck_assert_msg(strstr(err.msg, HOSTILE[_i].msg), "case %d: message '%s' lacks '%s'", _i,
                  err.msg, HOSTILE[_i].msg);
    free(buf);
    arena_free();
}
END_TEST

/* An imported model with hostile node names (control bytes, a UTF-8 sequence cut by the
 * 47-byte name limit) saves in the native format and reloads with the same outputs; an error
 * quoting such a name carries no control bytes. */
START_TEST(test_imported_model_saves_natively_names_cleaned)
{
    struct graph *g = conv_net();
    g->nodes[0]->name = str("conv\n1\x1b[31m");
    char longname[80];
    memset(longname, 'a', 46);
    strcpy(longname + 46, "\xc3\xa9\xc3\xa9"); /* "e-acute" straddles byte 47 */
    g->nodes[1]->name = str(longname);
    size_t size;
    uint8_t *buf = pack(g, &size);
    struct cnn_err err = {0};
    struct cnn_model *m = NULL, *back = NULL;
    ck_assert_msg(cnn_onnx_load_mem(buf, size, NULL, 0, &m, &err) == 0, "%s", err.msg);
    char dir[64], path[96];
    make_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/m.cnn", dir);
    ck_assert_msg(cnn_model_save(m, path, &err) == 0, "%s", err.msg);
    ck_assert_msg(cnn_model_load(path, &back, &err) == 0, "%s", err.msg);
    float x[2 * 3 * 8 * 8], a[2 * NC], b[2 * NC];
    fill(x, sizeof x / 4, 31);
    run(m, x, 2, a);
    run(back, x, 2, b);
    assert_close(a, b, 2 * NC, 0.0f);
    cnn_model_destroy(back);
    cnn_model_destroy(m);
    rm_tree(dir);
    free(buf);
    g->nodes[0]->op_type = str("Nope");
    buf = pack(g, &size);
    ck_assert_int_eq(cnn_onnx_load_mem(buf, size, NULL, 0, &m, &err), CNN_EFORMAT);
    ck_assert_msg(strstr(err.msg, "node 'conv?1?[31m' (Nope, opset 13): unsupported operator"),
                  "%s", err.msg);
    free(buf);
    arena_free();
}
END_TEST

/* Every proper prefix of a valid file is refused (no crash, nothing returned). */
START_TEST(test_truncated_at_every_offset_rejected)
{
    size_t size;
    uint8_t *buf = pack(conv_net(), &size);
    for (size_t cut = 0; cut < size; cut++) {
        struct cnn_err err = {0};
        struct cnn_model *m = NULL;
        uint8_t *part = malloc(cut ? cut : 1); /* exact size: ASan sees any over-read */
        ck_assert_ptr_nonnull(part);
        memcpy(part, buf, cut);
        int rc = cnn_onnx_load_mem(part, cut, NULL, 0, &m, &err);
        ck_assert_msg(rc == CNN_EFORMAT && !m, "cut at %zu of %zu: rc %d (%s)", cut, size, rc,
                      err.msg);
        free(part);
    }
    free(buf);
    arena_free();
}
END_TEST

Suite *onnx_suite(void)
{
    Suite *s = suite_create("onnx");
    TCase *tc = tcase_create("onnx");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_conv_net_matches_native_build);
    tcase_add_test(tc, test_gemm_alpha_beta_transposed_matches_naive);
    tcase_add_test(tc, test_op_chain_matches_native_build);
    tcase_add_test(tc, test_opset_differences_clip_and_softmax);
    tcase_add_loop_test(tc, test_hostile_file_rejected_with_clear_error, 0, N_HOSTILE);
    tcase_add_test(tc, test_truncated_at_every_offset_rejected);
    tcase_add_test(tc, test_imported_model_saves_natively_names_cleaned);
    suite_add_tcase(s, tc);
    return s;
}
