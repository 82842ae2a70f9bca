/* The model_io suites' test model (see test_model_io.h). */
#include "test_model_io.h"

#include "model_internal.h"

#include <check.h>
#include <string.h>

uint64_t rng_state;

uint64_t rng_next(void)
{
    uint64_t x = rng_state;
    x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
    rng_state = x;
    return x * 0x2545f4914f6cdd1dull;
}

float rnd_uniform(float lo, float hi)
{
    return lo + (hi - lo) * (float)((double)(rng_next() >> 11) / 9007199254740992.0);
}

const char *const test_labels[5] = {"cat", "dog", "bird",
                                    "\xc3\xbc"
                                    "ml\xc3\xa4ut",
                                    "fish"};
const char test_meta[] = "trained_by=check_model_io\nepochs=3\nnote=\xe2\x9c\x93\n";

void add_layer(struct cnn_model *m, struct cnn_layer_desc *d, int want_index)
{
    struct cnn_err err = {0};
    int rc = cnn_model_add(m, d, &err);
    ck_assert_msg(rc == want_index, "add %s: %d %s", d->name, rc, err.msg);
}

struct cnn_layer_desc desc(enum cnn_layer_kind kind, const char *name)
{
    struct cnn_layer_desc d;
    memset(&d, 0, sizeof d);
    d.kind = kind;
    d.name = name;
    return d;
}

static struct cnn_layer_desc conv(const char *name, int oc, int k, int pad, int groups, int bias)
{
    struct cnn_layer_desc d = desc(CNN_LAYER_CONV2D, name);
    d.p.conv.oc = oc;
    d.p.conv.kh = d.p.conv.kw = k;
    d.p.conv.sh = d.p.conv.sw = d.p.conv.dh = d.p.conv.dw = 1;
    d.p.conv.pad_t = d.p.conv.pad_l = d.p.conv.pad_b = d.p.conv.pad_r = pad;
    d.p.conv.groups = groups;
    d.p.conv.has_bias = bias;
    return d;
}

/* conv+BN+relu, grouped conv, residual add, 1x1 conv with fused clip, concat, max and avg
 * pooling, LRN, flatten, dropout, dense with fused leaky relu, dense, softmax.  Random
 * weights (biases and BN statistics too); labels and meta set.  Not compiled. */
struct cnn_model *build_model(uint64_t seed)
{
    struct cnn_preproc pp = {.c = 3,
                             .h = 8,
                             .w = 8,
                             .resize = CNN_RESIZE_SHORTER_CROP,
                             .resize_short = 10,
                             .invert = 1,
                             .mean = {0.485f, 0.456f, 0.406f},
                             .std = {0.229f, 0.224f, 0.225f}};
    struct cnn_err err = {0};
    struct cnn_model *m = cnn_model_create(&pp, &err);
    ck_assert_msg(m != NULL, "%s", err.msg);
    struct cnn_layer_desc d;
    static const int add_in[2] = {L_RELU1, L_CONV2}, cat_in[2] = {L_ADD1, L_CONV3},
                     relu_in[1] = {L_RELU1};

    d = conv("conv1", 4, 3, 1, 1, 1), add_layer(m, &d, L_CONV1);
    d = desc(CNN_LAYER_BATCHNORM, "bn1"), d.p.bn.eps = 1e-3f, add_layer(m, &d, L_BN1);
    d = desc(CNN_LAYER_ACT, "relu1"), d.p.act.kind = CNN_ACT_RELU, add_layer(m, &d, L_RELU1);
    d = conv("conv2", 4, 3, 1, 2, 0), add_layer(m, &d, L_CONV2);
    d = desc(CNN_LAYER_ADD, "add1"), d.n_inputs = 2, d.inputs = add_in, add_layer(m, &d, L_ADD1);
    d = conv("conv3", 2, 1, 0, 1, 1), d.n_inputs = 1, d.inputs = relu_in;
    d.p.conv.act = (struct cnn_act_params){CNN_ACT_CLIP, 0.0f, 6.0f}, add_layer(m, &d, L_CONV3);
    d = desc(CNN_LAYER_CONCAT, "cat1"), d.n_inputs = 2, d.inputs = cat_in, add_layer(m, &d, L_CAT1);
    d = desc(CNN_LAYER_MAXPOOL, "pool1");
    d.p.pool.kh = d.p.pool.kw = d.p.pool.sh = d.p.pool.sw = 2, add_layer(m, &d, L_POOL1);
    d = desc(CNN_LAYER_AVGPOOL, "pool2");
    d.p.pool.kh = d.p.pool.kw = 3, d.p.pool.sh = d.p.pool.sw = 1;
    d.p.pool.pad_t = d.p.pool.pad_l = d.p.pool.pad_b = d.p.pool.pad_r = 1;
    add_layer(m, &d, L_POOL2);
    d = desc(CNN_LAYER_LRN, "lrn1"), d.p.lrn = (struct cnn_lrn){3, 1e-2f, 0.75f, 2.0f};
    add_layer(m, &d, L_LRN1);
    d = desc(CNN_LAYER_FLATTEN, "flat"), add_layer(m, &d, L_FLAT);
    d = desc(CNN_LAYER_DROPOUT, "drop"), d.p.dropout_rate = 0.25f, add_layer(m, &d, L_DROP);
    d = desc(CNN_LAYER_DENSE, "fc1"), d.p.dense.out = 10, d.p.dense.has_bias = 1;
    d.p.dense.act = (struct cnn_act_params){CNN_ACT_LEAKY_RELU, 0.1f, 0.0f},
    add_layer(m, &d, L_FC1);
    d = desc(CNN_LAYER_DENSE, "fc2"), d.p.dense.out = 5, d.p.dense.has_bias = 1;
    add_layer(m, &d, L_FC2);
    d = desc(CNN_LAYER_SOFTMAX, "prob"), add_layer(m, &d, L_PROB);

    ck_assert_int_eq(cnn_model_alloc_params(m, &err), 0);
    cnn_model_init_random(m, seed);
    rng_state = seed * 2654435761u + 1;
    for (int i = 0; i < L_COUNT; i++) {
        for (int s = 0; s < 4; s++) {
            size_t n;
            float *w = cnn_model_weights_mut(m, i, s, &n);
            if (!w)
                continue;
            int bn = m->layers[i].kind == CNN_LAYER_BATCHNORM;
            if (bn && (s == 0 || s == 3)) /* gamma, var */
                for (size_t k = 0; k < n; k++)
                    w[k] = rnd_uniform(0.5f, 1.5f);
            else if (bn || s == 1) /* beta, mean, biases */
                for (size_t k = 0; k < n; k++)
                    w[k] = rnd_uniform(-0.5f, 0.5f);
        }
    }
    ck_assert_int_eq(cnn_model_set_labels(m, test_labels, 5, &err), 0);
    ck_assert_int_eq(cnn_model_set_meta(m, test_meta, &err), 0);
    return m;
}
