/* Explanations (core/explain.h) and pictures (core/plot.h, cnn_image_encode_png): the input
 * gradient of a class logit against central finite differences, the probabilities against
 * the compiled session, occlusion against the closed form of a linear model, SmoothGrad
 * without noise against the plain gradient, bad input refused, PNG round trips. */
#include "explain.h"
#include "image.h"
#include "model.h"
#include "plot.h"
#include "session.h"
#include "test_fd.h"
#include "test_nets.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct logit_ctx {
    struct cnn_explainer *e;
    const float *x;
    int cls;
    float out; /* the logit of cls */
    float *logits;
};

static void logit_forward(void *p)
{
    struct logit_ctx *c = p;
    int cls = c->cls;
    struct cnn_err err = {0};
    ck_assert_int_eq(cnn_explain_gradient(c->e, c->x, 1, &cls, NULL, NULL, c->logits, &err), 0);
    c->out = c->logits[c->cls];
}

/* d logit[cls] / d x by the explainer against central differences of the logit (step 1e-3:
 * the logit is a float forward, and relus and max pools put kinks within larger steps). */
static void check_fd(struct cnn_model *m, const char *what, uint64_t seed)
{
    struct cnn_err err = {0};
    const struct cnn_preproc *pp = cnn_model_preproc(m);
    size_t chw = (size_t)pp->c * pp->h * pp->w;
    int K = cnn_model_num_classes(m);
    float *x = malloc(chw * sizeof *x), *g = malloc(chw * sizeof *g);
    float *logits = malloc((size_t)K * sizeof *logits);
    test_fill(x, chw, seed);
    struct cnn_explainer *e = cnn_explainer_create(m, 4, &err);
    ck_assert_msg(e != NULL, "%s", err.msg);
    for (int cls = 0; cls < K; cls += K > 2 ? K / 2 : 1) {
        int c = cls;
        ck_assert_int_eq(cnn_explain_gradient(e, x, 1, &c, g, NULL, NULL, &err), 0);
        struct logit_ctx ctx = {e, x, cls, 0.0f, logits};
        struct fd f = {logit_forward, &ctx, &ctx.out, NULL, 1};
        char name[64];
        snprintf(name, sizeof name, "%s class %d", what, cls);
        fd_check(name, &f, x, chw, g, 1e-3f, FD_TOL);
    }
    cnn_explainer_destroy(e);
    free(x);
    free(g);
    free(logits);
}

START_TEST(test_explain_gradient_matches_finite_differences_small_net)
{
    struct cnn_model *m = compiled(test_net_small(3));
    check_fd(m, "small net d logit / d input", 11);
    cnn_model_destroy(m);
}
END_TEST

/* The DAG of every kind (BN and dropout in evaluation mode, LRN, pools, branches): its relus
 * and max pools put kinks within reach of any step for a few inputs, so each input must match
 * at step 1e-3 or 3e-4 (within 2%), and at most 3% of them may be at a kink. */
START_TEST(test_explain_gradient_matches_finite_differences_every_kind)
{
    struct cnn_err err = {0};
    struct cnn_model *m = compiled(test_net_dag(5));
    const struct cnn_preproc *pp = cnn_model_preproc(m);
    size_t chw = (size_t)pp->c * pp->h * pp->w;
    int K = cnn_model_num_classes(m);
    float *x = malloc(chw * sizeof *x), *g = malloc(chw * sizeof *g);
    float *logits = malloc((size_t)K * sizeof *logits);
    test_fill(x, chw, 17);
    struct cnn_explainer *e = cnn_explainer_create(m, 1, &err);
    ck_assert_msg(e != NULL, "%s", err.msg);
    for (int cls = 0; cls < K; cls += 2) {
        int c = cls, kinks = 0;
        ck_assert_int_eq(cnn_explain_gradient(e, x, 1, &c, g, NULL, NULL, &err), 0);
        for (size_t i = 0; i < chw; i++) {
            int ok = 0;
            for (int k = 0; k < 2 && !ok; k++) {
                const float h = k ? 3e-4f : 1e-3f;
                struct logit_ctx ctx = {e, x, cls, 0.0f, logits};
                const float x0 = x[i];
                x[i] = x0 + h;
                logit_forward(&ctx);
                double lp = ctx.out;
                x[i] = x0 - h;
                logit_forward(&ctx);
                double lm = ctx.out;
                x[i] = x0;
                double num = (lp - lm) / (2.0 * h);
                ok = fabs(num - g[i]) <= 1e-3 + 0.02 * fmax(fabs(num), fabs(g[i]));
            }
            kinks += !ok;
        }
        printf("dag net d logit[%d] / d input: %d of %zu inputs at a kink\n", cls, kinks, chw);
        ck_assert_msg(kinks * 100 <= (int)chw * 3, "class %d: %d of %zu inputs disagree", cls,
                      kinks, chw);
    }
    cnn_explainer_destroy(e);
    free(x);
    free(g);
    free(logits);
    cnn_model_destroy(m);
}
END_TEST

START_TEST(test_explain_probs_and_top1_match_the_session)
{
    struct cnn_err err = {0};
    struct cnn_model *m = compiled(test_net_dag(7));
    const struct cnn_preproc *pp = cnn_model_preproc(m);
    const int n = 3, K = cnn_model_num_classes(m);
    size_t chw = (size_t)pp->c * pp->h * pp->w;
    float *x = malloc(n * chw * sizeof *x), *probs = malloc((size_t)n * K * sizeof *probs);
    float *g = malloc(n * chw * sizeof *g);
    test_fill(x, n * chw, 23);
    struct cnn_session *s = cnn_session_create(m, n, &err);
    const float *ref;
    ck_assert_int_eq(cnn_session_forward(s, m, x, n, &ref, &err), 0);
    struct cnn_explainer *e = cnn_explainer_create(m, n, &err);
    int cls[3] = {-1, -1, 0};
    ck_assert_int_eq(cnn_explain_gradient(e, x, n, cls, g, probs, NULL, &err), 0);
    check_same("explainer probs vs session", probs, ref, (size_t)n * K, 1e-4f);
    for (int j = 0; j < 2; j++) {
        int best = 0;
        for (int k = 1; k < K; k++)
            best = ref[j * K + k] > ref[j * K + best] ? k : best;
        ck_assert_int_eq(cls[j], best);
    }
    ck_assert_int_eq(cls[2], 0);
    cnn_explainer_destroy(e);
    cnn_session_destroy(s);
    free(x);
    free(g);
    free(probs);
    cnn_model_destroy(m);
}
END_TEST

/* input 1x5x6 -> flatten -> dense K=3 (no softmax): logit k = w_k . x + b_k. */
static struct cnn_model *linear_model(void)
{
    struct cnn_preproc pp = {.c = 1, .h = 5, .w = 6, .mean = {0.25f, 0, 0}, .std = {0.5f, 1, 1}};
    struct cnn_err err = {0};
    struct cnn_model *m = cnn_model_create(&pp, &err);
    add(m, (struct cnn_layer_desc){.kind = CNN_LAYER_FLATTEN, .name = "flat"});
    struct cnn_layer_desc d = {.kind = CNN_LAYER_DENSE, .name = "fc"};
    d.p.dense = (struct cnn_dense){.out = 3, .has_bias = 1};
    add(m, d);
    ck_assert_int_eq(cnn_model_alloc_params(m, &err), 0);
    cnn_model_init_random(m, 9);
    return compiled(m);
}

START_TEST(test_explain_occlusion_and_gradinput_of_a_linear_model_are_its_closed_form)
{
    struct cnn_err err = {0};
    struct cnn_model *m = linear_model();
    float x[30], map[30], grad[30];
    test_fill(x, 30, 4);
    struct cnn_explainer *e = cnn_explainer_create(m, 8, &err);
    ck_assert_msg(e != NULL, "%s", err.msg);
    int cls = 1;
    ck_assert_int_eq(cnn_explain_gradient(e, x, 1, &cls, grad, NULL, NULL, &err), 0);
    struct cnn_explain_opts o;
    cnn_explain_opts_default(&o);
    o.method = CNN_EXPLAIN_OCCLUSION, o.patch = 1, o.stride = 1;
    ck_assert_int_eq(cnn_explain_map(e, x, &cls, &o, map, NULL, &err), 0);
    const float black = (0.0f - 0.25f) / 0.5f; /* a black pixel after mean/std */
    for (int p = 0; p < 30; p++) {
        float drop = grad[p] * (x[p] - black); /* w_k[p] (x - fill), grad = w_k */
        float want = drop > 0.0f ? drop : 0.0f;
        ck_assert_msg(fabsf(map[p] - want) <= 1e-4f * (1.0f + fabsf(want)), "pixel %d: %g vs %g",
                      p, (double)map[p], (double)want);
    }
    o.method = CNN_EXPLAIN_GRADINPUT; /* exact to first order, and a linear model is first order */
    float gi[30];
    ck_assert_int_eq(cnn_explain_map(e, x, &cls, &o, gi, NULL, &err), 0);
    check_same("gradient x input vs occlusion of one pixel", gi, map, 30, 1e-4f);
    cnn_explainer_destroy(e);
    cnn_model_destroy(m);
}
END_TEST

START_TEST(test_explain_smoothgrad_without_noise_is_the_gradient_map)
{
    struct cnn_err err = {0};
    struct cnn_model *m = compiled(test_net_small(2));
    float x[64], a[64], b[64];
    test_fill(x, 64, 8);
    struct cnn_explainer *e = cnn_explainer_create(m, 4, &err);
    struct cnn_explain_opts o;
    cnn_explain_opts_default(&o);
    o.method = CNN_EXPLAIN_GRAD;
    int cls = -1;
    ck_assert_int_eq(cnn_explain_map(e, x, &cls, &o, a, NULL, &err), 0);
    o.method = CNN_EXPLAIN_SMOOTHGRAD, o.noise = 0.0f, o.samples = 7; /* two batches of 4 */
    ck_assert_int_eq(cnn_explain_map(e, x, &cls, &o, b, NULL, &err), 0);
    check_same("smoothgrad with zero noise vs grad", b, a, 64, 1e-5f);
    o.noise = 0.5f; /* with noise: a different, still finite, non-negative map */
    ck_assert_int_eq(cnn_explain_map(e, x, &cls, &o, b, NULL, &err), 0);
    int differs = 0;
    for (int i = 0; i < 64; i++) {
        ck_assert(isfinite(b[i]) && b[i] >= 0.0f);
        differs |= fabsf(a[i] - b[i]) > 1e-6f;
    }
    ck_assert(differs);
    cnn_explainer_destroy(e);
    cnn_model_destroy(m);
}
END_TEST

START_TEST(test_explain_refuses_bad_input)
{
    struct cnn_err err = {0};
    struct cnn_model *m = compiled(test_net_small(1));
    struct cnn_explainer *e = cnn_explainer_create(m, 2, &err);
    float x[3 * 64] = {0}, g[3 * 64];
    int cls[3] = {4, -1, -1};
    ck_assert_int_eq(cnn_explain_gradient(e, x, 1, cls, g, NULL, NULL, &err), CNN_EINVAL);
    cls[0] = -1;
    ck_assert_int_eq(cnn_explain_gradient(e, x, 3, cls, g, NULL, NULL, &err), CNN_EINVAL);
    ck_assert_int_eq(cnn_explain_gradient(e, x, 0, cls, g, NULL, NULL, &err), CNN_EINVAL);
    x[5] = NAN;
    ck_assert_int_eq(cnn_explain_gradient(e, x, 1, cls, g, NULL, NULL, &err), CNN_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "not finite"));
    x[5] = 0.0f;
    struct cnn_explain_opts o;
    cnn_explain_opts_default(&o);
    o.method = CNN_EXPLAIN_SMOOTHGRAD, o.samples = 0;
    ck_assert_int_eq(cnn_explain_map(e, x, cls, &o, g, NULL, &err), CNN_EINVAL);
    enum cnn_explain_method meth;
    ck_assert_int_eq(cnn_explain_method_parse("saliency", &meth, &err), CNN_EINVAL);
    ck_assert_int_eq(cnn_explain_method_parse("occlusion", &meth, &err), 0);
    ck_assert_int_eq(meth, CNN_EXPLAIN_OCCLUSION);
    ck_assert_ptr_null(cnn_explainer_create(m, 0, &err));
    ck_assert_int_eq(err.code, CNN_EINVAL);
    cnn_explainer_destroy(e);
    cnn_model_destroy(m);
}
END_TEST

/* Encodes img, decodes it with the PNG reader and compares every byte. */
static void round_trip(const struct cnn_image *img)
{
    struct cnn_err err = {0};
    void *png;
    size_t len;
    ck_assert_int_eq(cnn_image_encode_png(img, &png, &len, &err), 0);
    struct cnn_image back;
    ck_assert_int_eq(cnn_image_decode(png, len, 1u << 24, &back, &err), 0);
    ck_assert_int_eq(back.w, img->w);
    ck_assert_int_eq(back.h, img->h);
    ck_assert_int_eq(back.c, img->c);
    ck_assert_int_eq(memcmp(back.pix, img->pix, (size_t)img->w * img->h * img->c), 0);
    cnn_image_free(&back);
    free(png);
}

START_TEST(test_png_encoder_round_trips_and_refuses_bad_images)
{
    unsigned char pix[7 * 5 * 3];
    for (size_t i = 0; i < sizeof pix; i++)
        pix[i] = (unsigned char)(i * 37 + 11);
    struct cnn_image rgb = {7, 5, 3, pix}, gray = {7, 5, 1, pix};
    round_trip(&rgb);
    round_trip(&gray);
    struct cnn_image bad = {7, 5, 2, pix};
    void *png;
    size_t len;
    struct cnn_err err = {0};
    ck_assert_int_eq(cnn_image_encode_png(&bad, &png, &len, &err), CNN_EINVAL);
    ck_assert_ptr_null(png);
}
END_TEST

START_TEST(test_plots_have_their_sizes_and_shade_confusion_cells)
{
    struct cnn_err err = {0};
    long cm[4] = {9, 1, 0, 10}; /* row 0: 90% right; row 1: all right */
    struct cnn_image img;
    ck_assert_int_eq(cnn_plot_confusion(cm, 2, &img, &err), 0);
    ck_assert_int_eq(img.w, 40 + 2 * 48 + 8);
    /* the top-left corner pixel of cell (1, 0), count 0: white */
    const unsigned char *p = img.pix + ((size_t)(40 + 48) * img.w + 40) * 3;
    ck_assert(p[0] == 255 && p[1] == 255 && p[2] == 255);
    p = img.pix + ((size_t)(40 + 48) * img.w + 40 + 48) * 3; /* cell (1, 1): 100%, darkest */
    ck_assert_int_eq(p[0], 255 - 224);
    round_trip(&img);
    cnn_image_free(&img);
    ck_assert_int_eq(cnn_plot_confusion(cm, 0, &img, &err), CNN_EINVAL);
    double step[3] = {1, 2, 3}, loss[3] = {2.0, 1.0, NAN}, acc[3] = {0.1, 0.5, 0.7};
    ck_assert_int_eq(cnn_plot_curves(step, loss, acc, 3, NULL, NULL, NULL, 0, &img, &err), 0);
    ck_assert_int_eq(img.w, 800);
    ck_assert_int_eq(img.h, 600);
    cnn_image_free(&img);
    ck_assert_int_eq(cnn_plot_curves(step, loss, acc, 0, NULL, NULL, NULL, 0, &img, &err),
                     CNN_EINVAL);
}
END_TEST

START_TEST(test_filter_grid_draws_normalised_weights)
{
    struct cnn_err err = {0};
    struct cnn_model *m = compiled(test_net_small(6)); /* conv: 4 filters 1x3x3 */
    struct cnn_image img;
    ck_assert_int_eq(cnn_plot_filters(m, &img, &err), 0);
    /* 2x2 grid of 3x3 filters, 21 px per weight (64 / 3), gaps of 4 */
    ck_assert_int_eq(img.w, 2 * (63 + 4) + 4);
    unsigned char lo = 255, hi = 0;
    for (int y = 0; y < 3; y++)
        for (int x = 0; x < 3; x++) {
            unsigned char v = img.pix[((size_t)(4 + y * 21) * img.w + 4 + x * 21) * 3];
            lo = v < lo ? v : lo, hi = v > hi ? v : hi;
        }
    ck_assert_int_eq(lo, 0); /* min-max per filter: its smallest weight black */
    ck_assert_int_eq(hi, 255);
    cnn_image_free(&img);
    cnn_model_destroy(m);
    struct cnn_model *lin = linear_model();
    ck_assert_int_eq(cnn_plot_filters(lin, &img, &err), CNN_ENOENT);
    cnn_model_destroy(lin);
}
END_TEST

Suite *explain_suite(void)
{
    Suite *s = suite_create("explain");
    TCase *tc = tcase_create("explain");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_explain_gradient_matches_finite_differences_small_net);
    tcase_add_test(tc, test_explain_gradient_matches_finite_differences_every_kind);
    tcase_add_test(tc, test_explain_probs_and_top1_match_the_session);
    tcase_add_test(tc, test_explain_occlusion_and_gradinput_of_a_linear_model_are_its_closed_form);
    tcase_add_test(tc, test_explain_smoothgrad_without_noise_is_the_gradient_map);
    tcase_add_test(tc, test_explain_refuses_bad_input);
    tcase_add_test(tc, test_png_encoder_round_trips_and_refuses_bad_images);
    tcase_add_test(tc, test_plots_have_their_sizes_and_shade_confusion_cells);
    tcase_add_test(tc, test_filter_grid_draws_normalised_weights);
    suite_add_tcase(s, tc);
    return s;
}
