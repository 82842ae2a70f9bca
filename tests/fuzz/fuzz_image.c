/* Fuzz target: PNG/JPEG decoding (core/image_png.c, image_jpeg.c) and preprocessing into a
 * tensor (image_preproc.c) for a gray 28x28 stretch and an RGB shorter-side-crop BGR
 * preprocessing, as /v1 classify and the v2 BYTES input do.  Pixels capped at 1 Mi. */
#include "fuzz.h"
#include "image.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cnn_err err = {0};
    struct cnn_image img;
    if (cnn_image_decode(data, size, (size_t)1 << 20, &img, &err) != 0)
        return 0;
    static const struct cnn_preproc pps[] = {
        {.c = 1, .h = 28, .w = 28, .resize = CNN_RESIZE_STRETCH, .invert = 1,
         .mean = {0.5f}, .std = {0.25f}},
        {.c = 3, .h = 7, .w = 5, .resize = CNN_RESIZE_SHORTER_CROP, .resize_short = 9,
         .mean = {0.485f, 0.456f, 0.406f}, .std = {0.229f, 0.224f, 0.225f}, .bgr = 1},
    };
    static float out[3 * 28 * 28];
    for (size_t i = 0; i < sizeof pps / sizeof pps[0]; i++) {
        if (cnn_image_to_tensor(&img, &pps[i], out, &err) != 0)
            abort(); /* a decoded image always preprocesses */
        for (int j = 0; j < pps[i].c * pps[i].h * pps[i].w; j++)
            if (out[j] != out[j])
                abort(); /* NaN from finite pixels */
    }
    cnn_image_free(&img);
    return 0;
}
