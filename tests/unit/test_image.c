/* In-memory image fixtures (see test_image.h). */
#include "test_image.h"

#include <check.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

void buf_put(struct buf *b, const void *d, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        ck_assert_ptr_nonnull(b->p);
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}

void buf_free(struct buf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

uint32_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return (uint32_t)(*s >> 32);
}

static void write_cb(png_structp png, png_bytep d, size_t n)
{
    buf_put(png_get_io_ptr(png), d, n);
}

static void flush_cb(png_structp png)
{
    (void)png;
}

/* raw: rows as stored in PNG (packed, 16-bit big-endian), rowbytes each. */
struct buf make_png(const struct png_spec *s, const unsigned char *raw, size_t rowbytes)
{
    struct buf out = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    png_bytep *rows = malloc(sizeof *rows * (size_t)s->h);
    ck_assert_ptr_nonnull(rows);
    if (setjmp(png_jmpbuf(png)))
        ck_abort_msg("libpng writer failed");
    png_set_write_fn(png, &out, write_cb, flush_cb);
    png_set_IHDR(png, info, (png_uint_32)s->w, (png_uint_32)s->h, s->depth, s->color,
                 s->interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (s->pal)
        png_set_PLTE(png, info, s->pal, s->npal);
    if (s->trns || s->trns_color)
        png_set_tRNS(png, info, s->trns, s->ntrns, s->trns_color);
    if (s->text) {
        png_text t = {.compression = PNG_TEXT_COMPRESSION_NONE,
                      .key = "Comment",
                      .text = "made by check_image"};
        png_set_text(png, info, &t, 1);
    }
    for (int y = 0; y < s->h; y++)
        rows[y] = (png_bytep)raw + (size_t)y * rowbytes;
    png_set_rows(png, info, rows);
    png_write_png(png, info, PNG_TRANSFORM_IDENTITY, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    return out;
}

static int png_samples_per_pixel(int color)
{
    switch (color) {
    case PNG_COLOR_TYPE_GRAY_ALPHA:
        return 2;
    case PNG_COLOR_TYPE_RGB:
        return 3;
    case PNG_COLOR_TYPE_RGB_ALPHA:
        return 4;
    default:
        return 1;
    }
}

/* Packs samples (values < 2^depth) MSB first / big-endian into a PNG row. */
static void pack_row(unsigned char *row, const uint16_t *v, int n, int depth)
{
    for (int i = 0; i < n; i++) {
        if (depth == 16) {
            row[2 * i] = (unsigned char)(v[i] >> 8);
            row[2 * i + 1] = (unsigned char)v[i];
        } else if (depth == 8) {
            row[i] = (unsigned char)v[i];
        } else {
            int bit = i * depth;
            row[bit / 8] |= (unsigned char)(v[i] << (8 - depth - bit % 8));
        }
    }
}

/* 16 -> 8 bits with rounding, as the brief specifies: round(v * 255 / 65535). */
unsigned exp16(unsigned v)
{
    return (v * 255 + 32895) >> 16;
}

struct png_fixture png_fixture_make(int w, int h, int color, int depth, int trns, int interlace,
                                    uint64_t seed)
{
    struct png_fixture f = {.w = w, .h = h};
    int spp = png_samples_per_pixel(color);
    f.c = (color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA) ? 1 : 3;
    int npal = 0;
    png_color pal[256];
    png_byte palpha[256];
    png_color_16 tcolor = {0};
    if (color == PNG_COLOR_TYPE_PALETTE) {
        npal = depth == 8 ? 200 : 1 << depth;
        for (int i = 0; i < npal; i++) {
            pal[i].red = (png_byte)rnd(&seed);
            pal[i].green = (png_byte)rnd(&seed);
            pal[i].blue = (png_byte)rnd(&seed);
            palpha[i] = (png_byte)rnd(&seed);
        }
    }
    unsigned maxv = depth == 16 ? 65535u : (1u << depth) - 1;
    tcolor.gray = tcolor.red = tcolor.green = tcolor.blue = (png_uint_16)(maxv / 3);
    size_t rowbytes = ((size_t)w * spp * depth + 7) / 8;
    unsigned char *raw = calloc((size_t)h, rowbytes);
    uint16_t *v = malloc(sizeof *v * (size_t)w * spp);
    f.expect = malloc((size_t)w * h * f.c);
    ck_assert(raw && v && f.expect);
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
            uint8_t *e = f.expect + ((size_t)y * w + x) * f.c;
            for (int k = 0; k < spp; k++)
                v[x * spp + k] = (uint16_t)(rnd(&seed) % (npal ? (unsigned)npal : maxv + 1));
            const uint16_t *p = v + x * spp;
            if (color == PNG_COLOR_TYPE_PALETTE) {
                e[0] = pal[p[0]].red;
                e[1] = pal[p[0]].green;
                e[2] = pal[p[0]].blue;
            } else {
                for (int k = 0; k < f.c; k++) /* alpha, the last sample, is dropped */
                    e[k] = (uint8_t)(depth == 16 ? exp16(p[k]) : p[k] * 255u / maxv);
            }
        }
        pack_row(raw + (size_t)y * rowbytes, v, w * spp, depth);
    }
    struct png_spec s = {.w = w, .h = h, .color = color, .depth = depth, .interlace = interlace};
    if (npal) {
        s.pal = pal;
        s.npal = npal;
    }
    if (trns && npal) {
        s.trns = palpha;
        s.ntrns = npal > 1 ? npal / 2 : 1;
    } else if (trns) {
        s.trns_color = &tcolor;
    }
    f.png = make_png(&s, raw, rowbytes);
    free(raw);
    free(v);
    return f;
}

void png_fixture_free(struct png_fixture *f)
{
    buf_free(&f->png);
    free(f->expect);
}

void assert_image_equals(const struct cnn_image *img, const uint8_t *expect, int w, int h, int c,
                         const char *what)
{
    ck_assert_msg(img->w == w && img->h == h && img->c == c, "%s: got %dx%dx%d want %dx%dx%d", what,
                  img->w, img->h, img->c, w, h, c);
    for (size_t i = 0; i < (size_t)w * h * c; i++)
        if (img->pix[i] != expect[i])
            ck_abort_msg("%s: byte %zu (x=%zu y=%zu ch=%zu) is %u, want %u", what, i, i / c % w,
                         i / c / w, i % c, img->pix[i], expect[i]);
}
