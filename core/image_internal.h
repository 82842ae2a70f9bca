/* Private to the image module (image.c, image_png.c, image_jpeg.c): the per-format decoders
 * and the allocation account that lets cnn_image_decode_measured() report peak bytes. */
#ifndef CNN_IMAGE_INTERNAL_H
#define CNN_IMAGE_INTERNAL_H

#include "image.h"

#include <stddef.h>

/* Bytes held at once by one decode: libpng's malloc_fn and our pixel buffer add to cur;
 * peak is the high-water mark.  One per decode call, so no sharing between threads. */
struct cnn_image_acct {
    size_t cur, peak;
};

void cnn_image_acct_add(struct cnn_image_acct *a, size_t n);
void cnn_image_acct_sub(struct cnn_image_acct *a, size_t n);

/* data starts with the PNG signature / JPEG SOI.  On failure img is left zeroed. */
int cnn_image_decode_png(const unsigned char *data, size_t size, size_t max_pixels,
                         struct cnn_image *img, struct cnn_image_acct *acct, struct cnn_err *err);
int cnn_image_decode_jpeg(const unsigned char *data, size_t size, size_t max_pixels,
                          struct cnn_image *img, struct cnn_image_acct *acct, struct cnn_err *err);

#endif
