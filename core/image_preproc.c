/* Decoded 8-bit image -> preprocessed float (C, H, W) tensor, no allocation:
 * bilinear sampling with half-pixel centers (PyTorch align_corners=False, no antialias) of
 * either the whole image stretched to (h, w) or the center-crop window of the image resized
 * so its shorter side is resize_short; then channel conversion (RGB, or B,G,R order when
 * pp->bgr), /255, invert, mean/std (indexed by the output channel).  Rows that take the
 * pixels as they are go through a table of the 256 values; the others in blocks of output
 * columns, each source row sampled across once for the output rows that read it, the rest
 * four lanes at a time: the same float operations in the same order as one pixel at a time
 * (tests/unit/check_image_preproc.c holds them to naive loops). */
#include "image.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* One output axis: source size n_in, virtual resized size n_rs, crop offset off. */
struct axis {
    int n_in;
    int64_t off;
    double scale; /* n_in / n_rs */
    int same;     /* n_rs == n_in: sample pixels directly */
};

static void axis_init(struct axis *a, int n_in, int64_t n_rs, int64_t off)
{
    a->n_in = n_in;
    a->off = off;
    a->scale = (double)n_in / (double)n_rs;
    a->same = n_rs == n_in;
}

/* Source indices i0, i1 and weight l of i1 for output index o. */
static void axis_at(const struct axis *a, int o, size_t *i0, size_t *i1, float *l)
{
    if (a->same) {
        *i0 = *i1 = (size_t)(o + a->off);
        *l = 0.0f;
        return;
    }
    double s = ((double)(o + a->off) + 0.5) * a->scale - 0.5;
    if (s < 0)
        s = 0;
    int k = (int)s;
    if (k > a->n_in - 1)
        k = a->n_in - 1;
    *i0 = (size_t)k;
    *i1 = (size_t)k + (k < a->n_in - 1);
    *l = (float)(s - k);
}

/* Offset of a centered crop of n out of total, rounded half to even like torchvision's
 * int(round((total - n) / 2.0)), so crops match reference pipelines pixel for pixel. */
static int64_t crop_offset(int64_t total, int64_t n)
{
    int64_t d = total - n, k = d / 2;
    if (d % 2 && k % 2)
        k++;
    return k;
}

static int check_args(const struct cnn_image *img, const struct cnn_preproc *pp, const float *out,
                      struct cnn_err *err)
{
    if (!img || !pp || !out)
        return cnn_err_set(err, CNN_EINVAL, "preproc: missing image, parameters or output");
    if (!img->pix || img->w <= 0 || img->h <= 0 || (img->c != 1 && img->c != 3))
        return cnn_err_set(err, CNN_EINVAL, "preproc: bad image %dx%dx%d", img->w, img->h, img->c);
    return cnn_preproc_check_image(pp, err);
}

typedef float v4f __attribute__((vector_size(16))); /* a vector op rounds as each scalar one */

/* The output value of sample g (0-255, maybe fractional): /255, invert, mean/std. */
static float preproc_value(float g, float mean, float std, int invert)
{
    float t = g / 255.0f;
    if (invert)
        t = 1.0f - t;
    return (t - mean) / std;
}

void cnn_preproc_lut(const struct cnn_preproc *pp, float lut[3][256])
{
    for (int k = 0; k < pp->c; k++)
        for (int p = 0; p < 256; p++)
            lut[k][p] = preproc_value((float)p, pp->mean[k], pp->std[k], pp->invert);
}

/* One output row (pp->w pixels, channel planes `plane` floats apart) from the source
 * pixels at src as they are, through lut: the value the bilinear loop below computes when
 * both weights are 0 (1 * a + 0 * b is a), without its per-pixel arithmetic. */
static void row_by_table(float *out, size_t plane, const uint8_t *src, int ic,
                         const struct cnn_preproc *pp, const float lut[3][256])
{
    for (int k = 0; k < pp->c; k++) {
        const int from = ic == 1 ? 0 : pp->bgr ? pp->c - 1 - k : k; /* bgr: input 2 - k */
        const float *t = lut[k];
        float *o = out + k * plane;
        const uint8_t *s = src + from;
        for (int x = 0; x < pp->w; x++)
            o[x] = t[s[(size_t)x * ic]];
    }
}

/* Output columns a bilinear pass takes at once: their source columns and weights, and a
 * row of their values, live on the stack (about 15 KiB). */
enum { BLOCK = 256 };

/* o[i] = preproc_value(g[i]) for i < n, four lanes at a time. */
static void finish_values(float *o, const float *g, int n, float mean, float std, int invert)
{
    const v4f k255 = {255.0f, 255.0f, 255.0f, 255.0f}, one = {1.0f, 1.0f, 1.0f, 1.0f};
    const v4f vm = {mean, mean, mean, mean}, vs = {std, std, std, std};
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        v4f t;
        memcpy(&t, g + i, sizeof t);
        t = t / k255;
        if (invert)
            t = one - t;
        t = (t - vm) / vs;
        memcpy(o + i, &t, sizeof t);
    }
    for (; i < n; i++)
        o[i] = preproc_value(g[i], mean, std, invert);
}

/* The horizontal samples (each input channel, columns x0/x1/lx of a block) of source row
 * `row` in one of two slots, computed unless a slot holds them already: output rows next to
 * each other mostly read the same source rows.  `keep`: a row not to evict.  Returns the
 * slot. */
static int source_row(float hz[2][3][BLOCK], size_t held[2], size_t row, size_t keep,
                      const struct cnn_image *img, const size_t *x0, const size_t *x1,
                      const float *lx, int n)
{
    for (int s = 0; s < 2; s++)
        if (held[s] == row)
            return s;
    const int s = held[0] == keep ? 1 : 0, ic = img->c;
    const uint8_t *r = img->pix + row * (size_t)img->w * ic;
    for (int k = 0; k < ic; k++)
        for (int i = 0; i < n; i++)
            hz[s][k][i] = (1 - lx[i]) * r[x0[i] * ic + k] + lx[i] * r[x1[i] * ic + k];
    held[s] = row;
    return s;
}

/* v[i] = (1 - ly) * top[i] + ly * bot[i] for i < n, four lanes at a time. */
static void mix_rows(float *v, const float *top, const float *bot, float ly, int n)
{
    const float wt = 1 - ly;
    const v4f a = {wt, wt, wt, wt}, b = {ly, ly, ly, ly};
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        v4f t, u;
        memcpy(&t, top + i, sizeof t);
        memcpy(&u, bot + i, sizeof u);
        t = a * t + b * u;
        memcpy(v + i, &t, sizeof t);
    }
    for (; i < n; i++)
        v[i] = wt * top[i] + ly * bot[i];
}

/* Output columns [x_lo, x_lo + n) of every row the table did not take (by_table: rows
 * with vertical weight 0 are done): bilinear samples of each input channel, the channel
 * conversion, then finish_values(). */
static void block_bilinear(float *out, const struct cnn_image *img, const struct cnn_preproc *pp,
                           const struct axis *ax, const struct axis *ay, int x_lo, int n,
                           int by_table)
{
    const int ic = img->c, oc = pp->c;
    const size_t plane = (size_t)pp->h * pp->w;
    size_t x0[BLOCK], x1[BLOCK], held[2] = {SIZE_MAX, SIZE_MAX};
    float lx[BLOCK], hz[2][3][BLOCK], v[3][BLOCK], luma[BLOCK];
    for (int i = 0; i < n; i++)
        axis_at(ax, x_lo + i, &x0[i], &x1[i], &lx[i]);
    for (int y = 0; y < pp->h; y++) {
        size_t y0, y1;
        float ly;
        axis_at(ay, y, &y0, &y1, &ly);
        if (by_table && ly == 0.0f)
            continue;
        const int s0 = source_row(hz, held, y0, y1, img, x0, x1, lx, n);
        const int s1 = source_row(hz, held, y1, y0, img, x0, x1, lx, n);
        for (int k = 0; k < ic; k++)
            mix_rows(v[k], hz[s0][k], hz[s1][k], ly, n);
        const float *g[3];
        if (ic == oc) {
            for (int k = 0; k < oc; k++) /* bgr: output channel k is input 2 - k */
                g[k] = v[pp->bgr ? oc - 1 - k : k];
        } else if (ic == 1) { /* gray: R = G = B, so bgr needs no swap */
            g[0] = g[1] = g[2] = v[0];
        } else { /* ITU-R BT.601 luma */
            for (int i = 0; i < n; i++)
                luma[i] = 0.299f * v[0][i] + 0.587f * v[1][i] + 0.114f * v[2][i];
            g[0] = luma;
        }
        for (int k = 0; k < oc; k++)
            finish_values(out + k * plane + (size_t)y * pp->w + x_lo, g[k], n, pp->mean[k],
                          pp->std[k], pp->invert);
    }
}

int cnn_image_to_tensor(const struct cnn_image *img, const struct cnn_preproc *pp, float *out,
                        struct cnn_err *err)
{
    int rc = check_args(img, pp, out, err);
    if (rc)
        return rc;
    struct axis ax, ay;
    if (pp->resize == CNN_RESIZE_STRETCH) {
        axis_init(&ax, img->w, pp->w, 0);
        axis_init(&ay, img->h, pp->h, 0);
    } else {
        /* shorter side -> resize_short, longer side floor(resize_short * long / short) */
        int64_t s = pp->resize_short, rw, rh;
        if (img->w <= img->h) {
            rw = s;
            rh = s * img->h / img->w;
        } else {
            rh = s;
            rw = s * img->w / img->h;
        }
        axis_init(&ax, img->w, rw, crop_offset(rw, pp->w));
        axis_init(&ay, img->h, rh, crop_offset(rh, pp->h));
    }

    const size_t plane = (size_t)pp->h * pp->w, stride = (size_t)img->w * img->c;
    /* Rows that sample pixels as they are (no horizontal resize, no vertical weight) go
     * through a table of each channel's 256 values, unless the output is luma. */
    const int by_table = ax.same && (img->c == pp->c || img->c == 1);
    float lut[3][256];
    if (by_table) {
        cnn_preproc_lut(pp, lut);
        for (int y = 0; y < pp->h; y++) {
            size_t y0, y1;
            float ly;
            axis_at(&ay, y, &y0, &y1, &ly);
            if (ly == 0.0f)
                row_by_table(out + (size_t)y * pp->w, plane,
                             img->pix + y0 * stride + (size_t)ax.off * img->c, img->c, pp, lut);
        }
    }
    if (by_table && ay.same) /* every row went through the table */
        return 0;
    for (int x = 0; x < pp->w; x += BLOCK)
        block_bilinear(out, img, pp, &ax, &ay, x, pp->w - x < BLOCK ? pp->w - x : BLOCK, by_table);
    return 0;
}

int cnn_image_load_tensor(const void *data, size_t size, size_t max_pixels,
                          const struct cnn_preproc *pp, float *out, struct cnn_err *err)
{
    struct cnn_image img;
    int rc = cnn_image_decode(data, size, max_pixels, &img, err);
    if (rc)
        return rc;
    rc = cnn_image_to_tensor(&img, pp, out, err);
    cnn_image_free(&img);
    return rc;
}
