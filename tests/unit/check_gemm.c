/* Suite gemm: cnn_gemm (OpenBLAS) against the naive cnn_gemm_ref and against a loop
 * written here, for every transpose combination, odd sizes and padded leading dims; im2col
 * against its definition; col2im as the adjoint of im2col; the BLAS thread setting. */
#include "gemm.h"
#include "im2col.h"
#include "layer.h"
#include "test_util.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* One GEMM case: op(A) M x K, op(B) K x N, leading dims padded by `pad` floats. */
static void gemm_case(int ta, int tb, int M, int N, int K, int pad, float alpha, float beta)
{
    int a_rows = ta ? K : M, a_cols = ta ? M : K;
    int b_rows = tb ? N : K, b_cols = tb ? K : N;
    int lda = a_cols + pad, ldb = b_cols + pad, ldc = N + pad;
    float *A = rand_buf((size_t)a_rows * lda, 1.0f);
    float *B = rand_buf((size_t)b_rows * ldb, 1.0f);
    float *C0 = rand_buf((size_t)M * ldc, 1.0f);
    float *C1 = malloc((size_t)M * ldc * sizeof(float));
    float *C2 = malloc((size_t)M * ldc * sizeof(float));
    ck_assert_ptr_nonnull(C1);
    ck_assert_ptr_nonnull(C2);
    for (size_t i = 0; i < (size_t)M * ldc; i++)
        C1[i] = C2[i] = C0[i];

    cnn_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C1, ldc);
    cnn_gemm_ref(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C2, ldc);

    /* Independent check of the reference itself: explicit element formula. */
    double ref_err = 0.0, blas_err = 0.0;
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < N; j++) {
            double s = 0.0;
            for (int k = 0; k < K; k++) {
                double a = ta ? A[k * lda + i] : A[i * lda + k];
                double b = tb ? B[j * ldb + k] : B[k * ldb + j];
                s += a * b;
            }
            double want = alpha * s + beta * (double)C0[i * ldc + j];
            ref_err = fmax(ref_err, fabs(want - C2[i * ldc + j]));
            blas_err = fmax(blas_err, fabs(want - C1[i * ldc + j]));
        }
        /* The padding columns of C must be untouched. */
        for (int j = N; j < ldc; j++) {
            ck_assert_float_eq(C1[i * ldc + j], C0[i * ldc + j]);
            ck_assert_float_eq(C2[i * ldc + j], C0[i * ldc + j]);
        }
    }
    double vs = max_abs_diff(C1, C2, (size_t)M * ldc);
    printf("gemm ta=%d tb=%d %dx%dx%d pad=%d: blas-ref %.2e, ref-direct %.2e, blas-direct %.2e\n",
           ta, tb, M, N, K, pad, vs, ref_err, blas_err);
    ck_assert_double_le(vs, 1e-4);
    ck_assert_double_le(ref_err, 1e-4);
    ck_assert_double_le(blas_err, 1e-4);
    free(A);
    free(B);
    free(C0);
    free(C1);
    free(C2);
}

START_TEST(test_gemm_all_transposes_match_reference_on_odd_sizes)
{
    lcg_state = 12345u + (unsigned)_i;
    int ta = _i & 1, tb = (_i >> 1) & 1;
    gemm_case(ta, tb, 7, 13, 5, 0, 1.0f, 0.0f);
    gemm_case(ta, tb, 17, 3, 29, 3, 0.5f, 1.0f);
    gemm_case(ta, tb, 1, 31, 1, 1, -2.0f, 0.25f);
    gemm_case(ta, tb, 33, 1, 65, 2, 1.0f, -1.0f);
    gemm_case(ta, tb, 64, 70, 37, 5, 1.0f, 0.0f);
    /* 1-4 columns past the small-product bound (dense at batch 1-4): gemm_small's dots */
    gemm_case(ta, tb, 300, 1, 3500, 0, 1.0f, 0.0f);
    gemm_case(ta, tb, 301, 4, 3500, 2, 0.5f, 1.0f);
}
END_TEST

START_TEST(test_gemm_beta_zero_ignores_nan_in_c)
{
    lcg_state = 77u;
    const int M = 5, N = 6, K = 4;
    float *A = rand_buf(M * K, 1.0f), *B = rand_buf(K * N, 1.0f);
    float C1[30], C2[30];
    for (int i = 0; i < M * N; i++)
        C1[i] = C2[i] = NAN;
    cnn_gemm(0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C1, N);
    cnn_gemm_ref(0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C2, N);
    for (int i = 0; i < M * N; i++) {
        ck_assert(isfinite(C1[i]));
        ck_assert(isfinite(C2[i]));
    }
    ck_assert_double_le(max_abs_diff(C1, C2, M * N), 1e-5);
    free(A);
    free(B);
}
END_TEST

START_TEST(test_gemm_k_zero_scales_c_by_beta)
{
    float C[6] = {1, 2, 3, 4, 5, 6}, A[1] = {0}, B[1] = {0};
    cnn_gemm(0, 0, 2, 3, 0, 1.0f, A, 1, B, 3, 0.5f, C, 3);
    for (int i = 0; i < 6; i++)
        ck_assert_float_eq_tol(C[i], 0.5f * (float)(i + 1), 1e-7f);
}
END_TEST

/* Conv geometries for the im2col tests (shape filled by cnn_conv2d_shape). */
static struct cnn_conv2d geom(int c, int h, int w, int kh, int kw, int sh, int sw, int dh, int dw,
                              int pt, int pl, int pb, int pr)
{
    /* clang-format off */
    struct cnn_conv2d p = {.c = c, .h = h, .w = w, .oc = 1, .kh = kh, .kw = kw, .sh = sh,
                           .sw = sw, .dh = dh, .dw = dw, .pad_t = pt, .pad_l = pl,
                           .pad_b = pb, .pad_r = pr, .groups = 1};
    /* clang-format on */
    struct cnn_err err = {0};
    ck_assert_msg(cnn_conv2d_shape(&p, &err) == 0, "%s", err.msg);
    return p;
}

#define N_GEOMS 6
static struct cnn_conv2d geom_case(int i)
{
    switch (i) {
    case 0:
        return geom(3, 7, 9, 3, 3, 2, 2, 1, 1, 1, 0, 2, 1);
    case 1:
        return geom(2, 9, 7, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2);
    case 2:
        return geom(4, 5, 6, 1, 1, 2, 2, 1, 1, 0, 0, 0, 0);
    case 3:
        return geom(1, 8, 8, 7, 7, 2, 2, 1, 1, 3, 3, 3, 3);
    case 4:
        return geom(2, 4, 11, 2, 5, 3, 1, 1, 3, 0, 4, 1, 5);
    default:
        return geom(3, 6, 6, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1);
    }
}

START_TEST(test_im2col_matches_definition)
{
    lcg_state = 99u + (unsigned)_i;
    struct cnn_conv2d p = geom_case(_i);
    const int N = 3, C = p.c;
    size_t in_n = (size_t)C * N * p.h * p.w;
    size_t cols = (size_t)N * p.oh * p.ow, rows = (size_t)C * p.kh * p.kw;
    float *x = rand_buf(in_n, 1.0f);
    float *col = rand_buf(rows * cols, 1.0f); /* garbage must be overwritten */
    cnn_im2col(col, x, C, &p, N);
    size_t bad = 0;
    for (int c = 0; c < C; c++)
        for (int ky = 0; ky < p.kh; ky++)
            for (int kx = 0; kx < p.kw; kx++)
                for (int n = 0; n < N; n++)
                    for (int oy = 0; oy < p.oh; oy++)
                        for (int ox = 0; ox < p.ow; ox++) {
                            int iy = oy * p.sh - p.pad_t + ky * p.dh;
                            int ix = ox * p.sw - p.pad_l + kx * p.dw;
                            float want = 0.0f;
                            if (iy >= 0 && iy < p.h && ix >= 0 && ix < p.w)
                                want = x[(((size_t)c * N + n) * p.h + iy) * p.w + ix];
                            size_t r = ((size_t)c * p.kh + ky) * p.kw + kx;
                            size_t k = ((size_t)n * p.oh + oy) * p.ow + ox;
                            bad += col[r * cols + k] != want;
                        }
    ck_assert_uint_eq(bad, 0);
    free(x);
    free(col);
}
END_TEST

START_TEST(test_col2im_is_adjoint_of_im2col)
{
    lcg_state = 555u + (unsigned)_i;
    struct cnn_conv2d p = geom_case(_i);
    const int N = 3, C = p.c;
    size_t in_n = (size_t)C * N * p.h * p.w;
    size_t col_n = (size_t)C * p.kh * p.kw * N * p.oh * p.ow;
    float *x = rand_buf(in_n, 1.0f), *y = rand_buf(col_n, 1.0f);
    float *ix = malloc(col_n * sizeof(float));
    float *cy = rand_buf(in_n, 1.0f); /* col2im accumulates: start from a known base */
    float *base = malloc(in_n * sizeof(float));
    ck_assert_ptr_nonnull(ix);
    ck_assert_ptr_nonnull(base);
    for (size_t i = 0; i < in_n; i++)
        base[i] = cy[i];
    cnn_im2col(ix, x, C, &p, N);
    cnn_col2im(cy, y, C, &p, N);
    double lhs = 0.0, rhs = 0.0, scale = 0.0;
    for (size_t i = 0; i < in_n; i++) {
        lhs += ((double)cy[i] - base[i]) * x[i];
        scale += fabs(((double)cy[i] - base[i]) * x[i]);
    }
    for (size_t i = 0; i < col_n; i++)
        rhs += (double)y[i] * ix[i];
    printf("col2im adjoint geom %d: <col2im(y),x>=%.6f <y,im2col(x)>=%.6f\n", _i, lhs, rhs);
    ck_assert_double_le(fabs(lhs - rhs), 1e-5 * (1.0 + scale));
    free(x);
    free(y);
    free(ix);
    free(cy);
    free(base);
}
END_TEST

START_TEST(test_gemm_thread_setting_round_trips)
{
    int before = cnn_gemm_get_threads();
    cnn_gemm_set_threads(1);
    ck_assert_int_eq(cnn_gemm_get_threads(), 1);
    cnn_gemm_set_threads(before);
    ck_assert_int_eq(cnn_gemm_get_threads(), before);
}
END_TEST

Suite *gemm_suite(void)
{
    Suite *s = suite_create("gemm");
    TCase *tc = tcase_create("gemm");
    tcase_add_loop_test(tc, test_gemm_all_transposes_match_reference_on_odd_sizes, 0, 4);
    tcase_add_test(tc, test_gemm_beta_zero_ignores_nan_in_c);
    tcase_add_test(tc, test_gemm_k_zero_scales_c_by_beta);
    tcase_add_loop_test(tc, test_im2col_matches_definition, 0, N_GEOMS);
    tcase_add_loop_test(tc, test_col2im_is_adjoint_of_im2col, 0, N_GEOMS);
    tcase_add_test(tc, test_gemm_thread_setting_round_trips);
    suite_add_tcase(s, tc);
    return s;
}
