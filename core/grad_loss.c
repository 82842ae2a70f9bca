/* Losses and their gradients: softmax cross-entropy fused with its gradient (logits in
 * the (K, N) dense layout) and mean squared error. */
#include "grad.h"

#include <math.h>
#include <stddef.h>

int cnn_softmax_xent(float *loss, float *dlogits, int *correct, const float *logits,
                     const int *labels, int K, int N, struct cnn_err *err)
{
    if (K < 1 || N < 1)
        return cnn_err_set(err, CNN_EINVAL, "softmax_xent: %d classes x %d items", K, N);
    for (int n = 0; n < N; n++)
        if (labels[n] < 0 || labels[n] >= K)
            return cnn_err_set(err, CNN_EINVAL, "softmax_xent: label %d of item %d not in [0, %d)",
                               labels[n], n, K);
    double total = 0.0;
    int hits = 0;
    const float inv_n = 1.0f / (float)N;
    for (int n = 0; n < N; n++) {
        const float *l = logits + n; /* class k at l[k * N] */
        int best = 0;
        for (int k = 1; k < K; k++)
            best = l[(size_t)k * N] > l[(size_t)best * N] ? k : best;
        const double m = l[(size_t)best * N];
        double sum = 0.0;
        for (int k = 0; k < K; k++)
            sum += exp(l[(size_t)k * N] - m);
        total += m + log(sum) - l[(size_t)labels[n] * N];
        hits += best == labels[n];
        if (dlogits) {
            float *d = dlogits + n;
            for (int k = 0; k < K; k++)
                d[(size_t)k * N] = (float)(exp(l[(size_t)k * N] - m) / sum) * inv_n;
            d[(size_t)labels[n] * N] -= inv_n;
        }
    }
    if (loss)
        *loss = (float)(total / N);
    if (correct)
        *correct = hits;
    return 0;
}

float cnn_mse_loss(float *dpred, const float *pred, const float *target, size_t count)
{
    if (count == 0)
        return 0.0f;
    double s = 0.0;
    const float k = 2.0f / (float)count;
    for (size_t i = 0; i < count; i++) {
        const float e = pred[i] - target[i];
        s += (double)e * e;
        if (dpred)
            dpred[i] = k * e;
    }
    return (float)(s / (double)count);
}
