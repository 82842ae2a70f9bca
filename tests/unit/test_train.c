/* Net builders and trainer helpers of the trainer suites (see test_train.h). */
#include "test_train.h"

#include "layer_kind.h"
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

/* ---- whole-net gradient check -------------------------------------------------- */

static float loss_of(struct cnn_trainer *t, const float *x, const int *y, const float *tgt, int n)
{
    struct cnn_train_stats st;
    struct cnn_err err = {0};
    int rc = cnn_trainer_compute_gradients(t, x, y, tgt, n, &st, &err);
    ck_assert_msg(rc == 0, "%s", err.msg);
    return st.loss;
}

struct fd_result {
    int checked, skipped;
};

/* Loss with *v moved by d (restored afterwards). */
static double loss_at(struct cnn_trainer *t, float *v, float d, const float *x, const int *y,
                      const float *tgt, int n)
{
    const float orig = *v;
    *v = orig + d;
    double f = loss_of(t, x, y, tgt, n);
    *v = orig;
    return f;
}

/* Central difference of the loss at *v against g.  A relu or max that switches within the
 * steps (a kink) shows as left and right second-order one-sided differences that disagree,
 * or as central differences with steps h and 2h that disagree: such a coordinate is
 * skipped and counted.  A wrong gradient disagrees wherever the loss is smooth. */
static void fd_one(struct cnn_trainer *t, float *v, float g, const float *x, const int *y,
                   const float *tgt, int n, const char *what, struct fd_result *r)
{
    const float h = 2e-3f;
    double f0 = loss_of(t, x, y, tgt, n);
    double fp = loss_at(t, v, h, x, y, tgt, n), fm = loss_at(t, v, -h, x, y, tgt, n);
    double fp2 = loss_at(t, v, 2 * h, x, y, tgt, n), fm2 = loss_at(t, v, -2 * h, x, y, tgt, n);
    double fd = (fp - fm) / (2.0 * h), fd2 = (fp2 - fm2) / (4.0 * h);
    double right = (4 * fp - fp2 - 3 * f0) / (2.0 * h), left = (3 * f0 - 4 * fm + fm2) / (2.0 * h);
    if (getenv("CNN_TEST_VERBOSE"))
        fprintf(stderr, "%-24s fd %10.6f fd2 %10.6f left %10.6f right %10.6f g %10.6f\n", what, fd,
                fd2, left, right, (double)g);
    if (fabs(right - left) > 3e-4 + 1e-2 * fabs(fd) || fabs(fd - fd2) > 1.5e-4 + 1e-2 * fabs(fd)) {
        r->skipped++;
        return;
    }
    r->checked++;
    ck_assert_msg(fabs(fd - g) <= 2e-4 + 1e-2 * fabs(fd), "%s: finite difference %g vs %g", what,
                  fd, (double)g);
}

void gradcheck(struct cnn_model *m, const float *x, const int *y, const float *tgt, int n,
                      enum cnn_loss loss)
{
    struct cnn_train_config cfg;
    cnn_train_config_default(&cfg);
    cfg.loss = loss;
    cfg.max_batch = n;
    cfg.input_grad = 1;
    struct cnn_trainer *t = trainer(m, &cfg);
    const struct cnn_preproc *pp = cnn_model_preproc(m);
    size_t img = (size_t)pp->c * pp->h * pp->w;
    float *xc = malloc(img * n * sizeof(float));
    memcpy(xc, x, img * n * sizeof(float));
    struct fd_result r = {0, 0};
    int params_checked = 0;
    for (int i = 1; i < cnn_model_layer_count(m); i++) {
        struct cnn_layer_info li;
        cnn_model_layer_info(m, i, &li);
        const int learned = cnn_layer_kind_ops(li.kind)->learned_slots;
        for (int s = 0; s < learned; s++) { /* BN slots 2, 3 are statistics, not learned */
            size_t count;
            float *w = cnn_trainer_weights(t, i, s, &count);
            if (!w)
                continue;
            loss_of(t, xc, y, tgt, n); /* gradients at the unperturbed point */
            const float *g0 = cnn_trainer_grad(t, i, s, NULL);
            float *g = malloc(count * sizeof(float));
            memcpy(g, g0, count * sizeof(float));
            double norm = 0;
            for (size_t k = 0; k < count; k++)
                norm += fabs(g[k]);
            ck_assert_msg(norm > 0, "layer %d slot %d: gradient all zero", i, s);
            for (int j = 0; j < 6; j++) {
                size_t k = (size_t)(j * 7919 + i * 31 + s) % count;
                char what[64];
                snprintf(what, sizeof what, "layer %d slot %d [%zu]", i, s, k);
                fd_one(t, &w[k], g[k], xc, y, tgt, n, what, &r);
            }
            params_checked++;
            free(g);
        }
    }
    ck_assert_int_ge(params_checked, 4);
    /* input gradient: (C, N, H, W) in the trainer, NCHW for the caller */
    loss_of(t, xc, y, tgt, n);
    const float *dx0 = cnn_trainer_input_grad(t);
    ck_assert_ptr_nonnull(dx0);
    size_t total = img * n, hw = (size_t)pp->h * pp->w;
    float *dx = malloc(total * sizeof(float));
    memcpy(dx, dx0, total * sizeof(float));
    for (int j = 0; j < 10; j++) {
        size_t k = (size_t)(j * 104729 + 17) % total; /* NCHW index */
        size_t item = k / img, c = (k % img) / hw, p = k % hw;
        char what[64];
        snprintf(what, sizeof what, "input [%zu]", k);
        fd_one(t, &xc[k], dx[(c * n + item) * hw + p], xc, y, tgt, n, what, &r);
    }
    if (getenv("CNN_TEST_VERBOSE"))
        fprintf(stderr, "gradient check: %d coordinates checked, %d skipped at kinks\n", r.checked,
                r.skipped);
    ck_assert_msg(r.skipped * 6 <= r.checked, "%d of %d coordinates crossed a kink", r.skipped,
                  r.checked + r.skipped);
    free(dx);
    free(xc);
    cnn_trainer_destroy(t);
}
