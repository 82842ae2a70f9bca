/* Decoded 8-bit image -> preprocessed float (C, H, W) tensor in one pass, no allocation:
 * bilinear sampling with half-pixel centers (PyTorch align_corners=False, no antialias) of
 * either the whole image stretched to (h, w) or the center-crop window of the image resized
 * so its shorter side is resize_short; then channel conversion (RGB, or B,G,R order when
 * pp->bgr), /255, invert, mean/std (indexed by the output channel). */
#include "image.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>

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

void cnn_preproc_lut(const struct cnn_preproc *pp, float lut[3][256])
{
    for (int k = 0; k < pp->c; k++)
        for (int p = 0; p < 256; p++) {
            float t = (float)p / 255.0f;
            if (pp->invert)
                t = 1.0f - t;
            lut[k][p] = (t - pp->mean[k]) / pp->std[k];
        }
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

    const int ic = img->c, oc = pp->c;
    const size_t plane = (size_t)pp->h * pp->w, stride = (size_t)img->w * ic;
    /* Rows that sample pixels as they are (no horizontal resize, no vertical weight) go
     * through a table of each channel's 256 values, unless the output is luma. */
    const int by_table = ax.same && (ic == oc || ic == 1);
    float lut[3][256];
    if (by_table)
        cnn_preproc_lut(pp, lut);
    for (int y = 0; y < pp->h; y++) {
        size_t y0, y1;
        float ly;
        axis_at(&ay, y, &y0, &y1, &ly);
        const uint8_t *r0 = img->pix + y0 * stride, *r1 = img->pix + y1 * stride;
        if (by_table && ly == 0.0f) {
            row_by_table(out + (size_t)y * pp->w, plane, r0 + (size_t)ax.off * ic, ic, pp, lut);
            continue;
        }
        for (int x = 0; x < pp->w; x++) {
            size_t x0, x1;
            float lx, v[3], g[3];
            axis_at(&ax, x, &x0, &x1, &lx);
            for (int k = 0; k < ic; k++) {
                float top = (1 - lx) * r0[x0 * ic + k] + lx * r0[x1 * ic + k];
                float bot = (1 - lx) * r1[x0 * ic + k] + lx * r1[x1 * ic + k];
                v[k] = (1 - ly) * top + ly * bot;
            }
            if (ic == oc) {
                for (int k = 0; k < oc; k++) /* bgr: output channel k is input 2 - k */
                    g[k] = v[pp->bgr ? oc - 1 - k : k];
            } else if (ic == 1) { /* gray: R = G = B, so bgr needs no swap */
                g[0] = g[1] = g[2] = v[0];
            } else { /* ITU-R BT.601 luma */
                g[0] = 0.299f * v[0] + 0.587f * v[1] + 0.114f * v[2];
            }
            size_t at = (size_t)y * pp->w + x;
            for (int k = 0; k < oc; k++) {
                float t = g[k] / 255.0f;
                if (pp->invert)
                    t = 1.0f - t;
                out[k * plane + at] = (t - pp->mean[k]) / pp->std[k];
            }
        }
    }
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
