/* Suite train_workflow: the trainer as cnn train and fine-tune jobs use it: export round trip
 * through a file and a session, head replacement learning new classes, reproducibility from
 * the seed, learning-rate schedules, bad input that changes nothing, batch norm's two values
 * per channel, describe. */
#include "model.h"
#include "session.h"
#include "test_nets.h"
#include "test_train.h"
#include "test_util.h"
#include "train.h"
#include "workers.h"

#include <check.h>
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
/* ---- (3) export round trip --------------------------------------------------- */

START_TEST(test_export_save_load_matches_evaluate)
{
    struct cnn_model *m = compiled(test_net_dag(11)); /* every layer kind, dropout included */
    const struct cnn_preproc *pp = cnn_model_preproc(m);
    const int N = 4, K = cnn_model_num_classes(m);
    size_t img = (size_t)pp->c * pp->h * pp->w;
    float *x = malloc(img * N * sizeof(float));
    float *p0 = malloc((size_t)K * N * sizeof(float)), *pt = malloc((size_t)K * N * sizeof(float));
    int y[4] = {0, 1, 2, 3};
    struct cnn_err err = {0};
    struct cnn_session *s = cnn_session_create(m, N, &err);
    ck_assert_ptr_nonnull(s);
    const float *probs;
    test_fill(x, img * N, 5);
    ck_assert_int_eq(cnn_session_forward(s, m, x, N, &probs, &err), 0);
    memcpy(p0, probs, (size_t)K * N * sizeof(float));

    struct cnn_train_config cfg;
    cnn_train_config_default(&cfg);
    cfg.lr = 0.05f;
    cfg.max_batch = N;
    struct cnn_trainer *t = trainer(m, &cfg);
    /* a fresh trainer evaluates like the served model (unfused vs folded: rounding only) */
    int correct = -1;
    ck_assert_int_eq(cnn_trainer_evaluate(t, x, y, N, pt, &correct, &err), 0);
    expect_close(pt, p0, (size_t)K * N, 1e-5, "fresh evaluate vs session");
    for (int i = 0; i < 3; i++) {
        float xb[4 * 3 * 13 * 11];
        test_fill(xb, img * N, 100 + i);
        step(t, xb, y, N, NULL);
    }
    ck_assert_int_eq(cnn_trainer_evaluate(t, x, y, N, pt, &correct, &err), 0);
    ck_assert_int_ge(correct, 0);
    ck_assert_int_le(correct, N);

    struct cnn_model *e = NULL;
    ck_assert_msg(cnn_trainer_export(t, "parent=dag\ndataset=noise\n", &e, &err) == 0, "%s",
                  err.msg);
    char dir[64], path[96];
    make_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/model.cnn", dir);
    ck_assert_msg(cnn_model_save(e, path, &err) == 0, "save: %s", err.msg);
    struct cnn_model *l = NULL;
    ck_assert_msg(cnn_model_load(path, &l, &err) == 0, "load: %s", err.msg);
    ck_assert_str_eq(cnn_model_meta(l), "parent=dag\ndataset=noise\n");
    ck_assert_int_eq(cnn_model_num_classes(l), K);
    struct cnn_session *s2 = cnn_session_create(l, N, &err);
    ck_assert_ptr_nonnull(s2);
    ck_assert_int_eq(cnn_session_forward(s2, l, x, N, &probs, &err), 0);
    expect_close(probs, pt, (size_t)K * N, 1e-5, "loaded model vs trainer evaluate");
    /* a trainer made from the loaded (read-only mapped) file continues from the same point */
    struct cnn_trainer *t2 = trainer(l, &cfg);
    float *p2 = malloc((size_t)K * N * sizeof(float));
    ck_assert_int_eq(cnn_trainer_evaluate(t2, x, y, N, p2, NULL, &err), 0);
    expect_close(p2, pt, (size_t)K * N, 1e-6, "trainer from the loaded file");
    free(p2);
    cnn_trainer_destroy(t2);
    /* training changed the outputs, and the served model was not touched */
    double diff = 0;
    for (int k = 0; k < K * N; k++)
        diff += fabs(pt[k] - p0[k]);
    ck_assert_msg(diff > 1e-3, "training changed nothing (%g)", diff);
    ck_assert_int_eq(cnn_session_forward(s, m, x, N, &probs, &err), 0);
    ck_assert(memcmp(probs, p0, (size_t)K * N * sizeof(float)) == 0);

    cnn_session_destroy(s2);
    cnn_model_destroy(l);
    cnn_model_destroy(e);
    unlink(path);
    rmdir(dir);
    cnn_trainer_destroy(t);
    cnn_session_destroy(s);
    cnn_model_destroy(m);
    free(x);
    free(p0);
    free(pt);
}
END_TEST

/* ---- (5) head replacement ------------------------------------------------------ */

/* 1x8x8 images of class k in 0..2: a bright 3x3 patch at a class-specific place, noise. */
static void separable_batch(float *x, int *y, int n, uint64_t seed)
{
    static const int py[3] = {1, 4, 1}, px[3] = {1, 2, 4};
    test_fill(x, (size_t)n * 64, seed);
    for (int i = 0; i < n; i++) {
        int k = (int)((seed + (uint64_t)i * 7) % 3);
        y[i] = k;
        for (int p = 0; p < 64; p++)
            x[i * 64 + p] *= 0.3f;
        for (int dy = 0; dy < 3; dy++)
            for (int dx = 0; dx < 3; dx++)
                x[i * 64 + (py[k] + dy) * 8 + px[k] + dx] += 1.5f;
    }
}

static struct cnn_model *ten_class_net(uint64_t seed)
{
    struct cnn_model *m = new_model(1, 8, 8);
    add(m, conv("conv", 4, 3, 1, 1, CNN_ACT_NONE));
    add(m, act("relu", CNN_ACT_RELU));
    add(m, pool(CNN_LAYER_MAXPOOL, "pool", 2, 2, 0));
    add(m, simple(CNN_LAYER_FLATTEN, "flat"));
    struct cnn_layer_desc d = {.kind = CNN_LAYER_DROPOUT, .name = "drop"};
    d.p.dropout_rate = 0.25f;
    add(m, d);
    add(m, dense("fc", 10, CNN_ACT_NONE));
    add(m, simple(CNN_LAYER_SOFTMAX, "prob"));
    struct cnn_err err = {0};
    const char *labels[10] = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
    ck_assert_int_eq(cnn_model_set_labels(m, labels, 10, &err), 0);
    ck_assert_int_eq(cnn_model_alloc_params(m, &err), 0);
    randomize(m, seed);
    return compiled(m);
}

START_TEST(test_head_replacement_learns_new_classes)
{
    struct cnn_model *m = ten_class_net(9);
    struct cnn_train_config cfg;
    cnn_train_config_default(&cfg);
    cfg.lr = 0.05f;
    cfg.max_batch = 30;
    cfg.seed = 77;
    cfg.freeze_upto = "conv"; /* features fixed, as a fine-tuning job would */
    struct cnn_trainer *t = trainer(m, &cfg);
    struct cnn_err err = {0};
    const char *labels[3] = {"left", "bottom", "right"};
    ck_assert_int_eq(cnn_trainer_replace_head(t, labels, 0, &err), CNN_EINVAL);
    const char *bad[3] = {"left", "", "right"}; /* fails after the new net is built */
    ck_assert_int_eq(cnn_trainer_replace_head(t, bad, 3, &err), CNN_EINVAL);
    ck_assert_int_eq(cnn_trainer_num_classes(t), 10); /* unchanged, and still usable below */
    ck_assert_msg(cnn_trainer_replace_head(t, labels, 3, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(cnn_trainer_num_classes(t), 3);
    float xv[30 * 64], x[30 * 64], probs[30 * 3];
    int yv[30], y[30], before, after;
    separable_batch(xv, yv, 30, 1000);
    ck_assert_int_eq(cnn_trainer_evaluate(t, xv, yv, 30, probs, &before, &err), 0);
    for (int i = 0; i < 30; i++) { /* probabilities of the new 3-way softmax */
        float sum = probs[i * 3] + probs[i * 3 + 1] + probs[i * 3 + 2];
        ck_assert(fabsf(sum - 1.0f) < 1e-5f);
    }
    for (int s = 0; s < 40; s++) {
        separable_batch(x, y, 30, 2000 + (uint64_t)s);
        step(t, x, y, 30, NULL);
    }
    ck_assert_int_eq(cnn_trainer_evaluate(t, xv, yv, 30, NULL, &after, &err), 0);
    ck_assert_msg(after > before && after >= 27, "accuracy %d/30 -> %d/30", before, after);
    struct cnn_model *e = NULL;
    ck_assert_msg(cnn_trainer_export(t, NULL, &e, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(cnn_model_num_classes(e), 3);
    ck_assert_str_eq(cnn_model_label(e, 2), "right");
    ck_assert_int_eq(cnn_model_num_classes(m), 10); /* the source model is untouched */
    cnn_model_destroy(e);
    cnn_trainer_destroy(t);
    cnn_model_destroy(m);
}
END_TEST

/* ---- (6) reproducibility ------------------------------------------------------- */

/* Trains a new-head dropout net for 5 steps with seed; returns all its weights. */
static float *train_with_seed(const struct cnn_model *m, uint64_t seed, size_t *total)
{
    struct cnn_train_config cfg;
    cnn_train_config_default(&cfg);
    cfg.lr = 0.05f;
    cfg.max_batch = 8;
    cfg.seed = seed;
    struct cnn_trainer *t = trainer(m, &cfg);
    struct cnn_err err = {0};
    ck_assert_int_eq(cnn_trainer_replace_head(t, NULL, 3, &err), 0);
    float x[8 * 64];
    int y[8];
    for (int s = 0; s < 5; s++) {
        separable_batch(x, y, 8, 50 + (uint64_t)s);
        step(t, x, y, 8, NULL);
    }
    float *all = NULL;
    *total = 0;
    for (int i = 1; i < cnn_model_layer_count(m); i++) {
        for (int s = 0; s < 4; s++) {
            size_t count;
            const float *w = cnn_trainer_weights(t, i, s, &count);
            if (!w)
                continue;
            all = realloc(all, (*total + count) * sizeof(float));
            memcpy(all + *total, w, count * sizeof(float));
            *total += count;
        }
    }
    cnn_trainer_destroy(t);
    return all;
}

START_TEST(test_same_seed_same_weights_different_seed_differs)
{
    struct cnn_model *m = ten_class_net(4);
    size_t na, nb, nc;
    float *a = train_with_seed(m, 123, &na);
    float *b = train_with_seed(m, 123, &nb);
    float *c = train_with_seed(m, 124, &nc);
    ck_assert_uint_eq(na, nb);
    ck_assert_uint_eq(na, nc);
    ck_assert_msg(memcmp(a, b, na * sizeof(float)) == 0, "same seed, different weights");
    ck_assert_msg(memcmp(a, c, na * sizeof(float)) != 0, "different seeds, same weights");
    free(a);
    free(b);
    free(c);
    cnn_model_destroy(m);
}
END_TEST

/* ---- schedules, evaluation mode, errors ---------------------------------------- */

START_TEST(test_learning_rate_schedules)
{
    struct cnn_model *m = compiled(test_net_small(2));
    float x[2 * 64];
    int y[2] = {1, 3};
    test_fill(x, 128, 8);
    struct cnn_train_config cfg;
    cnn_train_config_default(&cfg);
    cfg.lr = 0.2f;
    cfg.max_batch = 2;
    /* step: x0.5 every 2 epochs of 3 steps, warm-up over 4 steps */
    cfg.schedule = CNN_LR_STEP;
    cfg.step_epochs = 2;
    cfg.step_gamma = 0.5f;
    cfg.steps_per_epoch = 3;
    cfg.warmup_steps = 4;
    struct cnn_trainer *t = trainer(m, &cfg);
    for (long s = 0; s < 14; s++) {
        double want = 0.2 * pow(0.5, (double)((s / 3) / 2));
        if (s < 4)
            want *= (s + 1) / 4.0;
        ck_assert_msg(fabs(cnn_trainer_lr(t) - want) < 1e-7, "step %ld: lr %g, want %g", s,
                      (double)cnn_trainer_lr(t), want);
        ck_assert_int_eq(cnn_trainer_epoch(t), s / 3);
        struct cnn_train_stats st;
        step(t, x, y, 2, &st);
        ck_assert(fabs(st.lr - want) < 1e-7);
    }
    ck_assert_int_eq(cnn_trainer_step_count(t), 14);
    cnn_trainer_destroy(t);
    /* cosine to 0 over 10 steps after 2 warm-up steps */
    cfg.schedule = CNN_LR_COSINE;
    cfg.warmup_steps = 2;
    cfg.total_steps = 12;
    t = trainer(m, &cfg);
    for (long s = 0; s < 12; s++) {
        double want =
            s < 2 ? 0.2 * (s + 1) / 2.0 : 0.2 * 0.5 * (1 + cos(3.141592653589793 * (s - 2) / 10.0));
        ck_assert_msg(fabs(cnn_trainer_lr(t) - want) < 1e-6, "cosine step %ld: %g vs %g", s,
                      (double)cnn_trainer_lr(t), want);
        step(t, x, y, 2, NULL);
    }
    ck_assert(fabs(cnn_trainer_lr(t)) < 1e-7);
    cnn_trainer_destroy(t);
    struct cnn_err err = {0};
    cfg.total_steps = 2; /* not more than the warm-up */
    ck_assert_ptr_null(cnn_trainer_create(m, &cfg, &err));
    ck_assert_int_eq(err.code, CNN_EINVAL);
    cnn_model_destroy(m);
}
END_TEST

START_TEST(test_bad_input_changes_nothing)
{
    struct cnn_model *m = compiled(test_net_small(6));
    struct cnn_train_config cfg;
    cnn_train_config_default(&cfg);
    cfg.max_batch = 4;
    atomic_int cancel = 0;
    cfg.cancel = &cancel;
    struct cnn_trainer *t = trainer(m, &cfg);
    size_t count;
    float *before = copy_slot(t, 1, 0, &count);
    float x[5 * 64];
    int y[5] = {0, 1, 2, 3, 0};
    test_fill(x, 5 * 64, 1);
    struct cnn_err err = {0};
    ck_assert_int_eq(cnn_trainer_step(t, x, y, NULL, 5, NULL, &err), CNN_EINVAL);
    ck_assert_int_eq(cnn_trainer_step(t, x, y, NULL, 0, NULL, &err), CNN_EINVAL);
    ck_assert_int_eq(cnn_trainer_step(t, x, NULL, NULL, 2, NULL, &err), CNN_EINVAL);
    y[1] = 4;
    ck_assert_int_eq(cnn_trainer_step(t, x, y, NULL, 2, NULL, &err), CNN_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "label"));
    y[1] = -1;
    ck_assert_int_eq(cnn_trainer_evaluate(t, x, y, 2, NULL, NULL, &err), CNN_EINVAL);
    y[1] = 1;
    x[70] = NAN;
    ck_assert_int_eq(cnn_trainer_step(t, x, y, NULL, 2, NULL, &err), CNN_EINVAL);
    x[70] = 0.5f;
    cancel = 1;
    ck_assert_int_eq(cnn_trainer_step(t, x, y, NULL, 2, NULL, &err), CNN_ECANCELED);
    ck_assert_int_eq(cnn_trainer_step_count(t), 0);
    ck_assert(memcmp(before, cnn_trainer_weights(t, 1, 0, NULL), count * sizeof(float)) == 0);
    cancel = 0;
    ck_assert_int_eq(cnn_trainer_step(t, x, y, NULL, 2, NULL, &err), 0);
    ck_assert(memcmp(before, cnn_trainer_weights(t, 1, 0, NULL), count * sizeof(float)) != 0);
    cnn_trainer_destroy(t);
    free(before);
    /* bad configs */
    struct cnn_train_config bad = cfg;
    bad.lr = 0;
    ck_assert_ptr_null(cnn_trainer_create(m, &bad, &err));
    bad = cfg;
    bad.momentum = 1.0f;
    ck_assert_ptr_null(cnn_trainer_create(m, &bad, &err));
    bad = cfg;
    bad.momentum = 0;
    bad.nesterov = 1;
    ck_assert_ptr_null(cnn_trainer_create(m, &bad, &err));
    bad = cfg;
    bad.max_batch = 0;
    ck_assert_ptr_null(cnn_trainer_create(m, &bad, &err));
    ck_assert_int_eq(err.code, CNN_EINVAL);
    /* squared error needs targets */
    bad = cfg;
    bad.loss = CNN_LOSS_MSE;
    t = trainer(m, &bad);
    ck_assert_int_eq(cnn_trainer_step(t, x, y, NULL, 2, NULL, &err), CNN_EINVAL);
    cnn_trainer_destroy(t);
    cnn_model_destroy(m);
}
END_TEST

START_TEST(test_batch_norm_needs_two_values_per_channel)
{
    /* BN over a 1x1 map: a batch of one has a single value per channel */
    struct cnn_model *m = new_model(1, 1, 1);
    add(m, conv("conv", 3, 1, 0, 1, CNN_ACT_NONE));
    int b = add(m, bn("bn"));
    add(m, simple(CNN_LAYER_FLATTEN, "flat"));
    add(m, dense("fc", 2, CNN_ACT_NONE));
    add(m, simple(CNN_LAYER_SOFTMAX, "prob"));
    struct cnn_err err = {0};
    ck_assert_int_eq(cnn_model_alloc_params(m, &err), 0);
    randomize(m, 3);
    compiled(m);
    struct cnn_train_config cfg;
    cnn_train_config_default(&cfg);
    cfg.max_batch = 2;
    struct cnn_trainer *t = trainer(m, &cfg);
    size_t count;
    float *mean = copy_slot(t, b, 2, &count);
    float x[2] = {0.5f, -0.25f};
    int y[2] = {1, 0};
    ck_assert_int_eq(cnn_trainer_step(t, x, y, NULL, 1, NULL, &err), CNN_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "bn"));
    ck_assert(memcmp(mean, cnn_trainer_weights(t, b, 2, NULL), count * sizeof(float)) == 0);
    int correct;
    ck_assert_int_eq(cnn_trainer_evaluate(t, x, y, 1, NULL, &correct, &err), 0);
    /* gradients alone leave the statistics and the step count alone; a step moves them */
    ck_assert_int_eq(cnn_trainer_compute_gradients(t, x, y, NULL, 2, NULL, &err), 0);
    ck_assert(memcmp(mean, cnn_trainer_weights(t, b, 2, NULL), count * sizeof(float)) == 0);
    ck_assert_int_eq(cnn_trainer_step_count(t), 0);
    step(t, x, y, 2, NULL);
    ck_assert(memcmp(mean, cnn_trainer_weights(t, b, 2, NULL), count * sizeof(float)) != 0);
    free(mean);
    cnn_trainer_destroy(t);
    cnn_model_destroy(m);
}
END_TEST

START_TEST(test_describe_lists_hyperparameters)
{
    struct cnn_model *m = compiled(test_net_small(1));
    struct cnn_train_config cfg;
    cnn_train_config_default(&cfg);
    cfg.lr = 0.125f;
    cfg.seed = 99;
    cfg.freeze_upto = "conv";
    struct cnn_trainer *t = trainer(m, &cfg);
    char buf[512];
    int len = cnn_trainer_describe(t, buf, sizeof buf);
    ck_assert_int_lt(len, (int)sizeof buf);
    ck_assert_ptr_nonnull(strstr(buf, "lr=0.125\n"));
    ck_assert_ptr_nonnull(strstr(buf, "seed=99\n"));
    ck_assert_ptr_nonnull(strstr(buf, "frozen_upto=conv\n"));
    char small[8];
    ck_assert_int_eq(cnn_trainer_describe(t, small, sizeof small), len);
    ck_assert_int_eq(strlen(small), 7);
    cnn_trainer_destroy(t);
    cnn_model_destroy(m);
}
END_TEST

Suite *train_workflow_suite(void)
{
    Suite *s = suite_create("train_workflow");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_export_save_load_matches_evaluate);
    tcase_add_test(tc, test_head_replacement_learns_new_classes);
    tcase_add_test(tc, test_same_seed_same_weights_different_seed_differs);
    tcase_add_test(tc, test_learning_rate_schedules);
    tcase_add_test(tc, test_bad_input_changes_nothing);
    tcase_add_test(tc, test_batch_norm_needs_two_values_per_channel);
    tcase_add_test(tc, test_describe_lists_hyperparameters);
    suite_add_tcase(s, tc);
    return s;
}
