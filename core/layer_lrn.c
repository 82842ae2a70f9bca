/* Local response normalisation across channels (AlexNet, ONNX LRN, PyTorch):
 * y = x / (k + alpha/size * sum of x^2 over channels c-(size-1)/2 .. c+size/2)^beta.
 * In (C, N, H, W) each channel is one contiguous block of n_hw floats. */
#include "layer.h"

#include <math.h>
#include <stddef.h>

void cnn_lrn_forward(float *out, const float *inp, const struct cnn_lrn *p, int C, size_t n_hw)
{
    const float a = p->alpha / (float)p->size;
    for (int c = 0; c < C; c++) {
        int lo = c - (p->size - 1) / 2, hi = c + p->size / 2;
        lo = lo < 0 ? 0 : lo;
        hi = hi > C - 1 ? C - 1 : hi;
        float *y = out + (size_t)c * n_hw;
        /* First the window's sum of squares into y, then the normalisation in place. */
        for (size_t i = 0; i < n_hw; i++)
            y[i] = 0.0f;
        for (int j = lo; j <= hi; j++) {
            const float *x = inp + (size_t)j * n_hw;
            for (size_t i = 0; i < n_hw; i++)
                y[i] += x[i] * x[i];
        }
        const float *x = inp + (size_t)c * n_hw;
        if (p->beta == 0.75f) { /* AlexNet, GoogLeNet: t^-3/4 = 1/sqrt(t*sqrt(t)), 2x faster */
            for (size_t i = 0; i < n_hw; i++) {
                float t = p->k + a * y[i];
                y[i] = x[i] / sqrtf(t * sqrtf(t));
            }
        } else {
            for (size_t i = 0; i < n_hw; i++)
                y[i] = x[i] * powf(p->k + a * y[i], -p->beta);
        }
    }
}
