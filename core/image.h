/* Image input: PNG (libpng) and JPEG (libjpeg-turbo) decoding to 8-bit pixels, and
 * preprocessing (bilinear resize or shorter-side resize + center crop, channel conversion,
 * scale to [0,1], optional invert, mean/std) straight into a float (C, H, W) tensor.
 * Declared dimensions are checked against max_pixels before any pixel buffer exists. */
#ifndef CNN_IMAGE_H
#define CNN_IMAGE_H

#include "err.h"
#include "model.h"

#include <stddef.h>
#include <stdint.h>

#define CNN_IMAGE_DEFAULT_MAX_PIXELS (64u * 1024u * 1024u)

/* Decoded image: interleaved 8-bit, c = 1 (gray) or 3 (RGB).  Alpha is dropped (pixels
 * are taken as stored); palette expands to RGB; 16-bit samples are reduced to 8 bits with
 * rounding (png_set_scale_16); interlaced images are deinterlaced. */
struct cnn_image {
    int w, h, c;
    uint8_t *pix;   /* owned: w*h*c bytes, row-major */
};

enum cnn_image_format { CNN_IMAGE_UNKNOWN = 0, CNN_IMAGE_PNG, CNN_IMAGE_JPEG };

/* Sniffs the magic bytes. */
enum cnn_image_format cnn_image_sniff(const void *data, size_t size);

/* Decodes PNG or JPEG bytes.  Width x height above max_pixels -> CNN_ELIMIT before any
 * allocation of pixels; non-image, truncated or corrupt bytes -> CNN_EFORMAT.  On success
 * img->pix is owned by the caller (cnn_image_free).  Thread-safe. */
int cnn_image_decode(const void *data, size_t size, size_t max_pixels, struct cnn_image *img,
                     struct cnn_err *err);
void cnn_image_free(struct cnn_image *img);

/* Test/diagnostic hook: cnn_image_decode that also stores in *peak_bytes the most bytes held
 * at once through the decoder's counting allocator (everything libpng allocates via its
 * malloc_fn, plus the pixel buffer; libjpeg's internal pools are not counted).  The unit
 * tests use it to show an oversized image is refused before any large allocation. */
int cnn_image_decode_measured(const void *data, size_t size, size_t max_pixels,
                              struct cnn_image *img, size_t *peak_bytes, struct cnn_err *err);

/* Writes the preprocessed (pp->c, pp->h, pp->w) float tensor for img into out.
 * Gray -> RGB replicates; RGB -> gray uses ITU-R BT.601 luma weights.  Never allocates. */
int cnn_image_to_tensor(const struct cnn_image *img, const struct cnn_preproc *pp, float *out,
                        struct cnn_err *err);

/* lut[k][p]: output channel k's value for an 8-bit sample p (/255, invert, mean/std), in
 * the float steps cnn_image_to_tensor() takes, for k < pp->c. */
void cnn_preproc_lut(const struct cnn_preproc *pp, float lut[3][256]);

/* Decode + preprocess in one call, for the `cnn` tool and the server. */
int cnn_image_load_tensor(const void *data, size_t size, size_t max_pixels,
                          const struct cnn_preproc *pp, float *out, struct cnn_err *err);

/* Encodes img (c = 1 gray or 3 RGB, 8-bit) as PNG into *out (owned by the caller: free())
 * of *size bytes.  CNN_EINVAL for a bad image, CNN_ENOMEM.  Thread-safe. */
int cnn_image_encode_png(const struct cnn_image *img, void **out, size_t *size,
                         struct cnn_err *err);

#endif
