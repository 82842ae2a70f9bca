/* Image input entry points: sniff the format by magic bytes, dispatch to the PNG or JPEG
 * decoder (image_png.c, image_jpeg.c), free decoded images, and keep the per-decode
 * allocation account.  Preprocessing to a float tensor lives in image_preproc.c. */
#include "image.h"
#include "image_internal.h"

#include <stdlib.h>
#include <string.h>

void cnn_image_acct_add(struct cnn_image_acct *a, size_t n)
{
    a->cur += n;
    if (a->cur > a->peak)
        a->peak = a->cur;
}

void cnn_image_acct_sub(struct cnn_image_acct *a, size_t n)
{
    a->cur -= n;
}

enum cnn_image_format cnn_image_sniff(const void *data, size_t size)
{
    static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    static const unsigned char jpeg_soi[3] = {0xff, 0xd8, 0xff};
    if (!data)
        return CNN_IMAGE_UNKNOWN;
    if (size >= sizeof png_sig && memcmp(data, png_sig, sizeof png_sig) == 0)
        return CNN_IMAGE_PNG;
    if (size >= sizeof jpeg_soi && memcmp(data, jpeg_soi, sizeof jpeg_soi) == 0)
        return CNN_IMAGE_JPEG;
    return CNN_IMAGE_UNKNOWN;
}

int cnn_image_decode_measured(const void *data, size_t size, size_t max_pixels,
                              struct cnn_image *img, size_t *peak_bytes, struct cnn_err *err)
{
    struct cnn_image_acct acct = {0, 0};
    int rc;
    if (peak_bytes)
        *peak_bytes = 0;
    if (!img)
        return cnn_err_set(err, CNN_EINVAL, "image: no output image given");
    memset(img, 0, sizeof *img);
    if (!data || size == 0)
        return cnn_err_set(err, CNN_EFORMAT, "image: empty data");
    switch (cnn_image_sniff(data, size)) {
    case CNN_IMAGE_PNG:
        rc = cnn_image_decode_png(data, size, max_pixels, img, &acct, err);
        break;
    case CNN_IMAGE_JPEG:
        rc = cnn_image_decode_jpeg(data, size, max_pixels, img, &acct, err);
        break;
    default:
        rc = cnn_err_set(err, CNN_EFORMAT, "image: not a PNG or JPEG image");
    }
    if (peak_bytes)
        *peak_bytes = acct.peak;
    return rc;
}

int cnn_image_decode(const void *data, size_t size, size_t max_pixels, struct cnn_image *img,
                     struct cnn_err *err)
{
    return cnn_image_decode_measured(data, size, max_pixels, img, NULL, err);
}

void cnn_image_free(struct cnn_image *img)
{
    if (!img)
        return;
    free(img->pix);
    memset(img, 0, sizeof *img);
}
