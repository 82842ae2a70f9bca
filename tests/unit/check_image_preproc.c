/* Suite image_preproc: resizing (stretch, shorter side then centre crop), gray/RGB
 * conversion, invert, mean and std, bad preprocessing, and load_tensor = decode then
 * to_tensor, against tensors computed here through naive loops from the source pixels. */
#include "image.h"
#include "test_image.h"

#include <check.h>
#include <math.h>
#include <png.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- preprocessing ---- */

/* Naive bilinear resize with half-pixel centers, clamped at the borders: source coordinate
 * (o + 0.5) * in / out - 0.5, clamped to [0, in - 1].  dst: interleaved floats. */
static void ref_resize(const uint8_t *src, int w, int h, int c, int ow, int oh, float *dst)
{
    for (int y = 0; y < oh; y++) {
        double fy = (y + 0.5) * h / oh - 0.5;
        fy = fy < 0 ? 0 : fy > h - 1 ? h - 1 : fy;
        int y0 = (int)floor(fy), y1 = y0 + 1 < h ? y0 + 1 : h - 1;
        double wy = fy - y0;
        for (int x = 0; x < ow; x++) {
            double fx = (x + 0.5) * w / ow - 0.5;
            fx = fx < 0 ? 0 : fx > w - 1 ? w - 1 : fx;
            int x0 = (int)floor(fx), x1 = x0 + 1 < w ? x0 + 1 : w - 1;
            double wx = fx - x0;
            for (int k = 0; k < c; k++) {
                double a = src[((size_t)y0 * w + x0) * c + k],
                       b = src[((size_t)y0 * w + x1) * c + k];
                double d = src[((size_t)y1 * w + x0) * c + k],
                       e = src[((size_t)y1 * w + x1) * c + k];
                dst[((size_t)y * ow + x) * c + k] =
                    (float)(a * (1 - wx) * (1 - wy) + b * wx * (1 - wy) + d * (1 - wx) * wy +
                            e * wx * wy);
            }
        }
    }
}

static struct cnn_image random_image(int w, int h, int c, uint64_t seed)
{
    struct cnn_image img = {w, h, c, malloc((size_t)w * h * c)};
    for (size_t i = 0; i < (size_t)w * h * c; i++)
        img.pix[i] = (uint8_t)rnd(&seed);
    return img;
}

static struct cnn_preproc plain_pp(int c, int h, int w)
{
    struct cnn_preproc pp = {
        .c = c, .h = h, .w = w, .resize = CNN_RESIZE_STRETCH, .std = {1, 1, 1}};
    return pp;
}

START_TEST(test_stretch_known_values)
{
    /* 2x1 [0, 255] -> 4x1: sources -0.25 (clamped 0), 0.25, 0.75, 1.25 (past the edge) */
    uint8_t px[2] = {0, 255};
    struct cnn_image img = {2, 1, 1, px};
    struct cnn_preproc pp = plain_pp(1, 1, 4);
    float out[4];
    struct cnn_err err = {0};
    ck_assert_int_eq(cnn_image_to_tensor(&img, &pp, out, &err), 0);
    const float want[4] = {0, 0.25f, 0.75f, 1};
    for (int i = 0; i < 4; i++)
        ck_assert_float_eq_tol(out[i], want[i], 1e-6);

    /* 4x4 -> 2x2 samples at 0.5, 2.5: the mean of each 2x2 block */
    uint8_t q[16];
    for (int i = 0; i < 16; i++)
        q[i] = (uint8_t)(i * 13 + 7);
    struct cnn_image qi = {4, 4, 1, q};
    pp = plain_pp(1, 2, 2);
    ck_assert_int_eq(cnn_image_to_tensor(&qi, &pp, out, &err), 0);
    for (int by = 0; by < 2; by++)
        for (int bx = 0; bx < 2; bx++) {
            int s = q[(2 * by) * 4 + 2 * bx] + q[(2 * by) * 4 + 2 * bx + 1] +
                    q[(2 * by + 1) * 4 + 2 * bx] + q[(2 * by + 1) * 4 + 2 * bx + 1];
            ck_assert_float_eq_tol(out[by * 2 + bx], s / 4.0f / 255.0f, 1e-6);
        }
}
END_TEST

START_TEST(test_stretch_matches_naive_bilinear)
{
    static const int dims[][4] = {
        /* w, h -> ow, oh */
        {37, 23, 16, 16}, {5, 7, 31, 12}, {64, 48, 224, 224}, {1, 1, 3, 5},
        {13, 1, 4, 6},    {9, 9, 9, 4},   {300, 20, 520, 9}, /* 520: 3 blocks */
    };
    for (int d = 0; d < 7; d++)
        for (int c = 1; c <= 3; c += 2) {
            int w = dims[d][0], h = dims[d][1], ow = dims[d][2], oh = dims[d][3];
            struct cnn_image img = random_image(w, h, c, 100 + (uint64_t)d * 3 + c);
            struct cnn_preproc pp = plain_pp(c, oh, ow);
            float *out = malloc(sizeof *out * (size_t)ow * oh * c);
            float *ref = malloc(sizeof *ref * (size_t)ow * oh * c);
            struct cnn_err err = {0};
            ck_assert_int_eq(cnn_image_to_tensor(&img, &pp, out, &err), 0);
            ref_resize(img.pix, w, h, c, ow, oh, ref);
            for (int k = 0; k < c; k++)
                for (int i = 0; i < ow * oh; i++)
                    ck_assert_msg(fabsf(out[k * ow * oh + i] - ref[i * c + k] / 255.0f) < 1e-5f,
                                  "%dx%d->%dx%d c%d: ch %d px %d: %f vs %f", w, h, ow, oh, c, k, i,
                                  out[k * ow * oh + i], ref[i * c + k] / 255.0f);
            free(out);
            free(ref);
            free(img.pix);
        }
}
END_TEST

START_TEST(test_same_size_copies_pixels)
{
    struct cnn_image img = random_image(11, 6, 3, 5);
    struct cnn_preproc pp = plain_pp(3, 6, 11);
    float out[3 * 66];
    struct cnn_err err = {0};
    ck_assert_int_eq(cnn_image_to_tensor(&img, &pp, out, &err), 0);
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < 66; i++)
            ck_assert_float_eq(out[k * 66 + i], img.pix[i * 3 + k] / 255.0f);
    free(img.pix);
}
END_TEST

START_TEST(test_shorter_side_resize_then_center_crop)
{
    static const int cases[][5] = {
        /* w, h, resize_short, crop w, crop h */
        {40, 30, 16, 12, 12},
        {30, 53, 20, 17, 15},
        {101, 67, 32, 31, 29},
        {24, 24, 24, 24, 24},
        {64, 48, 48, 33, 48},
        {10, 70, 7, 6, 6},
        /* pixels as they are, cropped (both axes; across only, rows resized) */
        {30, 40, 30, 20, 30},
        {16, 30, 16, 12, 12},
    };
    for (int t = 0; t < 8; t++)
        for (int c = 1; c <= 3; c += 2) {
            int w = cases[t][0], h = cases[t][1], s = cases[t][2], cw = cases[t][3],
                ch = cases[t][4];
            /* torchvision Resize(s): shorter side s, longer int(s * long / short) */
            int rw = w <= h ? s : (int)((double)s * w / h);
            int rh = w <= h ? (int)((double)s * h / w) : s;
            /* torchvision CenterCrop: int(round((size - crop) / 2.0)), round half to even */
            int top = (int)rint((rh - ch) / 2.0), left = (int)rint((rw - cw) / 2.0);
            struct cnn_image img = random_image(w, h, c, 900 + (uint64_t)t * 2 + c);
            float *full = malloc(sizeof *full * (size_t)rw * rh * c);
            float *out = malloc(sizeof *out * (size_t)cw * ch * c);
            ref_resize(img.pix, w, h, c, rw, rh, full);
            struct cnn_preproc pp = plain_pp(c, ch, cw);
            pp.resize = CNN_RESIZE_SHORTER_CROP;
            pp.resize_short = s;
            struct cnn_err err = {0};
            ck_assert_int_eq(cnn_image_to_tensor(&img, &pp, out, &err), 0);
            for (int k = 0; k < c; k++)
                for (int y = 0; y < ch; y++)
                    for (int x = 0; x < cw; x++) {
                        float want = full[((size_t)(y + top) * rw + x + left) * c + k] / 255.0f;
                        float got = out[(size_t)k * cw * ch + (size_t)y * cw + x];
                        ck_assert_msg(fabsf(got - want) < 1e-5f, "case %d c%d (%d,%d,%d): %f vs %f",
                                      t, c, k, y, x, got, want);
                    }
            free(full);
            free(out);
            free(img.pix);
        }
}
END_TEST

START_TEST(test_gray_rgb_conversion)
{
    struct cnn_image g = random_image(7, 5, 1, 31), rgb = random_image(7, 5, 3, 32);
    float out[3 * 35];
    struct cnn_err err = {0};
    struct cnn_preproc pp3 = plain_pp(3, 5, 7), pp1 = plain_pp(1, 5, 7);
    ck_assert_int_eq(cnn_image_to_tensor(&g, &pp3, out, &err), 0);
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < 35; i++)
            ck_assert_float_eq_tol(out[k * 35 + i], g.pix[i] / 255.0f, 1e-7);
    ck_assert_int_eq(cnn_image_to_tensor(&rgb, &pp1, out, &err), 0);
    for (int i = 0; i < 35; i++) {
        double y = 0.299 * rgb.pix[3 * i] + 0.587 * rgb.pix[3 * i + 1] + 0.114 * rgb.pix[3 * i + 2];
        ck_assert_float_eq_tol(out[i], y / 255.0, 1e-5);
    }
    /* with a resize: luma of the bilinear sample (both are linear, so order is free) */
    struct cnn_preproc pp1r = plain_pp(1, 3, 10);
    float ref[3 * 30];
    ck_assert_int_eq(cnn_image_to_tensor(&rgb, &pp1r, out, &err), 0);
    ref_resize(rgb.pix, 7, 5, 3, 10, 3, ref);
    for (int i = 0; i < 30; i++)
        ck_assert_float_eq_tol(
            out[i], (0.299 * ref[3 * i] + 0.587 * ref[3 * i + 1] + 0.114 * ref[3 * i + 2]) / 255.0,
            1e-5);
    free(g.pix);
    free(rgb.pix);
}
END_TEST

START_TEST(test_invert_and_mean_std)
{
    struct cnn_image img = random_image(6, 4, 3, 77);
    struct cnn_preproc pp = plain_pp(3, 4, 6);
    pp.mean[0] = 0.485f;
    pp.mean[1] = 0.456f;
    pp.mean[2] = 0.406f;
    pp.std[0] = 0.229f;
    pp.std[1] = 0.224f;
    pp.std[2] = 0.225f;
    float out[3 * 24];
    struct cnn_err err = {0};
    for (int inv = 0; inv < 2; inv++) {
        pp.invert = inv;
        ck_assert_int_eq(cnn_image_to_tensor(&img, &pp, out, &err), 0);
        for (int k = 0; k < 3; k++)
            for (int i = 0; i < 24; i++) {
                double x = img.pix[3 * i + k] / 255.0;
                if (inv)
                    x = 1 - x;
                ck_assert_float_eq_tol(out[k * 24 + i], (x - pp.mean[k]) / pp.std[k], 1e-5);
            }
    }
    free(img.pix);
}
END_TEST

START_TEST(test_bad_preproc_is_invalid)
{
    struct cnn_image img = random_image(8, 8, 3, 1);
    float out[3 * 64];
    struct cnn_err err = {0};
    struct cnn_preproc pp = plain_pp(3, 8, 8);
    ck_assert_int_eq(cnn_image_to_tensor(&img, &pp, out, &err), 0);
    struct cnn_preproc bad[8];
    for (int i = 0; i < 8; i++)
        bad[i] = pp;
    bad[0].c = 2;
    bad[1].h = 0;
    bad[2].w = -3;
    bad[3].std[1] = 0;
    bad[4].std[2] = NAN;
    bad[5].resize = (enum cnn_resize)7;
    bad[6].resize = CNN_RESIZE_SHORTER_CROP; /* resize_short 0 */
    bad[7].resize = CNN_RESIZE_SHORTER_CROP; /* crop larger than the shorter side */
    bad[7].resize_short = 7;
    for (int i = 0; i < 8; i++)
        ck_assert_msg(cnn_image_to_tensor(&img, &bad[i], out, &err) == CNN_EINVAL, "bad pp %d", i);
    ck_assert_int_eq(cnn_image_to_tensor(&img, &pp, NULL, &err), CNN_EINVAL);
    struct cnn_image noimg = {8, 8, 2, img.pix};
    ck_assert_int_eq(cnn_image_to_tensor(&noimg, &pp, out, &err), CNN_EINVAL);
    free(img.pix);
}
END_TEST

START_TEST(test_load_tensor_is_decode_then_to_tensor)
{
    struct png_fixture f = png_fixture_make(30, 20, PNG_COLOR_TYPE_RGB, 8, 0, 0, 66);
    struct cnn_preproc pp = plain_pp(1, 10, 10);
    pp.resize = CNN_RESIZE_SHORTER_CROP;
    pp.resize_short = 12;
    pp.invert = 1;
    pp.mean[0] = 0.5f;
    pp.std[0] = 0.25f;
    float out[100], ref[100];
    struct cnn_err err = {0};
    ck_assert_int_eq(cnn_image_load_tensor(f.png.p, f.png.n, 600, &pp, out, &err), 0);
    struct cnn_image img = {30, 20, 3, f.expect};
    ck_assert_int_eq(cnn_image_to_tensor(&img, &pp, ref, &err), 0);
    for (int i = 0; i < 100; i++)
        ck_assert_float_eq(out[i], ref[i]);
    ck_assert_int_eq(cnn_image_load_tensor(f.png.p, f.png.n, 599, &pp, out, &err), CNN_ELIMIT);
    ck_assert_int_eq(cnn_image_load_tensor(f.png.p, 10, 600, &pp, out, &err), CNN_EFORMAT);
    png_fixture_free(&f);
}
END_TEST

/* A 2x2 RGB image at its own size, values worked out by hand: bgr only reorders the
 * output planes, and mean/std stay indexed by the output channel (mean[0] is blue's). */
START_TEST(test_bgr_reorders_channels_mean_std_by_output_channel)
{
    uint8_t px[12] = {255, 0,   51, 0,  102, 204,  /* row 0: (255,0,51) (0,102,204) */
                      153, 255, 0,  51, 51,  255}; /* row 1: (153,255,0) (51,51,255) */
    struct cnn_image img = {2, 2, 3, px};
    struct cnn_preproc pp = {
        .c = 3, .h = 2, .w = 2, .mean = {0.5f, 0.25f, 0}, .std = {0.5f, 0.25f, 2}};
    float out[12];
    struct cnn_err err = {0};
    ck_assert_int_eq(cnn_image_to_tensor(&img, &pp, out, &err), 0);
    const float rgb[12] = {1,    -1,   0.2f, -0.6f, /* R: (r/255 - 0.5) / 0.5 */
                           -1,   0.6f, 3,    -0.2f, /* G: (g/255 - 0.25) / 0.25 */
                           0.1f, 0.4f, 0,    0.5f}; /* B: b/255 / 2 */
    for (int i = 0; i < 12; i++)
        ck_assert_msg(fabsf(out[i] - rgb[i]) < 1e-5f, "rgb %d: %g want %g", i, out[i], rgb[i]);
    pp.bgr = 1;
    ck_assert_int_eq(cnn_image_to_tensor(&img, &pp, out, &err), 0);
    const float bgr[12] = {-0.6f, 0.6f, -1,   1,     /* B: (b/255 - 0.5) / 0.5 */
                           -1,    0.6f, 3,    -0.2f, /* G: unchanged */
                           0.5f,  0,    0.3f, 0.1f}; /* R: r/255 / 2 */
    for (int i = 0; i < 12; i++)
        ck_assert_msg(fabsf(out[i] - bgr[i]) < 1e-5f, "bgr %d: %g want %g", i, out[i], bgr[i]);

    /* a gray image into a BGR model: R = G = B, every plane the same */
    uint8_t g[4] = {0, 51, 102, 255};
    struct cnn_image gi = {2, 2, 1, g};
    ck_assert_int_eq(cnn_image_to_tensor(&gi, &pp, out, &err), 0);
    const float gw[4] = {0, 0.2f, 0.4f, 1};
    for (int i = 0; i < 4; i++) {
        ck_assert_float_eq_tol(out[i], (gw[i] - 0.5f) / 0.5f, 1e-5);
        ck_assert_float_eq_tol(out[4 + i], (gw[i] - 0.25f) / 0.25f, 1e-5);
        ck_assert_float_eq_tol(out[8 + i], gw[i] / 2, 1e-5);
    }
}
END_TEST

START_TEST(test_bgr_needs_three_channels)
{
    struct cnn_err err = {0};
    struct cnn_preproc pp = plain_pp(1, 2, 2);
    pp.bgr = 1;
    ck_assert_int_eq(cnn_preproc_check(&pp, &err), CNN_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "3 channels"));
    ck_assert_ptr_null(cnn_model_create(&pp, &err));
    pp = plain_pp(3, 2, 2);
    pp.bgr = 2;
    ck_assert_int_eq(cnn_preproc_check(&pp, &err), CNN_EINVAL);
    pp.bgr = 1;
    ck_assert_int_eq(cnn_preproc_check(&pp, &err), 0);
}
END_TEST

Suite *image_preproc_suite(void)
{
    Suite *s = suite_create("image_preproc");
    TCase *pre = tcase_create("preproc");
    tcase_add_test(pre, test_stretch_known_values);
    tcase_add_test(pre, test_stretch_matches_naive_bilinear);
    tcase_add_test(pre, test_same_size_copies_pixels);
    tcase_add_test(pre, test_shorter_side_resize_then_center_crop);
    tcase_add_test(pre, test_gray_rgb_conversion);
    tcase_add_test(pre, test_invert_and_mean_std);
    tcase_add_test(pre, test_bad_preproc_is_invalid);
    tcase_add_test(pre, test_load_tensor_is_decode_then_to_tensor);
    tcase_add_test(pre, test_bgr_reorders_channels_mean_std_by_output_channel);
    tcase_add_test(pre, test_bgr_needs_three_channels);
    suite_add_tcase(s, pre);
    return s;
}
