/* Fully connected backward for a batch in the (OUT, N) / (IN, N) layout: one SGEMM for the
 * weight gradient, one for the input gradient, and row sums for the bias. */
#include "gemm.h"
#include "grad.h"

#include <stddef.h>

void cnn_dense_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                        const float *w, const struct cnn_dense *p, int N)
{
    if (dw) /* dw (OUT, IN) += dout (OUT, N) * inp^T (N, IN) */
        cnn_gemm(0, 1, p->out, p->in, N, 1.0f, dout, N, inp, N, 1.0f, dw, p->in);
    if (dinp) /* dinp (IN, N) += w^T (IN, OUT) * dout (OUT, N) */
        cnn_gemm(1, 0, p->in, N, p->out, 1.0f, w, p->in, dout, N, 1.0f, dinp, N);
    if (db)
        for (int o = 0; o < p->out; o++) {
            const float *row = dout + (size_t)o * N;
            double s = 0.0;
            for (int n = 0; n < N; n++)
                s += row[n];
            db[o] += (float)s;
        }
}
