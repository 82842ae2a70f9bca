/* Gradient, SmoothGrad and occlusion explanations (see explain.h) on a trainer whose layers
 * are all frozen: evaluation-mode forward (running batch-norm statistics, no dropout), then a
 * backward seeded with a one-hot gradient at the logits instead of a loss.  The reference
 * (im2col) convolution path is used so the backward needs no per-step weight transform. */
#include "explain.h"

#include "model_internal.h"
#include "train.h"
#include "train_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define EXPLAIN_MAX_BATCH 1024

struct cnn_explainer {
    struct cnn_trainer *t; /* owned: every layer frozen, input gradient on */
    const struct cnn_model *m;
    int C, H, W, K, max_batch;
    float *batch;  /* max_batch images: noisy or occluded copies */
    float *grad;   /* max_batch gradients */
    float *logits; /* max_batch x K */
};

int cnn_explain_method_parse(const char *s, enum cnn_explain_method *out, struct cnn_err *err)
{
    static const enum cnn_explain_method all[] = {CNN_EXPLAIN_GRAD, CNN_EXPLAIN_SMOOTHGRAD,
                                                  CNN_EXPLAIN_OCCLUSION, CNN_EXPLAIN_GRADINPUT};
    for (int i = 0; s && i < 4; i++)
        if (strcmp(s, cnn_explain_method_name(all[i])) == 0) {
            *out = all[i];
            return 0;
        }
    return cnn_err_set(err, CNN_EINVAL, "explain: method must be grad, smoothgrad, occlusion or gradinput");
}

const char *cnn_explain_method_name(enum cnn_explain_method m)
{
    switch (m) {
    case CNN_EXPLAIN_GRAD:
        return "grad";
    case CNN_EXPLAIN_SMOOTHGRAD:
        return "smoothgrad";
    case CNN_EXPLAIN_OCCLUSION:
        return "occlusion";
    case CNN_EXPLAIN_GRADINPUT:
        return "gradinput";
    }
    return "?";
}

int cnn_explain_parse_class(const struct cnn_model *m, const char *s)
{
    int K = cnn_model_num_classes(m);
    for (int k = 0; k < K; k++) {
        const char *l = cnn_model_label(m, k);
        if (l && strcmp(l, s) == 0)
            return k;
    }
    char *end;
    long v = strtol(s, &end, 10);
    return *s && !*end && v >= 0 && v < K ? (int)v : -1;
}

void cnn_explain_opts_default(struct cnn_explain_opts *o)
{
    *o = (struct cnn_explain_opts){CNN_EXPLAIN_GRADINPUT, 25, 0.15f, 1, 0, 0};
}

struct cnn_explainer *cnn_explainer_create(const struct cnn_model *m, int max_batch,
                                           struct cnn_err *err)
{
    if (!m || max_batch < 1 || max_batch > EXPLAIN_MAX_BATCH) {
        cnn_err_set(err, CNN_EINVAL, "explain: no model or batch %d outside 1..%d", max_batch,
                    EXPLAIN_MAX_BATCH);
        return NULL;
    }
    struct cnn_explainer *e = calloc(1, sizeof *e);
    if (!e) {
        cnn_err_set(err, CNN_ENOMEM, "explain: out of memory");
        return NULL;
    }
    struct cnn_train_config cfg;
    cnn_train_config_default(&cfg);
    cfg.max_batch = max_batch;
    cfg.input_grad = 1;
    cfg.im2col_only = 1;
    cfg.freeze_upto = m->layers[m->n_layers - 1].name; /* everything */
    if (!(e->t = cnn_trainer_create(m, &cfg, err)))
        goto fail;
    const struct cnn_layer *ll = &e->t->net->layers[e->t->loss_layer];
    if (ll->h * ll->w != 1) {
        cnn_err_set(err, CNN_EINVAL, "explain: the model's output %dx%dx%d is not one score "
                    "per class", ll->c, ll->h, ll->w);
        goto fail;
    }
    e->m = m;
    e->C = m->pp.c, e->H = m->pp.h, e->W = m->pp.w;
    e->K = cnn_model_num_classes(m);
    e->max_batch = max_batch;
    size_t chw = (size_t)e->C * e->H * e->W;
    e->batch = malloc(chw * (size_t)max_batch * sizeof(float));
    e->grad = malloc(chw * (size_t)max_batch * sizeof(float));
    e->logits = malloc((size_t)e->K * (size_t)max_batch * sizeof(float));
    if (!e->batch || !e->grad || !e->logits) {
        cnn_err_set(err, CNN_ENOMEM, "explain: out of memory for batch %d", max_batch);
        goto fail;
    }
    return e;
fail:
    cnn_explainer_destroy(e);
    return NULL;
}

void cnn_explainer_destroy(struct cnn_explainer *e)
{
    if (!e)
        return;
    cnn_trainer_destroy(e->t);
    free(e->batch);
    free(e->grad);
    free(e->logits);
    free(e);
}

/* (K, N) activations -> (N, K) rows. */
static void to_rows(float *dst, const float *src, int K, int n)
{
    for (int j = 0; j < n; j++)
        for (int k = 0; k < K; k++)
            dst[(size_t)j * K + k] = src[(size_t)k * n + j];
}

static int check_images(const struct cnn_explainer *e, const float *images, int n,
                        const int *cls, struct cnn_err *err)
{
    if (n < 1 || n > e->max_batch || !images)
        return cnn_err_set(err, CNN_EINVAL, "explain: batch %d outside 1..%d", n, e->max_batch);
    size_t count = (size_t)e->C * e->H * e->W * (size_t)n;
    for (size_t i = 0; i < count; i++)
        if (!isfinite(images[i]))
            return cnn_err_set(err, CNN_EINVAL, "explain: input value %zu is not finite", i);
    for (int j = 0; cls && j < n; j++)
        if (cls[j] < -1 || cls[j] >= e->K)
            return cnn_err_set(err, CNN_EINVAL, "explain: class %d outside 0..%d", cls[j],
                               e->K - 1);
    return 0;
}

/* Evaluation-mode forward of n checked images; logits (n, K) and probs (n, K) optional. */
static int forward(struct cnn_explainer *e, const float *images, int n, float *probs,
                   float *logits, struct cnn_err *err)
{
    struct cnn_trainer *t = e->t;
    int last = t->net->n_layers - 1;
    int rc = train_forward(t, images, n, last, 0, 0, err);
    if (rc)
        return rc;
    if (probs)
        to_rows(probs, t->buf.tl[last].out, e->K, n);
    if (logits)
        to_rows(logits, t->buf.tl[t->loss_layer].out, e->K, n);
    return 0;
}

int cnn_explain_gradient(struct cnn_explainer *e, const float *images, int n, int *cls,
                         float *grad, float *probs, float *logits, struct cnn_err *err)
{
    int rc = check_images(e, images, n, cls, err);
    if (rc || (rc = forward(e, images, n, probs, e->logits, err)) != 0)
        return rc;
    const int K = e->K;
    for (int j = 0; cls && j < n; j++) {
        if (cls[j] >= 0)
            continue;
        const float *row = e->logits + (size_t)j * K;
        int best = 0;
        for (int k = 1; k < K; k++)
            best = row[k] > row[best] ? k : best;
        cls[j] = best;
    }
    if (logits)
        memcpy(logits, e->logits, (size_t)n * K * sizeof(float));
    if (!grad)
        return 0;
    if (!cls)
        return cnn_err_set(err, CNN_EINVAL, "explain: a gradient needs the classes");
    struct cnn_trainer *t = e->t;
    train_zero_grads(t, n);
    float *seed = t->buf.tl[t->loss_layer].dout; /* (K, N): d score / d logits, one-hot */
    memset(seed, 0, (size_t)K * n * sizeof(float));
    for (int j = 0; j < n; j++)
        seed[(size_t)cls[j] * n + j] = 1.0f;
    train_backward(t, n);
    const float *dx = t->buf.tl[0].dout; /* (C, N, H, W) */
    const size_t hw = (size_t)e->H * e->W;
    for (int j = 0; j < n; j++)
        for (int c = 0; c < e->C; c++)
            memcpy(grad + ((size_t)j * e->C + c) * hw, dx + ((size_t)c * n + j) * hw,
                   hw * sizeof(float));
    return 0;
}

void cnn_explain_reduce(const float *grad, int C, int H, int W, float *map)
{
    const size_t hw = (size_t)H * W;
    for (size_t p = 0; p < hw; p++) {
        float v = 0.0f;
        for (int c = 0; c < C; c++) {
            float a = fabsf(grad[(size_t)c * hw + p]);
            v = a > v ? a : v;
        }
        map[p] = v;
    }
}

/* splitmix64 and a Box-Muller normal from it. */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static float rng_normal(uint64_t *s)
{
    double u1 = ((double)(rng_next(s) >> 11) + 0.5) / 9007199254740992.0;
    double u2 = (double)(rng_next(s) >> 11) / 9007199254740992.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

/* The mean gradient over o->samples noisy copies of image, reduced to map. */
static int smoothgrad(struct cnn_explainer *e, const float *image, int cls,
                      const struct cnn_explain_opts *o, float *map, struct cnn_err *err)
{
    const size_t chw = (size_t)e->C * e->H * e->W;
    float lo = image[0], hi = image[0];
    for (size_t i = 1; i < chw; i++) {
        lo = image[i] < lo ? image[i] : lo;
        hi = image[i] > hi ? image[i] : hi;
    }
    const float sigma = o->noise * (hi > lo ? hi - lo : 1.0f);
    float *sum = calloc(chw, sizeof *sum);
    int *cl = malloc((size_t)e->max_batch * sizeof *cl);
    int rc = !sum || !cl ? cnn_err_set(err, CNN_ENOMEM, "explain: out of memory") : 0;
    uint64_t rng = o->seed;
    for (int done = 0; rc == 0 && done < o->samples;) {
        int n = o->samples - done < e->max_batch ? o->samples - done : e->max_batch;
        for (int j = 0; j < n; j++) {
            cl[j] = cls;
            for (size_t i = 0; i < chw; i++)
                e->batch[(size_t)j * chw + i] = image[i] + sigma * rng_normal(&rng);
        }
        rc = cnn_explain_gradient(e, e->batch, n, cl, e->grad, NULL, NULL, err);
        for (int j = 0; rc == 0 && j < n; j++)
            for (size_t i = 0; i < chw; i++)
                sum[i] += e->grad[(size_t)j * chw + i];
        done += n;
    }
    if (rc == 0) {
        for (size_t i = 0; i < chw; i++)
            sum[i] /= (float)o->samples;
        cnn_explain_reduce(sum, e->C, e->H, e->W, map);
    }
    free(sum);
    free(cl);
    return rc;
}

/* Tensor value of a black pixel in channel c (what an occluding patch is filled with). */
static float black_value(const struct cnn_preproc *pp, int c)
{
    int nc = cnn_preproc_norm_channels(pp);
    if (c >= nc)
        return 0.0f;
    float raw = pp->invert ? 1.0f : 0.0f;
    return (raw - pp->mean[c]) / pp->std[c];
}

/* Top-left corner of patch k of ny x nx (the last row / column is moved inside). */
static void patch_origin(int k, int nx, int stride, int patch, int H, int W, int *y0, int *x0)
{
    *y0 = k / nx * stride, *x0 = k % nx * stride;
    if (*y0 + patch > H)
        *y0 = H > patch ? H - patch : 0;
    if (*x0 + patch > W)
        *x0 = W > patch ? W - patch : 0;
}

/* Score of cls lost when each patch is covered, averaged over the patches covering a pixel. */
static int occlusion(struct cnn_explainer *e, const float *image, int cls, float base,
                     const struct cnn_explain_opts *o, float *map, struct cnn_err *err)
{
    const int H = e->H, W = e->W, K = e->K;
    const size_t hw = (size_t)H * W, chw = (size_t)e->C * hw;
    int patch = o->patch > 0 ? o->patch : (H < W ? H : W) / 7;
    patch = patch < 1 ? 1 : patch;
    int stride = o->stride > 0 ? o->stride : (patch + 1) / 2;
    int ny = H > patch ? (H - patch + stride - 1) / stride + 1 : 1;
    int nx = W > patch ? (W - patch + stride - 1) / stride + 1 : 1;
    float *cover = calloc(hw, sizeof *cover);
    if (!cover)
        return cnn_err_set(err, CNN_ENOMEM, "explain: out of memory");
    memset(map, 0, hw * sizeof *map);
    int rc = 0, total = ny * nx;
    for (int first = 0; rc == 0 && first < total; first += e->max_batch) {
        int n = total - first < e->max_batch ? total - first : e->max_batch;
        for (int j = 0; j < n; j++) {
            float *dst = e->batch + (size_t)j * chw;
            memcpy(dst, image, chw * sizeof(float));
            int y0, x0;
            patch_origin(first + j, nx, stride, patch, H, W, &y0, &x0);
            for (int c = 0; c < e->C; c++)
                for (int y = y0; y < y0 + patch && y < H; y++)
                    for (int x = x0; x < x0 + patch && x < W; x++)
                        dst[(size_t)c * hw + (size_t)y * W + x] = black_value(&e->m->pp, c);
        }
        rc = forward(e, e->batch, n, NULL, e->logits, err);
        for (int j = 0; rc == 0 && j < n; j++) {
            float drop = base - e->logits[(size_t)j * K + cls];
            int y0, x0;
            patch_origin(first + j, nx, stride, patch, H, W, &y0, &x0);
            for (int y = y0; y < y0 + patch && y < H; y++)
                for (int x = x0; x < x0 + patch && x < W; x++) {
                    map[(size_t)y * W + x] += drop;
                    cover[(size_t)y * W + x] += 1.0f;
                }
        }
    }
    for (size_t p = 0; rc == 0 && p < hw; p++) {
        float v = cover[p] > 0.0f ? map[p] / cover[p] : 0.0f;
        map[p] = v > 0.0f ? v : 0.0f;
    }
    free(cover);
    return rc;
}

/* map[p] = max(0, sum over c of grad[c][p] * (image[c][p] - black)). */
static void grad_input(const struct cnn_explainer *e, const float *image, float *map)
{
    const size_t hw = (size_t)e->H * e->W;
    for (size_t p = 0; p < hw; p++) {
        float v = 0.0f;
        for (int c = 0; c < e->C; c++)
            v += e->grad[(size_t)c * hw + p] *
                 (image[(size_t)c * hw + p] - black_value(&e->m->pp, c));
        map[p] = v > 0.0f ? v : 0.0f;
    }
}

int cnn_explain_map(struct cnn_explainer *e, const float *image, int *cls,
                    const struct cnn_explain_opts *o, float *map, float *probs,
                    struct cnn_err *err)
{
    if (o->method == CNN_EXPLAIN_SMOOTHGRAD && (o->samples < 1 || o->samples > 1000 ||
                                                !(o->noise >= 0.0f && o->noise <= 10.0f)))
        return cnn_err_set(err, CNN_EINVAL, "explain: samples 1..1000 and noise 0..10");
    if (o->method == CNN_EXPLAIN_OCCLUSION && (o->patch < 0 || o->stride < 0))
        return cnn_err_set(err, CNN_EINVAL, "explain: patch and stride must be >= 0");
    float base;
    int rc = cnn_explain_gradient(e, image, 1, cls, e->grad, probs, NULL, err);
    if (rc)
        return rc;
    base = e->logits[*cls];
    switch (o->method) {
    case CNN_EXPLAIN_GRAD:
        cnn_explain_reduce(e->grad, e->C, e->H, e->W, map);
        return 0;
    case CNN_EXPLAIN_SMOOTHGRAD:
        return smoothgrad(e, image, *cls, o, map, err);
    case CNN_EXPLAIN_OCCLUSION:
        return occlusion(e, image, *cls, base, o, map, err);
    case CNN_EXPLAIN_GRADINPUT:
        grad_input(e, image, map);
        return 0;
    }
    return cnn_err_set(err, CNN_EINVAL, "explain: unknown method %d", (int)o->method);
}
