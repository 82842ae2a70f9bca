/* Tiny models for the fuzz targets and their seeds (make_seeds.c): a 1x28x28 classifier
 * (conv-BN-ReLU-maxpool-flatten-dense-softmax, what the HTTP target serves) and a 3x8x8
 * branchy one that touches most layer kinds (pad, LRN, PReLU, scale/shift, add, concat,
 * global pools, dropout, avgpool, log-softmax), and a 3x4x6 one with a transpose and a
 * concat over W.  Random weights from a seed. */
#ifndef FUZZ_NETS_H
#define FUZZ_NETS_H

#include "model.h"

#include <stdio.h>

static inline int fuzz_add(struct cnn_model *m, struct cnn_layer_desc d, int in0, int in1,
                           struct cnn_err *err)
{
    int ins[2] = {in0, in1};
    if (in0 >= 0) {
        d.n_inputs = in1 >= 0 ? 2 : 1;
        d.inputs = ins;
    }
    return cnn_model_add(m, &d, err);
}

static inline int fuzz_finish(struct cnn_model *m, int classes, unsigned seed,
                              struct cnn_err *err)
{
    char text[16][16];
    const char *labels[16];
    for (int i = 0; i < classes && i < 16; i++) {
        snprintf(text[i], sizeof text[i], "c%d", i);
        labels[i] = text[i];
    }
    int rc = cnn_model_set_labels(m, labels, classes, err);
    if (!rc)
        rc = cnn_model_set_meta(m, "arch=fuzz\nseed=1\n", err);
    if (!rc)
        rc = cnn_model_alloc_params(m, err);
    if (!rc)
        cnn_model_init_random(m, seed);
    return rc;
}

/* 1x28x28 gray -> 10 classes; not compiled (save it or compile it). */
static inline struct cnn_model *fuzz_net_gray(unsigned seed, struct cnn_err *err)
{
    struct cnn_preproc pp = {.c = 1, .h = 28, .w = 28, .mean = {0.5f}, .std = {0.5f}};
    struct cnn_model *m = cnn_model_create(&pp, err);
    if (!m)
        return NULL;
    struct cnn_layer_desc conv = {.kind = CNN_LAYER_CONV2D,
                                  .p.conv = {.oc = 2, .kh = 3, .kw = 3, .sh = 2, .sw = 2, .dh = 1,
                                             .dw = 1, .groups = 1, .has_bias = 1}};
    struct cnn_layer_desc bn = {.kind = CNN_LAYER_BATCHNORM, .p.bn = {.eps = 1e-5f}};
    struct cnn_layer_desc relu = {.kind = CNN_LAYER_ACT, .p.act = {.kind = CNN_ACT_RELU}};
    struct cnn_layer_desc pool = {.kind = CNN_LAYER_MAXPOOL,
                                  .p.pool = {.kh = 2, .kw = 2, .sh = 2, .sw = 2}};
    struct cnn_layer_desc flat = {.kind = CNN_LAYER_FLATTEN};
    struct cnn_layer_desc fc = {.kind = CNN_LAYER_DENSE, .p.dense = {.out = 10, .has_bias = 1}};
    struct cnn_layer_desc sm = {.kind = CNN_LAYER_SOFTMAX};
    const struct cnn_layer_desc *seq[] = {&conv, &bn, &relu, &pool, &flat, &fc, &sm};
    for (size_t i = 0; i < sizeof seq / sizeof seq[0]; i++)
        if (fuzz_add(m, *seq[i], -1, -1, err) < 0)
            goto fail;
    if (fuzz_finish(m, 10, seed, err) == 0)
        return m;
fail:
    cnn_model_destroy(m);
    return NULL;
}

/* 3x8x8 RGB -> 4 classes through two branches; not compiled. */
static inline struct cnn_model *fuzz_net_branchy(unsigned seed, struct cnn_err *err)
{
    struct cnn_preproc pp = {.c = 3, .h = 8, .w = 8, .resize = CNN_RESIZE_SHORTER_CROP,
                             .resize_short = 10, .mean = {0.4f, 0.5f, 0.6f},
                             .std = {0.2f, 0.3f, 0.25f}};
    struct cnn_model *m = cnn_model_create(&pp, err);
    if (!m)
        return NULL;
    struct cnn_layer_desc pad = {.kind = CNN_LAYER_PAD, .p.pad = {1, 1, 1, 1, 0.0f}};
    struct cnn_layer_desc conv = {.kind = CNN_LAYER_CONV2D,
                                  .p.conv = {.oc = 4, .kh = 3, .kw = 3, .sh = 1, .sw = 1, .dh = 1,
                                             .dw = 1, .groups = 1, .has_bias = 1,
                                             .act = {CNN_ACT_LEAKY_RELU, 0.1f, 0}}};
    struct cnn_layer_desc dw = {.kind = CNN_LAYER_CONV2D,
                                .p.conv = {.oc = 4, .kh = 3, .kw = 3, .sh = 1, .sw = 1, .dh = 1,
                                           .dw = 1, .pad_t = 1, .pad_l = 1, .pad_b = 1,
                                           .pad_r = 1, .groups = 4}};
    struct cnn_layer_desc lrn = {.kind = CNN_LAYER_LRN, .p.lrn = {3, 1e-4f, 0.75f, 1.0f}};
    struct cnn_layer_desc prelu = {.kind = CNN_LAYER_PRELU, .p.prelu = {.channels = 4}};
    struct cnn_layer_desc ss = {.kind = CNN_LAYER_SCALE_SHIFT,
                                .p.ss = {.channels = 1, .act = {CNN_ACT_HARD_SWISH, 0, 0}}};
    struct cnn_layer_desc add = {.kind = CNN_LAYER_ADD};
    struct cnn_layer_desc cat = {.kind = CNN_LAYER_CONCAT};
    struct cnn_layer_desc avg = {.kind = CNN_LAYER_AVGPOOL,
                                 .p.pool = {.kh = 2, .kw = 2, .sh = 2, .sw = 2}};
    struct cnn_layer_desc gmax = {.kind = CNN_LAYER_GLOBAL_MAXPOOL};
    struct cnn_layer_desc drop = {.kind = CNN_LAYER_DROPOUT, .p.dropout_rate = 0.5f};
    struct cnn_layer_desc flat = {.kind = CNN_LAYER_FLATTEN};
    struct cnn_layer_desc fc = {.kind = CNN_LAYER_DENSE, .p.dense = {.out = 4}};
    struct cnn_layer_desc lsm = {.kind = CNN_LAYER_LOG_SOFTMAX};
    int c1, a, b, x;
    if ((c1 = fuzz_add(m, pad, -1, -1, err)) < 0 || (c1 = fuzz_add(m, conv, -1, -1, err)) < 0 ||
        (a = fuzz_add(m, dw, c1, -1, err)) < 0 || (a = fuzz_add(m, lrn, -1, -1, err)) < 0 ||
        (b = fuzz_add(m, prelu, c1, -1, err)) < 0 || (b = fuzz_add(m, ss, -1, -1, err)) < 0 ||
        (x = fuzz_add(m, add, a, b, err)) < 0 || (x = fuzz_add(m, cat, x, c1, err)) < 0 ||
        fuzz_add(m, avg, -1, -1, err) < 0 || fuzz_add(m, gmax, -1, -1, err) < 0 ||
        fuzz_add(m, drop, -1, -1, err) < 0 || fuzz_add(m, flat, -1, -1, err) < 0 ||
        fuzz_add(m, fc, -1, -1, err) < 0 || fuzz_add(m, lsm, -1, -1, err) < 0 ||
        fuzz_finish(m, 4, seed, err) != 0) {
        cnn_model_destroy(m);
        return NULL;
    }
    return m;
}

/* 3x4x6 -> 3 classes through a transpose of each item's axes and a concat over W (the
 * transpose kind, the concat axis); not compiled. */
static inline struct cnn_model *fuzz_net_moves(unsigned seed, struct cnn_err *err)
{
    struct cnn_preproc pp = {.c = 3, .h = 4, .w = 6, .mean = {0.5f, 0.5f, 0.5f},
                             .std = {0.25f, 0.25f, 0.25f}};
    struct cnn_model *m = cnn_model_create(&pp, err);
    if (!m)
        return NULL;
    struct cnn_layer_desc conv = {.kind = CNN_LAYER_CONV2D,
                                  .p.conv = {.oc = 4, .kh = 1, .kw = 1, .sh = 1, .sw = 1, .dh = 1,
                                             .dw = 1, .groups = 1, .has_bias = 1}};
    struct cnn_layer_desc tr = {.kind = CNN_LAYER_TRANSPOSE,
                                .p.tr = {{1, 1, 4, 4, 2, 3}, {0, 1, 3, 5, 2, 4}, 4, 4, 6}};
    struct cnn_layer_desc cat = {.kind = CNN_LAYER_CONCAT, .p.cat = {CNN_CONCAT_W}};
    struct cnn_layer_desc gap = {.kind = CNN_LAYER_GLOBAL_AVGPOOL};
    struct cnn_layer_desc flat = {.kind = CNN_LAYER_FLATTEN};
    struct cnn_layer_desc fc = {.kind = CNN_LAYER_DENSE, .p.dense = {.out = 3, .has_bias = 1}};
    struct cnn_layer_desc sm = {.kind = CNN_LAYER_SOFTMAX};
    int c1, t;
    if ((c1 = fuzz_add(m, conv, -1, -1, err)) < 0 || (t = fuzz_add(m, tr, c1, -1, err)) < 0 ||
        fuzz_add(m, cat, t, c1, err) < 0 || fuzz_add(m, gap, -1, -1, err) < 0 ||
        fuzz_add(m, flat, -1, -1, err) < 0 || fuzz_add(m, fc, -1, -1, err) < 0 ||
        fuzz_add(m, sm, -1, -1, err) < 0 || fuzz_finish(m, 3, seed, err) != 0) {
        cnn_model_destroy(m);
        return NULL;
    }
    return m;
}

#endif
