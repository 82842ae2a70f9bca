/* Suite onnx_ranks: ONNX values of rank 1 and 3 and the softmax spans, against naive loops.
 * (N, C, L) is the model input (C, 1, L): 1-D Conv (groups, pads, strides, dilations), MaxPool
 * and AveragePool, BatchNormalization, PRelu, Unsqueeze/Squeeze around a 2-D pool; (N) is
 * (N, 1) in elementwise graphs; a graph whose output is its input; Softmax/LogSoftmax over
 * the channels at each position, each plane (axis 2 before opset 13) and each row (the last
 * axis), their backward by finite differences, and their export at opsets 11 and 13;
 * MaxPool dilations through export; Unsqueeze to (N,C,L,1) as a reshape layer; constant
 * Transpose folded; arithmetic with a constant per element of an item (gradients too). */
#include "grad.h"
#include "layer.h"
#include "model.h"
#include "onnx.h"
#include "onnx_export.h"
#include "test_onnx.h"
#include "test_train.h"

#include <check.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static float g_w[6 * 2 * 3], g_b[6], g_bn[4][4], g_slope[4];

/* x (N,4,10) -> Conv W(6,2,3) group 2 stride 2 pads [1,2] dilation 2 -> MaxPool 2 pads
 * [0,1] -> AveragePool 3 stride 2 pads [1,1] (count_include_pad 0): (N,6,3). */
static struct tox_graph *conv1d_net(void)
{
    struct tox_graph *g = tox_alloc(sizeof *g);
    int64_t in[3] = {-1, 4, 10}, wd[3] = {6, 2, 3}, bd[1] = {6};
    memcpy(g->in_dims, in, sizeof in);
    g->in_rank = 3;
    tox_fill(g_w, 36, 71);
    tox_fill(g_b, 6, 72);
    g->inits[g->n_inits++] = tox_tensor_f("W", 3, wd, g_w);
    g->inits[g->n_inits++] = tox_tensor_f("B", 1, bd, g_b);
    Onnx__NodeProto *n = tox_node(g, "Conv", "conv", "x", "W", "B", "c");
    tox_attr_i(n, "group", 2);
    tox_attr_ints(n, "strides", 1, (int64_t[]){2});
    tox_attr_ints(n, "pads", 2, (int64_t[]){1, 2});
    tox_attr_ints(n, "dilations", 1, (int64_t[]){2});
    tox_attr_ints(n, "kernel_shape", 1, (int64_t[]){3});
    n = tox_node(g, "MaxPool", "mp", "c", NULL, NULL, "m");
    tox_attr_ints(n, "kernel_shape", 1, (int64_t[]){2});
    tox_attr_ints(n, "pads", 2, (int64_t[]){0, 1});
    n = tox_node(g, "AveragePool", "ap", "m", NULL, NULL, "a");
    tox_attr_ints(n, "kernel_shape", 1, (int64_t[]){3});
    tox_attr_ints(n, "strides", 1, (int64_t[]){2});
    tox_attr_ints(n, "pads", 2, (int64_t[]){1, 1});
    g->output = "a";
    return g;
}

/* The same in naive loops: x (N,4,10) -> out (N,6,3). */
static void conv1d_naive(const float *x, int N, float *out)
{
    for (int n = 0; n < N; n++) {
        float c[6][5], m[6][5];
        for (int o = 0; o < 6; o++)
            for (int t = 0; t < 5; t++) {
                double s = g_b[o];
                for (int ci = 0; ci < 2; ci++)
                    for (int k = 0; k < 3; k++) {
                        int pos = t * 2 - 1 + k * 2, ch = (o / 3) * 2 + ci;
                        if (pos >= 0 && pos < 10)
                            s += (double)g_w[(o * 2 + ci) * 3 + k] * x[(n * 4 + ch) * 10 + pos];
                    }
                c[o][t] = (float)s;
            }
        for (int o = 0; o < 6; o++)
            for (int t = 0; t < 5; t++) /* window [t, t+1], position 5 is padding */
                m[o][t] = t + 1 < 5 ? fmaxf(c[o][t], c[o][t + 1]) : c[o][t];
        for (int o = 0; o < 6; o++)
            for (int t = 0; t < 3; t++) {
                double s = 0;
                int cnt = 0;
                for (int k = 0; k < 3; k++) {
                    int pos = t * 2 - 1 + k;
                    if (pos >= 0 && pos < 5) {
                        s += m[o][pos];
                        cnt++;
                    }
                }
                out[(n * 6 + o) * 3 + t] = (float)(s / cnt);
            }
    }
}

START_TEST(test_conv1d_and_pools_on_n_c_l_match_naive)
{
    struct cnn_model *m = tox_load(conv1d_net());
    const struct cnn_preproc *pp = cnn_model_preproc(m);
    ck_assert_int_eq(pp->c, 4);
    ck_assert_int_eq(pp->h, 1);
    ck_assert_int_eq(pp->w, 10);
    ck_assert_int_eq(cnn_model_num_classes(m), 18);
    float x[2 * 40], got[36], want[36];
    tox_fill(x, 80, 73);
    tox_run(m, x, 2, got);
    conv1d_naive(x, 2, want);
    tox_assert_close(got, want, 36, 1e-5f);

    /* exported (4-D, kernel (1, k)) and read back: the same outputs */
    tox_export_round_trip(m, 13, x, 2, want, 36, 1e-5f);
    cnn_model_destroy(m);
    tox_arena_free();
}
END_TEST

/* x (N,4,5) -> BatchNormalization -> PRelu slope (4,1) -> LogSoftmax axis -1 (each row) ->
 * Softmax axis 1 (opset 13: the channels at each position). */
START_TEST(test_rank3_bn_prelu_softmax_spans_match_naive)
{
    struct tox_graph *g = tox_alloc(sizeof *g);
    int64_t in[3] = {-1, 4, 5}, cd[1] = {4}, sd[2] = {4, 1};
    memcpy(g->in_dims, in, sizeof in);
    g->in_rank = 3;
    static const char *const bn_names[4] = {"gamma", "beta", "mean", "var"};
    for (int k = 0; k < 4; k++) {
        tox_fill(g_bn[k], 4, 80 + (uint64_t)k);
        if (k == 3)
            for (int c = 0; c < 4; c++)
                g_bn[3][c] = 0.5f + fabsf(g_bn[3][c]);
        g->inits[g->n_inits++] = tox_tensor_f(bn_names[k], 1, cd, g_bn[k]);
    }
    tox_fill(g_slope, 4, 85);
    g->inits[g->n_inits++] = tox_tensor_f("slope", 2, sd, g_slope);
    Onnx__NodeProto *n = tox_node(g, "BatchNormalization", "bn", "x", "gamma", "beta", "b");
    tox_add_input(n, "mean");
    tox_add_input(n, "var");
    tox_node(g, "PRelu", "prelu", "b", "slope", NULL, "p");
    n = tox_node(g, "LogSoftmax", "lsm", "p", NULL, NULL, "l");
    tox_attr_i(n, "axis", -1);
    n = tox_node(g, "Softmax", "sm", "l", NULL, NULL, "s");
    tox_attr_i(n, "axis", 1);
    g->output = "s";
    struct cnn_model *m = tox_load(g);
    float x[40], got[40], want[40], v[40];
    tox_fill(x, 40, 86);
    tox_run(m, x, 2, got);
    for (int i = 0; i < 40; i++) { /* (n, c, t) */
        int c = (i / 5) % 4;
        double y = (x[i] - g_bn[2][c]) / sqrt(g_bn[3][c] + 1e-5) * g_bn[0][c] + g_bn[1][c];
        v[i] = (float)(y > 0 ? y : g_slope[c] * y);
    }
    for (int r = 0; r < 8; r++) { /* log-softmax over each row of 5 */
        double mx = -INFINITY, s = 0;
        for (int t = 0; t < 5; t++)
            mx = fmax(mx, v[r * 5 + t]);
        for (int t = 0; t < 5; t++)
            s += exp(v[r * 5 + t] - mx);
        for (int t = 0; t < 5; t++)
            v[r * 5 + t] = (float)(v[r * 5 + t] - mx - log(s));
    }
    for (int n2 = 0; n2 < 2; n2++) /* softmax over the 4 channels at each position */
        for (int t = 0; t < 5; t++) {
            double s = 0;
            for (int c = 0; c < 4; c++)
                s += exp(v[(n2 * 4 + c) * 5 + t]);
            for (int c = 0; c < 4; c++)
                want[(n2 * 4 + c) * 5 + t] = (float)(exp(v[(n2 * 4 + c) * 5 + t]) / s);
        }
    tox_assert_close(got, want, 40, 1e-5f);
    cnn_model_destroy(m);
    tox_arena_free();
}
END_TEST

/* x (N,3,4,5) at opset 11 -> Softmax axis 2 (each 4x5 plane) -> LogSoftmax axis 3 (each row
 * of 5); exported at opset 11 and read back equal; at opset 13 the plane span is refused by
 * the exporter and axis 2 (H alone) and axis 0 (the batch) by the importer. */
START_TEST(test_softmax_plane_and_row_spans_match_naive)
{
    struct tox_graph *g = tox_alloc(sizeof *g);
    int64_t in[4] = {-1, 3, 4, 5};
    memcpy(g->in_dims, in, sizeof in);
    g->opset = 11;
    Onnx__NodeProto *sm = tox_node(g, "Softmax", "sm", "x", NULL, NULL, "s");
    tox_attr_i(sm, "axis", 2);
    Onnx__NodeProto *n = tox_node(g, "LogSoftmax", "lsm", "s", NULL, NULL, "l");
    tox_attr_i(n, "axis", 3);
    g->output = "l";
    struct cnn_model *m = tox_load(g);
    float x[120], got[120], want[120];
    tox_fill(x, 120, 91);
    for (int i = 0; i < 120; i++)
        x[i] *= 4.0f;
    tox_run(m, x, 2, got);
    for (int p = 0; p < 6; p++) { /* (n, c) planes of 20 */
        double s = 0;
        for (int k = 0; k < 20; k++)
            s += exp(x[p * 20 + k]);
        for (int k = 0; k < 20; k++)
            want[p * 20 + k] = (float)(exp(x[p * 20 + k]) / s);
    }
    for (int r = 0; r < 24; r++) { /* rows of 5 */
        double s = 0;
        for (int k = 0; k < 5; k++)
            s += exp(want[r * 5 + k]);
        for (int k = 0; k < 5; k++)
            want[r * 5 + k] = (float)(want[r * 5 + k] - log(s));
    }
    tox_assert_close(got, want, 120, 1e-5f);

    void *data;
    size_t size;
    struct cnn_err err = {0};
    tox_export_round_trip(m, 11, x, 2, want, 120, 1e-5f);
    ck_assert_int_eq(cnn_onnx_export_mem(m, 13, &data, &size, &err), CNN_EINVAL);
    ck_assert_msg(strstr(err.msg, "each plane") != NULL, "%s", err.msg);
    cnn_model_destroy(m);

    g->opset = 13;
    for (int k = 0; k < 2; k++) {
        sm->attribute[0]->i = k == 0 ? 2 : 0; /* Softmax's one attribute: axis */
        uint8_t *buf = tox_pack(g, &size);
        m = NULL;
        ck_assert_int_eq(cnn_onnx_load_mem(buf, size, NULL, 0, &m, &err), CNN_EFORMAT);
        ck_assert_ptr_null(m);
        ck_assert_msg(strstr(err.msg, k == 0 ? "unsupported: softmax axis 2 of rank 4 (H alone)"
                                             : "unsupported: softmax axis 0 of rank 4 (the batch)"),
                      "%s", err.msg);
        free(buf);
    }
    tox_arena_free();
}
END_TEST

/* The span backward kernels against central differences of sum(dout * f(x)). */
START_TEST(test_softmax_span_backward_matches_finite_differences)
{
    enum { C = 3, N = 2, H = 2, W = 3, T = C * N * H * W };
    float x[T], dout[T], y[T], dx[T], yp[T], ym[T];
    tox_fill(dout, T, 95);
    for (int span = 0; span < CNN_SOFTMAX_SPAN_COUNT; span++)
        for (int lg = 0; lg < 2; lg++) {
            const struct cnn_softmax p = {.span = span};
            tox_fill(x, T, 96 + (uint64_t)span);
            cnn_softmax_span_forward(y, x, &p, C, N, H, W, lg);
            memset(dx, 0, sizeof dx);
            cnn_softmax_span_backward(dx, dout, y, &p, C, N, H, W, lg);
            for (int i = 0; i < T; i++) {
                const float x0 = x[i], e = 1e-2f;
                x[i] = x0 + e;
                cnn_softmax_span_forward(yp, x, &p, C, N, H, W, lg);
                x[i] = x0 - e;
                cnn_softmax_span_forward(ym, x, &p, C, N, H, W, lg);
                x[i] = x0;
                double num = 0;
                for (int k = 0; k < T; k++)
                    num += (double)dout[k] * (yp[k] - ym[k]) / (2.0 * e);
                ck_assert_msg(fabs(num - dx[i]) < 2e-3, "span %d log %d [%d]: %g vs %g", span,
                              lg, i, num, dx[i]);
            }
        }
}
END_TEST

/* (N) is (N, 1) through elementwise ops: Clip with constant bounds; a graph whose output
 * is its input (Identity) copies it. */
START_TEST(test_rank1_input_and_output_equal_to_input)
{
    struct tox_graph *g = tox_alloc(sizeof *g);
    int64_t in[1] = {-1};
    memcpy(g->in_dims, in, sizeof in);
    g->in_rank = 1;
    float lo = -0.5f, hi = 0.25f;
    g->inits[g->n_inits++] = tox_tensor_f("lo", 0, NULL, &lo);
    g->inits[g->n_inits++] = tox_tensor_f("hi", 0, NULL, &hi);
    tox_node(g, "Clip", "clip", "x", "lo", "hi", "y");
    g->output = "y";
    struct cnn_model *m = tox_load(g);
    ck_assert_int_eq(cnn_model_num_classes(m), 1);
    float x[7], got[7], want[7];
    tox_fill(x, 7, 97);
    tox_run(m, x, 7, got);
    for (int i = 0; i < 7; i++)
        want[i] = fminf(fmaxf(x[i], lo), hi);
    tox_assert_close(got, want, 7, 0.0f);
    cnn_model_destroy(m);

    struct tox_graph *h = tox_alloc(sizeof *h);
    int64_t in4[4] = {-1, 3, 2, 2};
    memcpy(h->in_dims, in4, sizeof in4);
    tox_node(h, "Identity", "id", "x", NULL, NULL, "y");
    h->output = "y";
    m = tox_load(h);
    float x4[24], got4[24];
    tox_fill(x4, 24, 98);
    tox_run(m, x4, 2, got4);
    tox_assert_close(got4, x4, 24, 0.0f);
    cnn_model_destroy(m);
    tox_arena_free();
}
END_TEST

/* (N,3,6) -> Unsqueeze axis 2 (N,3,1,6) or axis 3 (N,3,6,1; PyTorch's 1-D pools before
 * opset 10: a reshape layer) -> AveragePool (1,2) / (2,1) stride 2 -> Squeeze -> (N,3,3):
 * the same as naive loops, exported (opset 11) and read back equal. */
START_TEST(test_unsqueeze_pool_squeeze_chain_matches_naive)
{
    for (int axis = 2; axis <= 3; axis++) {
        struct tox_graph *g = tox_alloc(sizeof *g);
        int64_t in[3] = {-1, 3, 6}, *ax = tox_alloc(sizeof *ax);
        memcpy(g->in_dims, in, sizeof in);
        g->in_rank = 3;
        g->opset = 11;
        *ax = axis;
        Onnx__NodeProto *n = tox_node(g, "Unsqueeze", "un", "x", NULL, NULL, "u");
        tox_attr_ints(n, "axes", 1, ax);
        n = tox_node(g, "AveragePool", "ap", "u", NULL, NULL, "a");
        const int64_t k2[2] = {axis == 2 ? 1 : 2, axis == 2 ? 2 : 1};
        tox_attr_ints(n, "kernel_shape", 2, k2);
        tox_attr_ints(n, "strides", 2, k2);
        n = tox_node(g, "Squeeze", "sq", "a", NULL, NULL, "s");
        tox_attr_ints(n, "axes", 1, ax);
        g->output = "s";
        struct cnn_model *m = tox_load(g);
        float x[36], got[18], want[18];
        tox_fill(x, 36, 99);
        tox_run(m, x, 2, got);
        for (int i = 0; i < 18; i++)
            want[i] = 0.5f * (x[2 * i] + x[2 * i + 1]);
        tox_assert_close(got, want, 18, 1e-6f);
        tox_export_round_trip(m, 11, x, 2, want, 18, 1e-6f);
        cnn_model_destroy(m);
    }
    tox_arena_free();
}
END_TEST

/* MaxPool dilations: exported (opset 13) and read back with the same outputs; opset 9 has
 * no MaxPool dilations (refused); AveragePool dilations (opset 19) are unsupported. */
START_TEST(test_maxpool_dilations_export_and_refusals)
{
    struct tox_graph *g = tox_alloc(sizeof *g);
    int64_t in[4] = {-1, 2, 6, 7};
    memcpy(g->in_dims, in, sizeof in);
    Onnx__NodeProto *n = tox_node(g, "MaxPool", "mp", "x", NULL, NULL, "m");
    tox_attr_ints(n, "kernel_shape", 2, (int64_t[]){2, 3});
    tox_attr_ints(n, "dilations", 2, (int64_t[]){2, 2});
    tox_attr_ints(n, "pads", 4, (int64_t[]){1, 0, 1, 2});
    g->output = "m";
    struct cnn_model *m = tox_load(g);
    ck_assert_int_eq(cnn_model_num_classes(m), 2 * 6 * 5);
    float x[2 * 84], want[120];
    tox_fill(x, 168, 101);
    tox_run(m, x, 2, want);
    void *data;
    size_t size;
    struct cnn_err err = {0};
    tox_export_round_trip(m, 13, x, 2, want, 120, 0.0f);
    ck_assert_int_eq(cnn_onnx_export_mem(m, 9, &data, &size, &err), CNN_EINVAL);
    ck_assert_msg(strstr(err.msg, "dilations need opset 10") != NULL, "%s", err.msg);
    cnn_model_destroy(m);
    n->op_type = "AveragePool";
    uint8_t *buf = tox_pack(g, &size);
    m = NULL;
    ck_assert_int_eq(cnn_onnx_load_mem(buf, size, NULL, 0, &m, &err), CNN_EFORMAT);
    ck_assert_msg(strstr(err.msg, "unsupported: AveragePool dilations") != NULL, "%s", err.msg);
    free(buf);
    tox_arena_free();
}
END_TEST

/* Transpose of a constant is folded (PyTorch's Linear without bias before opset 9:
 * Transpose(W) -> MatMul): x (N,4) times the (2,3,4) constant permuted (2,0,1) and reshaped
 * to (4,6) equals naive loops; a perm that is not a permutation is an error. */
START_TEST(test_transpose_of_a_constant_is_folded)
{
    static float wv[24];
    struct tox_graph *g = tox_alloc(sizeof *g);
    int64_t in[2] = {-1, 4}, wd[3] = {2, 3, 4}, sd[1] = {2}, shape[2] = {4, 6};
    memcpy(g->in_dims, in, sizeof in);
    g->in_rank = 2;
    tox_fill(wv, 24, 103);
    g->inits[g->n_inits++] = tox_tensor_f("W", 3, wd, wv);
    g->inits[g->n_inits++] = tox_tensor_i("shape", 1, sd, shape, 2);
    Onnx__NodeProto *t = tox_node(g, "Transpose", "tr", "W", NULL, NULL, "wt");
    tox_attr_ints(t, "perm", 3, (int64_t[]){2, 0, 1});
    tox_node(g, "Reshape", "rs", "wt", "shape", NULL, "w2");
    tox_node(g, "MatMul", "mm", "x", "w2", NULL, "y");
    g->output = "y";
    struct cnn_model *m = tox_load(g);
    float x[8], got[12], want[12];
    tox_fill(x, 8, 104);
    tox_run(m, x, 2, got);
    for (int n = 0; n < 2; n++)
        for (int j = 0; j < 6; j++) { /* w2[k][j] = W[a][b][k] with j = a * 3 + b */
            double s = 0;
            for (int k = 0; k < 4; k++)
                s += (double)x[n * 4 + k] * wv[((j / 3) * 3 + j % 3) * 4 + k];
            want[n * 6 + j] = (float)s;
        }
    tox_assert_close(got, want, 12, 1e-5f);
    cnn_model_destroy(m);
    t->attribute[0]->ints[1] = 2; /* (2, 2, 1) */
    size_t size;
    uint8_t *buf = tox_pack(g, &size);
    struct cnn_err err = {0};
    m = NULL;
    ck_assert_int_eq(cnn_onnx_load_mem(buf, size, NULL, 0, &m, &err), CNN_EFORMAT);
    ck_assert_msg(strstr(err.msg, "not a permutation") != NULL, "%s", err.msg);
    free(buf);
    tox_arena_free();
}
END_TEST

/* Add/Sub/Mul/Div by a constant that broadcasts along L or over the whole item (a
 * per-element scale_shift): x (N,4,5) -> Conv 1x1 W(3,4,1) B(3) -> Mul m(5) -> Sub s(3,5)
 * -> Div d(1,3,5) -> Flatten -> MatMul g(15,4) + gb(4): naive loops, export/re-import, the trainer's
 * gradients by finite differences; a (3,3,5) constant (it spans the batch) is refused. */
START_TEST(test_per_element_constant_arithmetic)
{
    static float w[12], b[3], mv[5], sv[15], dv[15], gv[60], gb[4];
    struct tox_graph *g = tox_alloc(sizeof *g);
    int64_t in[3] = {-1, 4, 5}, wd[3] = {3, 4, 1}, bd[1] = {3}, md[1] = {5}, sd[2] = {3, 5},
            dd[3] = {1, 3, 5}, gd[2] = {15, 4}, gbd[1] = {4};
    memcpy(g->in_dims, in, sizeof in);
    g->in_rank = 3;
    tox_fill(w, 12, 111);
    tox_fill(b, 3, 112);
    tox_fill(mv, 5, 113);
    tox_fill(sv, 15, 114);
    tox_fill(dv, 15, 115);
    for (int k = 0; k < 15; k++)
        dv[k] += dv[k] < 0 ? -0.5f : 0.5f; /* away from 0 */
    tox_fill(gv, 60, 116);
    tox_fill(gb, 4, 119);
    g->inits[g->n_inits++] = tox_tensor_f("W", 3, wd, w);
    g->inits[g->n_inits++] = tox_tensor_f("B", 1, bd, b);
    g->inits[g->n_inits++] = tox_tensor_f("m", 1, md, mv);
    g->inits[g->n_inits++] = tox_tensor_f("s", 2, sd, sv);
    g->inits[g->n_inits++] = tox_tensor_f("d", 3, dd, dv);
    g->inits[g->n_inits++] = tox_tensor_f("g", 2, gd, gv);
    g->inits[g->n_inits++] = tox_tensor_f("gb", 1, gbd, gb);
    tox_node(g, "Conv", "conv", "x", "W", "B", "c");
    tox_node(g, "Mul", "mul", "c", "m", NULL, "v1");
    tox_node(g, "Sub", "sub", "v1", "s", NULL, "v2");
    Onnx__NodeProto *div = tox_node(g, "Div", "div", "v2", "d", NULL, "v3");
    tox_node(g, "Flatten", "flat", "v3", NULL, NULL, "v4");
    tox_node(g, "MatMul", "mm", "v4", "g", NULL, "v5");
    tox_node(g, "Add", "bias", "v5", "gb", NULL, "y");
    g->output = "y";
    struct cnn_model *m = tox_load(g);
    enum { N = 3 };
    float x[N * 20], got[N * 4], want[N * 4], tgt[N * 4];
    tox_fill(x, N * 20, 117);
    tox_run(m, x, N, got);
    for (int n = 0; n < N; n++) {
        float v[15];
        for (int o = 0; o < 3; o++)
            for (int t = 0; t < 5; t++) {
                double s = b[o];
                for (int ci = 0; ci < 4; ci++)
                    s += (double)w[o * 4 + ci] * x[(n * 4 + ci) * 5 + t];
                v[o * 5 + t] = (float)((s * mv[t] - sv[o * 5 + t]) / dv[o * 5 + t]);
            }
        for (int j = 0; j < 4; j++) {
            double s = gb[j];
            for (int k = 0; k < 15; k++)
                s += (double)v[k] * gv[k * 4 + j];
            want[n * 4 + j] = (float)s;
        }
    }
    tox_assert_close(got, want, N * 4, 1e-4f);

    tox_export_round_trip(m, 13, x, N, want, N * 4, 1e-4f);
    size_t size;
    struct cnn_err err = {0};

    for (int k = 0; k < N * 4; k++)
        tgt[k] = want[k] + 0.1f * (float)((k % 5) - 2);
    gradcheck(m, x, NULL, tgt, N, CNN_LOSS_MSE);
    cnn_model_destroy(m);

    static float big[45];
    int64_t bgd[3] = {3, 3, 5};
    tox_fill(big, 45, 118);
    g->inits[g->n_inits++] = tox_tensor_f("big", 3, bgd, big);
    div->input[1] = "big";
    uint8_t *buf = tox_pack(g, &size);
    m = NULL;
    ck_assert_int_eq(cnn_onnx_load_mem(buf, size, NULL, 0, &m, &err), CNN_EFORMAT);
    ck_assert_msg(strstr(err.msg, "does not broadcast to one item") != NULL, "%s", err.msg);
    free(buf);
    tox_arena_free();
}
END_TEST

Suite *onnx_ranks_suite(void)
{
    Suite *s = suite_create("onnx_ranks");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_conv1d_and_pools_on_n_c_l_match_naive);
    tcase_add_test(tc, test_rank3_bn_prelu_softmax_spans_match_naive);
    tcase_add_test(tc, test_softmax_plane_and_row_spans_match_naive);
    tcase_add_test(tc, test_softmax_span_backward_matches_finite_differences);
    tcase_add_test(tc, test_rank1_input_and_output_equal_to_input);
    tcase_add_test(tc, test_unsqueeze_pool_squeeze_chain_matches_naive);
    tcase_add_test(tc, test_maxpool_dilations_export_and_refusals);
    tcase_add_test(tc, test_transpose_of_a_constant_is_folded);
    tcase_add_test(tc, test_per_element_constant_arithmetic);
    suite_add_tcase(s, tc);
    return s;
}
