/* Layer-kind table suite: every kind has a complete row (layer_kind.h) with a unique name
 * and a file record that fits; the one activation check and the one preprocessing check
 * (used by the model, the dataset and the image pipeline) apply the same rule everywhere. */
#include "dataset.h"
#include "dataset_internal.h"
#include "image.h"
#include "layer_kind.h"
#include "model.h"

#include <check.h>
#include <math.h>
#include <string.h>

START_TEST(test_every_kind_has_a_complete_row)
{
    for (int k = 0; k < CNN_LAYER_KIND_COUNT; k++) {
        const struct cnn_layer_kind_ops *row = cnn_layer_kind_ops((enum cnn_layer_kind)k);
        ck_assert_msg(row != NULL, "kind %d has no row", k);
        ck_assert_msg(row->name && row->name[0], "kind %d has no name", k);
        ck_assert_msg(row->infer && row->run && row->train_forward && row->train_backward,
                      "row %s lacks a required hook", row->name);
        ck_assert_int_le(row->n_fields, 16); /* the parameter words of a layer record */
        ck_assert_msg(row->n_fields == 0 || row->fields, "row %s: fields", row->name);
        ck_assert_int_le(row->learned_slots, CNN_MAX_WEIGHTS_PER_LAYER);
        ck_assert_int_le(row->decay_slots, row->learned_slots);
        ck_assert_msg(row->learned_slots == 0 || row->slot_names, "row %s: slot names",
                      row->name);
        ck_assert_str_eq(cnn_layer_kind_name((enum cnn_layer_kind)k), row->name);
        for (int j = 0; j < k; j++)
            ck_assert_str_ne(cnn_layer_kind_ops((enum cnn_layer_kind)j)->name, row->name);
    }
    ck_assert_ptr_null(cnn_layer_kind_ops(CNN_LAYER_KIND_COUNT));
    ck_assert_str_eq(cnn_layer_kind_name(CNN_LAYER_KIND_COUNT), "unknown");
}
END_TEST

START_TEST(test_one_activation_rule)
{
    struct cnn_err err = {0};
    struct cnn_act_params ok = {CNN_ACT_CLIP, 0.0f, 6.0f};
    ck_assert_int_eq(cnn_act_check(&ok, "l", &err), 0);
    struct cnn_act_params bad[] = {
        {CNN_ACT_COUNT, 0, 0},            /* unknown kind */
        {(enum cnn_act)-1, 0, 0},         /* unknown kind */
        {CNN_ACT_CLIP, 6.0f, 0.0f},       /* min > max */
        {CNN_ACT_CLIP, NAN, 6.0f},        /* not finite (layer.c's rule missed this one) */
        {CNN_ACT_LEAKY_RELU, INFINITY, 0}, /* not finite (model.c's rule only) */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_msg(cnn_act_check(&bad[i], "l", &err) == CNN_EINVAL, "act %zu", i);
        ck_assert_ptr_nonnull(strstr(err.msg, "l: "));
    }
    /* cnn_conv2d_shape applies the same rule as a conv layer added to a model */
    struct cnn_conv2d p = {.c = 2, .h = 5, .w = 5, .oc = 2, .kh = 3, .kw = 3, .sh = 1, .sw = 1,
                           .dh = 1, .dw = 1, .groups = 1};
    p.act = bad[4];
    ck_assert_int_eq(cnn_conv2d_shape(&p, &err), CNN_EINVAL);
}
END_TEST

START_TEST(test_one_preprocessing_rule)
{
    struct cnn_err err = {0};
    const struct cnn_preproc ok = {
        .c = 1, .h = 4, .w = 6, .std = {0.5f}}; /* std[1], std[2] unused */
    ck_assert_msg(cnn_preproc_check(&ok, &err) == 0, "%s", err.msg);
    struct cnn_preproc bad[6];
    for (int i = 0; i < 6; i++)
        bad[i] = ok;
    bad[0].c = CNN_PREPROC_MAX_C + 1;
    bad[1].w = CNN_PREPROC_MAX_DIM + 1; /* the dataset used to allow up to 65535 */
    bad[2].std[0] = 0;
    bad[3].resize = (enum cnn_resize)9;
    bad[4].resize = CNN_RESIZE_SHORTER_CROP; /* resize_short 5 < w 6: a portrait image's */
    bad[4].resize_short = 5;                 /* crop would not fit (model.c allowed it) */
    bad[5].mean[0] = NAN;
    for (int i = 0; i < 6; i++)
        ck_assert_msg(cnn_preproc_check(&bad[i], &err) == CNN_EINVAL, "pp %d", i);
    ck_assert_int_eq(cnn_preproc_check(NULL, &err), CNN_EINVAL);
    struct cnn_preproc crop = ok;
    crop.resize = CNN_RESIZE_SHORTER_CROP;
    crop.resize_short = 6;
    ck_assert_int_eq(cnn_preproc_check(&crop, &err), 0);
    /* the model and the image pipeline both apply it */
    ck_assert_ptr_null(cnn_model_create(&bad[4], &err));
    ck_assert_int_eq(err.code, CNN_EINVAL);
    unsigned char pix[8 * 8] = {0};
    struct cnn_image img = {8, 8, 1, pix};
    float out[4 * 6];
    ck_assert_int_eq(cnn_image_to_tensor(&img, &bad[4], out, &err), CNN_EINVAL);
    ck_assert_int_eq(cnn_image_to_tensor(&img, &crop, out, &err), 0);
    /* a model fed tensors may take 0 < C <= CNN_PREPROC_MAX_C; images only 1 or 3 */
    struct cnn_preproc c8 = ok;
    c8.c = 8;
    c8.std[1] = c8.std[2] = 1.0f; /* the first min(C, 3) are checked */
    ck_assert_msg(cnn_preproc_check(&c8, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(cnn_preproc_check_image(&c8, &err), CNN_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "1 or 3"));
    ck_assert_int_eq(cnn_image_to_tensor(&img, &c8, out, &err), CNN_EINVAL);
    ck_assert_ptr_null(cnn_dataset_alloc(&c8, 1, "c8", &err));
    ck_assert_int_eq(err.code, CNN_EINVAL);
    c8.c = 0;
    ck_assert_int_eq(cnn_preproc_check(&c8, &err), CNN_EINVAL);
    ck_assert_int_eq(cnn_preproc_check_image(&ok, &err), 0);
    struct cnn_model *m = cnn_model_create(&crop, &err);
    ck_assert_ptr_nonnull(m);
    cnn_model_destroy(m);
}
END_TEST

Suite *layer_kind_suite(void)
{
    Suite *s = suite_create("layer_kind");
    TCase *tc = tcase_create("table");
    tcase_add_test(tc, test_every_kind_has_a_complete_row);
    tcase_add_test(tc, test_one_activation_rule);
    tcase_add_test(tc, test_one_preprocessing_rule);
    suite_add_tcase(s, tc);
    return s;
}
