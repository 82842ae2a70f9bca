/* Suite `kinds`: the layer kinds and activations added for ONNX import -- hard sigmoid and
 * hard swish, global max pool, PReLU, constant scale-shift, pad, log-softmax.  Each kernel
 * against naive loops written from its definition (in double) on odd shapes with a batch
 * of 2 in the (C, N, H, W) layout, each backward against central finite differences and
 * its accumulation contract; then a net that uses every one of them (fused into conv,
 * dense and BN where they fuse): the compiled, batched session against the naive
 * interpreter (ref_net.c), a save/load round trip that computes the same bits, the
 * trainer's whole-net finite-difference check (input and learned weights) and 2 threads
 * against 1, names for `cnn info`, and the shape checks that refuse bad parameters. */
#include "grad.h"
#include "layer.h"
#include "layer_kind.h"
#include "model.h"
#include "ref_net.h"
#include "session.h"
#include "test_fd.h"
#include "test_nets.h"
#include "test_train.h"
#include "test_util.h"
#include "train.h"

#include <check.h>
#include <math.h>
#include <stdint.h>
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

/* ---- a net with every new kind ------------------------------------------------------ */

static struct cnn_layer_desc act2(const char *name, enum cnn_act kind, float a, float b)
{
    struct cnn_layer_desc d = act(name, kind);
    d.p.act.alpha = a, d.p.act.beta = b;
    return d;
}

static struct cnn_layer_desc prelu(const char *name, int channels)
{
    struct cnn_layer_desc d = simple(CNN_LAYER_PRELU, name);
    d.p.prelu.channels = channels;
    return d;
}

static struct cnn_layer_desc scale_shift(const char *name, int channels, enum cnn_act a)
{
    struct cnn_layer_desc d = simple(CNN_LAYER_SCALE_SHIFT, name);
    d.p.ss.channels = channels;
    d.p.ss.act.kind = a;
    return d;
}

static struct cnn_layer_desc pad(const char *name, int t, int l, int b, int r, float value)
{
    struct cnn_layer_desc d = simple(CNN_LAYER_PAD, name);
    d.p.pad = (struct cnn_pad){t, l, b, r, value};
    return d;
}

/* Random slopes, scales and shifts (init gives 0.25, 1 and 0). */
static void randomize_new_kinds(struct cnn_model *m, uint64_t seed)
{
    for (int i = 1; i < cnn_model_layer_count(m); i++) {
        struct cnn_layer_info li;
        cnn_model_layer_info(m, i, &li);
        size_t n;
        if (li.kind == CNN_LAYER_PRELU || li.kind == CNN_LAYER_SCALE_SHIFT) {
            float *w = cnn_model_weights_mut(m, i, 0, &n);
            test_fill(w, n, seed + (uint64_t)i);
            for (size_t k = 0; k < n; k++)
                w[k] = li.kind == CNN_LAYER_PRELU ? 0.3f * w[k] : 1.0f + 0.5f * w[k];
        }
        if (li.kind == CNN_LAYER_SCALE_SHIFT) {
            float *b = cnn_model_weights_mut(m, i, 1, &n);
            test_fill(b, n, seed + 100 + (uint64_t)i);
        }
    }
}

/* 3x9x7: conv (fused hard swish), pad (grow and crop), BN + hard sigmoid (fused into
 * BN's scale-shift), strided conv, per-channel PReLU, per-channel scale-shift + hard swish
 * (fused), global max and average pools concatenated, shared PReLU, shared scale-shift
 * (with its own leaky relu), flatten, dense with fused hard sigmoid, dense, log-softmax.
 * Not compiled. */
static struct cnn_model *kinds_net(uint64_t seed)
{
    struct cnn_model *m = new_model(3, 9, 7);
    add(m, conv("conv1", 6, 3, 1, 1, CNN_ACT_HARD_SWISH)); /* 6x9x7 */
    add(m, pad("pad1", 1, 2, 0, -1, 0.3f));                /* 6x10x8 */
    add(m, bn("bn1"));
    add(m, act2("hsig1", CNN_ACT_HARD_SIGMOID, 0.5f, 0.5f));
    struct cnn_layer_desc c2 = conv("conv2", 8, 3, 0, 1, CNN_ACT_NONE);
    c2.p.conv.sh = c2.p.conv.sw = 2;
    add(m, c2); /* 8x4x3 */
    add(m, prelu("prelu1", 8));
    add(m, scale_shift("ss1", 8, CNN_ACT_NONE));
    int hs = add(m, act("hswish2", CNN_ACT_HARD_SWISH));
    int one[1] = {hs};
    int gmp = add(m, inputs(simple(CNN_LAYER_GLOBAL_MAXPOOL, "gmp"), 1, one));
    int gap = add(m, inputs(simple(CNN_LAYER_GLOBAL_AVGPOOL, "gap"), 1, one));
    int cat[2] = {gmp, gap};
    add(m, inputs(simple(CNN_LAYER_CONCAT, "cat"), 2, cat)); /* 16x1x1 */
    add(m, prelu("prelu2", 1));
    struct cnn_layer_desc ss2 = scale_shift("ss2", 1, CNN_ACT_LEAKY_RELU);
    ss2.p.ss.act.alpha = 0.1f; /* an act of its own: the trainer's pre-activation buffer */
    add(m, ss2);
    add(m, simple(CNN_LAYER_FLATTEN, "flat"));
    struct cnn_layer_desc fc1 = dense("fc1", 12, CNN_ACT_HARD_SIGMOID);
    fc1.p.dense.act.alpha = 0.5f, fc1.p.dense.act.beta = 0.5f;
    add(m, fc1);
    add(m, dense("fc2", 5, CNN_ACT_NONE));
    struct cnn_err err = {0};
    add(m, simple(CNN_LAYER_LOG_SOFTMAX, "logprob"));
    ck_assert_int_eq(cnn_model_alloc_params(m, &err), 0);
    randomize(m, seed);
    randomize_new_kinds(m, seed);
    return m;
}

/* Every new kind and act is in the net, and compile fused what it fuses. */
START_TEST(test_kinds_net_session_matches_naive_reference)
{
    struct cnn_model *m = kinds_net(3);
    int seen[CNN_LAYER_KIND_COUNT] = {0};
    for (int i = 0; i < cnn_model_layer_count(m); i++) {
        struct cnn_layer_info li;
        cnn_model_layer_info(m, i, &li);
        seen[li.kind]++;
    }
    for (int k = CNN_LAYER_GLOBAL_MAXPOOL; k < CNN_LAYER_KIND_COUNT; k++)
        ck_assert_msg(seen[k] > 0, "kind %s not in the net", cnn_layer_kind_name(k));
    compiled(m);
    enum { N = 3 };
    const size_t img = 3 * 9 * 7;
    const int K = cnn_model_num_classes(m);
    float x[N * 3 * 9 * 7], ref[5];
    double want[N * 5];
    test_fill(x, N * img, 17);
    struct cnn_err err = {0};
    struct cnn_session *s = cnn_session_create(m, N, &err);
    ck_assert_msg(s != NULL, "%s", err.msg);
    const float *out = NULL;
    ck_assert_int_eq(cnn_session_forward(s, m, x, N, &out, &err), 0);
    double spread = 0;
    for (int n = 0; n < N; n++) {
        ck_assert_int_eq(ref_net_forward(m, x + n * img, ref), 0);
        for (int k = 0; k < K; k++) {
            want[n * K + k] = ref[k];
            spread = fmax(spread, fabs(ref[k] - want[k])); /* item n against item 0 */
        }
    }
    check_close("kinds net: session vs naive reference", out, want, (size_t)N * K);
    ck_assert_msg(spread > 1e-3,
                  "output does not depend on the input: the test would not see errors");
    cnn_session_destroy(s);
    cnn_model_destroy(m);
}
END_TEST

/* Saved and loaded: the same graph, parameters and weights, and the same output bits. */
START_TEST(test_kinds_net_save_load_round_trip)
{
    struct cnn_model *m = compiled(kinds_net(4));
    char dir[64], path[128];
    make_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/kinds.cnn", dir);
    struct cnn_err err = {0};
    ck_assert_msg(cnn_model_save(m, path, &err) == 0, "%s", err.msg);
    struct cnn_model *r = NULL;
    ck_assert_msg(cnn_model_load(path, &r, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(cnn_model_layer_count(r), cnn_model_layer_count(m));
    ck_assert_uint_eq(cnn_model_param_count(r), cnn_model_param_count(m));
    for (int i = 0; i < cnn_model_layer_count(m); i++) {
        struct cnn_layer_info a, b;
        cnn_model_layer_info(m, i, &a);
        cnn_model_layer_info(r, i, &b);
        ck_assert_int_eq(a.kind, b.kind);
        ck_assert_str_eq(a.name, b.name);
        ck_assert(a.c == b.c && a.h == b.h && a.w == b.w && a.params == b.params);
    }
    enum { N = 2 };
    float x[N * 3 * 9 * 7];
    test_fill(x, sizeof x / sizeof *x, 5);
    struct cnn_session *s1 = cnn_session_create(m, N, &err), *s2 = cnn_session_create(r, N, &err);
    ck_assert(s1 && s2);
    const float *o1 = NULL, *o2 = NULL;
    ck_assert_int_eq(cnn_session_forward(s1, m, x, N, &o1, &err), 0);
    ck_assert_int_eq(cnn_session_forward(s2, r, x, N, &o2, &err), 0);
    ck_assert_int_eq(memcmp(o1, o2, N * 5 * sizeof(float)), 0);
    printf("%-44s identical (%d values)\n", "kinds net: output after save/load", N * 5);
    cnn_session_destroy(s1);
    cnn_session_destroy(s2);
    cnn_model_destroy(r);
    cnn_model_destroy(m);
    rm_tree(dir);
}
END_TEST

/* The trainer through every new kind: input and learned-weight gradients (conv, BN,
 * PReLU per channel and shared, dense) against finite differences of the loss, for
 * cross-entropy (read through log-softmax) and squared error. */
START_TEST(test_kinds_net_gradients_match_finite_differences)
{
    enum { N = 3 };
    float x[N * 3 * 9 * 7], tgt[N * 5];
    int y[N] = {4, 0, 2};
    test_fill(x, sizeof x / sizeof *x, 23);
    test_fill(tgt, sizeof tgt / sizeof *tgt, 29);
    for (int k = 0; k < N * 5; k++)     /* near the log-probabilities: a small loss, whose float */
        tgt[k] = -1.6f + 0.3f * tgt[k]; /* rounding stays below the differences measured */
    struct cnn_model *m = compiled(kinds_net(6));
    gradcheck(m, x, y, NULL, N, CNN_LOSS_XENT);
    gradcheck(m, x, NULL, tgt, N, CNN_LOSS_MSE);
    cnn_model_destroy(m);
}
END_TEST

/* Each kind's split over a worker team (channels, planes, part 0) gives one thread's
 * gradients, and a few SGD steps move the PReLU slopes but not the constants. */
START_TEST(test_kinds_net_threads_match_one_thread)
{
    enum { N = 4 };
    float x[N * 3 * 9 * 7];
    int y[N] = {1, 3, 0, 4};
    test_fill(x, sizeof x / sizeof *x, 31);
    struct cnn_model *m = compiled(kinds_net(8));
    struct cnn_trainer *t[2];
    for (int k = 0; k < 2; k++) {
        struct cnn_train_config cfg;
        cnn_train_config_default(&cfg);
        cfg.max_batch = N;
        cfg.input_grad = 1;
        cfg.threads = k == 0 ? 1 : 3;
        t[k] = trainer(m, &cfg);
        struct cnn_train_stats st;
        struct cnn_err err = {0};
        ck_assert_msg(cnn_trainer_compute_gradients(t[k], x, y, NULL, N, &st, &err) == 0, "%s",
                      err.msg);
    }
    for (int i = 1; i < cnn_model_layer_count(m); i++)
        for (int s = 0; s < 4; s++) {
            size_t n1 = 0, n2 = 0;
            const float *g1 = cnn_trainer_grad(t[0], i, s, &n1),
                        *g2 = cnn_trainer_grad(t[1], i, s, &n2);
            if (!g1)
                continue;
            ck_assert_uint_eq(n1, n2);
            check_same("3 threads vs 1: weight gradient", g2, g1, n1, 1e-5f);
        }
    check_same("3 threads vs 1: input gradient", cnn_trainer_input_grad(t[1]),
               cnn_trainer_input_grad(t[0]), N * 3 * 9 * 7, 1e-5f);
    /* SGD: PReLU slopes are learned, scale-shift constants are not */
    const int pr = cnn_model_find_layer(m, "prelu1"), ss = cnn_model_find_layer(m, "ss1");
    size_t np, ns;
    float *slope0 = copy_slot(t[0], pr, 0, &np), *scale0 = copy_slot(t[0], ss, 0, &ns);
    struct cnn_train_stats st;
    step(t[0], x, y, N, &st);
    const float *slope1 = cnn_trainer_weights(t[0], pr, 0, NULL);
    const float *scale1 = cnn_trainer_weights(t[0], ss, 0, NULL);
    ck_assert_int_ne(memcmp(slope0, slope1, np * sizeof(float)), 0);
    ck_assert_int_eq(memcmp(scale0, scale1, ns * sizeof(float)), 0);
    free(slope0), free(scale0);
    cnn_trainer_destroy(t[0]);
    cnn_trainer_destroy(t[1]);
    cnn_model_destroy(m);
}
END_TEST

/* Hard sigmoid and hard swish fused into each conv path (im2col with stride and padding,
 * pointwise, depthwise, Winograd) and into dense, against the naive interpreter. */
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
START_TEST(test_cnn_info_names_the_new_kinds)
{
    const char *tool = getenv("CNN_TOOL");
    ck_assert_msg(tool && *tool, "CNN_TOOL is not set (make unit sets it to the built cnn)");
    struct cnn_model *m = compiled(kinds_net(10));
    char dir[64], path[128], cmd[512], buf[8192];
    make_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/kinds.cnn", dir);
    struct cnn_err err = {0};
    ck_assert_msg(cnn_model_save(m, path, &err) == 0, "%s", err.msg);
    snprintf(cmd, sizeof cmd, "'%s' info '%s' 2>&1", tool, path);
    FILE *f = popen(cmd, "r");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    ck_assert_int_eq(pclose(f), 0);
    static const char *const want[] = {"global_maxpool", "prelu", "scale_shift", "pad",
                                       "log_softmax"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        ck_assert_msg(strstr(buf, want[i]) != NULL, "cnn info does not name %s:\n%s", want[i], buf);
    cnn_model_destroy(m);
    rm_tree(dir);
}
END_TEST

/* Names in messages and `cnn info`; the table's slots; learnable parameter counts. */
START_TEST(test_kinds_names_and_rows)
{
    ck_assert_str_eq(cnn_layer_kind_name(CNN_LAYER_GLOBAL_MAXPOOL), "global_maxpool");
    ck_assert_str_eq(cnn_layer_kind_name(CNN_LAYER_PRELU), "prelu");
    ck_assert_str_eq(cnn_layer_kind_name(CNN_LAYER_SCALE_SHIFT), "scale_shift");
    ck_assert_str_eq(cnn_layer_kind_name(CNN_LAYER_PAD), "pad");
    ck_assert_str_eq(cnn_layer_kind_name(CNN_LAYER_LOG_SOFTMAX), "log_softmax");
    ck_assert_str_eq(cnn_act_name(CNN_ACT_HARD_SIGMOID), "hard_sigmoid");
    ck_assert_str_eq(cnn_act_name(CNN_ACT_HARD_SWISH), "hard_swish");
    ck_assert_str_eq(cnn_act_name(CNN_ACT_COUNT), "unknown");
    /* the kind numbers of model files written before these kinds existed stay */
    ck_assert_int_eq(CNN_LAYER_SOFTMAX, 13);
    ck_assert_int_eq(CNN_LAYER_GLOBAL_MAXPOOL, 14);
    ck_assert_int_eq(CNN_LAYER_LOG_SOFTMAX, 18);
    ck_assert_int_eq(CNN_ACT_TANH, 5);
    ck_assert_int_eq(CNN_ACT_HARD_SWISH, 7);
    ck_assert_int_eq(cnn_layer_kind_ops(CNN_LAYER_PRELU)->learned_slots, 1);
    ck_assert_int_eq(cnn_layer_kind_ops(CNN_LAYER_SCALE_SHIFT)->learned_slots, 0);
    struct cnn_model *m = kinds_net(9);
    /* learnable: conv1 6*3*9+6, bn 2*6, conv2 8*6*9+8, prelu1 8, prelu2 1, fc1 16*12+12,
     * fc2 12*5+5; scale-shift constants are not counted */
    ck_assert_uint_eq(cnn_model_param_count(m), 168 + 12 + 440 + 8 + 1 + 204 + 65);
    cnn_model_destroy(m);
}
END_TEST

static int add_rc(struct cnn_model *m, struct cnn_layer_desc d, struct cnn_err *err)
{
    return cnn_model_add(m, &d, err);
}

/* Shape checks: each bad parameter is refused with CNN_EINVAL and a message naming the
 * layer; nothing is added. */
START_TEST(test_kinds_refuse_bad_parameters)
{
    struct cnn_model *m = new_model(3, 4, 5);
    struct cnn_err err = {0};
    const struct cnn_layer_desc bad[] = {
        prelu("p", 2),
        prelu("p", 0),
        prelu("p", -3),
        scale_shift("s", 4, CNN_ACT_NONE),
        scale_shift("s", 1, CNN_ACT_COUNT),
        pad("z", -4, 0, 0, 0, 0.0f),
        pad("z", 0, -2, 0, -3, 0.0f),
        pad("z", 0, 0, 1 << 30, 0, 0.0f),
        pad("z", 2147483647, 0, 2147483647, 0, 0.0f),
        pad("z", 0, 0, 0, 0, NAN),
        act2("a", CNN_ACT_HARD_SIGMOID, INFINITY, 0.5f),
        simple(CNN_LAYER_LOG_SOFTMAX, "l"), /* needs (K,1,1) */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_msg(add_rc(m, bad[i], &err) == CNN_EINVAL, "case %zu accepted", i);
        ck_assert_msg(strstr(err.msg, bad[i].name) != NULL, "case %zu: %s", i, err.msg);
        ck_assert_int_eq(cnn_model_layer_count(m), 1);
    }
    /* the edges that are fine: crop to one row, one shared slope, pads of 0 */
    ck_assert_int_ge(add_rc(m, pad("crop", -3, -4, 0, 0, 0.0f), &err), 0);
    ck_assert_int_ge(add_rc(m, prelu("p1", 1), &err), 0);
    ck_assert_int_ge(add_rc(m, pad("same", 0, 0, 0, 0, 0.0f), &err), 0);
    struct cnn_layer_info li;
    cnn_model_layer_info(m, 3, &li);
    ck_assert(li.c == 3 && li.h == 1 && li.w == 1);
    cnn_model_destroy(m);
}
END_TEST

/* ---- hostile files ------------------------------------------------------------------ */

static uint32_t get_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(unsigned char *p, uint32_t v)
{
    for (int k = 0; k < 4; k++)
        p[k] = (unsigned char)(v >> (8 * k));
}

/* Offset of the layer record named `name` in a saved model (docs/model-format.md 3). */
static size_t record_of(const unsigned char *file, size_t size, const char *name)
{
    size_t off = (size_t)get_le32(file + 56); /* layers_offset, low word (files are small) */
    const uint32_t layers = get_le32(file + 24);
    for (uint32_t i = 0; i < layers && off + 144 <= size; i++) {
        if (strcmp((const char *)file + off + 8, name) == 0)
            return off;
        off += get_le32(file + off);
    }
    ck_abort_msg("no layer %s in the file", name);
    return 0;
}

/* A saved net with one word of a new kind's record changed is refused with a message
 * naming the layer (the reader checks words, then cnn_model_add's shape rules); kind
 * numbers past the last one are refused too.  Nothing crashes under ASan. */
START_TEST(test_kinds_hostile_records_are_refused)
{
    struct cnn_model *m = compiled(kinds_net(12));
    char dir[64], path[128];
    make_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/kinds.cnn", dir);
    struct cnn_err err = {0};
    ck_assert_msg(cnn_model_save(m, path, &err) == 0, "%s", err.msg);
    size_t size;
    unsigned char *file = read_all(path, &size);
    const struct {
        const char *layer;
        int word; /* parameter word, or -1 for the kind */
        uint32_t value;
        int code;
        const char *needle;
    } cases[] = {
        {"prelu1", 0, 3, CNN_EFORMAT, "prelu1"},               /* channels neither 1 nor C */
        {"prelu2", 0, 8, CNN_EFORMAT, "prelu2"},               /* 8 of 16 channels */
        {"ss1", 0, 0, CNN_EFORMAT, "ss1"},                     /* channels 0 */
        {"ss1", 1, CNN_ACT_COUNT, CNN_EFORMAT, "ss1"},         /* unknown fused act */
        {"ss2", 2, 0x7fc00000u, CNN_EFORMAT, "ss2"},           /* act alpha NaN */
        {"pad1", 0, 0x80000000u, CNN_EFORMAT, "pad1"},         /* pad_t INT_MIN */
        {"pad1", 2, 0x7fffffffu, CNN_EFORMAT, "pad1"},         /* pad_b INT_MAX */
        {"pad1", 4, 0x7f800000u, CNN_EFORMAT, "pad1"},         /* value Inf */
        {"gmp", 0, 1, CNN_EFORMAT, "gmp"},                     /* unused word not 0 */
        {"logprob", 0, 1, CNN_EFORMAT, "logprob"},             /* unused word not 0 */
        {"hsig1", 0, CNN_ACT_COUNT, CNN_EFORMAT, "hsig1"},     /* act past hard swish */
        {"gmp", -1, CNN_LAYER_KIND_COUNT, CNN_EFORMAT, "gmp"}, /* kind past log_softmax */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        unsigned char *bad = malloc(size);
        memcpy(bad, file, size);
        const size_t rec = record_of(bad, size, cases[i].layer);
        put_le32(bad + rec + (cases[i].word < 0 ? 4 : 80 + 4 * (size_t)cases[i].word),
                 cases[i].value);
        struct cnn_model *r = NULL;
        const int rc = cnn_model_load_mem(bad, size, &r, &err);
        ck_assert_msg(rc != 0 && r == NULL, "case %zu loaded", i);
        ck_assert_msg(rc == cases[i].code, "case %zu: code %d (%s)", i, rc, err.msg);
        ck_assert_msg(strstr(err.msg, cases[i].needle) != NULL, "case %zu: %s", i, err.msg);
        free(bad);
    }
    struct cnn_model *r = NULL; /* the untouched bytes still load */
    ck_assert_msg(cnn_model_load_mem(file, size, &r, &err) == 0, "%s", err.msg);
    cnn_model_destroy(r);
    free(file);
    cnn_model_destroy(m);
    rm_tree(dir);
}
END_TEST

Suite *kinds_suite(void)
{
    Suite *s = suite_create("kinds");
    TCase *tc = tcase_create("kinds");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_hard_activations_match_definitions_and_differences);
    tcase_add_test(tc, test_global_maxpool_kernels);
    tcase_add_test(tc, test_prelu_kernels);
    tcase_add_test(tc, test_scale_shift_backward);
    tcase_add_test(tc, test_pad_kernels);
    tcase_add_test(tc, test_log_softmax_kernels);
    tcase_add_test(tc, test_kinds_net_session_matches_naive_reference);
    tcase_add_test(tc, test_kinds_net_save_load_round_trip);
    tcase_add_test(tc, test_kinds_net_gradients_match_finite_differences);
    tcase_add_test(tc, test_kinds_net_threads_match_one_thread);
    tcase_add_test(tc, test_hard_activations_fuse_into_every_conv_path);
    tcase_add_test(tc, test_cnn_info_names_the_new_kinds);
    tcase_add_test(tc, test_kinds_names_and_rows);
    tcase_add_test(tc, test_kinds_refuse_bad_parameters);
    tcase_add_test(tc, test_kinds_hostile_records_are_refused);
    suite_add_tcase(s, tc);
    return s;
}
