/* Suite layers_conv: the conv2d kernels (im2col, chunked, pointwise, Winograd F(2x2,3x3) and
 * F(4x4,3x3) with its residual epilogue and its row / channel parts, on plain and on packed
 * weights)
 * against a naive direct convolution written here with explicit padding/stride/dilation/
 * groups indexing, on odd shapes; batch independence, scratch sizes, the Winograd weight
 * transform and the predicate that picks it.  Data from a seeded LCG (test_util.h). */
#include "avx512.h"
#include "gemm_packed.h"
#include "layer.h"
#include "test_util.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- convolution -------------------------------------------------------- */

struct conv_case {
    const char *name;
    int N, c, h, w, oc, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr, groups, bias;
    struct cnn_act_params act;
};

/* clang-format off */
static const struct conv_case conv_cases[] = {
    {"conv 3x3 s2 asym pad bias relu", 3, 3, 7, 9, 4, 3, 3, 2, 2, 1, 1, 1, 0, 2, 1, 1, 1,
     {CNN_ACT_RELU, 0, 0}},
    {"conv 3x3 dilation 2 pad 2", 2, 4, 9, 7, 5, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2, 1, 0,
     {CNN_ACT_NONE, 0, 0}},
    {"conv 3x2 groups 2 s(1,2) leaky", 3, 4, 7, 9, 6, 3, 2, 1, 2, 1, 1, 0, 1, 1, 0, 2, 1,
     {CNN_ACT_LEAKY_RELU, 0.1f, 0}},
    {"conv depthwise 3x3 pad 1 relu6", 3, 5, 7, 9, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 5, 1,
     {CNN_ACT_CLIP, 0, 6}},
    {"conv depthwise x2 s2 dil2 asym pad", 2, 3, 9, 8, 6, 3, 3, 2, 2, 2, 2, 2, 1, 0, 2, 3, 1,
     {CNN_ACT_NONE, 0, 0}},
    {"conv 1x1 pointwise bias sigmoid", 3, 6, 7, 9, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1,
     {CNN_ACT_SIGMOID, 0, 0}},
    {"conv 1x1 stride 2 tanh", 3, 4, 7, 9, 3, 1, 1, 2, 2, 1, 1, 0, 0, 0, 0, 1, 0,
     {CNN_ACT_TANH, 0, 0}},
    {"conv 1x1 pointwise groups 2 no bias relu", 3, 6, 5, 3, 4, 1, 1, 1, 1, 3, 3, 0, 0, 0, 0,
     2, 0, {CNN_ACT_RELU, 0, 0}},
    {"conv 1x1 with padding", 2, 3, 4, 5, 2, 1, 1, 1, 1, 1, 1, 1, 0, 0, 2, 1, 1,
     {CNN_ACT_NONE, 0, 0}},
    {"conv single channel 5x5 pad 2", 3, 1, 9, 7, 4, 5, 5, 1, 1, 1, 1, 2, 2, 2, 2, 1, 1,
     {CNN_ACT_NONE, 0, 0}},
    {"conv 1x3 dil 3 in w s(2,1)", 3, 3, 7, 11, 4, 1, 3, 2, 1, 1, 3, 0, 3, 1, 2, 1, 1,
     {CNN_ACT_NONE, 0, 0}},
    {"conv 7x7 s2 pad 3 (resnet stem)", 2, 3, 15, 13, 8, 7, 7, 2, 2, 1, 1, 3, 3, 3, 3, 1, 1,
     {CNN_ACT_RELU, 0, 0}},
    {"conv 3x3 groups 3 N=1", 1, 6, 6, 5, 9, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 3, 1,
     {CNN_ACT_NONE, 0, 0}},
    {"conv depthwise 5x5 pad 2 bias relu N=1", 1, 4, 7, 9, 4, 5, 5, 1, 1, 1, 1, 2, 2, 2, 2, 4,
     1, {CNN_ACT_RELU, 0, 0}},
    {"conv 3x3 pad (0,1,1,0) bias relu odd count", 1, 3, 6, 7, 5, 3, 3, 1, 1, 1, 1, 0, 1, 1,
     0, 1, 1, {CNN_ACT_RELU, 0, 0}},
    /* large enough that the batch is unrolled in several chunks crossing image borders */
    {"conv 3x3 groups 2 chunked", 3, 12, 45, 47, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 2, 1,
     {CNN_ACT_RELU, 0, 0}},
    {"conv 5x5 s2 chunked", 2, 16, 61, 61, 4, 5, 5, 2, 2, 1, 1, 2, 2, 2, 2, 1, 1,
     {CNN_ACT_NONE, 0, 0}},
};
/* clang-format on */
#define N_CONV_CASES ((int)(sizeof conv_cases / sizeof conv_cases[0]))

static struct cnn_conv2d conv_params(const struct conv_case *k)
{
    /* clang-format off */
    struct cnn_conv2d p = {.c = k->c, .h = k->h, .w = k->w, .oc = k->oc, .kh = k->kh,
                           .kw = k->kw, .sh = k->sh, .sw = k->sw, .dh = k->dh, .dw = k->dw,
                           .pad_t = k->pt, .pad_l = k->pl, .pad_b = k->pb, .pad_r = k->pr,
                           .groups = k->groups, .has_bias = k->bias, .act = k->act};
    /* clang-format on */
    struct cnn_err err = {0};
    ck_assert_msg(cnn_conv2d_shape(&p, &err) == 0, "%s: %s", k->name, err.msg);
    /* Output size from the textbook formula, independently of layer.c. */
    ck_assert_int_eq(p.oh, (k->h + k->pt + k->pb - k->dh * (k->kh - 1) - 1) / k->sh + 1);
    ck_assert_int_eq(p.ow, (k->w + k->pl + k->pr - k->dw * (k->kw - 1) - 1) / k->sw + 1);
    return p;
}

/* Direct convolution: out (OC, N, OH, OW) from inp (C, N, H, W), in double. */
static void conv_ref(double *out, const float *inp, const float *w, const float *b,
                     const struct cnn_conv2d *p, int N)
{
    int cg = p->c / p->groups, ocg = p->oc / p->groups;
    for (int oc = 0; oc < p->oc; oc++) {
        int g = oc / ocg;
        for (int n = 0; n < N; n++)
            for (int oy = 0; oy < p->oh; oy++)
                for (int ox = 0; ox < p->ow; ox++) {
                    double s = b ? b[oc] : 0.0;
                    for (int ci = 0; ci < cg; ci++)
                        for (int ky = 0; ky < p->kh; ky++)
                            for (int kx = 0; kx < p->kw; kx++) {
                                int iy = oy * p->sh - p->pad_t + ky * p->dh;
                                int ix = ox * p->sw - p->pad_l + kx * p->dw;
                                if (iy < 0 || iy >= p->h || ix < 0 || ix >= p->w)
                                    continue;
                                int c = g * cg + ci;
                                double x = inp[(((size_t)c * N + n) * p->h + iy) * p->w + ix];
                                double wv = w[(((size_t)oc * cg + ci) * p->kh + ky) * p->kw + kx];
                                s += x * wv;
                            }
                    out[(((size_t)oc * N + n) * p->oh + oy) * p->ow + ox] = act_ref(s, &p->act);
                }
    }
}

START_TEST(test_conv2d_matches_direct_convolution)
{
    const struct conv_case *k = &conv_cases[_i];
    lcg_state = 1000u + (unsigned)_i;
    struct cnn_conv2d p = conv_params(k);
    const int N = k->N;
    size_t in_n = (size_t)p.c * N * p.h * p.w, out_n = (size_t)p.oc * N * p.oh * p.ow;
    size_t w_n = (size_t)p.oc * (p.c / p.groups) * p.kh * p.kw;
    float *inp = rand_buf(in_n, 1.0f), *w = rand_buf(w_n, 1.0f);
    float *b = k->bias ? rand_buf((size_t)p.oc, 1.0f) : NULL;
    size_t col_n = cnn_conv2d_scratch_floats(&p, N);
    float *col = rand_buf(col_n, 1.0f);
    float *out = rand_buf(out_n, 100.0f); /* garbage must be overwritten */
    double *want = malloc(out_n * sizeof *want);
    ck_assert_ptr_nonnull(want);
    cnn_conv2d_forward(out, inp, w, b, col, &p, N);
    conv_ref(want, inp, w, b, &p, N);
    check_close(k->name, out, want, out_n);
    free(inp);
    free(w);
    free(b);
    free(col);
    free(out);
    free(want);
}
END_TEST

START_TEST(test_conv2d_batch_of_3_equals_3_single_passes)
{
    const struct conv_case *k = &conv_cases[_i];
    lcg_state = 2000u + (unsigned)_i;
    struct cnn_conv2d p = conv_params(k);
    const int N = 3;
    size_t hw = (size_t)p.h * p.w, ohw = (size_t)p.oh * p.ow;
    size_t w_n = (size_t)p.oc * (p.c / p.groups) * p.kh * p.kw;
    float *inp = rand_buf((size_t)p.c * N * hw, 1.0f), *w = rand_buf(w_n, 1.0f);
    float *b = k->bias ? rand_buf((size_t)p.oc, 1.0f) : NULL;
    float *col = zero_buf(cnn_conv2d_scratch_floats(&p, N));
    float *out = zero_buf((size_t)p.oc * N * ohw);
    float *one_in = zero_buf((size_t)p.c * hw), *one_out = zero_buf((size_t)p.oc * ohw);
    cnn_conv2d_forward(out, inp, w, b, col, &p, N);
    double err = 0.0;
    for (int n = 0; n < N; n++) {
        for (int c = 0; c < p.c; c++) /* item n out of (C, N, H, W) */
            memcpy(one_in + c * hw, inp + ((size_t)c * N + n) * hw, hw * sizeof(float));
        cnn_conv2d_forward(one_out, one_in, w, b, col, &p, 1);
        for (int oc = 0; oc < p.oc; oc++)
            for (size_t i = 0; i < ohw; i++)
                err = fmax(
                    err, fabs((double)one_out[oc * ohw + i] - out[((size_t)oc * N + n) * ohw + i]));
    }
    printf("%-44s batch-vs-single max diff %.3e\n", k->name, err);
    ck_assert_double_le(err, 1e-5);
    free(inp);
    free(w);
    free(b);
    free(col);
    free(out);
    free(one_in);
    free(one_out);
}
END_TEST

START_TEST(test_conv2d_large_cases_really_chunk)
{
    for (int i = 0; i < N_CONV_CASES; i++) {
        if (!strstr(conv_cases[i].name, "chunked"))
            continue;
        struct cnn_conv2d p = conv_params(&conv_cases[i]);
        int N = conv_cases[i].N;
        int rows = cnn_conv2d_chunk_rows(&p, N);
        ck_assert_msg(rows < N * p.oh && rows > p.oh / 2, "%s: %d rows per chunk of %d",
                      conv_cases[i].name, rows, N * p.oh);
        ck_assert_msg((N * p.oh) % rows != 0, "%s: want a partial last chunk", conv_cases[i].name);
    }
}
END_TEST

START_TEST(test_conv2d_scratch_is_zero_only_for_pointwise)
{
    const struct conv_case *k = &conv_cases[_i];
    struct cnn_conv2d p = conv_params(k);
    int pointwise =
        k->kh == 1 && k->kw == 1 && k->sh == 1 && k->sw == 1 && k->pt + k->pl + k->pb + k->pr == 0;
    ck_assert_int_eq(cnn_conv2d_is_pointwise(&p), pointwise);
    /* The whole col matrix of one group, or a chunk of whole output rows when that is
     * larger than CNN_CONV_CHUNK_FLOATS (but never less than one row, nor fewer rows
     * than give CNN_CONV_MIN_COLS GEMM columns). */
    size_t row = (size_t)(k->c / k->groups) * k->kh * k->kw * p.ow;
    size_t full = row * 4 * p.oh;
    size_t got = cnn_conv2d_scratch_floats(&p, 4);
    if (pointwise)
        ck_assert_uint_eq(got, 0);
    else if (full <= CNN_CONV_CHUNK_FLOATS)
        ck_assert_uint_eq(got, full);
    else
    {
        size_t min_rows = (CNN_CONV_MIN_COLS + p.ow - 1) / p.ow;
        size_t cap = CNN_CONV_CHUNK_FLOATS + row > min_rows * row ? CNN_CONV_CHUNK_FLOATS + row
                                                                   : min_rows * row;
        ck_assert(got % row == 0 && got >= row && got <= cap && got < full);
    }
}
END_TEST

/* ---- Winograd F(2x2,3x3) --------------------------------------------------- */

/* Every case passes cnn_conv2d_use_winograd(); odd sizes leave partial edge tiles. */
/* clang-format off */
static const struct conv_case wino_cases[] = {
    {"wino pad 1 odd 9x11 bias relu N=3", 3, 17, 9, 11, 19, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
     {CNN_ACT_RELU, 0, 0}},
    {"wino pad (0,1,1,0) leaky N=1", 1, 16, 7, 8, 18, 3, 3, 1, 1, 1, 1, 0, 1, 1, 0, 1, 1,
     {CNN_ACT_LEAKY_RELU, 0.1f, 0}},
    {"wino no pad no bias N=3", 3, 20, 10, 9, 16, 3, 3, 1, 1, 1, 1, 0, 0, 0, 0, 1, 0,
     {CNN_ACT_NONE, 0, 0}},
    {"wino pad (1,1,1,1) 5x5 bias N=1", 1, 18, 5, 5, 21, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
     {CNN_ACT_NONE, 0, 0}},
    {"wino pad (2,0,1,2) tanh N=3", 3, 16, 6, 7, 17, 3, 3, 1, 1, 1, 1, 2, 0, 1, 2, 1, 1,
     {CNN_ACT_TANH, 0, 0}},
    {"wino 3x3 input 1x1 output relu N=3", 3, 16, 3, 3, 16, 3, 3, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1,
     {CNN_ACT_RELU, 0, 0}},
    {"wino 3x12 input one output row N=3", 3, 19, 3, 12, 17, 3, 3, 1, 1, 1, 1, 0, 0, 0, 0, 1, 0,
     {CNN_ACT_RELU, 0, 0}},
    {"wino 14x14 relu6 N=3", 3, 16, 14, 14, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
     {CNN_ACT_CLIP, 0, 6}},
    /* F(4x4) edges: OW mod 4 = 1, 2, 3, OH mod 4 = 2; channels not multiples of 8 */
    {"wino 13x6 pad 1 C=21 OC=23 N=2", 2, 21, 13, 6, 23, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
     {CNN_ACT_RELU, 0, 0}},
    {"wino 8x11 no pad OW=9 sigmoid N=2", 2, 17, 8, 11, 18, 3, 3, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1,
     {CNN_ACT_SIGMOID, 0, 0}},
    {"wino 7x7 pad 1 (resnet late) N=1", 1, 24, 7, 7, 40, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
     {CNN_ACT_RELU, 0, 0}},
    /* 11 tiles across (output rows past 16 floats), 16 (one full AVX-512 vector, its
     * next-block columns read), 18 */
    {"wino 5x32 pad 1 N=2", 2, 17, 5, 32, 18, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
     {CNN_ACT_RELU, 0, 0}},
    {"wino 6x21 pad 1 N=2", 2, 16, 6, 21, 17, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
     {CNN_ACT_RELU, 0, 0}},
    {"wino 5x66 pad 1 (F(4x4): 17 tiles across) N=1", 1, 16, 5, 66, 16, 3, 3, 1, 1, 1, 1, 1, 1,
     1, 1, 1, 1, {CNN_ACT_RELU, 0, 0}},
    {"wino 4x36 pad (1,2,0,0) N=2", 2, 16, 4, 36, 16, 3, 3, 1, 1, 1, 1, 1, 2, 0, 0, 1, 1,
     {CNN_ACT_NONE, 0, 0}},
    /* more tiles than one chunk holds: chunks cross image borders, the last is partial */
    {"wino chunked 33x35 bias relu N=3", 3, 16, 33, 35, 17, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
     {CNN_ACT_RELU, 0, 0}},
};
/* clang-format on */
#define N_WINO_CASES ((int)(sizeof wino_cases / sizeof wino_cases[0]))

/* Runs the Winograd forward on random data; out must be (OC, N, OH, OW) floats. */
static void wino_forward(float *out, const float *inp, const float *w, const float *b,
                         const struct cnn_conv2d *p, int N)
{
    float *u = rand_buf(cnn_winograd_weights_floats(p), 1.0f);
    float *scratch = rand_buf(cnn_conv2d_scratch_floats(p, N), 100.0f); /* garbage */
    cnn_winograd_transform_weights(u, w, p);
    cnn_conv2d_forward_winograd(out, inp, u, b, scratch, p, N);
    free(u);
    free(scratch);
}

START_TEST(test_conv2d_winograd_matches_direct_convolution)
{
    const struct conv_case *k = &wino_cases[_i];
    lcg_state = 3000u + (unsigned)_i;
    struct cnn_conv2d p = conv_params(k);
    ck_assert_msg(cnn_conv2d_use_winograd(&p), "%s: predicate refuses it", k->name);
    const int N = k->N;
    size_t in_n = (size_t)p.c * N * p.h * p.w, out_n = (size_t)p.oc * N * p.oh * p.ow;
    float *inp = rand_buf(in_n, 1.0f), *w = rand_buf((size_t)p.oc * p.c * 9, 1.0f);
    float *b = k->bias ? rand_buf((size_t)p.oc, 1.0f) : NULL;
    float *out = rand_buf(out_n, 100.0f); /* garbage must be overwritten */
    double *want = malloc(out_n * sizeof *want);
    ck_assert_ptr_nonnull(want);
    wino_forward(out, inp, w, b, &p, N);
    conv_ref(want, inp, w, b, &p, N);
    check_close(k->name, out, want, out_n);
    free(inp);
    free(w);
    free(b);
    free(out);
    free(want);
}
END_TEST

START_TEST(test_conv2d_winograd_batch_of_3_equals_3_single_passes)
{
    const struct conv_case *k = &wino_cases[_i];
    lcg_state = 4000u + (unsigned)_i;
    struct cnn_conv2d p = conv_params(k);
    const int N = 3;
    size_t hw = (size_t)p.h * p.w, ohw = (size_t)p.oh * p.ow;
    float *inp = rand_buf((size_t)p.c * N * hw, 1.0f), *w = rand_buf((size_t)p.oc * p.c * 9, 1.0f);
    float *b = k->bias ? rand_buf((size_t)p.oc, 1.0f) : NULL;
    float *out = zero_buf((size_t)p.oc * N * ohw);
    float *one_in = zero_buf((size_t)p.c * hw), *one_out = zero_buf((size_t)p.oc * ohw);
    wino_forward(out, inp, w, b, &p, N);
    double err = 0.0;
    for (int n = 0; n < N; n++) {
        for (int c = 0; c < p.c; c++) /* item n out of (C, N, H, W) */
            memcpy(one_in + c * hw, inp + ((size_t)c * N + n) * hw, hw * sizeof(float));
        wino_forward(one_out, one_in, w, b, &p, 1);
        for (int oc = 0; oc < p.oc; oc++)
            for (size_t i = 0; i < ohw; i++)
                err = fmax(
                    err, fabs((double)one_out[oc * ohw + i] - out[((size_t)oc * N + n) * ohw + i]));
    }
    printf("%-44s batch-vs-single max diff %.3e\n", k->name, err);
    ck_assert_double_le(err, 1e-5);
    free(inp);
    free(w);
    free(b);
    free(out);
    free(one_in);
    free(one_out);
}
END_TEST

/* U = G g G^T from the paper's G, in double, against the compile-time transform: loop 0
 * F(2x2) (4x3 G), loop 1 F(4x4) (6x3 G, points 0, 1, -1, 2, -2). */
START_TEST(test_winograd_weight_transform_is_g_g_gt)
{
    static const double G2[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
    static const double G4[6][3] = {{0.25, 0, 0},          {-1 / 6.0, -1 / 6.0, -1 / 6.0},
                                    {-1 / 6.0, 1 / 6.0, -1 / 6.0}, {1 / 24.0, 1 / 12.0, 1 / 6.0},
                                    {1 / 24.0, -1 / 12.0, 1 / 6.0}, {0, 0, 1}};
    const int t = _i == 0 ? 4 : 6; /* transformed tile side */
    const double(*G)[3] = _i == 0 ? G2 : G4;
    struct cnn_conv2d p = {.c = 5, .oc = 3, .kh = 3, .kw = 3};
    lcg_state = 77u;
    float *w = rand_buf((size_t)p.oc * p.c * 9, 1.0f);
    size_t n = _i == 0 ? cnn_winograd_weights_floats(&p) : cnn_winograd4_weights_floats(&p);
    ck_assert_uint_eq(n, (size_t)t * t * p.oc * p.c);
    float *u = rand_buf(n, 100.0f);
    if (_i == 0)
        cnn_winograd_transform_weights(u, w, &p);
    else
        cnn_winograd4_transform_weights(u, w, &p);
    double err = 0.0;
    for (int oc = 0; oc < p.oc; oc++)
        for (int c = 0; c < p.c; c++)
            for (int i = 0; i < t; i++)
                for (int j = 0; j < t; j++) {
                    double s = 0.0;
                    for (int a = 0; a < 3; a++)
                        for (int bb = 0; bb < 3; bb++)
                            s += G[i][a] * w[((size_t)oc * p.c + c) * 9 + a * 3 + bb] * G[j][bb];
                    float got = u[((size_t)(i * t + j) * p.oc + oc) * p.c + c];
                    err = fmax(err, fabs(got - s));
                }
    ck_assert_double_le(err, 1e-6);
    free(w);
    free(u);
}
END_TEST

static struct cnn_conv2d resnet_conv(void)
{
    /* clang-format off */
    struct cnn_conv2d p = {.c = 64, .h = 56, .w = 56, .oc = 64, .kh = 3, .kw = 3, .sh = 1,
                           .sw = 1, .dh = 1, .dw = 1, .pad_t = 1, .pad_l = 1, .pad_b = 1,
                           .pad_r = 1, .groups = 1, .has_bias = 1};
    /* clang-format on */
    struct cnn_err err = {0};
    ck_assert_int_eq(cnn_conv2d_shape(&p, &err), 0);
    return p;
}

/* Shape fields changed one at a time from a ResNet 64->64 3x3 conv: only the 3x3 stride-1
 * undilated ungrouped ones with 16+ channels each way take the Winograd path. */
START_TEST(test_conv2d_winograd_predicate_picks_resnet_3x3_only)
{
    struct cnn_conv2d p = resnet_conv();
    ck_assert(cnn_conv2d_use_winograd(&p));
    struct cnn_act_params leaky = {CNN_ACT_LEAKY_RELU, 0.1f, 0};
    p.has_bias = 0, p.act = leaky; /* bias and act (BN folding changes them) do not matter */
    ck_assert(cnn_conv2d_use_winograd(&p));
    struct cnn_conv2d q;
    q = resnet_conv(), q.sh = q.sw = 2;
    ck_assert(!cnn_conv2d_use_winograd(&q));
    q = resnet_conv(), q.sw = 2;
    ck_assert(!cnn_conv2d_use_winograd(&q));
    q = resnet_conv(), q.kh = q.kw = 5;
    ck_assert(!cnn_conv2d_use_winograd(&q));
    q = resnet_conv(), q.kw = 1;
    ck_assert(!cnn_conv2d_use_winograd(&q));
    q = resnet_conv(), q.kh = q.kw = 1, q.pad_t = q.pad_l = q.pad_b = q.pad_r = 0;
    ck_assert(!cnn_conv2d_use_winograd(&q));
    q = resnet_conv(), q.groups = 2;
    ck_assert(!cnn_conv2d_use_winograd(&q));
    q = resnet_conv(), q.groups = 64; /* depthwise */
    ck_assert(!cnn_conv2d_use_winograd(&q));
    q = resnet_conv(), q.dh = q.dw = 2;
    ck_assert(!cnn_conv2d_use_winograd(&q));
    q = resnet_conv(), q.c = 8;
    ck_assert(!cnn_conv2d_use_winograd(&q));
    q = resnet_conv(), q.oc = 8;
    ck_assert(!cnn_conv2d_use_winograd(&q));
    q = resnet_conv(), q.c = 3; /* an RGB stem */
    ck_assert(!cnn_conv2d_use_winograd(&q));
    q = resnet_conv(), q.c = q.oc = 16;
    ck_assert(cnn_conv2d_use_winograd(&q));
}
END_TEST

/* The conv scratch serves both paths: at least the Winograd need and the im2col chunk
 * (C * 9 floats per output pixel of a chunk of whole output rows). */
START_TEST(test_conv2d_winograd_scratch_covers_both_paths)
{
    for (int i = 0; i < N_WINO_CASES + 1; i++) {
        struct cnn_conv2d p = i < N_WINO_CASES ? conv_params(&wino_cases[i]) : resnet_conv();
        for (int N = 1; N <= 8; N += 7) {
            size_t got = cnn_conv2d_scratch_floats(&p, N), wn = cnn_winograd_scratch_floats(&p, N);
            size_t tw = ((size_t)p.ow + 1) / 2, rows = (size_t)cnn_winograd_chunk_rows(&p, N);
            size_t im2col = (size_t)p.c * 9 * p.ow * cnn_conv2d_chunk_rows(&p, N);
            ck_assert(rows >= 1 && rows <= (size_t)N * ((p.oh + 1) / 2));
            /* V (16, C, tiles) and M (16, OC, tiles) of a chunk at least */
            ck_assert(wn >= 16 * ((size_t)p.c + p.oc) * rows * tw);
            ck_assert(got >= wn && got >= im2col);
        }
    }
}
END_TEST

START_TEST(test_conv2d_winograd_chunked_case_really_chunks)
{
    for (int i = 0; i < N_WINO_CASES; i++) {
        if (!strstr(wino_cases[i].name, "chunked"))
            continue;
        struct cnn_conv2d p = conv_params(&wino_cases[i]);
        int N = wino_cases[i].N, th = (p.oh + 1) / 2, total = N * th;
        int rows = cnn_winograd_chunk_rows(&p, N);
        ck_assert_msg(rows < total && rows % th != 0, "%s: %d tile rows per chunk of %d",
                      wino_cases[i].name, rows, total);
        ck_assert_msg(total % rows != 0, "%s: want a partial last chunk", wino_cases[i].name);
    }
}
END_TEST

/* ---- Winograd F(4x4,3x3) --------------------------------------------------- */

/* The F(4x4) forward on random data: out = act(conv + b + res), res NULL or laid out as
 * out; split into `parts` pieces by tile rows (rows) or output channels (!rows), each piece
 * with its own garbage scratch, as a worker team runs it. */
static void wino4_forward(float *out, const float *res, const float *inp, const float *w,
                          const float *b, const struct cnn_conv2d *p, int N, int parts, int rows)
{
    float *u = rand_buf(cnn_winograd4_weights_floats(p), 1.0f);
    cnn_winograd4_transform_weights(u, w, p);
    const int tiles = N * ((p->oh + 3) / 4), total = rows ? tiles : p->oc;
    for (int k = 0; k < parts; k++) {
        float *scratch = rand_buf(cnn_winograd4_scratch_floats(p, N), 100.0f);
        int lo = total * k / parts, hi = total * (k + 1) / parts;
        if (rows)
            cnn_conv2d_winograd4_rows(out, res, inp, u, 0, b, scratch, p, N, lo, hi);
        else if (hi > lo)
            cnn_conv2d_winograd4_channels(out, res, inp, u, 0, b, scratch, p, N, lo, hi);
        free(scratch);
    }
    free(u);
}

/* Max abs error of F(4x4) against the direct loops, printed per case; parts of 1 (whole),
 * 3 by tile rows and 2 by channels must give the same answer.  Bound 2e-4 (F(2x2) keeps
 * 1e-4): inputs and weights in [-1, 1], C <= 24, so |y| <= 9 * 24 = 216 and typically
 * ~10; the transforms multiply by up to 8 (A^T) and 5 (B^T) and the float rounding of the
 * 36 terms of each output with them; measured errors are 1-4e-6 (printed). */
START_TEST(test_conv2d_winograd4_matches_direct_convolution)
{
    const struct conv_case *k = &wino_cases[_i];
    lcg_state = 5000u + (unsigned)_i;
    struct cnn_conv2d p = conv_params(k);
    const int N = k->N;
    size_t in_n = (size_t)p.c * N * p.h * p.w, out_n = (size_t)p.oc * N * p.oh * p.ow;
    float *inp = rand_buf(in_n, 1.0f), *w = rand_buf((size_t)p.oc * p.c * 9, 1.0f);
    float *b = k->bias ? rand_buf((size_t)p.oc, 1.0f) : NULL;
    float *out = rand_buf(out_n, 100.0f); /* garbage must be overwritten */
    double *want = malloc(out_n * sizeof *want);
    ck_assert_ptr_nonnull(want);
    conv_ref(want, inp, w, b, &p, N);
    static const int splits[3][2] = {{1, 1}, {3, 1}, {2, 0}};
    for (int s = 0; s < 3; s++) {
        for (size_t i = 0; i < out_n; i++)
            out[i] = 1e4f;
        wino4_forward(out, NULL, inp, w, b, &p, N, splits[s][0], splits[s][1]);
        double e = max_abs_diff_ref(out, want, out_n);
        printf("F(4x4) %-40s %d part(s) by %s: max abs err %.3e\n", k->name, splits[s][0],
               splits[s][1] ? "rows" : "channels", e);
        ck_assert_msg(e <= 2e-4, "%s: F(4x4) error %g", k->name, e);
    }
    free(inp);
    free(w);
    free(b);
    free(out);
    free(want);
}
END_TEST

/* A case's random input, weights, bias and residual, an output buffer of garbage, and the
 * wanted act(conv + b + res) from the direct loops. */
struct residual_run {
    struct cnn_conv2d p;
    int N;
    size_t out_n;
    float *inp, *w, *b, *res, *out;
    double *want;
};

static struct residual_run residual_run_make(const struct conv_case *k)
{
    struct residual_run r = {.p = conv_params(k), .N = k->N};
    const struct cnn_conv2d *p = &r.p;
    const size_t in_n = (size_t)p->c * r.N * p->h * p->w;
    r.out_n = (size_t)p->oc * r.N * p->oh * p->ow;
    r.inp = rand_buf(in_n, 1.0f), r.w = rand_buf((size_t)p->oc * p->c * 9, 1.0f);
    r.b = k->bias ? rand_buf((size_t)p->oc, 1.0f) : NULL, r.res = rand_buf(r.out_n, 3.0f);
    r.out = rand_buf(r.out_n, 100.0f);
    r.want = malloc(r.out_n * sizeof *r.want);
    ck_assert_ptr_nonnull(r.want);
    struct cnn_conv2d linear = *p;
    linear.act = (struct cnn_act_params){CNN_ACT_NONE, 0, 0};
    conv_ref(r.want, r.inp, r.w, r.b, &linear, r.N);
    for (size_t i = 0; i < r.out_n; i++)
        r.want[i] = act_ref(r.want[i] + r.res[i], &p->act);
    return r;
}

static void residual_run_free(struct residual_run *r)
{
    free(r->inp);
    free(r->w);
    free(r->b);
    free(r->res);
    free(r->out);
    free(r->want);
}

/* The residual epilogue: act(conv + b + res) against the direct loops plus res, with res a
 * separate tensor and with res the output buffer itself (the session's in-place add). */
START_TEST(test_conv2d_winograd4_residual_epilogue)
{
    const struct conv_case *k = &wino_cases[_i];
    lcg_state = 6000u + (unsigned)_i;
    struct residual_run r = residual_run_make(k);
    wino4_forward(r.out, r.res, r.inp, r.w, r.b, &r.p, r.N, 2, 1);
    double e1 = max_abs_diff_ref(r.out, r.want, r.out_n);
    memcpy(r.out, r.res, r.out_n * sizeof *r.out);
    wino4_forward(r.out, r.out, r.inp, r.w, r.b, &r.p, r.N, 1, 1);
    double e2 = max_abs_diff_ref(r.out, r.want, r.out_n);
    printf("F(4x4) + residual %-30s max abs err %.3e, in place %.3e\n", k->name, e1, e2);
    ck_assert_msg(e1 <= 2e-4 && e2 <= 2e-4, "%s: %g %g", k->name, e1, e2);
    residual_run_free(&r);
}
END_TEST

/* Scratch holds V (36, C, T) and M (36, OC, T) of a chunk; the chunked case chunks. */
START_TEST(test_conv2d_winograd4_chunks_and_scratch)
{
    for (int i = 0; i < N_WINO_CASES + 1; i++) {
        struct cnn_conv2d p = i < N_WINO_CASES ? conv_params(&wino_cases[i]) : resnet_conv();
        for (int N = 1; N <= 8; N += 7) {
            size_t wn = cnn_winograd4_scratch_floats(&p, N), tw = ((size_t)p.ow + 3) / 4;
            int rows = cnn_winograd4_chunk_rows(&p, N), th = (p.oh + 3) / 4;
            ck_assert(rows >= 1 && rows <= N * th);
            ck_assert(wn >= 36 * ((size_t)p.c + p.oc) * (size_t)rows * tw);
            if (i < N_WINO_CASES && strstr(wino_cases[i].name, "chunked") && N == 8)
                ck_assert_msg(rows < N * th && (N * th) % rows != 0, "%d of %d", rows, N * th);
        }
    }
}
END_TEST

/* ---- Winograd weights packed per plane (gemm_packed.h) ----------------------------- */

/* Output channels in whole 16-row panels, the shape compile packs; C = 130 gives a product
 * depth that is no multiple of anything, the chunked case several chunks per part. */
/* clang-format off */
static const struct conv_case wino_packed_cases[] = {
    {"packed 7x7 pad 1 C=24 OC=48 relu N=1", 1, 24, 7, 7, 48, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
     {CNN_ACT_RELU, 0, 0}},
    {"packed 9x11 C=130 OC=32 bias N=2", 2, 130, 9, 11, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
     {CNN_ACT_NONE, 0, 0}},
    {"packed chunked 33x35 OC=32 leaky N=3", 3, 16, 33, 35, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1,
     0, {CNN_ACT_LEAKY_RELU, 0.1f, 0}},
};
/* clang-format on */
#define N_WINO_PACKED_CASES ((int)(sizeof wino_packed_cases / sizeof wino_packed_cases[0]))

/* F(2x2) (tile 2) or F(4x4) (4) with U packed in place, plus a residual, in `parts` parts by
 * tile rows (rows) or by output channels in whole panels (!rows), each part with its own
 * garbage scratch of the Winograd floats plus the packed GEMM's. */
static void wino_packed_forward(float *out, const float *res, const float *inp, const float *w,
                                const float *b, const struct cnn_conv2d *p, int N, int tile,
                                int parts, int rows)
{
    const size_t uf = tile == 4 ? cnn_winograd4_weights_floats(p) : cnn_winograd_weights_floats(p);
    float *u = rand_buf(uf, 1.0f);
    if (tile == 4)
        cnn_winograd4_transform_weights(u, w, p);
    else
        cnn_winograd_transform_weights(u, w, p);
    ck_assert_int_eq(cnn_gemm_pack_in_place(u, (tile + 2) * (tile + 2) * p->oc, p->c), 0);
    const int tiles = N * ((p->oh + tile - 1) / tile);
    const int total = rows ? tiles : p->oc / CNN_GEMM_PACKED_ROWS;
    const int unit = rows ? 1 : CNN_GEMM_PACKED_ROWS;
    const size_t sf =
        (tile == 4 ? cnn_winograd4_scratch_floats(p, N) : cnn_winograd_scratch_floats(p, N)) +
        cnn_gemm_packed_scratch_floats(p->c);
    for (int k = 0; k < parts; k++) {
        float *scratch = rand_buf(sf, 100.0f);
        int lo = total * k / parts, hi = total * (k + 1) / parts;
        if (hi > lo && tile == 4 && rows)
            cnn_conv2d_winograd4_rows(out, res, inp, u, 1, b, scratch, p, N, lo, hi);
        else if (hi > lo && tile == 4)
            cnn_conv2d_winograd4_channels(out, res, inp, u, 1, b, scratch, p, N, lo * unit,
                                          hi * unit);
        else if (hi > lo && rows)
            cnn_conv2d_winograd_rows(out, res, inp, u, 1, b, scratch, p, N, lo, hi);
        else if (hi > lo)
            cnn_conv2d_winograd_channels(out, res, inp, u, 1, b, scratch, p, N, lo * unit,
                                         hi * unit);
        free(scratch);
    }
    free(u);
}

/* Both tiles on packed U against the direct loops plus a residual: whole, 3 parts by tile
 * rows, 2 and 3 by channel panels (a part may get none), and the residual in place.  Bounds
 * as the unpacked kernels' (C = 130 sums more terms: 4e-4 for F(4x4)). */
START_TEST(test_conv2d_winograd_packed_weights_match_direct_convolution)
{
    const struct conv_case *k = &wino_packed_cases[_i / 2];
    const int tile = _i % 2 ? 4 : 2;
    lcg_state = 7000u + (unsigned)_i;
    struct residual_run r = residual_run_make(k);
    const double bound = tile == 4 ? 4e-4 : 1e-4;
    static const int splits[4][2] = {{1, 1}, {3, 1}, {2, 0}, {3, 0}};
    for (int s = 0; s < 5; s++) {
        const int in_place = s == 4, parts = in_place ? 2 : splits[s][0];
        const int rows = in_place ? 0 : splits[s][1];
        for (size_t i = 0; i < r.out_n; i++)
            r.out[i] = in_place ? r.res[i] : 1e4f;
        wino_packed_forward(r.out, in_place ? r.out : r.res, r.inp, r.w, r.b, &r.p, r.N, tile,
                            parts, rows);
        double e = max_abs_diff_ref(r.out, r.want, r.out_n);
        printf("F(%dx%d) packed %-38s %d part(s) by %s%s: max abs err %.3e\n", tile, tile, k->name,
               parts, rows ? "rows" : "channels", in_place ? ", in place" : "", e);
        ck_assert_msg(e <= bound, "%s F(%d): error %g", k->name, tile, e);
    }
    residual_run_free(&r);
}
END_TEST

/* The F(2x2) (even _i) and F(4x4) (odd) transforms four tiles per vector and sixteen
 * (AVX-512; where the CPU lacks it both runs take four) against the direct loops plus a
 * residual: the same sums in the same order, so the two outputs must also be equal bit for
 * bit.  Neither writes past the output. */
START_TEST(test_conv2d_winograd_lanes_match_direct_convolution)
{
    const struct conv_case *k = &wino_cases[_i / 2];
    const int tile = _i % 2 ? 4 : 2;
    lcg_state = 8000u + (unsigned)_i;
    struct residual_run r = residual_run_make(k);
    float *u = rand_buf(
        tile == 4 ? cnn_winograd4_weights_floats(&r.p) : cnn_winograd_weights_floats(&r.p), 1.0f);
    if (tile == 4)
        cnn_winograd4_transform_weights(u, r.w, &r.p);
    else
        cnn_winograd_transform_weights(u, r.w, &r.p);
    float *by_lanes[2];
    static const int lanes[2] = {4, 16};
    for (int l = 0; l < 2; l++) {
        float *scratch = rand_buf(tile == 4 ? cnn_winograd4_scratch_floats(&r.p, r.N)
                                            : cnn_winograd_scratch_floats(&r.p, r.N),
                                  100.0f);
        by_lanes[l] = rand_buf(r.out_n + 16, 100.0f); /* + 16 guard floats: no write past */
        for (int g = 0; g < 16; g++)
            by_lanes[l][r.out_n + g] = 12345.0f;
        const int tile_rows = r.N * ((r.p.oh + tile - 1) / tile);
        if (tile == 4)
            cnn_conv2d_winograd4_rows_lanes(by_lanes[l], r.res, r.inp, u, 0, r.b, scratch, &r.p,
                                            r.N, 0, tile_rows, lanes[l]);
        else
            cnn_conv2d_winograd_rows_lanes(by_lanes[l], r.res, r.inp, u, 0, r.b, scratch, &r.p, r.N,
                                           0, tile_rows, lanes[l]);
        free(scratch);
        for (int g = 0; g < 16; g++)
            ck_assert_msg(by_lanes[l][r.out_n + g] == 12345.0f, "%s: %d lanes wrote past the end",
                          k->name, lanes[l]);
    }
    const double e4 = max_abs_diff_ref(by_lanes[0], r.want, r.out_n);
    const double e16 = max_abs_diff_ref(by_lanes[1], r.want, r.out_n);
    size_t differ = 0;
    for (size_t i = 0; i < r.out_n; i++)
        differ += memcmp(&by_lanes[0][i], &by_lanes[1][i], sizeof(float)) != 0;
    printf("F(%dx%d) lanes 4 / 16 (AVX-512 %s) %-32s max abs err %.3e / %.3e, %zu differ\n", tile,
           tile, cnn_cpu_avx512() ? "yes" : "no", k->name, e4, e16, differ);
    const double bound = tile == 4 ? 2e-4 : 1e-4;
    ck_assert_msg(e4 <= bound && e16 <= bound, "%s: %g %g", k->name, e4, e16);
    ck_assert_msg(differ == 0, "%s: %zu outputs differ between 4 and 16 lanes", k->name, differ);
    free(by_lanes[0]);
    free(by_lanes[1]);
    free(u);
    residual_run_free(&r);
}
END_TEST

Suite *layers_conv_suite(void)
{
    Suite *s = suite_create("layers_conv");
    TCase *tc = tcase_create("layers");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_conv2d_matches_direct_convolution, 0, N_CONV_CASES);
    tcase_add_loop_test(tc, test_conv2d_batch_of_3_equals_3_single_passes, 0, N_CONV_CASES);
    tcase_add_loop_test(tc, test_conv2d_scratch_is_zero_only_for_pointwise, 0, N_CONV_CASES);
    tcase_add_test(tc, test_conv2d_large_cases_really_chunk);
    tcase_add_loop_test(tc, test_conv2d_winograd_matches_direct_convolution, 0, N_WINO_CASES);
    tcase_add_loop_test(tc, test_conv2d_winograd_batch_of_3_equals_3_single_passes, 0,
                        N_WINO_CASES);
    tcase_add_loop_test(tc, test_winograd_weight_transform_is_g_g_gt, 0, 2);
    tcase_add_test(tc, test_conv2d_winograd_predicate_picks_resnet_3x3_only);
    tcase_add_test(tc, test_conv2d_winograd_scratch_covers_both_paths);
    tcase_add_test(tc, test_conv2d_winograd_chunked_case_really_chunks);
    tcase_add_loop_test(tc, test_conv2d_winograd4_matches_direct_convolution, 0, N_WINO_CASES);
    tcase_add_loop_test(tc, test_conv2d_winograd4_residual_epilogue, 0, N_WINO_CASES);
    tcase_add_test(tc, test_conv2d_winograd4_chunks_and_scratch);
    tcase_add_loop_test(tc, test_conv2d_winograd_lanes_match_direct_convolution, 0,
                        2 * N_WINO_CASES);
    tcase_add_loop_test(tc, test_conv2d_winograd_packed_weights_match_direct_convolution, 0,
                        2 * N_WINO_PACKED_CASES);
    suite_add_tcase(s, tc);
    return s;
}
