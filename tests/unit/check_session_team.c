/* Session team suite: the forward pass split over a worker team (cnn_session_forward_team,
 * and cnn_session_forward_lent with other sessions' scratch) against the unsplit pass and
 * the naive reference, for every kind that splits (conv by im2col rows, by output channels (im2col
 * and pointwise), by Winograd tile rows and by output channels after a shared input transform,
 * dense, pooling, act, add), batch 1 and 3, teams
 * of 1..3; the checks on team size and lenders; no allocation while running. */
#include "alloc_counter.h"
#include "arch.h"
#include "gemm.h"
#include "gemm_packed.h"
#include "layer_kind.h"
#include "model.h"
#include "model_internal.h"
#include "ref_net.h"
#include "session.h"
#include "test_nets.h"
#include "test_train.h"
#include "workers.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A late-stage shape: 5x5 maps with many channels, so that at batch 1 the im2col convs
 * split over output channels (5 rows < 4 per thread) while two 3x3 convs run Winograd, also
 * split over output channels (their inputs too small to share one input transform over the
 * parts; the second conv, 128 channels deep, on packed U with AVX2); a residual add, a standalone
 * relu, both pools, dense and softmax. */
static struct cnn_model *late_net(void)
{
    struct cnn_preproc pp = {.c = 16, .h = 5, .w = 5, .mean = {0, 0, 0}, .std = {1, 1, 1}};
    struct cnn_err err = {0};
    struct cnn_model *m = cnn_model_create(&pp, &err);
    ck_assert_msg(m != NULL, "%s", err.msg);
    add(m, conv("wino", 128, 3, 1, 1, CNN_ACT_NONE));
    add(m, conv("wino_packed", 48, 3, 1, 1, CNN_ACT_NONE));
    add(m, (struct cnn_layer_desc){.kind = CNN_LAYER_ACT, .name = "r1", .p.act = {CNN_ACT_RELU}});
    int a = add(m, conv("c5x5", 64, 5, 2, 1, CNN_ACT_NONE)); /* im2col, 48 * 25 deep */
    int b = add(m, conv("pw", 64, 1, 0, 1, CNN_ACT_NONE));   /* pointwise */
    int ab[2] = {a, b};
    add(m, inputs((struct cnn_layer_desc){.kind = CNN_LAYER_ADD, .name = "sum"}, 2, ab));
    add(m, (struct cnn_layer_desc){.kind = CNN_LAYER_ACT, .name = "r2", .p.act = {CNN_ACT_TANH}});
    struct cnn_layer_desc d = {.kind = CNN_LAYER_MAXPOOL, .name = "maxp"};
    d.p.pool = (struct cnn_pool2d){.kh = 2, .kw = 2, .sh = 1, .sw = 1};
    add(m, d);
    d = (struct cnn_layer_desc){.kind = CNN_LAYER_AVGPOOL, .name = "avgp"};
    d.p.pool = (struct cnn_pool2d){.kh = 2, .kw = 2, .sh = 2, .sw = 2, .ceil_mode = 1};
    add(m, d);
    add(m, (struct cnn_layer_desc){.kind = CNN_LAYER_FLATTEN, .name = "flat"});
    d = (struct cnn_layer_desc){.kind = CNN_LAYER_DENSE, .name = "fc"};
    d.p.dense = (struct cnn_dense){.out = 37, .has_bias = 1};
    add(m, d);
    add(m, (struct cnn_layer_desc){.kind = CNN_LAYER_SOFTMAX, .name = "prob"});
    ck_assert_int_eq(cnn_model_alloc_params(m, &err), 0);
    cnn_model_init_random(m, 21);
    return m;
}

/* Pointwise convs on a map tall enough to split by rows (12 rows >= 4 per part for teams up
 * to 3): at batch 1 they have more channels than output columns (64 > 36) and split by
 * output channels (split_channels in core/layer_conv2d.c), at batch 3 (108 columns) by rows, each part
 * then reading all of the weights; the second adds the first's output (a fused residual,
 * written over it) and the sum goes through a relu. */
static struct cnn_model *tall_net(void)
{
    struct cnn_preproc pp = {.c = 24, .h = 12, .w = 3, .mean = {0, 0, 0}, .std = {1, 1, 1}};
    struct cnn_err err = {0};
    struct cnn_model *m = cnn_model_create(&pp, &err);
    ck_assert_msg(m != NULL, "%s", err.msg);
    int a = add(m, conv("pw1", 64, 1, 0, 1, CNN_ACT_RELU));
    int b = add(m, conv("pw2", 64, 1, 0, 1, CNN_ACT_NONE));
    int ab[2] = {a, b};
    add(m, inputs((struct cnn_layer_desc){.kind = CNN_LAYER_ADD, .name = "sum"}, 2, ab));
    add(m, (struct cnn_layer_desc){.kind = CNN_LAYER_ACT, .name = "r", .p.act = {CNN_ACT_RELU}});
    add(m, (struct cnn_layer_desc){.kind = CNN_LAYER_FLATTEN, .name = "flat"});
    struct cnn_layer_desc d = {.kind = CNN_LAYER_DENSE, .name = "fc"};
    d.p.dense = (struct cnn_dense){.out = 11, .has_bias = 1};
    add(m, d);
    add(m, (struct cnn_layer_desc){.kind = CNN_LAYER_SOFTMAX, .name = "prob"});
    ck_assert_int_eq(cnn_model_alloc_params(m, &err), 0);
    cnn_model_init_random(m, 22);
    return m;
}

enum { N_NETS = 4 };

static struct cnn_model *make_net(int which)
{
    switch (which) {
    case 0:
        return test_net_dag(31);
    case 1:
        return test_net_wide(32);
    case 2:
        return late_net();
    default:
        return tall_net();
    }
}

static size_t image_floats(const struct cnn_model *m)
{
    const struct cnn_preproc *pp = cnn_model_preproc(m);
    return (size_t)pp->c * pp->h * pp->w;
}

/* cnn_session_forward_lent with two fresh lenders made for exactly batch n (the least they
 * may be) whose input buffers hold mark; they must keep it: the input follows the scratch in
 * a session's memory, so a part that ran past the end of the scratch it was lent would
 * change it (or, past the block, trip ASan). */
static const float *forward_lent(const struct cnn_model *m, struct cnn_session *s,
                                 struct cnn_workers *team, const float *x, int n, const float *mark)
{
    struct cnn_err err = {0};
    const size_t bytes = (size_t)n * image_floats(m) * sizeof(float);
    struct cnn_session *lenders[2];
    for (int k = 0; k < 2; k++) {
        lenders[k] = cnn_session_create(m, n, &err);
        ck_assert_msg(lenders[k] != NULL, "%s", err.msg);
        memcpy(cnn_session_input(lenders[k]), mark, bytes);
    }
    const float *out;
    ck_assert_msg(cnn_session_forward_lent(s, m, team, lenders, x, n, &out, &err) == 0, "%s",
                  err.msg);
    for (int k = 0; k < 2; k++) {
        ck_assert_msg(memcmp(cnn_session_input(lenders[k]), mark, bytes) == 0,
                      "team of %d, batch %d: lender %d's input changed", cnn_workers_count(team), n,
                      k);
        cnn_session_destroy(lenders[k]);
    }
    return out;
}

/* For nets 0..3 (loop index % N_NETS), batches 1 and 3, teams of 1, 2 and 3: the split pass
 * equals the unsplit pass (1e-5) and the naive reference (1e-4).  Loop indexes 0..3 split
 * with the session's own scratch (cnn_session_forward_team), 4..7 with lent scratch, every
 * session made for one thread (cnn_session_forward_lent, as cnnd's workers). */
START_TEST(test_team_matches_unsplit_and_reference)
{
    static const char *const names[N_NETS] = {"dag", "wide", "late", "tall"};
    const int lent = _i >= N_NETS;
    struct cnn_model *m = make_net(_i % N_NETS);
    const int K = cnn_model_num_classes(m), max_n = 3;
    const size_t img = image_floats(m);
    float *x = malloc(max_n * img * sizeof(float));
    float *plain = malloc(max_n * K * sizeof(float)), *ref = malloc(K * sizeof(float));
    float *mark = malloc(max_n * img * sizeof(float));
    test_fill(x, max_n * img, 40 + _i % N_NETS);
    test_fill(mark, max_n * img, 60 + _i);
    float *refs = malloc(max_n * K * sizeof(float));
    for (int n = 0; n < max_n; n++) { /* before compile: the reference reads unfolded weights */
        ck_assert_int_eq(ref_net_forward(m, x + n * img, ref), 0);
        memcpy(refs + n * K, ref, K * sizeof(float));
    }
    compiled(m);
    struct cnn_err err = {0};
    struct cnn_session *s1 = cnn_session_create(m, max_n, &err);
    struct cnn_session *s3 =
        lent ? cnn_session_create(m, max_n, &err) : cnn_session_create_parts(m, max_n, 3, &err);
    ck_assert_msg(s1 && s3, "%s", err.msg);
    double worst_plain = 0, worst_ref = 0;
    const float *out;
    for (int threads = 1; threads <= 3; threads++) {
        struct cnn_workers *team = cnn_workers_create(threads, &err);
        ck_assert_msg(team != NULL, "%s", err.msg);
        for (int n = 1; n <= max_n; n += 2) {
            ck_assert_int_eq(cnn_session_forward(s1, m, x, n, &out, &err), 0);
            memcpy(plain, out, (size_t)n * K * sizeof(float));
            if (lent)
                out = forward_lent(m, s3, team, x, n, mark);
            else
                ck_assert_int_eq(cnn_session_forward_team(s3, m, team, x, n, &out, &err), 0);
            for (int i = 0; i < n * K; i++) {
                worst_plain = fmax(worst_plain, fabs((double)out[i] - plain[i]));
                worst_ref = fmax(worst_ref, fabs((double)out[i] - refs[i]));
                ck_assert_msg(isfinite(out[i]), "output %d not finite", i);
            }
        }
        cnn_workers_destroy(team);
    }
    printf("session_team: %s net, %s scratch, teams 1-3, batches 1 and 3: max abs diff %.3g vs "
           "unsplit, %.3g vs naive reference\n",
           names[_i % N_NETS], lent ? "lent" : "own", worst_plain, worst_ref);
    ck_assert_msg(worst_plain <= 1e-5, "vs unsplit %g", worst_plain);
    ck_assert_msg(worst_ref <= 1e-4, "vs reference %g", worst_ref);
    cnn_session_destroy(s1);
    cnn_session_destroy(s3);
    free(x);
    free(plain);
    free(ref);
    free(refs);
    free(mark);
    cnn_model_destroy(m);
}
END_TEST

/* ResNet-18 (random weights): Winograd, strided im2col convs split by rows at 56x56 and by
 * channels at 7x7, pools, adds, dense; logits compared before the softmax would hide them. */
START_TEST(test_team_resnet18_matches_unsplit)
{
    struct cnn_err err = {0};
    struct cnn_model *m = NULL;
    ck_assert_msg(cnn_arch_build("resnet18", 0, &m, &err) == 0, "%s", err.msg);
    cnn_model_init_random(m, 5);
    compiled(m);
    const int K = cnn_model_num_classes(m), max_n = 2;
    const size_t img = image_floats(m);
    float *x = malloc(max_n * img * sizeof(float)), *plain = malloc(max_n * K * sizeof(float));
    test_fill(x, max_n * img, 8);
    struct cnn_session *s1 = cnn_session_create(m, max_n, &err);
    struct cnn_session *s3 = cnn_session_create_parts(m, max_n, 3, &err);
    ck_assert_msg(s1 && s3, "%s", err.msg);
    double worst = 0, top = 0;
    const float *out;
    for (int threads = 2; threads <= 3; threads++) {
        struct cnn_workers *team = cnn_workers_create(threads, &err);
        ck_assert_msg(team != NULL, "%s", err.msg);
        for (int n = 1; n <= max_n; n++) {
            ck_assert_int_eq(cnn_session_forward(s1, m, x, n, &out, &err), 0);
            memcpy(plain, out, (size_t)n * K * sizeof(float));
            ck_assert_int_eq(cnn_session_forward_team(s3, m, team, x, n, &out, &err), 0);
            for (int i = 0; i < n * K; i++) {
                worst = fmax(worst, fabs((double)out[i] - plain[i]));
                top = fmax(top, plain[i]);
            }
        }
        cnn_workers_destroy(team);
    }
    printf("session_team: resnet18, teams 2-3, batches 1-2: max abs diff %.3g of softmax "
           "(largest probability %.3g)\n",
           worst, top);
    ck_assert_msg(worst <= 1e-5, "max abs diff %g", worst);
    cnn_session_destroy(s1);
    cnn_session_destroy(s3);
    free(x);
    free(plain);
    cnn_model_destroy(m);
}
END_TEST

/* Lenders missing, for another model, for smaller batches, repeated or the session itself. */
START_TEST(test_lent_bad_lenders_rejected)
{
    struct cnn_model *m = compiled(test_net_small(3)), *other = compiled(test_net_small(4));
    struct cnn_err err = {0};
    struct cnn_session *s = cnn_session_create(m, 2, &err);
    struct cnn_session *a = cnn_session_create(m, 2, &err), *b = cnn_session_create(m, 2, &err);
    struct cnn_session *small = cnn_session_create(m, 1, &err);
    struct cnn_session *foreign = cnn_session_create(other, 2, &err);
    struct cnn_workers *team = cnn_workers_create(3, &err);
    ck_assert_msg(s && a && b && small && foreign && team, "%s", err.msg);
    const float *x = cnn_session_input(s), *out;
    struct {
        struct cnn_session *l[2];
        const char *msg;
    } bad[] = {{{a, NULL}, "lender 1 is missing"},
               {{foreign, b}, "lender 0 is missing"},
               {{a, small}, "batches below 2"},
               {{a, a}, "lender 1 is the session"},
               {{s, b}, "lender 0 is the session"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err = (struct cnn_err){0};
        ck_assert_int_eq(cnn_session_forward_lent(s, m, team, bad[i].l, x, 2, &out, &err),
                         CNN_EINVAL);
        ck_assert_msg(strstr(err.msg, bad[i].msg) != NULL, "case %zu: %s", i, err.msg);
    }
    err = (struct cnn_err){0};
    ck_assert_int_eq(cnn_session_forward_lent(s, m, team, NULL, x, 2, &out, &err), CNN_EINVAL);
    ck_assert_msg(strstr(err.msg, "no lenders") != NULL, "%s", err.msg);
    /* the small lender serves batch 1; no team needs no lenders */
    struct cnn_session *ok[2] = {a, small};
    ck_assert_int_eq(cnn_session_forward_lent(s, m, team, ok, x, 1, &out, &err), 0);
    ck_assert_int_eq(cnn_session_forward_lent(s, m, NULL, NULL, x, 2, &out, &err), 0);
    cnn_workers_destroy(team);
    struct cnn_session *all[] = {s, a, b, small, foreign};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        cnn_session_destroy(all[i]);
    cnn_model_destroy(m);
    cnn_model_destroy(other);
}
END_TEST

START_TEST(test_team_larger_than_parts_rejected)
{
    struct cnn_model *m = compiled(test_net_small(3));
    struct cnn_err err = {0};
    ck_assert_ptr_null(cnn_session_create_parts(m, 2, 0, &err));
    ck_assert_int_eq(err.code, CNN_EINVAL);
    ck_assert_ptr_null(cnn_session_create_parts(m, 2, 257, &err));
    struct cnn_session *s = cnn_session_create_parts(m, 2, 2, &err);
    struct cnn_workers *team = cnn_workers_create(3, &err);
    ck_assert_msg(s && team, "%s", err.msg);
    const float *out;
    err = (struct cnn_err){0};
    ck_assert_int_eq(cnn_session_forward_team(s, m, team, cnn_session_input(s), 1, &out, &err),
                     CNN_EINVAL);
    ck_assert_msg(strstr(err.msg, "team of 3") != NULL, "%s", err.msg);
    /* a plain session has scratch for one thread only */
    struct cnn_session *plain = cnn_session_create(m, 2, &err);
    ck_assert_int_eq(
        cnn_session_forward_team(plain, m, team, cnn_session_input(plain), 1, &out, &err),
        CNN_EINVAL);
    cnn_workers_destroy(team);
    cnn_session_destroy(s);
    cnn_session_destroy(plain);
    cnn_model_destroy(m);
}
END_TEST

/* Convs of model m (compiled) that take the shared-input Winograd rounds for a batch of n on
 * `parts` parts; *packed of them on packed U. */
static int shared_rounds(const struct cnn_model *m, int n, int parts, int *packed)
{
    const struct cnn_layer_kind_ops *conv = cnn_layer_kind_ops(CNN_LAYER_CONV2D);
    int shared = 0;
    *packed = 0;
    for (int k = 0; k < m->n_ops; k++) {
        const struct cnn_op *op = &m->ops[k];
        if (op->kind == CNN_LAYER_CONV2D && conv->run_rounds(op, n, parts) == 2) {
            shared++;
            *packed += op->u_packed;
        }
    }
    return shared;
}

/* ResNet-18's Winograd convs on 28x28 and smaller maps take the shared-input rounds on teams
 * of 2 and 3 at batch 1 (test_team_resnet18_matches_unsplit checks them against one part),
 * those with 128+ input channels on packed U where the packed GEMM runs vectorised; one part
 * runs them in one round.  late_net's two are too small to share (inputs of 400 and 3200
 * floats: every part transforms its input itself, as the CIFAR net's). */
START_TEST(test_winograd_shares_input_when_large)
{
    struct cnn_err err = {0};
    struct cnn_model *r18 = NULL, *late = compiled(late_net());
    ck_assert_msg(cnn_arch_build("resnet18", 0, &r18, &err) == 0, "%s", err.msg);
    cnn_model_init_random(r18, 5);
    compiled(r18);
    for (int parts = 1; parts <= 3; parts++) {
        int packed = 0;
        const int shared = shared_rounds(r18, 1, parts, &packed);
        printf("session_team: resnet18 batch 1 on %d parts: %d convs share their Winograd input "
               "(%d on packed U)\n",
               parts, shared, packed);
        /* 28x28: 3 convs, 128 channels; 14x14: 3, 256; 7x7: 3, 512 */
        ck_assert_int_eq(shared, parts == 1 ? 0 : 9);
        ck_assert_int_eq(packed, parts > 1 && cnn_gemm_packed_vectorised() ? 9 : 0);
        for (int n = 1; n <= 3; n += 2)
            ck_assert_int_eq(shared_rounds(late, n, parts, &packed), 0);
    }
    cnn_model_destroy(r18);
    cnn_model_destroy(late);
}
END_TEST

START_TEST(test_team_forward_makes_no_allocation)
{
    struct cnn_model *m = compiled(test_net_dag(4));
    const int N = 3;
    struct cnn_err err = {0};
    struct cnn_session *s = cnn_session_create_parts(m, N, 2, &err);
    struct cnn_workers *team = cnn_workers_create(2, &err);
    ck_assert_msg(s && team, "%s", err.msg);
    float *x = cnn_session_input(s);
    test_fill(x, N * image_floats(m), 1);
    const float *out;
    ck_assert_int_eq(cnn_session_forward_team(s, m, team, x, N, &out, &err), 0);
    struct cnn_session *lender = cnn_session_create(m, N, &err);
    ck_assert_msg(lender != NULL, "%s", err.msg);
    ck_assert_int_eq(cnn_session_forward_lent(s, m, team, &lender, x, N, &out, &err), 0);
    int failures = 0;
    long before = alloc_counter_calls();
    for (int n = 1; n <= N; n++) {
        failures += cnn_session_forward_team(s, m, team, x, n, &out, &err) != 0;
        failures += cnn_session_forward_lent(s, m, team, &lender, x, n, &out, &err) != 0;
    }
    long after = alloc_counter_calls();
    ck_assert_int_eq(failures, 0);
    ck_assert_msg(after == before, "forward allocated %ld times", after - before);
    cnn_workers_destroy(team);
    cnn_session_destroy(lender);
    cnn_session_destroy(s);
    cnn_model_destroy(m);
}
END_TEST

Suite *session_team_suite(void)
{
    Suite *s = suite_create("session_team");
    TCase *tc = tcase_create("team");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_team_matches_unsplit_and_reference, 0, 2 * N_NETS);
    tcase_add_test(tc, test_team_resnet18_matches_unsplit);
    tcase_add_test(tc, test_winograd_shares_input_when_large);
    tcase_add_test(tc, test_lent_bad_lenders_rejected);
    tcase_add_test(tc, test_team_larger_than_parts_rejected);
    if (alloc_counter_calls) /* only in builds without sanitizers */
        tcase_add_test(tc, test_team_forward_makes_no_allocation);
    suite_add_tcase(s, tc);
    return s;
}
