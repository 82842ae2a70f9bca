/* Suite onnx_kinds: the ONNX rows onto the kinds added for ONNX (core/onnx_kinds.c) against
 * naive loops: Pad (opset 13 inputs with a crop; opset 6 attributes), Mul/Add/Sub/Div by
 * per-channel and scalar constants, PRelu (per-channel slope, opset 6's 1-D slope),
 * HardSwish, HardSigmoid, GlobalMaxPool, MatMul + Add bias (one dense), LogSoftmax; integer
 * constant arithmetic folded into a Reshape's shape; and the unsupported cases with their errors.
 */
#include "model.h"
#include "onnx.h"
#include "test_onnx.h"

#include <check.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static float g_m[3], g_a[3], g_d[3], g_s[3], g_w[12], g_b[4];

static Onnx__TensorProto *init(struct tox_graph *g, const char *name, int nd, const int64_t *dims,
                               float *v, size_t n, uint64_t seed)
{
    tox_fill(v, n, seed);
    return g->inits[g->n_inits++] = tox_tensor_f(name, nd, dims, v);
}

/* x (2,3,5,5) -> Pad [t1 l2 b2 r-1] value 0.5 -> Mul m(3,1,1) -> Add a(1,3,1,1) -> Sub 0.25 - v
 * -> Div d(3,1,1) -> PRelu s(3,1,1) -> HardSwish -> GlobalMaxPool -> Flatten -> MatMul w(3,4)
 * -> Add b(4) -> HardSigmoid(0.3, 0.4) -> Mul 3 -> LogSoftmax. */
static struct tox_graph *kinds_net(void)
{
    struct tox_graph *g = tox_alloc(sizeof *g);
    int64_t in[4] = {2, 3, 5, 5}, c11[3] = {3, 1, 1}, c1c11[4] = {1, 3, 1, 1}, wd[2] = {3, 4},
            bd[1] = {4}, pd[1] = {8};
    memcpy(g->in_dims, in, sizeof in);
    init(g, "m", 3, c11, g_m, 3, 31);
    init(g, "a", 4, c1c11, g_a, 3, 32);
    tox_fill(g_d, 3, 33);
    for (int k = 0; k < 3; k++)
        g_d[k] += g_d[k] < 0 ? -0.5f : 0.5f; /* away from 0 */
    g->inits[g->n_inits++] = tox_tensor_f("d", 3, c11, g_d);
    init(g, "s", 3, c11, g_s, 3, 34);
    init(g, "w", 2, wd, g_w, 12, 35);
    init(g, "b", 1, bd, g_b, 4, 36);
    float quarter = 0.25f, half = 0.5f, three = 3.0f;
    g->inits[g->n_inits++] = tox_tensor_f("quarter", 0, NULL, &quarter);
    g->inits[g->n_inits++] = tox_tensor_f("half", 0, NULL, &half);
    g->inits[g->n_inits++] = tox_tensor_f("three", 1, (int64_t[]){1}, &three);
    int64_t pads[8] = {0, 0, 1, 2, 0, 0, 2, -1};
    g->inits[g->n_inits++] = tox_tensor_i("pads", 1, pd, pads, 8);
    tox_node(g, "Pad", "pad", "x", "pads", "half", "p");
    tox_node(g, "Mul", "mul", "p", "m", NULL, "v1");
    tox_node(g, "Add", "add", "a", "v1", NULL, "v2");
    tox_node(g, "Sub", "sub", "quarter", "v2", NULL, "v3");
    tox_node(g, "Div", "div", "v3", "d", NULL, "v4");
    tox_node(g, "PRelu", "prelu", "v4", "s", NULL, "v5");
    tox_node(g, "HardSwish", "hswish", "v5", NULL, NULL, "v6");
    tox_node(g, "GlobalMaxPool", "gmp", "v6", NULL, NULL, "v7");
    tox_node(g, "Flatten", "flat", "v7", NULL, NULL, "v8");
    tox_node(g, "MatMul", "mm", "v8", "w", NULL, "v9");
    tox_node(g, "Add", "bias", "v9", "b", NULL, "v10");
    Onnx__NodeProto *n = tox_node(g, "HardSigmoid", "hsig", "v10", NULL, NULL, "v11");
    tox_attr_f(n, "alpha", 0.3f);
    tox_attr_f(n, "beta", 0.4f);
    tox_node(g, "Mul", "x3", "v11", "three", NULL, "v12");
    tox_node(g, "LogSoftmax", "lsm", "v12", NULL, NULL, "y");
    g->output = "y";
    return g;
}

static double hard_sigmoid(double v, double alpha, double beta)
{
    return fmax(0.0, fmin(1.0, alpha * v + beta));
}

static void kinds_net_naive(const float *x, float *out)
{
    for (int n = 0; n < 2; n++) {
        double z[4], mx[3];
        for (int c = 0; c < 3; c++) {
            mx[c] = -DBL_MAX;
            for (int i = 0; i < 8; i++)       /* 5 + 1 + 2 rows */
                for (int j = 0; j < 6; j++) { /* 5 + 2 - 1 columns */
                    int sy = i - 1, sx = j - 2;
                    double v =
                        sy >= 0 && sy < 5 && sx >= 0 ? x[((n * 3 + c) * 5 + sy) * 5 + sx] : 0.5;
                    v = 0.25 - (v * g_m[c] + g_a[c]);
                    v /= g_d[c];
                    v = v > 0 ? v : g_s[c] * v;
                    v *= hard_sigmoid(v, 1.0 / 6, 0.5);
                    mx[c] = fmax(mx[c], v);
                }
        }
        double big = -DBL_MAX, sum = 0;
        for (int o = 0; o < 4; o++) {
            z[o] = g_b[o];
            for (int c = 0; c < 3; c++)
                z[o] += mx[c] * g_w[c * 4 + o];
            z[o] = 3 * hard_sigmoid(z[o], 0.3, 0.4);
            big = fmax(big, z[o]);
        }
        for (int o = 0; o < 4; o++)
            sum += exp(z[o] - big);
        for (int o = 0; o < 4; o++)
            out[n * 4 + o] = (float)(z[o] - big - log(sum));
    }
}

START_TEST(test_new_kind_ops_match_naive)
{
    struct cnn_model *m = tox_load(kinds_net());
    ck_assert_int_eq(cnn_model_num_classes(m), 4);
    /* MatMul + Add(b) is one dense with a bias (as PyTorch emits Linear on some paths) */
    struct cnn_layer_info li;
    cnn_model_layer_info(m, cnn_model_find_layer(m, "mm"), &li);
    ck_assert_int_eq(li.kind, CNN_LAYER_DENSE);
    ck_assert_uint_eq(li.params, 3 * 4 + 4);
    ck_assert_int_lt(cnn_model_find_layer(m, "bias"), 0);
    float x[2 * 3 * 5 * 5], got[8], want[8];
    tox_fill(x, sizeof x / 4, 37);
    for (size_t k = 0; k < sizeof x / 4; k++)
        x[k] *= 3.0f;
    tox_run(m, x, 2, got);
    kinds_net_naive(x, want);
    tox_assert_close(got, want, 8, 1e-5f);
    cnn_model_destroy(m);
    tox_arena_free();
}
END_TEST

/* MatMul's output read by the Add and by a Concat: no fold (the Concat needs the value
 * without bias); the result still equals x W + [b, 0]. */
START_TEST(test_matmul_bias_not_folded_when_read_twice)
{
    struct tox_graph *g = tox_alloc(sizeof *g);
    int64_t in[4] = {2, 3, 1, 1}, wd[2] = {3, 4}, bd[1] = {4};
    memcpy(g->in_dims, in, sizeof in);
    init(g, "w", 2, wd, g_w, 12, 51);
    init(g, "b", 1, bd, g_b, 4, 52);
    tox_node(g, "Flatten", "flat", "x", NULL, NULL, "f");
    tox_node(g, "MatMul", "mm", "f", "w", NULL, "z");
    tox_node(g, "Add", "bias", "b", "z", NULL, "zb");
    tox_node(g, "Concat", "cat", "zb", "z", NULL, "y");
    tox_attr_i(g->nodes[g->n_nodes - 1], "axis", 1);
    g->output = "y";
    struct cnn_model *m = tox_load(g);
    ck_assert_int_ge(cnn_model_find_layer(m, "bias"), 0);
    float x[6], got[16], want[16];
    tox_fill(x, 6, 53);
    tox_run(m, x, 2, got);
    for (int i = 0; i < 2; i++)
        for (int o = 0; o < 4; o++) {
            double z = 0;
            for (int c = 0; c < 3; c++)
                z += x[i * 3 + c] * g_w[c * 4 + o];
            want[i * 8 + o] = (float)(z + g_b[o]);
            want[i * 8 + 4 + o] = (float)z;
        }
    tox_assert_close(got, want, 16, 1e-6f);
    cnn_model_destroy(m);
    tox_arena_free();
}
END_TEST

/* Opset 6: Pad's pads and value are attributes, PRelu's 1-D slope of C values is per
 * channel (no broadcasting yet); x (2,3,4,4) -> Pad [b1 l1] value -2 -> PRelu -> GMP ->
 * Flatten -> Softmax. */
START_TEST(test_opset6_pad_attributes_and_prelu_slope)
{
    struct tox_graph *g = tox_alloc(sizeof *g);
    int64_t in[4] = {2, 3, 4, 4}, d3[1] = {3}, pads[8] = {0, 0, 0, 1, 0, 0, 1, 0};
    memcpy(g->in_dims, in, sizeof in);
    g->opset = 6;
    init(g, "s", 1, d3, g_s, 3, 41);
    Onnx__NodeProto *n = tox_node(g, "Pad", "pad", "x", NULL, NULL, "p");
    tox_attr_ints(n, "pads", 8, pads);
    tox_attr_f(n, "value", -2.0f);
    tox_node(g, "PRelu", "prelu", "p", "s", NULL, "r");
    tox_node(g, "GlobalMaxPool", "gmp", "r", NULL, NULL, "q");
    tox_node(g, "Flatten", "flat", "q", NULL, NULL, "f");
    tox_node(g, "Softmax", "sm", "f", NULL, NULL, "y");
    g->output = "y";
    struct cnn_model *m = tox_load(g);
    float x[2 * 48], got[6], want[6];
    tox_fill(x, 96, 42);
    for (int k = 0; k < 96; k++)
        x[k] -= 1.5f; /* mostly negative: the pad value (-2 * slope) can win the max */
    tox_run(m, x, 2, got);
    for (int i = 0; i < 2; i++) {
        double mx[3], sum = 0;
        for (int c = 0; c < 3; c++) {
            mx[c] = -DBL_MAX;
            for (int y = 0; y < 5; y++)
                for (int xx = 0; xx < 5; xx++) {
                    double v = y < 4 && xx >= 1 ? x[(i * 3 + c) * 16 + y * 4 + xx - 1] : -2.0;
                    mx[c] = fmax(mx[c], v > 0 ? v : g_s[c] * v);
                }
            sum += exp(mx[c]);
        }
        for (int c = 0; c < 3; c++)
            want[i * 3 + c] = (float)(exp(mx[c]) / sum);
    }
    tox_assert_close(got, want, 6, 1e-6f);
    cnn_model_destroy(m);
    tox_arena_free();
}
END_TEST

/* Integer Mul and Div on constants fold: Reshape x (N,3,2,2) to [0, 6 * 4 / 2] = (N,12). */
START_TEST(test_integer_arith_folds_into_reshape_shape)
{
    struct tox_graph *g = tox_alloc(sizeof *g);
    int64_t in[4] = {1, 3, 2, 2}, d2[1] = {2}, s[2] = {0, 6}, four = 4, two = 2;
    memcpy(g->in_dims, in, sizeof in);
    g->inits[g->n_inits++] = tox_tensor_i("s", 1, d2, s, 2);
    g->inits[g->n_inits++] = tox_tensor_i("four", 0, NULL, &four, 1);
    g->inits[g->n_inits++] = tox_tensor_i("two", 0, NULL, &two, 1);
    tox_node(g, "Mul", "mul", "s", "four", NULL, "s4");
    tox_node(g, "Div", "div", "s4", "two", NULL, "s2");
    tox_node(g, "Reshape", "rs", "x", "s2", NULL, "f");
    tox_node(g, "Softmax", "sm", "f", NULL, NULL, "y");
    g->output = "y";
    struct cnn_model *m = tox_load(g);
    ck_assert_int_eq(cnn_model_num_classes(m), 12);
    float x[12], got[12], want[12];
    double sum = 0;
    tox_fill(x, 12, 43);
    for (int k = 0; k < 12; k++)
        sum += exp(x[k]);
    for (int k = 0; k < 12; k++)
        want[k] = (float)(exp(x[k]) / sum);
    tox_run(m, x, 1, got);
    tox_assert_close(got, want, 12, 1e-6f);
    cnn_model_destroy(m);
    tox_arena_free();
}
END_TEST

/* x * HardSigmoid(x, 1/6, 1/2), the HardSwish `cnn convert` writes before opset 14, is one
 * hard_swish layer (the Mul folded away) equal to the naive x * clamp(x / 6 + 1/2). */
START_TEST(test_mul_of_hard_sigmoid_is_hard_swish)
{
    struct tox_graph *g = tox_alloc(sizeof *g);
    int64_t in[4] = {2, 3, 2, 2};
    memcpy(g->in_dims, in, sizeof in);
    g->opset = 13;
    Onnx__NodeProto *n = tox_node(g, "HardSigmoid", "hs", "x", NULL, NULL, "h");
    tox_attr_f(n, "alpha", 1.0f / 6.0f);
    tox_attr_f(n, "beta", 0.5f);
    tox_node(g, "Mul", "mul", "h", "x", NULL, "s");
    tox_node(g, "Flatten", "flat", "s", NULL, NULL, "y");
    g->output = "y";
    struct cnn_model *m = tox_load(g);
    ck_assert_int_ge(cnn_model_find_layer(m, "hs"), 0);
    ck_assert_int_lt(cnn_model_find_layer(m, "mul"), 0);
    float x[24], got[24], want[24];
    tox_fill(x, 24, 61);
    for (int k = 0; k < 24; k++) {
        x[k] *= 5.0f; /* both clamps reached */
        want[k] = (float)(x[k] * hard_sigmoid(x[k], 1.0 / 6, 0.5));
    }
    tox_run(m, x, 2, got);
    tox_assert_close(got, want, 24, 1e-6f);
    cnn_model_destroy(m);
    tox_arena_free();
}
END_TEST

/* One bad node after x (1,3,5,5): refused with CNN_EFORMAT and a message naming why. */
static const struct bad_case {
    const char *op, *in0, *in1, *mode, *want;
    int64_t cdims[8]; /* dims of "k", or the pads */
    int cnd;          /* rank of the constant "k" (0: scalar); -1: int64 pads input */
    float kval;
} BAD[] = {
    {"Div", "k", "x", NULL, "constant divided by a tensor", {0}, 0, 2.0f},
    {"Div", "x", "k", NULL, "non-finite", {0}, 0, 0.0f},
    {"Mul", "x", "k", NULL, "does not broadcast to one item", {2, 1, 1, 1}, 4, 1.0f}, /* batch */
    {"Add", "x", "k", NULL, "does not broadcast to one item", {2, 1, 1}, 3, 1.0f}, /* 2 of 3 */
    {"Sub", "x", "k", NULL, "rank 5", {1, 1, 3, 1, 1}, 5, 1.0f},
    {"Mul", "x", "x", NULL, "two tensors", {0}, 0, 1.0f},
    {"PRelu", "x", "k", NULL, "slope dim 0 of 2", {2}, 1, 1.0f},
    {"Pad", "x", "pads", "reflect", "mode other than constant", {0, 0, 1, 1, 0, 0, 1, 1}, -1, 0},
    {"Pad", "x", "pads", NULL, "padding of N or C", {0, 1, 0, 0, 0, 0, 0, 0}, -1, 0},
    {"Pad", "x", "pads", NULL, "out of range", {0, 0, 1 << 30, 0, 0, 0, 0, 0}, -1, 0},
    {"Pad", "x", "pads", NULL, "not 8 integers", {0, 0, 1, 1}, -2, 0},
    {"GlobalMaxPool", "f", NULL, NULL, "rank 2", {0}, 0, 0},
    {"HardSigmoid", "x", NULL, NULL, "two tensors", {0}, 0, 0}, /* then Mul(its output, f) */
};

START_TEST(test_unsupported_forms_refused)
{
    const struct bad_case *b = &BAD[_i];
    struct tox_graph *g = tox_alloc(sizeof *g);
    int64_t in[4] = {1, 3, 5, 5};
    memcpy(g->in_dims, in, sizeof in);
    if (b->cnd >= 0) {
        float v[8];
        for (int k = 0; k < 8; k++)
            v[k] = b->kval;
        g->inits[g->n_inits++] = tox_tensor_f("k", b->cnd, b->cdims, v);
    } else {
        int64_t np = b->cnd == -1 ? 8 : 4;
        g->inits[g->n_inits++] = tox_tensor_i("pads", 1, &np, b->cdims, (size_t)np);
    }
    tox_node(g, "Flatten", "flat", "x", NULL, NULL, "f");
    int hs = strcmp(b->op, "HardSigmoid") == 0; /* 1/6, 1/2 but Mul by another tensor */
    Onnx__NodeProto *n =
        tox_node(g, hs ? "Relu" : b->op, hs ? "r" : "bad", b->in0, b->in1, NULL, hs ? "r" : "y");
    if (hs) {
        n = tox_node(g, "HardSigmoid", "h", "x", NULL, NULL, "h");
        tox_attr_f(n, "alpha", 1.0f / 6.0f);
        tox_node(g, "Mul", "bad", "h", "r", NULL, "y");
    }
    if (b->mode) {
        Onnx__AttributeProto *a = tox_attr(n, "mode");
        a->has_type = a->has_s = 1;
        a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING;
        a->s.data = (uint8_t *)tox_str(b->mode);
        a->s.len = strlen(b->mode);
    }
    g->output = "y";
    size_t size;
    uint8_t *buf = tox_pack(g, &size);
    struct cnn_err err = {0};
    struct cnn_model *m = NULL;
    ck_assert_int_eq(cnn_onnx_load_mem(buf, size, NULL, 0, &m, &err), CNN_EFORMAT);
    ck_assert_ptr_null(m);
    ck_assert_msg(strstr(err.msg, b->want) && strstr(err.msg, "'bad'"), "%s: %s", b->op, err.msg);
    free(buf);
    tox_arena_free();
}
END_TEST

Suite *onnx_kinds_suite(void)
{
    Suite *s = suite_create("onnx_kinds");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_new_kind_ops_match_naive);
    tcase_add_test(tc, test_matmul_bias_not_folded_when_read_twice);
    tcase_add_test(tc, test_opset6_pad_attributes_and_prelu_slope);
    tcase_add_test(tc, test_integer_arith_folds_into_reshape_shape);
    tcase_add_test(tc, test_mul_of_hard_sigmoid_is_hard_swish);
    tcase_add_loop_test(tc, test_unsupported_forms_refused, 0, (int)(sizeof BAD / sizeof BAD[0]));
    suite_add_tcase(s, tc);
    return s;
}
