/* Fully connected forward for a batch: out (OUT, N) = w (OUT, IN) * inp (IN, N) in one
 * SGEMM, then one pass adding bias and the fused activation per output row. */
#include "gemm.h"
#include "layer.h"

#include <stddef.h>

void cnn_dense_forward(float *out, const float *inp, const float *w, const float *b,
                       const struct cnn_dense *p, int N)
{
    cnn_gemm(0, 0, p->out, N, p->in, 1.0f, w, p->in, inp, N, 0.0f, out, N);
    if (!b && p->act.kind == CNN_ACT_NONE)
        return;
    for (int o = 0; o < p->out; o++) {
        float *row = out + (size_t)o * N;
        if (b)
            for (int n = 0; n < N; n++)
                row[n] += b[o];
        cnn_act_apply(row, (size_t)N, &p->act);
    }
}
