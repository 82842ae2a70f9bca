/* Suite onnx_moves: the transpose kind (each item's values viewed as up to 4 dims, axes
 * permuted, read as a new C, H, W) against naive index loops over the (C, N, H, W) layout,
 * forward and backward, batches 1..3; its shape checks; its compile alias; and the ONNX
 * operators that now become it -- Transpose of an item's axes, a PixelShuffle chain through
 * rank-6 values, Reshape/Unsqueeze to other channels -- against naive loops, through export
 * and back, and through the trainer's finite differences; the refusals that remain; the
 * concat kind's axis (Concat over H, W or L); a PReLU slope per element of an item. */
#include "layer.h"
#include "model.h"
#include "model_internal.h"
#include "onnx.h"
#include "ref_net.h"
#include "session.h"
#include "test_nets.h"
#include "test_onnx.h"
#include "test_train.h"
#include "test_util.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tr_case {
    int c, h, w; /* the input item */
    struct cnn_transpose p;
};

static const struct tr_case TR_CASES[] = {
    {3, 4, 5, {{1, 1, 1, 3, 4, 5}, {0, 1, 2, 3, 5, 4}, 3, 5, 4}},
    {3, 4, 5, {{1, 1, 2, 3, 2, 5}, {0, 1, 5, 3, 2, 4}, 5, 3, 4}},
    {3, 4, 5, {{3, 4, 5, 1, 1, 1}, {0, 1, 2, 3, 4, 5}, 6, 2, 5}},
    {3, 4, 5, {{1, 3, 2, 1, 2, 5}, {5, 4, 3, 2, 1, 0}, 4, 15, 1}},
    {3, 4, 5, {{3, 2, 2, 1, 5, 1}, {4, 1, 5, 0, 3, 2}, 10, 3, 2}},
    {2, 1, 6, {{1, 1, 1, 1, 2, 6}, {0, 1, 2, 3, 5, 4}, 6, 1, 2}},
    {7, 1, 1, {{7, 1, 1, 1, 1, 1}, {1, 2, 3, 4, 5, 0}, 1, 1, 7}},
    {6, 4, 4, {{2, 3, 2, 2, 2, 2}, {5, 3, 1, 4, 0, 2}, 8, 3, 4}}, /* 6 dims above 1 */
};
enum { TR_MAX = 96, TR_N = 3 };

/* Item n of a (C, N, H, W) tensor into / out of item[(c * H + y) * W + x]. */
static void get_item(float *item, const float *t, int C, int H, int W, int N, int n)
{
    for (int c = 0; c < C; c++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                item[(c * H + y) * W + x] = t[((c * N + n) * H + y) * W + x];
}

static void put_item(float *t, const float *item, int C, int H, int W, int N, int n)
{
    for (int c = 0; c < C; c++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                t[((c * N + n) * H + y) * W + x] = item[(c * H + y) * W + x];
}

/* map[o] = the item index of output value o: o written in the radix of the permuted dims
 * (d[perm[0]], .., d[perm[5]]) is (i0..i5), the view index idx has idx[perm[k]] = ik. */
static void index_map(int *map, const struct cnn_transpose *p, int count)
{
    for (int o = 0; o < count; o++) {
        int idx[CNN_TRANSPOSE_DIMS], rest = o, i = 0;
        for (int k = CNN_TRANSPOSE_DIMS - 1; k >= 0; k--) {
            idx[p->perm[k]] = rest % p->d[p->perm[k]];
            rest /= p->d[p->perm[k]];
        }
        for (int k = 0; k < CNN_TRANSPOSE_DIMS; k++)
            i = i * p->d[k] + idx[k];
        map[o] = i;
    }
}

/* Forward and backward of every case at batches 1..3 equal the loops above; the backward
 * adds into what dinp held. */
START_TEST(test_transpose_kernels_match_naive_index_loops)
{
    for (size_t i = 0; i < sizeof TR_CASES / sizeof TR_CASES[0]; i++) {
        const struct tr_case *tc = &TR_CASES[i];
        const struct cnn_transpose *p = &tc->p;
        const int S = tc->c * tc->h * tc->w, HW = tc->h * tc->w;
        int map[TR_MAX];
        index_map(map, p, S);
        for (int N = 1; N <= TR_N; N++) {
            float x[TR_MAX * TR_N], y[TR_MAX * TR_N], want[TR_MAX * TR_N], g[TR_MAX * TR_N],
                dx[TR_MAX * TR_N], dwant[TR_MAX * TR_N], a[TR_MAX], b[TR_MAX];
            test_fill(x, (size_t)S * N, 300 + i * 10 + (uint64_t)N);
            test_fill(g, (size_t)S * N, 400 + i * 10 + (uint64_t)N);
            test_fill(dx, (size_t)S * N, 500 + i * 10 + (uint64_t)N);
            memcpy(dwant, dx, sizeof dx);
            cnn_transpose_forward(y, x, p, HW, N);
            cnn_transpose_backward(dx, g, p, HW, N);
            for (int n = 0; n < N; n++) {
                get_item(a, x, tc->c, tc->h, tc->w, N, n);
                for (int o = 0; o < S; o++)
                    b[o] = a[map[o]];
                put_item(want, b, p->c, p->h, p->w, N, n);
                get_item(b, g, p->c, p->h, p->w, N, n); /* the gradient goes back */
                get_item(a, dwant, tc->c, tc->h, tc->w, N, n);
                for (int o = 0; o < S; o++)
                    a[map[o]] += b[o];
                put_item(dwant, a, tc->c, tc->h, tc->w, N, n);
            }
            ck_assert_msg(memcmp(y, want, (size_t)S * N * sizeof *y) == 0, "case %zu N %d", i, N);
            ck_assert_msg(memcmp(dx, dwant, (size_t)S * N * sizeof *dx) == 0,
                          "case %zu N %d backward", i, N);
        }
    }
}
END_TEST

static struct cnn_layer_desc tr_desc(const char *name, struct cnn_transpose p)
{
    struct cnn_layer_desc d = simple(CNN_LAYER_TRANSPOSE, name);
    d.p.tr = p;
    return d;
}

/* Each bad parameter is refused with CNN_EINVAL naming the layer; nothing is added. */
START_TEST(test_transpose_refuses_bad_parameters)
{
    struct cnn_model *m = new_model(3, 4, 5);
    struct cnn_err err = {0};
    const struct cnn_transpose ok = {{1, 1, 1, 3, 4, 5}, {0, 1, 2, 3, 5, 4}, 3, 5, 4};
    struct cnn_transpose bad[9];
    for (int k = 0; k < 9; k++)
        bad[k] = ok;
    bad[0].perm[5] = 3;                           /* 3 twice */
    bad[1].perm[0] = 6;                           /* out of 0..5 */
    bad[2].perm[1] = -1;                          /* negative */
    bad[3].d[0] = 0;                              /* a view dim 0 (count 0) */
    bad[4].d[0] = 2;                              /* 120 values viewed of 60 */
    bad[5].w = 5;                                 /* 75 values out of 60 */
    bad[6].c = 0, bad[6].h = 60;                  /* no channels */
    bad[7].d[0] = 1 << 30, bad[7].d[1] = 1 << 30; /* a view count past any size */
    bad[8].d[1] = -1, bad[8].d[2] = -1;           /* negative dims with the right product */
    for (int k = 0; k < 9; k++) {
        struct cnn_layer_desc d = tr_desc("tbad", bad[k]);
        ck_assert_msg(cnn_model_add(m, &d, &err) == CNN_EINVAL, "case %d accepted", k);
        ck_assert_msg(strstr(err.msg, "tbad") != NULL, "case %d: %s", k, err.msg);
        ck_assert_int_eq(cnn_model_layer_count(m), 1);
    }
    struct cnn_layer_desc d = tr_desc("tok", ok);
    ck_assert_int_eq(cnn_model_add(m, &d, &err), 1);
    struct cnn_layer_info li;
    cnn_model_layer_info(m, 1, &li);
    ck_assert(li.c == 3 && li.h == 5 && li.w == 4);
    cnn_model_destroy(m);
}
END_TEST

/* 3x4x5 -> conv 1x1 -> transpose (TR_CASES[k]) -> relu, for each case (the identity perm
 * with the same channels is an alias at compile, the others run), batch 3: the session
 * equals the naive interpreter, the model file round trip keeps the fields, and the
 * trainer's gradients equal finite differences. */
START_TEST(test_transpose_nets_session_file_and_gradients)
{
    for (size_t i = 0; i < 6; i++) { /* the 3x4x5 cases, and an alias */
        const struct cnn_transpose p =
            i < 5 ? TR_CASES[i].p
                  : (struct cnn_transpose){{1, 3, 4, 1, 5, 1}, {0, 1, 2, 3, 4, 5}, 3, 20, 1};
        struct cnn_model *m = new_model(3, 4, 5);
        add(m, conv("conv", 3, 1, 0, 1, CNN_ACT_NONE));
        add(m, tr_desc("tr", p));
        add(m, act("relu", CNN_ACT_RELU));
        add(m, conv("conv2", 2, 1, 0, 1, CNN_ACT_NONE));
        struct cnn_err err = {0};
        ck_assert_int_eq(cnn_model_alloc_params(m, &err), 0);
        randomize(m, 40 + i);
        compiled(m);
        enum { N = 3 };
        const int K = 2 * p.h * p.w;
        float x[N * 60], got[N * 60], tgt[N * 60];
        double want[N * 60];
        test_fill(x, N * 60, 50 + i);
        struct cnn_session *s = cnn_session_create(m, N, &err);
        ck_assert_msg(s != NULL, "%s", err.msg);
        const float *out = NULL;
        ck_assert_int_eq(cnn_session_forward(s, m, x, N, &out, &err), 0);
        memcpy(got, out, (size_t)(N * K) * sizeof *got);
        cnn_session_destroy(s);
        for (int n = 0; n < N; n++) {
            float ref[60];
            ck_assert_int_eq(ref_net_forward(m, x + n * 60, ref), 0);
            for (int k = 0; k < K; k++)
                want[n * K + k] = ref[k];
        }
        check_close("transpose net: session vs naive", got, want, (size_t)(N * K));
        char dir[64], path[128];
        make_tmpdir(dir, sizeof dir);
        snprintf(path, sizeof path, "%s/tr.cnn", dir);
        ck_assert_msg(cnn_model_save(m, path, &err) == 0, "%s", err.msg);
        struct cnn_model *r = NULL;
        ck_assert_msg(cnn_model_load(path, &r, &err) == 0, "%s", err.msg);
        ck_assert_int_eq(r->layers[2].kind, CNN_LAYER_TRANSPOSE);
        ck_assert(memcmp(&r->layers[2].p.tr, &p, sizeof p) == 0);
        ck_assert(r->layers[2].c == p.c && r->layers[2].h == p.h && r->layers[2].w == p.w);
        cnn_model_destroy(r);
        rm_tree(dir);
        for (int k = 0; k < N * K; k++)
            tgt[k] = (float)want[k] + 0.1f * (float)((k % 5) - 2);
        gradcheck(m, x, NULL, tgt, N, CNN_LOSS_MSE);
        cnn_model_destroy(m);
    }
}
END_TEST

/* x (N,3,2,4) -> Transpose (0,2,3,1) -> Flatten: each item's values in (h, w, c) order
 * (a transpose layer); export at opset 13 and back gives the same; a perm that moves the
 * batch and the default (reversed) perm are refused. */
START_TEST(test_onnx_transpose_of_item_axes_matches_naive)
{
    struct tox_graph *g = tox_alloc(sizeof *g);
    const int64_t in[4] = {-1, 3, 2, 4};
    memcpy(g->in_dims, in, sizeof in);
    Onnx__NodeProto *t = tox_node(g, "Transpose", "tr", "x", NULL, NULL, "t");
    tox_attr_ints(t, "perm", 4, (int64_t[]){0, 2, 3, 1});
    tox_node(g, "Flatten", "flat", "t", NULL, NULL, "y");
    g->output = "y";
    struct cnn_model *m = tox_load(g);
    struct cnn_layer_info li;
    cnn_model_layer_info(m, 1, &li);
    ck_assert_int_eq(li.kind, CNN_LAYER_TRANSPOSE);
    enum { N = 3 };
    float x[N * 24], got[N * 24], want[N * 24];
    tox_fill(x, N * 24, 201);
    tox_run(m, x, N, got);
    for (int n = 0; n < N; n++)
        for (int h = 0; h < 2; h++)
            for (int w = 0; w < 4; w++)
                for (int c = 0; c < 3; c++)
                    want[n * 24 + (h * 4 + w) * 3 + c] = x[n * 24 + (c * 2 + h) * 4 + w];
    tox_assert_close(got, want, N * 24, 0.0f);
    tox_export_round_trip(m, 13, x, N, want, N * 24, 0.0f);
    cnn_model_destroy(m);
    static const int64_t refused[2][4] = {{1, 0, 2, 3}, {3, 2, 1, 0}};
    for (int k = 0; k < 3; k++) {
        if (k < 2)
            memcpy(t->attribute[0]->ints, refused[k], sizeof refused[k]);
        else
            t->n_attribute = 0; /* default: reversed */
        size_t size;
        uint8_t *buf = tox_pack(g, &size);
        struct cnn_err err = {0};
        m = NULL;
        ck_assert_int_eq(cnn_onnx_load_mem(buf, size, NULL, 0, &m, &err), CNN_EFORMAT);
        ck_assert_ptr_null(m);
        ck_assert_msg(strstr(err.msg, "unsupported: perm moves the batch") != NULL, "%s", err.msg);
        free(buf);
    }
    tox_arena_free();
}
END_TEST

static float g_pw[4], g_pb[2], g_fc[3 * 72], g_fb[3];

/* x (N,8,3,3) -> Reshape [0,2,2,2,3,3] -> Transpose (0,1,4,2,5,3) -> Reshape [0,2,6,6]
 * (PyTorch's PixelShuffle(2), through rank-6 values) -> Conv 1x1 W(2,2) B(2) -> Flatten ->
 * Gemm (72 -> 3, transB). */
static struct tox_graph *pixel_shuffle_net(void)
{
    struct tox_graph *g = tox_alloc(sizeof *g);
    const int64_t in[4] = {-1, 8, 3, 3}, s6[1] = {6}, s4[1] = {4}, wd[4] = {2, 2, 1, 1},
                  bd[1] = {2}, fd[2] = {3, 72}, fbd[1] = {3};
    memcpy(g->in_dims, in, sizeof in);
    tox_fill(g_pw, 4, 211);
    tox_fill(g_pb, 2, 213);
    tox_fill(g_fc, 3 * 72, 214);
    tox_fill(g_fb, 3, 215);
    g->inits[g->n_inits++] = tox_tensor_i("s6", 1, s6, (int64_t[]){0, 2, 2, 2, 3, 3}, 6);
    g->inits[g->n_inits++] = tox_tensor_i("s4", 1, s4, (int64_t[]){0, 2, 6, 6}, 4);
    g->inits[g->n_inits++] = tox_tensor_f("W", 4, wd, g_pw);
    g->inits[g->n_inits++] = tox_tensor_f("B", 1, bd, g_pb);
    g->inits[g->n_inits++] = tox_tensor_f("F", 2, fd, g_fc);
    g->inits[g->n_inits++] = tox_tensor_f("FB", 1, fbd, g_fb);
    tox_node(g, "Reshape", "r6", "x", "s6", NULL, "v6");
    Onnx__NodeProto *t = tox_node(g, "Transpose", "tr", "v6", NULL, NULL, "t6");
    tox_attr_ints(t, "perm", 6, (int64_t[]){0, 1, 4, 2, 5, 3});
    tox_node(g, "Reshape", "r4", "t6", "s4", NULL, "v4");
    tox_node(g, "Conv", "conv", "v4", "W", "B", "c");
    tox_node(g, "Flatten", "flat", "c", NULL, NULL, "f");
    tox_attr_i(tox_node(g, "Gemm", "fc", "f", "F", "FB", "y"), "transB", 1);
    g->output = "y";
    return g;
}

/* The PixelShuffle chain: v[n][c][h*2+i][w*2+j] = x[n][c*4+i*2+j][h][w] (2 channels, 5
 * dims above 1 in the transpose), then the 1x1 conv and the dense layer; equal to those
 * loops, through export and back, and through the trainer's finite differences. */
START_TEST(test_onnx_pixel_shuffle_chain_matches_naive)
{
    struct cnn_model *m = tox_load(pixel_shuffle_net());
    enum { N = 3, K = 3 };
    float x[N * 72], got[N * K], want[N * K], tgt[N * K];
    tox_fill(x, N * 72, 212);
    tox_run(m, x, N, got);
    for (int n = 0; n < N; n++) {
        float v[2][6][6], cv[72];
        for (int c = 0; c < 2; c++)
            for (int h = 0; h < 3; h++)
                for (int w = 0; w < 3; w++)
                    for (int i = 0; i < 2; i++)
                        for (int j = 0; j < 2; j++)
                            v[c][h * 2 + i][w * 2 + j] =
                                x[((n * 8 + c * 4 + i * 2 + j) * 3 + h) * 3 + w];
        for (int o = 0; o < 2; o++)
            for (int p = 0; p < 36; p++)
                cv[o * 36 + p] = g_pb[o] + g_pw[o * 2] * v[0][p / 6][p % 6] +
                                 g_pw[o * 2 + 1] * v[1][p / 6][p % 6];
        for (int k = 0; k < K; k++) {
            double s = g_fb[k];
            for (int j = 0; j < 72; j++)
                s += (double)g_fc[k * 72 + j] * cv[j];
            want[n * K + k] = (float)s;
        }
    }
    tox_assert_close(got, want, N * K, 1e-5f);
    tox_export_round_trip(m, 13, x, N, want, N * K, 1e-5f);
    for (int k = 0; k < N * K; k++)
        tgt[k] = want[k] + 0.1f * (float)((k % 5) - 2);
    gradcheck(m, x, NULL, tgt, N, CNN_LOSS_MSE);
    cnn_model_destroy(m);
    tox_arena_free();
}
END_TEST

/* x (N,4,6) -> Reshape [0,3,8] -> PRelu slope (3,1) -> Unsqueeze [1] -> Flatten: the
 * reshape regroups the channels (a transpose layer), so the slope of channel c applies to
 * values 8c..8c+7 of each item; the Unsqueeze to (N,1,3,8) regroups again. */
START_TEST(test_onnx_reshape_to_other_channels_matches_naive)
{
    static float slope[3] = {0.5f, -2.0f, 0.25f};
    struct tox_graph *g = tox_alloc(sizeof *g);
    const int64_t in[3] = {-1, 4, 6}, s3[1] = {3}, sd[2] = {3, 1}, one[1] = {1};
    memcpy(g->in_dims, in, sizeof in);
    g->in_rank = 3;
    g->inits[g->n_inits++] = tox_tensor_i("s3", 1, s3, (int64_t[]){0, 3, 8}, 3);
    g->inits[g->n_inits++] = tox_tensor_f("slope", 2, sd, slope);
    g->inits[g->n_inits++] = tox_tensor_i("ax1", 1, one, (int64_t[]){1}, 1);
    tox_node(g, "Reshape", "rs", "x", "s3", NULL, "v");
    tox_node(g, "PRelu", "pr", "v", "slope", NULL, "p");
    tox_node(g, "Unsqueeze", "un", "p", "ax1", NULL, "u");
    tox_node(g, "Flatten", "flat", "u", NULL, NULL, "y");
    g->output = "y";
    struct cnn_model *m = tox_load(g);
    enum { N = 2 };
    float x[N * 24], got[N * 24], want[N * 24];
    tox_fill(x, N * 24, 221);
    tox_run(m, x, N, got);
    for (int n = 0; n < N; n++)
        for (int k = 0; k < 24; k++) {
            const float v = x[n * 24 + k];
            want[n * 24 + k] = v > 0 ? v : slope[k / 8] * v;
        }
    tox_assert_close(got, want, N * 24, 0.0f);
    tox_export_round_trip(m, 13, x, N, want, N * 24, 0.0f);
    cnn_model_destroy(m);
    tox_arena_free();
}
END_TEST

/* Values of rank 5..8 go through the shape ops only: Unsqueeze [2,4] then Squeeze [2,4]
 * then Flatten is x itself; Shape of the rank-6 value folds; Relu on it is refused.  A
 * rank-8 value transposed in 6 groups of axes equals naive loops; in 7 it is refused. */
START_TEST(test_onnx_rank_above_4_values)
{
    struct tox_graph *g = tox_alloc(sizeof *g);
    const int64_t in[4] = {-1, 2, 3, 4}, two[1] = {2};
    memcpy(g->in_dims, in, sizeof in);
    g->inits[g->n_inits++] = tox_tensor_i("ax", 1, two, (int64_t[]){2, 4}, 2);
    tox_node(g, "Unsqueeze", "un", "x", "ax", NULL, "u");
    tox_node(g, "Shape", "shape", "u", NULL, NULL, "sh"); /* folded, unused */
    Onnx__NodeProto *sq = tox_node(g, "Squeeze", "sq", "u", "ax", NULL, "s");
    tox_node(g, "Flatten", "flat", "s", NULL, NULL, "y");
    g->output = "y";
    struct cnn_model *m = tox_load(g);
    float x[2 * 24], got[2 * 24];
    tox_fill(x, 2 * 24, 231);
    tox_run(m, x, 2, got);
    tox_assert_close(got, x, 2 * 24, 0.0f);
    cnn_model_destroy(m);
    sq->op_type = "Relu";
    sq->n_input = 1;
    size_t size;
    uint8_t *buf = tox_pack(g, &size);
    struct cnn_err err = {0};
    m = NULL;
    ck_assert_int_eq(cnn_onnx_load_mem(buf, size, NULL, 0, &m, &err), CNN_EFORMAT);
    ck_assert_msg(strstr(err.msg, "unsupported") && strstr(err.msg, "of rank 6"), "%s", err.msg);
    free(buf);
    tox_arena_free();

    g = tox_alloc(sizeof *g);
    const int64_t in2[2] = {-1, 128}, s8[1] = {8};
    memcpy(g->in_dims, in2, sizeof in2);
    g->in_rank = 2;
    g->inits[g->n_inits++] = tox_tensor_i("s8", 1, s8, (int64_t[]){0, 2, 2, 2, 2, 2, 2, 2}, 8);
    tox_node(g, "Reshape", "r8", "x", "s8", NULL, "v");
    Onnx__NodeProto *t = tox_node(g, "Transpose", "tr", "v", NULL, NULL, "t");
    tox_attr_ints(t, "perm", 8, (int64_t[]){0, 7, 6, 5, 4, 3, 2, 1});
    tox_node(g, "Flatten", "flat", "t", NULL, NULL, "y");
    g->output = "y";
    buf = tox_pack(g, &size);
    ck_assert_int_eq(cnn_onnx_load_mem(buf, size, NULL, 0, &m, &err), CNN_EFORMAT);
    ck_assert_msg(strstr(err.msg, "unsupported: transpose of 7 groups of axes"), "%s", err.msg);
    free(buf);
    memcpy(t->attribute[0]->ints, (int64_t[]){0, 1, 2, 7, 6, 5, 4, 3}, 8 * sizeof(int64_t));
    m = tox_load(g); /* 6 groups: axes 1-2 stay together */
    float x2[2 * 128], got2[2 * 128], want2[2 * 128];
    tox_fill(x2, 2 * 128, 232);
    tox_run(m, x2, 2, got2);
    for (int n = 0; n < 2; n++) /* out (a, b, g, f, e, d, c) = in (a, b, c, d, e, f, g) */
        for (int k = 0; k < 128; k++) {
            const int a = k >> 6 & 1, b = k >> 5 & 1, gg = k >> 4 & 1, f = k >> 3 & 1,
                      e = k >> 2 & 1, d = k >> 1 & 1, c = k & 1;
            want2[n * 128 + k] =
                x2[n * 128 + (a << 6 | b << 5 | c << 4 | d << 3 | e << 2 | f << 1 | gg)];
        }
    tox_assert_close(got2, want2, 2 * 128, 0.0f);
    cnn_model_destroy(m);
    tox_arena_free();
}
END_TEST

static float g_cw[4], g_cb[2], g_gw[3 * 48], g_gb[3];

/* x (N,2,3,4) -> Conv 1x1 W(2,2) B(2) -> a; AveragePool (2,1)/(2,1) of a -> p (N,2,1,4);
 * Concat(a, p) axis 2 -> h (N,2,4,4); MaxPool (1,2)/(1,2) of h -> q (N,2,4,2); Concat(h, q)
 * axis -1 -> (N,2,4,6) -> Flatten -> Gemm (48 -> 3, transB). */
static struct tox_graph *concat_hw_net(void)
{
    struct tox_graph *g = tox_alloc(sizeof *g);
    const int64_t in[4] = {-1, 2, 3, 4}, wd[4] = {2, 2, 1, 1}, bd[1] = {2}, gd[2] = {3, 48},
                  gbd[1] = {3};
    memcpy(g->in_dims, in, sizeof in);
    tox_fill(g_cw, 4, 241);
    tox_fill(g_cb, 2, 242);
    tox_fill(g_gw, 3 * 48, 243);
    tox_fill(g_gb, 3, 244);
    g->inits[g->n_inits++] = tox_tensor_f("W", 4, wd, g_cw);
    g->inits[g->n_inits++] = tox_tensor_f("B", 1, bd, g_cb);
    g->inits[g->n_inits++] = tox_tensor_f("G", 2, gd, g_gw);
    g->inits[g->n_inits++] = tox_tensor_f("GB", 1, gbd, g_gb);
    tox_node(g, "Conv", "conv", "x", "W", "B", "a");
    Onnx__NodeProto *n = tox_node(g, "AveragePool", "ap", "a", NULL, NULL, "p");
    tox_attr_ints(n, "kernel_shape", 2, (int64_t[]){2, 1});
    tox_attr_ints(n, "strides", 2, (int64_t[]){2, 1});
    tox_attr_i(tox_node(g, "Concat", "cat_h", "a", "p", NULL, "h"), "axis", 2);
    n = tox_node(g, "MaxPool", "mp", "h", NULL, NULL, "q");
    tox_attr_ints(n, "kernel_shape", 2, (int64_t[]){1, 2});
    tox_attr_ints(n, "strides", 2, (int64_t[]){1, 2});
    tox_attr_i(tox_node(g, "Concat", "cat_w", "h", "q", NULL, "w"), "axis", -1);
    tox_node(g, "Flatten", "flat", "w", NULL, NULL, "f");
    tox_attr_i(tox_node(g, "Gemm", "fc", "f", "G", "GB", "y"), "transB", 1);
    g->output = "y";
    return g;
}

/* Concat over H and over W (the concat kind's axis): equal to naive loops, through the
 * model file, export and back and the trainer's finite differences; (N,C,L) inputs concat
 * over L; the batch axis and a bad axis or shape are refused. */
START_TEST(test_concat_over_h_and_w_matches_naive)
{
    struct tox_graph *g = concat_hw_net();
    struct cnn_model *m = tox_load(g);
    enum { N = 3, K = 3 };
    float x[N * 24], got[N * K], want[N * K], tgt[N * K];
    tox_fill(x, N * 24, 245);
    tox_run(m, x, N, got);
    for (int n = 0; n < N; n++) {
        float a[2][3][4], h[2][4][4], w[2][4][6];
        for (int o = 0; o < 2; o++)
            for (int y = 0; y < 3; y++)
                for (int xx = 0; xx < 4; xx++)
                    a[o][y][xx] = g_cb[o] + g_cw[o * 2] * x[((n * 2 + 0) * 3 + y) * 4 + xx] +
                                  g_cw[o * 2 + 1] * x[((n * 2 + 1) * 3 + y) * 4 + xx];
        for (int o = 0; o < 2; o++)
            for (int xx = 0; xx < 4; xx++) {
                for (int y = 0; y < 3; y++)
                    h[o][y][xx] = a[o][y][xx];
                h[o][3][xx] = (a[o][0][xx] + a[o][1][xx]) / 2; /* the pool's one row */
            }
        for (int o = 0; o < 2; o++)
            for (int y = 0; y < 4; y++) {
                for (int xx = 0; xx < 4; xx++)
                    w[o][y][xx] = h[o][y][xx];
                for (int xx = 0; xx < 2; xx++)
                    w[o][y][4 + xx] = fmaxf(h[o][y][2 * xx], h[o][y][2 * xx + 1]);
            }
        for (int k = 0; k < K; k++) {
            double sum = g_gb[k];
            for (int j = 0; j < 48; j++)
                sum += (double)g_gw[k * 48 + j] * (&w[0][0][0])[j];
            want[n * K + k] = (float)sum;
        }
    }
    tox_assert_close(got, want, N * K, 1e-5f);
    tox_export_round_trip(m, 13, x, N, want, N * K, 1e-5f);
    char dir[64], path[128];
    make_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/cat.cnn", dir);
    struct cnn_err err = {0};
    ck_assert_msg(cnn_model_save(m, path, &err) == 0, "%s", err.msg);
    struct cnn_model *r = NULL;
    ck_assert_msg(cnn_model_load(path, &r, &err) == 0, "%s", err.msg);
    rm_tree(dir);
    tox_run(r, x, N, got);
    tox_assert_close(got, want, N * K, 1e-5f);
    ck_assert_int_eq(r->layers[cnn_model_find_layer(r, "cat_w")].p.cat.axis, CNN_CONCAT_W);
    cnn_model_destroy(r);
    for (int k = 0; k < N * K; k++)
        tgt[k] = want[k] + 0.1f * (float)((k % 5) - 2);
    gradcheck(m, x, NULL, tgt, N, CNN_LOSS_MSE);
    cnn_model_destroy(m);
    g->nodes[2]->attribute[0]->i = 0; /* the batch */
    size_t size;
    uint8_t *buf = tox_pack(g, &size);
    m = NULL;
    ck_assert_int_eq(cnn_onnx_load_mem(buf, size, NULL, 0, &m, &err), CNN_EFORMAT);
    ck_assert_msg(strstr(err.msg, "unsupported: axis 0 of rank 4 (the batch)"), "%s", err.msg);
    free(buf);
    tox_arena_free();

    g = tox_alloc(sizeof *g); /* (N,2,5) twice over L */
    const int64_t in3[3] = {-1, 2, 5};
    memcpy(g->in_dims, in3, sizeof in3);
    g->in_rank = 3;
    tox_attr_i(tox_node(g, "Concat", "cat", "x", "x", NULL, "c"), "axis", 2);
    tox_node(g, "Flatten", "flat", "c", NULL, NULL, "y");
    g->output = "y";
    m = tox_load(g);
    float x3[2 * 10], got3[2 * 20], want3[2 * 20];
    tox_fill(x3, 20, 246);
    tox_run(m, x3, 2, got3);
    for (int n = 0; n < 2; n++)
        for (int c = 0; c < 2; c++)
            for (int t = 0; t < 10; t++)
                want3[(n * 2 + c) * 10 + t] = x3[(n * 2 + c) * 5 + t % 5];
    tox_assert_close(got3, want3, 40, 0.0f);
    cnn_model_destroy(m);
    tox_arena_free();

    m = new_model(2, 3, 4); /* the kind's own checks */
    struct cnn_layer_desc d = simple(CNN_LAYER_CONCAT, "cbad");
    const int two[2] = {0, 0};
    d.n_inputs = 2, d.inputs = two, d.p.cat.axis = CNN_CONCAT_AXIS_COUNT;
    ck_assert_int_eq(cnn_model_add(m, &d, &err), CNN_EINVAL);
    ck_assert_msg(strstr(err.msg, "cbad") && strstr(err.msg, "axis"), "%s", err.msg);
    d.p.cat.axis = CNN_CONCAT_W;
    ck_assert_int_eq(cnn_model_add(m, &d, &err), 1);
    struct cnn_layer_info li;
    cnn_model_layer_info(m, 1, &li);
    ck_assert(li.c == 2 && li.h == 3 && li.w == 8);
    const int mixed[2] = {0, 1}; /* 2x3x4 and 2x3x8 over H: the widths differ */
    d.name = "cmix", d.inputs = mixed, d.p.cat.axis = CNN_CONCAT_H;
    ck_assert_int_eq(cnn_model_add(m, &d, &err), CNN_EINVAL);
    ck_assert_msg(strstr(err.msg, "cmix") && strstr(err.msg, "height"), "%s", err.msg);
    cnn_model_destroy(m);
}
END_TEST

static float g_qw[6], g_qb[3], g_qs[5], g_qf[2 * 15], g_qfb[2];

/* x (N,2,5) -> Conv 1x1 W(3,2,1) B(3) -> PRelu slope (5) (one per position along L, the
 * same for every channel: a per-element prelu) -> Flatten -> Gemm (15 -> 2, transB): naive
 * loops, export and back, the trainer's finite differences (the slope is learned); a slope
 * that spans the batch is refused. */
START_TEST(test_prelu_slope_per_element_matches_naive)
{
    struct tox_graph *g = tox_alloc(sizeof *g);
    const int64_t in[3] = {-1, 2, 5}, wd[3] = {3, 2, 1}, bd[1] = {3}, sd[1] = {5}, fd[2] = {2, 15},
                  fbd[1] = {2};
    memcpy(g->in_dims, in, sizeof in);
    g->in_rank = 3;
    tox_fill(g_qw, 6, 251);
    tox_fill(g_qb, 3, 252);
    tox_fill(g_qs, 5, 253);
    tox_fill(g_qf, 30, 254);
    tox_fill(g_qfb, 2, 255);
    g->inits[g->n_inits++] = tox_tensor_f("W", 3, wd, g_qw);
    g->inits[g->n_inits++] = tox_tensor_f("B", 1, bd, g_qb);
    g->inits[g->n_inits++] = tox_tensor_f("S", 1, sd, g_qs);
    g->inits[g->n_inits++] = tox_tensor_f("F", 2, fd, g_qf);
    g->inits[g->n_inits++] = tox_tensor_f("FB", 1, fbd, g_qfb);
    tox_node(g, "Conv", "conv", "x", "W", "B", "c");
    Onnx__NodeProto *pr = tox_node(g, "PRelu", "pr", "c", "S", NULL, "p");
    tox_node(g, "Flatten", "flat", "p", NULL, NULL, "f");
    tox_attr_i(tox_node(g, "Gemm", "fc", "f", "F", "FB", "y"), "transB", 1);
    g->output = "y";
    struct cnn_model *m = tox_load(g);
    struct cnn_layer_info li;
    cnn_model_layer_info(m, cnn_model_find_layer(m, "pr"), &li);
    ck_assert_int_eq(li.kind, CNN_LAYER_PRELU);
    ck_assert_uint_eq(li.params, 15); /* the (5) slope for each of the 3 channels */
    enum { N = 3, K = 2 };
    float x[N * 10], got[N * K], want[N * K], tgt[N * K];
    tox_fill(x, N * 10, 256);
    tox_run(m, x, N, got);
    for (int n = 0; n < N; n++) {
        float v[15];
        for (int o = 0; o < 3; o++)
            for (int t = 0; t < 5; t++) {
                const float a = g_qb[o] + g_qw[o * 2] * x[(n * 2 + 0) * 5 + t] +
                                g_qw[o * 2 + 1] * x[(n * 2 + 1) * 5 + t];
                v[o * 5 + t] = a > 0 ? a : g_qs[t] * a;
            }
        for (int k = 0; k < K; k++) {
            double sum = g_qfb[k];
            for (int j = 0; j < 15; j++)
                sum += (double)g_qf[k * 15 + j] * v[j];
            want[n * K + k] = (float)sum;
        }
    }
    tox_assert_close(got, want, N * K, 1e-5f);
    tox_export_round_trip(m, 13, x, N, want, N * K, 1e-5f);
    for (int k = 0; k < N * K; k++)
        tgt[k] = want[k] + 0.1f * (float)((k % 5) - 2);
    gradcheck(m, x, NULL, tgt, N, CNN_LOSS_MSE);
    cnn_model_destroy(m);
    static float big[3 * 3 * 5];
    const int64_t bgd[3] = {3, 3, 5};
    tox_fill(big, 45, 257);
    g->inits[g->n_inits++] = tox_tensor_f("big", 3, bgd, big);
    pr->input[1] = "big";
    size_t size;
    uint8_t *buf = tox_pack(g, &size);
    struct cnn_err err = {0};
    m = NULL;
    ck_assert_int_eq(cnn_onnx_load_mem(buf, size, NULL, 0, &m, &err), CNN_EFORMAT);
    ck_assert_msg(strstr(err.msg, "unsupported: slope dim 0 of 3"), "%s", err.msg);
    free(buf);
    tox_arena_free();
}
END_TEST

Suite *onnx_moves_suite(void)
{
    Suite *s = suite_create("onnx_moves");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_transpose_kernels_match_naive_index_loops);
    tcase_add_test(tc, test_transpose_refuses_bad_parameters);
    tcase_add_test(tc, test_transpose_nets_session_file_and_gradients);
    tcase_add_test(tc, test_onnx_transpose_of_item_axes_matches_naive);
    tcase_add_test(tc, test_onnx_pixel_shuffle_chain_matches_naive);
    tcase_add_test(tc, test_onnx_reshape_to_other_channels_matches_naive);
    tcase_add_test(tc, test_onnx_rank_above_4_values);
    tcase_add_test(tc, test_concat_over_h_and_w_matches_naive);
    tcase_add_test(tc, test_prelu_slope_per_element_matches_naive);
    suite_add_tcase(s, tc);
    return s;
}
