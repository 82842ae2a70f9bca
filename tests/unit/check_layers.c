/* Suite layers: the dense, pooling and elementwise kernels against naive direct loops written
 * here (windowed pooling, scalar activations, LRN, softmax, ...) on odd shapes, and the
 * shape-inference rules and messages of layer.c.  The conv2d kernels are in
 * check_layers_conv.c.  Data from a seeded LCG (test_util.h). */
#include "grad.h"
#include "layer.h"
#include "test_util.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- shape inference ---------------------------------------------------- */

static struct cnn_conv2d good_conv(void)
{
    /* clang-format off */
    struct cnn_conv2d p = {.c = 4, .h = 7, .w = 9, .oc = 6, .kh = 3, .kw = 3, .sh = 2,
                           .sw = 2, .dh = 1, .dw = 1, .pad_t = 1, .pad_l = 1, .pad_b = 2,
                           .pad_r = 0, .groups = 2};
    /* clang-format on */
    return p;
}

static void expect_conv_error(struct cnn_conv2d p, const char *needle)
{
    struct cnn_err err = {0};
    ck_assert_int_eq(cnn_conv2d_shape(&p, &err), CNN_EINVAL);
    ck_assert_int_eq(err.code, CNN_EINVAL);
    ck_assert_msg(strstr(err.msg, needle) != NULL, "message '%s' lacks '%s'", err.msg, needle);
}

START_TEST(test_conv2d_shape_rejects_each_bad_field_by_name)
{
    struct cnn_conv2d p = good_conv();
    struct cnn_err err = {0};
    ck_assert_int_eq(cnn_conv2d_shape(&p, &err), 0);
    ck_assert_int_eq(p.oh, 4); /* (7 + 3 - 3) / 2 + 1 */
    ck_assert_int_eq(p.ow, 4); /* (9 + 1 - 3) / 2 + 1 */

    /* clang-format off */
    p = good_conv(); p.kh = 0; expect_conv_error(p, "kernel");
    p = good_conv(); p.kw = -1; expect_conv_error(p, "kernel");
    p = good_conv(); p.sh = 0; expect_conv_error(p, "stride");
    p = good_conv(); p.dw = 0; expect_conv_error(p, "dilation");
    p = good_conv(); p.pad_r = -1; expect_conv_error(p, "padding");
    p = good_conv(); p.groups = 0; expect_conv_error(p, "groups");
    p = good_conv(); p.groups = 3; expect_conv_error(p, "groups");         /* 4 % 3 */
    p = good_conv(); p.oc = 5; expect_conv_error(p, "out channels");       /* 5 % 2 */
    p = good_conv(); p.oc = 0; expect_conv_error(p, "out channels");
    p = good_conv(); p.h = 0; expect_conv_error(p, "input shape");
    p = good_conv(); p.kh = 11; expect_conv_error(p, "kernel height");     /* 11 > 7+3 */
    p = good_conv(); p.dw = 5; expect_conv_error(p, "kernel width");       /* 11 > 9+1 */
    p = good_conv(); p.act.kind = CNN_ACT_COUNT; expect_conv_error(p, "activation");
    /* clang-format on */

    /* Dilated kernel exactly filling the padded input: one output. */
    p = good_conv();
    p.kh = 4;
    p.dh = 3; /* (4-1)*3+1 = 10 = 7+1+2 */
    ck_assert_int_eq(cnn_conv2d_shape(&p, &err), 0);
    ck_assert_int_eq(p.oh, 1);
}
END_TEST

static struct cnn_pool2d pool(int h, int k, int s, int pad_lo, int pad_hi, int ceil_mode)
{
    /* clang-format off */
    struct cnn_pool2d p = {.c = 2, .h = h, .w = h, .kh = k, .kw = k, .sh = s, .sw = s,
                           .pad_t = pad_lo, .pad_l = pad_lo, .pad_b = pad_hi,
                           .pad_r = pad_hi, .ceil_mode = ceil_mode};
    /* clang-format on */
    return p;
}

static int pool_oh(struct cnn_pool2d p)
{
    struct cnn_err err = {0};
    int rc = cnn_pool2d_shape(&p, &err);
    ck_assert_msg(rc == 0, "%s", err.msg);
    ck_assert_int_eq(p.oh, p.ow);
    return p.oh;
}

START_TEST(test_pool2d_shape_follows_pytorch_floor_and_ceil_rules)
{
    /* Worked by hand from PyTorch's pooling_output_shape. */
    ck_assert_int_eq(pool_oh(pool(6, 3, 2, 0, 0, 0)), 2);    /* floor(3/2)+1 */
    ck_assert_int_eq(pool_oh(pool(6, 3, 2, 0, 0, 1)), 3);    /* ceil(3/2)+1; start 4 < 6 */
    ck_assert_int_eq(pool_oh(pool(5, 2, 2, 1, 1, 0)), 3);    /* floor(5/2)+1 */
    ck_assert_int_eq(pool_oh(pool(5, 2, 2, 1, 1, 1)), 3);    /* ceil gives 4, start 6 >= 5+1 */
    ck_assert_int_eq(pool_oh(pool(112, 3, 2, 1, 1, 0)), 56); /* resnet maxpool */
    ck_assert_int_eq(pool_oh(pool(55, 3, 2, 0, 0, 1)), 27);  /* alexnet-style */
    ck_assert_int_eq(pool_oh(pool(13, 3, 2, 0, 0, 1)), 6);
    ck_assert_int_eq(pool_oh(pool(14, 3, 2, 0, 0, 1)), 7); /* ceil(11/2)+1 = 7, start 12 < 14 */
    ck_assert_int_eq(pool_oh(pool(14, 3, 2, 0, 0, 0)), 6);
    ck_assert_int_eq(pool_oh(pool(3, 3, 1, 2, 2, 0)), 5); /* pad < kernel allowed */
    ck_assert_int_eq(pool_oh(pool(7, 7, 7, 0, 0, 1)), 1);
}
END_TEST

static void expect_pool_error(struct cnn_pool2d p, const char *needle)
{
    struct cnn_err err = {0};
    ck_assert_int_eq(cnn_pool2d_shape(&p, &err), CNN_EINVAL);
    ck_assert_msg(strstr(err.msg, needle) != NULL, "message '%s' lacks '%s'", err.msg, needle);
}

START_TEST(test_pool2d_shape_rejects_each_bad_field_by_name)
{
    struct cnn_pool2d p = pool(6, 3, 2, 1, 1, 0);
    p.kh = 0;
    expect_pool_error(p, "kernel");
    p = pool(6, 3, 0, 1, 1, 0);
    expect_pool_error(p, "stride");
    p = pool(6, 3, 2, -1, 1, 0);
    expect_pool_error(p, "padding");
    p = pool(6, 3, 2, 3, 0, 0);
    expect_pool_error(p, "padding"); /* pad == kernel */
    p = pool(6, 3, 2, 0, 0, 0);
    p.pad_r = 4;
    expect_pool_error(p, "padding");
    p = pool(2, 4, 1, 1, 0, 0);
    expect_pool_error(p, "kernel height"); /* 4 > 2+1 */
    p = pool(6, 3, 2, 0, 0, 0);
    p.c = 0;
    expect_pool_error(p, "input shape");
}
END_TEST

START_TEST(test_kind_and_act_names)
{
    ck_assert_str_eq(cnn_layer_kind_name(CNN_LAYER_CONV2D), "conv2d");
    ck_assert_str_eq(cnn_layer_kind_name(CNN_LAYER_SOFTMAX), "softmax");
    ck_assert_str_eq(cnn_layer_kind_name(CNN_LAYER_KIND_COUNT), "unknown");
    ck_assert_str_eq(cnn_act_name(CNN_ACT_RELU), "relu");
    ck_assert_str_eq(cnn_act_name(CNN_ACT_CLIP), "clip");
    ck_assert_str_eq(cnn_act_name((enum cnn_act)99), "unknown");
    for (int k = 0; k < CNN_LAYER_KIND_COUNT; k++) /* every kind has its own name */
        for (int j = 0; j < k; j++)
            ck_assert_str_ne(cnn_layer_kind_name(k), cnn_layer_kind_name(j));
}
END_TEST

/* ---- dense -------------------------------------------------------------- */

START_TEST(test_dense_matches_direct_loops)
{
    static const struct {
        int in, out, N, bias;
        struct cnn_act_params act;
    } cases[] = {
        {17, 5, 3, 1, {CNN_ACT_RELU, 0, 0}},
        {1, 9, 1, 0, {CNN_ACT_NONE, 0, 0}},
        {33, 11, 7, 1, {CNN_ACT_TANH, 0, 0}},
        {8, 3, 2, 0, {CNN_ACT_LEAKY_RELU, 0.2f, 0}},
    };
    lcg_state = 3000u + (unsigned)_i;
    const struct cnn_dense p = {
        .in = cases[_i].in, .out = cases[_i].out, .has_bias = cases[_i].bias, .act = cases[_i].act};
    const int N = cases[_i].N;
    float *inp = rand_buf((size_t)p.in * N, 1.0f), *w = rand_buf((size_t)p.out * p.in, 1.0f);
    float *b = p.has_bias ? rand_buf((size_t)p.out, 1.0f) : NULL;
    float *out = rand_buf((size_t)p.out * N, 50.0f);
    double *want = malloc((size_t)p.out * N * sizeof *want);
    ck_assert_ptr_nonnull(want);
    for (int o = 0; o < p.out; o++)
        for (int n = 0; n < N; n++) {
            double s = b ? b[o] : 0.0;
            for (int i = 0; i < p.in; i++)
                s += (double)w[o * p.in + i] * inp[i * N + n];
            want[o * N + n] = act_ref(s, &p.act);
        }
    cnn_dense_forward(out, inp, w, b, &p, N);
    char name[64];
    snprintf(name, sizeof name, "dense %dx%d N=%d", p.out, p.in, N);
    check_close(name, out, want, (size_t)p.out * N);
    free(inp);
    free(w);
    free(b);
    free(out);
    free(want);
}
END_TEST

/* ---- pooling ------------------------------------------------------------ */

struct pool_case {
    int N, c, h, w, kh, kw, sh, sw, pt, pl, pb, pr, ceil_mode, include_pad;
};

/* clang-format off */
static const struct pool_case pool_cases[] = {
    {3, 2, 7, 9, 3, 3, 2, 2, 1, 1, 1, 1, 0, 0},
    {3, 2, 7, 9, 3, 3, 2, 2, 1, 1, 1, 1, 0, 1},
    {2, 3, 8, 7, 2, 2, 2, 2, 1, 0, 1, 1, 1, 1}, /* ceil mode overhang */
    {2, 3, 8, 7, 2, 2, 2, 2, 1, 0, 1, 1, 1, 0},
    {3, 1, 9, 11, 3, 2, 2, 3, 0, 1, 2, 0, 1, 1}, /* asymmetric, ceil */
    {1, 4, 6, 6, 3, 3, 3, 3, 0, 0, 0, 0, 1, 0},
    {2, 2, 5, 5, 2, 3, 3, 2, 1, 2, 0, 1, 0, 1}, /* stride > kernel in y */
    {3, 2, 13, 13, 3, 3, 2, 2, 0, 0, 0, 0, 1, 1}, /* alexnet-like */
    {2, 2, 6, 8, 3, 3, 2, 2, 0, 1, 0, 1, 1, 1}, /* last windows overhang the padded input */
    {2, 2, 6, 8, 3, 3, 2, 2, 0, 1, 0, 1, 1, 0},
    {2, 3, 8, 10, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0}, /* plain 2x2 stride 2 (LeNet) */
    {2, 3, 9, 7, 2, 2, 2, 2, 0, 0, 0, 0, 0, 1}, /* plain 2x2, odd sizes floor */
    {3, 2, 7, 19, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0}, /* plain 2x2: 4-wide vector steps + tail */
    {2, 3, 9, 7, 2, 2, 2, 2, 0, 0, 0, 0, 1, 0}, /* 2x2 ceil mode: not the plain path */
    {2, 2, 9, 23, 3, 3, 2, 2, 1, 1, 1, 1, 0, 0}, /* ResNet stem pool: 4-wide 3/2 steps */
    {1, 2, 5, 30, 3, 3, 2, 2, 0, 2, 0, 0, 1, 0}, /* 3/2 steps, left pad 2, ceil overhang */
    {1, 2, 6, 112, 3, 3, 2, 2, 1, 1, 1, 1, 0, 0}, /* ResNet's width: 16-wide AVX-512 steps */
    {2, 1, 7, 71, 3, 3, 2, 2, 1, 1, 1, 1, 0, 0},  /* one 16-wide step, then 4-wide, scalar */
    {1, 1, 5, 67, 3, 3, 2, 2, 0, 0, 0, 0, 1, 0},  /* no pad, ceil: the last 16 stop short */
};
/* clang-format on */
#define N_POOL_CASES ((int)(sizeof pool_cases / sizeof pool_cases[0]))

START_TEST(test_pool_matches_direct_windows)
{
    const struct pool_case *k = &pool_cases[_i];
    lcg_state = 4000u + (unsigned)_i;
    /* clang-format off */
    struct cnn_pool2d p = {.c = k->c, .h = k->h, .w = k->w, .kh = k->kh, .kw = k->kw,
                           .sh = k->sh, .sw = k->sw, .pad_t = k->pt, .pad_l = k->pl,
                           .pad_b = k->pb, .pad_r = k->pr, .ceil_mode = k->ceil_mode,
                           .count_include_pad = k->include_pad};
    /* clang-format on */
    struct cnn_err err = {0};
    ck_assert_msg(cnn_pool2d_shape(&p, &err) == 0, "%s", err.msg);
    const int N = k->N;
    size_t planes = (size_t)p.c * N, out_n = planes * p.oh * p.ow;
    /* All-negative inputs: a padding zero winning a max would show. */
    float *inp = rand_buf(planes * p.h * p.w, 1.0f);
    for (size_t i = 0; i < planes * p.h * p.w; i++)
        inp[i] = inp[i] * 0.5f - 2.0f;
    float *out = rand_buf(out_n, 10.0f);
    double *want_max = malloc(out_n * sizeof(double)), *want_avg = malloc(out_n * sizeof(double));
    ck_assert_ptr_nonnull(want_max);
    ck_assert_ptr_nonnull(want_avg);
    for (size_t pl = 0; pl < planes; pl++)
        for (int oy = 0; oy < p.oh; oy++)
            for (int ox = 0; ox < p.ow; ox++) {
                double m = -INFINITY, s = 0.0;
                int valid = 0, padded = 0;
                for (int ky = 0; ky < p.kh; ky++)
                    for (int kx = 0; kx < p.kw; kx++) {
                        int iy = oy * p.sh - p.pad_t + ky, ix = ox * p.sw - p.pad_l + kx;
                        /* Positions inside the zero-padded input count for include_pad. */
                        if (iy < p.h + p.pad_b && ix < p.w + p.pad_r)
                            padded++;
                        if (iy < 0 || iy >= p.h || ix < 0 || ix >= p.w)
                            continue;
                        double x = inp[(pl * p.h + iy) * p.w + ix];
                        m = fmax(m, x);
                        s += x;
                        valid++;
                    }
                ck_assert_int_gt(valid, 0);
                size_t o = (pl * p.oh + oy) * p.ow + ox;
                want_max[o] = m;
                want_avg[o] = s / (k->include_pad ? padded : valid);
            }
    char name[80];
    snprintf(name, sizeof name, "maxpool case %d (%dx%d -> %dx%d)", _i, p.h, p.w, p.oh, p.ow);
    cnn_maxpool_forward(out, inp, &p, N);
    check_close(name, out, want_max, out_n);
    snprintf(name, sizeof name, "avgpool case %d include_pad=%d ceil=%d", _i, k->include_pad,
             k->ceil_mode);
    cnn_avgpool_forward(out, inp, &p, N);
    check_close(name, out, want_avg, out_n);
    free(inp);
    free(out);
    free(want_max);
    free(want_avg);
}
END_TEST

/* Dilated max pooling (ONNX MaxPool dilations): forward = the max over the taps
 * oy*s - pad + i*d inside the input (-inf when none is), backward adds dout at the first
 * maximum in tap order; the padding rule uses the dilated extent (k - 1) * d + 1. */
START_TEST(test_dilated_maxpool_matches_direct_taps)
{
    /* clang-format off */
    static const struct { int h, w, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr, ceil; } cases[] = {
        {4, 4, 2, 2, 1, 1, 2, 2, 0, 0, 0, 0, 0},   /* ONNX test_maxpool_2d_dilations */
        {9, 11, 3, 2, 2, 3, 2, 3, 2, 1, 1, 3, 0},  /* padding up to (k-1)*d */
        {9, 11, 3, 2, 2, 3, 2, 3, 2, 1, 1, 3, 1},  /* the same in ceil mode */
        {1, 7, 1, 3, 1, 2, 1, 2, 0, 2, 0, 2, 0},   /* a 1-D row (N, C, 1, L) */
        {1, 2, 1, 2, 1, 1, 1, 5, 0, 1, 0, 3, 0},   /* the only window's taps both in padding */
    };
    /* clang-format on */
    for (int t = 0; t < (int)(sizeof cases / sizeof cases[0]); t++) {
        const int N = 2;
        struct cnn_pool2d p = {.c = 3,
                               .h = cases[t].h,
                               .w = cases[t].w,
                               .kh = cases[t].kh,
                               .kw = cases[t].kw,
                               .sh = cases[t].sh,
                               .sw = cases[t].sw,
                               .dh = cases[t].dh,
                               .dw = cases[t].dw,
                               .pad_t = cases[t].pt,
                               .pad_l = cases[t].pl,
                               .pad_b = cases[t].pb,
                               .pad_r = cases[t].pr,
                               .ceil_mode = cases[t].ceil};
        struct cnn_err err = {0};
        ck_assert_msg(cnn_pool2d_shape(&p, &err) == 0, "case %d: %s", t, err.msg);
        const size_t planes = (size_t)p.c * N, in_n = planes * p.h * p.w;
        const size_t out_n = planes * p.oh * p.ow;
        lcg_state = 4500u + (unsigned)t;
        float *inp = rand_buf(in_n, 1.0f), *out = rand_buf(out_n, 1.0f);
        float *dout = rand_buf(out_n, 1.0f), *dinp = calloc(in_n, sizeof(float));
        double *want = malloc(out_n * sizeof(double)), *want_d = calloc(in_n, sizeof(double));
        ck_assert(dinp && want && want_d);
        for (size_t i = 0; i < in_n; i++)
            inp[i] = inp[i] * 0.5f - 2.0f; /* all negative: a padding 0 winning would show */
        for (size_t pl = 0; pl < planes; pl++)
            for (int oy = 0; oy < p.oh; oy++)
                for (int ox = 0; ox < p.ow; ox++) {
                    double m = -INFINITY;
                    long best = -1;
                    for (int i = 0; i < p.kh; i++)
                        for (int j = 0; j < p.kw; j++) {
                            int y = oy * p.sh - p.pad_t + i * p.dh;
                            int x = ox * p.sw - p.pad_l + j * p.dw;
                            long at = ((long)pl * p.h + y) * p.w + x;
                            if (y >= 0 && y < p.h && x >= 0 && x < p.w && inp[at] > m) {
                                m = inp[at];
                                best = at;
                            }
                        }
                    const size_t o = (pl * p.oh + oy) * p.ow + ox;
                    want[o] = m;
                    if (best >= 0)
                        want_d[best] += dout[o];
                }
        cnn_maxpool_forward(out, inp, &p, N);
        for (size_t o = 0; o < out_n; o++)
            ck_assert_msg(out[o] == (float)want[o], "case %d out %zu: %g vs %g", t, o, out[o],
                          want[o]);
        cnn_maxpool_backward(dinp, dout, inp, &p, N);
        check_close("dilated maxpool backward", dinp, want_d, in_n);
        free(inp), free(out), free(dout), free(dinp), free(want), free(want_d);
    }
    struct cnn_pool2d p = pool(9, 2, 1, 3, 0, 0); /* pad 3 >= extent 3 of k 2, d 2 */
    p.dh = p.dw = 2;
    expect_pool_error(p, "padding");
    p.pad_t = p.pad_l = 2;
    struct cnn_err err = {0};
    ck_assert_msg(cnn_pool2d_shape(&p, &err) == 0, "%s", err.msg);
    p.dw = -1;
    expect_pool_error(p, "dilation");
}
END_TEST

START_TEST(test_global_avgpool_matches_plane_means)
{
    lcg_state = 4500u;
    const size_t planes = 3 * 5, hw = 7 * 9;
    float *inp = rand_buf(planes * hw, 3.0f), *out = rand_buf(planes, 10.0f);
    double want[15];
    for (size_t p = 0; p < planes; p++) {
        double s = 0.0;
        for (size_t i = 0; i < hw; i++)
            s += inp[p * hw + i];
        want[p] = s / (double)hw;
    }
    cnn_global_avgpool_forward(out, inp, planes, hw);
    check_close("global avgpool 15 planes of 7x9", out, want, planes);
    free(inp);
    free(out);
}
END_TEST

/* ---- elementwise -------------------------------------------------------- */

START_TEST(test_every_activation_matches_its_formula)
{
    static const struct cnn_act_params acts[] = {
        {CNN_ACT_NONE, 0, 0},          {CNN_ACT_RELU, 0, 0}, {CNN_ACT_LEAKY_RELU, 0.01f, 0},
        {CNN_ACT_LEAKY_RELU, 0.3f, 0}, {CNN_ACT_CLIP, 0, 6}, {CNN_ACT_CLIP, -0.5f, 0.25f},
        {CNN_ACT_SIGMOID, 0, 0},       {CNN_ACT_TANH, 0, 0},
    };
    for (size_t a = 0; a < sizeof acts / sizeof acts[0]; a++) {
        lcg_state = 5000u + (unsigned)a;
        const size_t n = 301;
        float *x = rand_buf(n, 8.0f);
        x[0] = 0.0f;
        x[1] = 30.0f; /* saturating sigmoid/tanh */
        x[2] = -30.0f;
        double want[301];
        for (size_t i = 0; i < n; i++)
            want[i] = act_ref(x[i], &acts[a]);
        cnn_act_apply(x, n, &acts[a]);
        char name[64];
        snprintf(name, sizeof name, "act %s alpha=%g beta=%g", cnn_act_name(acts[a].kind),
                 (double)acts[a].alpha, (double)acts[a].beta);
        check_close(name, x, want, n);
        free(x);
    }
}
END_TEST

/* cnn_act_apply runs four lanes at a time and the last n % 4 values one by one: the same
 * special value gives the same bits in a lane and in the tail, and what the definition says:
 * NaN stays NaN except through ReLU (x > 0 is false: +0), -0 leaves ReLU as +0, +-inf as
 * act_ref has it. */
START_TEST(test_activation_special_values_same_in_lanes_and_tail)
{
    static const struct cnn_act_params acts[] = {
        {CNN_ACT_RELU, 0, 0},       {CNN_ACT_LEAKY_RELU, 0.1f, 0},
        {CNN_ACT_CLIP, 0, 6},       {CNN_ACT_HARD_SIGMOID, 0.2f, 0.5f},
        {CNN_ACT_HARD_SWISH, 0, 0}, {CNN_ACT_SIGMOID, 0, 0},
        {CNN_ACT_TANH, 0, 0},       {CNN_ACT_NONE, 0, 0},
    };
    const float special[] = {NAN, -0.0f, 0.0f, INFINITY, -INFINITY, -2.5f, 7.0f};
    enum { K = sizeof special / sizeof special[0], N = 13 }; /* lanes 0..11, tail 12 */
    for (size_t a = 0; a < sizeof acts / sizeof acts[0]; a++) {
        for (int k = 0; k < K; k++) {
            float y[N];
            for (int i = 0; i < N; i++)
                y[i] = 0.5f;
            y[1] = y[N - 1] = special[k];
            cnn_act_apply(y, N, &acts[a]);
            const char *name = cnn_act_name(acts[a].kind);
            ck_assert_msg(memcmp(&y[1], &y[N - 1], sizeof(float)) == 0,
                          "%s(%g): a lane gives %g, the tail %g", name, (double)special[k],
                          (double)y[1], (double)y[N - 1]);
            if (isnan(special[k])) {
                if (acts[a].kind == CNN_ACT_RELU)
                    ck_assert_msg(y[1] == 0.0f && !signbit(y[1]), "relu(NaN) = %g", (double)y[1]);
                else
                    ck_assert_msg(isnan(y[1]), "%s(NaN) = %g", name, (double)y[1]);
            } else if (special[k] == 0.0f && acts[a].kind == CNN_ACT_RELU) {
                ck_assert_msg(y[1] == 0.0f && !signbit(y[1]), "relu(%g) = -0", (double)special[k]);
            } else {
                const double want = act_ref(special[k], &acts[a]); /* hard swish(-inf): NaN */
                ck_assert_msg(isnan(want) ? isnan(y[1])
                                          : y[1] == (float)want || fabs(y[1] - want) < 1e-6,
                              "%s(%g) = %g, want %g", name, (double)special[k], (double)y[1], want);
            }
        }
    }
}
END_TEST

/* The add's vector lanes and its tail, with 1, 2 and 5 inputs, in place and not. */
START_TEST(test_add_any_count_of_inputs_lanes_and_tail)
{
    lcg_state = 7100u;
    const size_t n = 4 * 9 + 3;
    const struct cnn_act_params relu = {CNN_ACT_RELU, 0, 0}, leaky = {CNN_ACT_LEAKY_RELU, 0.25f, 0};
    float *in[5];
    for (int k = 0; k < 5; k++)
        in[k] = rand_buf(n, 2.0f);
    float *out = rand_buf(n, 10.0f), *first = rand_buf(n, 1.0f);
    double want[4 * 9 + 3];
    const int counts[] = {1, 2, 5};
    for (int c = 0; c < 3; c++) {
        for (int act = 0; act < 2; act++) {
            const struct cnn_act_params *ap = act ? &leaky : &relu;
            for (size_t i = 0; i < n; i++) {
                double s = 0;
                for (int k = 0; k < counts[c]; k++)
                    s += in[k][i];
                want[i] = act_ref(s, ap);
            }
            const float *ins[5] = {in[0], in[1], in[2], in[3], in[4]};
            char name[64];
            snprintf(name, sizeof name, "add of %d, %s", counts[c], cnn_act_name(ap->kind));
            cnn_add_forward(out, ins, counts[c], n, ap);
            check_close(name, out, want, n);
            memcpy(first, in[0], n * sizeof *first); /* out = inputs[0], as the session runs it */
            ins[0] = first;
            cnn_add_forward(first, ins, counts[c], n, ap);
            snprintf(name, sizeof name, "add of %d in place, %s", counts[c],
                     cnn_act_name(ap->kind));
            check_close(name, first, want, n);
        }
    }
    for (int k = 0; k < 5; k++)
        free(in[k]);
    free(out);
    free(first);
}
END_TEST

START_TEST(test_scale_shift_with_act_matches_per_channel_formula)
{
    lcg_state = 6000u;
    const int C = 5;
    const size_t n_hw = 3 * 7 * 9;
    float *inp = rand_buf(C * n_hw, 2.0f), *scale = rand_buf(C, 1.5f), *shift = rand_buf(C, 1.0f);
    float *out = rand_buf(C * n_hw, 10.0f);
    double *want = malloc(C * n_hw * sizeof *want);
    ck_assert_ptr_nonnull(want);
    const struct cnn_act_params six = {CNN_ACT_CLIP, 0, 6}, relu = {CNN_ACT_RELU, 0, 0};
    for (int c = 0; c < C; c++)
        for (size_t i = 0; i < n_hw; i++)
            want[c * n_hw + i] = act_ref((double)inp[c * n_hw + i] * scale[c] + shift[c], &six);
    cnn_scale_shift_forward(out, inp, scale, shift, C, n_hw, &six);
    check_close("scale_shift relu6", out, want, C * n_hw);
    /* In place (the contract allows aliasing). */
    for (int c = 0; c < C; c++)
        for (size_t i = 0; i < n_hw; i++)
            want[c * n_hw + i] = act_ref((double)inp[c * n_hw + i] * scale[c] + shift[c], &relu);
    cnn_scale_shift_forward(inp, inp, scale, shift, C, n_hw, &relu);
    check_close("scale_shift relu in place", inp, want, C * n_hw);
    free(inp);
    free(scale);
    free(shift);
    free(out);
    free(want);
}
END_TEST

START_TEST(test_add_three_inputs_with_relu)
{
    lcg_state = 7000u;
    const size_t n = 2 * 3 * 5 * 7;
    float *a = rand_buf(n, 1.0f), *b = rand_buf(n, 1.0f), *c = rand_buf(n, 1.0f);
    float *out = rand_buf(n, 10.0f);
    double *want = malloc(n * sizeof *want);
    ck_assert_ptr_nonnull(want);
    size_t negatives = 0;
    for (size_t i = 0; i < n; i++) {
        double s = (double)a[i] + b[i] + c[i];
        negatives += s < 0;
        want[i] = s < 0 ? 0 : s;
    }
    ck_assert_uint_gt(negatives, 0); /* relu really clips something */
    const struct cnn_act_params relu = {CNN_ACT_RELU, 0, 0}, none = {CNN_ACT_NONE, 0, 0};
    const float *ins[3] = {a, b, c};
    cnn_add_forward(out, ins, 3, n, &relu);
    check_close("add 3 inputs relu", out, want, n);
    cnn_add_forward(a, ins, 3, n, &relu); /* out aliases inputs[0] */
    check_close("add 3 inputs relu, out = inputs[0]", a, want, n);
    for (size_t i = 0; i < n; i++)
        want[i] = (double)b[i] + c[i];
    const float *two[2] = {b, c};
    cnn_add_forward(out, two, 2, n, &none);
    check_close("add 2 inputs no act", out, want, n);
    free(a);
    free(b);
    free(c);
    free(out);
    free(want);
}
END_TEST

/* cnn_add_forward works in blocks of 1024 with a 4-lane loop and a tail: sizes across block
 * and lane edges, 1 and 4 inputs, in place over inputs[0]; relu maps NaN and -0 to +0 and
 * keeps +Inf, as the scalar a > 0 ? a : 0 (the naive reference here). */
START_TEST(test_add_blocks_and_relu_edges)
{
    const size_t sizes[] = {1, 3, 4, 1023, 1024, 1025, 2 * 1024 + 7};
    const struct cnn_act_params relu = {CNN_ACT_RELU, 0, 0};
    lcg_state = 7100u;
    for (size_t t = 0; t < sizeof sizes / sizeof sizes[0]; t++) {
        const size_t n = sizes[t];
        float *in[4], *out = rand_buf(n, 10.0f);
        for (int k = 0; k < 4; k++)
            in[k] = rand_buf(n, 1.0f);
        if (n > 5) {
            in[0][1] = NAN, in[0][2] = -0.0f, in[1][2] = -0.0f, in[2][2] = -0.0f, in[3][2] = -0.0f;
            in[0][n - 1] = INFINITY;
        }
        for (int k = 1; k <= 4; k += 3) {
            const float *ins[4] = {in[0], in[1], in[2], in[3]};
            cnn_add_forward(out, ins, k, n, &relu);
            for (size_t i = 0; i < n; i++) {
                float s = in[0][i];
                for (int j = 1; j < k; j++)
                    s += in[j][i];
                const float want = s > 0.0f ? s : 0.0f;
                ck_assert_msg(memcmp(&out[i], &want, sizeof want) == 0,
                              "n %zu, %d inputs, [%zu]: %g vs %g", n, k, i, out[i], want);
            }
        }
        const float *ins[2] = {in[0], in[1]};
        float *want = malloc(n * sizeof *want);
        for (size_t i = 0; i < n; i++) {
            const float s = in[0][i] + in[1][i];
            want[i] = s > 0.0f ? s : 0.0f;
        }
        cnn_add_forward(in[0], ins, 2, n, &relu); /* in place over inputs[0] */
        ck_assert_mem_eq(in[0], want, n * sizeof *want);
        free(want);
        free(out);
        for (int k = 0; k < 4; k++)
            free(in[k]);
    }
}
END_TEST

START_TEST(test_lrn_matches_channel_window_formula)
{
    static const struct cnn_lrn cases[] = {
        {5, 1e-4f, 0.75f, 2.0f}, /* AlexNet */
        {3, 0.5f, 0.5f, 1.0f},
        {4, 2.0f, 0.6f, 1.5f}, /* even size: window c-1 .. c+2 */
        {1, 1.0f, 1.0f, 1.0f},
        {5, 1.0f, 0.75f, 1.0f}, /* beta 0.75 with a window sum that matters */
    };
    const struct cnn_lrn *p = &cases[_i];
    lcg_state = 8000u + (unsigned)_i;
    const int C = 7;
    const size_t n_hw = 3 * 5 * 4;
    float *inp = rand_buf(C * n_hw, 2.0f), *out = rand_buf(C * n_hw, 10.0f);
    double *want = malloc(C * n_hw * sizeof *want);
    ck_assert_ptr_nonnull(want);
    for (int c = 0; c < C; c++)
        for (size_t i = 0; i < n_hw; i++) {
            double s = 0.0;
            for (int j = c - (p->size - 1) / 2; j <= c + p->size / 2; j++)
                if (j >= 0 && j < C)
                    s += (double)inp[j * n_hw + i] * inp[j * n_hw + i];
            want[c * n_hw + i] = inp[c * n_hw + i] / pow(p->k + p->alpha / p->size * s, p->beta);
        }
    cnn_lrn_forward(out, inp, p, C, n_hw);
    char name[64];
    snprintf(name, sizeof name, "lrn size %d alpha %g beta %g k %g", p->size, (double)p->alpha,
             (double)p->beta, (double)p->k);
    check_close(name, out, want, C * n_hw);
    free(inp);
    free(out);
    free(want);
}
END_TEST

START_TEST(test_softmax_is_stable_and_matches_formula)
{
    lcg_state = 9000u;
    const int K = 11, N = 3;
    float *inp = rand_buf((size_t)K * N, 5.0f), *out = rand_buf((size_t)K * N, 1.0f);
    for (int k = 0; k < K; k++)
        inp[k * N + 2] += 1000.0f; /* item 2: would overflow expf without the max shift */
    double want[33];
    for (int n = 0; n < N; n++) {
        double m = -INFINITY, s = 0.0;
        for (int k = 0; k < K; k++)
            m = fmax(m, inp[k * N + n]);
        for (int k = 0; k < K; k++)
            s += exp((double)inp[k * N + n] - m);
        for (int k = 0; k < K; k++)
            want[k * N + n] = exp((double)inp[k * N + n] - m) / s;
    }
    cnn_softmax_forward(out, inp, K, N);
    check_close("softmax K=11 N=3 (one item offset +1000)", out, want, (size_t)K * N);
    for (int n = 0; n < N; n++) {
        double s = 0.0;
        for (int k = 0; k < K; k++)
            s += out[k * N + n];
        ck_assert_double_eq_tol(s, 1.0, 1e-5);
    }
    cnn_softmax_forward(inp, inp, K, N); /* in place */
    check_close("softmax in place", inp, want, (size_t)K * N);
    free(inp);
    free(out);
}
END_TEST

START_TEST(test_flatten_reorders_to_batch_minor_features)
{
    lcg_state = 9500u;
    const int C = 3, N = 4, hw = 5;
    float *inp = rand_buf((size_t)C * N * hw, 1.0f), *out = rand_buf((size_t)C * N * hw, 9.0f);
    double want[60];
    /* Item n's NCHW features are (c, i) -> feature c*hw + i; dense input is (IN, N). */
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            for (int i = 0; i < hw; i++)
                want[(c * hw + i) * N + n] = inp[(c * N + n) * hw + i];
    cnn_flatten_forward(out, inp, C, N, hw);
    check_close("flatten (3,4,5) -> (15,4)", out, want, (size_t)C * N * hw);
    free(inp);
    free(out);
}
END_TEST

Suite *layers_suite(void)
{
    Suite *s = suite_create("layers");
    TCase *tc = tcase_create("layers");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_conv2d_shape_rejects_each_bad_field_by_name);
    tcase_add_test(tc, test_pool2d_shape_follows_pytorch_floor_and_ceil_rules);
    tcase_add_test(tc, test_pool2d_shape_rejects_each_bad_field_by_name);
    tcase_add_test(tc, test_kind_and_act_names);
    tcase_add_loop_test(tc, test_dense_matches_direct_loops, 0, 4);
    tcase_add_loop_test(tc, test_pool_matches_direct_windows, 0, N_POOL_CASES);
    tcase_add_test(tc, test_dilated_maxpool_matches_direct_taps);
    tcase_add_test(tc, test_global_avgpool_matches_plane_means);
    tcase_add_test(tc, test_every_activation_matches_its_formula);
    tcase_add_test(tc, test_scale_shift_with_act_matches_per_channel_formula);
    tcase_add_test(tc, test_add_three_inputs_with_relu);
    tcase_add_test(tc, test_activation_special_values_same_in_lanes_and_tail);
    tcase_add_test(tc, test_add_any_count_of_inputs_lanes_and_tail);
    tcase_add_test(tc, test_add_blocks_and_relu_edges);
    tcase_add_loop_test(tc, test_lrn_matches_channel_window_formula, 0, 5);
    tcase_add_test(tc, test_softmax_is_stable_and_matches_formula);
    tcase_add_test(tc, test_flatten_reorders_to_batch_minor_features);
    suite_add_tcase(s, tc);
    return s;
}
