/* Global max pooling (ONNX GlobalMaxPool): the max of each channel plane, (C, H, W) ->
 * (C, 1, 1); the gradient goes to the first maximum of the plane, as in maxpool.  Its
 * kernels and the global_maxpool row of the layer-kind table (layer_kind.h). */
#include "layer.h"
#include "layer_kind.h"
#include "train_internal.h"

#include <stddef.h>

/* Index of the first maximum of x[0..n), n >= 1 (a NaN never wins, as in maxpool). */
static size_t argmax(const float *x, size_t n)
{
    size_t best = 0;
    for (size_t i = 1; i < n; i++)
        best = x[i] > x[best] ? i : best;
    return best;
}

void cnn_global_maxpool_forward(float *out, const float *inp, size_t planes, size_t hw)
{
    for (size_t p = 0; p < planes; p++) {
        const float *x = inp + p * hw;
        float m = x[0];
        for (size_t i = 1; i < hw; i++)
            m = x[i] > m ? x[i] : m;
        out[p] = m;
    }
}

void cnn_global_maxpool_backward(float *dinp, const float *dout, const float *inp, size_t planes,
                                 size_t hw)
{
    for (size_t p = 0; p < planes; p++)
        dinp[p * hw + argmax(inp + p * hw, hw)] += dout[p];
}

/* ---- the global_maxpool row ---------------------------------------------------------- */

static int gmp_infer(const struct cnn_model *m, struct cnn_layer *l, struct cnn_err *err)
{
    (void)err;
    l->c = cnn_layer_input(m, l, 0)->c;
    l->h = l->w = 1;
    return 0;
}

static void gmp_run(const struct cnn_model *m, const struct cnn_op *op, const struct cnn_op_run *r)
{
    const struct cnn_layer *il = &m->layers[op->inputs[0]];
    cnn_global_maxpool_forward(r->out, r->in[0], (size_t)il->c * (size_t)r->n,
                               (size_t)il->h * (size_t)il->w);
}

/* Planes (channel, item) [lo, hi). */
static int gmp_train_forward(const struct train_fwd_job *job, int part, int parts,
                             struct cnn_err *err)
{
    (void)err;
    const struct train_view v = train_view(job->t, job->i, job->n);
    size_t lo, hi;
    cnn_part_range((size_t)v.il->c * (size_t)job->n, part, parts, &lo, &hi);
    cnn_global_maxpool_forward(v.dst + lo, v.in + lo * v.hw, hi - lo, v.hw);
    return 0;
}

static void gmp_train_backward(const struct train_bwd_job *job, int part, int parts)
{
    const struct train_view v = train_view(job->t, job->i, job->n);
    size_t lo, hi;
    cnn_part_range((size_t)v.il->c * (size_t)job->n, part, parts, &lo, &hi);
    train_zero_fresh(job, 0, v.dinp, lo * v.hw, (hi - lo) * v.hw);
    if (v.dinp)
        cnn_global_maxpool_backward(v.dinp + lo * v.hw, job->dout + lo, v.in + lo * v.hw, hi - lo,
                                    v.hw);
}

const struct cnn_layer_kind_ops cnn_kind_global_maxpool = {
    .name = "global_maxpool",
    .infer = gmp_infer,
    .run = gmp_run,
    .train_forward = gmp_train_forward,
    .train_backward = gmp_train_backward,
};
