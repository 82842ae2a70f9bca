/* Test networks (see test_nets.h). */
#include "test_nets.h"

#include <check.h>
#include <stdio.h>

void test_fill(float *x, size_t n, uint64_t seed)
{
    uint64_t s = seed * 6364136223846793005ull + 1442695040888963407ull;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((double)(s >> 40) / (double)(1ull << 24) * 2.0 - 1.0);
    }
}

int add(struct cnn_model *m, struct cnn_layer_desc d)
{
    struct cnn_err err = {0};
    int idx = cnn_model_add(m, &d, &err);
    ck_assert_msg(idx >= 0, "add %s: %s", d.name ? d.name : "?", err.msg);
    return idx;
}

static struct cnn_layer_desc conv(const char *name, int oc, int k, int s, int pad, int groups,
                                  int bias)
{
    struct cnn_layer_desc d = {.kind = CNN_LAYER_CONV2D, .name = name};
    d.p.conv = (struct cnn_conv2d){.oc = oc, .kh = k, .kw = k, .sh = s, .sw = s, .dh = 1,
                                   .dw = 1, .pad_t = pad, .pad_l = pad, .pad_b = pad,
                                   .pad_r = pad, .groups = groups, .has_bias = bias};
    return d;
}

struct cnn_layer_desc bn(const char *name)
{
    struct cnn_layer_desc d = {.kind = CNN_LAYER_BATCHNORM, .name = name};
    d.p.bn.eps = 1e-5f;
    return d;
}

static struct cnn_layer_desc act(const char *name, enum cnn_act kind, float a, float b)
{
    struct cnn_layer_desc d = {.kind = CNN_LAYER_ACT, .name = name};
    d.p.act = (struct cnn_act_params){kind, a, b};
    return d;
}

struct cnn_layer_desc inputs(struct cnn_layer_desc d, int n, const int *in)
{
    d.n_inputs = n;
    d.inputs = in;
    return d;
}

struct cnn_model *compiled(struct cnn_model *m)
{
    struct cnn_err err = {0};
    ck_assert_msg(cnn_model_compile(m, &err) == 0, "compile: %s", err.msg);
    return m;
}

void test_randomize(struct cnn_model *m, uint64_t seed)
{
    cnn_model_init_random(m, seed);
    for (int i = 1; i < cnn_model_layer_count(m); i++) {
        struct cnn_layer_info info;
        cnn_model_layer_info(m, i, &info);
        size_t n;
        if (info.kind == CNN_LAYER_BATCHNORM) {
            float *g = cnn_model_weights_mut(m, i, 0, &n);
            float *b = cnn_model_weights_mut(m, i, 1, NULL);
            float *mu = cnn_model_weights_mut(m, i, 2, NULL);
            float *var = cnn_model_weights_mut(m, i, 3, NULL);
            test_fill(g, n, seed + 10 * i);
            test_fill(b, n, seed + 10 * i + 1);
            test_fill(mu, n, seed + 10 * i + 2);
            test_fill(var, n, seed + 10 * i + 3);
            for (size_t k = 0; k < n; k++) {
                g[k] = 1.0f + 0.5f * g[k];
                var[k] = 0.5f + var[k] * var[k];
            }
        } else if ((info.kind == CNN_LAYER_CONV2D || info.kind == CNN_LAYER_DENSE)) {
            float *b = cnn_model_weights_mut(m, i, 1, &n);
            if (b)
                test_fill(b, n, seed + 10 * i + 5);
        }
    }
}

struct cnn_model *test_net_dag(uint64_t seed)
{
    struct cnn_preproc pp = {.c = 3, .h = 13, .w = 11, .mean = {0, 0, 0}, .std = {1, 1, 1}};
    struct cnn_err err = {0};
    struct cnn_model *m = cnn_model_create(&pp, &err);
    ck_assert_msg(m != NULL, "%s", err.msg);
    add(m, conv("c1", 8, 3, 1, 1, 1, 0));
    add(m, bn("c1_bn"));
    int stem = add(m, act("c1_relu", CNN_ACT_RELU, 0, 0));
    struct cnn_layer_desc d = conv("c2", 8, 3, 2, 0, 2, 1); /* groups 2, asymmetric pad */
    d.p.conv.pad_t = 1, d.p.conv.pad_l = 0, d.p.conv.pad_b = 2, d.p.conv.pad_r = 1;
    add(m, d);
    add(m, bn("c2_bn"));
    int a = add(m, act("c2_leaky", CNN_ACT_LEAKY_RELU, 0.1f, 0));
    /* residual block: depthwise 3x3 dilated, 1x1, add + relu */
    d = conv("dw", 8, 3, 1, 2, 8, 0);
    d.p.conv.dh = d.p.conv.dw = 2;
    add(m, d);
    add(m, bn("dw_bn"));
    add(m, act("dw_relu6", CNN_ACT_CLIP, 0, 6));
    add(m, conv("pw", 8, 1, 1, 0, 1, 1));
    int pw_bn = add(m, bn("pw_bn"));
    int res_in[2] = {a, pw_bn};
    int res =
        add(m, inputs((struct cnn_layer_desc){.kind = CNN_LAYER_ADD, .name = "res"}, 2, res_in));
    int res_relu = add(m, act("res_relu", CNN_ACT_RELU, 0, 0));
    (void)res;
    /* inception-like branches: maxpool 3x3 s1 p1, 1x1 conv with tanh, 1x1 stride 2 on stem */
    d = (struct cnn_layer_desc){.kind = CNN_LAYER_MAXPOOL, .name = "b_pool"};
    d.p.pool = (struct cnn_pool2d){.kh = 3, .kw = 3, .sh = 1, .sw = 1, .pad_t = 1, .pad_l = 1,
                                   .pad_b = 1, .pad_r = 1};
    int bp = add(m, d);
    int one[1] = {res_relu};
    add(m, inputs(conv("b_1x1", 4, 1, 1, 0, 1, 1), 1, one));
    int bt = add(m, act("b_tanh", CNN_ACT_TANH, 0, 0));
    int st[1] = {stem};
    d = conv("b_s2", 3, 1, 2, 0, 1, 1);
    d.p.conv.kw = 3; /* 1x3 stride 2: 13x11 -> 7x5 like the other branches */
    add(m, inputs(d, 1, st));
    int bs = add(m, act("b_sig", CNN_ACT_SIGMOID, 0, 0));
    int cat_in[4] = {res_relu, bp, bt, bs};
    add(m, inputs((struct cnn_layer_desc){.kind = CNN_LAYER_CONCAT, .name = "cat"}, 4, cat_in));
    d = bn("cat_bn");
    d.p.bn.act = (struct cnn_act_params){CNN_ACT_RELU, 0, 0};
    add(m, d);
    d = (struct cnn_layer_desc){.kind = CNN_LAYER_LRN, .name = "lrn"};
    d.p.lrn = (struct cnn_lrn){.size = 5, .alpha = 1e-2f, .beta = 0.75f, .k = 2.0f};
    add(m, d);
    d = (struct cnn_layer_desc){.kind = CNN_LAYER_AVGPOOL, .name = "avg"};
    d.p.pool = (struct cnn_pool2d){.kh = 2, .kw = 2, .sh = 2, .sw = 2, .ceil_mode = 1,
                                   .count_include_pad = 0};
    add(m, d);
    d = (struct cnn_layer_desc){.kind = CNN_LAYER_DROPOUT, .name = "drop"};
    d.p.dropout_rate = 0.5f;
    add(m, d);
    add(m, (struct cnn_layer_desc){.kind = CNN_LAYER_FLATTEN, .name = "flat"});
    d = (struct cnn_layer_desc){.kind = CNN_LAYER_DENSE, .name = "fc1"};
    d.p.dense = (struct cnn_dense){.out = 12, .has_bias = 1};
    add(m, d);
    add(m, act("fc1_relu", CNN_ACT_RELU, 0, 0));
    d.name = "fc2";
    d.p.dense = (struct cnn_dense){.out = 5, .has_bias = 1};
    add(m, d);
    add(m, (struct cnn_layer_desc){.kind = CNN_LAYER_SOFTMAX, .name = "prob"});
    ck_assert_int_eq(cnn_model_alloc_params(m, &err), 0);
    test_randomize(m, seed);
    return m;
}

struct cnn_model *test_net_small(uint64_t seed)
{
    struct cnn_preproc pp = {.c = 1, .h = 8, .w = 8, .mean = {0.5f, 0, 0}, .std = {0.25f, 1, 1}};
    struct cnn_err err = {0};
    struct cnn_model *m = cnn_model_create(&pp, &err);
    ck_assert_msg(m != NULL, "%s", err.msg);
    add(m, conv("conv", 4, 3, 1, 1, 1, 1));
    add(m, act("relu", CNN_ACT_RELU, 0, 0));
    struct cnn_layer_desc d = {.kind = CNN_LAYER_MAXPOOL, .name = "pool"};
    d.p.pool = (struct cnn_pool2d){.kh = 2, .kw = 2, .sh = 2, .sw = 2};
    add(m, d);
    add(m, (struct cnn_layer_desc){.kind = CNN_LAYER_FLATTEN, .name = "flat"});
    d = (struct cnn_layer_desc){.kind = CNN_LAYER_DENSE, .name = "fc"};
    d.p.dense = (struct cnn_dense){.out = 4, .has_bias = 1};
    add(m, d);
    add(m, (struct cnn_layer_desc){.kind = CNN_LAYER_SOFTMAX, .name = "prob"});
    const char *labels[4] = {"zero", "one", "two", "three"};
    ck_assert_int_eq(cnn_model_set_labels(m, labels, 4, &err), 0);
    ck_assert_int_eq(cnn_model_alloc_params(m, &err), 0);
    test_randomize(m, seed);
    return m;
}

struct cnn_model *test_net_wide(uint64_t seed)
{
    struct cnn_preproc pp = {.c = 3, .h = 12, .w = 10, .mean = {0, 0, 0}, .std = {1, 1, 1}};
    struct cnn_err err = {0};
    struct cnn_model *m = cnn_model_create(&pp, &err);
    ck_assert_msg(m != NULL, "%s", err.msg);
    add(m, conv("c1", 16, 3, 1, 1, 1, 0));
    add(m, bn("c1_bn"));
    int stem = add(m, act("c1_relu", CNN_ACT_RELU, 0, 0));
    add(m, conv("c2", 16, 3, 1, 1, 1, 1));
    int c2 = add(m, bn("c2_bn"));
    int res_in[2] = {stem, c2};
    add(m, inputs((struct cnn_layer_desc){.kind = CNN_LAYER_ADD, .name = "res"}, 2, res_in));
    add(m, act("res_relu", CNN_ACT_RELU, 0, 0));
    add(m, conv("c3", 24, 3, 1, 0, 1, 1)); /* valid: 12x10 -> 10x8 */
    add(m, act("c3_tanh", CNN_ACT_TANH, 0, 0));
    struct cnn_layer_desc d = conv("c4", 16, 3, 1, 2, 1, 1);
    d.p.conv.pad_l = 1, d.p.conv.pad_b = 0; /* 10x8 -> 10x9 */
    d.p.conv.act = (struct cnn_act_params){CNN_ACT_RELU, 0, 0};
    add(m, d);
    d = (struct cnn_layer_desc){.kind = CNN_LAYER_GLOBAL_AVGPOOL, .name = "gap"};
    add(m, d);
    add(m, (struct cnn_layer_desc){.kind = CNN_LAYER_FLATTEN, .name = "flat"});
    d = (struct cnn_layer_desc){.kind = CNN_LAYER_DENSE, .name = "fc"};
    d.p.dense = (struct cnn_dense){.out = 5, .has_bias = 1};
    add(m, d);
    add(m, (struct cnn_layer_desc){.kind = CNN_LAYER_SOFTMAX, .name = "prob"});
    ck_assert_int_eq(cnn_model_alloc_params(m, &err), 0);
    test_randomize(m, seed);
    return m;
}
