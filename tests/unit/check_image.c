/* Suite image: PNG and JPEG decoding and format sniffing.  Fixtures are made in memory with
 * libpng's writer (test_image.h), libjpeg's compressor or by hand (chunk by chunk, with a
 * CRC-32 written here); expected pixels come from the source samples.  Preprocessing is in
 * check_image_preproc.c. */
#include "image.h"
#include "test_image.h"
#include "test_util.h"

#include <check.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h> /* before jpeglib.h, which uses FILE */
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

/* ---- helpers: CRC-32, hand-made chunks ---- */

static uint32_t crc32_of(const unsigned char *p, size_t n)
{
    return test_crc32(0, p, n);
}

static uint32_t get_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Appends one PNG chunk with its CRC. */
static void png_chunk(struct buf *b, const char *type, const unsigned char *data, uint32_t n)
{
    unsigned char hdr[8], crc[4];
    put_be32(hdr, n);
    memcpy(hdr + 4, type, 4);
    buf_put(b, hdr, 8);
    if (n)
        buf_put(b, data, n);
    unsigned char *body = malloc(n + 4);
    memcpy(body, type, 4);
    if (n)
        memcpy(body + 4, data, n);
    put_be32(crc, crc32_of(body, n + 4));
    free(body);
    buf_put(b, crc, 4);
}

/* Offset of the first chunk of the given type in a PNG, or 0. */
static size_t png_find_chunk(const struct buf *b, const char *type)
{
    size_t at = 8;
    while (at + 12 <= b->n) {
        if (memcmp(b->p + at + 4, type, 4) == 0)
            return at;
        at += 12 + get_be32(b->p + at);
    }
    return 0;
}

/* ---- PNG decoding ---- */

struct png_case {
    int color, depth, trns;
    const char *name;
};

static const struct png_case png_cases[] = {
    {PNG_COLOR_TYPE_GRAY, 1, 0, "gray1"},        {PNG_COLOR_TYPE_GRAY, 2, 0, "gray2"},
    {PNG_COLOR_TYPE_GRAY, 4, 0, "gray4"},        {PNG_COLOR_TYPE_GRAY, 8, 0, "gray8"},
    {PNG_COLOR_TYPE_GRAY, 16, 0, "gray16"},      {PNG_COLOR_TYPE_GRAY, 2, 1, "gray2+tRNS"},
    {PNG_COLOR_TYPE_GRAY, 8, 1, "gray8+tRNS"},   {PNG_COLOR_TYPE_GRAY, 16, 1, "gray16+tRNS"},
    {PNG_COLOR_TYPE_GRAY_ALPHA, 8, 0, "ga8"},    {PNG_COLOR_TYPE_GRAY_ALPHA, 16, 0, "ga16"},
    {PNG_COLOR_TYPE_RGB, 8, 0, "rgb8"},          {PNG_COLOR_TYPE_RGB, 16, 0, "rgb16"},
    {PNG_COLOR_TYPE_RGB, 8, 1, "rgb8+tRNS"},     {PNG_COLOR_TYPE_RGB_ALPHA, 8, 0, "rgba8"},
    {PNG_COLOR_TYPE_RGB_ALPHA, 16, 0, "rgba16"}, {PNG_COLOR_TYPE_PALETTE, 1, 0, "pal1"},
    {PNG_COLOR_TYPE_PALETTE, 2, 0, "pal2"},      {PNG_COLOR_TYPE_PALETTE, 4, 0, "pal4"},
    {PNG_COLOR_TYPE_PALETTE, 8, 0, "pal8"},      {PNG_COLOR_TYPE_PALETTE, 1, 1, "pal1+tRNS"},
    {PNG_COLOR_TYPE_PALETTE, 2, 1, "pal2+tRNS"}, {PNG_COLOR_TYPE_PALETTE, 4, 1, "pal4+tRNS"},
    {PNG_COLOR_TYPE_PALETTE, 8, 1, "pal8+tRNS"},
};
#define N_PNG_CASES ((int)(sizeof png_cases / sizeof png_cases[0]))

/* _i: case index * 2 + interlaced.  Sizes: odd (bit packing ends mid-byte; Adam7 passes of
 * unequal size), 1x1 (most Adam7 passes empty), 3x9. */
START_TEST(test_png_every_color_type_and_depth_decodes_to_source_pixels)
{
    const struct png_case *pc = &png_cases[_i / 2];
    int interlace = _i % 2;
    static const int sizes[][2] = {{37, 23}, {1, 1}, {3, 9}};
    for (int s = 0; s < 3; s++) {
        struct png_fixture f = png_fixture_make(sizes[s][0], sizes[s][1], pc->color, pc->depth,
                                                pc->trns, interlace, 1234 + (uint64_t)_i * 7 + s);
        if (interlace) /* the writer really produced an Adam7 file */
            ck_assert_int_eq(f.png.p[8 + 8 + 12], 1);
        struct cnn_image img;
        struct cnn_err err = {0};
        int rc = cnn_image_decode(f.png.p, f.png.n, CNN_IMAGE_DEFAULT_MAX_PIXELS, &img, &err);
        ck_assert_msg(rc == 0, "%s%s: %s", pc->name, interlace ? " interlaced" : "", err.msg);
        char what[64];
        snprintf(what, sizeof what, "%s %dx%d%s", pc->name, f.w, f.h, interlace ? " adam7" : "");
        assert_image_equals(&img, f.expect, f.w, f.h, f.c, what);
        cnn_image_free(&img);
        ck_assert_ptr_null(img.pix);
        png_fixture_free(&f);
    }
}
END_TEST

START_TEST(test_png_16bit_scaling_rounds_every_value)
{
    /* 256x256 gray16 holding each 16-bit value once: checks the rounding for all of them */
    enum { W = 256, H = 256 };
    unsigned char *raw = malloc(W * H * 2);
    for (unsigned v = 0; v < 65536; v++) {
        raw[2 * v] = (unsigned char)(v >> 8);
        raw[2 * v + 1] = (unsigned char)v;
    }
    struct png_spec s = {.w = W, .h = H, .color = PNG_COLOR_TYPE_GRAY, .depth = 16};
    struct buf png = make_png(&s, raw, W * 2);
    struct cnn_image img;
    struct cnn_err err = {0};
    ck_assert_int_eq(cnn_image_decode(png.p, png.n, W * H, &img, &err), 0);
    for (unsigned v = 0; v < 65536; v++) {
        unsigned want = (unsigned)floor(v * 255.0 / 65535.0 + 0.5);
        ck_assert_msg(img.pix[v] == want, "16-bit %u -> %u, want %u", v, img.pix[v], want);
        ck_assert_uint_eq(img.pix[v], exp16(v));
    }
    cnn_image_free(&img);
    buf_free(&png);
    free(raw);
}
END_TEST

START_TEST(test_png_wide_interlaced_rgba16_fits_decoder_budget)
{
    /* rows of 150001 * 8 bytes: libpng's row buffers alone exceed its fixed base budget,
     * so this passes only if the budget grows with the declared width */
    struct png_fixture f = png_fixture_make(150001, 2, PNG_COLOR_TYPE_RGB_ALPHA, 16, 0, 1, 99);
    struct cnn_image img;
    struct cnn_err err = {0};
    ck_assert_msg(cnn_image_decode(f.png.p, f.png.n, 1 << 20, &img, &err) == 0, "%s", err.msg);
    assert_image_equals(&img, f.expect, f.w, f.h, 3, "wide rgba16");
    cnn_image_free(&img);
    png_fixture_free(&f);
}
END_TEST

START_TEST(test_png_pixel_buffer_larger_than_decoder_budget_decodes)
{
    /* the 3 MB pixel buffer is ours, not libpng's: it must not eat libpng's budget */
    struct png_fixture f = png_fixture_make(1024, 1024, PNG_COLOR_TYPE_RGB, 8, 0, 0, 17);
    struct cnn_image img;
    struct cnn_err err = {0};
    ck_assert_msg(cnn_image_decode(f.png.p, f.png.n, 1 << 20, &img, &err) == 0, "%s", err.msg);
    assert_image_equals(&img, f.expect, f.w, f.h, 3, "1024x1024 rgb8");
    cnn_image_free(&img);
    png_fixture_free(&f);
}
END_TEST

START_TEST(test_png_max_pixels_boundary)
{
    struct png_fixture f = png_fixture_make(37, 23, PNG_COLOR_TYPE_RGB, 8, 0, 0, 5);
    struct cnn_image img;
    struct cnn_err err = {0};
    ck_assert_int_eq(cnn_image_decode(f.png.p, f.png.n, 37 * 23, &img, &err), 0);
    cnn_image_free(&img);
    ck_assert_int_eq(cnn_image_decode(f.png.p, f.png.n, 37 * 23 - 1, &img, &err), CNN_ELIMIT);
    ck_assert_int_eq(err.code, CNN_ELIMIT);
    ck_assert_ptr_null(img.pix);
    png_fixture_free(&f);
}
END_TEST

/* Signature, IHDR declaring w x h RGB8, one tiny IDAT (zlib stored block holding one zero
 * byte), IEND -- every CRC valid. */
static struct buf png_handmade(uint32_t w, uint32_t h)
{
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    static const unsigned char idat[] = {0x78, 0x01, 0x01, 0x01, 0x00, 0xfe,
                                         0xff, 0x00, 0x00, 0x01, 0x00, 0x01};
    unsigned char ihdr[13] = {0};
    put_be32(ihdr, w);
    put_be32(ihdr + 4, h);
    ihdr[8] = 8; /* depth */
    ihdr[9] = 2; /* RGB */
    struct buf b = {0};
    buf_put(&b, sig, 8);
    png_chunk(&b, "IHDR", ihdr, 13);
    png_chunk(&b, "IDAT", idat, sizeof idat);
    png_chunk(&b, "IEND", NULL, 0);
    return b;
}

START_TEST(test_png_crc_helper_matches_libpng)
{
    /* the hand-built fixtures below rely on crc32_of: check it against libpng's output */
    struct png_fixture f = png_fixture_make(5, 4, PNG_COLOR_TYPE_RGB, 8, 0, 0, 3);
    size_t at = png_find_chunk(&f.png, "IDAT");
    ck_assert_uint_gt(at, 0);
    uint32_t n = get_be32(f.png.p + at);
    ck_assert_uint_eq(crc32_of(f.png.p + at + 4, n + 4), get_be32(f.png.p + at + 8 + n));
    png_fixture_free(&f);
}
END_TEST

START_TEST(test_png_huge_declared_size_is_refused_before_allocating)
{
    struct buf b = png_handmade(20000, 20000);
    struct cnn_image img;
    struct cnn_err err = {0};
    size_t peak = (size_t)-1;
    int rc = cnn_image_decode_measured(b.p, b.n, CNN_IMAGE_DEFAULT_MAX_PIXELS, &img, &peak, &err);
    ck_assert_int_eq(rc, CNN_ELIMIT);
    ck_assert_ptr_null(img.pix);
    ck_assert_msg(strstr(err.msg, "20000x20000") != NULL, "message: %s", err.msg);
    /* one 20000-pixel RGB row alone would be 60000 bytes; the image 1.2 GB */
    ck_assert_msg(peak < 4096, "peak %zu bytes allocated for a refused image", peak);
    buf_free(&b);

    /* the counter does see real decodes: a 256x256 RGB image holds its pixels and libpng's
     * structures at once */
    struct png_fixture f = png_fixture_make(256, 256, PNG_COLOR_TYPE_RGB, 8, 0, 0, 8);
    ck_assert_int_eq(cnn_image_decode_measured(f.png.p, f.png.n, CNN_IMAGE_DEFAULT_MAX_PIXELS, &img,
                                               &peak, &err),
                     0);
    ck_assert_uint_gt(peak, 256 * 256 * 3 + 256 * 3);
    ck_assert_uint_lt(peak, 256 * 256 * 3 + (4u << 20));
    cnn_image_free(&img);
    png_fixture_free(&f);
}
END_TEST

START_TEST(test_png_handmade_small_image_decodes_only_when_complete)
{
    /* the hand-built file's IDAT has one filter byte and no pixels: with a 1x1 IHDR that
     * is too little data, which must be a format error (not a crash, not success) */
    struct buf b = png_handmade(1, 1);
    struct cnn_image img;
    struct cnn_err err = {0};
    ck_assert_int_eq(cnn_image_decode(b.p, b.n, 100, &img, &err), CNN_EFORMAT);
    buf_free(&b);
}
END_TEST

START_TEST(test_png_truncated_at_every_offset_is_format_error)
{
    struct png_fixture f = png_fixture_make(9, 7, PNG_COLOR_TYPE_RGB, 8, 0, 1, 21);
    for (size_t n = 0; n < f.png.n; n++) {
        unsigned char *copy = malloc(n ? n : 1); /* exact size: ASan sees any overread */
        memcpy(copy, f.png.p, n);
        struct cnn_image img;
        struct cnn_err err = {0};
        int rc = cnn_image_decode(copy, n, CNN_IMAGE_DEFAULT_MAX_PIXELS, &img, &err);
        ck_assert_msg(rc == CNN_EFORMAT, "truncated to %zu of %zu bytes: rc %d (%s)", n, f.png.n,
                      rc, err.msg);
        ck_assert_ptr_null(img.pix);
        ck_assert(err.msg[0] != '\0');
        free(copy);
    }
    png_fixture_free(&f);
}
END_TEST

static int decode_rc(const struct buf *b, struct cnn_err *err)
{
    struct cnn_image img;
    int rc = cnn_image_decode(b->p, b->n, CNN_IMAGE_DEFAULT_MAX_PIXELS, &img, err);
    cnn_image_free(&img);
    return rc;
}

START_TEST(test_png_bad_crc_is_format_error)
{
    struct png_fixture f = png_fixture_make(16, 16, PNG_COLOR_TYPE_RGB, 8, 0, 0, 4);
    struct cnn_err err = {0};
    ck_assert_int_eq(decode_rc(&f.png, &err), 0);

    size_t idat = png_find_chunk(&f.png, "IDAT");
    size_t idat_crc = idat + 8 + get_be32(f.png.p + idat);
    f.png.p[idat_crc + 2] ^= 0x40; /* the stored CRC no longer matches good data */
    ck_assert_int_eq(decode_rc(&f.png, &err), CNN_EFORMAT);
    ck_assert_msg(strstr(err.msg, "CRC") != NULL, "message: %s", err.msg);
    f.png.p[idat_crc + 2] ^= 0x40;
    /* a changed data byte: zlib may notice before the CRC does; either way a format error */
    f.png.p[idat + 8 + 3] ^= 0x40;
    ck_assert_int_eq(decode_rc(&f.png, &err), CNN_EFORMAT);
    f.png.p[idat + 8 + 3] ^= 0x40;

    f.png.p[8 + 8 + 13] ^= 1; /* the IHDR CRC itself */
    ck_assert_int_eq(decode_rc(&f.png, &err), CNN_EFORMAT);
    png_fixture_free(&f);

    /* an ancillary chunk with a bad CRC is refused too (the file is damaged) */
    unsigned char raw[4 * 3 * 4] = {0};
    struct png_spec s = {.w = 4, .h = 4, .color = PNG_COLOR_TYPE_RGB, .depth = 8, .text = 1};
    struct buf t = make_png(&s, raw, 12);
    ck_assert_int_eq(decode_rc(&t, &err), 0);
    size_t text = png_find_chunk(&t, "tEXt");
    ck_assert_uint_gt(text, 0);
    t.p[text + 8 + get_be32(t.p + text)] ^= 0x80;
    ck_assert_int_eq(decode_rc(&t, &err), CNN_EFORMAT);
    buf_free(&t);
}
END_TEST

/* ---- JPEG ---- */

struct jpeg_opts {
    int quality;
    J_COLOR_SPACE in_cs, jpeg_cs; /* jpeg_cs JCS_UNKNOWN: library default */
    int comps;
    int sub444;
    const jpeg_scan_info *scans;
    int nscans;
    int progressive;
};

static struct buf make_jpeg(const uint8_t *pix, int w, int h, const struct jpeg_opts *o)
{
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr jerr;
    unsigned char *mem = NULL;
    unsigned long size = 0;
    ci.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&ci);
    jpeg_mem_dest(&ci, &mem, &size);
    ci.image_width = (JDIMENSION)w;
    ci.image_height = (JDIMENSION)h;
    ci.input_components = o->comps;
    ci.in_color_space = o->in_cs;
    jpeg_set_defaults(&ci);
    if (o->jpeg_cs != JCS_UNKNOWN)
        jpeg_set_colorspace(&ci, o->jpeg_cs);
    jpeg_set_quality(&ci, o->quality, TRUE);
    if (o->sub444)
        for (int k = 0; k < ci.num_components; k++)
            ci.comp_info[k].h_samp_factor = ci.comp_info[k].v_samp_factor = 1;
    if (o->progressive)
        jpeg_simple_progression(&ci);
    if (o->scans) {
        ci.scan_info = o->scans;
        ci.num_scans = o->nscans;
    }
    jpeg_start_compress(&ci, TRUE);
    while (ci.next_scanline < ci.image_height) {
        JSAMPROW row = (JSAMPROW)pix + (size_t)ci.next_scanline * w * o->comps;
        jpeg_write_scanlines(&ci, &row, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    struct buf b = {.p = mem, .n = size, .cap = size};
    return b;
}

/* Smooth test picture (JPEG's loss is small on smooth content). */
static uint8_t *smooth_pixels(int w, int h, int c)
{
    uint8_t *p = malloc((size_t)w * h * c);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < c; k++)
                p[((size_t)y * w + x) * c + k] =
                    (uint8_t)(128 + 90 * sin(0.07 * x + 0.05 * y + k) * cos(0.04 * y - 0.5 * k));
    return p;
}

static void assert_close(const struct cnn_image *img, const uint8_t *src, int w, int h, int c,
                         int max_err, double mean_err, const char *what)
{
    ck_assert_msg(img->w == w && img->h == h && img->c == c, "%s: got %dx%dx%d", what, img->w,
                  img->h, img->c);
    int worst = 0;
    double sum = 0;
    for (size_t i = 0; i < (size_t)w * h * c; i++) {
        int d = abs((int)img->pix[i] - (int)src[i]);
        worst = d > worst ? d : worst;
        sum += d;
    }
    ck_assert_msg(worst <= max_err, "%s: max error %d > %d", what, worst, max_err);
    ck_assert_msg(sum / ((double)w * h * c) <= mean_err, "%s: mean error %.3f > %.3f", what,
                  sum / ((double)w * h * c), mean_err);
}

START_TEST(test_jpeg_gray_and_color_decode_close_to_source)
{
    enum { W = 45, H = 31 };
    struct cnn_image img;
    struct cnn_err err = {0};
    uint8_t *g = smooth_pixels(W, H, 1), *rgb = smooth_pixels(W, H, 3);
    struct jpeg_opts gray100 = {100, JCS_GRAYSCALE, JCS_UNKNOWN, 1, 0, NULL, 0, 0};
    struct jpeg_opts gray95 = {95, JCS_GRAYSCALE, JCS_UNKNOWN, 1, 0, NULL, 0, 0};
    struct jpeg_opts ycc100 = {100, JCS_RGB, JCS_UNKNOWN, 3, 1, NULL, 0, 0};
    struct jpeg_opts ycc95 = {95, JCS_RGB, JCS_UNKNOWN, 3, 1, NULL, 0, 0};
    struct jpeg_opts ycc95_420 = {95, JCS_RGB, JCS_UNKNOWN, 3, 0, NULL, 0, 0};
    struct jpeg_opts prog = {95, JCS_RGB, JCS_UNKNOWN, 3, 1, NULL, 0, 1};
    struct {
        const struct jpeg_opts *o;
        const uint8_t *src;
        int maxe;
        double meane;
        const char *what;
    } cases[] = {
        {&gray100, g, 2, 0.6, "gray q100"},
        {&gray95, g, 4, 1.2, "gray q95"},
        {&ycc100, rgb, 4, 1.0, "YCbCr q100"},
        {&ycc95, rgb, 6, 1.6, "YCbCr q95"},
        {&ycc95_420, rgb, 16, 3.0, "YCbCr q95 4:2:0"},
        {&prog, rgb, 6, 1.6, "progressive q95"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct buf j = make_jpeg(cases[i].src, W, H, cases[i].o);
        ck_assert_int_eq(cnn_image_sniff(j.p, j.n), CNN_IMAGE_JPEG);
        ck_assert_msg(cnn_image_decode(j.p, j.n, W * H, &img, &err) == 0, "%s: %s", cases[i].what,
                      err.msg);
        assert_close(&img, cases[i].src, W, H, cases[i].o->comps, cases[i].maxe, cases[i].meane,
                     cases[i].what);
        cnn_image_free(&img);
        buf_free(&j);
    }
    free(g);
    free(rgb);
}
END_TEST

START_TEST(test_jpeg_flat_color_decodes_exactly)
{
    /* quality 100 quantizes by 1 and a flat block has only a DC term: lossless.  The color
     * one is stored as RGB (no YCbCr rounding). */
    enum { W = 24, H = 17 };
    uint8_t g[W * H], rgb[W * H * 3];
    memset(g, 173, sizeof g);
    for (int i = 0; i < W * H; i++) {
        rgb[3 * i] = 201;
        rgb[3 * i + 1] = 37;
        rgb[3 * i + 2] = 90;
    }
    struct jpeg_opts og = {100, JCS_GRAYSCALE, JCS_UNKNOWN, 1, 0, NULL, 0, 0};
    struct jpeg_opts oc = {100, JCS_RGB, JCS_RGB, 3, 1, NULL, 0, 0};
    struct cnn_image img;
    struct cnn_err err = {0};
    struct buf j = make_jpeg(g, W, H, &og);
    ck_assert_msg(cnn_image_decode(j.p, j.n, W * H, &img, &err) == 0, "%s", err.msg);
    assert_image_equals(&img, g, W, H, 1, "flat gray jpeg");
    cnn_image_free(&img);
    buf_free(&j);
    j = make_jpeg(rgb, W, H, &oc);
    ck_assert_msg(cnn_image_decode(j.p, j.n, W * H, &img, &err) == 0, "%s", err.msg);
    assert_image_equals(&img, rgb, W, H, 3, "flat RGB jpeg");
    cnn_image_free(&img);
    buf_free(&j);
}
END_TEST

START_TEST(test_jpeg_cmyk_is_refused)
{
    enum { W = 8, H = 8 };
    uint8_t px[W * H * 4];
    memset(px, 60, sizeof px);
    struct jpeg_opts o = {90, JCS_CMYK, JCS_UNKNOWN, 4, 0, NULL, 0, 0};
    struct buf j = make_jpeg(px, W, H, &o);
    struct cnn_err err = {0};
    ck_assert_int_eq(decode_rc(&j, &err), CNN_EFORMAT);
    ck_assert_msg(strstr(err.msg, "CMYK") != NULL, "message: %s", err.msg);
    buf_free(&j);
}
END_TEST

/* Offset of the SOF0 marker's height field. */
static size_t jpeg_sof_dims(const struct buf *j)
{
    for (size_t i = 2; i + 9 < j->n; i++)
        if (j->p[i] == 0xff && j->p[i + 1] == 0xc0)
            return i + 5;
    ck_abort_msg("no SOF0 marker");
    return 0;
}

START_TEST(test_jpeg_huge_declared_size_is_limit_error)
{
    uint8_t px[64];
    memset(px, 9, sizeof px);
    struct jpeg_opts o = {90, JCS_GRAYSCALE, JCS_UNKNOWN, 1, 0, NULL, 0, 0};
    struct buf j = make_jpeg(px, 8, 8, &o);
    struct cnn_image img;
    struct cnn_err err = {0};
    ck_assert_int_eq(cnn_image_decode(j.p, j.n, 64, &img, &err), 0);
    cnn_image_free(&img);
    ck_assert_int_eq(cnn_image_decode(j.p, j.n, 63, &img, &err), CNN_ELIMIT);

    size_t at = jpeg_sof_dims(&j);
    j.p[at] = 20000 >> 8; /* height, then width, big-endian */
    j.p[at + 1] = 20000 & 255;
    j.p[at + 2] = 20000 >> 8;
    j.p[at + 3] = 20000 & 255;
    size_t peak = (size_t)-1;
    int rc = cnn_image_decode_measured(j.p, j.n, CNN_IMAGE_DEFAULT_MAX_PIXELS, &img, &peak, &err);
    ck_assert_int_eq(rc, CNN_ELIMIT);
    ck_assert_ptr_null(img.pix);
    ck_assert_uint_eq(peak, 0); /* no pixel buffer was made */
    ck_assert_msg(strstr(err.msg, "20000x20000") != NULL, "message: %s", err.msg);
    buf_free(&j);
}
END_TEST

START_TEST(test_jpeg_truncated_at_every_offset_is_format_error)
{
    enum { W = 19, H = 11 };
    uint8_t *rgb = smooth_pixels(W, H, 3);
    struct jpeg_opts base = {90, JCS_RGB, JCS_UNKNOWN, 3, 0, NULL, 0, 0};
    struct jpeg_opts prog = {90, JCS_RGB, JCS_UNKNOWN, 3, 0, NULL, 0, 1};
    const struct jpeg_opts *opts[] = {&base, &prog};
    for (int v = 0; v < 2; v++) {
        struct buf j = make_jpeg(rgb, W, H, opts[v]);
        struct cnn_err err = {0};
        ck_assert_int_eq(decode_rc(&j, &err), 0);
        for (size_t n = 0; n < j.n; n++) {
            struct buf t = {malloc(n ? n : 1), n, n};
            memcpy(t.p, j.p, n);
            int rc = decode_rc(&t, &err);
            ck_assert_msg(rc == CNN_EFORMAT, "%s truncated to %zu of %zu: rc %d (%s)",
                          v ? "progressive" : "baseline", n, j.n, rc, err.msg);
            buf_free(&t);
        }
        buf_free(&j);
    }
    free(rgb);
}
END_TEST

START_TEST(test_jpeg_too_many_progressive_scans_is_refused)
{
    /* gray, successive approximation from bit 10 (the most libjpeg's encoder allows) down
     * to bit 0, one coefficient per AC scan: 11 DC + 63 * 11 AC = 704 scans */
    static jpeg_scan_info scans[11 + 63 * 11];
    int n = 0;
    for (int al = 10; al >= 0; al--)
        scans[n++] = (jpeg_scan_info){1, {0}, 0, 0, al == 10 ? 0 : al + 1, al};
    for (int k = 1; k < 64; k++)
        for (int al = 10; al >= 0; al--)
            scans[n++] = (jpeg_scan_info){1, {0}, k, k, al == 10 ? 0 : al + 1, al};
    uint8_t *g = smooth_pixels(16, 16, 1);
    struct jpeg_opts o = {95, JCS_GRAYSCALE, JCS_UNKNOWN, 1, 0, scans, n, 0};
    struct buf j = make_jpeg(g, 16, 16, &o);
    struct cnn_err err = {0};
    ck_assert_int_eq(decode_rc(&j, &err), CNN_ELIMIT);
    ck_assert_msg(strstr(err.msg, "scans") != NULL, "message: %s", err.msg);
    buf_free(&j);
    /* the same picture with a short script decodes */
    o.nscans = 0;
    o.scans = NULL;
    o.progressive = 1;
    j = make_jpeg(g, 16, 16, &o);
    ck_assert_int_eq(decode_rc(&j, &err), 0);
    buf_free(&j);
    free(g);
}
END_TEST

/* ---- any format ---- */

START_TEST(test_sniff_by_magic_bytes)
{
    static const unsigned char png[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    static const unsigned char jpg[3] = {0xff, 0xd8, 0xff};
    static const unsigned char gif[6] = {'G', 'I', 'F', '8', '9', 'a'};
    ck_assert_int_eq(cnn_image_sniff(png, 8), CNN_IMAGE_PNG);
    ck_assert_int_eq(cnn_image_sniff(png, 7), CNN_IMAGE_UNKNOWN);
    ck_assert_int_eq(cnn_image_sniff(jpg, 3), CNN_IMAGE_JPEG);
    ck_assert_int_eq(cnn_image_sniff(jpg, 2), CNN_IMAGE_UNKNOWN);
    ck_assert_int_eq(cnn_image_sniff(gif, 6), CNN_IMAGE_UNKNOWN);
    ck_assert_int_eq(cnn_image_sniff(NULL, 0), CNN_IMAGE_UNKNOWN);
}
END_TEST

START_TEST(test_empty_and_garbage_input_is_format_error)
{
    struct cnn_image img;
    struct cnn_err err = {0};
    ck_assert_int_eq(cnn_image_decode(NULL, 0, 100, &img, &err), CNN_EFORMAT);
    ck_assert_int_eq(cnn_image_decode("", 0, 100, &img, &err), CNN_EFORMAT);
    ck_assert_int_eq(cnn_image_decode("x", 1, 100, NULL, &err), CNN_EINVAL);
    ck_assert_int_eq(cnn_image_decode("GIF89a....", 10, 100, &img, &err), CNN_EFORMAT);
    ck_assert_str_eq(err.msg, "image: not a PNG or JPEG image");

    static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    static const unsigned char jpg_soi[3] = {0xff, 0xd8, 0xff};
    uint64_t seed = 77;
    for (int t = 0; t < 300; t++) {
        size_t n = 1 + rnd(&seed) % 600;
        struct buf b = {malloc(n + 8), n, n + 8};
        for (size_t i = 0; i < n; i++)
            b.p[i] = (unsigned char)rnd(&seed);
        int kind = t % 3; /* plain garbage, garbage after a PNG signature, after a JPEG SOI */
        if (kind == 0)
            b.p[0] = 0;
        else if (kind == 1)
            memcpy(b.p, png_sig, n < 8 ? n : 8);
        else
            memcpy(b.p, jpg_soi, n < 3 ? n : 3);
        int rc = decode_rc(&b, &err);
        ck_assert_msg(rc == CNN_EFORMAT, "garbage #%d (%zu bytes, kind %d): rc %d (%s)", t, n, kind,
                      rc, err.msg);
        buf_free(&b);
    }
}
END_TEST

START_TEST(test_corrupted_images_never_crash)
{
    /* random byte changes: any outcome but a crash, a leak or a bogus success */
    struct png_fixture f = png_fixture_make(23, 19, PNG_COLOR_TYPE_PALETTE, 4, 1, 1, 12);
    uint8_t *rgb = smooth_pixels(23, 19, 3);
    struct jpeg_opts o = {85, JCS_RGB, JCS_UNKNOWN, 3, 0, NULL, 0, 1};
    struct buf j = make_jpeg(rgb, 23, 19, &o);
    const struct buf *files[2] = {&f.png, &j};
    uint64_t seed = 4242;
    for (int t = 0; t < 400; t++) {
        const struct buf *src = files[t % 2];
        struct buf b = {malloc(src->n), src->n, src->n};
        memcpy(b.p, src->p, src->n);
        int flips = 1 + (int)(rnd(&seed) % 4);
        for (int k = 0; k < flips; k++)
            b.p[3 + rnd(&seed) % (b.n - 3)] = (unsigned char)rnd(&seed);
        struct cnn_image img;
        struct cnn_err err = {0};
        int rc = cnn_image_decode(b.p, b.n, 1 << 16, &img, &err);
        ck_assert_msg(rc == 0 || rc == CNN_EFORMAT || rc == CNN_ELIMIT, "rc %d (%s)", rc, err.msg);
        if (rc == 0)
            ck_assert(img.pix && img.w > 0 && img.h > 0 && (img.c == 1 || img.c == 3));
        else
            ck_assert_ptr_null(img.pix);
        cnn_image_free(&img);
        buf_free(&b);
    }
    png_fixture_free(&f);
    buf_free(&j);
    free(rgb);
}
END_TEST

Suite *image_suite(void)
{
    Suite *s = suite_create("image");
    TCase *png = tcase_create("png");
    tcase_set_timeout(png, 60);
    tcase_add_loop_test(png, test_png_every_color_type_and_depth_decodes_to_source_pixels, 0,
                        2 * N_PNG_CASES);
    tcase_add_test(png, test_png_16bit_scaling_rounds_every_value);
    tcase_add_test(png, test_png_wide_interlaced_rgba16_fits_decoder_budget);
    tcase_add_test(png, test_png_pixel_buffer_larger_than_decoder_budget_decodes);
    tcase_add_test(png, test_png_max_pixels_boundary);
    tcase_add_test(png, test_png_crc_helper_matches_libpng);
    tcase_add_test(png, test_png_huge_declared_size_is_refused_before_allocating);
    tcase_add_test(png, test_png_handmade_small_image_decodes_only_when_complete);
    tcase_add_test(png, test_png_truncated_at_every_offset_is_format_error);
    tcase_add_test(png, test_png_bad_crc_is_format_error);
    suite_add_tcase(s, png);

    TCase *jpeg = tcase_create("jpeg");
    tcase_set_timeout(jpeg, 60);
    tcase_add_test(jpeg, test_jpeg_gray_and_color_decode_close_to_source);
    tcase_add_test(jpeg, test_jpeg_flat_color_decodes_exactly);
    tcase_add_test(jpeg, test_jpeg_cmyk_is_refused);
    tcase_add_test(jpeg, test_jpeg_huge_declared_size_is_limit_error);
    tcase_add_test(jpeg, test_jpeg_truncated_at_every_offset_is_format_error);
    tcase_add_test(jpeg, test_jpeg_too_many_progressive_scans_is_refused);
    suite_add_tcase(s, jpeg);

    TCase *any = tcase_create("any");
    tcase_set_timeout(any, 60);
    tcase_add_test(any, test_sniff_by_magic_bytes);
    tcase_add_test(any, test_empty_and_garbage_input_is_format_error);
    tcase_add_test(any, test_corrupted_images_never_crash);
    suite_add_tcase(s, any);
    return s;
}
