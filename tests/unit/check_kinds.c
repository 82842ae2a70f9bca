/* Suite `kinds`: the layer kinds and activations added for ONNX import -- hard sigmoid and
 * hard swish, global max pool, PReLU, constant scale-shift, pad, log-softmax -- kernel by
 * kernel: each against naive loops written from its definition (in double) on odd shapes
 * with a batch of 2 in the (C, N, H, W) layout, each backward against central finite
 * differences and its accumulation contract, and the two activations fused into every
 * conv path and dense.  Whole nets with every new kind: check_kinds_net.c. */
#include "grad.h"
#include "layer.h"
#include "model.h"
#include "ref_net.h"
#include "session.h"
#include "test_fd.h"
#include "test_nets.h"
#include "test_train.h"
#include "test_util.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- activations ------------------------------------------------------------------- */

struct act_ctx {
    float *x, *y;
    size_t n;
    struct cnn_act_params a;
};

static void act_fwd(void *p)
{
    struct act_ctx *c = p;
    memcpy(c->y, c->x, c->n * sizeof(float));
    cnn_act_apply(c->y, c->n, &c->a);
}

/* Values on a grid over [-5, 5] (through both kinks of each) and random ones; the forward
 * against act_ref, the backward against finite differences away from the kinks, from x
 * and (hard sigmoid) from y, and accumulated into what dinp held. */
START_TEST(test_hard_activations_match_definitions_and_differences)
{
    const struct cnn_act_params acts[] = {
        {CNN_ACT_HARD_SIGMOID, 0.2f, 0.5f},        /* ONNX defaults */
        {CNN_ACT_HARD_SIGMOID, 1.0f / 6.0f, 0.5f}, /* PyTorch's hardsigmoid */
        {CNN_ACT_HARD_SIGMOID, -0.7f, 0.1f},
        {CNN_ACT_HARD_SWISH, 0.0f, 0.0f},
    };
    enum { N = 301 };
    float x[N], y[N], dout[N], dx[N], dy[N], first[N];
    double want[N];
    for (size_t a = 0; a < sizeof acts / sizeof acts[0]; a++) {
        struct act_ctx c = {x, y, N, acts[a]};
        lcg_state = 77 + (unsigned)a;
        for (int i = 0; i < N; i++) /* grid, then random; no value within 1e-2 of a kink */
            x[i] = i < 201 ? -5.0f + 0.05f * (float)i + 0.013f : 6.0f * lcg_uniform();
        for (int i = 0; i < N; i++) {
            const double t = acts[a].kind == CNN_ACT_HARD_SWISH
                                 ? x[i] / 6.0 + 0.5
                                 : acts[a].alpha * x[i] + acts[a].beta;
            if (fabs(t) < 2e-2 || fabs(t - 1.0) < 2e-2)
                x[i] += 0.05f; /* move off the kink: finite differences need a smooth point */
            dout[i] = lcg_uniform();
        }
        act_fwd(&c);
        for (int i = 0; i < N; i++)
            want[i] = act_ref(x[i], &acts[a]);
        char what[64];
        snprintf(what, sizeof what, "%s(%g, %g) forward", cnn_act_name(acts[a].kind),
                 (double)acts[a].alpha, (double)acts[a].beta);
        check_close(what, y, want, N);
        memset(dx, 0, sizeof dx);
        cnn_act_backward(dx, dout, x, y, N, &acts[a]);
        struct fd f = {act_fwd, &c, y, dout, N};
        snprintf(what, sizeof what, "%s(%g, %g) backward", cnn_act_name(acts[a].kind),
                 (double)acts[a].alpha, (double)acts[a].beta);
        fd_check(what, &f, x, N, dx, 1e-3f, FD_TOL);
        memcpy(first, dx, sizeof dx);
        cnn_act_backward(dx, dout, x, NULL, N, &acts[a]);
        check_doubled(what, dx, first, N);
        if (acts[a].kind == CNN_ACT_HARD_SIGMOID) { /* from y alone: the same */
            memset(dy, 0, sizeof dy);
            cnn_act_backward(dy, dout, NULL, y, N, &acts[a]);
            check_same("hard_sigmoid backward from y", dy, first, N, 0.0f);
        }
    }
    /* the kinks as PyTorch: hard swish x/3 + 1/2 on [-3, 3], 0 below, 1 above; hard
     * sigmoid 0 where alpha*x + beta is 0 or 1 */
    const float kx[5] = {-3.0f, 3.0f, -3.5f, 3.5f, 0.0f}, kd[5] = {-0.5f, 1.5f, 0.0f, 1.0f, 0.5f};
    const float ones[5] = {1, 1, 1, 1, 1};
    float kg[5] = {0};
    const struct cnn_act_params hs = {CNN_ACT_HARD_SWISH, 0, 0};
    cnn_act_backward(kg, ones, kx, NULL, 5, &hs);
    check_same("hard_swish kinks", kg, kd, 5, 0.0f);
    const struct cnn_act_params hsig = {CNN_ACT_HARD_SIGMOID, 0.2f, 0.5f};
    const float sx[3] = {-2.5f, 2.5f, 0.0f}, sd[3] = {0.0f, 0.0f, 0.2f};
    float sg[3] = {0};
    cnn_act_backward(sg, ones, sx, NULL, 3, &hsig);
    check_same("hard_sigmoid kinks", sg, sd, 3, 0.0f);
}
END_TEST

/* ---- kernels, (C, N, H, W) with N = 2 ---------------------------------------------- */

enum { KC = 3, KN = 2, KH = 5, KW = 7 };
#define KCOUNT ((size_t)KC * KN * KH * KW)
#define KPLANES ((size_t)KC * KN)
#define KHW ((size_t)KH * KW)

struct kern_ctx {
    float *x, *y, *w;
    int shared;
    struct cnn_pad pad;
    int kind; /* enum cnn_layer_kind */
};

static void kern_fwd(void *p)
{
    struct kern_ctx *c = p;
    switch (c->kind) {
    case CNN_LAYER_GLOBAL_MAXPOOL:
        cnn_global_maxpool_forward(c->y, c->x, KPLANES, KHW);
        break;
    case CNN_LAYER_PRELU:
        cnn_prelu_forward(c->y, c->x, c->w, c->shared, KC, KN * KHW);
        break;
    case CNN_LAYER_SCALE_SHIFT: {
        float s[KC], t[KC];
        for (int k = 0; k < KC; k++)
            s[k] = c->w[c->shared ? 0 : k], t[k] = 0.3f * (float)k;
        const struct cnn_act_params none = {CNN_ACT_NONE, 0, 0};
        cnn_scale_shift_forward(c->y, c->x, s, t, KC, KN * KHW, &none);
        break;
    }
    case CNN_LAYER_PAD:
        cnn_pad_forward(c->y, c->x, &c->pad, KPLANES, KH, KW);
        break;
    case CNN_LAYER_LOG_SOFTMAX: /* K = KC*KH*KW classes, N = 2 */
        cnn_log_softmax_forward(c->y, c->x, KC * KH * KW, KN);
        break;
    }
}

/* Global max pool: the max of each plane, the gradient at its position. */
START_TEST(test_global_maxpool_kernels)
{
    lcg_state = 11;
    float *x = rand_buf(KCOUNT, 1.0f), *y = zero_buf(KPLANES), *r = rand_buf(KPLANES, 1.0f);
    float *dx = zero_buf(KCOUNT), *first;
    double want[KPLANES];
    struct kern_ctx c = {.x = x, .y = y, .kind = CNN_LAYER_GLOBAL_MAXPOOL};
    kern_fwd(&c);
    for (size_t p = 0; p < KPLANES; p++) {
        double m = -INFINITY;
        for (size_t i = 0; i < KHW; i++)
            m = fmax(m, x[p * KHW + i]);
        want[p] = m;
    }
    check_close("global_maxpool forward", y, want, KPLANES);
    cnn_global_maxpool_backward(dx, r, x, KPLANES, KHW);
    struct fd f = {kern_fwd, &c, y, r, KPLANES};
    fd_check("global_maxpool backward", &f, x, KCOUNT, dx, 1e-3f, FD_TOL);
    first = copy_buf(dx, KCOUNT);
    cnn_global_maxpool_backward(dx, r, x, KPLANES, KHW);
    check_doubled("global_maxpool backward", dx, first, KCOUNT);
    /* ties: the first maximum gets the gradient (as maxpool); 1x1 planes pass through */
    const float tie[4] = {2.0f, 5.0f, 5.0f, 1.0f}, one = 1.0f;
    float dtie[4] = {0}, out;
    cnn_global_maxpool_backward(dtie, &one, tie, 1, 4);
    ck_assert(dtie[1] == 1.0f && dtie[2] == 0.0f && dtie[0] == 0.0f);
    cnn_global_maxpool_forward(&out, tie + 3, 1, 1);
    ck_assert(out == 1.0f);
    free(x), free(y), free(r), free(dx), free(first);
}
END_TEST

/* PReLU with per-channel and with one shared slope: input and slope gradients. */
START_TEST(test_prelu_kernels)
{
    for (int shared = 0; shared <= 1; shared++) {
        lcg_state = 21 + (unsigned)shared;
        const size_t ns = shared ? 1 : KC;
        float *x = rand_buf(KCOUNT, 1.0f), *y = zero_buf(KCOUNT), *r = rand_buf(KCOUNT, 1.0f);
        float *slope = rand_buf(ns, 0.5f), *dx = zero_buf(KCOUNT), *ds = zero_buf(ns);
        double *want = malloc(KCOUNT * sizeof(double));
        for (size_t i = 0; i < KCOUNT; i++)
            if (fabsf(x[i]) < 1e-2f)
                x[i] = 0.05f; /* off the kink */
        struct kern_ctx c = {.x = x, .y = y, .w = slope, .shared = shared, .kind = CNN_LAYER_PRELU};
        kern_fwd(&c);
        for (size_t i = 0; i < KCOUNT; i++) {
            const size_t ch = i / (KN * KHW);
            want[i] = x[i] > 0 ? x[i] : (double)slope[shared ? 0 : ch] * x[i];
        }
        check_close(shared ? "prelu shared forward" : "prelu forward", y, want, KCOUNT);
        cnn_prelu_backward(dx, ds, r, x, slope, shared, KC, KN * KHW);
        struct fd f = {kern_fwd, &c, y, r, KCOUNT};
        fd_check(shared ? "prelu shared backward dx" : "prelu backward dx", &f, x, KCOUNT, dx,
                 1e-3f, FD_TOL);
        fd_check(shared ? "prelu shared backward dslope" : "prelu backward dslope", &f, slope, ns,
                 ds, 1e-3f, FD_TOL);
        float *first = copy_buf(dx, KCOUNT), *first_s = copy_buf(ds, ns);
        cnn_prelu_backward(dx, ds, r, x, slope, shared, KC, KN * KHW);
        check_doubled("prelu dx", dx, first, KCOUNT);
        check_doubled("prelu dslope", ds, first_s, ns);
        cnn_prelu_backward(NULL, NULL, r, x, slope, shared, KC, KN * KHW); /* skips both */
        free(x), free(y), free(r), free(slope), free(dx), free(ds), free(want), free(first),
            free(first_s);
    }
}
END_TEST

/* Scale-shift's input gradient, per channel and shared. */
START_TEST(test_scale_shift_backward)
{
    for (int shared = 0; shared <= 1; shared++) {
        lcg_state = 31 + (unsigned)shared;
        float *x = rand_buf(KCOUNT, 1.0f), *y = zero_buf(KCOUNT), *r = rand_buf(KCOUNT, 1.0f);
        float *scale = rand_buf(KC, 2.0f), *dx = zero_buf(KCOUNT);
        double *want = malloc(KCOUNT * sizeof(double));
        struct kern_ctx c = {
            .x = x, .y = y, .w = scale, .shared = shared, .kind = CNN_LAYER_SCALE_SHIFT};
        kern_fwd(&c);
        for (size_t i = 0; i < KCOUNT; i++) {
            const size_t ch = i / (KN * KHW);
            want[i] = (double)x[i] * scale[shared ? 0 : ch] + 0.3 * (double)ch;
        }
        check_close(shared ? "scale_shift shared forward" : "scale_shift forward", y, want, KCOUNT);
        cnn_scale_shift_backward(dx, r, scale, shared, KC, KN * KHW);
        struct fd f = {kern_fwd, &c, y, r, KCOUNT};
        fd_check(shared ? "scale_shift shared backward" : "scale_shift backward", &f, x, KCOUNT, dx,
                 1e-3f, FD_TOL);
        float *first = copy_buf(dx, KCOUNT);
        cnn_scale_shift_backward(dx, r, scale, shared, KC, KN * KHW);
        check_doubled("scale_shift dx", dx, first, KCOUNT);
        free(x), free(y), free(r), free(scale), free(dx), free(want), free(first);
    }
}
END_TEST

/* Pad: growing, cropping and mixed pads against the definition, and the gradient. */
START_TEST(test_pad_kernels)
{
    const struct cnn_pad pads[] = {
        {1, 2, 3, 0, 0.5f}, {0, 0, 0, 0, 0.0f}, {-1, -2, 2, -3, -1.25f}, {2, -6, -4, 1, 7.0f}};
    for (size_t k = 0; k < sizeof pads / sizeof pads[0]; k++) {
        const struct cnn_pad *p = &pads[k];
        const int OH = KH + p->pad_t + p->pad_b, OW = KW + p->pad_l + p->pad_r;
        const size_t n_out = KPLANES * (size_t)OH * OW;
        lcg_state = 41 + (unsigned)k;
        float *x = rand_buf(KCOUNT, 1.0f), *y = zero_buf(n_out), *r = rand_buf(n_out, 1.0f);
        float *dx = zero_buf(KCOUNT);
        double *want = malloc(n_out * sizeof(double));
        struct kern_ctx c = {.x = x, .y = y, .pad = *p, .kind = CNN_LAYER_PAD};
        kern_fwd(&c);
        for (size_t pl = 0; pl < KPLANES; pl++)
            for (int oy = 0; oy < OH; oy++)
                for (int ox = 0; ox < OW; ox++) {
                    const int iy = oy - p->pad_t, ix = ox - p->pad_l;
                    const int in = iy >= 0 && iy < KH && ix >= 0 && ix < KW;
                    want[(pl * OH + oy) * OW + ox] =
                        in ? x[(pl * KH + iy) * KW + ix] : (double)p->value;
                }
        char what[64];
        snprintf(what, sizeof what, "pad %d,%d,%d,%d forward", p->pad_t, p->pad_l, p->pad_b,
                 p->pad_r);
        check_close(what, y, want, n_out);
        cnn_pad_backward(dx, r, p, KPLANES, KH, KW);
        struct fd f = {kern_fwd, &c, y, r, n_out};
        snprintf(what, sizeof what, "pad %d,%d,%d,%d backward", p->pad_t, p->pad_l, p->pad_b,
                 p->pad_r);
        fd_check(what, &f, x, KCOUNT, dx, 1e-3f, FD_TOL);
        float *first = copy_buf(dx, KCOUNT);
        cnn_pad_backward(dx, r, p, KPLANES, KH, KW);
        check_doubled(what, dx, first, KCOUNT);
        free(x), free(y), free(r), free(dx), free(want), free(first);
    }
}
END_TEST

/* Log-softmax over 105 classes for 2 items, logits up to +-40 (exp overflows a float sum
 * without the max subtracted), in place too. */
START_TEST(test_log_softmax_kernels)
{
    const int K = KC * KH * KW;
    lcg_state = 51;
    float *x = rand_buf(KCOUNT, 40.0f), *y = zero_buf(KCOUNT), *r = rand_buf(KCOUNT, 1.0f);
    float *dx = zero_buf(KCOUNT);
    double *want = malloc(KCOUNT * sizeof(double));
    struct kern_ctx c = {.x = x, .y = y, .kind = CNN_LAYER_LOG_SOFTMAX};
    kern_fwd(&c);
    for (int n = 0; n < KN; n++) {
        double m = -INFINITY, z = 0;
        for (int k = 0; k < K; k++)
            m = fmax(m, x[k * KN + n]);
        for (int k = 0; k < K; k++)
            z += exp(x[k * KN + n] - m);
        for (int k = 0; k < K; k++)
            want[k * KN + n] = x[k * KN + n] - m - log(z);
    }
    check_close("log_softmax forward", y, want, KCOUNT);
    float *inplace = copy_buf(x, KCOUNT);
    cnn_log_softmax_forward(inplace, inplace, K, KN);
    check_same("log_softmax in place", inplace, y, KCOUNT, 0.0f);
    for (size_t i = 0; i < KCOUNT; i++)
        x[i] *= 0.05f; /* finite differences want a softmax that is not one-hot */
    kern_fwd(&c);
    cnn_log_softmax_backward(dx, r, y, K, KN);
    struct fd f = {kern_fwd, &c, y, r, KCOUNT};
    fd_check("log_softmax backward", &f, x, KCOUNT, dx, 1e-2f, FD_TOL);
    float *first = copy_buf(dx, KCOUNT);
    cnn_log_softmax_backward(dx, r, y, K, KN);
    check_doubled("log_softmax backward", dx, first, KCOUNT);
    free(x), free(y), free(r), free(dx), free(want), free(first), free(inplace);
}
END_TEST

START_TEST(test_hard_activations_fuse_into_every_conv_path)
{
    const struct cnn_act_params acts[2] = {{CNN_ACT_HARD_SIGMOID, 0.3f, 0.4f},
                                           {CNN_ACT_HARD_SWISH, 0, 0}};
    for (int a = 0; a < 2; a++)
        for (int path = 0; path < 4; path++) {
            struct cnn_model *m = new_model(3, 11, 10);
            add(m, conv("stem", 16, 1, 0, 1, CNN_ACT_NONE)); /* 16 channels for Winograd */
            struct cnn_layer_desc d =
                conv("c", 16, path == 1 ? 1 : 3, path == 1 ? 0 : 1, 1, CNN_ACT_NONE);
            if (path == 0)
                d.p.conv.sh = 2, d.p.conv.pad_r = 0; /* im2col, asymmetric padding */
            if (path == 2)
                d.p.conv.groups = 16; /* depthwise */
            d.p.conv.act = acts[a];
            add(m, d);
            add(m, simple(CNN_LAYER_FLATTEN, "flat"));
            struct cnn_layer_desc fc = dense("fc", 7, CNN_ACT_NONE);
            fc.p.dense.act = acts[a];
            add(m, fc);
            struct cnn_err err = {0};
            ck_assert_int_eq(cnn_model_alloc_params(m, &err), 0);
            randomize(m, 40 + (uint64_t)(4 * a + path));
            compiled(m);
            enum { N = 2 };
            float x[N * 3 * 11 * 10], ref[7];
            double want[N * 7];
            test_fill(x, sizeof x / sizeof *x, 50 + (uint64_t)path);
            struct cnn_session *s = cnn_session_create(m, N, &err);
            const float *out = NULL;
            ck_assert_int_eq(cnn_session_forward(s, m, x, N, &out, &err), 0);
            for (int n = 0; n < N; n++) {
                ck_assert_int_eq(ref_net_forward(m, x + n * 3 * 11 * 10, ref), 0);
                for (int k = 0; k < 7; k++)
                    want[n * 7 + k] = ref[k];
            }
            static const char *const names[4] = {"im2col", "pointwise", "depthwise", "winograd"};
            char what[64];
            snprintf(what, sizeof what, "%s fused: %s conv + dense", cnn_act_name(acts[a].kind),
                     names[path]);
            check_close(what, out, want, N * 7);
            cnn_session_destroy(s);
            cnn_model_destroy(m);
        }
}
END_TEST

/* `cnn info` names every new kind of a saved model. */

Suite *kinds_suite(void)
{
    Suite *s = suite_create("kinds");
    TCase *tc = tcase_create("kernels");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_hard_activations_match_definitions_and_differences);
    tcase_add_test(tc, test_global_maxpool_kernels);
    tcase_add_test(tc, test_prelu_kernels);
    tcase_add_test(tc, test_scale_shift_backward);
    tcase_add_test(tc, test_pad_kernels);
    tcase_add_test(tc, test_log_softmax_kernels);
    tcase_add_test(tc, test_hard_activations_fuse_into_every_conv_path);
    suite_add_tcase(s, tc);
    return s;
}
