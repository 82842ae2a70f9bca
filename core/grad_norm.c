/* Training-mode batch norm (batch statistics, running-stat update, backward through the
 * statistics), batch norm backward with fixed statistics, inverted dropout with a seeded
 * generator, and LRN backward.  Each channel of (C, N, H, W) is one block of n_hw floats;
 * per-channel sums run in float vector lanes per block and in double across blocks. */
#include "grad.h"
#include "grad_simd.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>

/* Sum of (x[i] - m)^2 over n floats, blocked like grad_sum(). */
static double sum_sq_dev(const float *x, size_t n, float m)
{
    const grad_v4f mv = grad_splat4(m);
    double s = 0.0;
    for (size_t i = 0; i < n;) {
        const size_t end = n - i > GRAD_BLOCK ? i + GRAD_BLOCK : n;
        grad_v4f a = grad_splat4(0.0f);
        for (; i + 4 <= end; i += 4) {
            const grad_v4f d = grad_load4(x + i) - mv;
            a += d * d;
        }
        float b = grad_hsum4(a);
        for (; i < end; i++)
            b += (x[i] - m) * (x[i] - m);
        s += b;
    }
    return s;
}

/* g[i], or, when y is non-NULL, the gradient through a relu whose output y is: g[i] where
 * y[i] > 0, else 0 (PyTorch's relu backward, 0 at the kink). */
static inline __attribute__((always_inline)) grad_v4f masked4(const float *g, const float *y,
                                                             size_t i)
{
    const grad_v4f gv = grad_load4(g + i);
    return y ? grad_select4(grad_load4(y + i) > grad_splat4(0.0f), gv, grad_splat4(0.0f)) : gv;
}

static inline __attribute__((always_inline)) float masked1(const float *g, const float *y,
                                                           size_t i)
{
    return y ? (y[i] > 0.0f ? g[i] : 0.0f) : g[i];
}

/* *sg = sum of g[i], *sgd = sum of g[i] * (x[i] - m), blocked like grad_sum(); g masked by
 * y as masked4() when y is non-NULL. */
static inline __attribute__((always_inline)) void sum_g_gdev_y(const float *g, const float *y,
                                                               const float *x, size_t n, float m,
                                                               double *sg, double *sgd)
{
    const grad_v4f mv = grad_splat4(m);
    double s0 = 0.0, s1 = 0.0;
    for (size_t i = 0; i < n;) {
        const size_t end = n - i > GRAD_BLOCK ? i + GRAD_BLOCK : n;
        grad_v4f a0 = grad_splat4(0.0f), a1 = a0;
        for (; i + 4 <= end; i += 4) {
            const grad_v4f gv = masked4(g, y, i);
            a0 += gv;
            a1 += gv * (grad_load4(x + i) - mv);
        }
        float b0 = grad_hsum4(a0), b1 = grad_hsum4(a1);
        for (; i < end; i++) {
            const float gi = masked1(g, y, i);
            b0 += gi;
            b1 += gi * (x[i] - m);
        }
        s0 += b0;
        s1 += b1;
    }
    *sg = s0;
    *sgd = s1;
}

static void sum_g_gdev(const float *g, const float *x, size_t n, float m, double *sg, double *sgd)
{
    sum_g_gdev_y(g, NULL, x, n, m, sg, sgd);
}

/* y[i] = (x[i] - m) * k + t, then max(y[i], 0) when relu (NaN -> 0, as train_act_copy());
 * y may alias x. */
static void normalize(float *y, const float *x, size_t n, float m, float k, float t, int relu)
{
    const grad_v4f mv = grad_splat4(m), kv = grad_splat4(k), tv = grad_splat4(t);
    const grad_v4f zero = grad_splat4(0.0f);
    size_t i = 0;
    if (relu) {
        for (; i + 4 <= n; i += 4) {
            const grad_v4f v = (grad_load4(x + i) - mv) * kv + tv;
            grad_store4(y + i, grad_select4(v > zero, v, zero));
        }
        for (; i < n; i++) {
            const float v = (x[i] - m) * k + t;
            y[i] = v > 0.0f ? v : 0.0f;
        }
        return;
    }
    for (; i + 4 <= n; i += 4)
        grad_store4(y + i, (grad_load4(x + i) - mv) * kv + tv);
    for (; i < n; i++)
        y[i] = (x[i] - m) * k + t;
}

/* cnn_batchnorm_train_forward(), with a relu on out when relu. */
static int bn_train_forward(float *out, float *save_mean, float *save_inv_std,
                            float *running_mean, float *running_var, const float *inp,
                            const float *gamma, const float *beta, float eps, float momentum,
                            int C, size_t n_hw, int relu, struct cnn_err *err)
{
    if (n_hw < 2)
        return cnn_err_set(err, CNN_EINVAL,
                           "batchnorm: training needs more than 1 value per channel, got %zu",
                           n_hw);
    for (int c = 0; c < C; c++) {
        const float *x = inp + (size_t)c * n_hw;
        const float m = (float)(grad_sum(x, n_hw) / (double)n_hw);
        /* second pass around the mean: no cancellation when |mean| >> std */
        const double ss = sum_sq_dev(x, n_hw, m);
        const double var = ss / (double)n_hw;
        const float inv_std = (float)(1.0 / sqrt(var + (double)eps));
        normalize(out + (size_t)c * n_hw, x, n_hw, m, gamma[c] * inv_std, beta[c], relu);
        save_mean[c] = m;
        save_inv_std[c] = inv_std;
        if (running_mean)
            running_mean[c] = (1.0f - momentum) * running_mean[c] + momentum * m;
        if (running_var)
            running_var[c] =
                (1.0f - momentum) * running_var[c] + momentum * (float)(ss / (double)(n_hw - 1));
    }
    return 0;
}

int cnn_batchnorm_train_forward(float *out, float *save_mean, float *save_inv_std,
                                float *running_mean, float *running_var, const float *inp,
                                const float *gamma, const float *beta, float eps, float momentum,
                                int C, size_t n_hw, struct cnn_err *err)
{
    return bn_train_forward(out, save_mean, save_inv_std, running_mean, running_var, inp, gamma,
                            beta, eps, momentum, C, n_hw, 0, err);
}

int cnn_batchnorm_relu_train_forward(float *out, float *save_mean, float *save_inv_std,
                                     float *running_mean, float *running_var, const float *inp,
                                     const float *gamma, const float *beta, float eps,
                                     float momentum, int C, size_t n_hw, struct cnn_err *err)
{
    return bn_train_forward(out, save_mean, save_inv_std, running_mean, running_var, inp, gamma,
                            beta, eps, momentum, C, n_hw, 1, err);
}

/* cnn_batchnorm_train_backward(), adding into dinp (add) or writing it (!add); with dout
 * masked by a relu's output y (masked4()) when y is non-NULL. */
static inline __attribute__((always_inline)) void
bn_train_backward(float *dinp, float *dgamma, float *dbeta, const float *dout, const float *y,
                  const float *inp, const float *gamma, const float *save_mean,
                  const float *save_inv_std, int C, size_t n_hw, int add)
{
    for (int c = 0; c < C; c++) {
        const float *x = inp + (size_t)c * n_hw, *g = dout + (size_t)c * n_hw;
        const float *yc = y ? y + (size_t)c * n_hw : NULL;
        const float m = save_mean[c], is = save_inv_std[c];
        double sg, sgd; /* sum dout, sum dout * (x - mean) */
        sum_g_gdev_y(g, yc, x, n_hw, m, &sg, &sgd);
        const double sgx = sgd * is; /* sum dout * xhat */
        if (dgamma)
            dgamma[c] += (float)sgx;
        if (dbeta)
            dbeta[c] += (float)sg;
        if (!dinp)
            continue;
        /* dinp += k * (g - mean(g) - (x - m) * is * mean(g * xhat)) = k*g + a*x + b */
        float *d = dinp + (size_t)c * n_hw;
        const float k = gamma[c] * is, mg = (float)(sg / (double)n_hw);
        const float q = (float)(sgx / (double)n_hw) * is;
        const grad_v4f kv = grad_splat4(k), mgv = grad_splat4(mg), qv = grad_splat4(q);
        const grad_v4f mv = grad_splat4(m);
        size_t i = 0;
        for (; i + 4 <= n_hw; i += 4) {
            const grad_v4f t = kv * (masked4(g, yc, i) - mgv - (grad_load4(x + i) - mv) * qv);
            grad_store4(d + i, add ? grad_load4(d + i) + t : t);
        }
        for (; i < n_hw; i++) {
            const float t = k * (masked1(g, yc, i) - mg - (x[i] - m) * q);
            d[i] = add ? d[i] + t : t;
        }
    }
}

void cnn_batchnorm_train_backward(float *dinp, float *dgamma, float *dbeta, const float *dout,
                                  const float *inp, const float *gamma, const float *save_mean,
                                  const float *save_inv_std, int C, size_t n_hw)
{
    bn_train_backward(dinp, dgamma, dbeta, dout, NULL, inp, gamma, save_mean, save_inv_std, C,
                      n_hw, 1);
}

void cnn_batchnorm_train_backward_set(float *dinp, float *dgamma, float *dbeta, const float *dout,
                                      const float *inp, const float *gamma,
                                      const float *save_mean, const float *save_inv_std, int C,
                                      size_t n_hw)
{
    bn_train_backward(dinp, dgamma, dbeta, dout, NULL, inp, gamma, save_mean, save_inv_std, C,
                      n_hw, 0);
}

void cnn_batchnorm_relu_train_backward(float *dinp, float *dgamma, float *dbeta, const float *dout,
                                       const float *out, const float *inp, const float *gamma,
                                       const float *save_mean, const float *save_inv_std, int C,
                                       size_t n_hw, int add)
{
    if (add) /* two calls: add is a constant in each inlined copy, as in the two above */
        bn_train_backward(dinp, dgamma, dbeta, dout, out, inp, gamma, save_mean, save_inv_std, C,
                          n_hw, 1);
    else
        bn_train_backward(dinp, dgamma, dbeta, dout, out, inp, gamma, save_mean, save_inv_std, C,
                          n_hw, 0);
}

void cnn_batchnorm_eval_backward(float *dinp, float *dgamma, float *dbeta, const float *dout,
                                 const float *inp, const float *gamma, const float *mean,
                                 const float *var, float eps, int C, size_t n_hw)
{
    for (int c = 0; c < C; c++) {
        const float *x = inp + (size_t)c * n_hw, *g = dout + (size_t)c * n_hw;
        const float is = (float)(1.0 / sqrt((double)var[c] + (double)eps)), m = mean[c];
        if (dgamma || dbeta) {
            double sg, sgd;
            sum_g_gdev(g, x, n_hw, m, &sg, &sgd);
            if (dgamma)
                dgamma[c] += (float)(sgd * is);
            if (dbeta)
                dbeta[c] += (float)sg;
        }
        if (dinp) {
            float *d = dinp + (size_t)c * n_hw;
            const float k = gamma[c] * is;
            const grad_v4f kv = grad_splat4(k);
            size_t i = 0;
            for (; i + 4 <= n_hw; i += 4)
                grad_store4(d + i, grad_load4(d + i) + kv * grad_load4(g + i));
            for (; i < n_hw; i++)
                d[i] += k * g[i];
        }
    }
}

/* splitmix64 (Steele, Lea, Flood 2014): one 64-bit draw per call, any seed is fine. */
static uint64_t next_u64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static float keep_scale(float rate)
{
    return rate < 1.0f ? 1.0f / (1.0f - rate) : 0.0f;
}

void cnn_dropout_train_forward(float *out, uint8_t *mask, const float *inp, float rate, size_t n,
                               uint64_t *rng)
{
    /* Keep a unit when its 24-bit uniform u satisfies u >= rate * 2^24: P(keep) = 1 - rate
     * to 2^-24, exactly 1 at rate 0 and 0 at rate 1. */
    const double t = (double)rate * 16777216.0;
    const uint32_t thr = t <= 0.0 ? 0u : (t >= 16777216.0 ? 16777216u : (uint32_t)t);
    const float scale = keep_scale(rate);
    for (size_t i = 0; i < n; i++) {
        const uint8_t keep = (uint32_t)(next_u64(rng) >> 40) >= thr;
        mask[i] = keep;
        out[i] = inp[i] * ((float)keep * scale); /* x * mask * scale, as PyTorch */
    }
}

void cnn_dropout_backward(float *dinp, const float *dout, const uint8_t *mask, float rate, size_t n)
{
    const float scale = keep_scale(rate);
    for (size_t i = 0; i < n; i++)
        dinp[i] += dout[i] * ((float)mask[i] * scale);
}

size_t cnn_lrn_backward_scratch_floats(int C, size_t n_hw)
{
    size_t n;
    if (C < 0 || __builtin_mul_overflow((size_t)C + 1, n_hw, &n))
        return SIZE_MAX;
    return n;
}

/* With s_i = k + a * sum of x_j^2 over the window of channel i (a = alpha/size) and
 * y_i = x_i * s_i^-beta:
 *   dx_j = dy_j * s_j^-beta - 2 a beta x_j * sum over channels i whose window holds j of
 *          t_i,  t_i = dy_i * x_i * s_i^(-beta-1).
 * Channel i's window is [i - (size-1)/2, i + size/2], so j is in it for
 * i in [j - size/2, j + (size-1)/2].  scratch: t (C, n_hw) then one s row (n_hw). */
void cnn_lrn_backward(float *dinp, const float *dout, const float *inp, float *scratch,
                      const struct cnn_lrn *p, int C, size_t n_hw)
{
    const float a = p->alpha / (float)p->size, beta = p->beta;
    float *t = scratch, *s = scratch + (size_t)C * n_hw;
    for (int c = 0; c < C; c++) {
        int lo = c - (p->size - 1) / 2, hi = c + p->size / 2;
        lo = lo < 0 ? 0 : lo;
        hi = hi > C - 1 ? C - 1 : hi;
        for (size_t i = 0; i < n_hw; i++)
            s[i] = 0.0f;
        for (int j = lo; j <= hi; j++) {
            const float *x = inp + (size_t)j * n_hw;
            for (size_t i = 0; i < n_hw; i++)
                s[i] += x[i] * x[i];
        }
        const float *x = inp + (size_t)c * n_hw, *g = dout + (size_t)c * n_hw;
        float *tc = t + (size_t)c * n_hw, *d = dinp + (size_t)c * n_hw;
        const int three_quarters = beta == 0.75f; /* the forward's fast path, same values */
        for (size_t i = 0; i < n_hw; i++) {
            const float si = p->k + a * s[i];
            const float pw = three_quarters ? 1.0f / sqrtf(si * sqrtf(si)) : powf(si, -beta);
            d[i] += g[i] * pw;
            tc[i] = g[i] * x[i] * pw / si;
        }
    }
    const float f = -2.0f * a * beta;
    for (int c = 0; c < C; c++) {
        int lo = c - p->size / 2, hi = c + (p->size - 1) / 2;
        lo = lo < 0 ? 0 : lo;
        hi = hi > C - 1 ? C - 1 : hi;
        for (size_t i = 0; i < n_hw; i++)
            s[i] = 0.0f;
        for (int j = lo; j <= hi; j++) {
            const float *tj = t + (size_t)j * n_hw;
            for (size_t i = 0; i < n_hw; i++)
                s[i] += tj[i];
        }
        const float *x = inp + (size_t)c * n_hw;
        float *d = dinp + (size_t)c * n_hw;
        for (size_t i = 0; i < n_hw; i++)
            d[i] += f * x[i] * s[i];
    }
}
