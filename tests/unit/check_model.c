/* Model suite: building a graph through model.h -- shape inference, every rejected
 * construction, parameter and FLOP counts by formula, compile-time weight checks. */
#include "model.h"
#include "test_nets.h"

#include <check.h>
#include <math.h>
#include <string.h>

static struct cnn_model *gray(int h, int w)
{
    struct cnn_preproc pp = {.c = 1, .h = h, .w = w, .mean = {0, 0, 0}, .std = {1, 1, 1}};
    struct cnn_err err = {0};
    struct cnn_model *m = cnn_model_create(&pp, &err);
    ck_assert_msg(m != NULL, "%s", err.msg);
    return m;
}

static struct cnn_layer_desc conv_desc(int oc, int k, int s, int pad)
{
    struct cnn_layer_desc d = {.kind = CNN_LAYER_CONV2D};
    d.p.conv = (struct cnn_conv2d){.oc = oc, .kh = k, .kw = k, .sh = s, .sw = s, .dh = 1,
                                   .dw = 1, .pad_t = pad, .pad_l = pad, .pad_b = pad,
                                   .pad_r = pad, .groups = 1, .has_bias = 1};
    return d;
}

START_TEST(test_shapes_inferred_through_the_graph)
{
    struct cnn_model *m = gray(28, 28);
    struct cnn_err err = {0};
    int c1 = cnn_model_add(m, &(struct cnn_layer_desc){.kind = CNN_LAYER_CONV2D,
                                                        .p.conv = conv_desc(6, 5, 1, 0).p.conv},
                           &err);
    struct cnn_layer_desc pool = {.kind = CNN_LAYER_MAXPOOL};
    pool.p.pool = (struct cnn_pool2d){.kh = 2, .kw = 2, .sh = 2, .sw = 2};
    int p1 = cnn_model_add(m, &pool, &err);
    struct cnn_layer_info info;
    cnn_model_layer_info(m, c1, &info);
    ck_assert_int_eq(info.c, 6);
    ck_assert_int_eq(info.h, 24);
    ck_assert_int_eq(info.w, 24);
    ck_assert_uint_eq(info.params, 6 * 25 + 6);
    ck_assert(fabs(info.flops - 2.0 * 6 * 25 * 24 * 24) < 0.5);
    cnn_model_layer_info(m, p1, &info);
    ck_assert_int_eq(info.h, 12);
    int f = cnn_model_add(m, &(struct cnn_layer_desc){.kind = CNN_LAYER_FLATTEN}, &err);
    cnn_model_layer_info(m, f, &info);
    ck_assert_int_eq(info.c, 6 * 12 * 12);
    ck_assert_int_eq(info.h * info.w, 1);
    struct cnn_layer_desc fc = {.kind = CNN_LAYER_DENSE};
    fc.p.dense = (struct cnn_dense){.out = 10, .has_bias = 1};
    cnn_model_add(m, &fc, &err);
    ck_assert_int_eq(cnn_model_num_classes(m), 10);
    ck_assert_uint_eq(cnn_model_param_count(m), 6 * 25 + 6 + 864 * 10 + 10);
    ck_assert_int_eq(cnn_model_find_layer(m, "dense4"), 4);
    ck_assert_int_eq(cnn_model_find_layer(m, "nope"), -1);
    cnn_model_destroy(m);
}
END_TEST

/* Each bad construction is refused with CNN_EINVAL (or ELIMIT) and leaves the model usable. */
START_TEST(test_bad_layers_rejected)
{
    struct cnn_model *m = gray(8, 8);
    struct cnn_err err = {0};
    struct cnn_layer_desc d = conv_desc(4, 9, 1, 0); /* kernel larger than the input */
    ck_assert_int_eq(cnn_model_add(m, &d, &err), CNN_EINVAL);
    d = conv_desc(4, 3, 0, 0); /* stride 0 */
    ck_assert_int_eq(cnn_model_add(m, &d, &err), CNN_EINVAL);
    d = conv_desc(3, 3, 1, 0); /* groups that do not divide the channels */
    d.p.conv.groups = 2;
    ck_assert_int_eq(cnn_model_add(m, &d, &err), CNN_EINVAL);
    struct cnn_layer_desc fc = {.kind = CNN_LAYER_DENSE}; /* dense on an 8x8 map */
    fc.p.dense.out = 3;
    ck_assert_int_eq(cnn_model_add(m, &fc, &err), CNN_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "flatten"));
    int fwd[1] = {5}; /* forward reference */
    d = conv_desc(4, 3, 1, 1);
    d.n_inputs = 1;
    d.inputs = fwd;
    ck_assert_int_eq(cnn_model_add(m, &d, &err), CNN_EINVAL);
    d = conv_desc(4, 3, 1, 1);
    d.name = "a";
    ck_assert_int_eq(cnn_model_add(m, &d, &err), 1);
    ck_assert_int_eq(cnn_model_add(m, &d, &err), CNN_EINVAL); /* duplicate name */
    ck_assert_ptr_nonnull(strstr(err.msg, "duplicate"));
    int two[2] = {0, 1}; /* add of 1x8x8 and 4x8x8 */
    struct cnn_layer_desc add = {.kind = CNN_LAYER_ADD, .n_inputs = 2, .inputs = two};
    ck_assert_int_eq(cnn_model_add(m, &add, &err), CNN_EINVAL);
    struct cnn_layer_desc act = {.kind = CNN_LAYER_ACT};
    act.p.act = (struct cnn_act_params){CNN_ACT_CLIP, 6, 0}; /* min > max */
    ck_assert_int_eq(cnn_model_add(m, &act, &err), CNN_EINVAL);
    act.p.act = (struct cnn_act_params){(enum cnn_act)42, 0, 0};
    ck_assert_int_eq(cnn_model_add(m, &act, &err), CNN_EINVAL);
    struct cnn_layer_desc relu_two = {.kind = CNN_LAYER_ACT, .n_inputs = 2, .inputs = two};
    ck_assert_int_eq(cnn_model_add(m, &relu_two, &err), CNN_EINVAL);
    /* softmax of two inputs (on a map it is over the channels at each position) */
    struct cnn_layer_desc sm = {.kind = CNN_LAYER_SOFTMAX, .n_inputs = 2, .inputs = two};
    ck_assert_int_eq(cnn_model_add(m, &sm, &err), CNN_EINVAL);
    struct cnn_layer_desc bn = {.kind = CNN_LAYER_BATCHNORM}; /* eps 0 */
    ck_assert_int_eq(cnn_model_add(m, &bn, &err), CNN_EINVAL);
    struct cnn_layer_desc drop = {.kind = CNN_LAYER_DROPOUT};
    drop.p.dropout_rate = 1.0f;
    ck_assert_int_eq(cnn_model_add(m, &drop, &err), CNN_EINVAL);
    struct cnn_layer_desc in = {.kind = CNN_LAYER_INPUT};
    ck_assert_int_eq(cnn_model_add(m, &in, &err), CNN_EINVAL);
    ck_assert_int_eq(cnn_model_layer_count(m), 2); /* only "a" was added */
    const char *labels[1] = {"x"};
    ck_assert_int_eq(cnn_model_set_labels(m, labels, 1, &err), CNN_EINVAL); /* 256 classes */
    cnn_model_destroy(m);
}
END_TEST

START_TEST(test_bad_preprocessing_rejected)
{
    struct cnn_err err = {0};
    struct cnn_preproc pp = {.c = 0, .h = 8, .w = 8, .std = {1, 1, 1}};
    ck_assert_ptr_null(cnn_model_create(&pp, &err));
    pp.c = CNN_PREPROC_MAX_C + 1; /* any C in between is a model fed tensors */
    ck_assert_ptr_null(cnn_model_create(&pp, &err));
    pp.c = 3;
    pp.std[1] = 0;
    ck_assert_ptr_null(cnn_model_create(&pp, &err));
    ck_assert_int_eq(err.code, CNN_EINVAL);
    pp.std[1] = 1;
    pp.h = 0;
    ck_assert_ptr_null(cnn_model_create(&pp, &err));
}
END_TEST

START_TEST(test_compile_rejects_nan_and_negative_variance)
{
    struct cnn_err err = {0};
    struct cnn_model *m = test_net_small(3);
    size_t n;
    float *w = cnn_model_weights_mut(m, 1, 0, &n);
    w[n / 2] = NAN;
    ck_assert_int_eq(cnn_model_compile(m, &err), CNN_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "conv"));
    cnn_model_destroy(m);

    m = test_net_dag(3);
    int bn = cnn_model_find_layer(m, "c2_bn");
    float *var = cnn_model_weights_mut(m, bn, 3, &n);
    var[1] = -0.5f;
    ck_assert_int_eq(cnn_model_compile(m, &err), CNN_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "c2_bn"));
    cnn_model_destroy(m);
}
END_TEST

START_TEST(test_init_random_is_deterministic_and_scaled)
{
    struct cnn_model *a = test_net_small(5), *b = test_net_small(5), *c = test_net_small(6);
    size_t n;
    float *wa = cnn_model_weights_mut(a, 1, 0, &n);
    float *wb = cnn_model_weights_mut(b, 1, 0, NULL);
    float *wc = cnn_model_weights_mut(c, 1, 0, NULL);
    ck_assert_mem_eq(wa, wb, n * sizeof(float));
    ck_assert(memcmp(wa, wc, n * sizeof(float)) != 0);
    /* He init for a conv feeding relu: std sqrt(2 / fan_in) with fan_in 9; 36 samples */
    double ss = 0;
    for (size_t i = 0; i < n; i++)
        ss += (double)wa[i] * wa[i];
    double std = sqrt(ss / n);
    ck_assert_msg(std > 0.25 && std < 0.8, "std %g", std);
    cnn_model_destroy(a);
    cnn_model_destroy(b);
    cnn_model_destroy(c);
}
END_TEST

START_TEST(test_labels_and_meta_round_through_accessors)
{
    struct cnn_model *m = test_net_small(1);
    struct cnn_err err = {0};
    ck_assert_str_eq(cnn_model_label(m, 2), "two");
    ck_assert_ptr_null(cnn_model_label(m, 4));
    ck_assert_str_eq(cnn_model_meta(m), "");
    ck_assert_int_eq(cnn_model_set_meta(m, "parent=1\n", &err), 0);
    ck_assert_str_eq(cnn_model_meta(m), "parent=1\n");
    char v[8];
    cnn_model_meta_value(m, "parent", v, sizeof v);
    ck_assert_str_eq(v, "1");
    ck_assert_int_eq(cnn_model_set_meta(m, "archx=2\narch=lenet5\nlast=verylongvalue", &err), 0);
    cnn_model_meta_value(m, "arch", v, sizeof v); /* not the "archx" line */
    ck_assert_str_eq(v, "lenet5");
    cnn_model_meta_value(m, "last", v, sizeof v); /* no newline at the end; cut to fit */
    ck_assert_str_eq(v, "verylon");
    cnn_model_meta_value(m, "parent", v, sizeof v);
    ck_assert_str_eq(v, "");
    const char *bad[4] = {"a", "", "c", "d"};
    ck_assert_int_eq(cnn_model_set_labels(m, bad, 4, &err), CNN_EINVAL);
    ck_assert_str_eq(cnn_model_label(m, 1), "one"); /* unchanged */
    ck_assert_int_eq(cnn_model_compile(m, &err), 0);
    ck_assert_int_eq(cnn_model_compile(m, &err), CNN_EINVAL); /* twice */
    cnn_model_destroy(m);
}
END_TEST

Suite *model_suite(void)
{
    Suite *s = suite_create("model");
    TCase *tc = tcase_create("graph");
    tcase_add_test(tc, test_shapes_inferred_through_the_graph);
    tcase_add_test(tc, test_bad_layers_rejected);
    tcase_add_test(tc, test_bad_preprocessing_rejected);
    tcase_add_test(tc, test_compile_rejects_nan_and_negative_variance);
    tcase_add_test(tc, test_init_random_is_deterministic_and_scaled);
    tcase_add_test(tc, test_labels_and_meta_round_through_accessors);
    suite_add_tcase(s, tc);
    return s;
}
