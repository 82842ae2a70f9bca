/* Suite model_ops: the compiled plan described op by op (model_ops.h, what `cnn bench
 * --profile` prints) checked against the layer table (cnn_model_layer_info, `cnn info`):
 * every layer covered once, FLOPs summing to the layers', fused chains named; and the
 * session's per-op timing (cnn_session_profile) leaving the outputs unchanged. */
#include "arch.h"
#include "gemm_packed.h"
#include "gemm_small.h"
#include "model_ops.h"
#include "session.h"
#include "test_nets.h"
#include "workers.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct cnn_model *net(int i)
{
    if (i == 0)
        return compiled(test_net_dag(5));
    if (i == 1)
        return compiled(test_net_wide(6));
    struct cnn_model *m = NULL;
    struct cnn_err err = {0};
    ck_assert_msg(cnn_arch_build("resnet18", 10, &m, &err) == 0, "%s", err.msg);
    cnn_model_init_random(m, 3);
    return compiled(m);
}

/* Each layer but the input (and layers aliasing it) in exactly one op; op FLOPs = the sum of
 * its layers' cnn_model_layer_info FLOPs and sum to cnn_model_flops; op kind = its first
 * layer's, output shape = its last layer's, layers in increasing order. */
START_TEST(test_ops_cover_each_layer_once)
{
    struct cnn_model *m = net(_i);
    const int L = cnn_model_layer_count(m), K = cnn_model_op_count(m);
    ck_assert_int_gt(K, 0);
    int *owner = malloc((size_t)L * sizeof(int)), layers[64];
    for (int i = 0; i < L; i++)
        owner[i] = -1;
    double total = 0;
    for (int k = 0; k < K; k++) {
        struct cnn_op_info oi;
        cnn_model_op_info(m, k, &oi);
        int n = cnn_model_op_layers(m, k, layers, 64);
        ck_assert_int_ge(n, 1);
        ck_assert_int_le(n, 64);
        ck_assert_int_eq(layers[0], oi.layer);
        double flops = 0;
        for (int j = 0; j < n; j++) {
            ck_assert_msg(owner[layers[j]] < 0, "layer %d in ops %d and %d", layers[j],
                          owner[layers[j]], k);
            owner[layers[j]] = k;
            if (j)
                ck_assert_int_gt(layers[j], layers[j - 1]);
            struct cnn_layer_info li;
            cnn_model_layer_info(m, layers[j], &li);
            flops += li.flops;
        }
        struct cnn_layer_info first, last;
        cnn_model_layer_info(m, oi.layer, &first);
        cnn_model_layer_info(m, oi.out, &last);
        ck_assert_int_eq(oi.kind, first.kind);
        ck_assert_int_eq(oi.c, last.c);
        ck_assert_int_eq(oi.h, last.h);
        ck_assert_int_eq(oi.w, last.w);
        ck_assert_msg(fabs(oi.flops - flops) <= 1e-9 * flops, "op %d: %g vs %g", k, oi.flops,
                      flops);
        ck_assert_ptr_nonnull(oi.variant);
        total += oi.flops;
    }
    int uncovered = 0;
    for (int i = 1; i < L; i++)
        uncovered += owner[i] < 0;
    ck_assert_int_eq(owner[0], -1);
    ck_assert_int_eq(uncovered, 0);
    ck_assert_msg(fabs(total - cnn_model_flops(m)) <= 1e-9 * total, "%g vs %g", total,
                  cnn_model_flops(m));
    free(owner);
    cnn_model_destroy(m);
}
END_TEST

static const char *layer_name(const struct cnn_model *m, int i)
{
    struct cnn_layer_info li;
    cnn_model_layer_info(m, i, &li);
    return li.name;
}

/* ResNet-18's plan by name: the stem conv with its BN, relu and max pool (direct, stride 2), a 3x3
 * conv on Winograd F(4x4) (F(2x2) with tiles of 2 at most, im2col GEMM with none), a 1x1 stride-2
 * downsample, a residual add with its relu, the classifier. */
START_TEST(test_resnet18_ops_named)
{
    struct cnn_model *m = net(2);
    const int K = cnn_model_op_count(m);
    int layers[8], seen = 0;
    for (int k = 0; k < K; k++) {
        struct cnn_op_info oi;
        cnn_model_op_info(m, k, &oi);
        int n = cnn_model_op_layers(m, k, layers, 8);
        const char *first = layer_name(m, layers[0]);
        if (strcmp(first, "conv1") == 0) { /* the max pool fuses into the direct conv */
            const int direct = cnn_gemm_small_vectorised();
            ck_assert_int_eq(n, direct ? 4 : 3);
            ck_assert_str_eq(layer_name(m, layers[1]), "bn1");
            ck_assert_str_eq(layer_name(m, layers[2]), "relu");
            if (direct)
                ck_assert_str_eq(layer_name(m, layers[3]), "maxpool");
            ck_assert_str_eq(oi.variant, direct ? "direct+maxpool" : "im2col GEMM");
            ck_assert_int_eq(oi.c, 64);
            ck_assert_int_eq(oi.h, direct ? 56 : 112);
            seen |= 1;
        } else if (strcmp(first, "layer1.0.conv1") == 0) {
            ck_assert_str_eq(oi.variant, "winograd F4");
            seen |= 2;
        } else if (strcmp(first, "layer2.0.downsample.0") == 0) {
            /* K = 64: the packed GEMM's wide driver (AVX2) */
            ck_assert_str_eq(oi.variant, cnn_gemm_packed_vectorised() ? "strided 1x1 packed"
                                                                      : "strided 1x1 GEMM");
            ck_assert_int_eq(n, 4); /* the block's add + relu fused: conv2 runs before it */
            ck_assert_str_eq(layer_name(m, layers[2]), "layer2.0.add");
            ck_assert_str_eq(layer_name(m, layers[3]), "layer2.0.relu_out");
            seen |= 4;
        } else if (strcmp(first, "fc") == 0) {
            ck_assert_str_eq(oi.variant, "GEMM");
            ck_assert_int_eq(oi.kind, CNN_LAYER_DENSE);
            seen |= 8;
        }
    }
    ck_assert_int_eq(seen, 15);
    cnn_model_destroy(m);
}
END_TEST

/* Profiled passes (alone and over a team, wall and CPU clocks) give bit-identical outputs to
 * unprofiled ones and store one time >= 0 per op (the values are times: not checked further). */
START_TEST(test_profile_keeps_outputs)
{
    struct cnn_model *m = net(_i);
    const int K = cnn_model_op_count(m), N = 2, C = cnn_model_num_classes(m);
    const struct cnn_preproc *pp = cnn_model_preproc(m);
    const size_t img = (size_t)pp->c * pp->h * pp->w;
    float *x = malloc(N * img * sizeof(float)), *plain = malloc((size_t)N * C * sizeof(float));
    double *ms = malloc((size_t)K * sizeof(double));
    test_fill(x, N * img, 17);
    struct cnn_err err = {0};
    struct cnn_session *s = cnn_session_create_parts(m, N, 2, &err);
    struct cnn_workers *team = cnn_workers_create(2, &err);
    ck_assert_msg(s && team, "%s", err.msg);
    const float *out;
    for (int t = 0; t < 2; t++) {
        const int cpu = _i == 1 ? t : !t; /* each net: team with one clock, alone with the other */
        ck_assert_int_eq(cnn_session_forward_team(s, m, t ? team : NULL, x, N, &out, &err), 0);
        memcpy(plain, out, (size_t)N * C * sizeof(float));
        for (int k = 0; k < K; k++)
            ms[k] = -1;
        cnn_session_profile(s, ms, cpu);
        ck_assert_int_eq(cnn_session_forward_team(s, m, t ? team : NULL, x, N, &out, &err), 0);
        cnn_session_profile(s, NULL, 0);
        ck_assert_mem_eq(out, plain, (size_t)N * C * sizeof(float));
        for (int k = 0; k < K; k++)
            ck_assert_msg(ms[k] >= 0, "op %d not timed", k);
        ms[0] = -1; /* off again: nothing written */
        ck_assert_int_eq(cnn_session_forward_team(s, m, t ? team : NULL, x, N, &out, &err), 0);
        ck_assert(ms[0] == -1);
    }
    cnn_workers_destroy(team);
    cnn_session_destroy(s);
    free(x);
    free(plain);
    free(ms);
    cnn_model_destroy(m);
}
END_TEST

Suite *model_ops_suite(void)
{
    Suite *s = suite_create("model_ops");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_ops_cover_each_layer_once, 0, 3);
    tcase_add_test(tc, test_resnet18_ops_named);
    tcase_add_loop_test(tc, test_profile_keeps_outputs, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}
