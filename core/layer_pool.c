/* Max and average pooling over (C, N, H, W): each of the C*N planes on its own, with
 * asymmetric padding, ceil mode and count_include_pad as in PyTorch (max pooling also with
 * dilation, ONNX MaxPool's dilations).  Window bounds are
 * clipped once per output row/column, so the inner loops only touch real pixels.  Then the
 * maxpool, avgpool and global_avgpool rows of the layer-kind table (layer_kind.h). */
#include "avx512.h"
#include "grad.h"
#include "layer.h"
#include "layer_kind.h"
#include "layer_pool_avx512.h"
#include "train_internal.h"

#include <math.h>
#include <stddef.h>
#include <string.h>
#if defined(__SSE__)
#include <immintrin.h>
#endif

/* Rows wider than CNN_MAXPOOL_ROW_MAX take the direct path; narrower ones first take the
 * max down the window's rows into a stack row (a vectorisable elementwise max), then across
 * it. */

typedef float v4f __attribute__((vector_size(16)));
typedef int v4i __attribute__((vector_size(16)));

/* m[x] = max(m[x], row[x]), four lanes at a time (-O2 leaves this loop scalar). */
static void max_into(float *restrict m, const float *restrict row, int n)
{
    int x = 0;
    for (; x + 4 <= n; x += 4) {
        v4f a, b;
        memcpy(&a, row + x, sizeof a);
        memcpy(&b, m + x, sizeof b);
        v4i gt = a > b;
        v4f r = (v4f)((gt & (v4i)a) | (~gt & (v4i)b));
        memcpy(m + x, &r, sizeof r);
    }
    for (; x < n; x++)
        m[x] = row[x] > m[x] ? row[x] : m[x];
}

/* o[ox] = max of rowmax over the window of column ox, for ox in [lo, hi): the windows there
 * lie inside the row, so no clipping; 3-wide stride-2 windows (ResNet's stem pool) 16
 * outputs at a time on AVX-512 (ResNet-18 at batch 1 on 2 threads: the pool 0.127 -> 0.114 ms),
 * then four at a time.  _mm_max_ps(a, b) is a > b ? a : b, the scalar loop's comparison. */
static void max_cols_inside(float *o, const float *rowmax, const struct cnn_pool2d *p, int lo,
                            int hi, int avx512)
{
    const int kw = p->kw, sw = p->sw;
    int ox = lo;
    if (avx512 && kw == 3 && sw == 2)
        ox += cnn_max_cols3s2_avx512(o + ox, rowmax + 2 * ox - p->pad_l, hi - ox,
                                     p->w - (2 * ox - p->pad_l));
#if defined(__SSE__)
    if (kw == 3 && sw == 2) {
        for (; ox + 4 <= hi; ox += 4) { /* reads x0 .. x0 + 8: the last window's end */
            const float *r = rowmax + 2 * ox - p->pad_l;
            const __m128 a = _mm_loadu_ps(r), b = _mm_loadu_ps(r + 4), c = _mm_loadu_ps(r + 5);
            const __m128 ev = _mm_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));  /* r0 r2 r4 r6 */
            const __m128 od = _mm_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));  /* r1 r3 r5 r7 */
            const __m128 ev2 = _mm_shuffle_ps(ev, c, _MM_SHUFFLE(3, 1, 2, 1)); /* r2 r4 r6 r8 */
            _mm_storeu_ps(o + ox, _mm_max_ps(ev2, _mm_max_ps(od, ev)));
        }
    }
#endif
    for (; ox < hi; ox++) {
        const float *r = rowmax + ox * sw - p->pad_l;
        float m = r[0];
        for (int x = 1; x < kw; x++)
            m = r[x] > m ? r[x] : m;
        o[ox] = m;
    }
}

void cnn_maxpool_plane_rows(float *o, const float *in, int in_y0, const struct cnn_pool2d *p,
                            int oy_lo, int oy_hi)
{
    float rowmax[CNN_MAXPOOL_ROW_MAX];
    const int W = p->w, avx512 = cnn_cpu_avx512();
    /* columns whose window is inside the row: ox * sw >= pad_l, ox * sw - pad_l + kw <= W */
    int lo = (p->pad_l + p->sw - 1) / p->sw;
    int hi = W + p->pad_l - p->kw < 0 ? 0 : (W + p->pad_l - p->kw) / p->sw + 1;
    hi = hi < p->ow ? hi : p->ow;
    lo = lo < hi ? lo : hi;
    o += (size_t)oy_lo * p->ow;
    for (int oy = oy_lo; oy < oy_hi; oy++, o += p->ow) {
        int y0, y1;
        cnn_pool_window(oy, p->sh, p->pad_t, p->pad_b, p->kh, p->h, &y0, &y1);
        memcpy(rowmax, in + (size_t)(y0 - in_y0) * W, sizeof(float) * (size_t)W);
        for (int y = y0 + 1; y < y1; y++)
            if (avx512)
                cnn_max_into_avx512(rowmax, in + (size_t)(y - in_y0) * W, W);
            else
                max_into(rowmax, in + (size_t)(y - in_y0) * W, W);
        max_cols_inside(o, rowmax, p, lo, hi, avx512);
        for (int ox = 0; ox < p->ow; ox++) {
            if (ox == lo)
                ox = hi;
            if (ox >= p->ow)
                break;
            int x0, x1;
            cnn_pool_window(ox, p->sw, p->pad_l, p->pad_r, p->kw, W, &x0, &x1);
            float m = rowmax[x0];
            for (int x = x0 + 1; x < x1; x++)
                m = rowmax[x] > m ? rowmax[x] : m;
            o[ox] = m;
        }
    }
}

#if defined(__SSE__)
/* max(x[2i], x[2i+1]) for i < 4 from the 8 floats at x; _mm_max_ps(a, b) is a > b ? a : b,
 * the scalar loop's comparison, so NaN goes the same way. */
static inline __m128 pair_max(const float *x)
{
    const __m128 lo = _mm_loadu_ps(x), hi = _mm_loadu_ps(x + 4);
    return _mm_max_ps(_mm_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0)),
                      _mm_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1)));
}
#endif

static void maxpool_plane_2x2(float *restrict o, const float *restrict in,
                              const struct cnn_pool2d *p)
{
    const int W = p->w;
    for (int oy = 0; oy < p->oh; oy++) {
        const float *r0 = in + (size_t)(2 * oy) * W, *r1 = r0 + W;
        int ox = 0;
#if defined(__SSE__)
        for (; ox + 4 <= p->ow; ox += 4, o += 4) /* 8 input columns, all inside the row */
            _mm_storeu_ps(o, _mm_max_ps(pair_max(r0 + 2 * ox), pair_max(r1 + 2 * ox)));
#endif
        for (; ox < p->ow; ox++) {
            float a = r0[2 * ox] > r0[2 * ox + 1] ? r0[2 * ox] : r0[2 * ox + 1];
            float b = r1[2 * ox] > r1[2 * ox + 1] ? r1[2 * ox] : r1[2 * ox + 1];
            *o++ = a > b ? a : b;
        }
    }
}

long cnn_maxpool_dilated_argmax(const float *plane, const struct cnn_pool2d *p, int oy, int ox)
{
    const int dh = cnn_pool_dil(p->dh), dw = cnn_pool_dil(p->dw);
    const int y0 = oy * p->sh - p->pad_t, x0 = ox * p->sw - p->pad_l;
    long best = -1;
    for (int i = 0; i < p->kh; i++) {
        const int y = y0 + i * dh;
        if (y < 0 || y >= p->h)
            continue;
        for (int j = 0; j < p->kw; j++) {
            const int x = x0 + j * dw;
            const long at = (long)y * p->w + x;
            if (x >= 0 && x < p->w && (best < 0 || plane[at] > plane[best]))
                best = at;
        }
    }
    return best;
}

static void maxpool_plane_dilated(float *o, const float *in, const struct cnn_pool2d *p)
{
    for (int oy = 0; oy < p->oh; oy++)
        for (int ox = 0; ox < p->ow; ox++) {
            const long at = cnn_maxpool_dilated_argmax(in, p, oy, ox);
            *o++ = at < 0 ? -INFINITY : in[at];
        }
}

void cnn_maxpool_forward(float *out, const float *inp, const struct cnn_pool2d *p, int N)
{
    const size_t planes = (size_t)p->c * N, in_plane = (size_t)p->h * p->w;
    const int plain_2x2 = cnn_pool2d_is_plain_2x2(p);
    const int dilated = cnn_pool_dil(p->dh) > 1 || cnn_pool_dil(p->dw) > 1;
    for (size_t pl = 0; pl < planes; pl++) {
        const float *in = inp + pl * in_plane;
        float *o = out + pl * (size_t)p->oh * p->ow;
        if (plain_2x2) {
            maxpool_plane_2x2(o, in, p);
            continue;
        }
        if (dilated) {
            maxpool_plane_dilated(o, in, p);
            continue;
        }
        if (p->w <= CNN_MAXPOOL_ROW_MAX) {
            cnn_maxpool_plane_rows(o, in, 0, p, 0, p->oh);
            continue;
        }
        for (int oy = 0; oy < p->oh; oy++) {
            int y0, y1;
            cnn_pool_window(oy, p->sh, p->pad_t, p->pad_b, p->kh, p->h, &y0, &y1);
            for (int ox = 0; ox < p->ow; ox++) {
                int x0, x1;
                cnn_pool_window(ox, p->sw, p->pad_l, p->pad_r, p->kw, p->w, &x0, &x1);
                /* Shape rules (pad < kernel) guarantee a non-empty window. */
                float m = in[(size_t)y0 * p->w + x0];
                for (int y = y0; y < y1; y++) {
                    const float *row = in + (size_t)y * p->w;
                    for (int x = x0; x < x1; x++)
                        m = row[x] > m ? row[x] : m;
                }
                *o++ = m;
            }
        }
    }
}

void cnn_avgpool_forward(float *out, const float *inp, const struct cnn_pool2d *p, int N)
{
    const size_t planes = (size_t)p->c * N, in_plane = (size_t)p->h * p->w;
    for (size_t pl = 0; pl < planes; pl++) {
        const float *in = inp + pl * in_plane;
        float *o = out + pl * (size_t)p->oh * p->ow;
        for (int oy = 0; oy < p->oh; oy++) {
            int y0, y1;
            int ph = cnn_pool_window(oy, p->sh, p->pad_t, p->pad_b, p->kh, p->h, &y0, &y1);
            for (int ox = 0; ox < p->ow; ox++) {
                int x0, x1;
                int pw = cnn_pool_window(ox, p->sw, p->pad_l, p->pad_r, p->kw, p->w, &x0, &x1);
                float sum = 0.0f;
                for (int y = y0; y < y1; y++) {
                    const float *row = in + (size_t)y * p->w;
                    for (int x = x0; x < x1; x++)
                        sum += row[x];
                }
                int count = p->count_include_pad ? ph * pw : (y1 - y0) * (x1 - x0);
                *o++ = count > 0 ? sum / (float)count : 0.0f;
            }
        }
    }
}

/* ---- the maxpool, avgpool and global_avgpool rows ------------------------------------ */

#define POOL(f) offsetof(struct cnn_pool2d, f)
static const struct cnn_layer_field pool_fields[] = {
    {"kh", CNN_FIELD_INT, POOL(kh)},
    {"kw", CNN_FIELD_INT, POOL(kw)},
    {"sh", CNN_FIELD_INT, POOL(sh)},
    {"sw", CNN_FIELD_INT, POOL(sw)},
    {"pad_t", CNN_FIELD_INT, POOL(pad_t)},
    {"pad_l", CNN_FIELD_INT, POOL(pad_l)},
    {"pad_b", CNN_FIELD_INT, POOL(pad_b)},
    {"pad_r", CNN_FIELD_INT, POOL(pad_r)},
    {"ceil_mode", CNN_FIELD_FLAG, POOL(ceil_mode)},
    {"count_include_pad", CNN_FIELD_FLAG, POOL(count_include_pad)},
    {"dh", CNN_FIELD_INT, POOL(dh)},
    {"dw", CNN_FIELD_INT, POOL(dw)},
};

static int pool_infer(const struct cnn_model *m, struct cnn_layer *l, struct cnn_err *err)
{
    const struct cnn_layer *in = cnn_layer_input(m, l, 0);
    struct cnn_pool2d *p = &l->p.pool;
    p->c = in->c, p->h = in->h, p->w = in->w;
    if (l->kind == CNN_LAYER_AVGPOOL && (cnn_pool_dil(p->dh) > 1 || cnn_pool_dil(p->dw) > 1))
        return cnn_err_set(err, CNN_EINVAL, "layer %s: avgpool has no dilation (%dx%d)", l->name,
                           p->dh, p->dw);
    int rc = cnn_pool2d_shape(p, err);
    if (rc)
        return rc;
    l->c = in->c, l->h = p->oh, l->w = p->ow;
    return 0;
}

static void maxpool_run(const struct cnn_model *m, const struct cnn_op *op,
                        const struct cnn_op_run *r)
{
    cnn_maxpool_forward(r->out, r->in[0], &m->layers[op->layer].p.pool, r->n);
}

static void avgpool_run(const struct cnn_model *m, const struct cnn_op *op,
                        const struct cnn_op_run *r)
{
    cnn_avgpool_forward(r->out, r->in[0], &m->layers[op->layer].p.pool, r->n);
}

/* Channels [lo, lo + q.c) of part. */
static void pool_run_part(const struct cnn_model *m, const struct cnn_op *op,
                          const struct cnn_op_run *r, int part, int parts)
{
    const struct cnn_layer *l = &m->layers[op->layer];
    size_t lo;
    const struct cnn_pool2d q = train_pool_part(&l->p.pool, part, parts, &lo);
    const size_t out_chan = (size_t)l->h * l->w * (size_t)r->n;
    const size_t in_chan = (size_t)q.h * q.w * (size_t)r->n;
    if (q.c == 0)
        return;
    if (l->kind == CNN_LAYER_MAXPOOL)
        cnn_maxpool_forward(r->out + lo * out_chan, r->in[0] + lo * in_chan, &q, r->n);
    else
        cnn_avgpool_forward(r->out + lo * out_chan, r->in[0] + lo * in_chan, &q, r->n);
}

/* Channels [lo, lo + q.c) of part. */
static int pool_train_forward(const struct train_fwd_job *job, int part, int parts,
                              struct cnn_err *err)
{
    (void)err;
    const struct train_view v = train_view(job->t, job->i, job->n);
    size_t lo;
    const struct cnn_pool2d q = train_pool_part(&v.l->p.pool, part, parts, &lo);
    const size_t out_chan = (size_t)v.l->h * v.l->w * (size_t)job->n;
    if (q.c == 0)
        return 0;
    if (v.l->kind == CNN_LAYER_MAXPOOL)
        cnn_maxpool_forward(v.dst + lo * out_chan, v.in + lo * v.n_hw, &q, job->n);
    else
        cnn_avgpool_forward(v.dst + lo * out_chan, v.in + lo * v.n_hw, &q, job->n);
    return 0;
}

static void pool_train_backward(const struct train_bwd_job *job, int part, int parts)
{
    const struct train_view v = train_view(job->t, job->i, job->n);
    size_t lo;
    const struct cnn_pool2d q = train_pool_part(&v.l->p.pool, part, parts, &lo);
    const size_t out_chan = (size_t)v.l->h * v.l->w * (size_t)job->n;
    if (!v.dinp || q.c == 0)
        return;
    if (v.l->kind == CNN_LAYER_MAXPOOL && job->fresh[0]) { /* written outright */
        cnn_maxpool_backward_set(v.dinp + lo * v.n_hw, job->dout + lo * out_chan,
                                 v.in + lo * v.n_hw, &q, job->n);
        return;
    }
    train_zero_fresh(job, 0, v.dinp, lo * v.n_hw, (size_t)q.c * v.n_hw);
    if (v.l->kind == CNN_LAYER_MAXPOOL)
        cnn_maxpool_backward(v.dinp + lo * v.n_hw, job->dout + lo * out_chan, v.in + lo * v.n_hw,
                             &q, job->n);
    else
        cnn_avgpool_backward(v.dinp + lo * v.n_hw, job->dout + lo * out_chan, &q, job->n);
}

const struct cnn_layer_kind_ops cnn_kind_maxpool = {
    .name = "maxpool",
    .fields = pool_fields,
    .n_fields = (int)(sizeof pool_fields / sizeof pool_fields[0]),
    .infer = pool_infer,
    .run = maxpool_run,
    .run_part = pool_run_part,
    .train_forward = pool_train_forward,
    .train_backward = pool_train_backward,
};

const struct cnn_layer_kind_ops cnn_kind_avgpool = {
    .name = "avgpool",
    .fields = pool_fields,
    .n_fields = (int)(sizeof pool_fields / sizeof pool_fields[0]),
    .infer = pool_infer,
    .run = avgpool_run,
    .run_part = pool_run_part,
    .train_forward = pool_train_forward,
    .train_backward = pool_train_backward,
};

static int gap_infer(const struct cnn_model *m, struct cnn_layer *l, struct cnn_err *err)
{
    (void)err;
    l->c = cnn_layer_input(m, l, 0)->c;
    l->h = l->w = 1;
    return 0;
}

static void gap_run(const struct cnn_model *m, const struct cnn_op *op, const struct cnn_op_run *r)
{
    const struct cnn_layer *il = &m->layers[op->inputs[0]];
    cnn_global_avgpool_forward(r->out, r->in[0], (size_t)il->c * (size_t)r->n,
                               (size_t)il->h * (size_t)il->w);
}

/* Planes (channel, item) [lo, hi). */
static int gap_train_forward(const struct train_fwd_job *job, int part, int parts,
                             struct cnn_err *err)
{
    (void)err;
    const struct train_view v = train_view(job->t, job->i, job->n);
    size_t lo, hi;
    cnn_part_range((size_t)v.il->c * (size_t)job->n, part, parts, &lo, &hi);
    cnn_global_avgpool_forward(v.dst + lo, v.in + lo * v.hw, hi - lo, v.hw);
    return 0;
}

static void gap_train_backward(const struct train_bwd_job *job, int part, int parts)
{
    const struct train_view v = train_view(job->t, job->i, job->n);
    size_t lo, hi;
    cnn_part_range((size_t)v.il->c * (size_t)job->n, part, parts, &lo, &hi);
    train_zero_fresh(job, 0, v.dinp, lo * v.hw, (hi - lo) * v.hw);
    if (v.dinp)
        cnn_global_avgpool_backward(v.dinp + lo * v.hw, job->dout + lo, hi - lo, v.hw);
}

const struct cnn_layer_kind_ops cnn_kind_global_avgpool = {
    .name = "global_avgpool",
    .infer = gap_infer,
    .run = gap_run,
    .train_forward = gap_train_forward,
    .train_backward = gap_train_backward,
};
