/* The network with every layer kind and activation added for ONNX import (see
 * test_kinds_nets.h), shared by check_kinds_net, check_onnx_export and session_raw. */
#include "test_kinds_nets.h"
#include "test_nets.h"
#include "test_train.h"

#include <check.h>

struct cnn_layer_desc act2(const char *name, enum cnn_act kind, float a, float b)
{
    struct cnn_layer_desc d = act(name, kind);
    d.p.act.alpha = a, d.p.act.beta = b;
    return d;
}

struct cnn_layer_desc prelu(const char *name, int channels)
{
    struct cnn_layer_desc d = simple(CNN_LAYER_PRELU, name);
    d.p.prelu.channels = channels;
    return d;
}

struct cnn_layer_desc scale_shift(const char *name, int channels, enum cnn_act a)
{
    struct cnn_layer_desc d = simple(CNN_LAYER_SCALE_SHIFT, name);
    d.p.ss.channels = channels;
    d.p.ss.act.kind = a;
    return d;
}

struct cnn_layer_desc pad(const char *name, int t, int l, int b, int r, float value)
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
 * BN's scale-shift), strided conv, reshape of its planes, a transpose of each item's axes,
 * per-channel PReLU, per-channel scale-shift + hard swish
 * (fused), global max and average pools concatenated, shared PReLU, shared scale-shift
 * (with its own leaky relu), flatten, dense with fused hard sigmoid, dense, log-softmax.
 * Not compiled. */
struct cnn_model *test_net_kinds(uint64_t seed)
{
    struct cnn_model *m = new_model(3, 9, 7);
    add(m, conv("conv1", 6, 3, 1, 1, CNN_ACT_HARD_SWISH)); /* 6x9x7 */
    add(m, pad("pad1", 1, 2, 0, -1, 0.3f));                /* 6x10x8 */
    add(m, bn("bn1"));
    add(m, act2("hsig1", CNN_ACT_HARD_SIGMOID, 0.5f, 0.5f));
    struct cnn_layer_desc c2 = conv("conv2", 8, 3, 0, 1, CNN_ACT_NONE);
    c2.p.conv.sh = c2.p.conv.sw = 2;
    add(m, c2); /* 8x4x3 */
    struct cnn_layer_desc rs = simple(CNN_LAYER_RESHAPE, "reshape1");
    rs.p.reshape = (struct cnn_reshape){.h = 2, .w = 6};
    add(m, rs); /* 8x2x6 */
    struct cnn_layer_desc tr = simple(CNN_LAYER_TRANSPOSE, "transpose1");
    tr.p.tr = (struct cnn_transpose){
        .d = {1, 1, 2, 4, 2, 6}, .perm = {0, 1, 3, 5, 2, 4}, .c = 8, .h = 2, .w = 6};
    add(m, tr); /* each item's 96 values as 2x4x2x6, permuted to 4x6x2x2, read as 8x2x6 */
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

struct cnn_model *test_net_kinds_flat(uint64_t seed)
{
    struct cnn_model *m = new_model(1, 4, 4);
    add(m, simple(CNN_LAYER_FLATTEN, "flat"));
    add(m, dense("fc", 6, CNN_ACT_NONE));
    add(m, prelu("pr", 6));
    add(m, scale_shift("ss", 6, CNN_ACT_HARD_SWISH));
    add(m, dense("fc2", 3, CNN_ACT_NONE));
    add(m, simple(CNN_LAYER_SOFTMAX, "prob"));
    struct cnn_err err = {0};
    ck_assert_int_eq(cnn_model_alloc_params(m, &err), 0);
    randomize(m, seed);
    randomize_new_kinds(m, seed);
    return m;
}
