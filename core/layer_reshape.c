/* The reshape row of the layer-kind table (layer_kind.h): each channel's H x W plane read
 * as h x w (h * w = H * W).  In the (C, N, H, W) layout that is the same memory, so at
 * inference it is an alias of its input; the trainer copies forward and passes the gradient
 * back unchanged.  What ONNX Reshape/Unsqueeze/Squeeze between (N, C, L), (N, C, L, 1) and
 * (N, C, H, W) of the same planes become. */
#include "grad.h"
#include "layer.h"
#include "layer_kind.h"
#include "train_internal.h"

#include <stddef.h>
#include <string.h>

static const struct cnn_layer_field reshape_fields[] = {
    {"h", CNN_FIELD_INT, offsetof(struct cnn_reshape, h)},
    {"w", CNN_FIELD_INT, offsetof(struct cnn_reshape, w)},
};

static int reshape_infer(const struct cnn_model *m, struct cnn_layer *l, struct cnn_err *err)
{
    const struct cnn_layer *in = cnn_layer_input(m, l, 0);
    const struct cnn_reshape *p = &l->p.reshape;
    if (p->h < 1 || p->w < 1 || (long long)p->h * p->w != (long long)in->h * in->w)
        return cnn_err_set(err, CNN_EINVAL, "layer %s: reshape %dx%d of a %dx%d plane", l->name,
                           p->h, p->w, in->h, in->w);
    l->c = in->c, l->h = p->h, l->w = p->w;
    return 0;
}

static int always_alias(const struct cnn_model *m, const struct cnn_layer *l)
{
    (void)m, (void)l;
    return 1;
}

static void reshape_run(const struct cnn_model *m, const struct cnn_op *op,
                        const struct cnn_op_run *r)
{
    (void)m, (void)op, (void)r; /* an alias: never in the plan */
}

static int reshape_train_forward(const struct train_fwd_job *job, int part, int parts,
                                 struct cnn_err *err)
{
    (void)err;
    const struct train_view v = train_view(job->t, job->i, job->n);
    size_t lo, hi;
    cnn_part_range(v.count, part, parts, &lo, &hi);
    memcpy(v.dst + lo, v.in + lo, (hi - lo) * sizeof(float));
    return 0;
}

static void reshape_train_backward(const struct train_bwd_job *job, int part, int parts)
{
    const struct train_view v = train_view(job->t, job->i, job->n);
    size_t lo, hi;
    cnn_part_range(v.count, part, parts, &lo, &hi);
    train_zero_fresh(job, 0, v.dinp, lo, hi - lo);
    if (v.dinp)
        cnn_grad_accumulate(v.dinp + lo, job->dout + lo, hi - lo);
}

const struct cnn_layer_kind_ops cnn_kind_reshape = {
    .name = "reshape",
    .fields = reshape_fields,
    .n_fields = 2,
    .infer = reshape_infer,
    .is_alias = always_alias,
    .run = reshape_run,
    .train_forward = reshape_train_forward,
    .train_backward = reshape_train_backward,
};
