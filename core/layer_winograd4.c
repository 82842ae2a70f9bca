/* Winograd F(4x4,3x3) convolution (Lavin & Gray 2015; interpolation points 0, 1, -1, 2, -2
 * and infinity) over a (C, N, H, W) batch, for inference: weights transformed once at
 * compile time (U = G g G^T, in double), then per chunk of 4x4 output tiles the input
 * transform V = B^T d B (6x6 tiles), 36 SGEMMs M_k = U_k V_k and the output transform
 * Y = A^T m A with bias, the residual and the activation.  Four tiles per vector, or
 * sixteen on AVX-512 (layer_winograd_avx512.c). */
#include "avx512.h"
#include "gemm.h"
#include "layer.h"
#include "layer_winograd.h"

#include <stddef.h>
#include <string.h>

size_t cnn_winograd4_weights_floats(const struct cnn_conv2d *p)
{
    return 36 * (size_t)p->oc * (size_t)p->c;
}

/* G x for x (3 values at stride s), in double: G = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6;
 * 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1] (Lavin & Gray). */
static void g6(double y[6], double x0, double x1, double x2)
{
    const double s = x0 + x2;
    y[0] = x0 / 4;
    y[1] = -(s + x1) / 6;
    y[2] = -(s - x1) / 6;
    y[3] = x0 / 24 + x1 / 12 + x2 / 6;
    y[4] = x0 / 24 - x1 / 12 + x2 / 6;
    y[5] = x2;
}

void cnn_winograd4_transform_weights(float *u, const float *w, const struct cnn_conv2d *p)
{
    const size_t plane = (size_t)p->oc * p->c; /* floats of one U_k */
    for (size_t oc_c = 0; oc_c < plane; oc_c++) {
        const float *g = w + oc_c * 9; /* (oc, c) pairs are consecutive in w and in U_k */
        double t[3][6], r[6];          /* t[j] = G g[:, j] (column j of G g) */
        for (int j = 0; j < 3; j++)
            g6(t[j], g[j], g[3 + j], g[6 + j]);
        for (int i = 0; i < 6; i++) { /* row i of (G g) G^T = G (row i of G g) */
            g6(r, t[0][i], t[1][i], t[2][i]);
            for (int j = 0; j < 6; j++)
                u[(size_t)(6 * i + j) * plane + oc_c] = (float)r[j];
        }
    }
}

struct wino4 {
    int tw, th; /* tiles across, down one image */
    int len;    /* floats of one staged row: 4 * round4(tw) + 8 */
    int chunk;  /* tile rows per chunk */
    int wide;   /* the AVX-512 rows (cnn_wino4_*_row_avx512) */
    size_t nt;  /* tiles in this chunk: GEMM N dimension and row stride of V, M */
    float *v, *m, *stage, *zero;
    float *pack; /* after the Winograd scratch: the packed GEMM's, for packed U */
};

/* B^T x along one axis: x0..x5 -> (4x0 - 5x2 + x4, -4x1 - 4x2 + x3 + x4, 4x1 - 4x2 - x3 + x4,
 * -2x1 - x2 + 2x3 + x4, 2x1 - x2 - 2x3 + x4, 4x1 - 5x3 + x5), in place. */
static inline void bt6(v4f x[6])
{
    const v4f four = {4, 4, 4, 4}, five = {5, 5, 5, 5}, two = {2, 2, 2, 2};
    const v4f a = x[4] - four * x[2], b = x[3] - four * x[1]; /* rows 1, 2 */
    const v4f c = x[4] - x[2], d = two * (x[3] - x[1]);       /* rows 3, 4 */
    const v4f r0 = four * x[0] - five * x[2] + x[4], r5 = four * x[1] - five * x[3] + x[5];
    x[0] = r0, x[1] = a + b, x[2] = a - b, x[3] = c + d, x[4] = c - d, x[5] = r5;
}

/* The vertical half of B^T d B for one tile row: staged row a (len floats, padding columns
 * zero) gets s_a[pad_l + i] = (B^T (x0..x5)[i])[a] from input rows x0..x5 (W floats). */
static void vertical6(float *s, int len, const float *const x[6], int W, int pad_l)
{
    float *s0 = s + pad_l;
    int i = 0;
    for (; i + 4 <= W; i += 4) {
        v4f r[6];
        WINO_UNROLL
        for (int k = 0; k < 6; k++)
            memcpy(&r[k], x[k] + i, sizeof r[k]);
        bt6(r);
        WINO_UNROLL
        for (int k = 0; k < 6; k++)
            memcpy(s0 + (size_t)k * len + i, &r[k], sizeof r[k]);
    }
    for (; i < W; i++) {
        v4f r[6];
        for (int k = 0; k < 6; k++)
            r[k] = (v4f){x[k][i], 0, 0, 0};
        bt6(r);
        for (int k = 0; k < 6; k++)
            s0[(size_t)k * len + i] = r[k][0];
    }
}

/* The horizontal half for tiles [tx, tx + cnt) of one staged row s (tile tx starts at
 * s[4 tx]; reads s[4 tx .. 4 tx + 20)): dst + j * kstride gets (B^T d)[j] of each tile. */
static inline void horizontal6(float *dst, size_t kstride, const float *s, int cnt)
{
    v4f r[5], d[6];
    WINO_UNROLL
    for (int k = 0; k < 5; k++)
        memcpy(&r[k], s + 4 * k, sizeof r[k]);
    const v4f t0 = __builtin_shufflevector(r[0], r[1], 0, 4, 1, 5);
    const v4f t1 = __builtin_shufflevector(r[2], r[3], 0, 4, 1, 5);
    const v4f t2 = __builtin_shufflevector(r[0], r[1], 2, 6, 3, 7);
    const v4f t3 = __builtin_shufflevector(r[2], r[3], 2, 6, 3, 7);
    const v4f q0 = __builtin_shufflevector(r[1], r[2], 0, 4, 1, 5);
    const v4f q1 = __builtin_shufflevector(r[3], r[4], 0, 4, 1, 5);
    d[0] = __builtin_shufflevector(t0, t1, 0, 1, 4, 5); /* d_j lane l = s[4 l + j] */
    d[1] = __builtin_shufflevector(t0, t1, 2, 3, 6, 7);
    d[2] = __builtin_shufflevector(t2, t3, 0, 1, 4, 5);
    d[3] = __builtin_shufflevector(t2, t3, 2, 3, 6, 7);
    d[4] = __builtin_shufflevector(q0, q1, 0, 1, 4, 5);
    d[5] = __builtin_shufflevector(q0, q1, 2, 3, 6, 7);
    bt6(d);
    WINO_UNROLL
    for (int j = 0; j < 6; j++)
        wino_store_n(dst + (size_t)j * kstride, d[j], cnt);
}

/* Channels [c_lo, c_hi) of V (36, C, nt) for tile rows [r0, r1) of the batch. */
static void input_transform4(const struct wino4 *w, const float *inp, const struct cnn_conv2d *p,
                             int N, int r0, int r1, int c_lo, int c_hi)
{
    const size_t hw = (size_t)p->h * p->w, kstride = (size_t)p->c * w->nt;
    /* AVX-512 with up to 4 tiles across: up to 4 tile rows per call */
    const int group = w->wide && w->tw <= 4 ? 4 : 1;
    for (int c = c_lo; c < c_hi; c++) {
        for (int r = r0, n = r0 / w->th, ty = r0 % w->th; r < r1;) {
            const int g = group < r1 - r ? group : r1 - r;
            const float *xs[4][6]; /* input rows of the g tile rows */
            for (int j = 0; j < g; j++, ty++) {
                if (ty == w->th)
                    ty = 0, n++;
                const float *plane = inp + ((size_t)c * N + n) * hw;
                for (int i = 0; i < 6; i++) {
                    const int iy = 4 * ty - p->pad_t + i;
                    xs[j][i] = iy >= 0 && iy < p->h ? plane + (size_t)iy * p->w : w->zero;
                }
            }
            float *dst = w->v + (size_t)c * w->nt + (size_t)(r - r0) * w->tw;
            r += g;
            if (group > 1) {
                cnn_wino4_input_rows_avx512(dst, kstride, xs, g, p->w, p->pad_l, w->tw);
                continue;
            }
            const float *const *x = xs[0];
            if (w->wide) {
                cnn_wino4_input_row_avx512(dst, kstride, x, p->w, p->pad_l, w->tw);
                continue;
            }
            vertical6(w->stage, w->len, x, p->w, p->pad_l);
            const int full = w->tw & ~3;
            for (int a = 0; a < 6; a++) { /* V_k, k = 6 a + j */
                const float *s = w->stage + (size_t)a * w->len;
                float *dk = dst + (size_t)(6 * a) * kstride;
                int tx = 0;
                for (; tx < full; tx += 4) /* a constant count: whole-vector stores */
                    horizontal6(dk + tx, kstride, s + 4 * tx, 4);
                if (tx < w->tw)
                    horizontal6(dk + tx, kstride, s + 4 * tx, w->tw - tx);
            }
        }
    }
}

/* A^T m along one axis: m0..m5 -> (m0 + m1 + m2 + m3 + m4, (m1 - m2) + 2 (m3 - m4),
 * (m1 + m2) + 4 (m3 + m4), (m1 - m2) + 8 (m3 - m4) + m5). */
static inline void at6(v4f y[4], const v4f m[6])
{
    const v4f two = {2, 2, 2, 2}, four = {4, 4, 4, 4}, eight = {8, 8, 8, 8};
    const v4f s12 = m[1] + m[2], d12 = m[1] - m[2], s34 = m[3] + m[4], d34 = m[3] - m[4];
    y[0] = m[0] + s12 + s34;
    y[1] = d12 + two * d34;
    y[2] = s12 + four * s34;
    y[3] = d12 + eight * d34 + m[5];
}

/* One output row of four tiles: lanes of y[q] are the tiles' column q; written (or, with
 * res, first added to res's row) as 4 contiguous floats per tile, nx floats in all. */
static inline void store_row4(float *row, const float *res, const v4f y[4], int nx, int relu)
{
    const v4f t0 = __builtin_shufflevector(y[0], y[1], 0, 4, 1, 5);
    const v4f t1 = __builtin_shufflevector(y[2], y[3], 0, 4, 1, 5);
    const v4f t2 = __builtin_shufflevector(y[0], y[1], 2, 6, 3, 7);
    const v4f t3 = __builtin_shufflevector(y[2], y[3], 2, 6, 3, 7);
    v4f o[4] = {__builtin_shufflevector(t0, t1, 0, 1, 4, 5),
                __builtin_shufflevector(t0, t1, 2, 3, 6, 7),
                __builtin_shufflevector(t2, t3, 0, 1, 4, 5),
                __builtin_shufflevector(t2, t3, 2, 3, 6, 7)};
    WINO_UNROLL
    for (int l = 0; l < 4; l++) {
        if (4 * l >= nx)
            break;
        const int cnt = nx - 4 * l < 4 ? nx - 4 * l : 4;
        if (res)
            o[l] += wino_load_n(res + 4 * l, cnt);
        if (relu)
            o[l] = wino_relu4(o[l]);
        wino_store_n(row + 4 * l, o[l], cnt);
    }
}

/* The activations other than relu over the output rows of tile rows [r0, r1) of channel
 * plane `out` (OC stride N * OH * OW): those rows are contiguous. */
static void act_rows4(float *out, const struct wino4 *w, const struct cnn_conv2d *p, int r0,
                      int r1)
{
    const int n0 = r0 / w->th, n1 = (r1 - 1) / w->th, y_end = 4 * ((r1 - 1) % w->th) + 4;
    const size_t first = (size_t)n0 * p->oh + 4 * (size_t)(r0 % w->th);
    const size_t last = (size_t)n1 * p->oh + (size_t)(y_end < p->oh ? y_end : p->oh);
    cnn_act_apply(out + first * p->ow, (last - first) * p->ow, &p->act);
}

/* Output rows oy.. of four tiles (cnt of them real) from their M columns src (plane stride
 * kstride): A^T m A + bias (+ res, laid out as out), relu when asked; `at` = out offset of
 * the first tile's top-left output. */
static inline void tile_group4(float *out, const float *res, size_t at, const float *src,
                               size_t kstride, int cnt, v4f bias, int rows, int nx, int OW,
                               int relu)
{
    v4f f[4][6]; /* f[q][a] = (m A)[a][q], per row a of m */
    WINO_UNROLL
    for (int a = 0; a < 6; a++) {
        v4f ma[6], fa[4];
        WINO_UNROLL
        for (int j = 0; j < 6; j++)
            ma[j] = wino_load_n(src + (size_t)(6 * a + j) * kstride, cnt);
        at6(fa, ma);
        WINO_UNROLL
        for (int q = 0; q < 4; q++)
            f[q][a] = fa[q];
    }
    v4f y[4][4]; /* y[q][p]: output row p, column q of each tile */
    WINO_UNROLL
    for (int q = 0; q < 4; q++)
        at6(y[q], f[q]);
    for (int pr = 0; pr < rows; pr++) {
        const v4f row[4] = {y[0][pr] + bias, y[1][pr] + bias, y[2][pr] + bias, y[3][pr] + bias};
        const size_t o = at + (size_t)pr * OW;
        store_row4(out + o, res ? res + o : NULL, row, nx, relu);
    }
}

/* out rows of tile rows [r0, r1) from M (36, OC, nt): A^T m A + bias (+ res, laid out as
 * out), then act. */
static void output_transform4(float *out, const float *res, const float *b, const struct wino4 *w,
                              const struct cnn_conv2d *p, int N, int r0, int r1)
{
    const int OH = p->oh, OW = p->ow, relu = p->act.kind == CNN_ACT_RELU, full = w->tw & ~3;
    const size_t kstride = (size_t)p->oc * w->nt, plane = (size_t)N * OH * OW;
    for (int oc = 0; oc < p->oc; oc++) {
        const float bs = b ? b[oc] : 0.0f;
        const v4f bias = {bs, bs, bs, bs};
        for (int r = r0; r < r1; r++) {
            const int n = r / w->th, oy = 4 * (r % w->th), rows = OH - oy < 4 ? OH - oy : 4;
            const size_t row0 = (((size_t)oc * N + n) * OH + oy) * OW;
            const float *src = w->m + (size_t)oc * w->nt + (size_t)(r - r0) * w->tw;
            if (w->wide && w->tw <= 8) { /* g tile rows in one vector */
                const int g = 16 / w->tw < r1 - r ? 16 / w->tw : r1 - r;
                float *o[16];
                const float *rs[16];
                int nrows[16];
                for (int j = 0; j < g; j++) {
                    const int nj = (r + j) / w->th, yj = 4 * ((r + j) % w->th);
                    const size_t aj = (((size_t)oc * N + nj) * OH + yj) * OW;
                    o[j] = out + aj, rs[j] = res ? res + aj : NULL;
                    nrows[j] = OH - yj < 4 ? OH - yj : 4;
                }
                cnn_wino4_output_rows_avx512(o, rs, nrows, g, (size_t)OW, src, kstride, bs, relu,
                                             w->tw);
                r += g - 1;
                continue;
            }
            if (w->wide) {
                cnn_wino4_output_row_avx512(out + row0, res ? res + row0 : NULL, (size_t)OW, rows,
                                            src, kstride, bs, relu, w->tw);
                continue;
            }
            int tx = 0;
            for (; tx < full; tx += 4) { /* a constant count: whole-vector loads */
                const int nx = OW - 4 * tx < 16 ? OW - 4 * tx : 16;
                tile_group4(out, res, row0 + 4 * (size_t)tx, src + tx, kstride, 4, bias, rows,
                            nx, OW, relu);
            }
            if (tx < w->tw)
                tile_group4(out, res, row0 + 4 * (size_t)tx, src + tx, kstride, w->tw - tx, bias,
                            rows, OW - 4 * tx, OW, relu);
        }
        if (!relu && p->act.kind != CNN_ACT_NONE)
            act_rows4(out + (size_t)oc * plane, w, p, r0, r1);
    }
}

static struct wino4 wino4_setup(float *scratch, const struct cnn_conv2d *p, int N, int wide)
{
    struct wino4 w;
    w.wide = wide;
    w.tw = (p->ow + 3) / 4;
    w.th = (p->oh + 3) / 4;
    w.len = 4 * ((w.tw + 3) & ~3) + 8;
    w.nt = 0;
    w.chunk = cnn_winograd4_chunk_rows(p, N);
    const size_t max_nt = (size_t)w.chunk * w.tw;
    w.v = scratch;
    w.m = w.v + wino_round16(36 * (size_t)p->c * max_nt);
    w.stage = w.m + wino_round16(36 * (size_t)p->oc * max_nt);
    w.zero = w.stage + wino_round16(6 * (size_t)w.len);
    memset(w.stage, 0, sizeof(float) * 6 * (size_t)w.len);
    memset(w.zero, 0, sizeof(float) * (size_t)p->w);
    w.pack = scratch + cnn_winograd4_scratch_floats(p, N);
    return w;
}

/* Output channels [oc_lo, oc_hi) of tile rows [r0, r1) (w->nt tiles) from their V: the
 * products into w->m, then the output transform. */
static void multiply_out4(float *out, const float *res, const float *v, const float *u,
                          int u_packed, const float *b, struct wino4 *w,
                          const struct cnn_conv2d *p, int N, int r0, int r1, int oc_lo, int oc_hi)
{
    const size_t off = (size_t)oc_lo * N * p->oh * p->ow;
    struct cnn_conv2d q = *p;
    q.oc = oc_hi - oc_lo;
    cnn_winograd_products(36, u, u_packed, p, oc_lo, oc_hi, w->nt, v, w->m, w->pack);
    output_transform4(out + off, res ? res + off : NULL, b ? b + oc_lo : NULL, w, &q, N, r0, r1);
}

/* Tile rows [t_lo, t_hi) of output channels [oc_lo, oc_hi); chunking and scratch layout
 * follow the whole conv p. */
static void winograd4_range(float *out, const float *res, const float *inp, const float *u,
                            int u_packed, const float *b, float *scratch,
                            const struct cnn_conv2d *p, int N, int t_lo, int t_hi, int oc_lo,
                            int oc_hi, int wide)
{
    struct wino4 w = wino4_setup(scratch, p, N, wide);
    for (int r0 = t_lo; r0 < t_hi; r0 += w.chunk) {
        const int r1 = r0 + w.chunk < t_hi ? r0 + w.chunk : t_hi;
        w.nt = (size_t)(r1 - r0) * w.tw;
        input_transform4(&w, inp, p, N, r0, r1, 0, p->c);
        multiply_out4(out, res, w.v, u, u_packed, b, &w, p, N, r0, r1, oc_lo, oc_hi);
    }
}

void cnn_conv2d_winograd4_input_part(float *shared, const float *inp, float *scratch,
                                     const struct cnn_conv2d *p, int N, int c_lo, int c_hi)
{
    struct wino4 w = wino4_setup(scratch, p, N, cnn_cpu_avx512());
    w.nt = (size_t)N * w.th * w.tw;
    w.v = shared;
    input_transform4(&w, inp, p, N, 0, N * w.th, c_lo, c_hi);
}

void cnn_conv2d_winograd4_channels_from(float *out, const float *res, const float *shared,
                                        const float *u, int u_packed, const float *b,
                                        float *scratch, const struct cnn_conv2d *p, int N,
                                        int oc_lo, int oc_hi)
{
    struct wino4 w = wino4_setup(scratch, p, N, cnn_cpu_avx512());
    w.nt = (size_t)N * w.th * w.tw;
    multiply_out4(out, res, shared, u, u_packed, b, &w, p, N, 0, N * w.th, oc_lo, oc_hi);
}

void cnn_conv2d_winograd4_rows(float *out, const float *res, const float *inp, const float *u,
                               int u_packed, const float *b, float *scratch,
                               const struct cnn_conv2d *p, int N, int t_lo, int t_hi)
{
    winograd4_range(out, res, inp, u, u_packed, b, scratch, p, N, t_lo, t_hi, 0, p->oc,
                    cnn_cpu_avx512());
}

void cnn_conv2d_winograd4_rows_lanes(float *out, const float *res, const float *inp, const float *u,
                                     int u_packed, const float *b, float *scratch,
                                     const struct cnn_conv2d *p, int N, int t_lo, int t_hi,
                                     int lanes)
{
    winograd4_range(out, res, inp, u, u_packed, b, scratch, p, N, t_lo, t_hi, 0, p->oc,
                    lanes == 16 && cnn_cpu_avx512());
}

void cnn_conv2d_winograd4_channels(float *out, const float *res, const float *inp, const float *u,
                                   int u_packed, const float *b, float *scratch,
                                   const struct cnn_conv2d *p, int N, int oc_lo, int oc_hi)
{
    winograd4_range(out, res, inp, u, u_packed, b, scratch, p, N, 0, N * ((p->oh + 3) / 4), oc_lo,
                    oc_hi, cnn_cpu_avx512());
}

/* Cost of one image through F(m x m) in GEMM multiply-adds: the (m+2)^2 products of every
 * tile (edge tiles count whole: that is the edge waste), the transforms at WINO_TRANSFORM_COST
 * multiply-adds per add (four-lane adds that stream V and M, 36 planes for F(4x4), next to an
 * eight-lane FMA GEMM working in cache) and
 * the weights U streamed from memory once per image at WINO_WEIGHT_COST multiply-adds per
 * float: a batch-1 request reads all of U for a few tiles when the map is small, and U of
 * F(4x4) is 2.25x that of F(2x2).  The constants put the crossovers where bench/conv3x3
 * measured them (docs/engine.md): F(4x4) from 28x28 maps (56x56 from 32 channels), F(2x2)
 * at 14x14 and 7x7. */
#define WINO_TRANSFORM_COST 16.0
#define WINO_WEIGHT_COST 12.0
static double wino_cost(const struct cnn_conv2d *p, int m)
{
    /* adds per tile and channel: B^T d B on (m+2)^2 and A^T m A down to m^2 (counted from
     * the kernels: 2 x 4 x 4 and 2 x 4 x 3 for F(2x2), 2 x 6 x 12 and 6 x 11 + 4 x 11 for
     * F(4x4)) */
    const double t_in = m == 4 ? 144.0 : 32.0, t_out = m == 4 ? 110.0 : 24.0;
    const double tiles = (double)((p->oh + m - 1) / m) * ((p->ow + m - 1) / m);
    const double k = (double)(m + 2) * (m + 2), c = p->c, oc = p->oc;
    return tiles * (k * c * oc + WINO_TRANSFORM_COST * (t_in * c + t_out * oc)) +
           WINO_WEIGHT_COST * k * c * oc;
}

int cnn_conv2d_winograd_tile(const struct cnn_conv2d *p)
{
    if (!cnn_conv2d_use_winograd(p))
        return 0;
    return wino_cost(p, 4) < wino_cost(p, 2) ? 4 : 2;
}

size_t cnn_winograd_plan_floats(const struct cnn_conv2d *p)
{
    switch (cnn_conv2d_winograd_tile(p)) {
    case 4:
        return cnn_winograd4_weights_floats(p);
    case 2:
        return cnn_winograd_weights_floats(p);
    }
    return 0;
}
