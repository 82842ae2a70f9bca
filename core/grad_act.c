/* Backward of the elementwise and reshaping layers: activations, softmax over classes,
 * flatten, and the plain accumulation that add and concat reduce to.  Loops are written
 * as selects and multiplies (no data-dependent branches) so that they vectorise. */
#include "grad.h"

#include <math.h>
#include <stddef.h>

/* dinp += dout where a < v < b (clip); the open interval as in PyTorch's hardtanh. */
static void clip_backward(float *restrict dinp, const float *restrict dout,
                          const float *restrict v, size_t n, float a, float b)
{
    for (size_t i = 0; i < n; i++)
        dinp[i] += (v[i] > a && v[i] < b) ? dout[i] : 0.0f;
}

void cnn_act_backward(float *dinp, const float *dout, const float *x, const float *y, size_t n,
                      const struct cnn_act_params *act)
{
    const float a = act->alpha;
    const float *v = x ? x : y; /* relu, leaky, clip: the sign / range is the same in x and y */
    switch (act->kind) {
    case CNN_ACT_NONE:
    case CNN_ACT_COUNT:
        cnn_grad_accumulate(dinp, dout, n);
        break;
    case CNN_ACT_RELU:
        for (size_t i = 0; i < n; i++)
            dinp[i] += v[i] > 0.0f ? dout[i] : 0.0f;
        break;
    case CNN_ACT_LEAKY_RELU:
        for (size_t i = 0; i < n; i++)
            dinp[i] += dout[i] * (v[i] > 0.0f ? 1.0f : a);
        break;
    case CNN_ACT_CLIP:
        clip_backward(dinp, dout, v, n, a, act->beta);
        break;
    case CNN_ACT_SIGMOID:
        if (y) {
            for (size_t i = 0; i < n; i++)
                dinp[i] += dout[i] * y[i] * (1.0f - y[i]);
        } else {
            for (size_t i = 0; i < n; i++) {
                const float s = 1.0f / (1.0f + expf(-x[i]));
                dinp[i] += dout[i] * s * (1.0f - s);
            }
        }
        break;
    case CNN_ACT_TANH:
        if (y) {
            for (size_t i = 0; i < n; i++)
                dinp[i] += dout[i] * (1.0f - y[i] * y[i]);
        } else {
            for (size_t i = 0; i < n; i++) {
                const float t = tanhf(x[i]);
                dinp[i] += dout[i] * (1.0f - t * t);
            }
        }
        break;
    }
}

void cnn_softmax_backward(float *dinp, const float *dout, const float *out, int K, int N)
{
    for (int n = 0; n < N; n++) {
        double dot = 0.0;
        for (int k = 0; k < K; k++)
            dot += (double)dout[(size_t)k * N + n] * out[(size_t)k * N + n];
        for (int k = 0; k < K; k++) {
            const size_t i = (size_t)k * N + n;
            dinp[i] += out[i] * (dout[i] - (float)dot);
        }
    }
}

void cnn_flatten_backward(float *dinp, const float *dout, int C, int N, int hw)
{
    for (int c = 0; c < C; c++)
        for (int n = 0; n < N; n++) {
            float *d = dinp + ((size_t)c * N + n) * hw;
            const float *g = dout + (size_t)c * hw * N + n;
            for (int i = 0; i < hw; i++)
                d[i] += g[(size_t)i * N];
        }
}

void cnn_grad_accumulate(float *d, const float *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        d[i] += s[i];
}
