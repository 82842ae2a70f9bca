/* In-memory image fixtures shared by the image suites (check_image.c,
 * check_image_preproc.c): a growable byte buffer, a seeded xorshift generator, and PNG files
 * written with libpng's writer together with the pixels a decoder must return. */
#ifndef TEST_IMAGE_H
#define TEST_IMAGE_H

#include "image.h"

#include <png.h>
#include <stddef.h>
#include <stdint.h>

struct buf {
    unsigned char *p;
    size_t n, cap;
};

/* Appends n bytes of d to b, growing it. */
void buf_put(struct buf *b, const void *d, size_t n);
/* Frees b's bytes and empties it. */
void buf_free(struct buf *b);

/* Next value of the xorshift generator whose state is *s. */
uint32_t rnd(uint64_t *s);

struct png_spec {
    int w, h, color, depth, interlace;
    const png_color *pal;
    int npal;
    const png_byte *trns; /* palette alpha, ntrns entries */
    int ntrns;
    const png_color_16 *trns_color; /* gray / RGB transparent color */
    int text;                       /* add a tEXt chunk */
};

/* raw: rows as stored in PNG (packed, 16-bit big-endian), rowbytes each.  Owned by the caller
 * (buf_free()). */
struct buf make_png(const struct png_spec *s, const unsigned char *raw, size_t rowbytes);

/* 16 -> 8 bits with rounding, as the brief specifies: round(v * 255 / 65535). */
unsigned exp16(unsigned v);

/* A random image of the given PNG format, encoded, with the pixels a decoder must return. */
struct png_fixture {
    struct buf png;
    uint8_t *expect; /* w*h*c */
    int w, h, c;
};

/* Draws the pixels from seed; free with png_fixture_free(). */
struct png_fixture png_fixture_make(int w, int h, int color, int depth, int trns, int interlace,
                                    uint64_t seed);
void png_fixture_free(struct png_fixture *f);

/* Asserts img is w x h x c with exactly the bytes of expect; what names the case. */
void assert_image_equals(const struct cnn_image *img, const uint8_t *expect, int w, int h, int c,
                         const char *what);

#endif
