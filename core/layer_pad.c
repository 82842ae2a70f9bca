/* Constant padding of H and W (ONNX Pad, mode constant, pads on the two spatial axes): a
 * border of pad_t / pad_l / pad_b / pad_r positions holding `value`; a negative pad crops
 * that many rows or columns instead, as ONNX allows.  Its kernels and the pad row of the
 * layer-kind table (layer_kind.h). */
#include "layer.h"
#include "layer_kind.h"
#include "train_internal.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

/* The input columns [x0, x1) that land in the output, and where the first one lands. */
struct pad_cols {
    int x0, x1, ox0;
};

static struct pad_cols pad_cols(const struct cnn_pad *p, int W)
{
    struct pad_cols c;
    c.x0 = p->pad_l < 0 ? -p->pad_l : 0;
    c.x1 = p->pad_r < 0 ? W + p->pad_r : W;
    c.ox0 = c.x0 + p->pad_l;
    return c;
}

void cnn_pad_forward(float *out, const float *inp, const struct cnn_pad *p, size_t planes, int H,
                     int W)
{
    const int OH = H + p->pad_t + p->pad_b, OW = W + p->pad_l + p->pad_r;
    const struct pad_cols c = pad_cols(p, W);
    for (size_t pl = 0; pl < planes; pl++) {
        const float *x = inp + pl * (size_t)H * W;
        float *y = out + pl * (size_t)OH * OW;
        for (int oy = 0; oy < OH; oy++) {
            float *row = y + (size_t)oy * OW;
            const int iy = oy - p->pad_t;
            if (iy < 0 || iy >= H) {
                for (int ox = 0; ox < OW; ox++)
                    row[ox] = p->value;
                continue;
            }
            for (int ox = 0; ox < c.ox0; ox++)
                row[ox] = p->value;
            memcpy(row + c.ox0, x + (size_t)iy * W + c.x0, (size_t)(c.x1 - c.x0) * sizeof(float));
            for (int ox = c.ox0 + c.x1 - c.x0; ox < OW; ox++)
                row[ox] = p->value;
        }
    }
}

void cnn_pad_backward(float *dinp, const float *dout, const struct cnn_pad *p, size_t planes, int H,
                      int W)
{
    const int OH = H + p->pad_t + p->pad_b, OW = W + p->pad_l + p->pad_r;
    const struct pad_cols c = pad_cols(p, W);
    const int y0 = p->pad_t < 0 ? -p->pad_t : 0, y1 = p->pad_b < 0 ? H + p->pad_b : H;
    for (size_t pl = 0; pl < planes; pl++) {
        float *d = dinp + pl * (size_t)H * W;
        const float *g = dout + pl * (size_t)OH * OW;
        for (int iy = y0; iy < y1; iy++) {
            const float *grow = g + (size_t)(iy + p->pad_t) * OW + c.ox0;
            float *drow = d + (size_t)iy * W;
            for (int x = c.x0; x < c.x1; x++)
                drow[x] += grow[x - c.x0];
        }
    }
}

/* ---- the pad row --------------------------------------------------------------------- */

#define PAD(f) offsetof(struct cnn_pad, f)
static const struct cnn_layer_field pad_fields[] = {
    {"pad_t", CNN_FIELD_INT, PAD(pad_t)},   {"pad_l", CNN_FIELD_INT, PAD(pad_l)},
    {"pad_b", CNN_FIELD_INT, PAD(pad_b)},   {"pad_r", CNN_FIELD_INT, PAD(pad_r)},
    {"value", CNN_FIELD_FLOAT, PAD(value)},
};

/* One axis: in + lo + hi in 1..CNN_MAX_DIM, each pad above -in, computed without overflow. */
static int pad_axis_ok(int in, int lo, int hi)
{
    const long long out = (long long)in + lo + hi;
    return lo > -in && hi > -in && lo <= CNN_MAX_DIM && hi <= CNN_MAX_DIM && out >= 1 &&
           out <= CNN_MAX_DIM;
}

static int pad_infer(const struct cnn_model *m, struct cnn_layer *l, struct cnn_err *err)
{
    const struct cnn_layer *in = cnn_layer_input(m, l, 0);
    const struct cnn_pad *p = &l->p.pad;
    if (!pad_axis_ok(in->h, p->pad_t, p->pad_b) || !pad_axis_ok(in->w, p->pad_l, p->pad_r))
        return cnn_err_set(err, CNN_EINVAL,
                           "layer %s: pads %d,%d,%d,%d (t,l,b,r) do not fit a %dx%d input", l->name,
                           p->pad_t, p->pad_l, p->pad_b, p->pad_r, in->h, in->w);
    if (!isfinite(p->value))
        return cnn_err_set(err, CNN_EINVAL, "layer %s: pad value not finite", l->name);
    l->c = in->c;
    l->h = in->h + p->pad_t + p->pad_b;
    l->w = in->w + p->pad_l + p->pad_r;
    return 0;
}

static void pad_run(const struct cnn_model *m, const struct cnn_op *op, const struct cnn_op_run *r)
{
    const struct cnn_layer *il = &m->layers[op->inputs[0]];
    cnn_pad_forward(r->out, r->in[0], &m->layers[op->layer].p.pad, (size_t)il->c * (size_t)r->n,
                    il->h, il->w);
}

/* Planes (channel, item) [lo, hi) of input and output. */
static int pad_train_forward(const struct train_fwd_job *job, int part, int parts,
                             struct cnn_err *err)
{
    (void)err;
    const struct train_view v = train_view(job->t, job->i, job->n);
    const size_t out_plane = (size_t)v.l->h * (size_t)v.l->w;
    size_t lo, hi;
    cnn_part_range((size_t)v.il->c * (size_t)job->n, part, parts, &lo, &hi);
    cnn_pad_forward(v.dst + lo * out_plane, v.in + lo * v.hw, &v.l->p.pad, hi - lo, v.il->h,
                    v.il->w);
    return 0;
}

static void pad_train_backward(const struct train_bwd_job *job, int part, int parts)
{
    const struct train_view v = train_view(job->t, job->i, job->n);
    const size_t out_plane = (size_t)v.l->h * (size_t)v.l->w;
    size_t lo, hi;
    cnn_part_range((size_t)v.il->c * (size_t)job->n, part, parts, &lo, &hi);
    train_zero_fresh(job, 0, v.dinp, lo * v.hw, (hi - lo) * v.hw);
    if (v.dinp)
        cnn_pad_backward(v.dinp + lo * v.hw, job->dout + lo * out_plane, &v.l->p.pad, hi - lo,
                         v.il->h, v.il->w);
}

const struct cnn_layer_kind_ops cnn_kind_pad = {
    .name = "pad",
    .fields = pad_fields,
    .n_fields = (int)(sizeof pad_fields / sizeof pad_fields[0]),
    .infer = pad_infer,
    .run = pad_run,
    .train_forward = pad_train_forward,
    .train_backward = pad_train_backward,
};
