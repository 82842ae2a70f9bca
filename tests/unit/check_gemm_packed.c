/* Suite gemm_packed: the GEMM on pre-packed weights (gemm_packed.h), its AVX2 kernels and
 * its plain C loops, with B a matrix or a packer (cnn_gemm_packed_by, and its plain C path),
 * against cnn_gemm_ref on the unpacked matrix followed by the epilogue
 * written out (bias, residual, ReLU) over a grid of shapes -- ragged panels of rows, ragged
 * strips of columns, K past its block -- padded leading dims, alpha/beta and NaN in C under
 * beta 0; a row range read from the middle of a packed matrix; and a network whose 1x1,
 * strided 1x1 and im2col convs run on packed weights, against the naive reference. */
#include "gemm.h"
#include "gemm_packed.h"
#include "model.h"
#include "test_nets.h"
#include "test_teams.h"
#include "test_train.h"
#include "test_util.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*packed_fn)(int M, int N, int K, float alpha, const float *ap, const float *B,
                          int ldb, float beta, float *C, int ldc,
                          const struct cnn_gemm_epilogue *ep, float *scratch);

static void portable(int M, int N, int K, float alpha, const float *ap, const float *B, int ldb,
                     float beta, float *C, int ldc, const struct cnn_gemm_epilogue *ep,
                     float *scratch)
{
    (void)scratch;
    cnn_gemm_packed_portable(M, N, K, alpha, ap, B, ldb, beta, C, ldc, ep);
}

/* B as a packer (cnn_gemm_b_packer) that copies the blocks from the matrix: the drivers'
 * packer path (cnn_gemm_packed_by) and its plain C one, over the same shapes. */
struct matrix_b {
    const float *B;
    int ldb;
};

static void pack_matrix(const void *ctx, float *dst, int k0, int kc, int n0, int nc, int width)
{
    const struct matrix_b *mb = ctx;
    for (int s0 = 0; s0 < nc; s0 += width)
        for (int k = 0; k < kc; k++)
            for (int j = 0; j < width; j++)
                *dst++ = s0 + j < nc ? mb->B[(size_t)(k0 + k) * mb->ldb + n0 + s0 + j] : 0.0f;
}

static void by_packer(int M, int N, int K, float alpha, const float *ap, const float *B, int ldb,
                      float beta, float *C, int ldc, const struct cnn_gemm_epilogue *ep,
                      float *scratch)
{
    const struct matrix_b mb = {B, ldb};
    const struct cnn_gemm_b_packer by = {pack_matrix, &mb};
    cnn_gemm_packed_by(M, N, K, alpha, ap, &by, beta, C, ldc, ep, scratch);
}

static void by_packer_portable(int M, int N, int K, float alpha, const float *ap, const float *B,
                               int ldb, float beta, float *C, int ldc,
                               const struct cnn_gemm_epilogue *ep, float *scratch)
{
    const struct matrix_b mb = {B, ldb};
    const struct cnn_gemm_b_packer by = {pack_matrix, &mb};
    cnn_gemm_packed_by_portable(M, N, K, alpha, ap, &by, beta, C, ldc, ep, scratch);
}

static const struct impl {
    const char *name;
    packed_fn fn;
} IMPLS[] = {{"cnn_gemm_packed", cnn_gemm_packed},
             {"narrow", cnn_gemm_packed_narrow},
             {"wide", cnn_gemm_packed_wide},
             {"narrow512", cnn_gemm_packed_narrow512},
             {"wide512", cnn_gemm_packed_wide512},
             {"col16_512", cnn_gemm_packed_col16_512},
             {"portable", portable},
             {"by packer", by_packer},
             {"by packer portable", by_packer_portable}};
#define N_IMPLS ((int)(sizeof IMPLS / sizeof IMPLS[0]))

/* Epilogue variants: 0 none, 1 bias, 2 bias + residual + relu, 3 residual + relu. */
enum { N_EPILOGUES = 4 };

/* Runs fn on one case and returns the elements of C outside the bound of float accumulation
 * (K + 2 roundings of the sum of |terms|, bias and residual included) from the reference,
 * plus every changed float of C outside the M x N product (padding columns and a guard row
 * after it).  beta == 0 starts C as NaN: it must not be read. */
static long packed_case(packed_fn fn, int M, int N, int K, int pad, float alpha, float beta,
                        int epi)
{
    const int ldb = N + pad, ldc = N + pad;
    const size_t c_n = (size_t)(M + 1) * ldc; /* one guard row */
    float *A = rand_buf((size_t)M * K, 1.0f), *B = rand_buf((size_t)K * ldb, 1.0f);
    float *ap = malloc(cnn_gemm_packed_floats(M, K) * sizeof(float));
    float *scratch = malloc(cnn_gemm_packed_scratch_floats(K) * sizeof(float));
    float *C0 = rand_buf(c_n, 1.0f), *bias = rand_buf((size_t)M, 1.0f);
    float *res = rand_buf(c_n, 1.0f);
    ck_assert(ap && scratch);
    cnn_gemm_pack(ap, A, M, K);
    for (int i = 0; beta == 0.0f && i < M; i++)
        for (int j = 0; j < N; j++)
            C0[(size_t)i * ldc + j] = NAN;
    const struct cnn_gemm_epilogue ep = {epi == 1 || epi == 2 ? bias : NULL,
                                         epi >= 2 ? res : NULL, epi >= 2};
    float *got = copy_buf(C0, c_n), *want = copy_buf(C0, c_n);
    fn(M, N, K, alpha, ap, B, ldb, beta, got, ldc, epi ? &ep : NULL, scratch);
    cnn_gemm_ref(0, 0, M, N, K, alpha, A, K, B, ldb, beta, want, ldc);
    long bad = 0;
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < N; j++) {
            const size_t at = (size_t)i * ldc + j;
            double mag = 0.0;
            for (int k = 0; k < K; k++)
                mag += fabs((double)A[(size_t)i * K + k] * B[(size_t)k * ldb + j]);
            double w = want[at], extra = 0.0;
            if (ep.bias)
                w += ep.bias[i], extra += fabs(ep.bias[i]);
            if (ep.res)
                w += ep.res[at], extra += fabs(ep.res[at]);
            if (ep.relu && !(w > 0.0))
                w = 0.0;
            const double c0 = beta == 0.0f ? 0.0 : fabs((double)beta * C0[at]);
            const double tol = (K + 4) * 6e-8 * (fabs(alpha) * mag + c0 + extra) + 1e-7;
            bad += !(fabs((double)got[at] - w) <= tol); /* NaN counts as bad */
        }
        for (int j = N; j < ldc; j++)
            bad += got[(size_t)i * ldc + j] != C0[(size_t)i * ldc + j];
    }
    for (int j = 0; j < ldc; j++)
        bad += got[(size_t)M * ldc + j] != C0[(size_t)M * ldc + j];
    free(A), free(B), free(ap), free(scratch), free(C0), free(bias), free(res), free(got);
    free(want);
    return bad;
}

/* Rows around the 16-row panel (its two 8-row halves, its 4-row quarters) and past the
 * AVX-512 narrow tile's 48 (a second and a ragged third row of tiles), columns around
 * the narrow 6- and 8-column strips and 96-column block (49: a 7x7 map), the wide 24- and
 * 48-column strips
 * and 240-column block, and where cnn_gemm_packed() changes driver; K short and past a
 * strip's unroll; each epilogue variant per loop index.  Each driver runs every shape. */
START_TEST(test_packed_matches_reference_over_shape_grid)
{
    static const int Ms[] = {1, 5, 8, 9, 16, 17, 33, 40, 49, 100};
    static const int Ns[] = {1,  2,  5,  6,  7,  9,  12, 13,  16,  17,  23,
                             24, 25, 47, 48, 49, 50, 97, 241, 255, 256, 300};
    static const int Ks[] = {1, 3, 8, 64, 131};
    static const float alphas[] = {1.0f, -0.5f, 2.0f}, betas[] = {0.0f, 1.0f, -0.75f};
    const int epi = _i;
    lcg_state = 777u + (unsigned)_i;
    long cases = 0, bad_cases = 0;
    for (int f = 0; f < N_IMPLS; f++)
        for (size_t mi = 0; mi < sizeof Ms / sizeof Ms[0]; mi++)
            for (size_t ni = 0; ni < sizeof Ns / sizeof Ns[0]; ni++)
                for (size_t ki = 0; ki < sizeof Ks / sizeof Ks[0]; ki++, cases++) {
                    const int pad = (int)(cases % 3 == 0 ? 0 : cases % 5);
                    const float alpha = alphas[cases % 3], beta = betas[cases / 3 % 3];
                    long bad = packed_case(IMPLS[f].fn, Ms[mi], Ns[ni], Ks[ki], pad, alpha, beta,
                                           epi);
                    if (bad && bad_cases++ < 5)
                        printf("gemm_packed: %s %dx%dx%d pad=%d alpha=%g beta=%g epilogue %d: "
                               "%ld bad elements\n",
                               IMPLS[f].name, Ms[mi], Ns[ni], Ks[ki], pad, alpha, beta, epi, bad);
                }
    printf("gemm_packed epilogue %d: %ld cases (%d impls, AVX2 %s, AVX-512 %s), %ld off the "
           "reference\n",
           epi, cases, N_IMPLS, cnn_gemm_packed_vectorised() ? "yes" : "no",
           cnn_gemm_packed_avx512() ? "yes" : "no", bad_cases);
    ck_assert_int_eq(bad_cases, 0);
}
END_TEST

/* K past the 1024-deep narrow block and the 256-deep wide one: later blocks add to what the
 * first wrote with beta, and only the last applies the epilogue. */
START_TEST(test_packed_blocks_long_k)
{
    static const int shapes[][3] = {{17, 49, 1030}, {33, 13, 2100}, {8, 100, 1500},
                                    {3, 7, 4608},   {9, 300, 600},  {20, 260, 257}};
    lcg_state = 4711u + (unsigned)_i;
    long bad_cases = 0;
    for (int f = 0; f < N_IMPLS; f++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            const float beta = s % 2 ? 0.0f : 0.5f;
            long bad = packed_case(IMPLS[f].fn, shapes[s][0], shapes[s][1], shapes[s][2],
                                   (int)s % 3, 1.0f, beta, _i);
            if (bad) {
                bad_cases++;
                printf("gemm_packed: %s %dx%dx%d epilogue %d: %ld bad elements\n", IMPLS[f].name,
                       shapes[s][0], shapes[s][1], shapes[s][2], _i, bad);
            }
        }
    ck_assert_int_eq(bad_cases, 0);
}
END_TEST

/* Rows [16, 40) of a packed 40-row matrix start at ap + 16 * K (how a team splits a conv
 * over its output channels) and give the same floats as rows 16.. of the whole product. */
START_TEST(test_packed_row_range_from_the_middle)
{
    enum { M = 40, N = 23, K = 70, LO = 16 };
    lcg_state = 99u;
    float *A = rand_buf((size_t)M * K, 1.0f), *B = rand_buf((size_t)K * N, 1.0f);
    float *ap = malloc(cnn_gemm_packed_floats(M, K) * sizeof(float));
    float *scratch = malloc(cnn_gemm_packed_scratch_floats(K) * sizeof(float));
    float *whole = zero_buf((size_t)M * N), *part = zero_buf((size_t)(M - LO) * N);
    float *bias = rand_buf(M, 1.0f);
    ck_assert(ap && scratch);
    cnn_gemm_pack(ap, A, M, K);
    const struct cnn_gemm_epilogue ep = {bias, NULL, 1}, ep_part = {bias + LO, NULL, 1};
    cnn_gemm_packed(M, N, K, 1.0f, ap, B, N, 0.0f, whole, N, &ep, scratch);
    cnn_gemm_packed(M - LO, N, K, 1.0f, ap + (size_t)LO * K, B, N, 0.0f, part, N, &ep_part,
                    scratch);
    ck_assert_int_eq(memcmp(part, whole + (size_t)LO * N, sizeof(float) * (M - LO) * N), 0);
    free(A), free(B), free(ap), free(scratch), free(whole), free(part), free(bias);
}
END_TEST

/* The ReLU of the epilogue is the session's: a NaN product (a NaN in B) becomes +0, and
 * without ReLU it stays NaN. */
START_TEST(test_packed_relu_turns_nan_into_zero)
{
    enum { M = 16, N = 12, K = 9 };
    lcg_state = 5u;
    float *A = rand_buf((size_t)M * K, 1.0f), *B = rand_buf((size_t)K * N, 1.0f);
    float *ap = malloc(cnn_gemm_packed_floats(M, K) * sizeof(float));
    float *scratch = malloc(cnn_gemm_packed_scratch_floats(K) * sizeof(float));
    float *C = zero_buf((size_t)M * N);
    ck_assert(ap && scratch);
    cnn_gemm_pack(ap, A, M, K);
    B[4 * N + 7] = NAN; /* column 7 of every row of C */
    for (int relu = 0; relu <= 1; relu++) {
        const struct cnn_gemm_epilogue ep = {NULL, NULL, relu};
        cnn_gemm_packed(M, N, K, 1.0f, ap, B, N, 0.0f, C, N, &ep, scratch);
        for (int i = 0; i < M; i++) {
            const float v = C[(size_t)i * N + 7];
            if (relu)
                ck_assert_msg(v == 0.0f && !signbit(v), "row %d: %g", i, v);
            else
                ck_assert_msg(isnan(v), "row %d: %g", i, v);
        }
    }
    free(A), free(B), free(ap), free(scratch), free(C);
}
END_TEST

static struct cnn_layer_desc strided(struct cnn_layer_desc d, int stride)
{
    d.p.conv.sh = d.p.conv.sw = stride;
    return d;
}

/* Small maps, where convs run on packed weights: a 1x1 of 40 channels (a ragged panel) with
 * BN and ReLU folded and fused, a 5x5 stride-2 im2col conv (K = 1000) and a strided 1x1
 * whose outputs are added (a fused residual) before a ReLU, a 1x1 of 20 channels with a
 * leaky ReLU (applied after the GEMM), then dense and softmax. */
static struct cnn_model *packed_net(void)
{
    struct cnn_preproc pp = {.c = 24, .h = 9, .w = 7, .mean = {0, 0, 0}, .std = {1, 1, 1}};
    struct cnn_err err = {0};
    struct cnn_model *m = cnn_model_create(&pp, &err);
    ck_assert_msg(m != NULL, "%s", err.msg);
    add(m, conv("pw", 40, 1, 0, 1, CNN_ACT_NONE));
    add(m, bn("pw_bn"));
    int a = add(m, act("pw_relu", CNN_ACT_RELU));
    add(m, strided(conv("im2col", 40, 5, 2, 0, CNN_ACT_NONE), 2));
    int b = add(m, bn("im2col_bn"));
    const int from_a[1] = {a};
    add(m, inputs(strided(conv("down", 40, 1, 0, 1, CNN_ACT_NONE), 2), 1, from_a));
    int c = add(m, bn("down_bn"));
    const int bc[2] = {b, c};
    add(m, inputs((struct cnn_layer_desc){.kind = CNN_LAYER_ADD, .name = "sum"}, 2, bc));
    add(m, act("sum_relu", CNN_ACT_RELU));
    struct cnn_layer_desc d = conv("leaky", 20, 1, 0, 1, CNN_ACT_LEAKY_RELU);
    d.p.conv.act.alpha = 0.1f;
    add(m, d);
    add(m, simple(CNN_LAYER_FLATTEN, "flat"));
    add(m, dense("fc", 7, CNN_ACT_NONE));
    add(m, simple(CNN_LAYER_SOFTMAX, "prob"));
    ck_assert_int_eq(cnn_model_alloc_params(m, &err), 0);
    test_randomize(m, 8);
    return m;
}

/* packed_net through sessions of batch 1 and 3 on teams of 1-3 (its convs split over output
 * channels by whole panels at batch 1, over rows at 3) against the naive reference, which
 * reads the unfolded weights; with AVX2 its four convs must say they run packed. */
START_TEST(test_net_on_packed_weights_matches_reference)
{
    struct cnn_model *m = packed_net();
    test_net_on_teams_matches_reference(m, 123, "gemm_packed",
                                        cnn_gemm_packed_vectorised() ? 4 : 0);
    cnn_model_destroy(m);
}
END_TEST

Suite *gemm_packed_suite(void)
{
    Suite *s = suite_create("gemm_packed");
    TCase *tc = tcase_create("gemm_packed");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_packed_matches_reference_over_shape_grid, 0, N_EPILOGUES);
    tcase_add_loop_test(tc, test_packed_blocks_long_k, 0, N_EPILOGUES);
    tcase_add_test(tc, test_packed_row_range_from_the_middle);
    tcase_add_test(tc, test_packed_relu_turns_nan_into_zero);
    tcase_add_test(tc, test_net_on_packed_weights_matches_reference);
    suite_add_tcase(s, tc);
    return s;
}
