/* Do the explanations make sense?  Over the first N Fashion-MNIST test images, for each
 * method (grad, smoothgrad, gradinput, occlusion) of core/explain.h explaining the predicted class:
 *  - the share of saliency mass on the object (its nonzero pixels, and their bounding box)
 *    against the share of the image the object covers (what a map blind to the image gets);
 *  - the class score lost (logit and probability) when the 10% most salient pixels are set
 *    to black, against 10% random pixels of the image and 10% random pixels of the object.
 * Prints the averages.  `make bench-saliency` builds and runs it:
 *   build/bench_saliency MODEL IDX_FOLDER [N] */
#define _POSIX_C_SOURCE 200809L
#include "dataset.h"
#include "explain.h"
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PIX 4096

struct sums {
    double in_mask, in_box, area_mask, area_box;
    double drop_top, drop_rand, drop_obj, pdrop_top, pdrop_rand, pdrop_obj;
    int n;
};

static uint64_t rng(uint64_t *s)
{
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return *s;
}

static const float *g_map;
static int by_map_desc(const void *a, const void *b)
{
    float x = g_map[*(const int *)a], y = g_map[*(const int *)b];
    return (x < y) - (x > y);
}

/* Logit and probability of cls for x with pixels idx[0..k) set to black. */
static void occluded(struct cnn_explainer *e, const float *x, int hw, const int *idx, int k,
                     float black, int cls, int K, float *logit, float *prob)
{
    float y[MAX_PIX], lg[1000], pr[1000];
    memcpy(y, x, (size_t)hw * sizeof *y);
    for (int i = 0; i < k; i++)
        y[idx[i]] = black;
    int c = cls;
    struct cnn_err err = {0};
    if (cnn_explain_gradient(e, y, 1, &c, NULL, pr, lg, &err)) {
        fprintf(stderr, "saliency: %s\n", err.msg);
        exit(1);
    }
    (void)K;
    *logit = lg[cls], *prob = pr[cls];
}

/* Adds the map's share on the object (raw's nonzero pixels, listed in obj) and in its
 * bounding box, and their areas, to s; returns the object's pixel count. */
static int add_mass(const float *map, const uint8_t *raw, int h, int w, int *obj, struct sums *s)
{
    const int hw = h * w;
    int n_obj = 0, y0 = h, y1 = -1, x0 = w, x1 = -1;
    double total = 0, in = 0, inbox = 0;
    for (int p = 0; p < hw; p++) {
        total += map[p];
        if (raw[p]) {
            in += map[p], obj[n_obj++] = p;
            int y = p / w, xx = p % w;
            y0 = y < y0 ? y : y0, y1 = y > y1 ? y : y1;
            x0 = xx < x0 ? xx : x0, x1 = xx > x1 ? xx : x1;
        }
    }
    for (int p = 0; p < hw; p++) {
        int y = p / w, xx = p % w;
        if (y >= y0 && y <= y1 && xx >= x0 && xx <= x1)
            inbox += map[p];
    }
    s->in_mask += total > 0 ? in / total : 0;
    s->in_box += total > 0 ? inbox / total : 0;
    s->area_mask += (double)n_obj / hw;
    s->area_box += y1 >= y0 ? (double)(y1 - y0 + 1) * (x1 - x0 + 1) / hw : 0;
    return n_obj;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL IDX_FOLDER [N]\n", argv[0]);
        return 2;
    }
    int N = argc > 3 ? atoi(argv[3]) : 100;
    struct cnn_err err = {0};
    struct cnn_model *m;
    struct cnn_dataset *d;
    if (cnn_model_load(argv[1], &m, &err) ||
        cnn_dataset_open(argv[2], CNN_DATASET_IDX, "t10k", cnn_model_preproc(m), &d, &err)) {
        fprintf(stderr, "saliency: %s\n", err.msg);
        return 1;
    }
    const struct cnn_preproc *pp = cnn_model_preproc(m);
    const int hw = pp->h * pp->w, K = cnn_model_num_classes(m);
    if (pp->c != 1 || hw > MAX_PIX || K > 1000 || N < 1 || N > cnn_dataset_count(d)) {
        fprintf(stderr, "saliency: needs a gray model of at most %d pixels and N items\n",
                MAX_PIX);
        return 1;
    }
    struct cnn_explainer *e = cnn_explainer_create(m, 64, &err);
    if (!e) {
        fprintf(stderr, "saliency: %s\n", err.msg);
        return 1;
    }
    const float black = ((pp->invert ? 1.0f : 0.0f) - pp->mean[0]) / pp->std[0];
    const int k = hw / 10; /* 10% of the pixels */
    static const enum cnn_explain_method methods[4] = {
        CNN_EXPLAIN_GRAD, CNN_EXPLAIN_SMOOTHGRAD, CNN_EXPLAIN_GRADINPUT, CNN_EXPLAIN_OCCLUSION};
    printf("model %s, %d test images of %s, occluding %d of %d pixels (10%%) with black\n",
           argv[1], N, argv[2], k, hw);
    printf("%-11s %8s %8s %8s %8s | %-27s | %-27s\n", "method", "mass_obj", "area_obj",
           "mass_box", "area_box", "logit drop top/rand/obj", "prob drop top/rand/obj");
    for (int mi = 0; mi < 4; mi++) {
        struct cnn_explain_opts o;
        cnn_explain_opts_default(&o);
        o.method = methods[mi];
        struct sums s = {0};
        uint64_t seed = 0x9e3779b97f4a7c15ull;
        for (int i = 0; i < N; i++) {
            float x[MAX_PIX], map[MAX_PIX], probs[1000];
            int idx[MAX_PIX], obj[MAX_PIX], n_obj = 0, label;
            cnn_dataset_batch(d, &i, 1, NULL, 0, x, &label);
            const uint8_t *raw = cnn_dataset_pixels(d, i);
            int cls = -1;
            if (cnn_explain_map(e, x, &cls, &o, map, probs, &err)) {
                fprintf(stderr, "saliency: %s\n", err.msg);
                return 1;
            }
            n_obj = add_mass(map, raw, pp->h, pp->w, obj, &s);
            float l0, p0, l1, p1;
            occluded(e, x, hw, idx, 0, black, cls, K, &l0, &p0);
            for (int p = 0; p < hw; p++)
                idx[p] = p;
            g_map = map;
            qsort(idx, (size_t)hw, sizeof *idx, by_map_desc);
            occluded(e, x, hw, idx, k, black, cls, K, &l1, &p1);
            s.drop_top += l0 - l1, s.pdrop_top += p0 - p1;
            for (int p = 0; p < hw; p++) { /* random k of all pixels: partial Fisher-Yates */
                int j = p + (int)(rng(&seed) % (uint64_t)(hw - p));
                int t = idx[p];
                idx[p] = idx[j], idx[j] = t;
            }
            occluded(e, x, hw, idx, k, black, cls, K, &l1, &p1);
            s.drop_rand += l0 - l1, s.pdrop_rand += p0 - p1;
            for (int p = 0; p < n_obj; p++) { /* random k of the object's pixels */
                int j = p + (int)(rng(&seed) % (uint64_t)(n_obj - p));
                int t = obj[p];
                obj[p] = obj[j], obj[j] = t;
            }
            occluded(e, x, hw, obj, k < n_obj ? k : n_obj, black, cls, K, &l1, &p1);
            s.drop_obj += l0 - l1, s.pdrop_obj += p0 - p1;
            s.n++;
        }
        double n = s.n;
        printf("%-11s %8.3f %8.3f %8.3f %8.3f | %8.3f %8.3f %8.3f | %8.4f %8.4f %8.4f\n",
               cnn_explain_method_name(methods[mi]), s.in_mask / n, s.area_mask / n,
               s.in_box / n, s.area_box / n, s.drop_top / n, s.drop_rand / n, s.drop_obj / n,
               s.pdrop_top / n, s.pdrop_rand / n, s.pdrop_obj / n);
    }
    cnn_explainer_destroy(e);
    cnn_dataset_destroy(d);
    cnn_model_destroy(m);
    return 0;
}
