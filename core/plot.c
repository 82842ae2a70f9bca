/* Raster pictures for explanations, filters, confusion matrices and training curves (see
 * plot.h): a canvas of RGB bytes, rectangles, Bresenham lines and a 3x5 pixel font. */
#include "plot.h"

#include "layer.h"
#include "model_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rgb {
    unsigned char r, g, b;
};

static const struct rgb WHITE = {255, 255, 255}, BLACK = {0, 0, 0}, GRID = {225, 225, 225},
                        AXIS = {90, 90, 90}, BLUE = {31, 119, 180}, ORANGE = {255, 127, 14};

static int canvas(struct cnn_image *img, int w, int h, struct rgb bg, struct cnn_err *err)
{
    img->w = w, img->h = h, img->c = 3;
    img->pix = malloc((size_t)w * (size_t)h * 3);
    if (!img->pix) {
        memset(img, 0, sizeof *img);
        return cnn_err_set(err, CNN_ENOMEM, "plot: out of memory for %dx%d", w, h);
    }
    for (size_t i = 0; i < (size_t)w * h; i++)
        memcpy(img->pix + i * 3, &bg, 3);
    return 0;
}

static void put(struct cnn_image *img, int x, int y, struct rgb c)
{
    if (x < 0 || y < 0 || x >= img->w || y >= img->h)
        return;
    unsigned char *p = img->pix + ((size_t)y * img->w + x) * 3;
    p[0] = c.r, p[1] = c.g, p[2] = c.b;
}

static void fill(struct cnn_image *img, int x0, int y0, int w, int h, struct rgb c)
{
    for (int y = y0; y < y0 + h; y++)
        for (int x = x0; x < x0 + w; x++)
            put(img, x, y, c);
}

static void line(struct cnn_image *img, int x0, int y0, int x1, int y1, struct rgb c)
{
    int dx = abs(x1 - x0), dy = -abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
    int e = dx + dy;
    for (;;) {
        put(img, x0, y0, c);
        if (x0 == x1 && y0 == y1)
            return;
        int e2 = 2 * e;
        if (e2 >= dy)
            e += dy, x0 += sx;
        if (e2 <= dx)
            e += dx, y0 += sy;
    }
}

/* 3x5 glyphs: five rows of 3 bits (4 = left column), as octal digits. */
static const char *glyph(char ch)
{
    static const char *const digits[10] = {"75557", "26227", "71747", "71317", "55711",
                                           "74717", "74757", "71111", "75757", "75717"};
    static const char *const letters[26] = {
        "25755", "65656", "34443", "65556", "74647", "74644", "34553", "55755", "72227",
        "11152", "55655", "44447", "57755", "65555", "25552", "65644", "25573", "65655",
        "34216", "72222", "55557", "55552", "55775", "55255", "55222", "71247"};
    if (ch >= '0' && ch <= '9')
        return digits[ch - '0'];
    if (ch >= 'a' && ch <= 'z')
        ch = (char)(ch - 'a' + 'A');
    if (ch >= 'A' && ch <= 'Z')
        return letters[ch - 'A'];
    switch (ch) {
    case '.':
        return "00002";
    case '-':
        return "00700";
    case '%':
        return "51245";
    case ':':
        return "02020";
    case '/':
        return "11244";
    case '(':
        return "24442";
    case ')':
        return "42224";
    case '=':
        return "07070";
    case '+':
        return "02720";
    case ',':
        return "00024";
    case '_':
        return "00007";
    }
    return "00000";
}

/* Text at (x, y) (top-left), each font pixel s x s; returns the width drawn. */
static int text(struct cnn_image *img, int x, int y, int s, const char *str, struct rgb c)
{
    int x0 = x;
    for (; *str; str++, x += 4 * s) {
        const char *g = glyph(*str);
        for (int row = 0; row < 5; row++)
            for (int col = 0; col < 3; col++)
                if ((g[row] - '0') & (4 >> col))
                    fill(img, x + col * s, y + row * s, s, s, c);
    }
    return x - x0;
}

static int text_width(const char *str, int s)
{
    return (int)strlen(str) * 4 * s - s;
}

/* Black -> red -> yellow -> white for t in [0, 1]. */
static struct rgb hot(float t)
{
    t = t < 0.0f ? 0.0f : t > 1.0f ? 1.0f : t;
    float r = t * 3.0f, g = t * 3.0f - 1.0f, b = t * 3.0f - 2.0f;
    r = r > 1.0f ? 1.0f : r, g = g < 0.0f ? 0.0f : g > 1.0f ? 1.0f : g, b = b < 0.0f ? 0.0f : b;
    return (struct rgb){(unsigned char)(255 * r), (unsigned char)(255 * g),
                        (unsigned char)(255 * b)};
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* The 99th percentile of n values (>= the smallest positive value), for normalising maps. */
static int percentile99(const float *v, size_t n, float *out, struct cnn_err *err)
{
    float *s = malloc(n * sizeof *s);
    if (!s)
        return cnn_err_set(err, CNN_ENOMEM, "plot: out of memory");
    for (size_t i = 0; i < n; i++)
        s[i] = isfinite(v[i]) ? v[i] : 0.0f;
    qsort(s, n, sizeof *s, cmp_float);
    *out = s[(size_t)((double)(n - 1) * 0.99)];
    if (!(*out > 0.0f))
        *out = s[n - 1] > 0.0f ? s[n - 1] : 1.0f;
    free(s);
    return 0;
}

/* Display value in [0, 1] of tensor channel c at pixel p: mean/std and invert undone. */
static float display(const float *input, const struct cnn_preproc *pp, int c, size_t p)
{
    size_t hw = (size_t)pp->h * pp->w;
    float v = input[(size_t)c * hw + p];
    if (c < cnn_preproc_norm_channels(pp))
        v = v * pp->std[c] + pp->mean[c];
    if (pp->invert)
        v = 1.0f - v;
    return v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
}

int cnn_plot_heatmap(const float *input, const struct cnn_preproc *pp, const float *map,
                     int scale, struct cnn_image *out, struct cnn_err *err)
{
    memset(out, 0, sizeof *out);
    if (scale < 1 || scale > 64 || (long)pp->w * scale > 8192 || (long)pp->h * scale > 8192)
        return cnn_err_set(err, CNN_EINVAL, "plot: heatmap scale %d too large", scale);
    const size_t hw = (size_t)pp->h * pp->w;
    float top = 1.0f;
    int rc = percentile99(map, hw, &top, err);
    if (rc || (rc = canvas(out, pp->w * scale, pp->h * scale, BLACK, err)) != 0)
        return rc;
    const int rgb = pp->c == 3;
    for (int y = 0; y < pp->h; y++)
        for (int x = 0; x < pp->w; x++) {
            size_t p = (size_t)y * pp->w + x;
            float base[3];
            for (int c = 0; c < 3; c++) /* bgr: channel 0 is blue */
                base[c] = display(input, pp, rgb ? (pp->bgr ? 2 - c : c) : 0, p) * 0.75f;
            float t = isfinite(map[p]) ? map[p] / top : 0.0f;
            t = t > 1.0f ? 1.0f : t;
            struct rgb h = hot(t);
            float a = 0.85f * t;
            struct rgb o = {(unsigned char)(255 * base[0] * (1 - a) + h.r * a),
                            (unsigned char)(255 * base[1] * (1 - a) + h.g * a),
                            (unsigned char)(255 * base[2] * (1 - a) + h.b * a)};
            fill(out, x * scale, y * scale, scale, scale, o);
        }
    return 0;
}

int cnn_plot_filters(const struct cnn_model *m, struct cnn_image *out, struct cnn_err *err)
{
    memset(out, 0, sizeof *out);
    int li = 1;
    while (li < m->n_layers && m->layers[li].kind != CNN_LAYER_CONV2D)
        li++;
    if (li >= m->n_layers)
        return cnn_err_set(err, CNN_ENOENT, "plot: the model has no conv layer");
    const struct cnn_conv2d *p = &m->layers[li].p.conv;
    const float *w = m->params + m->layers[li].weight_offset[0];
    const int cin = p->c / p->groups, rgb = cin == 3;
    int cols = (int)ceil(sqrt((double)p->oc)), rows = (p->oc + cols - 1) / cols;
    int k = p->kh > p->kw ? p->kh : p->kw;
    int s = k >= 64 ? 1 : 64 / k; /* block per weight: tiles of about 64 pixels */
    int tw = p->kw * s, th = p->kh * s, gap = 4;
    if ((long)cols * (tw + gap) > 8192 || (long)rows * (th + gap) > 8192)
        return cnn_err_set(err, CNN_ELIMIT, "plot: %d filters of %dx%d are too many to draw",
                           p->oc, p->kh, p->kw);
    int rc = canvas(out, cols * (tw + gap) + gap, rows * (th + gap) + gap, WHITE, err);
    if (rc)
        return rc;
    const size_t per = (size_t)cin * p->kh * p->kw, plane = (size_t)p->kh * p->kw;
    for (int f = 0; f < p->oc; f++) {
        const float *wf = w + (size_t)f * per;
        size_t used = rgb ? per : plane;
        float lo = wf[0], hi = wf[0];
        for (size_t i = 1; i < used; i++)
            lo = wf[i] < lo ? wf[i] : lo, hi = wf[i] > hi ? wf[i] : hi;
        float span = hi > lo ? hi - lo : 1.0f;
        int x0 = gap + f % cols * (tw + gap), y0 = gap + f / cols * (th + gap);
        for (int y = 0; y < p->kh; y++)
            for (int x = 0; x < p->kw; x++) {
                size_t q = (size_t)y * p->kw + x;
                float v[3];
                for (int c = 0; c < 3; c++)
                    v[c] = (wf[(rgb ? (size_t)c * plane : 0) + q] - lo) / span;
                fill(out, x0 + x * s, y0 + y * s, s, s,
                     (struct rgb){(unsigned char)(255 * v[0]), (unsigned char)(255 * v[1]),
                                  (unsigned char)(255 * v[2])});
            }
    }
    return 0;
}

int cnn_plot_confusion(const long *cm, int K, struct cnn_image *out, struct cnn_err *err)
{
    memset(out, 0, sizeof *out);
    if (K < 1 || K > 100)
        return cnn_err_set(err, CNN_EINVAL, "plot: confusion matrix of %d classes", K);
    const int cell = K <= 10 ? 48 : K <= 30 ? 24 : 10, margin = 40;
    int rc = canvas(out, margin + K * cell + 8, margin + K * cell + 8, WHITE, err);
    if (rc)
        return rc;
    char buf[32];
    text(out, margin, 4, 2, "PREDICTED", AXIS);
    for (int i = 0; i < K; i++) {
        long row = 0;
        for (int j = 0; j < K; j++)
            row += cm[(size_t)i * K + j];
        snprintf(buf, sizeof buf, "%d", i);
        if (cell >= 24) {
            text(out, margin + i * cell + (cell - text_width(buf, 2)) / 2, 20, 2, buf, AXIS);
            text(out, margin - 6 - text_width(buf, 2), margin + i * cell + cell / 2 - 5, 2, buf,
                 AXIS);
        }
        for (int j = 0; j < K; j++) {
            long v = cm[(size_t)i * K + j];
            float f = row > 0 ? (float)v / (float)row : 0.0f;
            struct rgb c = {(unsigned char)(255 - 224 * f), (unsigned char)(255 - 160 * f),
                            (unsigned char)(255 - 75 * f)};
            int x = margin + j * cell, y = margin + i * cell;
            fill(out, x, y, cell - 1, cell - 1, c);
            snprintf(buf, sizeof buf, "%ld", v);
            int s = text_width(buf, 2) <= cell - 4 ? 2 : 1;
            if (cell >= 24 && text_width(buf, s) <= cell - 4)
                text(out, x + (cell - text_width(buf, s)) / 2, y + cell / 2 - 5, s, buf,
                     f > 0.5f ? WHITE : BLACK);
        }
    }
    return 0;
}

/* A finite range of v (skipping non-finite), widened when flat. */
static void range(const double *v, int n, double *lo, double *hi)
{
    *lo = INFINITY, *hi = -INFINITY;
    for (int i = 0; v && i < n; i++)
        if (isfinite(v[i]))
            *lo = v[i] < *lo ? v[i] : *lo, *hi = v[i] > *hi ? v[i] : *hi;
}

struct panel {
    int x, y, w, h;
    double x0, x1, y0, y1;
};

static int px(const struct panel *p, double x)
{
    return p->x + (int)lround((x - p->x0) / (p->x1 - p->x0) * (p->w - 1));
}

static int py(const struct panel *p, double y)
{
    return p->y + p->h - 1 - (int)lround((y - p->y0) / (p->y1 - p->y0) * (p->h - 1));
}

static void frame(struct cnn_image *img, const struct panel *p, const char *title)
{
    char buf[32];
    for (int k = 0; k <= 4; k++) {
        double y = p->y0 + (p->y1 - p->y0) * k / 4.0;
        line(img, p->x, py(p, y), p->x + p->w - 1, py(p, y), GRID);
        snprintf(buf, sizeof buf, "%.3g", y);
        text(img, p->x - 6 - text_width(buf, 2), py(p, y) - 5, 2, buf, AXIS);
    }
    line(img, p->x, p->y, p->x, p->y + p->h - 1, AXIS);
    line(img, p->x, p->y + p->h - 1, p->x + p->w - 1, p->y + p->h - 1, AXIS);
    text(img, p->x + 4, p->y - 14, 2, title, AXIS);
    snprintf(buf, sizeof buf, "%.0f", p->x1);
    text(img, p->x + p->w - text_width(buf, 2), p->y + p->h + 4, 2, buf, AXIS);
    snprintf(buf, sizeof buf, "%.0f", p->x0);
    text(img, p->x, p->y + p->h + 4, 2, buf, AXIS);
}

static void series(struct cnn_image *img, const struct panel *p, const double *x,
                   const double *y, int n, struct rgb c, int dots)
{
    int have = 0, lx = 0, ly = 0;
    for (int i = 0; y && i < n; i++) {
        if (!isfinite(x[i]) || !isfinite(y[i]))
            continue;
        int X = px(p, x[i]), Y = py(p, y[i] < p->y0 ? p->y0 : y[i] > p->y1 ? p->y1 : y[i]);
        if (dots)
            fill(img, X - 3, Y - 3, 7, 7, c);
        else if (have)
            line(img, lx, ly, X, Y, c), line(img, lx, ly + 1, X, Y + 1, c);
        have = 1, lx = X, ly = Y;
    }
}

int cnn_plot_curves(const double *step, const double *loss, const double *acc, int n,
                    const double *val_step, const double *val_loss, const double *val_acc,
                    int n_val, struct cnn_image *out, struct cnn_err *err)
{
    memset(out, 0, sizeof *out);
    if (n < 1 || n_val < 0 || (n_val && (!val_step || !val_loss || !val_acc)))
        return cnn_err_set(err, CNN_EINVAL, "plot: no points to draw");
    const int W = 800, H = 600;
    int rc = canvas(out, W, H, WHITE, err);
    if (rc)
        return rc;
    double xlo, xhi, llo, lhi, vlo, vhi;
    range(step, n, &xlo, &xhi);
    range(loss, n, &llo, &lhi);
    range(val_loss, n_val, &vlo, &vhi);
    llo = 0.0, lhi = vhi > lhi ? vhi : lhi;
    if (!isfinite(lhi) || lhi <= 0.0)
        lhi = 1.0;
    if (!isfinite(xlo) || xhi <= xlo)
        xlo = 0.0, xhi = isfinite(xhi) && xhi > 0.0 ? xhi : 1.0;
    struct panel top = {90, 40, W - 120, 220, xlo, xhi, llo, lhi};
    struct panel bot = {90, 330, W - 120, 220, xlo, xhi, 0.0, 1.0};
    frame(out, &top, "LOSS");
    frame(out, &bot, "ACCURACY");
    series(out, &top, step, loss, n, BLUE, 0);
    series(out, &bot, step, acc, n, BLUE, 0);
    series(out, &top, val_step, val_loss, n_val, ORANGE, 1);
    series(out, &bot, val_step, val_acc, n_val, ORANGE, 1);
    int x = text(out, 90, H - 24, 2, "STEP", AXIS) + 110;
    fill(out, x, H - 22, 16, 3, BLUE);
    x += 22 + text(out, x + 22, H - 26, 2, "TRAIN", BLUE) + 12;
    fill(out, x + 5, H - 24, 7, 7, ORANGE);
    text(out, x + 22, H - 26, 2, "VALIDATION", ORANGE);
    return 0;
}
