/* Winograd F(2x2,3x3) convolution (Lavin & Gray 2015) over a (C, N, H, W) batch: weights
 * transformed once at compile time (U = G g G^T), then per chunk of 2x2 output tiles the
 * input transform V = B^T d B, 16 SGEMMs M_k = U_k V_k and the output transform
 * Y = A^T m A with bias, a residual and the activation.  The transforms run four tiles per
 * vector (sixteen per vector on AVX-512, layer_winograd_avx512.c): V and M hold tiles
 * contiguously, (16, C, tiles) and (16, OC, tiles). */
#include "layer_winograd.h"
#include "avx512.h"
#include "gemm.h"
#include "gemm_packed.h"
#include "layer.h"

#include <stddef.h>
#include <string.h>

size_t cnn_winograd_weights_floats(const struct cnn_conv2d *p)
{
    return 16 * (size_t)p->oc * (size_t)p->c;
}

void cnn_winograd_transform_weights(float *u, const float *w, const struct cnn_conv2d *p)
{
    const size_t plane = (size_t)p->oc * p->c; /* floats of one U_k */
    for (int oc = 0; oc < p->oc; oc++) {
        for (int c = 0; c < p->c; c++) {
            const float *g = w + ((size_t)oc * p->c + c) * 9;
            float t[4][3]; /* G g: G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1] */
            for (int j = 0; j < 3; j++) {
                t[0][j] = g[j];
                t[1][j] = 0.5f * (g[j] + g[3 + j] + g[6 + j]);
                t[2][j] = 0.5f * (g[j] - g[3 + j] + g[6 + j]);
                t[3][j] = g[6 + j];
            }
            float *dst = u + (size_t)oc * p->c + c;
            for (int i = 0; i < 4; i++) { /* (G g) G^T */
                dst[(4 * i + 0) * plane] = t[i][0];
                dst[(4 * i + 1) * plane] = 0.5f * (t[i][0] + t[i][1] + t[i][2]);
                dst[(4 * i + 2) * plane] = 0.5f * (t[i][0] - t[i][1] + t[i][2]);
                dst[(4 * i + 3) * plane] = t[i][2];
            }
        }
    }
}

struct wino_dims {
    int tw, th; /* tiles across, down one image */
    int wide;   /* the AVX-512 rows (cnn_wino2_*_row_avx512) */
    int len;    /* floats of one staged row: 2 * round4(tw) + 4 */
    size_t nt;  /* tiles in this chunk: GEMM N dimension and row stride of V, M */
};

/* The vertical half of B^T d B for one tile row: from input rows x0..x3 (W floats each,
 * a zero row standing in for rows in the padding) the four rows
 * s_a[pad_l + i] = (x0 - x2, x1 + x2, x2 - x1, x1 - x3)[a][i]; s_a's padding columns
 * stay zero (set once per forward call). */
static void vertical_transform(float *s, int len, const float *const x[4], int W, int pad_l)
{
    float *restrict s0 = s + pad_l, *restrict s1 = s0 + len, *restrict s2 = s1 + len;
    float *restrict s3 = s2 + len;
    int i = 0;
    for (; i + 4 <= W; i += 4) {
        v4f a, b, c, d;
        memcpy(&a, x[0] + i, sizeof a);
        memcpy(&b, x[1] + i, sizeof b);
        memcpy(&c, x[2] + i, sizeof c);
        memcpy(&d, x[3] + i, sizeof d);
        const v4f t0 = a - c, t1 = b + c, t2 = c - b, t3 = b - d;
        memcpy(s0 + i, &t0, sizeof t0);
        memcpy(s1 + i, &t1, sizeof t1);
        memcpy(s2 + i, &t2, sizeof t2);
        memcpy(s3 + i, &t3, sizeof t3);
    }
    for (; i < W; i++) {
        const float a = x[0][i], b = x[1][i], c = x[2][i], d = x[3][i];
        s0[i] = a - c, s1[i] = b + c, s2[i] = c - b, s3[i] = b - d;
    }
}

/* The horizontal half for tiles [tx, tx + cnt) of one staged row s (tile tx starts at
 * s[2 tx]): with d_j[l] = s[2 (tx + l) + j], dst_j = (d0 - d2, d1 + d2, d2 - d1, d1 - d3)[j],
 * dst_j = dst + j * kstride. */
static inline void horizontal_transform(float *dst, size_t kstride, const float *s, int cnt)
{
    v4f a, b, c, d;
    memcpy(&a, s, sizeof a);
    memcpy(&b, s + 4, sizeof b);
    memcpy(&c, s + 2, sizeof c);
    memcpy(&d, s + 6, sizeof d);
    const v4f d0 = __builtin_shufflevector(a, b, 0, 2, 4, 6);
    const v4f d1 = __builtin_shufflevector(a, b, 1, 3, 5, 7);
    const v4f d2 = __builtin_shufflevector(c, d, 0, 2, 4, 6);
    const v4f d3 = __builtin_shufflevector(c, d, 1, 3, 5, 7);
    wino_store_n(dst, d0 - d2, cnt);
    wino_store_n(dst + kstride, d1 + d2, cnt);
    wino_store_n(dst + 2 * kstride, d2 - d1, cnt);
    wino_store_n(dst + 3 * kstride, d1 - d3, cnt);
}

/* Channels [c_lo, c_hi) of V (16, C, nt) for tile rows [r0, r1) of the batch.  stage: 4
 * rows of len floats whose padding columns are zero; zero: W zero floats. */
static void input_transform(float *v, float *stage, const float *zero, const float *inp,
                            const struct cnn_conv2d *p, int N, int r0, int r1,
                            const struct wino_dims *d, int c_lo, int c_hi)
{
    const size_t hw = (size_t)p->h * p->w, kstride = (size_t)p->c * d->nt;
    const int full = d->tw & ~3;
    /* AVX-512 with up to 7 tiles across: up to 4 (tw <= 4) or 2 tile rows per call */
    const int group = !d->wide || d->tw > 7 ? 1 : d->tw <= 4 ? 4 : 2;
    for (int c = c_lo; c < c_hi; c++) {
        for (int r = r0, n = r0 / d->th, ty = r0 % d->th; r < r1;) {
            const int g = group < r1 - r ? group : r1 - r;
            const float *xs[4][4]; /* input rows of the g tile rows */
            for (int j = 0; j < g; j++, ty++) {
                if (ty == d->th)
                    ty = 0, n++;
                const float *plane = inp + ((size_t)c * N + n) * hw;
                for (int i = 0; i < 4; i++) {
                    const int iy = 2 * ty - p->pad_t + i;
                    xs[j][i] = iy >= 0 && iy < p->h ? plane + (size_t)iy * p->w : zero;
                }
            }
            float *dst = v + (size_t)c * d->nt + (size_t)(r - r0) * d->tw;
            r += g;
            if (group > 1) {
                cnn_wino2_input_rows_avx512(dst, kstride, xs, g, p->w, p->pad_l, d->tw);
                continue;
            }
            const float *const *x = xs[0];
            if (d->wide) {
                cnn_wino2_input_row_avx512(dst, kstride, x, p->w, p->pad_l, d->tw);
                continue;
            }
            vertical_transform(stage, d->len, x, p->w, p->pad_l);
            for (int a = 0; a < 4; a++) { /* V_k, k = 4 a + j */
                const float *s = stage + a * d->len;
                float *dk = dst + (size_t)(4 * a) * kstride;
                int tx = 0;
                for (; tx < full; tx += 4)
                    horizontal_transform(dk + tx, kstride, s + 2 * tx, 4);
                if (tx < d->tw)
                    horizontal_transform(dk + tx, kstride, s + 2 * tx, d->tw - tx);
            }
        }
    }
}

/* Output columns [x, x + n) of one row from two lane sets: row[x + 2l] = a[l],
 * row[x + 2l + 1] = b[l] (n <= 8). */
static inline void store_pairs(float *row, v4f a, v4f b, int n)
{
    const v4f lo = __builtin_shufflevector(a, b, 0, 4, 1, 5);
    const v4f hi = __builtin_shufflevector(a, b, 2, 6, 3, 7);
    if (n == 8) {
        memcpy(row, &lo, sizeof lo);
        memcpy(row + 4, &hi, sizeof hi);
        return;
    }
    if (n >= 4) {
        memcpy(row, &lo, sizeof lo);
        wino_store_n(row + 4, hi, n - 4);
    } else {
        wino_store_n(row, lo, n);
    }
}

/* a = even, b = odd floats of row[0..n) (n <= 8), zero beyond. */
static inline void load_pairs(const float *row, int n, v4f *a, v4f *b)
{
    float t[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    if (n == 8)
        memcpy(t, row, sizeof t);
    else
        for (int i = 0; i < n; i++)
            t[i] = row[i];
    v4f lo, hi;
    memcpy(&lo, t, sizeof lo);
    memcpy(&hi, t + 4, sizeof hi);
    *a = __builtin_shufflevector(lo, hi, 0, 2, 4, 6);
    *b = __builtin_shufflevector(lo, hi, 1, 3, 5, 7);
}

/* out rows of tile rows [r0, r1) from M (16, OC, nt): A^T m A + bias (+ res, laid out as
 * out, may equal it), then act. */
static void output_transform(float *out, const float *res, const float *m, const float *b,
                             const struct cnn_conv2d *p, int N, int r0, int r1,
                             const struct wino_dims *d)
{
    const int OH = p->oh, OW = p->ow, relu = p->act.kind == CNN_ACT_RELU;
    const size_t kstride = (size_t)p->oc * d->nt;
    for (int oc = 0; oc < p->oc; oc++) {
        const float bs = b ? b[oc] : 0.0f;
        const v4f bias = {bs, bs, bs, bs};
        for (int r = r0; r < r1; r++) {
            const int n = r / d->th, oy = 2 * (r % d->th);
            const size_t at = (((size_t)oc * N + n) * OH + oy) * OW;
            float *o0 = out + at;
            const float *r0w = res ? res + at : NULL;
            const float *src = m + (size_t)oc * d->nt + (size_t)(r - r0) * d->tw;
            if (d->wide && d->tw <= 8) { /* g tile rows in one vector */
                const int g = 16 / d->tw < r1 - r ? 16 / d->tw : r1 - r;
                float *o[16][2];
                const float *rs[16][2];
                for (int j = 0; j < g; j++) {
                    const int nj = (r + j) / d->th, yj = 2 * ((r + j) % d->th);
                    const size_t aj = (((size_t)oc * N + nj) * OH + yj) * OW;
                    o[j][0] = out + aj, o[j][1] = yj + 1 < OH ? out + aj + OW : NULL;
                    rs[j][0] = res ? res + aj : NULL;
                    rs[j][1] = res && yj + 1 < OH ? res + aj + OW : NULL;
                }
                cnn_wino2_output_rows_avx512(o, rs,
                                             g, src, kstride, bs, relu, d->tw, OW);
                r += g - 1;
                continue;
            }
            if (d->wide) {
                float *const o[2] = {o0, oy + 1 < OH ? o0 + OW : NULL};
                const float *const rs[2] = {r0w, r0w && oy + 1 < OH ? r0w + OW : NULL};
                cnn_wino2_output_row_avx512(o, rs, src, kstride, bs, relu, d->tw, OW);
                continue;
            }
            for (int tx = 0; tx < d->tw; tx += 4) {
                const int cnt = d->tw - tx < 4 ? d->tw - tx : 4;
                v4f f0[4], f1[4]; /* m A, per row a of m */
                for (int a = 0; a < 4; a++) {
                    const float *s = src + (size_t)(4 * a) * kstride + tx;
                    const v4f m0 = wino_load_n(s, cnt), m1 = wino_load_n(s + kstride, cnt);
                    const v4f m2 = wino_load_n(s + 2 * kstride, cnt);
                    const v4f m3 = wino_load_n(s + 3 * kstride, cnt);
                    f0[a] = m0 + m1 + m2;
                    f1[a] = m1 - m2 - m3;
                }
                v4f y00 = f0[0] + f0[1] + f0[2] + bias, y01 = f1[0] + f1[1] + f1[2] + bias;
                v4f y10 = f0[1] - f0[2] - f0[3] + bias, y11 = f1[1] - f1[2] - f1[3] + bias;
                const int nx = OW - 2 * tx < 8 ? OW - 2 * tx : 8;
                if (r0w) { /* (conv + bias) + res: the order of the unfused add */
                    v4f ra, rb;
                    load_pairs(r0w + 2 * tx, nx, &ra, &rb);
                    y00 += ra, y01 += rb;
                    if (oy + 1 < OH) {
                        load_pairs(r0w + OW + 2 * tx, nx, &ra, &rb);
                        y10 += ra, y11 += rb;
                    }
                }
                if (relu) {
                    y00 = wino_relu4(y00), y01 = wino_relu4(y01);
                    y10 = wino_relu4(y10), y11 = wino_relu4(y11);
                }
                store_pairs(o0 + 2 * tx, y00, y01, nx);
                if (oy + 1 < OH)
                    store_pairs(o0 + OW + 2 * tx, y10, y11, nx);
            }
        }
        if (!relu && p->act.kind != CNN_ACT_NONE) { /* rows of this chunk are contiguous */
            const int n0 = r0 / d->th, n1 = (r1 - 1) / d->th;
            const int y_end = 2 * ((r1 - 1) % d->th) + 2;
            const size_t first = (size_t)n0 * OH + 2 * (size_t)(r0 % d->th);
            const size_t last = (size_t)n1 * OH + (size_t)(y_end < OH ? y_end : OH);
            cnn_act_apply(out + ((size_t)oc * N * OH + first) * OW, (last - first) * OW, &p->act);
        }
    }
}

/* Tile geometry and scratch layout shared by the forward and the weight gradient: V
 * (16, C, tiles of a chunk), M (16, OC, tiles), the staged rows (padding columns zeroed
 * here) and a zero input row, each 16-float aligned in scratch. */
struct wino_work {
    struct wino_dims d;
    int chunk; /* tile rows per chunk */
    float *v, *m, *stage, *zero;
    float *pack; /* after the Winograd scratch: the packed GEMM's, for packed U */
};

static struct wino_work wino_setup(float *scratch, const struct cnn_conv2d *p, int N, int wide)
{
    struct wino_work w;
    w.d.wide = wide;
    w.d.tw = (p->ow + 1) / 2;
    w.d.th = (p->oh + 1) / 2;
    w.d.len = 2 * ((w.d.tw + 3) & ~3) + 4;
    w.d.nt = 0;
    w.chunk = cnn_winograd_chunk_rows(p, N);
    const size_t max_nt = (size_t)w.chunk * w.d.tw;
    w.v = scratch;
    w.m = w.v + wino_round16(16 * (size_t)p->c * max_nt);
    w.stage = w.m + wino_round16(16 * (size_t)p->oc * max_nt);
    w.zero = w.stage + wino_round16(4 * (size_t)w.d.len);
    memset(w.stage, 0, sizeof(float) * 4 * (size_t)w.d.len);
    memset(w.zero, 0, sizeof(float) * (size_t)p->w);
    w.pack = scratch + cnn_winograd_scratch_floats(p, N);
    return w;
}

/* Output channels [oc_lo, oc_hi) of tile rows [r0, r1) (w->d.nt tiles) from their V:
 * the products into w->m, then the output transform. */
static void multiply_out(float *out, const float *res, const float *v, const float *u,
                         int u_packed, const float *b, struct wino_work *w,
                         const struct cnn_conv2d *p, int N, int r0, int r1, int oc_lo, int oc_hi)
{
    const size_t off = (size_t)oc_lo * N * p->oh * p->ow;
    struct cnn_conv2d q = *p;
    q.oc = oc_hi - oc_lo;
    cnn_winograd_products(16, u, u_packed, p, oc_lo, oc_hi, w->d.nt, v, w->m, w->pack);
    output_transform(out + off, res ? res + off : NULL, w->m, b ? b + oc_lo : NULL, &q, N, r0, r1,
                     &w->d);
}

/* Tile rows [t_lo, t_hi) of output channels [oc_lo, oc_hi): the rows and the channels
 * entry points below.  Chunking and scratch layout follow the whole conv p. */
static void winograd_range(float *out, const float *res, const float *inp, const float *u,
                           int u_packed, const float *b, float *scratch, const struct cnn_conv2d *p,
                           int N, int t_lo, int t_hi, int oc_lo, int oc_hi, int wide)
{
    struct wino_work w = wino_setup(scratch, p, N, wide);
    for (int r0 = t_lo; r0 < t_hi; r0 += w.chunk) {
        const int r1 = r0 + w.chunk < t_hi ? r0 + w.chunk : t_hi;
        w.d.nt = (size_t)(r1 - r0) * w.d.tw;
        input_transform(w.v, w.stage, w.zero, inp, p, N, r0, r1, &w.d, 0, p->c);
        multiply_out(out, res, w.v, u, u_packed, b, &w, p, N, r0, r1, oc_lo, oc_hi);
    }
}

void cnn_conv2d_winograd_channels(float *out, const float *res, const float *inp, const float *u,
                                  int u_packed, const float *b, float *scratch,
                                  const struct cnn_conv2d *p, int N, int oc_lo, int oc_hi)
{
    winograd_range(out, res, inp, u, u_packed, b, scratch, p, N, 0, N * ((p->oh + 1) / 2), oc_lo,
                   oc_hi, cnn_cpu_avx512());
}

void cnn_conv2d_winograd_rows(float *out, const float *res, const float *inp, const float *u,
                              int u_packed, const float *b, float *scratch,
                              const struct cnn_conv2d *p, int N, int t_lo, int t_hi)
{
    winograd_range(out, res, inp, u, u_packed, b, scratch, p, N, t_lo, t_hi, 0, p->oc,
                   cnn_cpu_avx512());
}

void cnn_conv2d_winograd_rows_lanes(float *out, const float *res, const float *inp, const float *u,
                                    int u_packed, const float *b, float *scratch,
                                    const struct cnn_conv2d *p, int N, int t_lo, int t_hi,
                                    int lanes)
{
    winograd_range(out, res, inp, u, u_packed, b, scratch, p, N, t_lo, t_hi, 0, p->oc,
                   lanes == 16 && cnn_cpu_avx512());
}

void cnn_conv2d_winograd_input_part(float *shared, const float *inp, float *scratch,
                                    const struct cnn_conv2d *p, int N, int c_lo, int c_hi)
{
    struct wino_work w = wino_setup(scratch, p, N, cnn_cpu_avx512());
    w.d.nt = (size_t)N * w.d.th * w.d.tw;
    input_transform(shared, w.stage, w.zero, inp, p, N, 0, N * w.d.th, &w.d, c_lo, c_hi);
}

void cnn_conv2d_winograd_channels_from(float *out, const float *res, const float *shared,
                                       const float *u, int u_packed, const float *b, float *scratch,
                                       const struct cnn_conv2d *p, int N, int oc_lo, int oc_hi)
{
    struct wino_work w = wino_setup(scratch, p, N, cnn_cpu_avx512());
    w.d.nt = (size_t)N * w.d.th * w.d.tw;
    multiply_out(out, res, shared, u, u_packed, b, &w, p, N, 0, N * w.d.th, oc_lo, oc_hi);
}

void cnn_conv2d_forward_winograd(float *out, const float *inp, const float *u, const float *b,
                                 float *scratch, const struct cnn_conv2d *p, int N)
{
    cnn_conv2d_winograd_rows(out, NULL, inp, u, 0, b, scratch, p, N, 0, N * ((p->oh + 1) / 2));
}

void cnn_winograd_products(int planes, const float *u, int u_packed, const struct cnn_conv2d *p,
                           int oc_lo, int oc_hi, size_t nt, const float *v, float *m,
                           float *pack_scratch)
{
    const int c = p->c, oc = oc_hi - oc_lo;
    const size_t plane_floats = (size_t)p->oc * c;
    u += (size_t)oc_lo * c;
    for (int k = 0; k < planes; k++) {
        const float *u_k = u + k * plane_floats, *v_k = v + k * (size_t)c * nt;
        float *m_k = m + k * (size_t)oc * nt;
        if (u_packed)
            cnn_gemm_packed(oc, (int)nt, c, 1.0f, u_k, v_k, (int)nt, 0.0f, m_k, (int)nt, NULL,
                            pack_scratch);
        else
            cnn_gemm(0, 0, oc, (int)nt, c, 1.0f, u_k, c, v_k, (int)nt, 0.0f, m_k, (int)nt);
    }
}

/* y[0], y[stride], .. y[(n - 1) stride] as lanes of one vector, 0 past n and where !ok.
 * Built in registers: four scalar stores read back as one vector stall that load (no
 * store forwarding), which was 40% of dout_transform()'s time. */
static inline v4f lanes4(const float *y, size_t stride, int n, int ok)
{
    return (v4f){ok ? y[0] : 0.0f, ok && n > 1 ? y[stride] : 0.0f,
                 ok && n > 2 ? y[2 * stride] : 0.0f, ok && n > 3 ? y[3 * stride] : 0.0f};
}

/* dM (16, nt, OC) -- by tile, then output channel: transposed from M's layout, so that the
 * weight gradient's GEMMs take both operands untransposed (the faster route of cnn_gemm) --
 * for tile rows [r0, r1) of dout: dM = A dY A^T, the gradient of M when Y = A^T M A
 * (outputs past the edge count as 0).  A tile at a time (its rows of dM are contiguous),
 * four output channels per vector. */
static void dout_transform(float *dm, const float *dout, const struct cnn_conv2d *p, int N, int r0,
                           int r1, const struct wino_dims *d)
{
    const int OH = p->oh, OW = p->ow, OC = p->oc;
    const size_t kstride = (size_t)OC * d->nt, cstride = (size_t)N * OH * OW;
    float *dst = dm;
    for (int r = r0; r < r1; r++) {
        const int n = r / d->th, oy = 2 * (r % d->th), row1 = oy + 1 < OH;
        const float *y_row = dout + ((size_t)n * OH + oy) * OW;
        for (int tx = 0; tx < d->tw; tx++, dst += OC) {
            const int ox = 2 * tx, col1 = ox + 1 < OW;
            for (int oc = 0; oc < OC; oc += 4) {
                const int og = OC - oc < 4 ? OC - oc : 4;
                const float *y = y_row + (size_t)oc * cstride + ox;
                /* dY = [a b; c e], an output channel per lane */
                const v4f a = lanes4(y, cstride, og, 1), b = lanes4(y + 1, cstride, og, col1);
                const v4f c = lanes4(y + OW, cstride, og, row1);
                const v4f e = lanes4(y + OW + 1, cstride, og, row1 && col1);
                const v4f rows[4][2] = {{a, b}, {a + c, b + e}, {a - c, b - e}, {-c, -e}};
                for (int i = 0; i < 4; i++) { /* row (p, q) of A dY times A^T */
                    const v4f pv = rows[i][0], qv = rows[i][1];
                    float *dk = dst + oc + (size_t)(4 * i) * kstride;
                    wino_store_n(dk, pv, og);
                    wino_store_n(dk + kstride, pv + qv, og);
                    wino_store_n(dk + 2 * kstride, pv - qv, og);
                    wino_store_n(dk + 3 * kstride, -qv, og);
                }
            }
        }
    }
}

void cnn_winograd_weight_grad_rows(float *du, const float *inp, const float *dout, float *scratch,
                                   const struct cnn_conv2d *p, int N, int t_lo, int t_hi)
{
    struct wino_work w = wino_setup(scratch, p, N, cnn_cpu_avx512());
    const size_t uk = (size_t)p->oc * p->c;
    for (int r0 = t_lo; r0 < t_hi; r0 += w.chunk) {
        const int r1 = r0 + w.chunk < t_hi ? r0 + w.chunk : t_hi;
        const size_t nt = w.d.nt = (size_t)(r1 - r0) * w.d.tw;
        input_transform(w.v, w.stage, w.zero, inp, p, N, r0, r1, &w.d, 0, p->c);
        dout_transform(w.m, dout, p, N, r0, r1, &w.d);
        for (int k = 0; k < 16; k++) /* dU_k (C, OC) += V_k (C, nt) dM_k (nt, OC) */
            cnn_gemm(0, 0, p->c, p->oc, (int)nt, 1.0f, w.v + k * (size_t)p->c * nt, (int)nt,
                     w.m + k * (size_t)p->oc * nt, p->oc, 1.0f, du + k * uk, p->oc);
    }
}

void cnn_winograd_weight_grad_finish(float *dw, const float *du, const struct cnn_conv2d *p)
{
    const size_t plane = (size_t)p->oc * p->c;
    for (int oc = 0; oc < p->oc; oc++) {
        for (int c = 0; c < p->c; c++) {
            float u[4][4], t[3][4];
            const float *src = du + (size_t)c * p->oc + oc; /* du (16, C, OC) */
            for (int k = 0; k < 16; k++)
                u[k / 4][k % 4] = src[(size_t)k * plane];
            for (int j = 0; j < 4; j++) { /* G^T dU, G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1] */
                t[0][j] = u[0][j] + 0.5f * (u[1][j] + u[2][j]);
                t[1][j] = 0.5f * (u[1][j] - u[2][j]);
                t[2][j] = 0.5f * (u[1][j] + u[2][j]) + u[3][j];
            }
            float *g = dw + ((size_t)oc * p->c + c) * 9; /* w (OC, C, 3, 3) */
            for (int i = 0; i < 3; i++) {                /* (G^T dU) G */
                g[3 * i + 0] += t[i][0] + 0.5f * (t[i][1] + t[i][2]);
                g[3 * i + 1] += 0.5f * (t[i][1] - t[i][2]);
                g[3 * i + 2] += 0.5f * (t[i][1] + t[i][2]) + t[i][3];
            }
        }
    }
}
