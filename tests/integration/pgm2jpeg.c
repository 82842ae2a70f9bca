/* pgm2jpeg: writes a binary PGM (P5, 8-bit gray) as a baseline JPEG with libjpeg, so the
 * integration tests have a JPEG to send (Python's standard library cannot encode one).
 *   pgm2jpeg IN.pgm OUT.jpg [QUALITY] */
#include <stdio.h> /* before jpeglib.h, which uses FILE */
#include <stdlib.h>

#include <jpeglib.h>

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: pgm2jpeg IN.pgm OUT.jpg [QUALITY]\n");
        return 2;
    }
    int quality = argc > 3 ? atoi(argv[3]) : 90;
    FILE *in = fopen(argv[1], "rb");
    if (!in) {
        perror(argv[1]);
        return 1;
    }
    int w, h, maxval;
    if (fscanf(in, "P5 %d %d %d", &w, &h, &maxval) != 3 || maxval != 255 || w <= 0 ||
        h <= 0 || w > 65500 || h > 65500 || fgetc(in) == EOF) {
        fprintf(stderr, "%s: not an 8-bit binary PGM\n", argv[1]);
        fclose(in);
        return 1;
    }
    unsigned char *pix = malloc((size_t)w * (size_t)h);
    if (!pix || fread(pix, 1, (size_t)w * (size_t)h, in) != (size_t)w * (size_t)h) {
        fprintf(stderr, "%s: short pixel data\n", argv[1]);
        fclose(in);
        free(pix);
        return 1;
    }
    fclose(in);
    FILE *out = fopen(argv[2], "wb");
    if (!out) {
        perror(argv[2]);
        free(pix);
        return 1;
    }
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr jerr;
    ci.err = jpeg_std_error(&jerr); /* errors exit(): fine for a test tool */
    jpeg_create_compress(&ci);
    jpeg_stdio_dest(&ci, out);
    ci.image_width = (JDIMENSION)w;
    ci.image_height = (JDIMENSION)h;
    ci.input_components = 1;
    ci.in_color_space = JCS_GRAYSCALE;
    jpeg_set_defaults(&ci);
    jpeg_set_quality(&ci, quality, TRUE);
    jpeg_start_compress(&ci, TRUE);
    while (ci.next_scanline < ci.image_height) {
        JSAMPROW row = pix + (size_t)ci.next_scanline * (size_t)w;
        jpeg_write_scanlines(&ci, &row, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    free(pix);
    return fclose(out) ? 1 : 0;
}
