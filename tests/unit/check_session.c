/* Session suite: the compiled, batched forward pass against the naive reference, batch
 * independence, concurrent sessions on one shared model, no allocation while running, and no
 * GEMM of the shipped small and mid-size nets taking OpenBLAS's allocating small path. */
#include "alloc_counter.h"
#include "arch.h"
#include "big_block.h"
#include "blas_spy.h"
#include "gemm.h"
#include "gemm_packed.h"
#include "model.h"
#include "ref_net.h"
#include "session.h"
#include "test_nets.h"
#include "workers.h"

#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

static size_t image_floats(const struct cnn_model *m)
{
    const struct cnn_preproc *pp = cnn_model_preproc(m);
    return (size_t)pp->c * pp->h * pp->w;
}

START_TEST(test_compiled_dag_matches_naive_reference)
{
    struct cnn_model *m = test_net_dag(7);
    /* reference before compile: it reads the unfolded weights, which compile keeps */
    compiled(m);
    int N = 3, K = cnn_model_num_classes(m);
    size_t img = image_floats(m);
    float *x = malloc(N * img * sizeof(float)), *ref = malloc(K * sizeof(float));
    test_fill(x, N * img, 99);
    struct cnn_err err = {0};
    struct cnn_session *s = cnn_session_create(m, N, &err);
    ck_assert_msg(s != NULL, "%s", err.msg);
    const float *out;
    ck_assert_int_eq(cnn_session_forward(s, m, x, N, &out, &err), 0);
    double worst = 0;
    for (int n = 0; n < N; n++) {
        ck_assert_int_eq(ref_net_forward(m, x + n * img, ref), 0);
        for (int k = 0; k < K; k++)
            worst = fmax(worst, fabs((double)out[n * K + k] - ref[k]));
    }
    printf("session: compiled DAG vs naive reference, max abs err %.3g\n", worst);
    ck_assert_msg(worst <= 1e-4, "max abs err %g", worst);
    cnn_session_destroy(s);
    free(x);
    free(ref);
    cnn_model_destroy(m);
}
END_TEST

/* Pre-softmax logits would be a sharper test of batch independence: cut the softmax. */
START_TEST(test_batch_equals_single_passes)
{
    struct cnn_model *m = compiled(test_net_dag(11));
    int N = 6, K = cnn_model_num_classes(m);
    size_t img = image_floats(m);
    float *x = malloc(N * img * sizeof(float)), *batch = malloc(N * K * sizeof(float));
    test_fill(x, N * img, 5);
    struct cnn_err err = {0};
    struct cnn_session *s = cnn_session_create(m, N, &err);
    const float *out;
    ck_assert_int_eq(cnn_session_forward(s, m, x, N, &out, &err), 0);
    memcpy(batch, out, N * K * sizeof(float));
    double worst = 0;
    for (int n = 0; n < N; n++) {
        ck_assert_int_eq(cnn_session_forward(s, m, x + n * img, 1, &out, &err), 0);
        for (int k = 0; k < K; k++) {
            double a = batch[n * K + k], b = out[k];
            double rel = fabs(a - b) / fmax(fabs(b), 1e-6);
            worst = fmax(worst, rel);
        }
    }
    printf("session: batch of %d vs single passes, max rel diff %.3g\n", N, worst);
    ck_assert_msg(worst <= 1e-5, "max rel diff %g", worst);
    cnn_session_destroy(s);
    free(x);
    free(batch);
    cnn_model_destroy(m);
}
END_TEST

/* A map of 64x96x96 floats (2.25 MB per image) is past the session's per-pass budget, so
 * a batch runs one image per pass (session.c, pass_images): every image of a batch of
 * 3, alone and on a team of 2, against the naive reference, and the session's memory held
 * to one pass's values. */
static struct cnn_model *net_big_maps(uint64_t seed)
{
    struct cnn_preproc pp = {.c = 1, .h = 96, .w = 96, .mean = {0, 0, 0}, .std = {1, 1, 1}};
    struct cnn_err err = {0};
    struct cnn_model *m = cnn_model_create(&pp, &err);
    ck_assert_msg(m != NULL, "%s", err.msg);
    struct cnn_layer_desc d = {.kind = CNN_LAYER_CONV2D, .name = "wide"};
    d.p.conv = (struct cnn_conv2d){.oc = 64, .kh = 3, .kw = 3, .sh = 1, .sw = 1, .dh = 1,
                                   .dw = 1, .pad_t = 1, .pad_l = 1, .pad_b = 1, .pad_r = 1,
                                   .groups = 1, .has_bias = 1};
    add(m, d);
    d.name = "wino"; /* 64 -> 16 at 96x96, reading the 64x96x96 value */
    d.p.conv.oc = 16;
    add(m, d);
    d = (struct cnn_layer_desc){.kind = CNN_LAYER_MAXPOOL, .name = "pool"};
    d.p.pool = (struct cnn_pool2d){.kh = 4, .kw = 4, .sh = 4, .sw = 4};
    add(m, d);
    add(m, (struct cnn_layer_desc){.kind = CNN_LAYER_FLATTEN, .name = "flat"});
    d = (struct cnn_layer_desc){.kind = CNN_LAYER_DENSE, .name = "fc"};
    d.p.dense = (struct cnn_dense){.out = 5, .has_bias = 1};
    add(m, d);
    ck_assert_int_eq(cnn_model_alloc_params(m, &err), 0);
    test_randomize(m, seed);
    return m;
}

START_TEST(test_big_maps_run_one_image_per_pass)
{
    struct cnn_model *m = compiled(net_big_maps(21));
    int N = 3, K = cnn_model_num_classes(m);
    size_t img = image_floats(m);
    float *x = malloc(N * img * sizeof(float)), *ref = malloc(K * sizeof(float));
    test_fill(x, N * img, 8);
    struct cnn_err err = {0};
    struct cnn_session *s = cnn_session_create(m, N, &err);
    ck_assert_msg(s != NULL, "%s", err.msg);
    /* the same session alone, then split over a team of 2 (each pass's ops in parts) */
    struct cnn_session *st = cnn_session_create_parts(m, N, 2, &err);
    ck_assert_msg(st != NULL, "%s", err.msg);
    struct cnn_workers *team = cnn_workers_create(2, &err);
    ck_assert_msg(team != NULL, "%s", err.msg);
    const float *out, *out_team;
    ck_assert_int_eq(cnn_session_forward(s, m, x, N, &out, &err), 0);
    ck_assert_int_eq(cnn_session_forward_team(st, m, team, x, N, &out_team, &err), 0);
    double worst = 0, scale = 0;
    for (int n = 0; n < N; n++) {
        ck_assert_int_eq(ref_net_forward(m, x + n * img, ref), 0);
        for (int k = 0; k < K; k++) {
            worst = fmax(worst, fabs((double)out[n * K + k] - ref[k]));
            worst = fmax(worst, fabs((double)out_team[n * K + k] - ref[k]));
            scale = fmax(scale, fabs(ref[k]));
        }
    }
    cnn_workers_destroy(team);
    cnn_session_destroy(st);
    const size_t one = cnn_session_plan(m, 1), three = cnn_session_plan(m, N);
    printf("session: batch of %d over 2.25 MB maps, alone and on a team of 2, vs naive "
           "reference, max abs err %.3g "
           "(largest logit %.3g); plan %zu bytes for batch 1, %zu for batch %d\n",
           N, worst, scale, one, three, N);
    ck_assert_msg(worst <= 1e-4 * fmax(scale, 1), "max abs err %g", worst);
    /* the values of one pass: only the input staging and the outputs grow with the batch */
    ck_assert_uint_lt(three, one + (size_t)(N - 1) * (img + (size_t)K + 32) * sizeof(float));
    cnn_session_destroy(s);
    free(x);
    free(ref);
    cnn_model_destroy(m);
}
END_TEST

struct worker_arg {
    const struct cnn_model *m;
    const float *x;
    const float *expect;
    int n, iters, mismatches, failed;
};

static void *worker(void *p)
{
    struct worker_arg *a = p;
    struct cnn_err err = {0};
    struct cnn_session *s = cnn_session_create(a->m, a->n, &err);
    if (!s) {
        a->failed = 1;
        return NULL;
    }
    int K = cnn_model_num_classes(a->m);
    for (int it = 0; it < a->iters; it++) {
        const float *out;
        if (cnn_session_forward(s, a->m, a->x, a->n, &out, &err) != 0) {
            a->failed = 1;
            break;
        }
        if (memcmp(out, a->expect, (size_t)a->n * K * sizeof(float)) != 0)
            a->mismatches++;
    }
    cnn_session_destroy(s);
    return NULL;
}

START_TEST(test_threads_share_one_model)
{
    struct cnn_model *m = compiled(test_net_dag(3));
    const struct cnn_model *shared = m;
    int N = 4, K = cnn_model_num_classes(m);
    size_t img = image_floats(m);
    float *x = malloc(N * img * sizeof(float)), *expect = malloc(N * K * sizeof(float));
    test_fill(x, N * img, 8);
    struct cnn_err err = {0};
    struct cnn_session *s = cnn_session_create(shared, N, &err);
    const float *out;
    ck_assert_int_eq(cnn_session_forward(s, shared, x, N, &out, &err), 0);
    memcpy(expect, out, N * K * sizeof(float));
    cnn_session_destroy(s);
    enum { T = 4 };
    pthread_t th[T];
    struct worker_arg args[T];
    for (int t = 0; t < T; t++) {
        args[t] = (struct worker_arg){.m = shared, .x = x, .expect = expect, .n = N, .iters = 25};
        ck_assert_int_eq(pthread_create(&th[t], NULL, worker, &args[t]), 0);
    }
    for (int t = 0; t < T; t++) {
        pthread_join(th[t], NULL);
        ck_assert_int_eq(args[t].failed, 0);
        ck_assert_int_eq(args[t].mismatches, 0);
    }
    cnn_model_destroy(m);
    free(x);
    free(expect);
}
END_TEST

START_TEST(test_forward_makes_no_allocation)
{
    struct cnn_model *m = compiled(test_net_dag(4));
    int N = 5;
    size_t img = image_floats(m);
    struct cnn_err err = {0};
    struct cnn_session *s = cnn_session_create(m, N, &err);
    float *x = cnn_session_input(s);
    test_fill(x, N * img, 1);
    const float *out;
    ck_assert_int_eq(cnn_session_forward(s, m, x, N, &out, &err), 0); /* warm BLAS up */
    int failures = 0;
    long before = alloc_counter_calls(); /* no check macros inside: they may allocate */
    for (int n = 1; n <= N; n++)
        failures += cnn_session_forward(s, m, x, n, &out, &err) != 0;
    long after = alloc_counter_calls();
    ck_assert_int_eq(failures, 0);
    ck_assert_msg(before > 0, "the counter does not see allocations");
    ck_assert_msg(after == before, "forward allocated %ld times", after - before);
    cnn_session_destroy(s);
    cnn_model_destroy(m);
}
END_TEST

/* The GEMMs LeNet-5, the CIFAR net and ResNet-18 hand to OpenBLAS at many batch sizes: none
 * may be one OpenBLAS 0.3.21's SkylakeX kernels run through their small-matrix path (which
 * mallocs, blas_spy.c), whatever core this machine runs, and (outside sanitizer builds) the
 * passes allocate nothing here.  ResNet-18 runs a spread of batches, not all 32: its shapes
 * change with the batch through conv chunking and Winograd tiles. */
START_TEST(test_forward_hands_openblas_no_small_kernel_shape)
{
    static const struct {
        const char *arch;
        int batches[8], n_batches, max_n;
        /* reaches OpenBLAS at all: 0 never (LeNet-5: direct convs and small GEMMs only), 2
         * only without the AVX-512 packed kernels (which take all of ResNet-18's larger
         * convs; its Winograd products per chunk stay small), -1 not asserted (the CIFAR
         * net: its Winograd chunks of 64 tiles, core/layer.h, make products that cnn_gemm
         * keeps on its small kernel where that has AVX2 or AVX-512) */
        int blas;
    } nets[] = {
        {"lenet5", {0}, 0, 32, 0},
        {"cifar_cnn", {0}, 0, 32, -1},
        {"resnet18", {1, 2, 3, 4, 7, 8, 16, 32}, 8, 32, 2},
    };
    struct cnn_err err = {0};
    struct cnn_model *m = NULL;
    ck_assert_msg(cnn_arch_build(nets[_i].arch, 0, &m, &err) == 0, "%s", err.msg);
    cnn_model_init_random(m, 1);
    compiled(m);
    const int max_n = nets[_i].max_n;
    struct cnn_session *s = cnn_session_create(m, max_n, &err);
    ck_assert_msg(s != NULL, "%s", err.msg);
    float *x = cnn_session_input(s);
    test_fill(x, (size_t)max_n * image_floats(m), 3);
    const float *out;
    ck_assert_int_eq(cnn_session_forward(s, m, x, 1, &out, &err), 0); /* warm BLAS up */
    const int runs = nets[_i].n_batches ? nets[_i].n_batches : max_n;
    long calls = blas_spy_calls(), small = blas_spy_small_calls();
    long allocating = blas_spy_allocating_calls();
    long allocs = alloc_counter_calls ? alloc_counter_calls() : 0;
    int failures = 0;
    for (int r = 0; r < runs; r++) {
        int n = nets[_i].n_batches ? nets[_i].batches[r] : r + 1;
        failures += cnn_session_forward(s, m, x, n, &out, &err) != 0;
    }
    allocs = alloc_counter_calls ? alloc_counter_calls() - allocs : 0;
    calls = blas_spy_calls() - calls;
    small = blas_spy_small_calls() - small;
    allocating = blas_spy_allocating_calls() - allocating;
    char last[96];
    blas_spy_last_small(last, sizeof last);
    printf("session: %s, %d batches up to %d: %ld GEMMs to OpenBLAS, %ld small-path (%ld "
           "allocating, last %s), %ld allocations\n",
           nets[_i].arch, runs, max_n, calls, small, allocating, last, allocs);
    ck_assert_int_eq(failures, 0);
    ck_assert_msg(small == 0, "%ld GEMMs would take OpenBLAS's SkylakeX small path, last %s", small,
                  last);
    ck_assert_int_eq(allocating, 0);
    ck_assert_msg(allocs == 0, "forward allocated %ld times", allocs);
    if (nets[_i].blas == 2 && !cnn_gemm_packed_avx512())
        ck_assert_int_gt(calls, 0); /* the spy saw the larger GEMMs: it is live */
    else if (nets[_i].blas >= 0)
        ck_assert_int_eq(calls, 0);
    /* the spy is live: a GEMM too large for cnn_gemm's small kernel reaches it */
    enum { big = 256 };
    float *a = calloc((size_t)big * big, sizeof(float)),
          *c = calloc((size_t)big * big, sizeof(float));
    ck_assert(a && c);
    calls = blas_spy_calls();
    cnn_gemm(0, 0, big, big, big, 1.0f, a, big, a, big, 0.0f, c, big);
    ck_assert_int_eq(blas_spy_calls() - calls, 1);
    free(a);
    free(c);
    cnn_session_destroy(s);
    cnn_model_destroy(m);
}
END_TEST

START_TEST(test_buffers_are_reused_across_layers)
{
    struct cnn_model *m = compiled(test_net_dag(2));
    size_t sum = 0;
    for (int i = 0; i < cnn_model_layer_count(m); i++) {
        struct cnn_layer_info info;
        cnn_model_layer_info(m, i, &info);
        sum += (size_t)info.c * info.h * info.w * sizeof(float);
    }
    size_t plan = cnn_session_plan(m, 1);
    printf("session: plan %zu bytes for batch 1, sum of all layer outputs %zu\n", plan, sum);
    ck_assert_uint_gt(plan, 0);
    ck_assert_uint_lt(plan, sum);
    ck_assert_uint_lt(cnn_session_plan(m, 1) * 7, cnn_session_plan(m, 8));
    cnn_model_destroy(m);
}
END_TEST

START_TEST(test_bad_batch_and_wrong_model_rejected)
{
    struct cnn_model *m = compiled(test_net_small(1));
    struct cnn_model *other = compiled(test_net_small(2));
    struct cnn_err err = {0};
    struct cnn_session *s = cnn_session_create(m, 2, &err);
    float x[2 * 64] = {0};
    const float *out;
    ck_assert_int_eq(cnn_session_forward(s, m, x, 0, &out, &err), CNN_EINVAL);
    ck_assert_int_eq(cnn_session_forward(s, m, x, 3, &out, &err), CNN_EINVAL);
    ck_assert_int_eq(cnn_session_forward(s, other, x, 1, &out, &err), CNN_EINVAL);
    ck_assert_ptr_null(cnn_session_create(m, 0, &err));
    ck_assert_int_eq(err.code, CNN_EINVAL);
    cnn_session_destroy(s);
    cnn_model_destroy(m);
    cnn_model_destroy(other);
}
END_TEST

/* cnn_big_block(): 64-byte aligned below CNN_BIG_BLOCK_MIN (ASan checks the extent there),
 * a 2 MB boundary from it, every byte writable, and cnn_big_block_free() takes it back: from
 * the minimum, a mapping of whole 2 MB pages that /proc/self/maps shows gone after. */
/* Whether a line of /proc/self/maps covers address p. */
static int mapped_at(const void *p)
{
    FILE *f = fopen("/proc/self/maps", "r");
    ck_assert_ptr_nonnull(f);
    unsigned long lo, hi;
    int found = 0;
    char line[512];
    while (!found && fgets(line, sizeof line, f))
        found = sscanf(line, "%lx-%lx", &lo, &hi) == 2 && (uintptr_t)p >= lo && (uintptr_t)p < hi;
    fclose(f);
    return found;
}

START_TEST(test_big_block_alignment_and_extent)
{
    static const size_t sizes[] = {1, 100, CNN_BIG_BLOCK_MIN - 1, CNN_BIG_BLOCK_MIN,
                                   CNN_BIG_BLOCK_MIN + 12345};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned char *p = cnn_big_block(sizes[i]);
        ck_assert_ptr_nonnull(p);
        const uintptr_t align = sizes[i] >= CNN_BIG_BLOCK_MIN ? (uintptr_t)2 << 20 : 64;
        ck_assert_msg((uintptr_t)p % align == 0, "%zu bytes at %p: not %zu-aligned", sizes[i],
                      (void *)p, (size_t)align);
        memset(p, 0xA5, sizes[i]);
        ck_assert_uint_eq(p[sizes[i] - 1], 0xA5);
        cnn_big_block_free(p, sizes[i]);
        if (sizes[i] >= CNN_BIG_BLOCK_MIN)
            ck_assert_msg(!mapped_at(p), "%zu bytes at %p: still mapped after the free", sizes[i],
                          (void *)p);
    }
}
END_TEST

Suite *session_suite(void)
{
    Suite *s = suite_create("session");
    TCase *tc = tcase_create("forward");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_compiled_dag_matches_naive_reference);
    tcase_add_test(tc, test_batch_equals_single_passes);
    tcase_add_test(tc, test_big_maps_run_one_image_per_pass);
    tcase_add_test(tc, test_threads_share_one_model);
    if (alloc_counter_calls) /* only in builds without sanitizers */
        tcase_add_test(tc, test_forward_makes_no_allocation);
    tcase_add_test(tc, test_buffers_are_reused_across_layers);
    tcase_add_test(tc, test_bad_batch_and_wrong_model_rejected);
    tcase_add_test(tc, test_big_block_alignment_and_extent);
    suite_add_tcase(s, tc);
    TCase *nets = tcase_create("shipped nets");
    tcase_set_timeout(nets, 300);
    tcase_add_loop_test(nets, test_forward_hands_openblas_no_small_kernel_shape, 0, 3);
    suite_add_tcase(s, nets);
    return s;
}
