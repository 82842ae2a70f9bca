/* Suite gemm_small: the small-GEMM kernels (AVX2 and plain C) and cnn_gemm against the naive
 * cnn_gemm_ref over a grid of shapes, transposes, padded leading dims, alpha/beta and NaN in C
 * under beta 0; and, through the test binary's cblas_sgemm (blas_spy.c), that no product
 * OpenBLAS 0.3.21's SkylakeX kernels would run through their small-matrix path reaches it. */
#define _GNU_SOURCE /* RTLD_DEFAULT */
#include "avx512.h"
#include "blas_spy.h"
#include "gemm.h"
#include "gemm_small.h"
#include "test_util.h"

#include <check.h>
#include <dlfcn.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

typedef void (*gemm_fn)(int, int, int, int, int, float, const float *, int, const float *, int,
                        float, float *, int);

static const struct impl {
    const char *name;
    gemm_fn fn;
} IMPLS[] = {
    {"cnn_gemm_small", cnn_gemm_small},
    {"avx2", cnn_gemm_small_avx2},
    {"portable", cnn_gemm_small_portable},
    {"cnn_gemm", cnn_gemm},
};
#define N_IMPLS ((int)(sizeof IMPLS / sizeof IMPLS[0]))

/* Runs fn on one case and returns the number of elements of C outside the error bound of
 * float accumulation (K + 2 roundings of the sum of |terms|) from cnn_gemm_ref, plus the
 * padding columns of C that changed.  beta == 0 starts C as NaN: it must not be read. */
static long small_case(gemm_fn fn, int ta, int tb, int M, int N, int K, int pad, float alpha,
                       float beta)
{
    int a_rows = ta ? K : M, a_cols = ta ? M : K;
    int b_rows = tb ? N : K, b_cols = tb ? K : N;
    int lda = a_cols + pad, ldb = b_cols + pad, ldc = N + pad;
    size_t c_n = (size_t)M * ldc;
    float *A = rand_buf((size_t)a_rows * lda, 1.0f), *B = rand_buf((size_t)b_rows * ldb, 1.0f);
    float *C0 = rand_buf(c_n, 1.0f);
    for (int i = 0; beta == 0.0f && i < M; i++)
        for (int j = 0; j < N; j++)
            C0[(size_t)i * ldc + j] = NAN;
    float *got = copy_buf(C0, c_n), *want = copy_buf(C0, c_n);
    fn(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, got, ldc);
    cnn_gemm_ref(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, want, ldc);
    long bad = 0;
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < N; j++) {
            double mag = 0.0;
            for (int k = 0; k < K; k++) {
                float a = ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                float b = tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                mag += fabs((double)a * b);
            }
            double c0 = beta == 0.0f ? 0.0 : fabs((double)beta * C0[(size_t)i * ldc + j]);
            double tol = (K + 2) * 6e-8 * (fabs(alpha) * mag + c0) + 1e-7;
            size_t at = (size_t)i * ldc + j;
            bad += !(fabs((double)got[at] - want[at]) <= tol); /* NaN counts as bad */
        }
        for (int j = N; j < ldc; j++)
            bad += got[(size_t)i * ldc + j] != C0[(size_t)i * ldc + j];
    }
    free(A);
    free(B);
    free(C0);
    free(got);
    free(want);
    return bad;
}

/* Every impl over a grid of M x N x K (AVX2 tile edges 6 x 16, vector width 8, the 1-4
 * column dot path; AVX-512 tile edges 8 x 48, vector width 16, K block 256), for one
 * transpose combination per loop index; pads and alpha/beta vary. */
START_TEST(test_small_kernels_match_reference_over_shape_grid)
{
    static const int Ms[] = {1, 2, 3, 5, 6, 7, 8, 9, 12, 13, 17};
    static const int Ns[] = {1, 2, 3, 4, 5, 8, 9, 15, 16, 17, 33, 47, 48, 49, 97};
    static const int Ks[] = {1, 2, 7, 8, 9, 31, 33, 130, 257};
    static const float alphas[] = {1.0f, -0.5f, 2.0f}, betas[] = {0.0f, 1.0f, -0.75f};
    const int ta = _i & 1, tb = _i >> 1 & 1;
    lcg_state = 4242u + (unsigned)_i;
    long cases = 0, bad_cases = 0;
    for (int f = 0; f < N_IMPLS; f++)
        for (size_t mi = 0; mi < sizeof Ms / sizeof Ms[0]; mi++)
            for (size_t ni = 0; ni < sizeof Ns / sizeof Ns[0]; ni++)
                for (size_t ki = 0; ki < sizeof Ks / sizeof Ks[0]; ki++, cases++) {
                    int pad = (int)(cases % 3 == 0 ? 0 : cases % 5);
                    float alpha = alphas[cases % 3], beta = betas[cases / 3 % 3];
                    long bad =
                        small_case(IMPLS[f].fn, ta, tb, Ms[mi], Ns[ni], Ks[ki], pad, alpha, beta);
                    if (bad && bad_cases++ < 5)
                        printf("gemm_small: %s ta=%d tb=%d %dx%dx%d pad=%d alpha=%g beta=%g: "
                               "%ld bad elements\n",
                               IMPLS[f].name, ta, tb, Ms[mi], Ns[ni], Ks[ki], pad, alpha, beta,
                               bad);
                }
    printf("gemm_small ta=%d tb=%d: %ld cases (%d impls, AVX2 %s, AVX-512 tiles %s), %ld off the "
           "reference\n",
           ta, tb, cases, N_IMPLS, cnn_gemm_small_vectorised() ? "yes" : "no",
           cnn_cpu_avx512() ? "yes" : "no", bad_cases);
    ck_assert_int_eq(bad_cases, 0);
}
END_TEST

/* K longer than every K block (tiles 256, dots 1024, plain C 128 and 4096), so that later
 * blocks add to what the first wrote with beta; the last shapes are as wide as the narrow
 * products cnn_gemm sends here at any size (CNN_GEMM_SMALL_MAX_N) and wider, with full
 * panels read in place beside a packed ragged one, for several tile rows. */
START_TEST(test_small_kernels_block_long_k)
{
    static const int shapes[][3] = {{5, 17, 600},  {7, 3, 2100}, {9, 1, 4500},  {2, 4, 5000},
                                    {13, 9, 300},  {1, 2, 9000}, {3, 33, 1000}, {8, 2, 1030},
                                    {37, 32, 520}, {20, 49, 600}};
    lcg_state = 31337u + (unsigned)_i;
    const int ta = _i & 1, tb = _i >> 1 & 1;
    long bad_cases = 0;
    for (int f = 0; f < N_IMPLS; f++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            float beta = s % 2 ? 0.0f : 0.5f;
            long bad = small_case(IMPLS[f].fn, ta, tb, shapes[s][0], shapes[s][1], shapes[s][2],
                                  (int)s % 3, 1.0f, beta);
            if (bad) {
                bad_cases++;
                printf("gemm_small: %s ta=%d tb=%d %dx%dx%d: %ld bad elements\n", IMPLS[f].name, ta,
                       tb, shapes[s][0], shapes[s][1], shapes[s][2], bad);
            }
        }
    ck_assert_int_eq(bad_cases, 0);
}
END_TEST

/* The rule read from OpenBLAS 0.3.21's source, on the shapes the delivery issue traced with
 * gdb on a SkylakeX machine: a conv GEMM M=4 N=35 K=36 and a dense layer at batch 1 went
 * through sgemm_small_kernel_b0_nn_SKYLAKEX and malloc'd. */
START_TEST(test_openblas_small_path_rule_matches_traced_shapes)
{
    ck_assert(blas_spy_rowmajor_allocates(0, 0, 4, 35, 36));
    ck_assert(blas_spy_rowmajor_allocates(0, 0, 120, 1, 400)); /* LeNet-5's first dense */
    ck_assert(blas_spy_rowmajor_permit(0, 0, 100, 100, 100));  /* the bound is inclusive */
    ck_assert(!blas_spy_rowmajor_permit(0, 0, 100, 100, 101));
    ck_assert(!blas_spy_rowmajor_allocates(0, 0, 4, 35, 31)); /* k < 32: masked kernel */
    ck_assert(!blas_spy_rowmajor_allocates(0, 0, 4, 48, 36)); /* N multiple of 16 */
    ck_assert(!blas_spy_rowmajor_allocates(0, 0, 4, 45, 36)); /* 13 rows left: masked */
    ck_assert(blas_spy_rowmajor_permit(1, 0, 8, 8, 8)); /* OpenBLAS's NT: no extra condition */
    ck_assert(!blas_spy_rowmajor_allocates(1, 0, 8, 8, 40));
    /* row-major TransB is OpenBLAS's transa: TN needs m * n <= 1200 and k >= 32 */
    ck_assert(blas_spy_rowmajor_permit(0, 1, 30, 40, 32));
    ck_assert(!blas_spy_rowmajor_permit(0, 1, 30, 41, 32));
    ck_assert(!blas_spy_rowmajor_permit(0, 1, 30, 40, 31));
    ck_assert(blas_spy_rowmajor_permit(1, 1, 50, 50, 4)); /* TT needs k >= 4 */
    ck_assert(!blas_spy_rowmajor_permit(1, 1, 50, 50, 3));
}
END_TEST

/* The rule as read from the source against the permit function of the OpenBLAS this binary
 * runs (Debian's DYNAMIC_ARCH build exports every core's): the SkylakeX and CooperLake ones
 * agree with it on a grid of 108,000 shapes, Haswell's and Zen's refuse every shape.  A
 * library without these symbols, or with another rule, fails here: blas_spy.c is then out
 * of date.  Registered only on CPUs with AVX (the SkylakeX build of it uses VEX code). */
START_TEST(test_openblas_small_path_rule_matches_the_library)
{
    typedef int (*permit_fn)(int, int, long, long, long, float, float);
    static const char *const names[] = {
        "sgemm_small_matrix_permit_SKYLAKEX", "sgemm_small_matrix_permit_COOPERLAKE",
        "sgemm_small_matrix_permit_HASWELL", "sgemm_small_matrix_permit_ZEN"};
    permit_fn fn[4];
    for (int i = 0; i < 4; i++) {
        fn[i] = (permit_fn)(uintptr_t)dlsym(RTLD_DEFAULT, names[i]);
        ck_assert_msg(fn[i] != NULL, "libopenblas has no %s", names[i]);
    }
    static const long v[] = {1,   2,   3,   4,   5,   7,   8,   9,    15,   16,
                             17,  24,  31,  32,  33,  40,  63,  64,   65,   99,
                             100, 101, 127, 128, 129, 200, 333, 1000, 1201, 5000};
    const int nv = (int)(sizeof v / sizeof v[0]);
    long shapes = 0, differ = 0, permitted = 0, other = 0;
    for (int t = 0; t < 4; t++)
        for (int a = 0; a < nv; a++)
            for (int b = 0; b < nv; b++)
                for (int c = 0; c < nv; c++, shapes++) {
                    int ta = t & 1, tb = t >> 1,
                        want = blas_spy_small_permit(ta, tb, v[a], v[b], v[c]);
                    int sk = fn[0](ta, tb, v[a], v[b], v[c], 1.0f, 0.0f) != 0;
                    int cl = fn[1](ta, tb, v[a], v[b], v[c], 1.0f, 0.5f) != 0;
                    differ += sk != want || cl != want;
                    permitted += sk;
                    other += fn[2](ta, tb, v[a], v[b], v[c], 1.0f, 0.0f) != 0;
                    other += fn[3](ta, tb, v[a], v[b], v[c], 1.0f, 0.0f) != 0;
                }
    printf("gemm_small: OpenBLAS's SkylakeX permit on %ld shapes: %ld permitted, %ld differ from "
           "blas_spy's rule; Haswell/Zen permit %ld\n",
           shapes, permitted, differ, other);
    ck_assert_int_eq(differ, 0);
    ck_assert_int_gt(permitted, 0);
    ck_assert_int_eq(other, 0);
}
END_TEST

/* cnn_gemm keeps every product the permit would let through away from OpenBLAS, on every
 * core type, and hands larger ones to it (so the spy is live) unless they are narrow. */
START_TEST(test_small_products_never_reach_openblas)
{
    static const int shapes[][3] = {{4, 35, 36},    {120, 1, 400},  {100, 100, 100},
                                    {6, 784, 25},   {16, 100, 150}, {1000, 1, 512},
                                    {64, 196, 64},  {30, 40, 32},   {100, 100, 101},
                                    {64, 3136, 27}, {512, 8, 512},  {16, 800, 150}};
    lcg_state = 7u;
    long to_blas = 0;
    for (int t = 0; t < 4; t++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            int ta = t & 1, tb = t >> 1, M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
            float *A = rand_buf((size_t)M * K, 1.0f), *B = rand_buf((size_t)K * N, 1.0f);
            float *C = zero_buf((size_t)M * N);
            long calls = blas_spy_calls(), small = blas_spy_small_calls();
            cnn_gemm(ta, tb, M, N, K, 1.0f, A, ta ? M : K, B, tb ? K : N, 0.0f, C, N);
            long handed = blas_spy_calls() - calls;
            ck_assert_int_eq(blas_spy_small_calls() - small, 0);
            const int narrow = N <= CNN_GEMM_SMALL_MAX_N && !ta && !tb;
            ck_assert_int_eq(handed, (double)M * N * K > 1e6 && !narrow ? 1 : 0);
            to_blas += handed;
            free(A);
            free(B);
            free(C);
        }
    printf("gemm_small: %ld of %d products went to OpenBLAS, none its small path\n", to_blas,
           4 * (int)(sizeof shapes / sizeof shapes[0]));
    ck_assert_int_gt(to_blas, 0);
}
END_TEST

Suite *gemm_small_suite(void)
{
    Suite *s = suite_create("gemm_small");
    TCase *tc = tcase_create("gemm_small");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_small_kernels_match_reference_over_shape_grid, 0, 4);
    tcase_add_loop_test(tc, test_small_kernels_block_long_k, 0, 4);
    tcase_add_test(tc, test_openblas_small_path_rule_matches_traced_shapes);
    tcase_add_test(tc, test_small_products_never_reach_openblas);
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx"))
        tcase_add_test(tc, test_openblas_small_path_rule_matches_the_library);
    suite_add_tcase(s, tc);
    return s;
}
