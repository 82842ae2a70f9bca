/* JPEG decoding with libjpeg-turbo, from memory, to 8-bit gray or RGB.  Errors longjmp back
 * here instead of exit(); messages are kept, never printed.  Warnings that mean missing or
 * corrupt entropy data (premature end, bad Huffman code, ...) are errors.  The declared size
 * is checked against max_pixels after jpeg_read_header, before jpeg_start_decompress. */
#include "image_internal.h"

#include <limits.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* jpeglib.h needs stdio.h first, and jerror.h needs jpeglib.h first */
#include <jpeglib.h>

#include <jerror.h>

/* Progressive files may hold any number of scans and each costs a pass over the coefficient
 * buffer; real encoders emit about ten.  Far more is a decoding-time attack. */
#define JPEG_MAX_SCANS 500

struct jpeg_ctx {
    struct jpeg_error_mgr pub; /* first: cinfo->err points at the whole ctx */
    struct jpeg_progress_mgr progress;
    jmp_buf jb;
    int too_many_scans;
    unsigned char *pix;
    size_t pix_bytes;
    char msg[JMSG_LENGTH_MAX];
};

static void jpeg_on_error(j_common_ptr cinfo)
{
    struct jpeg_ctx *x = (struct jpeg_ctx *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, x->msg);
    longjmp(x->jb, 1);
}

static void jpeg_on_message(j_common_ptr cinfo, int level)
{
    if (level >= 0)
        return; /* trace messages */
    switch (cinfo->err->msg_code) {
    case JWRN_JPEG_EOF:
    case JWRN_HIT_MARKER:
    case JWRN_HUFF_BAD_CODE:
    case JWRN_ARITH_BAD_CODE:
    case JWRN_MUST_RESYNC:
    case JWRN_NOT_SEQUENTIAL:
        jpeg_on_error(cinfo); /* truncated or corrupt data: the pixels would be made up */
        break;
    default:
        cinfo->err->num_warnings++;
    }
}

static void jpeg_silent(j_common_ptr cinfo)
{
    (void)cinfo; /* core never prints */
}

static void jpeg_on_progress(j_common_ptr cinfo)
{
    struct jpeg_ctx *x = (struct jpeg_ctx *)cinfo->err;
    if (cinfo->is_decompressor && ((j_decompress_ptr)cinfo)->input_scan_number > JPEG_MAX_SCANS) {
        x->too_many_scans = 1;
        snprintf(x->msg, sizeof x->msg, "more than %d scans", JPEG_MAX_SCANS);
        longjmp(x->jb, 1);
    }
}

/* cinfo exists; only *x changes after setjmp, so locals stay valid across longjmp. */
static int jpeg_decode_body(struct jpeg_ctx *x, j_decompress_ptr cinfo, const unsigned char *data,
                            size_t size, size_t max_pixels, struct cnn_image *img,
                            struct cnn_image_acct *acct, struct cnn_err *err)
{
    if (setjmp(x->jb)) {
        if (x->pix) {
            free(x->pix);
            cnn_image_acct_sub(acct, x->pix_bytes);
            x->pix = NULL;
        }
        if (x->too_many_scans)
            return cnn_err_set(err, CNN_ELIMIT, "jpeg: %s", x->msg);
        return cnn_err_set(err, CNN_EFORMAT, "jpeg: %s", x->msg);
    }
    jpeg_create_decompress(cinfo);
    cinfo->progress = &x->progress;
    jpeg_mem_src(cinfo, data, (unsigned long)size);
    if (jpeg_read_header(cinfo, TRUE) != JPEG_HEADER_OK)
        return cnn_err_set(err, CNN_EFORMAT, "jpeg: no image in the data");

    int c;
    switch (cinfo->jpeg_color_space) {
    case JCS_GRAYSCALE:
        cinfo->out_color_space = JCS_GRAYSCALE;
        c = 1;
        break;
    case JCS_YCbCr:
    case JCS_RGB:
        cinfo->out_color_space = JCS_RGB;
        c = 3;
        break;
    case JCS_CMYK:
    case JCS_YCCK:
        return cnn_err_set(err, CNN_EFORMAT, "jpeg: CMYK images are not supported");
    default:
        return cnn_err_set(err, CNN_EFORMAT, "jpeg: unsupported color space (%d components)",
                           cinfo->num_components);
    }
    size_t w = cinfo->image_width, h = cinfo->image_height;
    if (w == 0 || h == 0)
        return cnn_err_set(err, CNN_EFORMAT, "jpeg: empty image");
    if (h > max_pixels / w)
        return cnn_err_set(err, CNN_ELIMIT, "jpeg: %zux%zu pixels over the limit of %zu", w, h,
                           max_pixels);

    jpeg_start_decompress(cinfo);
    if (cinfo->output_width != w || cinfo->output_height != h || cinfo->output_components != c)
        return cnn_err_set(err, CNN_EFORMAT, "jpeg: unexpected output layout");
    x->pix_bytes = w * h * (size_t)c;
    x->pix = malloc(x->pix_bytes);
    if (!x->pix) {
        x->pix_bytes = 0;
        return cnn_err_set(err, CNN_ENOMEM, "jpeg: out of memory for %zux%zu pixels", w, h);
    }
    cnn_image_acct_add(acct, x->pix_bytes);
    while (cinfo->output_scanline < cinfo->output_height) {
        JSAMPROW row = x->pix + (size_t)cinfo->output_scanline * w * c;
        if (jpeg_read_scanlines(cinfo, &row, 1) != 1)
            return cnn_err_set(err, CNN_EFORMAT, "jpeg: decoder stalled");
    }
    jpeg_finish_decompress(cinfo); /* reads up to EOI: a missing tail is an error too */

    img->w = (int)w;
    img->h = (int)h;
    img->c = c;
    img->pix = x->pix;
    x->pix = NULL;
    return 0;
}

int cnn_image_decode_jpeg(const unsigned char *data, size_t size, size_t max_pixels,
                          struct cnn_image *img, struct cnn_image_acct *acct, struct cnn_err *err)
{
    if (size > ULONG_MAX) /* jpeg_mem_src takes unsigned long */
        return cnn_err_set(err, CNN_ELIMIT, "jpeg: %zu bytes is too large", size);
    struct jpeg_ctx x = {0};
    struct jpeg_decompress_struct cinfo;
    memset(&cinfo, 0, sizeof cinfo); /* jpeg_destroy is safe even if create fails early */
    cinfo.err = jpeg_std_error(&x.pub);
    x.pub.error_exit = jpeg_on_error;
    x.pub.emit_message = jpeg_on_message;
    x.pub.output_message = jpeg_silent;
    x.progress.progress_monitor = jpeg_on_progress;
    int rc = jpeg_decode_body(&x, &cinfo, data, size, max_pixels, img, acct, err);
    if (x.pix) { /* an error returned after the pixel buffer existed */
        free(x.pix);
        cnn_image_acct_sub(acct, x.pix_bytes);
    }
    jpeg_destroy_decompress(&cinfo);
    return rc;
}
