/* Net builders and trainer helpers of the trainer suites (see test_train.h). */
#include "test_train.h"

#include "test_nets.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cnn_layer_desc conv(const char *name, int oc, int k, int pad, int bias, enum cnn_act act)
{
    struct cnn_layer_desc d = {.kind = CNN_LAYER_CONV2D, .name = name};
    d.p.conv = (struct cnn_conv2d){.oc = oc,
                                   .kh = k,
                                   .kw = k,
                                   .sh = 1,
                                   .sw = 1,
                                   .dh = 1,
                                   .dw = 1,
                                   .pad_t = pad,
                                   .pad_l = pad,
                                   .pad_b = pad,
                                   .pad_r = pad,
                                   .groups = 1,
                                   .has_bias = bias};
    d.p.conv.act.kind = act;
    return d;
}

struct cnn_layer_desc dense(const char *name, int out, enum cnn_act act)
{
    struct cnn_layer_desc d = {.kind = CNN_LAYER_DENSE, .name = name};
    d.p.dense = (struct cnn_dense){.out = out, .has_bias = 1};
    d.p.dense.act.kind = act;
    return d;
}

struct cnn_layer_desc pool(enum cnn_layer_kind kind, const char *name, int k, int s, int pad)
{
    struct cnn_layer_desc d = {.kind = kind, .name = name};
    d.p.pool = (struct cnn_pool2d){
        .kh = k, .kw = k, .sh = s, .sw = s, .pad_t = pad, .pad_l = pad, .pad_b = pad, .pad_r = pad};
    return d;
}

struct cnn_layer_desc simple(enum cnn_layer_kind kind, const char *name)
{
    return (struct cnn_layer_desc){.kind = kind, .name = name};
}

struct cnn_layer_desc act(const char *name, enum cnn_act kind)
{
    struct cnn_layer_desc d = {.kind = CNN_LAYER_ACT, .name = name};
    d.p.act.kind = kind;
    return d;
}

struct cnn_model *new_model(int c, int h, int w)
{
    struct cnn_preproc pp = {.c = c, .h = h, .w = w, .mean = {0, 0, 0}, .std = {1, 1, 1}};
    struct cnn_err err = {0};
    struct cnn_model *m = cnn_model_create(&pp, &err);
    ck_assert_msg(m != NULL, "%s", err.msg);
    return m;
}

/* Random weights, biases and BN parameters (gamma around 1) from seed. */
void randomize(struct cnn_model *m, uint64_t seed)
{
    cnn_model_init_random(m, seed);
    for (int i = 1; i < cnn_model_layer_count(m); i++) {
        struct cnn_layer_info info;
        cnn_model_layer_info(m, i, &info);
        size_t n;
        if (info.kind == CNN_LAYER_BATCHNORM) {
            float *g = cnn_model_weights_mut(m, i, 0, &n);
            test_fill(g, n, seed + 10 * i);
            test_fill(cnn_model_weights_mut(m, i, 1, NULL), n, seed + 10 * i + 1);
            float *mu = cnn_model_weights_mut(m, i, 2, NULL);
            float *var = cnn_model_weights_mut(m, i, 3, NULL);
            test_fill(mu, n, seed + 10 * i + 2);
            test_fill(var, n, seed + 10 * i + 3);
            for (size_t k = 0; k < n; k++) {
                g[k] = 1.0f + 0.5f * g[k];
                var[k] = 0.5f + var[k] * var[k];
            }
        } else if (info.kind == CNN_LAYER_CONV2D || info.kind == CNN_LAYER_DENSE) {
            float *b = cnn_model_weights_mut(m, i, 1, &n);
            if (b) {
                test_fill(b, n, seed + 10 * i + 5);
                for (size_t k = 0; k < n; k++)
                    b[k] *= 0.2f;
            }
        }
    }
}

struct cnn_trainer *trainer(const struct cnn_model *m, const struct cnn_train_config *c)
{
    struct cnn_err err = {0};
    struct cnn_trainer *t = cnn_trainer_create(m, c, &err);
    ck_assert_msg(t != NULL, "trainer: %s", err.msg);
    return t;
}

void step(struct cnn_trainer *t, const float *x, const int *y, int n, struct cnn_train_stats *st)
{
    struct cnn_err err = {0};
    int rc = cnn_trainer_step(t, x, y, NULL, n, st, &err);
    ck_assert_msg(rc == 0, "step: %s", err.msg);
}

void expect_close(const float *got, const float *want, size_t n, double tol, const char *what)
{
    double worst = 0;
    for (size_t k = 0; k < n; k++) {
        const double e = fabs((double)got[k] - want[k]);
        ck_assert_msg(e <= tol, "%s[%zu]: %.7g, want %.7g", what, k, (double)got[k],
                      (double)want[k]);
        worst = e > worst ? e : worst;
    }
    if (getenv("CNN_TEST_VERBOSE"))
        fprintf(stderr, "vs PyTorch %-28s max abs err %.2e (%zu values)\n", what, worst, n);
}

float *copy_slot(struct cnn_trainer *t, int layer, int slot, size_t *count)
{
    const float *w = cnn_trainer_weights(t, layer, slot, count);
    float *c = malloc(*count * sizeof(float));
    memcpy(c, w, *count * sizeof(float));
    return c;
}
