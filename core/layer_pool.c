/* Max and average pooling over (C, N, H, W): each of the C*N planes on its own, with
 * asymmetric padding, ceil mode and count_include_pad as in PyTorch.  Window bounds are
 * clipped once per output row/column, so the inner loops only touch real pixels. */
#include "layer.h"

#include <stddef.h>
#include <string.h>

/* Rows wider than this take the direct path; narrower ones first take the max down the
 * window's rows into a stack row (a vectorisable elementwise max), then across it. */
#define MAXPOOL_ROW_MAX 2048

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

static void maxpool_plane_rows(float *o, const float *in, const struct cnn_pool2d *p)
{
    float rowmax[MAXPOOL_ROW_MAX];
    const int W = p->w;
    for (int oy = 0; oy < p->oh; oy++) {
        int y0, y1;
        cnn_pool_window(oy, p->sh, p->pad_t, p->pad_b, p->kh, p->h, &y0, &y1);
        memcpy(rowmax, in + (size_t)y0 * W, sizeof(float) * (size_t)W);
        for (int y = y0 + 1; y < y1; y++)
            max_into(rowmax, in + (size_t)y * W, W);
        for (int ox = 0; ox < p->ow; ox++) {
            int x0, x1;
            cnn_pool_window(ox, p->sw, p->pad_l, p->pad_r, p->kw, W, &x0, &x1);
            float m = rowmax[x0];
            for (int x = x0 + 1; x < x1; x++)
                m = rowmax[x] > m ? rowmax[x] : m;
            *o++ = m;
        }
    }
}

static void maxpool_plane_2x2(float *restrict o, const float *restrict in,
                              const struct cnn_pool2d *p)
{
    const int W = p->w;
    for (int oy = 0; oy < p->oh; oy++) {
        const float *r0 = in + (size_t)(2 * oy) * W, *r1 = r0 + W;
        for (int ox = 0; ox < p->ow; ox++) {
            float a = r0[2 * ox] > r0[2 * ox + 1] ? r0[2 * ox] : r0[2 * ox + 1];
            float b = r1[2 * ox] > r1[2 * ox + 1] ? r1[2 * ox] : r1[2 * ox + 1];
            *o++ = a > b ? a : b;
        }
    }
}

void cnn_maxpool_forward(float *out, const float *inp, const struct cnn_pool2d *p, int N)
{
    const size_t planes = (size_t)p->c * N, in_plane = (size_t)p->h * p->w;
    const int plain_2x2 = cnn_pool2d_is_plain_2x2(p);
    for (size_t pl = 0; pl < planes; pl++) {
        const float *in = inp + pl * in_plane;
        float *o = out + pl * (size_t)p->oh * p->ow;
        if (plain_2x2) {
            maxpool_plane_2x2(o, in, p);
            continue;
        }
        if (p->w <= MAXPOOL_ROW_MAX) {
            maxpool_plane_rows(o, in, p);
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
