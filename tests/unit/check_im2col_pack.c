/* Suite im2col_pack: the im2col matrix written as the packed GEMM's strips (im2col.h,
 * im2col_pack.c).  Blocks of every strip width the drivers use, against the conv's taps read
 * one by one from the input (bit for bit: the packer only moves floats), with guard floats
 * after the block; and a network of strided, dilated and 5x5 convs that run packed from the
 * input, through sessions on teams, against the naive reference. */
#include "gemm_packed.h"
#include "im2col.h"
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

struct pack_case {
    const char *name;
    int n, c, h, w, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr;
};

/* clang-format off */
static const struct pack_case pack_cases[] = {
    {"3x3 s2 p1 (ResNet downsample)",   1, 5, 14, 14, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1},
    {"3x3 s2 p1, 2 images",             2, 3, 15, 16, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1},
    {"1x1 s2 (strided 1x1)",            3, 4, 14, 14, 1, 1, 2, 2, 1, 1, 0, 0, 0, 0},
    {"5x5 s1 p2, ow 7",                 2, 3, 7, 7, 5, 5, 1, 1, 1, 1, 2, 2, 2, 2},
    {"3x3 s1 dil 2 p2, ow 11",          1, 3, 11, 11, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2},
    {"7x7 s2 p3 (a stem), ow 16",       1, 2, 32, 32, 7, 7, 2, 2, 1, 1, 3, 3, 3, 3},
    {"asymmetric pads, s2 rows, s1",    2, 2, 9, 20, 3, 2, 2, 1, 1, 1, 0, 1, 2, 0},
    {"pad past the input, ow 8",        1, 2, 4, 6, 3, 3, 1, 1, 1, 1, 2, 2, 2, 2},
    {"s2 across, s3 down, ow 7",        2, 3, 10, 14, 3, 3, 3, 2, 1, 1, 1, 1, 1, 1},
};
/* clang-format on */
#define N_PACK_CASES ((int)(sizeof pack_cases / sizeof pack_cases[0]))

/* Tap k (channel, ky, kx) of output position g (image, oy, ox) of p over inp (C, N, H, W). */
static float tap(const float *inp, const struct cnn_conv2d *p, int n, int k, size_t g)
{
    const int taps = p->kh * p->kw, c = k / taps, ky = k % taps / p->kw, kx = k % taps % p->kw;
    const size_t plane = (size_t)p->oh * p->ow;
    const int img = (int)(g / plane), oy = (int)(g % plane / p->ow), ox = (int)(g % plane % p->ow);
    const int iy = oy * p->sh - p->pad_t + ky * p->dh, ix = ox * p->sw - p->pad_l + kx * p->dw;
    if (iy < 0 || iy >= p->h || ix < 0 || ix >= p->w)
        return 0.0f;
    return inp[(((size_t)c * n + img) * p->h + iy) * p->w + ix];
}

/* Every case at strip widths 6, 8, 24 and 48, from output rows r0 = 0 and 1, over blocks
 * whose rows start mid-channel and whose columns start mid-row and end ragged. */
START_TEST(test_im2col_pack_matches_taps)
{
    const struct pack_case *k = &pack_cases[_i];
    struct cnn_conv2d p = {.c = k->c,
                           .h = k->h,
                           .w = k->w,
                           .oc = 16,
                           .kh = k->kh,
                           .kw = k->kw,
                           .sh = k->sh,
                           .sw = k->sw,
                           .dh = k->dh,
                           .dw = k->dw,
                           .pad_t = k->pt,
                           .pad_l = k->pl,
                           .pad_b = k->pb,
                           .pad_r = k->pr,
                           .groups = 1};
    struct cnn_err err = {0};
    ck_assert_msg(cnn_conv2d_shape(&p, &err) == 0, "%s: %s", k->name, err.msg);
    const size_t in_n = (size_t)k->c * k->n * k->h * k->w;
    float *inp = rand_buf(in_n, 1.0f);
    const int K = k->c * k->kh * k->kw, cols = k->n * p.oh * p.ow;
    const int widths[] = {6, 8, 24, 48};
    long bad = 0, blocks = 0;
    for (int wi = 0; wi < 4; wi++)
        for (int r0 = 0; r0 <= 1; r0++) {
            const struct cnn_im2col_source src = {inp, k->n, &p, r0};
            const int avail = cols - r0 * p.ow; /* columns from row r0 on */
            const int k0s[] = {0, K / 3 + 1}, n0s[] = {0, p.ow / 2 + 1};
            for (int a = 0; a < 2; a++)
                for (int b = 0; b < 2; b++) {
                    const int width = widths[wi], k0 = k0s[a], n0 = n0s[b];
                    const int kc = K - k0, nc = avail - n0 - (b ? 3 : 0);
                    if (nc < 1)
                        continue;
                    const int strips = (nc + width - 1) / width;
                    const size_t floats = (size_t)strips * kc * width;
                    float *dst = malloc((floats + 16) * sizeof(float));
                    ck_assert_ptr_nonnull(dst);
                    for (size_t i = 0; i < floats + 16; i++)
                        dst[i] = NAN;
                    cnn_im2col_pack(&src, dst, k0, kc, n0, nc, width);
                    for (int s = 0; s < strips; s++)
                        for (int kk = 0; kk < kc; kk++)
                            for (int j = 0; j < width; j++) {
                                const int col = s * width + j;
                                const float want = col < nc ? tap(inp, &p, k->n, k0 + kk,
                                                                  (size_t)r0 * p.ow + n0 + col)
                                                            : 0.0f;
                                const float got = dst[((size_t)s * kc + kk) * width + j];
                                bad += memcmp(&got, &want, sizeof got) != 0;
                            }
                    for (int i = 0; i < 16; i++)
                        bad += !isnan(dst[floats + i]);
                    free(dst);
                    blocks++;
                }
        }
    printf("im2col_pack %-32s (%dx%d -> %dx%d, K %d, vector path %s): %ld blocks, %ld differ\n",
           k->name, p.h, p.w, p.oh, p.ow, K, cnn_im2col_packs_fast(&p) ? "yes" : "no", blocks, bad);
    ck_assert_int_eq(bad, 0);
    free(inp);
}
END_TEST

static struct cnn_layer_desc geometry(struct cnn_layer_desc d, int stride, int dilation)
{
    d.p.conv.sh = d.p.conv.sw = stride;
    d.p.conv.dh = d.p.conv.dw = dilation;
    return d;
}

/* Maps of 9-10 columns whose convs pack their weights and read the input through the packer
 * on AVX-512: a 3x3 stride-2 conv (from 64 channels: K 576, past the direct conv's) and a
 * strided 1x1 whose sum (a fused residual) goes through a ReLU, a 5x5 stride-1 conv (K 800),
 * a dilated 3x3 (neither Winograd nor direct), then dense and softmax. */
static struct cnn_model *strided_net(void)
{
    struct cnn_preproc pp = {.c = 64, .h = 20, .w = 18, .mean = {0, 0, 0}, .std = {1, 1, 1}};
    struct cnn_err err = {0};
    struct cnn_model *m = cnn_model_create(&pp, &err);
    ck_assert_msg(m != NULL, "%s", err.msg);
    int a = add(m, geometry(conv("s2", 32, 3, 1, 1, CNN_ACT_NONE), 2, 1));
    const int from_input[1] = {0};
    int b = add(m, inputs(geometry(conv("down", 32, 1, 0, 1, CNN_ACT_NONE), 2, 1), 1, from_input));
    const int ab[2] = {a, b};
    add(m, inputs((struct cnn_layer_desc){.kind = CNN_LAYER_ADD, .name = "sum"}, 2, ab));
    add(m, act("sum_relu", CNN_ACT_RELU));
    add(m, conv("five", 24, 5, 2, 1, CNN_ACT_RELU));
    add(m, geometry(conv("dilated", 16, 3, 2, 1, CNN_ACT_RELU), 1, 2));
    add(m, simple(CNN_LAYER_FLATTEN, "flat"));
    add(m, dense("fc", 9, CNN_ACT_NONE));
    add(m, simple(CNN_LAYER_SOFTMAX, "prob"));
    ck_assert_int_eq(cnn_model_alloc_params(m, &err), 0);
    test_randomize(m, 11);
    return m;
}

/* strided_net at batches 1 and 3 on teams of 1-3 against the naive reference. */
START_TEST(test_net_packing_from_the_input_matches_reference)
{
    struct cnn_model *m = strided_net();
    test_net_on_teams_matches_reference(m, 321,
                                        cnn_gemm_packed_avx512()
                                            ? "im2col_pack (convs packed from the input)"
                                            : "im2col_pack (convs im2col'd)",
                                        cnn_gemm_packed_vectorised() ? 4 : 0);
    cnn_model_destroy(m);
}
END_TEST

Suite *im2col_pack_suite(void)
{
    Suite *s = suite_create("im2col_pack");
    TCase *tc = tcase_create("im2col_pack");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_im2col_pack_matches_taps, 0, N_PACK_CASES);
    tcase_add_test(tc, test_net_packing_from_the_input_matches_reference);
    suite_add_tcase(s, tc);
    return s;
}
