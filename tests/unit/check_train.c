/* Suite train: whole-net gradients against finite differences (cross-entropy and squared
 * error), the worker team, 2 and 3 threads and Winograd against one thread and im2col, two
 * SGD / Nesterov steps and BN running statistics against PyTorch (tests/data/sgd_step.bin
 * from tests/fixtures/make_sgd_step.py), and freezing.  Export, head replacement,
 * reproducibility, schedules and bad input are in check_train_workflow.c. */
#include "arch.h"
#include "model.h"
#include "session.h"
#include "test_nets.h"
#include "test_train.h"
#include "test_util.h"
#include "train.h"
#include "train_internal.h"
#include "workers.h"

#include <check.h>
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
/* conv-BN-relu, conv+tanh (fused) added back as a residual, a 1x1 branch concatenated,
 * maxpool, avgpool (padded), flatten, dense+tanh (fused), dense, softmax; input 3x6x6. */
static struct cnn_model *gradcheck_net(uint64_t seed)
{
    struct cnn_model *m = new_model(3, 6, 6);
    add(m, conv("conv1", 4, 3, 1, 1, CNN_ACT_NONE));
    add(m, bn("bn1"));
    int r1 = add(m, act("relu1", CNN_ACT_RELU));
    int c2 = add(m, conv("conv2", 4, 3, 1, 0, CNN_ACT_TANH));
    int res_in[2] = {r1, c2};
    int res = add(m, inputs(simple(CNN_LAYER_ADD, "res"), 2, res_in));
    int one[1] = {r1};
    int c3 = add(m, inputs(conv("conv3", 2, 1, 0, 1, CNN_ACT_NONE), 1, one));
    int cat_in[2] = {res, c3};
    add(m, inputs(simple(CNN_LAYER_CONCAT, "cat"), 2, cat_in));
    add(m, pool(CNN_LAYER_MAXPOOL, "max", 2, 2, 0));
    add(m, pool(CNN_LAYER_AVGPOOL, "avg", 3, 1, 1));
    add(m, simple(CNN_LAYER_FLATTEN, "flat"));
    add(m, dense("fc1", 8, CNN_ACT_TANH));
    add(m, dense("fc2", 4, CNN_ACT_NONE));
    add(m, simple(CNN_LAYER_SOFTMAX, "prob"));
    struct cnn_err err = {0};
    ck_assert_int_eq(cnn_model_alloc_params(m, &err), 0);
    randomize(m, seed);
    return compiled(m);
}

/* The fixture's net: conv1-bn1-relu-maxpool-conv2(+relu fused)-flatten-fc-softmax. */
enum { FX_CONV1 = 1, FX_BN1 = 2, FX_CONV2 = 5, FX_FC = 7 };
static struct cnn_model *fixture_net(void)
{
    struct cnn_model *m = new_model(3, 8, 8);
    ck_assert_int_eq(add(m, conv("conv1", 4, 3, 1, 1, CNN_ACT_NONE)), FX_CONV1);
    ck_assert_int_eq(add(m, bn("bn1")), FX_BN1);
    add(m, act("relu1", CNN_ACT_RELU));
    add(m, pool(CNN_LAYER_MAXPOOL, "pool1", 2, 2, 0));
    ck_assert_int_eq(add(m, conv("conv2", 6, 3, 1, 1, CNN_ACT_RELU)), FX_CONV2);
    add(m, simple(CNN_LAYER_FLATTEN, "flat"));
    ck_assert_int_eq(add(m, dense("fc", 5, CNN_ACT_NONE)), FX_FC);
    add(m, simple(CNN_LAYER_SOFTMAX, "prob"));
    struct cnn_err err = {0};
    ck_assert_int_eq(cnn_model_alloc_params(m, &err), 0);
    return m;
}

/* ---- (1) whole-net gradient check ------------------------------------------ */

/* gradcheck(): test_train.c */

START_TEST(test_whole_net_gradients_match_finite_differences)
{
    struct cnn_model *m = gradcheck_net(3);
    enum { N = 3 };
    float x[N * 3 * 6 * 6];
    int y[N] = {2, 0, 3};
    test_fill(x, sizeof x / sizeof *x, 41);
    gradcheck(m, x, y, NULL, N, CNN_LOSS_XENT);
    cnn_model_destroy(m);
}
END_TEST

struct round_log {
    atomic_int runs[4];
    int parts_seen[4];
    int round;
    int last_round[4];
};

static void count_part(void *ctx, int part, int parts)
{
    struct round_log *r = ctx;
    atomic_fetch_add(&r->runs[part], 1);
    r->parts_seen[part] = parts;
    r->last_round[part] = r->round; /* a part of an old round would write an old number */
}

/* The worker team behind the trainer's split: every round runs each part exactly once, on
 * the caller or a helper, and cnn_workers_run() returns only when all are done; a NULL
 * team runs part 0 of 1 in the caller.  cnn_part_range() covers [0, n) without overlap. */
START_TEST(test_worker_team_runs_every_part_once_per_round)
{
    struct cnn_err err = {0};
    for (int threads = 1; threads <= 4; threads++) {
        struct cnn_workers *w = cnn_workers_create(threads, &err);
        ck_assert_msg(w != NULL, "%s", err.msg);
        ck_assert_int_eq(cnn_workers_count(w), threads);
        struct round_log log = {0};
        for (int round = 1; round <= 2000; round++) {
            log.round = round;
            cnn_workers_run(w, count_part, &log);
            for (int k = 0; k < threads; k++) {
                ck_assert_int_eq(atomic_load(&log.runs[k]), round);
                ck_assert_int_eq(log.last_round[k], round);
                ck_assert_int_eq(log.parts_seen[k], threads);
            }
        }
        cnn_workers_destroy(w);
    }
    struct round_log log = {0};
    cnn_workers_run(NULL, count_part, &log);
    ck_assert_int_eq(atomic_load(&log.runs[0]), 1);
    ck_assert_int_eq(log.parts_seen[0], 1);
    ck_assert_ptr_null(cnn_workers_create(0, &err));
    for (size_t n = 0; n < 40; n++) {
        for (int parts = 1; parts <= 7; parts++) {
            size_t next = 0;
            for (int k = 0; k < parts; k++) {
                size_t lo, hi;
                cnn_part_range(n, k, parts, &lo, &hi);
                ck_assert_uint_eq(lo, next);
                ck_assert_uint_le(hi - lo, n / (size_t)parts + 1);
                next = hi;
            }
            ck_assert_uint_eq(next, n);
        }
    }
}
END_TEST

/* Largest |a - b| / (1 + |b|) over every learned slot (and BN statistics) of two trainers
 * on the same net; grads instead of weights when `grads`. */
static double trainer_diff(struct cnn_trainer *a, struct cnn_trainer *b, int layers, int grads)
{
    double worst = 0;
    for (int i = 1; i < layers; i++) {
        for (int s = 0; s < 4; s++) {
            size_t na = 0, nb = 0;
            const float *va =
                grads ? cnn_trainer_grad(a, i, s, &na) : cnn_trainer_weights(a, i, s, &na);
            const float *vb =
                grads ? cnn_trainer_grad(b, i, s, &nb) : cnn_trainer_weights(b, i, s, &nb);
            ck_assert_int_eq(na, nb);
            if (!va || !vb)
                continue;
            for (size_t k = 0; k < na; k++) {
                double d = fabs((double)va[k] - vb[k]) / (1.0 + fabs((double)vb[k]));
                ck_assert_msg(isfinite(d), "layer %d slot %d [%zu] not finite", i, s, k);
                if (d > worst)
                    worst = d;
            }
        }
    }
    return worst;
}

/* The split of each layer over a worker team (convs by image, dense by feature, BN and
 * pools by channel, ...) must give what one thread gives: the same gradients (input
 * included) and, over three steps, the same weights and BN statistics, up to summation
 * order.  Batches of 5 (uneven parts) and 2 (a part with no image when 3 threads). */
START_TEST(test_threads_match_one_thread)
{
    struct cnn_model *m = test_net_dag(17);
    const int layers = cnn_model_layer_count(m);
    enum { N = 5, IMG = 3 * 13 * 11 };
    float x[N * IMG];
    int y[N] = {4, 0, 2, 1, 3};
    test_fill(x, sizeof x / sizeof *x, 77);
    const int batches[2] = {N, 2}, teams[2] = {2, 3};
    for (int bi = 0; bi < 2; bi++) {
        for (int ti = 0; ti < 2; ti++) {
            const int n = batches[bi];
            struct cnn_train_config cfg;
            cnn_train_config_default(&cfg);
            cfg.max_batch = N;
            cfg.seed = 9;
            cfg.input_grad = 1;
            cfg.weight_decay = 1e-3f;
            struct cnn_trainer *one = trainer(m, &cfg);
            cfg.threads = teams[ti];
            struct cnn_trainer *many = trainer(m, &cfg);
            struct cnn_train_stats s1, s2;
            struct cnn_err err = {0};
            ck_assert_int_eq(cnn_trainer_compute_gradients(one, x, y, NULL, n, &s1, &err), 0);
            ck_assert_int_eq(cnn_trainer_compute_gradients(many, x, y, NULL, n, &s2, &err), 0);
            ck_assert_msg(fabsf(s1.loss - s2.loss) <= 1e-5f * (1 + fabsf(s1.loss)), "loss %g vs %g",
                          (double)s2.loss, (double)s1.loss);
            double g = trainer_diff(many, one, layers, 1);
            const float *dx1 = cnn_trainer_input_grad(one), *dx2 = cnn_trainer_input_grad(many);
            for (size_t k = 0; k < (size_t)n * IMG; k++)
                ck_assert_msg(fabsf(dx1[k] - dx2[k]) <= 1e-5f * (1 + fabsf(dx1[k])),
                              "input grad [%zu] %g vs %g", k, (double)dx2[k], (double)dx1[k]);
            for (int k = 0; k < 3; k++) {
                step(one, x, y, n, &s1);
                step(many, x, y, n, &s2);
                ck_assert_int_eq(s1.correct, s2.correct);
            }
            double w = trainer_diff(many, one, layers, 0);
            if (getenv("CNN_TEST_VERBOSE"))
                fprintf(stderr, "threads %d batch %d: grad diff %.3g, weights after 3 steps %.3g\n",
                        teams[ti], n, g, w);
            ck_assert_msg(g <= 1e-5, "threads %d batch %d: gradients differ by %g", teams[ti], n,
                          g);
            ck_assert_msg(w <= 1e-5, "threads %d batch %d: weights differ by %g", teams[ti], n, w);
            cnn_trainer_destroy(one);
            cnn_trainer_destroy(many);
        }
    }
    cnn_model_destroy(m);
}
END_TEST

/* The config of two trainers compared on batches of N: rate 0.05, input gradient on. */
static void compare_config(struct cnn_train_config *cfg, int N)
{
    cnn_train_config_default(cfg);
    cfg->max_batch = N;
    cfg->lr = 0.05f;
    cfg->input_grad = 1;
}

/* Trainers with Winograd (cfg.im2col_only = 0) against the im2col path that the
 * finite-difference and PyTorch tests check, on one thread and split over two: the same
 * gradients (input included) and, after three steps, weights, to Winograd's rounding. */
static void winograd_vs_im2col(struct cnn_model *m, const float *x, const int *y, int N,
                               size_t img, const char *what)
{
    const int layers = cnn_model_layer_count(m);
    for (int threads = 1; threads <= 2; threads++) {
        struct cnn_train_config cfg;
        compare_config(&cfg, N);
        cfg.im2col_only = 1;
        struct cnn_trainer *ref = trainer(m, &cfg);
        cfg.im2col_only = 0;
        cfg.threads = threads;
        struct cnn_trainer *wino = trainer(m, &cfg);
        struct cnn_train_stats s1, s2;
        struct cnn_err err = {0};
        ck_assert_int_eq(cnn_trainer_compute_gradients(ref, x, y, NULL, N, &s1, &err), 0);
        ck_assert_int_eq(cnn_trainer_compute_gradients(wino, x, y, NULL, N, &s2, &err), 0);
        double g = trainer_diff(wino, ref, layers, 1);
        const float *dx1 = cnn_trainer_input_grad(ref), *dx2 = cnn_trainer_input_grad(wino);
        for (size_t k = 0; k < (size_t)N * img; k++)
            ck_assert_msg(fabsf(dx1[k] - dx2[k]) <= 1e-4f * (1 + fabsf(dx1[k])),
                          "input grad [%zu] %g vs %g", k, (double)dx2[k], (double)dx1[k]);
        for (int k = 0; k < 3; k++) {
            step(ref, x, y, N, &s1);
            step(wino, x, y, N, &s2);
        }
        double w = trainer_diff(wino, ref, layers, 0);
        printf("%s winograd vs im2col, %d thread(s): gradients %.3g, weights after 3 steps %.3g\n",
               what, threads, g, w);
        ck_assert_msg(g > 0, "bit-identical gradients: the Winograd path did not run");
        ck_assert_msg(g <= 1e-4, "gradients differ by %g", g);
        ck_assert_msg(w <= 1e-4, "weights differ by %g", w);
        cnn_trainer_destroy(ref);
        cnn_trainer_destroy(wino);
    }
}

/* F(2x2) on the small maps of test_net_wide (forward and input gradient). */
START_TEST(test_winograd_convs_match_im2col)
{
    struct cnn_model *m = test_net_wide(23);
    enum { N = 4, IMG = 3 * 12 * 10 };
    float x[N * IMG];
    int y[N] = {1, 4, 0, 2};
    test_fill(x, sizeof x / sizeof *x, 5);
    winograd_vs_im2col(m, x, y, N, IMG, "test_net_wide");
    cnn_model_destroy(m);
}
END_TEST

/* fashion_cnn: F(2x2) for conv2 (28x28), conv3 and conv4 (14x14), im2col for conv1 (one
 * input channel), as the trainer picks them. */
START_TEST(test_fashion_cnn_winograd_convs_match_im2col)
{
    struct cnn_model *m = NULL;
    struct cnn_err err = {0};
    ck_assert_int_eq(cnn_arch_build("fashion_cnn", 10, &m, &err), 0);
    cnn_model_init_random(m, 3);
    enum { N = 3, IMG = 28 * 28 };
    float x[N * IMG];
    int y[N] = {7, 2, 9};
    test_fill(x, sizeof x / sizeof *x, 8);
    winograd_vs_im2col(m, x, y, N, IMG, "fashion_cnn");
    cnn_model_destroy(m);
}
END_TEST

/* fashion_cnn's four batch norms each feed only a relu: a trainer runs each pair in the
 * batch norm's passes (relu_fused), with the same arithmetic as the two layers
 * (cfg.unfused = 1): bit-identical gradients, input gradient, and weights and statistics
 * after three steps (dropout included), on one thread and two. */
START_TEST(test_fashion_cnn_batchnorm_relu_pairs_match_unfused)
{
    struct cnn_model *m = NULL;
    struct cnn_err err = {0};
    ck_assert_int_eq(cnn_arch_build("fashion_cnn", 10, &m, &err), 0);
    cnn_model_init_random(m, 5);
    const int layers = cnn_model_layer_count(m);
    enum { N = 3, IMG = 28 * 28 };
    float x[N * IMG];
    int y[N] = {4, 0, 8};
    test_fill(x, sizeof x / sizeof *x, 9);
    for (int threads = 1; threads <= 2; threads++) {
        struct cnn_train_config cfg;
        compare_config(&cfg, N);
        cfg.threads = threads;
        cfg.unfused = 1;
        struct cnn_trainer *ref = trainer(m, &cfg);
        cfg.unfused = 0;
        struct cnn_trainer *fused = trainer(m, &cfg);
        int pairs = 0, ref_pairs = 0;
        for (int i = 0; i < layers; i++)
            pairs += fused->buf.tl[i].relu_fused, ref_pairs += ref->buf.tl[i].relu_fused;
        ck_assert_int_eq(pairs, 4);
        ck_assert_int_eq(ref_pairs, 0);
        struct cnn_train_stats s1, s2;
        ck_assert_int_eq(cnn_trainer_compute_gradients(ref, x, y, NULL, N, &s1, &err), 0);
        ck_assert_int_eq(cnn_trainer_compute_gradients(fused, x, y, NULL, N, &s2, &err), 0);
        ck_assert(s1.loss == s2.loss);
        ck_assert(trainer_diff(fused, ref, layers, 1) == 0.0);
        const float *dx1 = cnn_trainer_input_grad(ref), *dx2 = cnn_trainer_input_grad(fused);
        ck_assert(memcmp(dx1, dx2, sizeof x) == 0);
        for (int k = 0; k < 3; k++) {
            step(ref, x, y, N, &s1);
            step(fused, x, y, N, &s2);
            ck_assert(s1.loss == s2.loss);
        }
        ck_assert(trainer_diff(fused, ref, layers, 0) == 0.0);
        cnn_trainer_destroy(ref);
        cnn_trainer_destroy(fused);
    }
    cnn_model_destroy(m);
}
END_TEST

/* Plain SGD (momentum 0) with weight decay: one step moves every learned value by
 * -lr * (grad + wd * w) for conv/dense weights and -lr * grad for biases, grad being what
 * cnn_trainer_compute_gradients() gives for the same batch (no dropout in test_net_small). */
START_TEST(test_sgd_without_momentum_is_plain_gradient_descent)
{
    struct cnn_model *m = test_net_small(61);
    const int layers = cnn_model_layer_count(m);
    enum { N = 3, IMG = 8 * 8 };
    float x[N * IMG];
    int y[N] = {0, 3, 1};
    test_fill(x, sizeof x / sizeof *x, 62);
    struct cnn_train_config cfg;
    cnn_train_config_default(&cfg);
    cfg.max_batch = N;
    cfg.lr = 0.1f;
    cfg.momentum = 0.0f;
    cfg.weight_decay = 0.01f;
    struct cnn_trainer *t = trainer(m, &cfg), *g = trainer(m, &cfg);
    struct cnn_train_stats st;
    struct cnn_err err = {0};
    ck_assert_int_eq(cnn_trainer_compute_gradients(g, x, y, NULL, N, &st, &err), 0);
    int checked = 0;
    float *before[64][2] = {{NULL}};
    for (int i = 1; i < layers && i < 64; i++)
        for (int s = 0; s < 2; s++) {
            size_t n = 0;
            const float *w = cnn_trainer_weights(t, i, s, &n);
            before[i][s] = w ? copy_buf(w, n) : NULL;
        }
    step(t, x, y, N, &st);
    for (int i = 1; i < layers && i < 64; i++)
        for (int s = 0; s < 2; s++) {
            size_t n = 0, ng = 0;
            const float *w = cnn_trainer_weights(t, i, s, &n);
            const float *gr = cnn_trainer_grad(g, i, s, &ng);
            if (!w || !gr)
                continue;
            ck_assert_uint_eq(n, ng);
            const float wd = s == 0 ? cfg.weight_decay : 0.0f; /* slot 1: the bias */
            for (size_t k = 0; k < n; k++) {
                const double w0 = before[i][s][k];
                const double want = w0 - (double)cfg.lr * ((double)gr[k] + wd * w0);
                ck_assert_msg(fabs(w[k] - want) <= 1e-6 * (1 + fabs(want)),
                              "layer %d slot %d [%zu]: %g, want %g", i, s, k, (double)w[k], want);
                checked++;
            }
            free(before[i][s]);
        }
    ck_assert_int_gt(checked, 100);
    cnn_trainer_destroy(t);
    cnn_trainer_destroy(g);
    cnn_model_destroy(m);
}
END_TEST

START_TEST(test_squared_error_gradients_match_finite_differences)
{
    /* MSE on the softmax output: the gradient flows back through the softmax layer */
    struct cnn_model *m = gradcheck_net(5);
    enum { N = 2, K = 4 };
    float x[N * 3 * 6 * 6], tgt[N * K];
    test_fill(x, sizeof x / sizeof *x, 43);
    test_fill(tgt, N * K, 44);
    gradcheck(m, x, NULL, tgt, N, CNN_LOSS_MSE);
    cnn_model_destroy(m);
}
END_TEST

/* ---- (2), (7) PyTorch fixture ------------------------------------------------ */

struct fixture {
    int n;
    char names[128][64];
    float *vals[128];
    uint32_t counts[128];
};

static const char *data_dir(void)
{
    const char *d = getenv("CNN_TEST_DATA");
    return d ? d : "tests/data";
}

static void fixture_load(struct fixture *fx)
{
    char path[512];
    snprintf(path, sizeof path, "%s/sgd_step.bin", data_dir());
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s (run from the repo root or set CNN_TEST_DATA)", path);
    char magic[8];
    uint32_t n;
    ck_assert_int_eq(fread(magic, 1, 8, f), 8);
    ck_assert(memcmp(magic, "SGDFIX1", 8) == 0);
    ck_assert_int_eq(fread(&n, 4, 1, f), 1);
    ck_assert_uint_le(n, 128);
    fx->n = (int)n;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t len, count;
        ck_assert_int_eq(fread(&len, 4, 1, f), 1);
        ck_assert_uint_lt(len, 64);
        ck_assert_int_eq(fread(fx->names[i], 1, len, f), len);
        fx->names[i][len] = '\0';
        ck_assert_int_eq(fread(&count, 4, 1, f), 1);
        ck_assert_uint_le(count, 1u << 20);
        fx->vals[i] = malloc((count ? count : 1) * sizeof(float));
        ck_assert_int_eq(fread(fx->vals[i], sizeof(float), count, f), count);
        fx->counts[i] = count;
    }
    fclose(f);
}

static void fixture_free(struct fixture *fx)
{
    for (int i = 0; i < fx->n; i++)
        free(fx->vals[i]);
}

static const float *fx_get(const struct fixture *fx, const char *name, size_t count)
{
    for (int i = 0; i < fx->n; i++) {
        if (strcmp(fx->names[i], name) == 0) {
            ck_assert_msg(fx->counts[i] == count, "%s: %u values, want %zu", name, fx->counts[i],
                          count);
            return fx->vals[i];
        }
    }
    ck_abort_msg("fixture has no %s", name);
    return NULL;
}

/* torch state_dict names of the fixture net's slots */
static const struct {
    const char *name;
    int layer, slot;
} fx_slots[] = {
    {"conv1.weight", FX_CONV1, 0}, {"conv1.bias", FX_CONV1, 1},     {"bn1.weight", FX_BN1, 0},
    {"bn1.bias", FX_BN1, 1},       {"bn1.running_mean", FX_BN1, 2}, {"bn1.running_var", FX_BN1, 3},
    {"conv2.weight", FX_CONV2, 0}, {"conv2.bias", FX_CONV2, 1},     {"fc.weight", FX_FC, 0},
    {"fc.bias", FX_FC, 1},
};
enum { FX_SLOTS = sizeof fx_slots / sizeof fx_slots[0] };

static struct cnn_model *fixture_model(const struct fixture *fx)
{
    struct cnn_model *m = fixture_net();
    for (int i = 0; i < FX_SLOTS; i++) {
        size_t count;
        float *w = cnn_model_weights_mut(m, fx_slots[i].layer, fx_slots[i].slot, &count);
        char name[64];
        snprintf(name, sizeof name, "init.%s", fx_slots[i].name);
        memcpy(w, fx_get(fx, name, count), count * sizeof(float));
    }
    return compiled(m);
}

static void fixture_batch(const struct fixture *fx, int b, const float **x, int *y)
{
    char name[32];
    snprintf(name, sizeof name, "input%d", b);
    *x = fx_get(fx, name, 4 * 3 * 8 * 8);
    snprintf(name, sizeof name, "labels%d", b);
    const float *l = fx_get(fx, name, 4);
    for (int i = 0; i < 4; i++)
        y[i] = (int)l[i];
}

static struct cnn_trainer *fixture_trainer(const struct fixture *fx, const struct cnn_model *m,
                                           int nesterov)
{
    const float *h = fx_get(fx, "hyper", 5); /* lr, momentum, wd, bn eps, bn momentum */
    struct cnn_train_config cfg;
    cnn_train_config_default(&cfg);
    cfg.lr = h[0];
    cfg.momentum = h[1];
    cfg.weight_decay = h[2];
    cfg.bn_momentum = h[4];
    cfg.nesterov = nesterov;
    cfg.max_batch = 4;
    return trainer(m, &cfg);
}

/* Compares slot i of fx_slots (from..to) after `stepno` steps of scenario sc. */
static void expect_state(struct cnn_trainer *t, const struct fixture *fx, const char *sc,
                         int stepno, int from, int to)
{
    for (int i = from; i < to; i++) {
        size_t count;
        const float *w = cnn_trainer_weights(t, fx_slots[i].layer, fx_slots[i].slot, &count);
        char name[80];
        snprintf(name, sizeof name, "%s.step%d.%s", sc, stepno, fx_slots[i].name);
        expect_close(w, fx_get(fx, name, count), count, 1e-4, name);
    }
}

static void sgd_scenario(const char *sc, int nesterov)
{
    struct fixture fx;
    fixture_load(&fx);
    struct cnn_model *m = fixture_model(&fx);
    struct cnn_trainer *t = fixture_trainer(&fx, m, nesterov);
    for (int b = 1; b <= 2; b++) {
        const float *x;
        int y[4];
        fixture_batch(&fx, b, &x, y);
        struct cnn_train_stats st;
        step(t, x, y, 4, &st);
        char name[80];
        snprintf(name, sizeof name, "%s.loss%d", sc, b);
        ck_assert_msg(fabs(st.loss - fx_get(&fx, name, 1)[0]) <= 1e-5, "%s: %.7g vs %.7g", name,
                      (double)st.loss, (double)fx_get(&fx, name, 1)[0]);
        ck_assert_int_eq(st.n, 4);
        ck_assert_int_eq(st.step, b);
        if (b == 1) { /* gradients before the update */
            for (int i = 0; i < FX_SLOTS; i++) {
                if (fx_slots[i].layer == FX_BN1 && fx_slots[i].slot >= 2)
                    continue;
                size_t count;
                const float *g = cnn_trainer_grad(t, fx_slots[i].layer, fx_slots[i].slot, &count);
                snprintf(name, sizeof name, "%s.grad1.%s", sc, fx_slots[i].name);
                expect_close(g, fx_get(&fx, name, count), count, 1e-5, name);
            }
        }
        expect_state(t, &fx, sc, b, 0, FX_SLOTS);
    }
    cnn_trainer_destroy(t);
    cnn_model_destroy(m);
    fixture_free(&fx);
}

START_TEST(test_two_sgd_steps_match_pytorch)
{
    sgd_scenario("a", 0);
}
END_TEST

START_TEST(test_two_nesterov_steps_match_pytorch)
{
    sgd_scenario("b", 1);
}
END_TEST

START_TEST(test_bn_running_statistics_match_pytorch)
{
    struct fixture fx;
    fixture_load(&fx);
    struct cnn_model *m = fixture_model(&fx);
    struct cnn_trainer *t = fixture_trainer(&fx, m, 0);
    for (int b = 1; b <= 2; b++) {
        const float *x;
        int y[4];
        fixture_batch(&fx, b, &x, y);
        step(t, x, y, 4, NULL);
        expect_state(t, &fx, "a", b, 4, 6); /* bn1.running_mean, bn1.running_var */
    }
    /* the source model kept its statistics: a new trainer starts from them */
    struct cnn_trainer *t2 = fixture_trainer(&fx, m, 0);
    for (int s = 2; s < 4; s++) {
        size_t count;
        const float *w = cnn_trainer_weights(t2, FX_BN1, s, &count);
        expect_close(w,
                     fx_get(&fx, s == 2 ? "init.bn1.running_mean" : "init.bn1.running_var", count),
                     count, 0.0, "fresh trainer statistics");
    }
    cnn_trainer_destroy(t2);
    cnn_trainer_destroy(t);
    cnn_model_destroy(m);
    fixture_free(&fx);
}
END_TEST

/* ---- (4) freezing ------------------------------------------------------------- */

START_TEST(test_frozen_layers_do_not_change)
{
    struct fixture fx;
    fixture_load(&fx);
    struct cnn_model *m = fixture_model(&fx);
    struct cnn_train_config cfg;
    cnn_train_config_default(&cfg);
    cfg.lr = 0.1f;
    cfg.weight_decay = 1e-3f;
    cfg.max_batch = 4;
    cfg.freeze_upto = "conv2";
    struct cnn_trainer *t = trainer(m, &cfg);
    float *before[FX_SLOTS];
    size_t counts[FX_SLOTS];
    for (int i = 0; i < FX_SLOTS; i++)
        before[i] = copy_slot(t, fx_slots[i].layer, fx_slots[i].slot, &counts[i]);
    for (int b = 1; b <= 2; b++) {
        const float *x;
        int y[4];
        fixture_batch(&fx, b, &x, y);
        step(t, x, y, 4, NULL);
    }
    for (int i = 0; i < FX_SLOTS; i++) {
        const float *w = cnn_trainer_weights(t, fx_slots[i].layer, fx_slots[i].slot, NULL);
        int same = memcmp(w, before[i], counts[i] * sizeof(float)) == 0;
        if (fx_slots[i].layer <= FX_CONV2) { /* conv1, bn1 (and its statistics), conv2 */
            ck_assert_msg(same, "frozen %s changed", fx_slots[i].name);
            const float *g = cnn_trainer_grad(t, fx_slots[i].layer, fx_slots[i].slot, NULL);
            for (size_t k = 0; k < counts[i]; k++)
                ck_assert_msg(g[k] == 0.0f, "frozen %s has a gradient", fx_slots[i].name);
        } else {
            ck_assert_msg(!same, "trainable %s did not change", fx_slots[i].name);
        }
        free(before[i]);
    }
    cnn_trainer_destroy(t);
    struct cnn_err err = {0};
    cfg.freeze_upto = "no_such_layer";
    ck_assert_ptr_null(cnn_trainer_create(m, &cfg, &err));
    ck_assert_int_eq(err.code, CNN_ENOENT);
    cnn_model_destroy(m);
    fixture_free(&fx);
}
END_TEST

Suite *train_suite(void)
{
    Suite *s = suite_create("train");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_whole_net_gradients_match_finite_differences);
    tcase_add_test(tc, test_squared_error_gradients_match_finite_differences);
    tcase_add_test(tc, test_worker_team_runs_every_part_once_per_round);
    tcase_add_test(tc, test_threads_match_one_thread);
    tcase_add_test(tc, test_winograd_convs_match_im2col);
    tcase_add_test(tc, test_fashion_cnn_winograd_convs_match_im2col);
    tcase_add_test(tc, test_fashion_cnn_batchnorm_relu_pairs_match_unfused);
    tcase_add_test(tc, test_sgd_without_momentum_is_plain_gradient_descent);
    tcase_add_test(tc, test_two_sgd_steps_match_pytorch);
    tcase_add_test(tc, test_two_nesterov_steps_match_pytorch);
    tcase_add_test(tc, test_bn_running_statistics_match_pytorch);
    tcase_add_test(tc, test_frozen_layers_do_not_change);
    suite_add_tcase(s, tc);
    return s;
}
