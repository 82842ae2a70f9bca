/* Suite conv_direct: the direct convolution kernel (core/layer_conv_direct.c) against naive
 * loops in double -- odd sizes, asymmetric pads, kernels 1x7 to 7x1, channels not multiples
 * of 6 or 8, batch 1..3, activations, with and without the fused 2x2 max pool, split into
 * 1..3 row ranges -- its rule, and LeNet-5 and the CIFAR net through sessions and teams
 * against the same compiled plan run with im2col + GEMM and the separate pool kernel. */
#include "arch.h"
#include "conv_direct.h"
#include "gemm_small.h"
#include "layer.h"
#include "layer_kind.h"
#include "model_internal.h"
#include "session.h"
#include "test_nets.h"
#include "test_util.h"
#include "workers.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct shape {
    int c, h, w, oc, kh, kw, pt, pl, pb, pr, stride;
} SHAPES[] = {
    {1, 28, 28, 6, 5, 5, 0, 0, 0, 0, 1},  /* LeNet-5 conv1 */
    {6, 12, 12, 16, 5, 5, 0, 0, 0, 0, 1}, /* LeNet-5 conv2 */
    {3, 32, 32, 32, 3, 3, 1, 1, 1, 1, 1}, /* the CIFAR net's first conv */
    {5, 9, 13, 7, 3, 3, 1, 2, 0, 1, 1},   /* asymmetric pads, odd sizes */
    {7, 11, 7, 13, 3, 5, 2, 0, 1, 2, 1},  /* OW 7: two rows per tile */
    {2, 6, 5, 1, 2, 2, 0, 0, 0, 0, 1},    /* one output channel, even kernel */
    {3, 7, 19, 9, 4, 3, 1, 1, 1, 1, 1},   /* OW 18: a 2-column tail tile */
    {1, 5, 3, 6, 3, 3, 1, 1, 1, 1, 1},    /* tiny: OW 3, odd OH */
    {9, 17, 17, 12, 7, 1, 3, 0, 3, 0, 1}, /* 7x1 */
    {11, 8, 23, 17, 1, 7, 0, 3, 0, 3, 1}, /* 1x7 */
    {4, 10, 41, 8, 5, 5, 2, 2, 2, 2, 1},  /* wide rows: 41 columns */
    {3, 37, 44, 13, 7, 7, 3, 3, 3, 3, 2}, /* stride 2: a ResNet stem, OW 22: a 6-column tail */
    {3, 16, 34, 8, 3, 3, 1, 1, 1, 1, 2},  /* stride 2: a 3x3 stem, OW 17 */
    {2, 11, 12, 7, 3, 3, 0, 0, 0, 0, 2},  /* stride 2 unpadded, OW 5: two rows per tile */
    {5, 12, 40, 9, 5, 4, 2, 1, 1, 2, 2},  /* stride 2, odd padded width 43, 5x4 */
    {3, 21, 70, 10, 7, 7, 3, 3, 3, 3, 2}, /* stride 2, OW 35: AVX-512 four-row tiles, ragged */
    {2, 13, 64, 6, 3, 3, 1, 1, 1, 1, 2},  /* stride 2, OW 32: full four-row tiles, OH 7 */
};
#define N_SHAPES ((int)(sizeof SHAPES / sizeof SHAPES[0]))

static const struct cnn_act_params ACTS[] = {
    {CNN_ACT_NONE, 0, 0},
    {CNN_ACT_RELU, 0, 0},
    {CNN_ACT_SIGMOID, 0, 0},
    {CNN_ACT_LEAKY_RELU, 0.1f, 0},
};
#define N_ACTS ((int)(sizeof ACTS / sizeof ACTS[0]))

static struct cnn_conv2d conv_of(const struct shape *s, int bias, struct cnn_act_params act)
{
    struct cnn_conv2d p = {.c = s->c, .h = s->h, .w = s->w, .oc = s->oc, .kh = s->kh,
                           .kw = s->kw, .sh = s->stride, .sw = s->stride, .dh = 1, .dw = 1,
                           .pad_t = s->pt, .pad_l = s->pl, .pad_b = s->pb, .pad_r = s->pr,
                           .groups = 1, .has_bias = bias, .act = act};
    struct cnn_err err = {0};
    ck_assert_msg(cnn_conv2d_shape(&p, &err) == 0, "%s", err.msg);
    return p;
}

/* act(conv + b) at (oc, n, oy, ox) of inp (C, N, H, W), in double; *mag = sum of |terms|. */
static double naive_at(const float *inp, const float *w, const float *b,
                       const struct cnn_conv2d *p, int N, int oc, int n, int oy, int ox,
                       double *mag)
{
    double sum = b ? b[oc] : 0.0, m = b ? fabs(b[oc]) : 0.0;
    for (int c = 0; c < p->c; c++)
        for (int ky = 0; ky < p->kh; ky++)
            for (int kx = 0; kx < p->kw; kx++) {
                const int y = oy * p->sh - p->pad_t + ky, x = ox * p->sw - p->pad_l + kx;
                if (y < 0 || y >= p->h || x < 0 || x >= p->w)
                    continue;
                const double t = (double)w[((oc * p->c + c) * p->kh + ky) * p->kw + kx] *
                                 inp[(((size_t)c * N + n) * p->h + y) * p->w + x];
                sum += t, m += fabs(t);
            }
    *mag = m;
    return act_ref(sum, &p->act);
}

/* The naive output (max-pooled by q when q: the max over the window's conv outputs that
 * exist, padding never counted) and a per-value error bound. */
static void naive(double *ref, double *tol, const float *inp, const float *w, const float *b,
                  const struct cnn_conv2d *p, int N, const struct cnn_pool2d *q)
{
    const int oh = q ? q->oh : p->oh, ow = q ? q->ow : p->ow;
    const int kh = q ? q->kh : 1, kw = q ? q->kw : 1, sh = q ? q->sh : 1, sw = q ? q->sw : 1;
    const int pt = q ? q->pad_t : 0, pl = q ? q->pad_l : 0;
    const int K = p->c * p->kh * p->kw;
    const size_t plane = (size_t)p->oh * p->ow;
    double *cv = malloc(plane * 2 * sizeof(double)), *cm = cv + plane; /* one (oc, n) plane */
    ck_assert(cv);
    size_t i = 0;
    for (int oc = 0; oc < p->oc; oc++)
        for (int n = 0; n < N; n++) {
            for (int y = 0; y < p->oh; y++)
                for (int x = 0; x < p->ow; x++)
                    cv[y * p->ow + x] = naive_at(inp, w, b, p, N, oc, n, y, x, &cm[y * p->ow + x]);
            for (int y = 0; y < oh; y++)
                for (int x = 0; x < ow; x++, i++) {
                    double best = -INFINITY, mag = 0.0;
                    for (int dy = 0; dy < kh; dy++)
                        for (int dx = 0; dx < kw; dx++) {
                            const int cy = y * sh - pt + dy, cx = x * sw - pl + dx;
                            if (cy < 0 || cy >= p->oh || cx < 0 || cx >= p->ow)
                                continue;
                            best = fmax(best, cv[cy * p->ow + cx]);
                            mag = fmax(mag, cm[cy * p->ow + cx]);
                        }
                    ref[i] = best;
                    tol[i] = (K + 2) * 1.2e-7 * mag + 1e-6;
                }
        }
    free(cv);
}

/* The max pools tried on each conv: none (0), then kh, kw, sh, sw, pads (t, l, b, r) and
 * ceil mode -- 2x2/2 (pooled in the tiles after a stride-1 conv, over bands after a
 * strided one), ResNet's 3x3/2 pad 1, GoogLeNet's 3x3/2 in ceil mode, overlapping 3x3/1,
 * and an uneven 2x3 window. */
static const int POOLS[][9] = {{0},
                               {2, 2, 2, 2, 0, 0, 0, 0, 0},
                               {3, 3, 2, 2, 1, 1, 1, 1, 0},
                               {3, 3, 2, 2, 0, 0, 0, 0, 1},
                               {3, 3, 1, 1, 1, 1, 1, 1, 0},
                               {2, 3, 1, 2, 1, 0, 0, 1, 0}};
#define N_POOLS ((int)(sizeof POOLS / sizeof POOLS[0]))

/* Pool v of POOLS over p's output in *q; 0 when v is none or the map is too small for it. */
static int pool_of(int v, const struct cnn_conv2d *p, struct cnn_pool2d *q)
{
    const int *d = POOLS[v];
    if (!d[0])
        return 0;
    *q = (struct cnn_pool2d){.c = p->oc,
                             .h = p->oh,
                             .w = p->ow,
                             .kh = d[0],
                             .kw = d[1],
                             .sh = d[2],
                             .sw = d[3],
                             .pad_t = d[4],
                             .pad_l = d[5],
                             .pad_b = d[6],
                             .pad_r = d[7],
                             .ceil_mode = d[8]};
    struct cnn_err err = {0};
    return cnn_pool2d_shape(q, &err) == 0 && q->oh > 0 && q->ow > 0;
}

/* The kernel on conv p (pooled by q when q) over batch N with `lanes`-wide vectors: over
 * the whole range against the naive loops, and over 2 and 3 row ranges bit-identical to
 * it; nothing outside the output written.  Returns the largest error against naive. */
static double check_case(const struct cnn_conv2d *pc, const struct cnn_pool2d *q, int N, int lanes,
                         const char *what)
{
    const struct cnn_conv2d p = *pc;
    ck_assert(cnn_conv_direct_applies(&p));
    ck_assert(!q || cnn_conv_direct_fuses_pool(&p, q));
    const int oh = q ? q->oh : p.oh, ow = q ? q->ow : p.ow;
    const size_t n_in = (size_t)p.c * N * p.h * p.w;
    const size_t n_out = (size_t)p.oc * N * oh * ow;
    const size_t n_w = (size_t)p.oc * p.c * p.kh * p.kw;
    float *inp = rand_buf(n_in, 1.0f), *w = rand_buf(n_w, 0.5f);
    float *b = p.has_bias ? rand_buf((size_t)p.oc, 0.5f) : NULL;
    float *wp = zero_buf(cnn_conv_direct_weights_floats(&p));
    float *scratch = zero_buf(cnn_conv_direct_scratch_floats(&p, q) + 1);
    float *out = malloc((n_out + 16) * sizeof(float));
    float *part = malloc((n_out + 16) * sizeof(float));
    double *ref = malloc(n_out * sizeof(double)), *tol = malloc(n_out * sizeof(double));
    ck_assert(out && part && ref && tol);
    for (size_t i = 0; i < n_out + 16; i++)
        out[i] = NAN;
    cnn_conv_direct_pack(wp, w, &p);
    cnn_conv_direct_rows_lanes(out, inp, wp, b, scratch, &p, q, N, 0, N * oh, lanes);
    naive(ref, tol, inp, w, b, &p, N, q);
    double worst = 0.0;
    for (size_t i = 0; i < n_out; i++) {
        const double e = fabs(out[i] - ref[i]);
        if (!(e <= tol[i])) /* one check call per failure: each call costs a write */
            ck_assert_msg(0, "%s lanes %d N %d: out[%zu] %g, want %g", what, lanes, N, i, out[i],
                          ref[i]);
        worst = e > worst ? e : worst;
    }
    for (int i = 0; i < 16; i++)
        ck_assert_msg(isnan(out[n_out + i]), "wrote past the output");
    for (int parts = 2; parts <= 3; parts++) {
        for (size_t i = 0; i < n_out + 16; i++)
            part[i] = NAN;
        for (int k = 0; k < parts; k++) {
            size_t lo, hi;
            cnn_part_range((size_t)N * oh, k, parts, &lo, &hi);
            cnn_conv_direct_rows_lanes(part, inp, wp, b, scratch, &p, q, N, (int)lo, (int)hi,
                                       lanes);
        }
        ck_assert_msg(memcmp(part, out, n_out * sizeof(float)) == 0,
                      "%s: %d row ranges differ from one", what, parts);
        for (int i = 0; i < 16; i++)
            ck_assert(isnan(part[n_out + i]));
    }
    free(inp), free(w), free(b), free(wp), free(scratch);
    free(out), free(part), free(ref), free(tol);
    return worst;
}

/* Shape s_i, each vector width the CPU has (AVX2's 8 lanes, AVX-512's 16), each
 * activation, bias or not, batch 1..3, each pool of POOLS, through check_case(). */
START_TEST(test_direct_matches_naive_loops)
{
    ck_assert_msg(cnn_gemm_small_vectorised(), "no AVX2+FMA: the direct path never runs");
    const struct shape *s = &SHAPES[_i];
    lcg_state = 77u + (unsigned)_i;
    double worst = 0.0;
    int cases = 0, in_tiles = 0, banded = 0;
    for (int lanes = 8; lanes <= cnn_conv_direct_max_lanes(); lanes *= 2)
        for (int a = 0; a < N_ACTS; a++)
            for (int bias = 0; bias <= 1; bias++)
                for (int N = 1; N <= 3; N++)
                    for (int pv = 0; pv < N_POOLS; pv++) {
                        const struct cnn_conv2d p = conv_of(s, bias, ACTS[a]);
                        struct cnn_pool2d q;
                        const int pooled = pool_of(pv, &p, &q);
                        if (pv && !pooled)
                            continue; /* the map is smaller than the window */
                        in_tiles += pooled && cnn_conv_direct_pools_in_tiles(&p, &q);
                        banded += pooled && !cnn_conv_direct_pools_in_tiles(&p, &q);
                        char what[64];
                        snprintf(what, sizeof what, "shape %d act %d bias %d pool %d", _i, a, bias,
                                 pv);
                        const double e = check_case(&p, pooled ? &q : NULL, N, lanes, what);
                        worst = e > worst ? e : worst;
                        cases++;
                    }
    printf("conv_direct: shape %d (%dx%dx%d -> %d, %dx%d): %d cases (lanes 8 to %d; pooled in "
           "tiles %d, over bands %d), max abs err %.3g vs naive\n",
           _i, s->c, s->h, s->w, s->oc, s->kh, s->kw, cases, cnn_conv_direct_max_lanes(), in_tiles,
           banded, worst);
    ck_assert_int_gt(banded, 0);
}
END_TEST

/* Maps wide and deep enough that a pool runs over several bands of conv rows (a band
 * holds about 128 Ki floats: 7 rows of 70 x 260 here), each band keeping the rows the last
 * one computed that it reads too: stride 1 and 2 convs, pools that share rows between
 * windows (3x3/2, 3x3/1), one whose windows skip none (2x3, stride 1 x 2), and an
 * activation applied to the band before pooling (sigmoid). */
START_TEST(test_pool_over_bands)
{
    static const struct shape wide[] = {
        {2, 23, 260, 70, 3, 3, 1, 1, 1, 1, 1}, /* OW 260 */
        {1, 40, 520, 70, 7, 7, 3, 3, 3, 3, 2}, /* a stem's kernel, OW 260 */
    };
    static const int pools[] = {2, 4, 5};
    lcg_state = 991u;
    double worst = 0.0;
    int cases = 0;
    for (int lanes = 8; lanes <= cnn_conv_direct_max_lanes(); lanes *= 2)
        for (int sh = 0; sh < 2; sh++)
            for (int pi = 0; pi < 3; pi++)
                for (int a = 1; a <= 2; a++) { /* relu, sigmoid */
                    const struct cnn_conv2d p = conv_of(&wide[sh], 1, ACTS[a]);
                    struct cnn_pool2d q;
                    ck_assert(pool_of(pools[pi], &p, &q));
                    ck_assert(!cnn_conv_direct_pools_in_tiles(&p, &q));
                    /* more pooled rows than a band's conv rows (128 Ki floats, 7 rows here) */
                    ck_assert_int_gt(q.oh, 131072 / (p.oc * p.ow));
                    char what[64];
                    snprintf(what, sizeof what, "wide shape %d act %d pool %d", sh, a, pools[pi]);
                    const double e = check_case(&p, &q, 2, lanes, what);
                    worst = e > worst ? e : worst;
                    cases++;
                }
    printf("conv_direct: pools over bands: %d cases, max abs err %.3g vs naive\n", cases, worst);
}
END_TEST

START_TEST(test_rule)
{
    const struct shape lenet = {6, 12, 12, 16, 5, 5, 0, 0, 0, 0, 1};
    struct cnn_conv2d p = conv_of(&lenet, 1, ACTS[1]);
    ck_assert_int_eq(cnn_conv_direct_applies(&p), cnn_gemm_small_vectorised());
    struct cnn_conv2d q = p;
    q.sh = 2, q.sw = 2;
    ck_assert_int_eq(cnn_conv_direct_applies(&q), cnn_gemm_small_vectorised()); /* stems */
    q.kh = q.kw = 1;
    ck_assert(!cnn_conv_direct_applies(&q)); /* strided 1x1: its own GEMM, residual fused */
    q = p, q.sh = 3, q.sw = 3;
    ck_assert(!cnn_conv_direct_applies(&q)); /* stride 3: im2col */
    q.sh = 2, q.sw = 1;
    ck_assert(!cnn_conv_direct_applies(&q)); /* uneven strides */
    q = p, q.dh = 2;
    ck_assert(!cnn_conv_direct_applies(&q)); /* dilated */
    q = p, q.groups = 2;
    ck_assert(!cnn_conv_direct_applies(&q)); /* grouped */
    q = p, q.kh = q.kw = 1;
    ck_assert(!cnn_conv_direct_applies(&q)); /* pointwise: one GEMM on the input already */
    q = p, q.c = CNN_CONV_DIRECT_MAX_K / 25 + 1;
    ck_assert(!cnn_conv_direct_applies(&q)); /* too deep for L1 */
    q = p, q.c = CNN_CONV_DIRECT_MAX_K / 25;
    ck_assert_int_eq(cnn_conv_direct_applies(&q), cnn_gemm_small_vectorised());

    struct cnn_pool2d pool = {
        .c = 16, .h = 8, .w = 8, .kh = 2, .kw = 2, .sh = 2, .sw = 2, .oh = 4, .ow = 4};
    ck_assert(cnn_conv_direct_pools_in_tiles(&p, &pool));
    ck_assert(cnn_conv_direct_fuses_pool(&p, &pool));
    /* pools the tiles do not take fuse over bands of rows */
    struct cnn_pool2d other = pool;
    other.kh = other.kw = 3, other.oh = other.ow = 3;
    ck_assert(!cnn_conv_direct_pools_in_tiles(&p, &other)); /* 3x3 window */
    ck_assert(cnn_conv_direct_fuses_pool(&p, &other));
    other = pool, other.sh = other.sw = 1, other.oh = other.ow = 7;
    ck_assert(!cnn_conv_direct_pools_in_tiles(&p, &other)); /* overlapping windows */
    ck_assert(cnn_conv_direct_fuses_pool(&p, &other));
    other = pool, other.pad_t = 1, other.oh = 5;
    ck_assert(!cnn_conv_direct_pools_in_tiles(&p, &other)); /* padded */
    ck_assert(cnn_conv_direct_fuses_pool(&p, &other));
    q = p, q.act = (struct cnn_act_params){CNN_ACT_HARD_SWISH, 0, 0};
    ck_assert(!cnn_conv_direct_pools_in_tiles(&q, &pool)); /* not monotone: max first is wrong */
    ck_assert(cnn_conv_direct_fuses_pool(&q, &pool));      /* a band is activated, then pooled */
    q = p, q.act = (struct cnn_act_params){CNN_ACT_LEAKY_RELU, -0.5f, 0};
    ck_assert(!cnn_conv_direct_pools_in_tiles(&q, &pool));
    q = p, q.act = (struct cnn_act_params){CNN_ACT_TANH, 0, 0};
    ck_assert(cnn_conv_direct_pools_in_tiles(&q, &pool));
    /* never fused */
    other = pool, other.dh = 2, other.kh = 3, other.pad_t = 1, other.oh = 4;
    ck_assert(!cnn_conv_direct_fuses_pool(&p, &other)); /* dilated */
    other = pool, other.c = 8;
    ck_assert(!cnn_conv_direct_fuses_pool(&p, &other)); /* not the conv's output */
    q = p, q.w = CNN_MAXPOOL_ROW_MAX + 8;               /* OW 2052 */
    struct cnn_err err = {0};
    ck_assert_msg(cnn_conv2d_shape(&q, &err) == 0, "%s", err.msg);
    other = pool, other.w = q.ow, other.ow = q.ow / 2, other.kh = 3, other.oh = 3;
    ck_assert(!cnn_conv_direct_fuses_pool(&q, &other)); /* rows past the pool's stack row */
    q = p, q.sh = q.sw = 2;
    ck_assert_msg(cnn_conv2d_shape(&q, &err) == 0, "%s", err.msg);
    const struct cnn_pool2d pool4 = {.c = 16,
                                     .h = q.oh,
                                     .w = q.ow,
                                     .kh = 2,
                                     .kw = 2,
                                     .sh = 2,
                                     .sw = 2,
                                     .oh = q.oh / 2,
                                     .ow = q.ow / 2};
    ck_assert_int_eq(q.oh, 4);
    ck_assert(!cnn_conv_direct_pools_in_tiles(&q, &pool4)); /* strided: tiles are not pool pairs */
    ck_assert(cnn_conv_direct_fuses_pool(&q, &pool4));
}
END_TEST

/* (a, b, inner) -> (b, a, inner). */
static void swap_outer(float *dst, const float *src, int a, int b, size_t inner)
{
    for (int i = 0; i < a; i++)
        for (int j = 0; j < b; j++)
            memcpy(dst + ((size_t)j * a + i) * inner, src + ((size_t)i * b + j) * inner,
                   inner * sizeof(float));
}

/* m's compiled plan op by op, as the session runs it, except that a direct conv runs
 * im2col + GEMM (cnn_conv2d_forward) and its fused pool the max-pool kernel: the path the
 * direct kernel replaced.  x (n, C, H, W) -> out (n, classes). */
static void forward_im2col(const struct cnn_model *m, const float *x, int n, float *out)
{
    float **val = calloc((size_t)m->n_layers, sizeof *val);
    ck_assert(val);
    for (int v = 0; v < m->n_layers; v++) {
        const struct cnn_layer *l = &m->layers[v];
        val[v] = malloc((size_t)n * l->c * l->h * l->w * sizeof(float));
        ck_assert(val[v]);
    }
    const struct cnn_layer *l0 = &m->layers[0];
    swap_outer(val[0], x, n, l0->c, (size_t)l0->h * l0->w);
    for (int k = 0; k < m->n_ops; k++) {
        const struct cnn_op *op = &m->ops[k];
        const struct cnn_layer_kind_ops *kind = cnn_layer_kind_ops(op->kind);
        const float *in[CNN_MAX_INPUTS];
        for (int j = 0; j < op->n_inputs; j++)
            in[j] = val[op->inputs[j]];
        size_t col_n = kind->scratch_floats ? kind->scratch_floats(op, n) : 0;
        if (op->wd)
            col_n = cnn_conv2d_scratch_floats(&op->conv, n);
        float *col = malloc((col_n + 1) * sizeof(float));
        ck_assert(col);
        if (op->wd) {
            const struct cnn_conv2d *p = &op->conv;
            float *y = op->pool.kh ? malloc((size_t)n * p->oc * p->oh * p->ow * sizeof(float))
                                   : val[op->out];
            ck_assert(y);
            cnn_conv2d_forward(y, in[0], op->w, op->b, col, p, n);
            if (op->pool.kh) {
                cnn_maxpool_forward(val[op->out], y, &op->pool, n);
                free(y);
            }
        } else {
            const struct cnn_op_run r = {.out = val[op->out], .in = in, .col = col, .n = n};
            kind->run(m, op, &r);
        }
        free(col);
    }
    const int v = m->alias_of[m->n_layers - 1];
    const struct cnn_layer *ol = &m->layers[v];
    swap_outer(out, val[v], ol->c, n, (size_t)ol->h * ol->w);
    for (int i = 0; i < m->n_layers; i++)
        free(val[i]);
    free(val);
}

/* LeNet-5 (both convs direct, both pools fused), the CIFAR net (its first conv direct
 * and pooled) and ResNet-18 (its 7x7 stride-2 stem direct, its 3x3 stride-2 pool fused over bands,
 * nothing else): softmax through a session and through teams of 1..3, batches 1..3, against the
 * im2col path within 1e-5. */
START_TEST(test_nets_match_im2col_path)
{
    static const struct {
        const char *arch;
        int direct, pooled, exact; /* at least, or exactly */
    } nets[] = {{"lenet5", 2, 2, 1}, {"cifar_cnn", 1, 1, 0}, {"resnet18", 1, 1, 1}};
    struct cnn_err err = {0};
    struct cnn_model *m = NULL;
    ck_assert_msg(cnn_arch_build(nets[_i].arch, 0, &m, &err) == 0, "%s", err.msg);
    cnn_model_init_random(m, 5);
    compiled(m);
    int direct = 0, pooled = 0;
    for (int k = 0; k < m->n_ops; k++) {
        direct += m->ops[k].wd != NULL;
        pooled += m->ops[k].pool.kh != 0;
    }
    ck_assert_int_ge(direct, nets[_i].direct);
    ck_assert_int_ge(pooled, nets[_i].pooled);
    ck_assert(!nets[_i].exact || (direct == nets[_i].direct && pooled == nets[_i].pooled));
    const int max_n = 3, K = cnn_model_num_classes(m);
    const struct cnn_layer *l0 = &m->layers[0];
    const size_t img = (size_t)l0->c * l0->h * l0->w;
    float *x = rand_buf(max_n * img, 1.0f), *want = malloc(max_n * K * sizeof(float));
    ck_assert(want);
    struct cnn_session *s = cnn_session_create_parts(m, max_n, 3, &err);
    ck_assert_msg(s != NULL, "%s", err.msg);
    double worst = 0.0, spread = 0.0;
    for (int threads = 1; threads <= 3; threads++) {
        struct cnn_workers *team = cnn_workers_create(threads, &err);
        ck_assert_msg(team != NULL, "%s", err.msg);
        for (int n = 1; n <= max_n; n++) {
            const float *got;
            forward_im2col(m, x, n, want);
            ck_assert_int_eq(cnn_session_forward_team(s, m, team, x, n, &got, &err), 0);
            for (int i = 0; i < n * K; i++) {
                worst = fmax(worst, fabs((double)got[i] - want[i]));
                spread = fmax(spread, fabs((double)want[i] - 1.0 / K));
            }
        }
        cnn_workers_destroy(team);
    }
    printf("conv_direct: %s, teams 1-3, batches 1-3: max abs diff %.3g of softmax vs im2col "
           "(largest |p - 1/K| %.3g)\n",
           nets[_i].arch, worst, spread);
    ck_assert_msg(worst <= 1e-5, "vs im2col %g", worst);
    ck_assert_msg(spread > 1e-3, "uniform output: the comparison would see nothing");
    cnn_session_destroy(s);
    free(x);
    free(want);
    cnn_model_destroy(m);
}
END_TEST

Suite *conv_direct_suite(void)
{
    Suite *s = suite_create("conv_direct");
    TCase *tc = tcase_create("kernel");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_direct_matches_naive_loops, 0, N_SHAPES);
    tcase_add_test(tc, test_pool_over_bands);
    tcase_add_test(tc, test_rule);
    tcase_add_loop_test(tc, test_nets_match_im2col_path, 0, 3);
    suite_add_tcase(s, tc);
    return s;
}
