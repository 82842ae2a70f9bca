/* Suite onnx: ONNX files packed here with protobuf-c (test_onnx.h).  A small conv net
 * imported from ONNX gives the outputs of the same net built natively with the same weights
 * (from memory and through a .onnx path), Gemm's transB / alpha / beta against a naive
 * product, a chain of every mapped op against the native build, opset differences (Clip,
 * Softmax) against naive loops, an imported model saves in the native format, and the
 * cnn.* metadata_props come back as preprocessing, labels and metadata; Squeeze/Unsqueeze/
 * Transpose/Flatten that move no data. */
#include "alloc_counter.h"
#include "model.h"
#include "onnx.h"
#include "test_onnx.h"
#include "test_train.h"
#include "test_util.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- native builds of the same nets ---- */

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

static struct cnn_model *native_net(void)
{
    struct cnn_preproc pp = {.c = 3, .h = 8, .w = 8, .std = {1, 1, 1}};
    struct cnn_err err = {0};
    struct cnn_model *m = cnn_model_create(&pp, &err);
    ck_assert_ptr_nonnull(m);
    int conv3 = add_native(m, conv(NULL, TOX_OC, 3, 1, 1, CNN_ACT_NONE), 1, 0, 0);
    int relu = add_native(
        m, (struct cnn_layer_desc){.kind = CNN_LAYER_ACT, .p.act.kind = CNN_ACT_RELU}, 1, conv3, 0);
    struct cnn_layer_desc d = {.kind = CNN_LAYER_MAXPOOL};
    d.p.pool = (struct cnn_pool2d){.kh = 2, .kw = 2, .sh = 2, .sw = 2};
    int pool = add_native(m, d, 1, relu, 0);
    int flat = add_native(m, (struct cnn_layer_desc){.kind = CNN_LAYER_FLATTEN}, 1, pool, 0);
    int fc = add_native(
        m,
        (struct cnn_layer_desc){.kind = CNN_LAYER_DENSE, .p.dense = {.out = TOX_NC, .has_bias = 1}},
        1, flat, 0);
    add_native(m, (struct cnn_layer_desc){.kind = CNN_LAYER_SOFTMAX}, 1, fc, 0);
    ck_assert_int_eq(cnn_model_alloc_params(m, &err), 0);
    set_w(m, conv3, 0, tox_w, sizeof tox_w / sizeof *tox_w);
    set_w(m, conv3, 1, tox_b, TOX_OC);
    set_w(m, fc, 0, tox_fc, sizeof tox_fc / sizeof *tox_fc);
    set_w(m, fc, 1, tox_fb, TOX_NC);
    ck_assert_int_eq(cnn_model_compile(m, &err), 0);
    return m;
}

START_TEST(test_conv_net_matches_native_build)
{
    size_t size;
    uint8_t *buf = tox_pack(tox_conv_net(), &size);
    struct cnn_err err = {0};
    struct cnn_model *m = NULL, *ref = native_net();
    ck_assert_msg(cnn_onnx_load_mem(buf, size, NULL, 0, &m, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(cnn_model_num_classes(m), TOX_NC);
    ck_assert_int_eq(cnn_model_preproc(m)->c, 3);
    ck_assert_int_eq(cnn_model_preproc(m)->h, 8);
    float x[3 * 3 * 8 * 8], a[3 * TOX_NC], b[3 * TOX_NC];
    tox_fill(x, sizeof x / 4, 9);
    tox_run(m, x, 3, a);
    tox_run(ref, x, 3, b);
    tox_assert_close(a, b, 3 * TOX_NC, 1e-6f);
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
    tox_run(m, x, 3, a);
    tox_assert_close(a, b, 3 * TOX_NC, 1e-6f);
    cnn_model_destroy(m);
    rm_tree(dir);
    cnn_model_destroy(ref);
    free(buf);
    tox_arena_free();
}
END_TEST

/* Gemm with transB 0, alpha and beta, after GlobalAveragePool, against a naive product. */
START_TEST(test_gemm_alpha_beta_transposed_matches_naive)
{
    struct tox_graph *g = tox_alloc(sizeof *g);
    int64_t in[4] = {2, 3, 4, 4}, bd[2] = {3, 5}, cd[2] = {1, 5};
    float bm[15], cv[5];
    tox_fill(bm, 15, 5);
    tox_fill(cv, 5, 6);
    memcpy(g->in_dims, in, sizeof in);
    g->inits[g->n_inits++] = tox_tensor_f("Bm", 2, bd, bm);
    g->inits[g->n_inits++] = tox_tensor_f("Cv", 2, cd, cv);
    tox_node(g, "GlobalAveragePool", "gap", "x", NULL, NULL, "p");
    tox_node(g, "Flatten", "flat", "p", NULL, NULL, "f");
    Onnx__NodeProto *n = tox_node(g, "Gemm", "fc", "f", "Bm", "Cv", "y");
    tox_attr_f(n, "alpha", 0.5f);
    tox_attr_f(n, "beta", 2.0f);
    g->output = "y";
    size_t size;
    uint8_t *buf = tox_pack(g, &size);
    struct cnn_err err = {0};
    struct cnn_model *m = NULL;
    ck_assert_msg(cnn_onnx_load_mem(buf, size, NULL, 0, &m, &err) == 0, "%s", err.msg);
    float x[2 * 48], got[10], want[10];
    tox_fill(x, 96, 7);
    tox_run(m, x, 2, got);
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
    tox_assert_close(got, want, 10, 1e-5f);
    cnn_model_destroy(m);
    free(buf);
    tox_arena_free();
}
END_TEST

/* A rank-2 input (N, K) is the model input (K, 1, 1) and a rank-2 value, as after Flatten:
 * Gemm (transB) -> Relu -> Softmax over axis 1 equals naive loops; a Conv on it is refused
 * as unsupported (a 2-D conv needs N,C,H,W). */
START_TEST(test_rank2_input_gemm_softmax_matches_naive)
{
    struct tox_graph *g = tox_alloc(sizeof *g);
    int64_t in[2] = {-1, 6}, bd[2] = {4, 6};
    float bm[24], x[3 * 6], got[12], want[12];
    tox_fill(bm, 24, 11);
    tox_fill(x, 18, 12);
    memcpy(g->in_dims, in, sizeof in);
    g->in_rank = 2;
    g->inits[g->n_inits++] = tox_tensor_f("Bm", 2, bd, bm);
    Onnx__NodeProto *n = tox_node(g, "Gemm", "fc", "x", "Bm", NULL, "y");
    tox_attr_i(n, "transB", 1);
    tox_node(g, "Relu", "relu", "y", NULL, NULL, "r");
    tox_node(g, "Softmax", "prob", "r", NULL, NULL, "p");
    g->output = "p";
    struct cnn_model *m = tox_load(g);
    const struct cnn_preproc *pp = cnn_model_preproc(m);
    ck_assert_int_eq(pp->c, 6);
    ck_assert_int_eq(pp->h * pp->w, 1);
    tox_run(m, x, 3, got);
    for (int i = 0; i < 3; i++) {
        double e[4], sum = 0;
        for (int o = 0; o < 4; o++) {
            double acc = 0;
            for (int k = 0; k < 6; k++)
                acc += x[i * 6 + k] * bm[o * 6 + k];
            e[o] = exp(acc > 0 ? acc : 0);
            sum += e[o];
        }
        for (int o = 0; o < 4; o++)
            want[i * 4 + o] = (float)(e[o] / sum);
    }
    tox_assert_close(got, want, 12, 1e-5f);
    cnn_model_destroy(m);

    g->n_nodes = 0;
    int64_t wd[4] = {2, 6, 1, 1};
    g->inits[g->n_inits++] = tox_tensor_f("Wc", 4, wd, bm);
    tox_node(g, "Conv", "conv", "x", "Wc", NULL, "p");
    size_t size;
    uint8_t *buf = tox_pack(g, &size);
    struct cnn_err err = {0};
    ck_assert_int_eq(cnn_onnx_load_mem(buf, size, NULL, 0, &m, &err), CNN_EFORMAT);
    ck_assert_msg(strstr(err.msg, "unsupported: input of rank 2") != NULL, "%s", err.msg);
    free(buf);
    tox_arena_free();
}
END_TEST

/* A Gemm of 1024 x 2048 weights (8 MiB, in float_data): the import must never hold them more
 * than twice at once (the protobuf's values, the decoded tensor, the layer's copy and the
 * parameter block were all alive together: 4x, 398 MB to load ResNet-50's 102 MB).  The peak
 * of the live heap is measured where the counting allocator is linked (not under the
 * sanitizers); everywhere, the model answers as naive loops over the weights say. */
START_TEST(test_import_holds_weights_at_most_twice)
{
    enum { IN = 2048, OUT = 1024, BATCH = 2 };
    struct tox_graph *g = tox_alloc(sizeof *g);
    int64_t in[2] = {-1, IN}, bd[2] = {OUT, IN};
    float *bm = malloc(sizeof(float) * OUT * IN), x[BATCH * IN];
    float *got = malloc(sizeof(float) * BATCH * OUT), *want = malloc(sizeof(float) * BATCH * OUT);
    tox_fill(bm, (size_t)OUT * IN, 13);
    tox_fill(x, BATCH * IN, 14);
    memcpy(g->in_dims, in, sizeof in);
    g->in_rank = 2;
    g->inits[g->n_inits++] = tox_tensor_f("Bm", 2, bd, bm);
    Onnx__NodeProto *n = tox_node(g, "Gemm", "fc", "x", "Bm", NULL, "y");
    tox_attr_i(n, "transB", 1);
    tox_node(g, "Softmax", "prob", "y", NULL, NULL, "p");
    g->output = "p";
    size_t size;
    uint8_t *buf = tox_pack(g, &size);
    struct cnn_err err = {0};
    struct cnn_model *m = NULL;
    const size_t weights = sizeof(float) * OUT * IN;
    const size_t base = alloc_counter_live ? alloc_counter_live() : 0;
    if (alloc_counter_peak)
        alloc_counter_peak(1);
    ck_assert_msg(cnn_onnx_load_mem(buf, size, NULL, 0, &m, &err) == 0, "%s", err.msg);
    if (alloc_counter_peak) {
        const size_t extra = alloc_counter_peak(0) - base;
        printf("onnx: importing %zu bytes of weights peaked at %.2fx them over what was live\n",
               weights, (double)extra / weights);
        ck_assert_msg(extra <= 2 * weights + weights / 4, "peak %zu bytes over %zu of weights",
                      extra, weights);
    }
    tox_run(m, x, BATCH, got);
    for (int i = 0; i < BATCH; i++) {
        double sum = 0, *e = malloc(sizeof(double) * OUT);
        for (int o = 0; o < OUT; o++) {
            double acc = 0;
            for (int k = 0; k < IN; k++)
                acc += x[i * IN + k] * bm[(size_t)o * IN + k];
            e[o] = exp(acc);
            sum += e[o];
        }
        for (int o = 0; o < OUT; o++)
            want[i * OUT + o] = (float)(e[o] / sum);
        free(e);
    }
    tox_assert_close(got, want, BATCH * OUT, 1e-5f);
    cnn_model_destroy(m);
    free(buf);
    free(bm);
    free(got);
    free(want);
    tox_arena_free();
}
END_TEST

/* A rank-3 input (N, C, L) is the model input (C, 1, L): LeakyRelu -> Sigmoid equals naive
 * loops; an Add of a (L) constant is per element of each row (naive loops); a (N, C, L)
 * constant (it spans the batch) is refused as unsupported. */
START_TEST(test_rank3_input_as_c_1_l)
{
    struct tox_graph *g = tox_alloc(sizeof *g);
    int64_t in[3] = {-1, 4, 5};
    float x[2 * 20], got[40], want[40];
    tox_fill(x, 40, 13);
    memcpy(g->in_dims, in, sizeof in);
    g->in_rank = 3;
    Onnx__NodeProto *n = tox_node(g, "LeakyRelu", "lr", "x", NULL, NULL, "y");
    tox_attr_f(n, "alpha", 0.25f);
    tox_node(g, "Sigmoid", "sig", "y", NULL, NULL, "p");
    g->output = "p";
    struct cnn_model *m = tox_load(g);
    const struct cnn_preproc *pp = cnn_model_preproc(m);
    ck_assert_int_eq(pp->c, 4);
    ck_assert_int_eq(pp->h, 1);
    ck_assert_int_eq(pp->w, 5);
    tox_run(m, x, 2, got);
    for (int i = 0; i < 40; i++) {
        double v = x[i] > 0 ? x[i] : 0.25 * x[i];
        want[i] = (float)(1.0 / (1.0 + exp(-v)));
    }
    tox_assert_close(got, want, 40, 1e-6f);
    cnn_model_destroy(m);

    int64_t bd[1] = {5};
    g->inits[g->n_inits++] = tox_tensor_f("B", 1, bd, x);
    Onnx__NodeProto *add = tox_node(g, "Add", "add", "p", "B", NULL, "q");
    g->output = "q";
    m = tox_load(g);
    float got2[40];
    tox_run(m, x, 2, got2);
    for (int i = 0; i < 40; i++)
        want[i] += x[i % 5];
    tox_assert_close(got2, want, 40, 1e-6f);
    cnn_model_destroy(m);

    int64_t batch_dims[3] = {2, 4, 5};
    g->inits[g->n_inits++] = tox_tensor_f("Bn", 3, batch_dims, x);
    add->input[1] = "Bn";
    size_t size;
    uint8_t *buf = tox_pack(g, &size);
    struct cnn_err err = {0};
    ck_assert_int_eq(cnn_onnx_load_mem(buf, size, NULL, 0, &m, &err), CNN_EFORMAT);
    ck_assert_msg(strstr(err.msg, "unsupported: a constant operand of rank 3 that does not "
                                  "broadcast to one item") != NULL,
                  "%s", err.msg);
    free(buf);
    tox_arena_free();
}
END_TEST

/* ---- every mapped op in one net, against the native build ---- */

static Onnx__TensorProto *init_f(struct tox_graph *g, const char *name, int nd, const int64_t *dims,
                                 float *v, uint64_t seed)
{
    size_t n = 1;
    for (int k = 0; k < nd; k++)
        n *= (size_t)dims[k];
    tox_fill(v, n, seed);
    return g->inits[g->n_inits++] = tox_tensor_f(name, nd, dims, v);
}

static float g_dw[27], g_bn[4][3], g_pw[24], g_pb[8], g_mm[96], g_fc2[30], g_fb2[5];

/* x (N,3,7,7) -> depthwise dilated asymmetric-pad conv -> BN -> Clip(0,6) -> 1x1 conv
 * SAME_UPPER stride 2 -> LRN -> [LRN, Sigmoid] concat -> AveragePool count_include_pad ->
 * GlobalAveragePool -> Shape/Gather/Unsqueeze/Concat -> Reshape -> MatMul -> LeakyRelu ->
 * Dropout -> Identity -> Gemm -> Tanh -> Softmax. */
static struct tox_graph *op_chain(void)
{
    struct tox_graph *g = tox_alloc(sizeof *g);
    int64_t in[4] = {-1, 3, 7, 7}, d_dw[4] = {3, 1, 3, 3}, d3[1] = {3}, d_pw[4] = {8, 3, 1, 1},
            d8[1] = {8}, d_mm[2] = {16, 6}, d_fc[2] = {5, 6}, d5[1] = {5}, d1[1] = {1};
    memcpy(g->in_dims, in, sizeof in);
    init_f(g, "dw_w", 4, d_dw, g_dw, 11);
    static const char *const bn_names[4] = {"bn_s", "bn_b", "bn_m", "bn_v"};
    for (int k = 0; k < 4; k++)
        tox_fill(g_bn[k], 3, 20 + (uint64_t)k);
    for (int k = 0; k < 3; k++)
        g_bn[3][k] = fabsf(g_bn[3][k]) + 0.1f; /* variance */
    for (int k = 0; k < 4; k++)
        g->inits[g->n_inits++] = tox_tensor_f(bn_names[k], 1, d3, g_bn[k]);
    float lo = 0.0f, hi = 6.0f;
    g->inits[g->n_inits++] = tox_tensor_f("cmin", 0, NULL, &lo);
    g->inits[g->n_inits++] = tox_tensor_f("cmax", 0, NULL, &hi);
    init_f(g, "pw_w", 4, d_pw, g_pw, 12);
    init_f(g, "pw_b", 1, d8, g_pb, 13);
    init_f(g, "mm_b", 2, d_mm, g_mm, 14);
    init_f(g, "fc_w", 2, d_fc, g_fc2, 15);
    init_f(g, "fc_b", 1, d5, g_fb2, 16);
    int64_t zero = 0, minus1 = -1;
    g->inits[g->n_inits++] = tox_tensor_i("idx0", 0, NULL, &zero, 1);
    g->inits[g->n_inits++] = tox_tensor_i("ax0", 1, d1, &zero, 1);
    g->inits[g->n_inits++] = tox_tensor_i("m1", 1, d1, &minus1, 1);
    static const int64_t dil[2] = {2, 2}, pads[4] = {1, 0, 2, 1}, s2[2] = {2, 2}, k2[2] = {2, 2},
                         s1[2] = {1, 1}, ap_pads[4] = {1, 1, 0, 0};
    Onnx__NodeProto *n = tox_node(g, "Conv", "dw", "x", "dw_w", NULL, "dw");
    tox_attr_i(n, "group", 3);
    tox_attr_ints(n, "dilations", 2, dil);
    tox_attr_ints(n, "pads", 4, pads);
    n = tox_node(g, "BatchNormalization", "bn", "dw", "bn_s", "bn_b", "bn");
    tox_add_input(n, "bn_m");
    tox_add_input(n, "bn_v");
    tox_attr_f(n, "epsilon", 1e-3f);
    tox_node(g, "Clip", "clip", "bn", "cmin", "cmax", "clip");
    n = tox_node(g, "Conv", "pw", "clip", "pw_w", "pw_b", "pw");
    tox_attr_ints(n, "strides", 2, s2);
    Onnx__AttributeProto *a = tox_attr(n, "auto_pad");
    a->has_s = 1;
    a->s.data = (uint8_t *)tox_str("SAME_UPPER");
    a->s.len = 10;
    n = tox_node(g, "LRN", "lrn", "pw", NULL, NULL, "lrn");
    tox_attr_i(n, "size", 3);
    tox_attr_f(n, "alpha", 0.01f);
    tox_attr_f(n, "bias", 2.0f);
    tox_node(g, "Sigmoid", "sig", "lrn", NULL, NULL, "sig");
    n = tox_node(g, "Concat", "cat", "lrn", "sig", NULL, "cat");
    tox_attr_i(n, "axis", 1);
    n = tox_node(g, "AveragePool", "ap", "cat", NULL, NULL, "ap");
    tox_attr_ints(n, "kernel_shape", 2, k2);
    tox_attr_ints(n, "strides", 2, s1);
    tox_attr_ints(n, "pads", 4, ap_pads);
    tox_attr_i(n, "count_include_pad", 1);
    tox_node(g, "GlobalAveragePool", "gap", "ap", NULL, NULL, "gap");
    tox_node(g, "Shape", "shp", "gap", NULL, NULL, "shp");
    tox_node(g, "Gather", "g0", "shp", "idx0", NULL, "batch");
    tox_node(g, "Unsqueeze", "u", "batch", "ax0", NULL, "batch1");
    n = tox_node(g, "Concat", "sc", "batch1", "m1", NULL, "newshape");
    tox_attr_i(n, "axis", 0);
    tox_node(g, "Reshape", "rs", "gap", "newshape", NULL, "flat");
    tox_node(g, "MatMul", "mm", "flat", "mm_b", NULL, "mm");
    n = tox_node(g, "LeakyRelu", "lr", "mm", NULL, NULL, "lr");
    tox_attr_f(n, "alpha", 0.2f);
    tox_node(g, "Dropout", "do", "lr", NULL, NULL, "do");
    tox_node(g, "Identity", "id", "do", NULL, NULL, "id");
    n = tox_node(g, "Gemm", "fc", "id", "fc_w", "fc_b", "fc");
    tox_attr_i(n, "transB", 1);
    tox_node(g, "Tanh", "th", "fc", NULL, NULL, "th");
    tox_node(g, "Softmax", "sm", "th", NULL, NULL, "out");
    g->output = "out";
    return g;
}

static struct cnn_model *native_chain(void)
{
    struct cnn_preproc pp = {.c = 3, .h = 7, .w = 7, .std = {1, 1, 1}};
    struct cnn_err err = {0};
    struct cnn_model *m = cnn_model_create(&pp, &err);
    ck_assert_ptr_nonnull(m);
    struct cnn_layer_desc d = {.kind = CNN_LAYER_CONV2D};
    d.p.conv = (struct cnn_conv2d){.oc = 3,
                                   .kh = 3,
                                   .kw = 3,
                                   .sh = 1,
                                   .sw = 1,
                                   .dh = 2,
                                   .dw = 2,
                                   .pad_t = 1,
                                   .pad_l = 0,
                                   .pad_b = 2,
                                   .pad_r = 1,
                                   .groups = 3};
    int dw = add_native(m, d, 1, 0, 0);
    int bn = add_native(m, (struct cnn_layer_desc){.kind = CNN_LAYER_BATCHNORM, .p.bn.eps = 1e-3f},
                        1, dw, 0);
    int clip = add_native(
        m, (struct cnn_layer_desc){.kind = CNN_LAYER_ACT, .p.act = {CNN_ACT_CLIP, 0.0f, 6.0f}}, 1,
        bn, 0);
    d.p.conv = (struct cnn_conv2d){.oc = 8,
                                   .kh = 1,
                                   .kw = 1,
                                   .sh = 2,
                                   .sw = 2,
                                   .dh = 1,
                                   .dw = 1,
                                   .groups = 1,
                                   .has_bias = 1}; /* SAME_UPPER: no pad here */
    int pw = add_native(m, d, 1, clip, 0);
    int lrn = add_native(
        m, (struct cnn_layer_desc){.kind = CNN_LAYER_LRN, .p.lrn = {3, 0.01f, 0.75f, 2.0f}}, 1, pw,
        0);
    int sig =
        add_native(m, (struct cnn_layer_desc){.kind = CNN_LAYER_ACT, .p.act.kind = CNN_ACT_SIGMOID},
                   1, lrn, 0);
    int cat = add_native(m, (struct cnn_layer_desc){.kind = CNN_LAYER_CONCAT}, 2, lrn, sig);
    struct cnn_layer_desc pd = {.kind = CNN_LAYER_AVGPOOL};
    pd.p.pool = (struct cnn_pool2d){
        .kh = 2, .kw = 2, .sh = 1, .sw = 1, .pad_t = 1, .pad_l = 1, .count_include_pad = 1};
    int ap = add_native(m, pd, 1, cat, 0);
    int gap = add_native(m, (struct cnn_layer_desc){.kind = CNN_LAYER_GLOBAL_AVGPOOL}, 1, ap, 0);
    int fl = add_native(m, (struct cnn_layer_desc){.kind = CNN_LAYER_FLATTEN}, 1, gap, 0);
    int mm =
        add_native(m, (struct cnn_layer_desc){.kind = CNN_LAYER_DENSE, .p.dense.out = 6}, 1, fl, 0);
    int lr = add_native(
        m, (struct cnn_layer_desc){.kind = CNN_LAYER_ACT, .p.act = {CNN_ACT_LEAKY_RELU, 0.2f, 0}},
        1, mm, 0);
    int fc = add_native(
        m, (struct cnn_layer_desc){.kind = CNN_LAYER_DENSE, .p.dense = {.out = 5, .has_bias = 1}},
        1, lr, 0);
    int th = add_native(
        m, (struct cnn_layer_desc){.kind = CNN_LAYER_ACT, .p.act.kind = CNN_ACT_TANH}, 1, fc, 0);
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
    uint8_t *buf = tox_pack(op_chain(), &size);
    struct cnn_err err = {0};
    struct cnn_model *m = NULL, *ref = native_chain();
    ck_assert_msg(cnn_onnx_load_mem(buf, size, NULL, 0, &m, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(cnn_model_num_classes(m), 5);
    float x[2 * 3 * 7 * 7], a[10], b[10];
    tox_fill(x, sizeof x / 4, 17);
    for (size_t k = 0; k < sizeof x / 4; k++)
        x[k] *= 4.0f; /* so that Clip cuts at both ends */
    tox_run(m, x, 2, a);
    tox_run(ref, x, 2, b);
    tox_assert_close(a, b, 10, 1e-6f);
    cnn_model_destroy(m);
    cnn_model_destroy(ref);
    free(buf);
    tox_arena_free();
}
END_TEST

/* Opset 9: Clip's bounds are attributes; Softmax(axis 1) of (N,C,H,W) is over C*H*W.  From
 * opset 13 that softmax is over C alone at each position (naive loops); axis 2 there is
 * refused as unsupported. */
START_TEST(test_opset_differences_clip_and_softmax)
{
    struct tox_graph *g = tox_alloc(sizeof *g);
    int64_t in[4] = {1, 3, 4, 4};
    memcpy(g->in_dims, in, sizeof in);
    Onnx__NodeProto *n = tox_node(g, "Clip", "clip", "x", NULL, NULL, "c");
    tox_attr_f(n, "min", -0.5f);
    tox_attr_f(n, "max", 0.25f);
    n = tox_node(g, "Softmax", "sm", "c", NULL, NULL, "out");
    tox_attr_i(n, "axis", 1);
    g->output = "out";
    g->opset = 9;
    size_t size;
    uint8_t *buf = tox_pack(g, &size);
    struct cnn_err err = {0};
    struct cnn_model *m = NULL;
    ck_assert_msg(cnn_onnx_load_mem(buf, size, NULL, 0, &m, &err) == 0, "%s", err.msg);
    float x[48], got[48], want[48];
    tox_fill(x, 48, 23);
    tox_run(m, x, 1, got);
    double sum = 0;
    for (int k = 0; k < 48; k++)
        sum += exp(fmin(fmax(x[k], -0.5), 0.25));
    for (int k = 0; k < 48; k++)
        want[k] = (float)(exp(fmin(fmax(x[k], -0.5), 0.25)) / sum);
    tox_assert_close(got, want, 48, 1e-6f);
    cnn_model_destroy(m);
    free(buf);
    g->opset = 13;
    buf = tox_pack(g, &size);
    ck_assert_msg(cnn_onnx_load_mem(buf, size, NULL, 0, &m, &err) == 0, "%s", err.msg);
    tox_run(m, x, 1, got);
    for (int p = 0; p < 16; p++) { /* (C=3, H*W=16): over the 3 channels at each position */
        double s = 0;              /* (Clip's attributes are ignored from opset 11: no bounds) */
        for (int ch = 0; ch < 3; ch++)
            s += exp(x[ch * 16 + p]);
        for (int ch = 0; ch < 3; ch++)
            want[ch * 16 + p] = (float)(exp(x[ch * 16 + p]) / s);
    }
    tox_assert_close(got, want, 48, 1e-6f);
    cnn_model_destroy(m);
    m = NULL;
    free(buf);
    n->attribute[0]->i = 2; /* Softmax's one attribute: axis */
    buf = tox_pack(g, &size);
    ck_assert_int_eq(cnn_onnx_load_mem(buf, size, NULL, 0, &m, &err), CNN_EFORMAT);
    ck_assert_ptr_null(m);
    ck_assert_msg(strstr(err.msg, "node 'sm' (Softmax, opset 13): unsupported"), "%s", err.msg);
    free(buf);
    tox_arena_free();
}
END_TEST

/* Reshape of a (N,C,H,W) tensor: the batch entry may be 0, -1 (with the features given) or
 * the input's fixed batch size; another batch size is refused, not silently flattened. */
START_TEST(test_reshape_batch_entry)
{
    static const struct {
        int64_t shape[2];
        int ok;
    } cases[] = {{{2, -1}, 1}, {{0, -1}, 1}, {{-1, 48}, 1}, {{0, 48}, 1},
                 {{3, -1}, 0}, {{1, 96}, 0}, {{2, 47}, 0}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct tox_graph *g = tox_alloc(sizeof *g);
        int64_t in[4] = {2, 3, 4, 4}, d2[1] = {2};
        memcpy(g->in_dims, in, sizeof in);
        g->inits[g->n_inits++] = tox_tensor_i("shape", 1, d2, cases[i].shape, 2);
        tox_node(g, "Reshape", "rs", "x", "shape", NULL, "out");
        g->output = "out";
        size_t size;
        uint8_t *buf = tox_pack(g, &size);
        struct cnn_err err = {0};
        struct cnn_model *m = NULL;
        int rc = cnn_onnx_load_mem(buf, size, NULL, 0, &m, &err);
        ck_assert_msg(cases[i].ok ? rc == 0 : rc == CNN_EFORMAT && strstr(err.msg, "unsupported"),
                      "shape (%lld,%lld): rc %d (%s)", (long long)cases[i].shape[0],
                      (long long)cases[i].shape[1], rc, err.msg);
        if (m) {
            float x[96], y[96];
            tox_fill(x, 96, 41);
            tox_run(m, x, 2, y);
            tox_assert_close(x, y, 96, 0.0f); /* a flatten keeps the NCHW order */
        }
        cnn_model_destroy(m);
        free(buf);
        tox_arena_free();
    }
}
END_TEST

/* An imported model with hostile node names (control bytes, a UTF-8 sequence cut by the
 * 47-byte name limit) saves in the native format and reloads with the same outputs; an error
 * quoting such a name carries no control bytes. */
START_TEST(test_imported_model_saves_natively_names_cleaned)
{
    struct tox_graph *g = tox_conv_net();
    g->nodes[0]->name = tox_str("conv\n1\x1b[31m");
    char longname[80];
    memset(longname, 'a', 46);
    strcpy(longname + 46, "\xc3\xa9\xc3\xa9"); /* "e-acute" straddles byte 47 */
    g->nodes[1]->name = tox_str(longname);
    size_t size;
    uint8_t *buf = tox_pack(g, &size);
    struct cnn_err err = {0};
    struct cnn_model *m = NULL, *back = NULL;
    ck_assert_msg(cnn_onnx_load_mem(buf, size, NULL, 0, &m, &err) == 0, "%s", err.msg);
    char dir[64], path[96];
    make_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/m.cnn", dir);
    ck_assert_msg(cnn_model_save(m, path, &err) == 0, "%s", err.msg);
    ck_assert_msg(cnn_model_load(path, &back, &err) == 0, "%s", err.msg);
    float x[2 * 3 * 8 * 8], a[2 * TOX_NC], b[2 * TOX_NC];
    tox_fill(x, sizeof x / 4, 31);
    tox_run(m, x, 2, a);
    tox_run(back, x, 2, b);
    tox_assert_close(a, b, 2 * TOX_NC, 0.0f);
    cnn_model_destroy(back);
    cnn_model_destroy(m);
    rm_tree(dir);
    free(buf);
    g->nodes[0]->op_type = tox_str("Nope");
    buf = tox_pack(g, &size);
    ck_assert_int_eq(cnn_onnx_load_mem(buf, size, NULL, 0, &m, &err), CNN_EFORMAT);
    ck_assert_msg(strstr(err.msg, "node 'conv?1?[31m' (Nope, opset 13): unsupported operator"),
                  "%s", err.msg);
    free(buf);
    tox_arena_free();
}
END_TEST

/* The cnn.* metadata_props `cnn convert` writes come back as preprocessing, labels and
 * metadata text; malformed ones are refused naming the key. */
/* A tensor-fed model of 8 channels: mean/std metadata holds its first 3 channels' values;
 * a longer list is refused, not copied past the 3-entry arrays. */
START_TEST(test_metadata_mean_of_a_wide_model)
{
    static const char *const means[2] = {"0.1,0.2,0.3", "1,2,3,4,5,6,7,8"};
    for (int k = 0; k < 2; k++) {
        struct tox_graph *g = tox_alloc(sizeof *g);
        const int64_t dims[4] = {1, 8, 2, 2};
        memcpy(g->in_dims, dims, sizeof dims);
        tox_node(g, "Relu", "r", "x", NULL, NULL, "y");
        g->output = "y";
        g->props[0][0] = "cnn.mean";
        g->props[0][1] = means[k];
        g->n_props = 1;
        size_t size;
        uint8_t *buf = tox_pack(g, &size);
        struct cnn_err err = {0};
        struct cnn_model *m = NULL;
        int rc = cnn_onnx_load_mem(buf, size, NULL, 0, &m, &err);
        free(buf);
        if (k == 0) {
            ck_assert_msg(rc == 0, "%s", err.msg);
            const struct cnn_preproc *pp = cnn_model_preproc(m);
            ck_assert_int_eq(pp->c, 8);
            ck_assert(pp->mean[0] == 0.1f && pp->mean[1] == 0.2f && pp->mean[2] == 0.3f);
            cnn_model_destroy(m);
        } else {
            ck_assert_int_eq(rc, CNN_EFORMAT);
            ck_assert_ptr_null(m);
            ck_assert_msg(strstr(err.msg, "cnn.mean") != NULL, "%s", err.msg);
        }
        tox_arena_free();
    }
}
END_TEST

START_TEST(test_metadata_props_read_back)
{
    struct tox_graph *g = tox_conv_net();
    static const char *const props[][2] = {
        {"cnn.resize", "shorter_crop"},
        {"cnn.resize_short", "10"},
        {"cnn.invert", "1"},
        {"cnn.channel_order", "bgr"},
        {"cnn.mean", "0.5,0.25,0.125"},
        {"cnn.std", "2,4,8"},
        {"cnn.labels", "zero\none\ntwo\nthree\nfour\nfive\nsix\nseven\neight\nnine"},
        {"cnn.meta", "arch=tiny\nparent=abc"},
        {"other.key", "ignored"}};
    for (size_t k = 0; k < sizeof props / sizeof props[0]; k++) {
        g->props[k][0] = props[k][0];
        g->props[k][1] = props[k][1];
    }
    g->n_props = sizeof props / sizeof props[0];
    size_t size;
    uint8_t *buf = tox_pack(g, &size);
    struct cnn_err err = {0};
    struct cnn_model *m = NULL;
    ck_assert_msg(cnn_onnx_load_mem(buf, size, NULL, 0, &m, &err) == 0, "%s", err.msg);
    free(buf);
    const struct cnn_preproc *pp = cnn_model_preproc(m);
    ck_assert_int_eq(pp->resize, CNN_RESIZE_SHORTER_CROP);
    ck_assert_int_eq(pp->resize_short, 10);
    ck_assert_int_eq(pp->invert, 1);
    ck_assert_int_eq(pp->bgr, 1);
    ck_assert(pp->mean[0] == 0.5f && pp->mean[1] == 0.25f && pp->mean[2] == 0.125f);
    ck_assert(pp->std[0] == 2.0f && pp->std[1] == 4.0f && pp->std[2] == 8.0f);
    ck_assert_str_eq(cnn_model_label(m, 0), "zero");
    ck_assert_str_eq(cnn_model_label(m, 9), "nine");
    char v[32];
    cnn_model_meta_value(m, "parent", v, sizeof v);
    ck_assert_str_eq(v, "abc");
    cnn_model_destroy(m);
    /* one malformed value each */
    static const char *const bad[][3] = {
        {"cnn.mean", "1,2", "cnn.mean"},
        {"cnn.std", "1,0,1", "std"},
        {"cnn.resize", "crop", "cnn.resize"},
        {"cnn.resize_short", "5", "resize_short"}, /* the crop (8x8) does not fit */
        {"cnn.invert", "yes", "cnn.invert"},
        {"cnn.channel_order", "BGR", "cnn.channel_order"},
        {"cnn.labels", "a\nb", "2 labels for 10 classes"},
        {"cnn.labels", "a\n\nc\nd\ne\nf\ng\nh\ni\nj", "cnn.labels"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        g->props[0][0] = bad[k][0];
        g->props[0][1] = bad[k][1];
        g->props[1][0] = "cnn.resize";
        g->props[1][1] = "shorter_crop";
        g->n_props = k == 3 ? 2 : 1; /* resize_short checked with shorter_crop */
        buf = tox_pack(g, &size);
        m = NULL;
        ck_assert_int_eq(cnn_onnx_load_mem(buf, size, NULL, 0, &m, &err), CNN_EFORMAT);
        ck_assert_ptr_null(m);
        ck_assert_msg(strstr(err.msg, bad[k][2]), "%s=%s: %s", bad[k][0], bad[k][1], err.msg);
        free(buf);
    }
    tox_arena_free();
}
END_TEST

/* Squeeze/Unsqueeze/Transpose/Flatten of layer outputs that static shapes make identities
 * or flattens, each net ending in Softmax over the image's values (naive), and the forms
 * that would move or merge the batch refused as unsupported. */
START_TEST(test_shape_ops_that_move_no_data)
{
    static const struct {
        int64_t in[4];
        const char *ops;     /* s: Squeeze [2,3], u: Unsqueeze [2,3], t: Transpose (0,1,3,2),
                              * 0/2: Flatten axis 0 / 2, T: Transpose (1,0,2,3) (a transpose
                              * of the item's axes: check_onnx_moves.c) */
        const char *refused; /* NULL: imports */
    } cases[] = {
        {{2, 3, 1, 1}, "sut", NULL},
        {{2, 1, 3, 3}, "2", NULL},
        {{1, 3, 2, 2}, "0", NULL},
        {{2, 3, 2, 2}, "T", "moves the batch"},
        {{2, 3, 2, 2}, "2", "axis 2"},
        {{2, 3, 2, 2}, "0", "axis 0"},
        {{2, 3, 1, 1}, "S", "axis 0 (the batch)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct tox_graph *g = tox_alloc(sizeof *g);
        memcpy(g->in_dims, cases[i].in, sizeof cases[i].in);
        int64_t ax23[2] = {2, 3}, ax0 = 0, d2 = 2, d1 = 1;
        g->inits[g->n_inits++] = tox_tensor_i("ax23", 1, &d2, ax23, 2);
        g->inits[g->n_inits++] = tox_tensor_i("ax0", 1, &d1, &ax0, 1);
        const char *prev = "x";
        static const char *const outs[] = {"v0", "v1", "v2", "v3"};
        for (int k = 0; cases[i].ops[k]; k++) {
            char op = cases[i].ops[k];
            Onnx__NodeProto *n;
            if (op == 's' || op == 'u' || op == 'S')
                n = tox_node(g, op == 'u' ? "Unsqueeze" : "Squeeze", outs[k], prev,
                             op == 'S' ? "ax0" : "ax23", NULL, outs[k]);
            else if (op == 't' || op == 'T')
                tox_attr_ints(n = tox_node(g, "Transpose", outs[k], prev, NULL, NULL, outs[k]),
                              "perm", 4,
                              op == 't' ? (int64_t[]){0, 1, 3, 2} : (int64_t[]){1, 0, 2, 3});
            else
                tox_attr_i(n = tox_node(g, "Flatten", outs[k], prev, NULL, NULL, outs[k]), "axis",
                           op - '0');
            prev = outs[k];
        }
        tox_node(g, "Flatten", "flat", prev, NULL, NULL, "f");
        tox_node(g, "Softmax", "sm", "f", NULL, NULL, "y");
        g->output = "y";
        size_t size;
        uint8_t *buf = tox_pack(g, &size);
        struct cnn_err err = {0};
        struct cnn_model *m = NULL;
        int rc = cnn_onnx_load_mem(buf, size, NULL, 0, &m, &err);
        free(buf);
        if (cases[i].refused) {
            ck_assert_msg(rc == CNN_EFORMAT && strstr(err.msg, "unsupported") &&
                              strstr(err.msg, cases[i].refused),
                          "case %zu: %s", i, err.msg);
            ck_assert_ptr_null(m);
            continue;
        }
        ck_assert_msg(rc == 0, "case %zu: %s", i, err.msg);
        int n = (int)cases[i].in[0], k = (int)(cases[i].in[1] * cases[i].in[2] * cases[i].in[3]);
        ck_assert_int_eq(cnn_model_num_classes(m), k);
        float x[24], got[24], want[24];
        tox_fill(x, (size_t)(n * k), 70 + i);
        for (int b = 0; b < n; b++) {
            double sum = 0;
            for (int j = 0; j < k; j++)
                sum += exp(x[b * k + j]);
            for (int j = 0; j < k; j++)
                want[b * k + j] = (float)(exp(x[b * k + j]) / sum);
        }
        tox_run(m, x, n, got);
        tox_assert_close(got, want, (size_t)(n * k), 1e-6f);
        cnn_model_destroy(m);
    }
    tox_arena_free();
}
END_TEST

Suite *onnx_suite(void)
{
    Suite *s = suite_create("onnx");
    TCase *tc = tcase_create("onnx");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_conv_net_matches_native_build);
    tcase_add_test(tc, test_gemm_alpha_beta_transposed_matches_naive);
    tcase_add_test(tc, test_rank2_input_gemm_softmax_matches_naive);
    tcase_add_test(tc, test_rank3_input_as_c_1_l);
    tcase_add_test(tc, test_import_holds_weights_at_most_twice);
    tcase_add_test(tc, test_op_chain_matches_native_build);
    tcase_add_test(tc, test_opset_differences_clip_and_softmax);
    tcase_add_test(tc, test_imported_model_saves_natively_names_cleaned);
    tcase_add_test(tc, test_reshape_batch_entry);
    tcase_add_test(tc, test_metadata_props_read_back);
    tcase_add_test(tc, test_metadata_mean_of_a_wide_model);
    tcase_add_test(tc, test_shape_ops_that_move_no_data);
    suite_add_tcase(s, tc);
    return s;
}
