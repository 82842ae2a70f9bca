/* Test network for the ONNX export (see test_onnx_nets.h). */
#include "test_onnx_nets.h"
#include "test_nets.h"
#include "test_train.h"

#include <check.h>

static void fill_slot(struct cnn_model *m, int layer, int slot, uint64_t seed, float scale,
                      float offset)
{
    size_t n;
    float *w = cnn_model_weights_mut(m, layer, slot, &n);
    ck_assert_ptr_nonnull(w);
    test_fill(w, n, seed);
    for (size_t i = 0; i < n; i++)
        w[i] = offset + scale * w[i];
}

struct cnn_layer_desc onnx_test_conv(const char *name, int oc, int k, int pad, int bias,
                                     struct cnn_act_params act)
{
    struct cnn_layer_desc d = conv(name, oc, k, pad, bias, act.kind); /* test_train.h */
    d.p.conv.act = act;
    return d;
}

struct cnn_model *test_net_ranks(uint64_t seed)
{
    struct cnn_preproc pp = {.c = 3,
                             .h = 6,
                             .w = 6,
                             .resize = CNN_RESIZE_SHORTER_CROP,
                             .resize_short = 8,
                             .mean = {0.5f, 0.25f, 0},
                             .std = {2, 1, 0.5f}};
    struct cnn_err err = {0};
    struct cnn_model *m = cnn_model_create(&pp, &err);
    ck_assert_msg(m != NULL, "%s", err.msg);
    struct cnn_layer_desc d =
        onnx_test_conv("c1", 4, 3, 1, 1, (struct cnn_act_params){CNN_ACT_LEAKY_RELU, 0.2f, 0});
    int c1 = add(m, d);
    d = (struct cnn_layer_desc){.kind = CNN_LAYER_AVGPOOL, .name = "avg"};
    d.p.pool = (struct cnn_pool2d){.kh = 3,
                                   .kw = 3,
                                   .sh = 2,
                                   .sw = 2,
                                   .pad_t = 1,
                                   .pad_l = 1,
                                   .pad_b = 1,
                                   .pad_r = 1,
                                   .ceil_mode = 1,
                                   .count_include_pad = 1};
    add(m, d); /* 6x6 -> 4x4 (3x3 without ceil mode) */
    int gap = add(m, (struct cnn_layer_desc){.kind = CNN_LAYER_GLOBAL_AVGPOOL, .name = "gap"});
    d = (struct cnn_layer_desc){.kind = CNN_LAYER_DENSE, .name = "fc"};
    d.p.dense = (struct cnn_dense){.out = 4, .has_bias = 1, .act = {CNN_ACT_SIGMOID, 0, 0}};
    int fc = add(m, d);
    int sum_in[2] = {gap, fc};
    add(m, inputs((struct cnn_layer_desc){.kind = CNN_LAYER_ADD, .name = "sum"}, 2, sum_in));
    d = onnx_test_conv("mix", 6, 1, 0, 1, (struct cnn_act_params){CNN_ACT_CLIP, -0.5f, 0.5f});
    add(m, d);
    add(m, (struct cnn_layer_desc){.kind = CNN_LAYER_FLATTEN, .name = "flat"});
    d = (struct cnn_layer_desc){.kind = CNN_LAYER_DENSE, .name = "fc2"};
    d.p.dense = (struct cnn_dense){.out = 5, .has_bias = 0};
    int fc2 = add(m, d);
    d = (struct cnn_layer_desc){.kind = CNN_LAYER_ACT, .name = "th"};
    d.p.act = (struct cnn_act_params){CNN_ACT_TANH, 0, 0};
    add(m, d);
    d = bn("fbn");
    d.p.bn.act = (struct cnn_act_params){CNN_ACT_RELU, 0, 0};
    int fbn = add(m, d);
    add(m, (struct cnn_layer_desc){.kind = CNN_LAYER_SOFTMAX, .name = "prob"});
    const char *labels[5] = {"k0", "k1", "k2", "k3", "k4"};
    ck_assert_int_eq(cnn_model_set_labels(m, labels, 5, &err), 0);
    ck_assert_int_eq(cnn_model_alloc_params(m, &err), 0);
    cnn_model_init_random(m, seed);
    fill_slot(m, c1, 1, seed + 1, 0.5f, 0);
    fill_slot(m, fc, 1, seed + 2, 0.5f, 0);
    fill_slot(m, fc2, 0, seed + 3, 2.0f, 0);     /* wide logits: a peaked softmax */
    fill_slot(m, fbn, 0, seed + 4, 0.5f, 1.0f);  /* gamma */
    fill_slot(m, fbn, 1, seed + 5, 0.5f, 0);     /* beta */
    fill_slot(m, fbn, 2, seed + 6, 0.5f, 0);     /* mean */
    fill_slot(m, fbn, 3, seed + 7, 0.25f, 0.5f); /* var */
    return m;
}
