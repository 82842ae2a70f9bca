/* Fuse suite: the residual add fused into the conv before it (cnn_compile_fuse_residual,
 * conv_plan).  Small graphs for each kernel path (im2col, pointwise, Winograd F(2x2) and
 * F(4x4)) at batch 1 and 3, alone and split over teams of 2 and 3, against the naive
 * reference net and the unfused plan; the cases that must not fuse; native ResNet-18/50 and
 * an imported ONNX residual block (Conv with bias -> Add -> Relu). */
#include "arch.h"
#include "model.h"
#include "model_internal.h"
#include "ref_net.h"
#include "session.h"
#include "test_nets.h"
#include "test_onnx.h"
#include "test_train.h"
#include "workers.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum path { P_IM2COL, P_POINTWISE, P_F2, P_F4, P_COUNT };
static const char *const PATH_NAMES[P_COUNT] = {"im2col", "pointwise", "F(2x2)", "F(4x4)"};

/* The graphs: what they test and how many convs must absorb an add. */
enum graph {
    G_INPLACE, /* stem x; y = relu(convA(x)); relu(add(x, convB(y))): x dies there (in place) */
    G_BN_LIVE, /* conv -> BN -> add(x) -> leaky relu, then x read again (not in place) */
    G_SELF,    /* relu(add(conv(x), x)): the residual is the conv's own input */
    G_TWO,     /* relu(add(convA(x), convB(x))): the later conv fuses */
    G_SHARED,  /* the conv output is read by the add and a concat: must not fuse */
    G_OWN_ACT, /* the conv has its own relu before the add: must not fuse */
    G_COUNT
};
static const char *const GRAPH_NAMES[G_COUNT] = {"inplace", "bn_live", "self",
                                                 "two",     "shared",  "own_act"};
static const int FUSED[G_COUNT] = {1, 1, 1, 1, 0, 0};

/* Channels and map of each path; the conv desc that takes it. */
static const int PATH_C[P_COUNT] = {8, 8, 16, 64}, PATH_H[P_COUNT] = {9, 9, 10, 29},
                 PATH_W[P_COUNT] = {7, 7, 9, 30};

static struct cnn_layer_desc path_conv(enum path p, const char *name, int act_relu)
{
    const int k = p == P_POINTWISE ? 1 : 3, pad = p == P_POINTWISE ? 0 : p == P_IM2COL ? 2 : 1;
    struct cnn_layer_desc d =
        conv(name, PATH_C[p], k, pad, 1, act_relu ? CNN_ACT_RELU : CNN_ACT_NONE);
    if (p == P_IM2COL) /* dilated and grouped: neither Winograd nor direct */
        d.p.conv.dh = d.p.conv.dw = 2, d.p.conv.groups = 2;
    return d;
}

static struct cnn_layer_desc act_desc(const char *name, enum cnn_act kind, float alpha)
{
    struct cnn_layer_desc d = {.kind = CNN_LAYER_ACT, .name = name};
    d.p.act = (struct cnn_act_params){kind, alpha, 0};
    return d;
}

static int add2(struct cnn_model *m, const char *name, int a, int b)
{
    int ab[2] = {a, b};
    return add(m, inputs((struct cnn_layer_desc){.kind = CNN_LAYER_ADD, .name = name}, 2, ab));
}

/* Random weights, biases and BN statistics (variance 0.5..1.5, gamma 0.5..1.5). */
static void fuse_randomize(struct cnn_model *m, uint64_t seed)
{
    cnn_model_init_random(m, seed);
    for (int i = 1; i < cnn_model_layer_count(m); i++) {
        struct cnn_layer_info li;
        size_t n = 0;
        cnn_model_layer_info(m, i, &li);
        if (li.kind == CNN_LAYER_BATCHNORM) {
            for (int slot = 0; slot < 4; slot++) {
                float *v = cnn_model_weights_mut(m, i, slot, &n);
                test_fill(v, n, seed + 10 * (uint64_t)i + (uint64_t)slot);
                for (size_t k = 0; slot != 1 && slot != 2 && k < n; k++)
                    v[k] = 1.0f + 0.5f * v[k];
            }
        } else if (li.kind == CNN_LAYER_CONV2D) {
            float *b = cnn_model_weights_mut(m, i, 1, &n);
            if (b)
                test_fill(b, n, seed + 10 * (uint64_t)i + 7);
        }
    }
}

static struct cnn_model *build_graph(enum path p, enum graph g)
{
    struct cnn_preproc pp = {.c = 3, .h = PATH_H[p], .w = PATH_W[p], .std = {1, 1, 1}};
    struct cnn_err err = {0};
    struct cnn_model *m = cnn_model_create(&pp, &err);
    ck_assert_msg(m != NULL, "%s", err.msg);
    struct cnn_layer_desc stem = path_conv(P_POINTWISE, "stem", 1);
    stem.p.conv.oc = PATH_C[p];
    const int x = add(m, stem), xs[1] = {x};
    int z, y;
    switch (g) {
    case G_INPLACE:
        add(m, path_conv(p, "convA", 1));
        z = add(m, path_conv(p, "convB", 0));
        add2(m, "sum", x, z);
        add(m, act_desc("out", CNN_ACT_RELU, 0));
        break;
    case G_BN_LIVE:
        add(m, path_conv(p, "convA", 0));
        add(m, bn("bnA"));
        add(m, act_desc("reluA", CNN_ACT_RELU, 0));
        add(m, path_conv(p, "convB", 0));
        z = add(m, bn("bnB"));
        add2(m, "sum", z, x);
        y = add(m, act_desc("leaky", CNN_ACT_LEAKY_RELU, 0.1f));
        add2(m, "out", y, x);
        break;
    case G_SELF:
    case G_OWN_ACT:
        z = add(m, path_conv(p, "conv", g == G_OWN_ACT));
        add2(m, "sum", z, x);
        add(m, act_desc("out", CNN_ACT_RELU, 0));
        break;
    case G_TWO:
        y = add(m, path_conv(p, "convA", 0));
        z = add(m, inputs(path_conv(p, "convB", 0), 1, xs));
        add2(m, "sum", y, z);
        add(m, act_desc("out", CNN_ACT_RELU, 0));
        break;
    case G_SHARED: {
        z = add(m, path_conv(p, "conv", 0));
        y = add2(m, "sum", z, x);
        int cat[2] = {y, z};
        add(m, inputs((struct cnn_layer_desc){.kind = CNN_LAYER_CONCAT, .name = "out"}, 2, cat));
        break;
    }
    case G_COUNT:
        break;
    }
    ck_assert_msg(cnn_model_alloc_params(m, &err) == 0, "%s", err.msg);
    fuse_randomize(m, 1000 + 10 * (uint64_t)p + (uint64_t)g);
    return m;
}

/* Which path op (a conv) took. */
static enum path op_path(const struct cnn_op *op)
{
    if (op->wino)
        return op->wino == 4 ? P_F4 : P_F2;
    return op->conv.kh == 1 && op->conv.kw == 1 ? P_POINTWISE : P_IM2COL;
}

/* Convs that absorbed an add; every conv but the stem (layer 1) must have taken path p. */
static int fused_ops(const struct cnn_model *m, enum path p)
{
    int n = 0;
    for (int k = 0; k < m->n_ops; k++) {
        const struct cnn_op *op = &m->ops[k];
        if (op->kind == CNN_LAYER_CONV2D && op->layer != 1)
            ck_assert_msg(op_path(op) == p, "conv %d took %s, not %s", op->layer,
                          PATH_NAMES[op_path(op)], PATH_NAMES[p]);
        if (!op->res)
            continue;
        ck_assert_int_eq(op->kind, CNN_LAYER_CONV2D);
        ck_assert_int_eq(op->n_inputs, 2);
        n++;
    }
    return n;
}

/* out (N * K) of m on x through a session alone, or over a team of `threads`. */
static void run(const struct cnn_model *m, const float *x, int N, int threads, float *out)
{
    struct cnn_err err = {0};
    struct cnn_session *s = cnn_session_create_parts(m, N, threads, &err);
    ck_assert_msg(s != NULL, "%s", err.msg);
    const float *p = NULL;
    if (threads == 1) {
        ck_assert_int_eq(cnn_session_forward(s, m, x, N, &p, &err), 0);
    } else {
        struct cnn_workers *team = cnn_workers_create(threads, &err);
        ck_assert_msg(team != NULL, "%s", err.msg);
        ck_assert_msg(cnn_session_forward_team(s, m, team, x, N, &p, &err) == 0, "%s", err.msg);
        cnn_workers_destroy(team);
    }
    memcpy(out, p, (size_t)N * (size_t)cnn_model_num_classes(m) * sizeof *out);
    cnn_session_destroy(s);
}

static double max_diff(const float *a, const float *b, size_t n)
{
    double worst = 0;
    for (size_t k = 0; k < n; k++)
        worst = fmax(worst, fabs((double)a[k] - b[k]));
    return worst;
}

/* Graph g on path p: the fused plan (teams 1-3, batches 1 and 3) against the naive
 * reference and the unfused plan, within 1e-4. */
START_TEST(test_fused_graph_matches_reference)
{
    const enum path p = (enum path)(_i / G_COUNT);
    const enum graph g = (enum graph)(_i % G_COUNT);
    struct cnn_model *mf = build_graph(p, g), *mu = build_graph(p, g);
    struct cnn_err err = {0};
    const int tile = p == P_F4 ? 4 : p == P_F2 ? 2 : 0;
    ck_assert_msg(cnn_model_compile_plan(mf, tile, 1, &err) == 0, "%s", err.msg);
    ck_assert_msg(cnn_model_compile_plan(mu, tile, 0, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(fused_ops(mf, p), FUSED[g]);
    ck_assert_int_eq(fused_ops(mu, p), 0);
    /* the add op (the act after it is fused into it when unfused) is gone */
    ck_assert_int_eq(mf->n_ops, mu->n_ops - FUSED[g]);
    const size_t img = 3 * (size_t)PATH_H[p] * PATH_W[p];
    const int K = cnn_model_num_classes(mf);
    float *x = malloc(3 * img * sizeof *x), *ref = malloc(3 * (size_t)K * sizeof *ref);
    float *got = malloc(3 * (size_t)K * sizeof *got), *plain = malloc(3 * (size_t)K * sizeof *got);
    ck_assert(x && ref && got && plain);
    test_fill(x, 3 * img, 50 + (uint64_t)_i);
    double worst_ref = 0, worst_plain = 0, scale = 0;
    for (int n = 0; n < 3; n++)
        ck_assert_int_eq(ref_net_forward(mf, x + n * img, ref + (size_t)n * K), 0);
    for (size_t k = 0; k < 3 * (size_t)K; k++)
        scale = fmax(scale, fabs(ref[k]));
    for (int N = 1; N <= 3; N += 2) {
        for (int threads = 1; threads <= 3; threads++) {
            run(mf, x, N, threads, got);
            run(mu, x, N, threads, plain);
            worst_ref = fmax(worst_ref, max_diff(got, ref, (size_t)N * K));
            worst_plain = fmax(worst_plain, max_diff(got, plain, (size_t)N * K));
        }
    }
    printf("fuse: %s %s: %d fused, max abs err %.3g vs naive, %.3g vs unfused (outputs up to "
           "%.3g)\n",
           PATH_NAMES[p], GRAPH_NAMES[g], FUSED[g], worst_ref, worst_plain, scale);
    ck_assert_msg(worst_ref <= 1e-4, "%s %s: %g vs naive", PATH_NAMES[p], GRAPH_NAMES[g],
                  worst_ref);
    ck_assert_msg(worst_plain <= 1e-4, "%s %s: %g vs unfused", PATH_NAMES[p], GRAPH_NAMES[g],
                  worst_plain);
    ck_assert_msg(scale > 0.1, "outputs near zero: the test would not see errors");
    free(x), free(ref), free(got), free(plain);
    cnn_model_destroy(mf);
    cnn_model_destroy(mu);
}
END_TEST

/* Native ResNet-18 and -50 (random weights and BN statistics, batch 2): every block's last
 * conv absorbs its add and relu; softmax within 1e-4 of the unfused plan. */
START_TEST(test_resnet_fused_matches_unfused)
{
    static const char *const names[2] = {"resnet18", "resnet50"};
    static const int blocks[2] = {8, 16};
    enum { N = 2 };
    struct cnn_model *m[2];
    float *out[2];
    int K = 0;
    size_t img = 0;
    float *x = NULL;
    for (int v = 0; v < 2; v++) {
        struct cnn_err err = {0};
        ck_assert_msg(cnn_arch_build(names[_i], 0, &m[v], &err) == 0, "%s", err.msg);
        fuse_randomize(m[v], 77);
        ck_assert_msg(cnn_model_compile_plan(m[v], 4, v == 0, &err) == 0, "%s", err.msg);
        const struct cnn_preproc *pp = cnn_model_preproc(m[v]);
        img = (size_t)pp->c * pp->h * pp->w;
        K = cnn_model_num_classes(m[v]);
        if (!x) {
            x = malloc(N * img * sizeof *x);
            ck_assert_ptr_nonnull(x);
            test_fill(x, N * img, 5);
        }
        out[v] = malloc(N * (size_t)K * sizeof(float));
        ck_assert_ptr_nonnull(out[v]);
        run(m[v], x, N, 1, out[v]);
    }
    int fused = 0;
    for (int k = 0; k < m[0]->n_ops; k++)
        fused += m[0]->ops[k].res;
    double spread = 0;
    for (size_t k = 0; k < N * (size_t)K; k++)
        spread = fmax(spread, fabs(out[1][k] - 1.0 / K));
    const double diff = max_diff(out[0], out[1], N * (size_t)K);
    printf("fuse: %s: %d of %d ops fused convs, softmax max abs diff %.3g vs unfused "
           "(largest |p - 1/K| %.3g)\n",
           names[_i], fused, m[0]->n_ops, diff, spread);
    ck_assert_int_eq(fused, blocks[_i]);
    ck_assert_int_eq(m[0]->n_ops, m[1]->n_ops - blocks[_i]);
    ck_assert_msg(diff <= 1e-4, "%s: %g", names[_i], diff);
    ck_assert_msg(spread > 1e-4, "%s: output is uniform", names[_i]);
    for (int v = 0; v < 2; v++) {
        free(out[v]);
        cnn_model_destroy(m[v]);
    }
    free(x);
}
END_TEST

/* An imported ONNX residual block, x (N,16,10,10) -> Conv 3x3 (bias) -> Relu -> Conv 3x3
 * (bias) -> Add(x) -> Relu: the second conv absorbs Add and Relu; batch 3 within 1e-4 of
 * the naive reference. */
START_TEST(test_onnx_residual_block_fuses)
{
    enum { C = 16, H = 10, N = 3 };
    static float w1[C * C * 9], b1[C], w2[C * C * 9], b2[C];
    tox_fill(w1, C * C * 9, 11), tox_fill(b1, C, 12), tox_fill(w2, C * C * 9, 13);
    tox_fill(b2, C, 14);
    for (int k = 0; k < C * C * 9; k++)
        w1[k] *= 0.1f, w2[k] *= 0.1f;
    struct tox_graph *g = tox_alloc(sizeof *g);
    const int64_t in[4] = {-1, C, H, H}, wd[4] = {C, C, 3, 3}, bd[1] = {C}, p1[4] = {1, 1, 1, 1};
    memcpy(g->in_dims, in, sizeof in);
    g->inits[g->n_inits++] = tox_tensor_f("W1", 4, wd, w1);
    g->inits[g->n_inits++] = tox_tensor_f("B1", 1, bd, b1);
    g->inits[g->n_inits++] = tox_tensor_f("W2", 4, wd, w2);
    g->inits[g->n_inits++] = tox_tensor_f("B2", 1, bd, b2);
    tox_attr_ints(tox_node(g, "Conv", "conv1", "x", "W1", "B1", "c1"), "pads", 4, p1);
    tox_node(g, "Relu", "relu1", "c1", NULL, NULL, "r1");
    tox_attr_ints(tox_node(g, "Conv", "conv2", "r1", "W2", "B2", "c2"), "pads", 4, p1);
    tox_node(g, "Add", "add", "c2", "x", NULL, "s");
    tox_node(g, "Relu", "relu2", "s", NULL, NULL, "y");
    g->output = "y";
    struct cnn_model *m = tox_load(g);
    int fused = 0;
    for (int k = 0; k < m->n_ops; k++)
        fused += m->ops[k].res;
    ck_assert_int_eq(fused, 1);
    ck_assert_int_eq(m->n_ops, 2);
    const size_t img = (size_t)C * H * H, K = (size_t)cnn_model_num_classes(m);
    float *x = malloc(N * img * sizeof *x), *got = malloc(N * K * sizeof *got);
    float *ref = malloc(K * sizeof *ref);
    ck_assert(x && got && ref);
    tox_fill(x, N * img, 15);
    tox_run(m, x, N, got);
    double worst = 0;
    for (int n = 0; n < N; n++) {
        ck_assert_int_eq(ref_net_forward(m, x + n * img, ref), 0);
        worst = fmax(worst, max_diff(got + n * K, ref, K));
    }
    printf("fuse: onnx residual block: max abs err %.3g vs naive\n", worst);
    ck_assert_msg(worst <= 1e-4, "%g", worst);
    free(x), free(got), free(ref);
    cnn_model_destroy(m);
    tox_arena_free();
}
END_TEST

Suite *fuse_suite(void)
{
    Suite *s = suite_create("fuse");
    TCase *tc = tcase_create("residual");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_fused_graph_matches_reference, 0, P_COUNT * G_COUNT);
    tcase_add_loop_test(tc, test_resnet_fused_matches_unfused, 0, 2);
    tcase_add_test(tc, test_onnx_residual_block_fuses);
    suite_add_tcase(s, tc);
    return s;
}
