/* PNG decoding with libpng, from memory, to 8-bit gray or RGB.  Every libpng allocation goes
 * through a counting allocator with a budget; the declared size is checked against
 * max_pixels from the raw IHDR bytes before libpng exists, and again after png_read_info,
 * before any row or pixel buffer is allocated.  libpng errors longjmp back here. */
#include "image_internal.h"

#include <png.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Ancillary chunks are discarded unread (see png_set_keep_unknown_chunks below), so the
 * only chunks libpng keeps are PLTE and tRNS; this caps any single chunk buffer anyway. */
#define PNG_CHUNK_MAX (1u << 20)
/* libpng's own structs, zlib state and IDAT read buffer; row buffers are added per image. */
#define PNG_BASE_BUDGET (2u << 20)

struct png_src {
    const unsigned char *data;
    size_t size, pos;
    struct cnn_image_acct *acct;
    size_t png_cur;     /* bytes libpng holds now (the pixel buffer is not libpng's) */
    size_t budget;      /* bytes libpng may hold at once */
    int over_budget;    /* a libpng allocation was refused for the budget */
    unsigned char *pix; /* pixel buffer, freed here on error */
    size_t pix_bytes;
    char msg[128]; /* libpng's error message */
};

/* Size header in front of each libpng block so free_fn can subtract it. */
union png_blk {
    size_t n;
    max_align_t align;
};

static png_voidp png_count_malloc(png_structp png, png_alloc_size_t n)
{
    struct png_src *s = png_get_mem_ptr(png);
    if (n > s->budget || s->png_cur + n > s->budget) {
        s->over_budget = 1;
        return NULL;
    }
    union png_blk *b = malloc(sizeof *b + n);
    if (!b)
        return NULL;
    b->n = n;
    s->png_cur += n;
    cnn_image_acct_add(s->acct, n);
    return b + 1;
}

static void png_count_free(png_structp png, png_voidp p)
{
    if (!p)
        return;
    struct png_src *s = png_get_mem_ptr(png);
    union png_blk *b = (union png_blk *)p - 1;
    s->png_cur -= b->n;
    cnn_image_acct_sub(s->acct, b->n);
    free(b);
}

static void png_on_error(png_structp png, png_const_charp msg)
{
    struct png_src *s = png_get_error_ptr(png);
    snprintf(s->msg, sizeof s->msg, "%s", msg ? msg : "unknown error");
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg)
{
    (void)png; /* warnings (benign problems) are not reported: core never prints */
    (void)msg;
}

static void png_read_mem(png_structp png, png_bytep out, size_t n)
{
    struct png_src *s = png_get_io_ptr(png);
    if (n > s->size - s->pos)
        png_error(png, "truncated data");
    memcpy(out, s->data + s->pos, n);
    s->pos += n;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int over_limit(size_t w, size_t h, size_t max_pixels)
{
    return w != 0 && h > max_pixels / w;
}

/* Everything after png/info exist.  Only *s changes after setjmp, so locals stay valid. */
static int png_decode_body(struct png_src *s, png_structp png, png_infop info, size_t max_pixels,
                           struct cnn_image *img, struct cnn_err *err)
{
    if (setjmp(png_jmpbuf(png))) {
        free(s->pix);
        cnn_image_acct_sub(s->acct, s->pix_bytes);
        s->pix = NULL;
        if (s->over_budget)
            return cnn_err_set(err, CNN_ELIMIT, "png: decoder memory budget exceeded (%s)", s->msg);
        if (strcmp(s->msg, "Out of memory") == 0)
            return cnn_err_set(err, CNN_ENOMEM, "png: out of memory");
        return cnn_err_set(err, CNN_EFORMAT, "png: %s", s->msg);
    }
    png_set_read_fn(png, s, png_read_mem);
    png_uint_32 dim_max = max_pixels < PNG_UINT_31_MAX ? (png_uint_32)max_pixels : PNG_UINT_31_MAX;
    png_set_user_limits(png, dim_max ? dim_max : 1, dim_max ? dim_max : 1);
    png_set_chunk_malloc_max(png, PNG_CHUNK_MAX);
    png_set_chunk_cache_max(png, 64);
    /* keep only IHDR, PLTE, tRNS, IDAT, IEND; text, ICC, gamma etc. are skipped unread */
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, NULL, -1);
    png_set_crc_action(png, PNG_CRC_DEFAULT, PNG_CRC_ERROR_QUIT);

    png_read_info(png, info);
    png_uint_32 w, h;
    int depth, color, interlace;
    png_get_IHDR(png, info, &w, &h, &depth, &color, &interlace, NULL, NULL);
    if (over_limit(w, h, max_pixels))
        return cnn_err_set(err, CNN_ELIMIT, "png: %ux%u pixels over the limit of %zu", (unsigned)w,
                           (unsigned)h, max_pixels);
    /* room for libpng's row buffers (at most 8 bytes a pixel before transforms) */
    s->budget += 4 * ((size_t)w * 8 + 64);

    if (color == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8)
        png_set_expand_gray_1_2_4_to_8(png);
    if (depth == 16)
        png_set_scale_16(png);
    png_set_strip_alpha(png);
    int passes = png_set_interlace_handling(png);
    png_read_update_info(png, info);

    int c = png_get_channels(png, info);
    if ((c != 1 && c != 3) || png_get_bit_depth(png, info) != 8 ||
        png_get_rowbytes(png, info) != (size_t)w * c)
        return cnn_err_set(err, CNN_EFORMAT, "png: unsupported layout after transforms");
    s->pix_bytes = (size_t)w * h * c;
    s->pix = malloc(s->pix_bytes);
    if (!s->pix) {
        s->pix_bytes = 0;
        return cnn_err_set(err, CNN_ENOMEM, "png: out of memory for %ux%u pixels", (unsigned)w,
                           (unsigned)h);
    }
    cnn_image_acct_add(s->acct, s->pix_bytes);
    /* with interlace handling each pass fills in its pixels of every row in place */
    for (int pass = 0; pass < passes; pass++)
        for (png_uint_32 y = 0; y < h; y++)
            png_read_row(png, s->pix + (size_t)y * w * c, NULL);
    png_read_end(png, NULL); /* checks the rest of the stream up to IEND */

    img->w = (int)w;
    img->h = (int)h;
    img->c = c;
    img->pix = s->pix;
    s->pix = NULL;
    return 0;
}

int cnn_image_decode_png(const unsigned char *data, size_t size, size_t max_pixels,
                         struct cnn_image *img, struct cnn_image_acct *acct, struct cnn_err *err)
{
    /* IHDR is the first chunk: refuse an oversized image before libpng allocates at all */
    if (size >= 24 && memcmp(data + 12, "IHDR", 4) == 0 &&
        over_limit(be32(data + 16), be32(data + 20), max_pixels))
        return cnn_err_set(err, CNN_ELIMIT, "png: %ux%u pixels over the limit of %zu",
                           (unsigned)be32(data + 16), (unsigned)be32(data + 20), max_pixels);

    struct png_src s = {
        .data = data, .size = size, .pos = 0, .acct = acct, .budget = PNG_BASE_BUDGET};
    png_structp png =
        png_create_read_struct_2(PNG_LIBPNG_VER_STRING, &s, png_on_error, png_on_warning, &s,
                                 png_count_malloc, png_count_free);
    if (!png)
        return cnn_err_set(err, CNN_ENOMEM, "png: cannot create decoder");
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return cnn_err_set(err, CNN_ENOMEM, "png: cannot create decoder");
    }
    int rc = png_decode_body(&s, png, info, max_pixels, img, err);
    if (s.pix) { /* an error returned after the pixel buffer existed */
        free(s.pix);
        cnn_image_acct_sub(acct, s.pix_bytes);
    }
    png_destroy_read_struct(&png, &info, NULL);
    return rc;
}
