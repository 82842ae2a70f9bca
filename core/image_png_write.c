/* PNG encoding with libpng into a growing memory buffer (8-bit gray or RGB, no filters
 * chosen by hand, default compression): the pictures of explanations, filter grids and plots.
 * libpng errors longjmp back here. */
#include "image.h"

#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

struct png_dst {
    unsigned char *buf;
    size_t len, cap;
    int nomem;
};

static void png_write_mem(png_structp png, png_bytep data, size_t n)
{
    struct png_dst *d = png_get_io_ptr(png);
    if (d->nomem)
        return;
    if (d->len + n > d->cap) {
        size_t cap = d->cap ? d->cap : 4096;
        while (cap < d->len + n)
            cap *= 2;
        unsigned char *p = realloc(d->buf, cap);
        if (!p) {
            d->nomem = 1;
            return;
        }
        d->buf = p, d->cap = cap;
    }
    memcpy(d->buf + d->len, data, n);
    d->len += n;
}

static void png_flush_mem(png_structp png)
{
    (void)png;
}

static void png_write_error(png_structp png, png_const_charp msg)
{
    (void)msg;
    png_longjmp(png, 1);
}

static void png_write_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

/* Rows of img into png (a separate function: no automatic variable lives across setjmp). */
static void write_rows(png_structp png, png_infop info, const struct cnn_image *img)
{
    png_set_IHDR(png, info, (png_uint_32)img->w, (png_uint_32)img->h, 8,
                 img->c == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < img->h; y++)
        png_write_row(png, img->pix + (size_t)y * img->w * img->c);
    png_write_end(png, info);
}

int cnn_image_encode_png(const struct cnn_image *img, void **out, size_t *size,
                         struct cnn_err *err)
{
    *out = NULL;
    *size = 0;
    if (!img || !img->pix || img->w < 1 || img->h < 1 || (img->c != 1 && img->c != 3) ||
        img->w > 65535 || img->h > 65535)
        return cnn_err_set(err, CNN_EINVAL, "png: cannot encode this image");
    struct png_dst d = {0};
    png_structp png =
        png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, png_write_error, png_write_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_write_struct(&png, &info);
        return cnn_err_set(err, CNN_ENOMEM, "png: out of memory");
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(d.buf);
        return cnn_err_set(err, CNN_ENOMEM, "png: encoding failed");
    }
    png_set_write_fn(png, &d, png_write_mem, png_flush_mem);
    write_rows(png, info, img);
    png_destroy_write_struct(&png, &info);
    if (d.nomem) {
        free(d.buf);
        return cnn_err_set(err, CNN_ENOMEM, "png: out of memory for %zu bytes", d.len);
    }
    *out = d.buf;
    *size = d.len;
    return 0;
}
