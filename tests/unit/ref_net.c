/* Naive per-image interpreter of a model graph (see ref_net.h). */
#include "ref_net.h"

#include "model_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static float act(float x, const struct cnn_act_params *a)
{
    switch (a->kind) {
    case CNN_ACT_RELU: return x > 0 ? x : 0;
    case CNN_ACT_LEAKY_RELU: return x > 0 ? x : a->alpha * x;
    case CNN_ACT_CLIP: return x < a->alpha ? a->alpha : (x > a->beta ? a->beta : x);
    case CNN_ACT_SIGMOID: return (float)(1.0 / (1.0 + exp(-(double)x)));
    case CNN_ACT_TANH: return (float)tanh((double)x);
    case CNN_ACT_HARD_SIGMOID: return (float)fmin(1.0, fmax(0.0, (double)a->alpha * x + a->beta));
    case CNN_ACT_HARD_SWISH: return (float)(x * fmin(1.0, fmax(0.0, x / 6.0 + 0.5)));
    default: return x;
    }
}

static void conv(float *out, const float *in, const float *w, const float *b,
                 const struct cnn_conv2d *p)
{
    int cg = p->c / p->groups, og = p->oc / p->groups;
    for (int o = 0; o < p->oc; o++) {
        int g = o / og;
        for (int y = 0; y < p->oh; y++)
            for (int x = 0; x < p->ow; x++) {
                double s = b ? b[o] : 0.0;
                for (int ci = 0; ci < cg; ci++)
                    for (int ky = 0; ky < p->kh; ky++)
                        for (int kx = 0; kx < p->kw; kx++) {
                            int iy = y * p->sh - p->pad_t + ky * p->dh;
                            int ix = x * p->sw - p->pad_l + kx * p->dw;
                            if (iy < 0 || iy >= p->h || ix < 0 || ix >= p->w)
                                continue;
                            s += (double)in[((size_t)(g * cg + ci) * p->h + iy) * p->w + ix] *
                                 w[(((size_t)o * cg + ci) * p->kh + ky) * p->kw + kx];
                        }
                out[((size_t)o * p->oh + y) * p->ow + x] = act((float)s, &p->act);
            }
    }
}

static void pool(float *out, const float *in, const struct cnn_pool2d *p, int is_max)
{
    for (int c = 0; c < p->c; c++)
        for (int y = 0; y < p->oh; y++)
            for (int x = 0; x < p->ow; x++) {
                int y0 = y * p->sh - p->pad_t, x0 = x * p->sw - p->pad_l;
                double s = 0, mx = -INFINITY;
                int valid = 0, padded = 0;
                for (int ky = 0; ky < p->kh; ky++)
                    for (int kx = 0; kx < p->kw; kx++) {
                        int iy = y0 + ky, ix = x0 + kx;
                        /* positions inside input + declared padding count for
                         * count_include_pad; those beyond it (ceil mode) never do */
                        if (iy < p->h + p->pad_b && ix < p->w + p->pad_r)
                            padded++;
                        if (iy < 0 || iy >= p->h || ix < 0 || ix >= p->w)
                            continue;
                        float v = in[((size_t)c * p->h + iy) * p->w + ix];
                        s += v;
                        if (v > mx)
                            mx = v;
                        valid++;
                    }
                float r = is_max ? (float)mx
                                 : (float)(s / (p->count_include_pad ? padded : valid));
                out[((size_t)c * p->oh + y) * p->ow + x] = r;
            }
}

static void lrn(float *out, const float *in, const struct cnn_lrn *p, int C, int hw)
{
    for (int c = 0; c < C; c++)
        for (int i = 0; i < hw; i++) {
            double s = 0;
            for (int j = c - (p->size - 1) / 2; j <= c + p->size / 2; j++)
                if (j >= 0 && j < C)
                    s += (double)in[(size_t)j * hw + i] * in[(size_t)j * hw + i];
            out[(size_t)c * hw + i] =
                (float)(in[(size_t)c * hw + i] / pow(p->k + p->alpha / p->size * s, p->beta));
        }
}

/* The kinds added for ONNX import: global max pool, PReLU, scale-shift, pad, transpose; -1
 * for another kind. */
static int ref_layer_onnx(const struct cnn_model *m, const struct cnn_layer *l, const float *x,
                          float *y)
{
    const struct cnn_layer *il = &m->layers[l->inputs[0]];
    const int C = il->c, H = il->h, W = il->w, hw = H * W;
    const float *w0 = l->n_weights > 0 ? m->params + l->weight_offset[0] : NULL;
    const float *w1 = l->n_weights > 1 ? m->params + l->weight_offset[1] : NULL;
    switch (l->kind) {
    case CNN_LAYER_GLOBAL_MAXPOOL:
        for (int c = 0; c < C; c++) {
            double mx = -INFINITY;
            for (int k = 0; k < hw; k++)
                mx = fmax(mx, x[(size_t)c * hw + k]);
            y[c] = (float)mx;
        }
        return 0;
    case CNN_LAYER_PRELU:
    case CNN_LAYER_SCALE_SHIFT:
        for (int c = 0; c < C; c++) {
            const int k = l->weight_count[0] == 1 ? 0 : c;
            for (int i = 0; i < hw; i++) {
                const double v = x[(size_t)c * hw + i];
                y[(size_t)c * hw + i] =
                    l->kind == CNN_LAYER_PRELU
                        ? (float)(v > 0 ? v : w0[k] * v)
                        : act((float)(v * w0[k] + w1[k]), &l->p.ss.act);
            }
        }
        return 0;
    case CNN_LAYER_PAD: /* every output position from the definition */
        for (int c = 0; c < C; c++)
            for (int oy = 0; oy < l->h; oy++)
                for (int ox = 0; ox < l->w; ox++) {
                    const int iy = oy - l->p.pad.pad_t, ix = ox - l->p.pad.pad_l;
                    const int in = iy >= 0 && iy < H && ix >= 0 && ix < W;
                    y[((size_t)c * l->h + oy) * l->w + ox] =
                        in ? x[((size_t)c * H + iy) * W + ix] : l->p.pad.value;
                }
        return 0;
    case CNN_LAYER_TRANSPOSE: { /* output index (i0..i5) is input index idx, idx[perm[k]] = ik */
        const int *d = l->p.tr.d, *pm = l->p.tr.perm;
        const int count = C * hw;
        for (int o = 0; o < count; o++) {
            int idx[CNN_TRANSPOSE_DIMS], rest = o, i = 0;
            for (int k = CNN_TRANSPOSE_DIMS - 1; k >= 0; k--) { /* o in the output's radix */
                idx[pm[k]] = rest % d[pm[k]];
                rest /= d[pm[k]];
            }
            for (int k = 0; k < CNN_TRANSPOSE_DIMS; k++)
                i = i * d[k] + idx[k];
            y[o] = x[i];
        }
        return 0;
    }
    default:
        return -1;
    }
}

/* Layer i of m (not the input) from the values of its inputs, into val[i]; -1 for a kind
 * this reference does not know. */
static int ref_layer(const struct cnn_model *m, int i, float *const *val)
{
    const struct cnn_layer *l = &m->layers[i];
    const struct cnn_layer *il = &m->layers[l->inputs[0]];
    const float *x = val[l->inputs[0]];
    float *y = val[i];
    size_t icnt = (size_t)il->c * il->h * il->w;
    int hw = il->h * il->w;
    const float *w0 = l->n_weights > 0 ? m->params + l->weight_offset[0] : NULL;
    const float *w1 = l->n_weights > 1 ? m->params + l->weight_offset[1] : NULL;
    switch (l->kind) {
    case CNN_LAYER_CONV2D:
        conv(y, x, w0, w1, &l->p.conv);
        break;
    case CNN_LAYER_DENSE:
        for (int o = 0; o < l->p.dense.out; o++) {
            double s = w1 ? w1[o] : 0;
            for (int k = 0; k < l->p.dense.in; k++)
                s += (double)w0[(size_t)o * l->p.dense.in + k] * x[k];
            y[o] = act((float)s, &l->p.dense.act);
        }
        break;
    case CNN_LAYER_MAXPOOL:
    case CNN_LAYER_AVGPOOL:
        pool(y, x, &l->p.pool, l->kind == CNN_LAYER_MAXPOOL);
        break;
    case CNN_LAYER_GLOBAL_AVGPOOL:
        for (int c = 0; c < il->c; c++) {
            double s = 0;
            for (int k = 0; k < hw; k++)
                s += x[(size_t)c * hw + k];
            y[c] = (float)(s / hw);
        }
        break;
    case CNN_LAYER_ACT:
        for (size_t k = 0; k < icnt; k++)
            y[k] = act(x[k], &l->p.act);
        break;
    case CNN_LAYER_BATCHNORM: {
        const float *g = w0, *b = w1, *mu = m->params + l->weight_offset[2],
                    *var = m->params + l->weight_offset[3];
        for (int c = 0; c < il->c; c++)
            for (int k = 0; k < hw; k++) {
                double v = (x[(size_t)c * hw + k] - mu[c]) / sqrt(var[c] + l->p.bn.eps);
                y[(size_t)c * hw + k] = act((float)(v * g[c] + b[c]), &l->p.bn.act);
            }
        break;
    }
    case CNN_LAYER_DROPOUT:
    case CNN_LAYER_RESHAPE: /* the planes read as h x w: the same memory */
    case CNN_LAYER_FLATTEN: /* NCHW flatten of one image is the same memory */
        memcpy(y, x, icnt * sizeof(float));
        break;
    case CNN_LAYER_LRN:
        lrn(y, x, &l->p.lrn, il->c, hw);
        break;
    case CNN_LAYER_ADD:
        for (size_t k = 0; k < icnt; k++) {
            double s = 0;
            for (int j = 0; j < l->n_inputs; j++)
                s += val[l->inputs[j]][k];
            y[k] = (float)s;
        }
        break;
    case CNN_LAYER_CONCAT: { /* input j's (c, y, x) at the offset of its start on the axis */
        int off = 0;
        for (int j = 0; j < l->n_inputs; j++) {
            const struct cnn_layer *s = &m->layers[l->inputs[j]];
            const float *v = val[l->inputs[j]];
            const int ax = l->p.cat.axis;
            for (int c = 0; c < s->c; c++)
                for (int yy = 0; yy < s->h; yy++)
                    for (int xx = 0; xx < s->w; xx++) {
                        const int oc = c + (ax == CNN_CONCAT_CHANNELS ? off : 0);
                        const int oy = yy + (ax == CNN_CONCAT_H ? off : 0);
                        const int ox = xx + (ax == CNN_CONCAT_W ? off : 0);
                        y[((size_t)oc * l->h + oy) * l->w + ox] = v[((size_t)c * s->h + yy) * s->w + xx];
                    }
            off += ax == CNN_CONCAT_CHANNELS ? s->c : ax == CNN_CONCAT_H ? s->h : s->w;
        }
        break;
    }
    case CNN_LAYER_SOFTMAX:
    case CNN_LAYER_LOG_SOFTMAX: { /* groups of len values stride apart (one image, CHW) */
        const int span = l->p.sm.span;
        const int len = span == CNN_SOFTMAX_CHANNELS ? il->c
                        : span == CNN_SOFTMAX_PLANE  ? hw
                                                     : il->w;
        const int stride = span == CNN_SOFTMAX_CHANNELS ? hw : 1;
        for (int g = 0; g < il->c * hw / len; g++) {
            const int base = span == CNN_SOFTMAX_CHANNELS ? g : g * len;
            double mx = -INFINITY, z = 0;
            for (int k = 0; k < len; k++)
                mx = x[base + k * stride] > mx ? x[base + k * stride] : mx;
            for (int k = 0; k < len; k++)
                z += exp(x[base + k * stride] - mx);
            for (int k = 0; k < len; k++) {
                const double v = x[base + k * stride] - mx;
                y[base + k * stride] =
                    l->kind == CNN_LAYER_SOFTMAX ? (float)(exp(v) / z) : (float)(v - log(z));
            }
        }
        break;
    }
    default:
        return ref_layer_onnx(m, l, x, y);
    }
    return 0;
}

int ref_net_forward(const struct cnn_model *m, const float *image, float *out)
{
    int n = m->n_layers;
    float **val = calloc((size_t)n, sizeof(float *));
    if (!val)
        return -1;
    int rc = -1;
    for (int i = 0; i < n; i++) {
        const struct cnn_layer *l = &m->layers[i];
        size_t cnt = (size_t)l->c * l->h * l->w;
        val[i] = malloc(cnt * sizeof(float));
        if (!val[i])
            goto done;
        if (i == 0)
            memcpy(val[0], image, cnt * sizeof(float));
        else if (ref_layer(m, i, val) != 0)
            goto done;
    }
    const struct cnn_layer *ol = &m->layers[n - 1];
    memcpy(out, val[n - 1], (size_t)ol->c * ol->h * ol->w * sizeof(float));
    rc = 0;
done:
    for (int i = 0; i < n; i++)
        free(val[i]);
    free(val);
    return rc;
}
