/* Suite grad_layers: the activation, softmax, flatten, add/concat, batch-norm, dropout, LRN
 * and loss backward kernels of grad.h against central finite differences of the engine's
 * forward kernels (test_fd.h; L = sum(r * out), the loss itself for the losses).  Also the
 * accumulation contract, NULL gradients, PyTorch's kink conventions, the batch-norm
 * statistics and running-stat update, dropout masks. */
#include "grad.h"
#include "layer.h"
#include "test_fd.h"
#include "test_util.h"

#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Moves every value at least gap away from each kink (so x +- h never crosses one). */
static void avoid_kinks(float *x, size_t n, const float *kinks, int nk, float gap)
{
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < nk; k++)
            if (fabsf(x[i] - kinks[k]) < gap)
                x[i] = kinks[k] + (x[i] >= kinks[k] ? gap : -gap);
}

/* ---- activations, softmax, flatten, add/concat ------------------------- */

struct act_ctx {
    float *out, *inp;
    size_t n;
    const struct cnn_act_params *act;
};

static void act_fwd(void *v)
{
    struct act_ctx *c = v;
    memcpy(c->out, c->inp, c->n * sizeof *c->out);
    cnn_act_apply(c->out, c->n, c->act);
}

static const struct cnn_act_params act_cases[] = {
    {CNN_ACT_NONE, 0, 0},        {CNN_ACT_RELU, 0, 0},       {CNN_ACT_LEAKY_RELU, 0.1f, 0},
    {CNN_ACT_CLIP, -0.4f, 0.6f}, {CNN_ACT_CLIP, 0.0f, 6.0f}, {CNN_ACT_SIGMOID, 0, 0},
    {CNN_ACT_TANH, 0, 0},
};
#define N_ACT_CASES (int)(sizeof act_cases / sizeof act_cases[0])

START_TEST(test_act_backward_matches_finite_differences_from_x_y_or_both)
{
    const struct cnn_act_params *a = &act_cases[_i];
    lcg_state = 400u + (unsigned)_i;
    const size_t n = 2 * 3 * 5 * 7;
    const float scale = a->kind == CNN_ACT_CLIP && a->beta > 1.0f ? 8.0f : 2.0f;
    float *x = rand_buf(n, scale), *r = rand_buf(n, 1.0f), *y = zero_buf(n);
    const float kinks[2] = {a->kind == CNN_ACT_CLIP ? a->alpha : 0.0f,
                            a->kind == CNN_ACT_CLIP ? a->beta : 0.0f};
    avoid_kinks(x, n, kinks, 2, 0.05f);
    struct act_ctx ctx = {y, x, n, a};
    act_fwd(&ctx);
    float *g_both = zero_buf(n), *g_x = zero_buf(n), *g_y = zero_buf(n);
    cnn_act_backward(g_both, r, x, y, n, a);
    cnn_act_backward(g_x, r, x, NULL, n, a);
    cnn_act_backward(g_y, r, NULL, y, n, a);
    char name[64];
    snprintf(name, sizeof name, "act %s(%g,%g) dinp", cnn_act_name(a->kind), (double)a->alpha,
             (double)a->beta);
    struct fd f = {act_fwd, &ctx, y, r, n};
    fd_check(name, &f, x, n, g_both, 5e-3f, FD_TOL);
    check_same("act from x only", g_x, g_both, n, 1e-6f);
    check_same("act from y only", g_y, g_both, n, 1e-6f);
    float *d0 = copy_buf(g_both, n);
    cnn_act_backward(g_both, r, x, y, n, a);
    check_doubled(name, g_both, d0, n);
    free(d0), free(x), free(r), free(y), free(g_both), free(g_x), free(g_y);
}
END_TEST

/* At the kinks PyTorch's conventions: relu'(0) = 0, leaky'(0) = slope, clip' = 0 at and
 * beyond both bounds. */
START_TEST(test_act_backward_kinks_follow_pytorch)
{
    const float x[5] = {-1.0f, 0.0f, 0.5f, 6.0f, 7.0f}, g[5] = {1, 1, 1, 1, 1};
    struct {
        struct cnn_act_params a;
        float want[5];
    } cases[] = {
        {{CNN_ACT_RELU, 0, 0}, {0, 0, 1, 1, 1}},
        {{CNN_ACT_LEAKY_RELU, 0.2f, 0}, {0.2f, 0.2f, 1, 1, 1}},
        {{CNN_ACT_CLIP, 0.0f, 6.0f}, {0, 0, 1, 0, 0}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        float d[5] = {0};
        cnn_act_backward(d, g, x, NULL, 5, &cases[c].a);
        for (int i = 0; i < 5; i++)
            ck_assert_msg(d[i] == cases[c].want[i], "%s at x=%g: %g, want %g",
                          cnn_act_name(cases[c].a.kind), (double)x[i], (double)d[i],
                          (double)cases[c].want[i]);
    }
}
END_TEST

struct softmax_ctx {
    float *out, *inp;
    int K, N;
};

static void softmax_fwd(void *v)
{
    struct softmax_ctx *c = v;
    cnn_softmax_forward(c->out, c->inp, c->K, c->N);
}

START_TEST(test_softmax_backward_matches_finite_differences)
{
    lcg_state = 31;
    const int K = 7, N = 3;
    const size_t n = (size_t)K * N;
    float *x = rand_buf(n, 3.0f), *r = rand_buf(n, 1.0f), *y = zero_buf(n), *d = zero_buf(n);
    struct softmax_ctx ctx = {y, x, K, N};
    softmax_fwd(&ctx);
    cnn_softmax_backward(d, r, y, K, N);
    struct fd f = {softmax_fwd, &ctx, y, r, n};
    fd_check("softmax dinp", &f, x, n, d, 5e-3f, 1e-2, 5e-4);
    float *d0 = copy_buf(d, n);
    cnn_softmax_backward(d, r, y, K, N);
    check_doubled("softmax dinp", d, d0, n);
    free(d0), free(x), free(r), free(y), free(d);
}
END_TEST

struct flat_ctx {
    float *out, *inp;
    int C, N, hw;
};

static void flat_fwd(void *v)
{
    struct flat_ctx *c = v;
    cnn_flatten_forward(c->out, c->inp, c->C, c->N, c->hw);
}

START_TEST(test_flatten_backward_matches_finite_differences)
{
    lcg_state = 41;
    const int C = 3, N = 2, hw = 5 * 3;
    const size_t n = (size_t)C * N * hw;
    float *x = rand_buf(n, 1.0f), *r = rand_buf(n, 1.0f), *y = zero_buf(n), *d = zero_buf(n);
    cnn_flatten_backward(d, r, C, N, hw);
    struct flat_ctx ctx = {y, x, C, N, hw};
    struct fd f = {flat_fwd, &ctx, y, r, n};
    fd_check("flatten dinp", &f, x, n, d, 1e-2f, FD_TOL);
    float *d0 = copy_buf(d, n);
    cnn_flatten_backward(d, r, C, N, hw);
    check_doubled("flatten dinp", d, d0, n);
    free(d0), free(x), free(r), free(y), free(d);
}
END_TEST

/* Add: each input's gradient is dout.  Concat along channels of (C, N, H, W): each input's
 * gradient is its block of dout.  Checked by finite differences of the forwards. */
struct addcat_ctx {
    float *out, *a, *b;
    size_t na, nb;
    int concat;
};

static void addcat_fwd(void *v)
{
    struct addcat_ctx *c = v;
    if (c->concat) {
        memcpy(c->out, c->a, c->na * sizeof(float));
        memcpy(c->out + c->na, c->b, c->nb * sizeof(float));
    } else {
        const float *in[2] = {c->a, c->b};
        const struct cnn_act_params none = {CNN_ACT_NONE, 0, 0};
        cnn_add_forward(c->out, in, 2, c->na, &none);
    }
}

START_TEST(test_add_and_concat_backward_by_accumulate_match_finite_differences)
{
    lcg_state = 51;
    const int N = 2, hw = 3 * 5, ca = 3, cb = 2;
    for (int concat = 0; concat <= 1; concat++) {
        const size_t na = (size_t)ca * N * hw, nb = concat ? (size_t)cb * N * hw : na;
        const size_t n_out = concat ? na + nb : na;
        float *a = rand_buf(na, 1.0f), *b = rand_buf(nb, 1.0f), *r = rand_buf(n_out, 1.0f);
        float *out = zero_buf(n_out), *da = zero_buf(na), *dbuf = zero_buf(nb);
        cnn_grad_accumulate(da, r, na);
        cnn_grad_accumulate(dbuf, concat ? r + na : r, nb);
        struct addcat_ctx ctx = {out, a, b, na, nb, concat};
        struct fd f = {addcat_fwd, &ctx, out, r, n_out};
        fd_check(concat ? "concat dinp 0" : "add dinp 0", &f, a, na, da, 1e-2f, FD_TOL);
        fd_check(concat ? "concat dinp 1" : "add dinp 1", &f, b, nb, dbuf, 1e-2f, FD_TOL);
        float *d0 = copy_buf(da, na);
        cnn_grad_accumulate(da, r, na);
        check_doubled("accumulate", da, d0, na);
        free(d0), free(a), free(b), free(r), free(out), free(da), free(dbuf);
    }
}
END_TEST

/* ---- batch norm -------------------------------------------------------- */

struct bn_ctx {
    float *out, *inp, *gamma, *beta, *mean, *inv_std;
    int C;
    size_t n_hw;
};

static void bn_fwd(void *v)
{
    struct bn_ctx *c = v;
    int rc = cnn_batchnorm_train_forward(c->out, c->mean, c->inv_std, NULL, NULL, c->inp, c->gamma,
                                         c->beta, 1e-5f, 0.1f, c->C, c->n_hw, NULL);
    ck_assert_int_eq(rc, 0);
}

START_TEST(test_batchnorm_train_forward_uses_batch_stats_and_updates_running_stats)
{
    lcg_state = 61;
    const int C = 3;
    const size_t n_hw = 2 * 5 * 3;
    const float eps = 1e-3f, mom = 0.1f;
    float *x = rand_buf((size_t)C * n_hw, 2.0f), *gamma = rand_buf(C, 1.0f);
    float *beta = rand_buf(C, 1.0f), *rm = rand_buf(C, 1.0f), *rv = zero_buf(C);
    for (int c = 0; c < C; c++) {
        rv[c] = 0.5f + 0.1f * (float)c;
        for (size_t i = 0; i < n_hw; i++) /* shift each channel's mean away from 0 */
            x[(size_t)c * n_hw + i] += 3.0f * (float)(c + 1);
    }
    float *rm0 = copy_buf(rm, C), *rv0 = copy_buf(rv, C);
    float *y = zero_buf((size_t)C * n_hw), *sm = zero_buf(C), *si = zero_buf(C);
    ck_assert_int_eq(
        cnn_batchnorm_train_forward(y, sm, si, rm, rv, x, gamma, beta, eps, mom, C, n_hw, NULL), 0);
    for (int c = 0; c < C; c++) {
        const float *xc = x + (size_t)c * n_hw;
        double s = 0, ss = 0;
        for (size_t i = 0; i < n_hw; i++)
            s += xc[i];
        const double mean = s / n_hw;
        for (size_t i = 0; i < n_hw; i++)
            ss += (xc[i] - mean) * (xc[i] - mean);
        const double var = ss / n_hw, unbiased = ss / (n_hw - 1);
        ck_assert_double_eq_tol(sm[c], mean, 1e-5 * (1 + fabs(mean)));
        ck_assert_double_eq_tol(si[c], 1.0 / sqrt(var + eps), 1e-5);
        for (size_t i = 0; i < n_hw; i++) {
            const double want = gamma[c] * (xc[i] - mean) / sqrt(var + eps) + beta[c];
            ck_assert_double_eq_tol(y[(size_t)c * n_hw + i], want, 1e-4);
        }
        ck_assert_double_eq_tol(rm[c], 0.9 * rm0[c] + 0.1 * mean, 1e-5 * (1 + fabs(mean)));
        ck_assert_double_eq_tol(rv[c], 0.9 * rv0[c] + 0.1 * unbiased, 1e-5 * (1 + unbiased));
    }
    /* One value per channel: PyTorch refuses to train on it, and so do we. */
    struct cnn_err err = {0};
    ck_assert_int_eq(
        cnn_batchnorm_train_forward(y, sm, si, rm, rv, x, gamma, beta, eps, mom, C, 1, &err),
        CNN_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "batchnorm"));
    free(x), free(gamma), free(beta), free(rm), free(rv), free(rm0), free(rv0), free(y);
    free(sm), free(si);
}
END_TEST

/* The *_set variants the trainer uses for a gradient buffer's first writer: written into a
 * buffer of garbage, they equal the (finite-difference-checked) accumulating kernels run on
 * a zeroed one -- every activation kind, batch norm, and max pools whose windows tile the
 * input (written in place) or do not (2x2 on odd sizes, 3x3 stride 2 with padding). */
/* Batch norm + relu in the batch norm's passes against the two layers run one after the
 * other (cnn_batchnorm_train_forward, the relu, cnn_act_backward_set of the relu, then
 * cnn_batchnorm_train_backward or its _set form): the same numbers, running statistics
 * included, with some pre-activations exactly 0 (beta = 0 and x = mean there). */
START_TEST(test_batchnorm_relu_pair_equals_the_two_layers)
{
    lcg_state = 93;
    enum { C = 3, N_HW = 2 * 7 * 9, NV = C * N_HW };
    float *x = rand_buf(NV, 2.0f), *dy = rand_buf(NV, 1.0f), *gamma = rand_buf(C, 1.5f);
    float *beta = rand_buf(C, 0.5f);
    beta[1] = 0.0f;
    for (int i = 0; i < N_HW; i++) /* channel 1: values symmetric around 0, mean exactly 0 */
        x[N_HW + i] = i < N_HW / 2 ? (float)(i % 5) - 2.0f : -x[N_HW + i - N_HW / 2];
    float rm1[C] = {0.1f, -0.2f, 0.3f}, rv1[C] = {1.0f, 0.5f, 2.0f}, rm2[C], rv2[C];
    memcpy(rm2, rm1, sizeof rm1), memcpy(rv2, rv1, sizeof rv1);
    float *bn = zero_buf(NV), *want = zero_buf(NV), *got = rand_buf(NV, 9.0f);
    float sm1[C], si1[C], sm2[C], si2[C];
    const struct cnn_act_params relu = {CNN_ACT_RELU, 0.0f, 0.0f};
    ck_assert_int_eq(cnn_batchnorm_train_forward(bn, sm1, si1, rm1, rv1, x, gamma, beta, 1e-5f,
                                                 0.1f, C, N_HW, NULL), 0);
    memcpy(want, bn, NV * sizeof *want);
    cnn_act_apply(want, NV, &relu);
    ck_assert_int_eq(cnn_batchnorm_relu_train_forward(got, sm2, si2, rm2, rv2, x, gamma, beta,
                                                      1e-5f, 0.1f, C, N_HW, NULL), 0);
    int zeros = 0;
    for (int i = 0; i < NV; i++)
        zeros += bn[i] == 0.0f;
    ck_assert_msg(zeros > 0, "no pre-activation at the kink");
    check_same("bn+relu out", got, want, NV, 0.0f);
    check_same("bn+relu mean", sm2, sm1, C, 0.0f);
    check_same("bn+relu inv_std", si2, si1, C, 0.0f);
    check_same("bn+relu running mean", rm2, rm1, C, 0.0f);
    check_same("bn+relu running var", rv2, rv1, C, 0.0f);
    float *g = zero_buf(NV), *dx1 = rand_buf(NV, 1.0f), *dx2 = zero_buf(NV);
    cnn_act_backward_set(g, dy, bn, want, NV, &relu);
    for (int add = 0; add <= 1; add++) {
        memcpy(dx2, dx1, NV * sizeof *dx2);
        float dg1[C] = {0.5f, 0, 0}, db1[C] = {0, -1.0f, 0}, dg2[C], db2[C];
        memcpy(dg2, dg1, sizeof dg1), memcpy(db2, db1, sizeof db1);
        if (add)
            cnn_batchnorm_train_backward(dx1, dg1, db1, g, x, gamma, sm1, si1, C, N_HW);
        else
            cnn_batchnorm_train_backward_set(dx1, dg1, db1, g, x, gamma, sm1, si1, C, N_HW);
        cnn_batchnorm_relu_train_backward(dx2, dg2, db2, dy, got, x, gamma, sm1, si1, C, N_HW,
                                          add);
        check_same(add ? "bn+relu dinp (add)" : "bn+relu dinp (set)", dx2, dx1, NV, 0.0f);
        check_same("bn+relu dgamma", dg2, dg1, C, 0.0f);
        check_same("bn+relu dbeta", db2, db1, C, 0.0f);
    }
    cnn_batchnorm_relu_train_backward(NULL, dx2, dx2 + C, dy, got, x, gamma, sm1, si1, C, N_HW, 1);
    free(x), free(dy), free(gamma), free(beta), free(bn), free(want), free(got), free(g);
    free(dx1), free(dx2);
}
END_TEST

START_TEST(test_backward_set_variants_equal_accumulate_into_zero)
{
    lcg_state = 91;
    enum { N = 2, C = 3, H = 8, W = 12, NV = N * C * H * W };
    float *x = rand_buf(NV, 2.0f), *g = rand_buf(NV, 1.0f), *y = zero_buf(NV);
    for (int k = 0; k < CNN_ACT_COUNT; k++) {
        const struct cnn_act_params a = {(enum cnn_act)k, k == CNN_ACT_CLIP ? -0.5f : 0.2f,
                                         k == CNN_ACT_CLIP ? 0.7f : 0.5f};
        memcpy(y, x, NV * sizeof *y);
        cnn_act_apply(y, NV, &a);
        float *want = zero_buf(NV), *got = rand_buf(NV, 9.0f);
        cnn_act_backward(want, g, x, y, NV, &a);
        cnn_act_backward_set(got, g, x, y, NV, &a);
        check_same(cnn_act_name(a.kind), got, want, NV, 0.0f);
        free(want), free(got);
    }
    const size_t n_hw = (size_t)N * H * W;
    float *gamma = rand_buf(C, 1.5f), *sm = rand_buf(C, 0.5f), *si = zero_buf(C);
    for (int c = 0; c < C; c++)
        si[c] = 0.5f + 0.25f * (float)c;
    float *want = zero_buf(NV), *got = rand_buf(NV, 9.0f);
    float *dg1 = zero_buf(C), *db1 = zero_buf(C), *dg2 = zero_buf(C), *db2 = zero_buf(C);
    cnn_batchnorm_train_backward(want, dg1, db1, g, x, gamma, sm, si, C, n_hw);
    cnn_batchnorm_train_backward_set(got, dg2, db2, g, x, gamma, sm, si, C, n_hw);
    check_same("batchnorm set dinp", got, want, NV, 0.0f);
    check_same("batchnorm set dgamma", dg2, dg1, C, 0.0f);
    check_same("batchnorm set dbeta", db2, db1, C, 0.0f);
    free(want), free(got), free(dg1), free(db1), free(dg2), free(db2);
    const struct cnn_pool2d pools[] = {
        /* c, h, w, kh, kw, sh, sw, pads t l b r, ceil, incl, dh, dw, oh, ow */
        {C, 8, 12, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0, 1, 1, 4, 6}, /* tiles the input */
        {C, 7, 9, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0, 1, 1, 3, 4},  /* last row and column unpicked */
        {C, 7, 7, 3, 3, 2, 2, 1, 1, 1, 1, 0, 0, 1, 1, 4, 4},  /* overlapping, padded */
    };
    for (size_t i = 0; i < sizeof pools / sizeof pools[0]; i++) {
        const struct cnn_pool2d *p = &pools[i];
        const size_t n_in = (size_t)C * N * p->h * p->w;
        float *dout = rand_buf((size_t)C * N * p->oh * p->ow, 1.0f);
        float *w0 = zero_buf(n_in), *w1 = rand_buf(n_in, 9.0f);
        cnn_maxpool_backward(w0, dout, x, p, N);
        cnn_maxpool_backward_set(w1, dout, x, p, N);
        check_same("maxpool set dinp", w1, w0, n_in, 0.0f);
        free(dout), free(w0), free(w1);
    }
    free(x), free(g), free(y), free(gamma), free(sm), free(si);
}
END_TEST

START_TEST(test_batchnorm_train_backward_through_batch_stats_matches_finite_differences)
{
    lcg_state = 71;
    const int C = 4;
    const size_t n_hw = 3 * 5 * 3, n = (size_t)C * n_hw;
    float *x = rand_buf(n, 1.5f), *gamma = rand_buf(C, 1.5f), *beta = rand_buf(C, 1.0f);
    float *r = rand_buf(n, 1.0f), *y = zero_buf(n), *sm = zero_buf(C), *si = zero_buf(C);
    float *dx = zero_buf(n), *dg = zero_buf(C), *dbeta = zero_buf(C);
    struct bn_ctx ctx = {y, x, gamma, beta, sm, si, C, n_hw};
    bn_fwd(&ctx);
    cnn_batchnorm_train_backward(dx, dg, dbeta, r, x, gamma, sm, si, C, n_hw);
    struct fd f = {bn_fwd, &ctx, y, r, n};
    fd_check("batchnorm train dinp", &f, x, n, dx, 5e-3f, FD_TOL);
    fd_check("batchnorm train dgamma", &f, gamma, C, dg, 5e-3f, FD_TOL);
    fd_check("batchnorm train dbeta", &f, beta, C, dbeta, 5e-3f, FD_TOL);
    float *dx1 = zero_buf(n);
    cnn_batchnorm_train_backward(dx1, NULL, NULL, r, x, gamma, sm, si, C, n_hw);
    check_same("batchnorm dinp alone", dx1, dx, n, 1e-6f);
    float *d0 = copy_buf(dx, n), *g0 = copy_buf(dg, C), *b0 = copy_buf(dbeta, C);
    cnn_batchnorm_train_backward(dx, dg, dbeta, r, x, gamma, sm, si, C, n_hw);
    check_doubled("batchnorm dinp", dx, d0, n);
    check_doubled("batchnorm dgamma", dg, g0, C);
    check_doubled("batchnorm dbeta", dbeta, b0, C);
    free(d0), free(g0), free(b0), free(dx1), free(x), free(gamma), free(beta), free(r), free(y);
    free(sm), free(si), free(dx), free(dg), free(dbeta);
}
END_TEST

/* Channels much longer than the kernels' summation blocks, with a mean far from 0: the
 * forward and backward against the textbook formulas evaluated in double. */
START_TEST(test_batchnorm_long_channels_match_double_formulas)
{
    lcg_state = 75;
    const int C = 2;
    const size_t n_hw = 3001, n = (size_t)C * n_hw;
    float *x = rand_buf(n, 1.0f), *gamma = rand_buf(C, 1.5f), *beta = rand_buf(C, 1.0f);
    float *r = rand_buf(n, 1.0f), *y = zero_buf(n), *sm = zero_buf(C), *si = zero_buf(C);
    float *dx = zero_buf(n), *dg = zero_buf(C), *dbeta = zero_buf(C);
    for (size_t i = 0; i < n; i++)
        x[i] += 50.0f;
    ck_assert_int_eq(cnn_batchnorm_train_forward(y, sm, si, NULL, NULL, x, gamma, beta, 1e-5f, 0.1f,
                                                 C, n_hw, NULL),
                     0);
    cnn_batchnorm_train_backward(dx, dg, dbeta, r, x, gamma, sm, si, C, n_hw);
    for (int c = 0; c < C; c++) {
        const float *xc = x + (size_t)c * n_hw, *g = r + (size_t)c * n_hw;
        double s = 0, ss = 0, sg = 0, sgx = 0;
        for (size_t i = 0; i < n_hw; i++)
            s += xc[i];
        const double mean = s / n_hw;
        for (size_t i = 0; i < n_hw; i++)
            ss += (xc[i] - mean) * (xc[i] - mean);
        const double is = 1.0 / sqrt(ss / n_hw + 1e-5);
        for (size_t i = 0; i < n_hw; i++) {
            const double xh = (xc[i] - mean) * is;
            ck_assert_double_eq_tol(y[(size_t)c * n_hw + i], gamma[c] * xh + beta[c], 2e-4);
            sg += g[i];
            sgx += g[i] * xh;
        }
        ck_assert_double_eq_tol(dbeta[c], sg, 1e-3);
        ck_assert_double_eq_tol(dg[c], sgx, 1e-3);
        for (size_t i = 0; i < n_hw; i++) {
            const double xh = (xc[i] - mean) * is;
            const double want = gamma[c] * is * (g[i] - sg / n_hw - xh * sgx / n_hw);
            ck_assert_double_eq_tol(dx[(size_t)c * n_hw + i], want, 2e-4 * (1 + fabs(want)));
        }
    }
    free(x), free(gamma), free(beta), free(r), free(y), free(sm), free(si), free(dx), free(dg);
    free(dbeta);
}
END_TEST

struct bn_eval_ctx {
    float *out, *inp, *gamma, *beta, *mean, *var, *scale, *shift;
    int C;
    size_t n_hw;
};

static void bn_eval_fwd(void *v) /* inference BN as the engine runs it: scale and shift */
{
    struct bn_eval_ctx *c = v;
    for (int i = 0; i < c->C; i++) {
        c->scale[i] = c->gamma[i] / sqrtf(c->var[i] + 1e-5f);
        c->shift[i] = c->beta[i] - c->mean[i] * c->scale[i];
    }
    const struct cnn_act_params none = {CNN_ACT_NONE, 0, 0};
    cnn_scale_shift_forward(c->out, c->inp, c->scale, c->shift, c->C, c->n_hw, &none);
}

START_TEST(test_batchnorm_eval_backward_matches_finite_differences)
{
    lcg_state = 73;
    const int C = 3;
    const size_t n_hw = 2 * 4 * 5, n = (size_t)C * n_hw;
    float *x = rand_buf(n, 1.5f), *gamma = rand_buf(C, 1.5f), *beta = rand_buf(C, 1.0f);
    float *mean = rand_buf(C, 0.5f), *var = rand_buf(C, 0.2f), *r = rand_buf(n, 1.0f);
    for (int c = 0; c < C; c++)
        var[c] += 0.5f;
    float *y = zero_buf(n), *scale = zero_buf(C), *shift = zero_buf(C);
    float *dx = zero_buf(n), *dg = zero_buf(C), *dbeta = zero_buf(C);
    cnn_batchnorm_eval_backward(dx, dg, dbeta, r, x, gamma, mean, var, 1e-5f, C, n_hw);
    struct bn_eval_ctx ctx = {y, x, gamma, beta, mean, var, scale, shift, C, n_hw};
    struct fd f = {bn_eval_fwd, &ctx, y, r, n};
    fd_check("batchnorm eval dinp", &f, x, n, dx, 1e-2f, FD_TOL);
    fd_check("batchnorm eval dgamma", &f, gamma, C, dg, 1e-2f, FD_TOL);
    fd_check("batchnorm eval dbeta", &f, beta, C, dbeta, 1e-2f, FD_TOL);
    float *d0 = copy_buf(dx, n);
    cnn_batchnorm_eval_backward(dx, NULL, NULL, r, x, gamma, mean, var, 1e-5f, C, n_hw);
    check_doubled("batchnorm eval dinp", dx, d0, n);
    free(d0), free(x), free(gamma), free(beta), free(mean), free(var), free(r), free(y);
    free(scale), free(shift), free(dx), free(dg), free(dbeta);
}
END_TEST

/* ---- dropout ----------------------------------------------------------- */

START_TEST(test_dropout_train_forward_masks_scales_and_is_seeded)
{
    lcg_state = 81;
    const size_t n = 20000;
    const float rate = 0.3f;
    float *x = rand_buf(n, 1.0f), *y = zero_buf(n), *y2 = zero_buf(n);
    uint8_t *m = malloc(n), *m2 = malloc(n);
    ck_assert(m && m2);
    uint64_t s1 = 42, s2 = 42, s3 = 43;
    cnn_dropout_train_forward(y, m, x, rate, n, &s1);
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        ck_assert(m[i] == 0 || m[i] == 1);
        kept += m[i];
        const float want = m[i] ? x[i] / (1.0f - rate) : 0.0f;
        ck_assert_msg(fabsf(y[i] - want) <= 1e-6f, "out[%zu] = %g, want %g", i, (double)y[i],
                      (double)want);
    }
    /* Binomial(n, 0.7): sd = sqrt(n * 0.21) ~ 65; allow 5 sd. */
    ck_assert_msg(fabs((double)kept - 0.7 * n) < 5 * sqrt(0.21 * n), "kept %zu of %zu", kept, n);
    ck_assert_uint_ne(s1, 42); /* the state advanced */
    cnn_dropout_train_forward(y2, m2, x, rate, n, &s2);
    ck_assert_int_eq(memcmp(m, m2, n), 0); /* same seed, same mask */
    ck_assert_uint_eq(s1, s2);
    cnn_dropout_train_forward(y2, m2, x, rate, n, &s3);
    ck_assert_int_ne(memcmp(m, m2, n), 0);
    cnn_dropout_train_forward(y2, m2, x, rate, n, &s1); /* the next batch gets a new mask */
    ck_assert_int_ne(memcmp(m, m2, n), 0);
    /* rate 0 keeps everything unscaled; rate 1 drops everything. */
    cnn_dropout_train_forward(y2, m2, x, 0.0f, n, &s1);
    for (size_t i = 0; i < n; i++)
        ck_assert(m2[i] == 1 && y2[i] == x[i]);
    cnn_dropout_train_forward(y2, m2, x, 1.0f, n, &s1);
    for (size_t i = 0; i < n; i++)
        ck_assert(m2[i] == 0 && y2[i] == 0.0f);
    float *d = zero_buf(n);
    cnn_dropout_backward(d, x, m2, 1.0f, n);
    for (size_t i = 0; i < n; i++)
        ck_assert(d[i] == 0.0f);
    free(d), free(x), free(y), free(y2), free(m), free(m2);
}
END_TEST

struct drop_ctx {
    float *out, *inp;
    uint8_t *mask;
    float rate;
    size_t n;
    uint64_t seed;
};

static void drop_fwd(void *v) /* the same seed each time: the same mask */
{
    struct drop_ctx *c = v;
    uint64_t s = c->seed;
    cnn_dropout_train_forward(c->out, c->mask, c->inp, c->rate, c->n, &s);
}

START_TEST(test_dropout_backward_with_the_same_mask_matches_finite_differences)
{
    lcg_state = 83;
    const size_t n = 3 * 2 * 5 * 5;
    float *x = rand_buf(n, 1.0f), *r = rand_buf(n, 1.0f), *y = zero_buf(n), *d = zero_buf(n);
    uint8_t *mask = malloc(n);
    ck_assert_ptr_nonnull(mask);
    struct drop_ctx ctx = {y, x, mask, 0.4f, n, 1234};
    drop_fwd(&ctx);
    cnn_dropout_backward(d, r, mask, 0.4f, n);
    struct fd f = {drop_fwd, &ctx, y, r, n};
    fd_check("dropout dinp", &f, x, n, d, 1e-2f, FD_TOL);
    float *d0 = copy_buf(d, n);
    cnn_dropout_backward(d, r, mask, 0.4f, n);
    check_doubled("dropout dinp", d, d0, n);
    free(d0), free(x), free(r), free(y), free(d), free(mask);
}
END_TEST

/* ---- LRN --------------------------------------------------------------- */

struct lrn_ctx {
    float *out, *inp;
    const struct cnn_lrn *p;
    int C;
    size_t n_hw;
};

static void lrn_fwd(void *v)
{
    struct lrn_ctx *c = v;
    cnn_lrn_forward(c->out, c->inp, c->p, c->C, c->n_hw);
}

START_TEST(test_lrn_backward_matches_finite_differences)
{
    const struct cnn_lrn cases[] = {
        {3, 1.0f, 0.75f, 1.5f}, /* the beta = 0.75 fast path */
        {5, 2.0f, 0.6f, 1.0f},
        {1, 0.5f, 0.75f, 2.0f},
        {4, 1.5f, 0.5f, 1.0f}, /* even size: window c-1 .. c+2 */
    };
    const struct cnn_lrn *p = &cases[_i];
    lcg_state = 90u + (unsigned)_i;
    const int C = 6;
    const size_t n_hw = 2 * 3 * 5, n = (size_t)C * n_hw;
    float *x = rand_buf(n, 1.5f), *r = rand_buf(n, 1.0f), *y = zero_buf(n), *d = zero_buf(n);
    float *scratch = zero_buf(cnn_lrn_backward_scratch_floats(C, n_hw));
    ck_assert_uint_eq(cnn_lrn_backward_scratch_floats(C, n_hw), (size_t)(C + 1) * n_hw);
    cnn_lrn_backward(d, r, x, scratch, p, C, n_hw);
    struct lrn_ctx ctx = {y, x, p, C, n_hw};
    struct fd f = {lrn_fwd, &ctx, y, r, n};
    char name[64];
    snprintf(name, sizeof name, "lrn size %d beta %g dinp", p->size, (double)p->beta);
    fd_check(name, &f, x, n, d, 5e-3f, FD_TOL);
    float *d0 = copy_buf(d, n);
    cnn_lrn_backward(d, r, x, scratch, p, C, n_hw);
    check_doubled(name, d, d0, n);
    free(d0), free(x), free(r), free(y), free(d), free(scratch);
}
END_TEST

/* ---- losses ------------------------------------------------------------ */

struct xent_ctx {
    float loss;
    float *logits;
    const int *labels;
    int K, N;
};

static void xent_fwd(void *v)
{
    struct xent_ctx *c = v;
    ck_assert_int_eq(cnn_softmax_xent(&c->loss, NULL, NULL, c->logits, c->labels, c->K, c->N, NULL),
                     0);
}

START_TEST(test_softmax_xent_value_gradient_and_top1_count)
{
    lcg_state = 101;
    const int K = 6, N = 5;
    const size_t n = (size_t)K * N;
    const int labels[5] = {0, 5, 2, 2, 3};
    float *z = rand_buf(n, 3.0f), *dz = rand_buf(n, 100.0f); /* garbage: must be overwritten */
    z[3 * N + 4] = 10.0f;                                    /* item 4: label 3 is clearly top-1 */
    float loss = 0;
    int correct = -1;
    ck_assert_int_eq(cnn_softmax_xent(&loss, dz, &correct, z, labels, K, N, NULL), 0);
    double want = 0;
    int hits = 0;
    for (int i = 0; i < N; i++) {
        double sum = 0;
        int best = 0;
        for (int k = 0; k < K; k++) {
            sum += exp((double)z[k * N + i]);
            if (z[k * N + i] > z[best * N + i])
                best = k;
        }
        want += -log(exp((double)z[labels[i] * N + i]) / sum) / N;
        hits += best == labels[i];
        for (int k = 0; k < K; k++) {
            const double g = (exp((double)z[k * N + i]) / sum - (k == labels[i])) / N;
            ck_assert_double_eq_tol(dz[k * N + i], g, 1e-6);
        }
    }
    ck_assert_double_eq_tol(loss, want, 1e-5);
    ck_assert_int_eq(correct, hits);
    ck_assert_int_ge(correct, 1);
    struct xent_ctx ctx = {0, z, labels, K, N};
    struct fd f = {xent_fwd, &ctx, &ctx.loss, NULL, 1};
    fd_check("softmax xent dlogits", &f, z, n, dz, 1e-2f, 1e-2, 2e-4);
    free(z), free(dz);
}
END_TEST

START_TEST(test_softmax_xent_is_stable_and_rejects_bad_labels)
{
    const int K = 3, N = 2, labels[2] = {1, 2};
    const float big[6] = {1000.0f, -1000.0f, 1001.0f, 0.0f, 999.0f, -998.0f};
    float loss, d[6];
    int correct;
    ck_assert_int_eq(cnn_softmax_xent(&loss, d, &correct, big, labels, K, N, NULL), 0);
    /* item 0: logits (1000, 1001, 999), label 1; item 1: (-1000, 0, -998), label 2 */
    const double l0 = log(exp(-1.0) + 1.0 + exp(-2.0));
    const double l1 = 998.0 + log(exp(-1000.0) + 1.0 + exp(-998.0));
    ck_assert(isfinite(loss));
    ck_assert_double_eq_tol(loss, (l0 + l1) / 2, 1e-4);
    ck_assert_int_eq(correct, 1);
    for (int i = 0; i < 6; i++)
        ck_assert(isfinite(d[i]));

    const int bad[2] = {1, 3};
    float keep[6] = {7, 7, 7, 7, 7, 7};
    struct cnn_err err = {0};
    ck_assert_int_eq(cnn_softmax_xent(&loss, keep, NULL, big, bad, K, N, &err), CNN_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "label 3"));
    for (int i = 0; i < 6; i++)
        ck_assert(keep[i] == 7.0f);
    const int neg[2] = {-1, 0};
    ck_assert_int_eq(cnn_softmax_xent(&loss, NULL, NULL, big, neg, K, N, &err), CNN_EINVAL);
    ck_assert_int_eq(cnn_softmax_xent(&loss, NULL, NULL, big, labels, 0, N, &err), CNN_EINVAL);
}
END_TEST

struct mse_ctx {
    float loss;
    float *pred, *target;
    size_t n;
};

static void mse_fwd(void *v)
{
    struct mse_ctx *c = v;
    c->loss = cnn_mse_loss(NULL, c->pred, c->target, c->n);
}

START_TEST(test_mse_loss_is_pytorch_mean_and_matches_finite_differences)
{
    lcg_state = 111;
    const size_t n = 4 * 3;
    float *p = rand_buf(n, 2.0f), *t = rand_buf(n, 2.0f), *d = rand_buf(n, 50.0f);
    const float loss = cnn_mse_loss(d, p, t, n);
    double want = 0;
    for (size_t i = 0; i < n; i++) {
        want += ((double)p[i] - t[i]) * ((double)p[i] - t[i]) / n;
        ck_assert_double_eq_tol(d[i], 2.0 * ((double)p[i] - t[i]) / n, 1e-6);
    }
    ck_assert_double_eq_tol(loss, want, 1e-5);
    struct mse_ctx ctx = {0, p, t, n};
    struct fd f = {mse_fwd, &ctx, &ctx.loss, NULL, 1};
    fd_check("mse dpred", &f, p, n, d, 1e-2f, 1e-2, 2e-4);
    free(p), free(t), free(d);
}
END_TEST

Suite *grad_layers_suite(void)
{
    Suite *s = suite_create("grad_layers");
    TCase *tc = tcase_create("grad");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_act_backward_matches_finite_differences_from_x_y_or_both, 0,
                        N_ACT_CASES);
    tcase_add_test(tc, test_act_backward_kinks_follow_pytorch);
    tcase_add_test(tc, test_softmax_backward_matches_finite_differences);
    tcase_add_test(tc, test_flatten_backward_matches_finite_differences);
    tcase_add_test(tc, test_add_and_concat_backward_by_accumulate_match_finite_differences);
    tcase_add_test(tc, test_batchnorm_train_forward_uses_batch_stats_and_updates_running_stats);
    tcase_add_test(tc,
                   test_batchnorm_train_backward_through_batch_stats_matches_finite_differences);
    tcase_add_test(tc, test_batchnorm_long_channels_match_double_formulas);
    tcase_add_test(tc, test_backward_set_variants_equal_accumulate_into_zero);
    tcase_add_test(tc, test_batchnorm_relu_pair_equals_the_two_layers);
    tcase_add_test(tc, test_batchnorm_eval_backward_matches_finite_differences);
    tcase_add_test(tc, test_dropout_train_forward_masks_scales_and_is_seeded);
    tcase_add_test(tc, test_dropout_backward_with_the_same_mask_matches_finite_differences);
    tcase_add_loop_test(tc, test_lrn_backward_matches_finite_differences, 0, 4);
    tcase_add_test(tc, test_softmax_xent_value_gradient_and_top1_count);
    tcase_add_test(tc, test_softmax_xent_is_stable_and_rejects_bad_labels);
    tcase_add_test(tc, test_mse_loss_is_pytorch_mean_and_matches_finite_differences);
    suite_add_tcase(s, tc);
    return s;
}
