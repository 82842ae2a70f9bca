/* Backward of the elementwise and reshaping layers: activations, softmax over classes,
 * flatten, and the plain accumulation that add and concat reduce to.  Loops are written
 * with vector selects and multiplies (no data-dependent branches). */
#include "grad.h"
#include "grad_simd.h"

#include <assert.h>
#include <math.h>
#include <stddef.h>
#include <string.h>

/* relu, leaky relu and clip: dinp += dout where lo < v < hi, else slope * dout (slope 0
 * gives exactly 0 there, as a select, even for an infinite dout). */
static void piecewise_backward(float *restrict dinp, const float *restrict dout,
                               const float *restrict v, size_t n, float lo, float hi, float slope,
                               int add)
{
    const grad_v4f lov = grad_splat4(lo), hiv = grad_splat4(hi), sv = grad_splat4(slope);
    const grad_v4f zero = grad_splat4(0.0f);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const grad_v4f x = grad_load4(v + i), g = grad_load4(dout + i);
        const grad_v4f off = slope == 0.0f ? zero : g * sv;
        const grad_v4f d = grad_select4((x > lov) & (x < hiv), g, off);
        grad_store4(dinp + i, add ? grad_load4(dinp + i) + d : d);
    }
    for (; i < n; i++) {
        const float off = slope == 0.0f ? 0.0f : dout[i] * slope;
        const float d = (v[i] > lo && v[i] < hi) ? dout[i] : off;
        dinp[i] = add ? dinp[i] + d : d;
    }
}

/* sigmoid (tanh = 0) or tanh (tanh = 1) from the output y: dinp += dout * y' */
static void smooth_backward_y(float *restrict dinp, const float *restrict dout,
                              const float *restrict y, size_t n, int tanh)
{
    const grad_v4f one = grad_splat4(1.0f);
    size_t i = 0;
    if (tanh) {
        for (; i + 4 <= n; i += 4) {
            const grad_v4f t = grad_load4(y + i);
            grad_store4(dinp + i, grad_load4(dinp + i) + grad_load4(dout + i) * (one - t * t));
        }
        for (; i < n; i++)
            dinp[i] += dout[i] * (1.0f - y[i] * y[i]);
    } else {
        for (; i + 4 <= n; i += 4) {
            const grad_v4f s = grad_load4(y + i);
            grad_store4(dinp + i, grad_load4(dinp + i) + grad_load4(dout + i) * s * (one - s));
        }
        for (; i < n; i++)
            dinp[i] += dout[i] * y[i] * (1.0f - y[i]);
    }
}

/* hard sigmoid: dinp += alpha * dout where 0 < alpha * x + beta < 1 (open, as PyTorch),
 * decided from x or, without it, from y = the clamped value. */
static void hard_sigmoid_backward(float *restrict dinp, const float *restrict dout,
                                  const float *restrict x, const float *restrict y, size_t n,
                                  float alpha, float beta)
{
    for (size_t i = 0; i < n; i++) {
        const float t = x ? alpha * x[i] + beta : y[i];
        dinp[i] += (t > 0.0f && t < 1.0f) ? alpha * dout[i] : 0.0f;
    }
}

/* hard swish from x (y does not determine x): 0 below -3, x / 3 + 1/2 up to 3 inclusive,
 * 1 above (PyTorch's hardswish_backward). */
static void hard_swish_backward(float *restrict dinp, const float *restrict dout,
                                const float *restrict x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const float d = x[i] < -3.0f ? 0.0f : (x[i] <= 3.0f ? x[i] / 3.0f + 0.5f : 1.0f);
        dinp[i] += d == 0.0f ? 0.0f : dout[i] * d;
    }
}

/* cnn_act_backward() (add) or cnn_act_backward_set() (!add): relu, leaky relu, clip and
 * none write directly, the rarer kinds zero dinp and then add. */
static void act_backward(float *dinp, const float *dout, const float *x, const float *y, size_t n,
                         const struct cnn_act_params *act, int add)
{
    const float *v = x ? x : y; /* relu, leaky, clip: the sign / range is the same in x and y */
    switch (act->kind) {
    case CNN_ACT_NONE:
    case CNN_ACT_COUNT:
        if (add)
            grad_add(dinp, dout, n);
        else
            memcpy(dinp, dout, n * sizeof(float));
        return;
    case CNN_ACT_RELU:
        piecewise_backward(dinp, dout, v, n, 0.0f, INFINITY, 0.0f, add);
        return;
    case CNN_ACT_LEAKY_RELU:
        piecewise_backward(dinp, dout, v, n, 0.0f, INFINITY, act->alpha, add);
        return;
    case CNN_ACT_CLIP:
        piecewise_backward(dinp, dout, v, n, act->alpha, act->beta, 0.0f, add);
        return;
    case CNN_ACT_SIGMOID:
    case CNN_ACT_TANH:
    case CNN_ACT_HARD_SIGMOID:
    case CNN_ACT_HARD_SWISH:
        break;
    }
    if (!add)
        memset(dinp, 0, n * sizeof(float));
    switch (act->kind) {
    case CNN_ACT_NONE:
    case CNN_ACT_COUNT:
    case CNN_ACT_RELU:
    case CNN_ACT_LEAKY_RELU:
    case CNN_ACT_CLIP:
        break; /* done above */
    case CNN_ACT_SIGMOID:
        if (y) {
            smooth_backward_y(dinp, dout, y, n, 0);
        } else {
            for (size_t i = 0; i < n; i++) {
                const float s = 1.0f / (1.0f + expf(-x[i]));
                dinp[i] += dout[i] * s * (1.0f - s);
            }
        }
        break;
    case CNN_ACT_TANH:
        if (y) {
            smooth_backward_y(dinp, dout, y, n, 1);
        } else {
            for (size_t i = 0; i < n; i++) {
                const float t = tanhf(x[i]);
                dinp[i] += dout[i] * (1.0f - t * t);
            }
        }
        break;
    case CNN_ACT_HARD_SIGMOID:
        hard_sigmoid_backward(dinp, dout, x, y, n, act->alpha, act->beta);
        break;
    case CNN_ACT_HARD_SWISH:
        assert(x != NULL); /* every caller keeps the input (grad.h) */
        hard_swish_backward(dinp, dout, x, n);
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
    grad_add(d, s, n);
}

void cnn_act_backward(float *dinp, const float *dout, const float *x, const float *y, size_t n,
                      const struct cnn_act_params *act)
{
    act_backward(dinp, dout, x, y, n, act, 1);
}

void cnn_act_backward_set(float *dinp, const float *dout, const float *x, const float *y, size_t n,
                          const struct cnn_act_params *act)
{
    act_backward(dinp, dout, x, y, n, act, 0);
}
