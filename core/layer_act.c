/* Elementwise and reshaping kernels: activations, per-channel scale+shift (folded batch
 * norm), residual add, softmax over classes, flatten to the dense layout, global average
 * pooling.  All tensors are (C, N, ...) as described in layer.h. */
#include "layer.h"

#include <math.h>
#include <stddef.h>

void cnn_act_apply(float *x, size_t n, const struct cnn_act_params *act)
{
    const float a = act->alpha, b = act->beta;
    switch (act->kind) {
    case CNN_ACT_NONE:
    case CNN_ACT_COUNT:
        break;
    case CNN_ACT_RELU:
        for (size_t i = 0; i < n; i++)
            x[i] = x[i] > 0.0f ? x[i] : 0.0f;
        break;
    case CNN_ACT_LEAKY_RELU:
        for (size_t i = 0; i < n; i++)
            x[i] = x[i] > 0.0f ? x[i] : a * x[i];
        break;
    case CNN_ACT_CLIP:
        for (size_t i = 0; i < n; i++)
            x[i] = x[i] < a ? a : (x[i] > b ? b : x[i]);
        break;
    case CNN_ACT_SIGMOID:
        for (size_t i = 0; i < n; i++)
            x[i] = 1.0f / (1.0f + expf(-x[i]));
        break;
    case CNN_ACT_TANH:
        for (size_t i = 0; i < n; i++)
            x[i] = tanhf(x[i]);
        break;
    }
}

void cnn_scale_shift_forward(float *out, const float *inp, const float *scale, const float *shift,
                             int C, size_t n_hw, const struct cnn_act_params *act)
{
    for (int c = 0; c < C; c++) {
        const float s = scale[c], t = shift[c];
        const float *x = inp + (size_t)c * n_hw;
        float *y = out + (size_t)c * n_hw;
        for (size_t i = 0; i < n_hw; i++)
            y[i] = x[i] * s + t;
        cnn_act_apply(y, n_hw, act);
    }
}

void cnn_add_forward(float *out, const float *const *inputs, int n_inputs, size_t count,
                     const struct cnn_act_params *act)
{
    if (n_inputs <= 0)
        return;
    const float *a = inputs[0];
    if (n_inputs == 1) {
        for (size_t i = 0; i < count; i++)
            out[i] = a[i];
    } else {
        const float *b = inputs[1];
        for (size_t i = 0; i < count; i++)
            out[i] = a[i] + b[i];
        for (int k = 2; k < n_inputs; k++) {
            const float *x = inputs[k];
            for (size_t i = 0; i < count; i++)
                out[i] += x[i];
        }
    }
    cnn_act_apply(out, count, act);
}

void cnn_softmax_forward(float *out, const float *inp, int K, int N)
{
    for (int n = 0; n < N; n++) {
        float m = -INFINITY;
        for (int k = 0; k < K; k++)
            m = inp[(size_t)k * N + n] > m ? inp[(size_t)k * N + n] : m;
        float sum = 0.0f;
        for (int k = 0; k < K; k++) {
            float e = expf(inp[(size_t)k * N + n] - m);
            out[(size_t)k * N + n] = e;
            sum += e;
        }
        const float inv = 1.0f / sum;
        for (int k = 0; k < K; k++)
            out[(size_t)k * N + n] *= inv;
    }
}

void cnn_flatten_forward(float *out, const float *inp, int C, int N, int hw)
{
    for (int c = 0; c < C; c++)
        for (int n = 0; n < N; n++) {
            const float *x = inp + ((size_t)c * N + n) * hw;
            float *y = out + (size_t)c * hw * N + n;
            for (int i = 0; i < hw; i++)
                y[(size_t)i * N] = x[i];
        }
}

void cnn_global_avgpool_forward(float *out, const float *inp, size_t planes, size_t hw)
{
    for (size_t p = 0; p < planes; p++) {
        const float *x = inp + p * hw;
        float sum = 0.0f;
        for (size_t i = 0; i < hw; i++)
            sum += x[i];
        out[p] = hw ? sum / (float)hw : 0.0f;
    }
}
