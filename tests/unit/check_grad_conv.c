/* Suite grad_conv: the conv2d (im2col, chunked, Winograd), dense and pooling backward kernels
 * of grad.h against central finite differences of the engine's forward kernels (test_fd.h),
 * L = sum(r * out) with random r, on small odd shapes; conv also against naive direct loops
 * in double.  Also the accumulation contract (a second call doubles the gradient), NULL
 * gradients, max-pool tie routing and the scratch sizes. */
#include "grad.h"
#include "layer.h"
#include "test_fd.h"
#include "test_util.h"

#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- conv2d ------------------------------------------------------------ */

struct conv_case {
    int n, c, h, w, oc, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr, groups, bias;
};

static const struct conv_case conv_cases[] = {
    {2, 3, 7, 6, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, /* plain 3x3 pad 1 */
    {3, 2, 9, 8, 3, 3, 2, 2, 2, 2, 2, 1, 0, 2, 1, 1, 1}, /* stride 2, dilation 2, asym pad */
    {2, 4, 7, 9, 6, 3, 3, 2, 1, 1, 2, 0, 2, 1, 0, 2, 1}, /* groups 2 */
    {2, 3, 9, 7, 6, 3, 3, 2, 2, 2, 1, 2, 1, 0, 1, 3, 1}, /* depthwise x2, stride 2 */
    {3, 5, 6, 7, 5, 3, 3, 1, 1, 1, 1, 1, 0, 1, 2, 5, 0}, /* depthwise stride 1, no bias */
    {2, 4, 5, 7, 6, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 2, 1}, /* pointwise, groups 2 */
    {3, 3, 7, 5, 4, 1, 1, 2, 2, 1, 1, 0, 0, 0, 0, 1, 0}, /* 1x1 stride 2 (im2col path) */
    {2, 1, 9, 9, 4, 5, 5, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1}, /* single input channel, valid */
    {2, 6, 5, 5, 4, 2, 3, 3, 2, 1, 1, 1, 1, 1, 1, 2, 1}, /* stride 3x2, even kernel height */
};
#define N_CONV_CASES (int)(sizeof conv_cases / sizeof conv_cases[0])

static void conv_params(struct cnn_conv2d *p, const struct conv_case *k)
{
    memset(p, 0, sizeof *p);
    p->c = k->c, p->h = k->h, p->w = k->w, p->oc = k->oc, p->kh = k->kh, p->kw = k->kw;
    p->sh = k->sh, p->sw = k->sw, p->dh = k->dh, p->dw = k->dw;
    p->pad_t = k->pt, p->pad_l = k->pl, p->pad_b = k->pb, p->pad_r = k->pr;
    p->groups = k->groups, p->has_bias = k->bias;
    struct cnn_err err = {0};
    ck_assert_msg(cnn_conv2d_shape(p, &err) == 0, "bad test case: %s", err.msg);
}

/* dinp, dw, db from the definition of a convolution, in double, accumulated into. */
static void conv_backward_ref(double *dinp, double *dw, double *db, const float *dout,
                              const float *inp, const float *w, const struct cnn_conv2d *p, int N)
{
    const int cg = p->c / p->groups, ocg = p->oc / p->groups;
    for (int oc = 0; oc < p->oc; oc++) {
        const int g = oc / ocg;
        for (int n = 0; n < N; n++)
            for (int oy = 0; oy < p->oh; oy++)
                for (int ox = 0; ox < p->ow; ox++) {
                    const double go = dout[(((size_t)oc * N + n) * p->oh + oy) * p->ow + ox];
                    db[oc] += go;
                    for (int icl = 0; icl < cg; icl++)
                        for (int ky = 0; ky < p->kh; ky++)
                            for (int kx = 0; kx < p->kw; kx++) {
                                const int iy = oy * p->sh - p->pad_t + ky * p->dh;
                                const int ix = ox * p->sw - p->pad_l + kx * p->dw;
                                if (iy < 0 || iy >= p->h || ix < 0 || ix >= p->w)
                                    continue;
                                const size_t ii =
                                    (((size_t)(g * cg + icl) * N + n) * p->h + iy) * p->w + ix;
                                const size_t wi =
                                    (((size_t)oc * cg + icl) * p->kh + ky) * p->kw + kx;
                                dw[wi] += go * inp[ii];
                                dinp[ii] += go * w[wi];
                            }
                }
    }
}

static void check_vs_ref(const char *what, const float *got, const double *want, size_t n)
{
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double e = fabs(got[i] - want[i]);
        ck_assert_msg(e <= 1e-4 * (1.0 + fabs(want[i])), "%s[%zu]: %g vs reference %g", what, i,
                      (double)got[i], want[i]);
        worst = e > worst ? e : worst;
    }
    printf("%-48s ref max abs err %.2e (%zu values)\n", what, worst, n);
}

struct conv_ctx {
    float *out, *inp, *w, *b, *col;
    const struct cnn_conv2d *p;
    int N;
};

static void conv_fwd(void *v)
{
    struct conv_ctx *c = v;
    cnn_conv2d_forward(c->out, c->inp, c->w, c->b, c->col, c->p, c->N);
}

START_TEST(test_conv2d_backward_matches_finite_differences_and_direct_loops)
{
    const struct conv_case *k = &conv_cases[_i];
    struct cnn_conv2d p;
    conv_params(&p, k);
    lcg_state = 100u + (unsigned)_i;
    const int N = k->n, cg = p.c / p.groups;
    const size_t n_in = (size_t)p.c * N * p.h * p.w, n_out = (size_t)p.oc * N * p.oh * p.ow;
    const size_t n_w = (size_t)p.oc * cg * p.kh * p.kw;
    float *inp = rand_buf(n_in, 1.0f), *w = rand_buf(n_w, 1.0f);
    float *b = k->bias ? rand_buf((size_t)p.oc, 1.0f) : NULL;
    float *r = rand_buf(n_out, 1.0f), *out = zero_buf(n_out);
    float *col = zero_buf(cnn_conv2d_scratch_floats(&p, N));
    const size_t ns = cnn_conv2d_backward_scratch_floats(&p, N);
    float *scratch = ns ? zero_buf(ns) : NULL;
    float *dinp = zero_buf(n_in), *dw = zero_buf(n_w), *db = zero_buf((size_t)p.oc);

    cnn_conv2d_backward(dinp, dw, k->bias ? db : NULL, r, inp, w, scratch, &p, N);

    double *rin = calloc(n_in, sizeof *rin), *rw = calloc(n_w, sizeof *rw);
    double *rb = calloc((size_t)p.oc, sizeof *rb);
    ck_assert(rin && rw && rb);
    conv_backward_ref(rin, rw, rb, r, inp, w, &p, N);
    char name[64];
    snprintf(name, sizeof name, "conv case %d dinp", _i);
    check_vs_ref(name, dinp, rin, n_in);
    snprintf(name, sizeof name, "conv case %d dw", _i);
    check_vs_ref(name, dw, rw, n_w);
    if (k->bias) {
        snprintf(name, sizeof name, "conv case %d db", _i);
        check_vs_ref(name, db, rb, (size_t)p.oc);
    }

    struct conv_ctx ctx = {out, inp, w, b, col, &p, N};
    struct fd f = {conv_fwd, &ctx, out, r, n_out};
    snprintf(name, sizeof name, "conv case %d dinp", _i);
    fd_check(name, &f, inp, n_in, dinp, 1e-2f, FD_TOL);
    snprintf(name, sizeof name, "conv case %d dw", _i);
    fd_check(name, &f, w, n_w, dw, 1e-2f, FD_TOL);
    if (k->bias) {
        snprintf(name, sizeof name, "conv case %d db", _i);
        fd_check(name, &f, b, (size_t)p.oc, db, 1e-2f, FD_TOL);
    }

    /* Each gradient alone (the others NULL) equals its part of the full call. */
    float *dinp1 = zero_buf(n_in), *dw1 = zero_buf(n_w), *db1 = zero_buf((size_t)p.oc);
    cnn_conv2d_backward(dinp1, NULL, NULL, r, inp, w, scratch, &p, N);
    cnn_conv2d_backward(NULL, dw1, NULL, r, inp, w, scratch, &p, N);
    cnn_conv2d_backward(NULL, NULL, db1, r, inp, w, scratch, &p, N);
    check_same("conv dinp alone", dinp1, dinp, n_in, 1e-6f);
    check_same("conv dw alone", dw1, dw, n_w, 1e-6f);
    if (k->bias)
        check_same("conv db alone", db1, db, (size_t)p.oc, 1e-6f);

    /* Accumulation: a second call adds the same gradient again. */
    float *d0 = copy_buf(dinp, n_in), *w0 = copy_buf(dw, n_w), *b0 = copy_buf(db, (size_t)p.oc);
    cnn_conv2d_backward(dinp, dw, db, r, inp, w, scratch, &p, N);
    check_doubled("conv dinp", dinp, d0, n_in);
    check_doubled("conv dw", dw, w0, n_w);
    if (k->bias)
        check_doubled("conv db", db, b0, (size_t)p.oc);

    free(d0), free(w0), free(b0), free(dinp1), free(dw1), free(db1);
    free(rin), free(rw), free(rb);
    free(inp), free(w), free(b), free(r), free(out), free(col), free(scratch);
    free(dinp), free(dw), free(db);
}
END_TEST

/* A conv big enough to be unrolled in several chunks of output rows, with chunk borders in
 * the middle of an image: compared with the direct loops (finite differences would take
 * 2 forwards per input value). */
START_TEST(test_conv2d_backward_in_chunks_crossing_images_matches_direct_loops)
{
    const struct conv_case k = {5, 32, 15, 16, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    struct cnn_conv2d p;
    conv_params(&p, &k);
    const int N = k.n, rows = N * p.oh, chunk = cnn_conv2d_chunk_rows(&p, N);
    ck_assert_msg(chunk < rows && chunk % p.oh != 0, "chunk %d of %d rows does not split images",
                  chunk, rows);
    lcg_state = 7;
    const size_t n_in = (size_t)p.c * N * p.h * p.w, n_out = (size_t)p.oc * N * p.oh * p.ow;
    const size_t n_w = (size_t)p.oc * p.c * p.kh * p.kw;
    float *inp = rand_buf(n_in, 1.0f), *w = rand_buf(n_w, 1.0f), *r = rand_buf(n_out, 1.0f);
    float *scratch = zero_buf(cnn_conv2d_backward_scratch_floats(&p, N));
    float *dinp = zero_buf(n_in), *dw = zero_buf(n_w), *db = zero_buf((size_t)p.oc);
    cnn_conv2d_backward(dinp, dw, db, r, inp, w, scratch, &p, N);
    double *rin = calloc(n_in, sizeof *rin), *rw = calloc(n_w, sizeof *rw);
    double *rb = calloc((size_t)p.oc, sizeof *rb);
    ck_assert(rin && rw && rb);
    conv_backward_ref(rin, rw, rb, r, inp, w, &p, N);
    check_vs_ref("chunked conv dinp", dinp, rin, n_in);
    check_vs_ref("chunked conv dw", dw, rw, n_w);
    check_vs_ref("chunked conv db", db, rb, (size_t)p.oc);
    free(rin), free(rw), free(rb), free(inp), free(w), free(r), free(scratch);
    free(dinp), free(dw), free(db);
}
END_TEST

/* The trainer's Winograd paths for 3x3 stride-1 convs with >= 16 channels: the input
 * gradient as the Winograd conv of dout with rotated, transposed kernels (added into a
 * dinp that already holds values), the weight gradient in the transformed domain, and the
 * forward, each run as two parts split at an image boundary as the trainer's threads do;
 * against direct loops and the im2col forward. */
START_TEST(test_conv2d_winograd_input_gradient_and_forward_in_parts)
{
    static const struct conv_case cases[] = {
        {3, 16, 9, 10, 24, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, /* same padding */
        {2, 20, 7, 8, 16, 3, 3, 1, 1, 1, 1, 0, 0, 0, 0, 1, 0},  /* valid */
        {2, 16, 8, 7, 16, 3, 3, 1, 1, 1, 1, 2, 2, 2, 2, 1, 1},  /* pad 2: output grows */
        {3, 16, 11, 9, 32, 3, 3, 1, 1, 1, 1, 0, 1, 2, 1, 1, 1}, /* asymmetric, odd sizes */
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const struct conv_case *k = &cases[ci];
        struct cnn_conv2d p, q;
        conv_params(&p, k);
        ck_assert_int_eq(cnn_conv2d_backward_winograd_shape(&p, &q), 1);
        const int N = k->n;
        lcg_state = 11 + (unsigned)ci;
        const size_t n_in = (size_t)p.c * N * p.h * p.w, n_out = (size_t)p.oc * N * p.oh * p.ow;
        const size_t n_w = (size_t)p.oc * p.c * 9;
        float *inp = rand_buf(n_in, 1.0f), *w = rand_buf(n_w, 1.0f), *r = rand_buf(n_out, 1.0f);
        float *b = rand_buf((size_t)p.oc, 1.0f), *dinp = rand_buf(n_in, 1.0f);
        double *rin = calloc(n_in, sizeof *rin), *rw = calloc(n_w, sizeof *rw);
        double *rb = calloc((size_t)p.oc, sizeof *rb);
        ck_assert(rin && rw && rb);
        for (size_t i = 0; i < n_in; i++)
            rin[i] = dinp[i];
        conv_backward_ref(rin, rw, rb, r, inp, w, &p, N);
        size_t scratch_n = cnn_winograd_scratch_floats(&q, N);
        if (cnn_conv2d_scratch_floats(&p, N) > scratch_n)
            scratch_n = cnn_conv2d_scratch_floats(&p, N);
        float *scratch = zero_buf(scratch_n), *tmp = zero_buf(n_w);
        float *u = zero_buf(cnn_winograd_weights_floats(&p));
        cnn_conv2d_backward_winograd_weights(u, tmp, w, &p);
        const int th = (q.oh + 1) / 2; /* tile rows per image of the gradient conv */
        cnn_conv2d_winograd_rows(dinp, dinp, r, u, 0, NULL, scratch, &q, N, 0, th);
        cnn_conv2d_winograd_rows(dinp, dinp, r, u, 0, NULL, scratch, &q, N, th, N * th);
        char what[64];
        snprintf(what, sizeof what, "winograd dinp %dx%dx%d->%d pad %d%d%d%d", p.c, p.h, p.w, p.oc,
                 k->pt, k->pl, k->pb, k->pr);
        check_vs_ref(what, dinp, rin, n_in);
        /* weight gradient in the transformed domain, two parts each with its own dU */
        float *dw = zero_buf(n_w), *du = zero_buf(cnn_winograd_weights_floats(&p));
        const int tf0 = (p.oh + 1) / 2;
        cnn_winograd_weight_grad_rows(du, inp, r, scratch, &p, N, 0, tf0);
        cnn_winograd_weight_grad_finish(dw, du, &p);
        memset(du, 0, cnn_winograd_weights_floats(&p) * sizeof *du);
        cnn_winograd_weight_grad_rows(du, inp, r, scratch, &p, N, tf0, N * tf0);
        cnn_winograd_weight_grad_finish(dw, du, &p);
        snprintf(what, sizeof what, "winograd dw %dx%dx%d->%d pad %d%d%d%d", p.c, p.h, p.w, p.oc,
                 k->pt, k->pl, k->pb, k->pr);
        check_vs_ref(what, dw, rw, n_w);
        free(dw), free(du);
        /* forward in two parts against the im2col forward */
        float *want = zero_buf(n_out), *got = zero_buf(n_out);
        cnn_conv2d_forward(want, inp, w, b, scratch, &p, N);
        cnn_winograd_transform_weights(u, w, &p);
        const int tf = (p.oh + 1) / 2;
        cnn_conv2d_winograd_rows(got, NULL, inp, u, 0, b, scratch, &p, N, 0, tf);
        cnn_conv2d_winograd_rows(got, NULL, inp, u, 0, b, scratch, &p, N, tf, N * tf);
        check_same("winograd forward in parts", got, want, n_out, 1e-4f);
        free(rin), free(rw), free(rb), free(inp), free(w), free(r), free(b), free(dinp);
        free(scratch), free(tmp), free(u), free(want), free(got);
    }
    struct cnn_conv2d p, q; /* stride 2: not a Winograd gradient */
    conv_params(&p, &(struct conv_case){2, 16, 9, 9, 16, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1});
    ck_assert_int_eq(cnn_conv2d_backward_winograd_shape(&p, &q), 0);
}
END_TEST

/* The Winograd weight gradient lays dM out by tile, four output channels per vector: output
 * channel counts that leave 1-3 in the last group, odd maps (a last tile half outside) and
 * three parts split at tile rows inside an image, each part its own dU, against direct
 * loops. */
START_TEST(test_conv2d_winograd_weight_gradient_channel_remainders)
{
    static const struct conv_case cases[] = {
        {2, 17, 9, 7, 18, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0},  /* OC % 4 = 2, odd sizes */
        {3, 16, 6, 11, 19, 3, 3, 1, 1, 1, 1, 0, 1, 1, 0, 1, 0}, /* OC % 4 = 3, asymmetric */
        {2, 20, 7, 5, 17, 3, 3, 1, 1, 1, 1, 2, 2, 2, 2, 1, 0},  /* OC % 4 = 1, pad 2 */
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const struct conv_case *k = &cases[ci];
        struct cnn_conv2d p;
        conv_params(&p, k);
        ck_assert(cnn_conv2d_use_winograd(&p));
        const int N = k->n, rows = N * ((p.oh + 1) / 2);
        lcg_state = 41 + (unsigned)ci;
        const size_t n_in = (size_t)p.c * N * p.h * p.w, n_out = (size_t)p.oc * N * p.oh * p.ow;
        const size_t n_w = (size_t)p.oc * p.c * 9;
        float *inp = rand_buf(n_in, 1.0f), *w = rand_buf(n_w, 1.0f), *r = rand_buf(n_out, 1.0f);
        double *rin = calloc(n_in, sizeof *rin), *rw = calloc(n_w, sizeof *rw);
        double *rb = calloc((size_t)p.oc, sizeof *rb);
        ck_assert(rin && rw && rb);
        conv_backward_ref(rin, rw, rb, r, inp, w, &p, N);
        float *scratch = zero_buf(cnn_winograd_scratch_floats(&p, N)), *dw = zero_buf(n_w);
        float *du = zero_buf(cnn_winograd_weights_floats(&p));
        const int cut[4] = {0, rows / 3, rows / 3 + 1, rows}; /* the middle part: one row */
        for (int part = 0; part < 3; part++) {
            memset(du, 0, cnn_winograd_weights_floats(&p) * sizeof *du);
            cnn_winograd_weight_grad_rows(du, inp, r, scratch, &p, N, cut[part], cut[part + 1]);
            cnn_winograd_weight_grad_finish(dw, du, &p);
        }
        char what[64];
        snprintf(what, sizeof what, "winograd dw %dx%dx%d->%d", p.c, p.h, p.w, p.oc);
        check_vs_ref(what, dw, rw, n_w);
        free(inp), free(w), free(r), free(rin), free(rw), free(rb), free(scratch), free(dw);
        free(du);
    }
}
END_TEST

START_TEST(test_conv2d_backward_scratch_is_zero_only_without_im2col)
{
    for (int i = 0; i < N_CONV_CASES; i++) {
        struct cnn_conv2d p;
        conv_params(&p, &conv_cases[i]);
        const int direct = cnn_conv2d_is_pointwise(&p) || (p.groups == p.c && p.groups > 1);
        const size_t n = cnn_conv2d_backward_scratch_floats(&p, 3);
        ck_assert_msg((n == 0) == direct, "case %d: scratch %zu", i, n);
        if (!direct) /* one chunk of one group's col matrix */
            ck_assert_uint_eq(n, (size_t)(p.c / p.groups) * p.kh * p.kw *
                                     (size_t)cnn_conv2d_chunk_rows(&p, 3) * p.ow);
    }
}
END_TEST

/* ---- dense ------------------------------------------------------------- */

struct dense_ctx {
    float *out, *inp, *w, *b;
    const struct cnn_dense *p;
    int N;
};

static void dense_fwd(void *v)
{
    struct dense_ctx *c = v;
    cnn_dense_forward(c->out, c->inp, c->w, c->b, c->p, c->N);
}

START_TEST(test_dense_backward_matches_finite_differences)
{
    const int N = 3;
    struct cnn_dense p = {.in = 7, .out = 5, .has_bias = 1};
    lcg_state = 11;
    const size_t n_in = (size_t)p.in * N, n_out = (size_t)p.out * N, n_w = (size_t)p.in * p.out;
    float *inp = rand_buf(n_in, 1.0f), *w = rand_buf(n_w, 1.0f), *b = rand_buf(5, 1.0f);
    float *r = rand_buf(n_out, 1.0f), *out = zero_buf(n_out);
    float *dinp = zero_buf(n_in), *dw = zero_buf(n_w), *db = zero_buf(5);
    cnn_dense_backward(dinp, dw, db, r, inp, w, &p, N);
    struct dense_ctx ctx = {out, inp, w, b, &p, N};
    struct fd f = {dense_fwd, &ctx, out, r, n_out};
    fd_check("dense dinp", &f, inp, n_in, dinp, 1e-2f, FD_TOL);
    fd_check("dense dw", &f, w, n_w, dw, 1e-2f, FD_TOL);
    fd_check("dense db", &f, b, 5, db, 1e-2f, FD_TOL);

    float *dw1 = zero_buf(n_w);
    cnn_dense_backward(NULL, dw1, NULL, r, inp, w, &p, N);
    check_same("dense dw alone", dw1, dw, n_w, 1e-6f);
    float *d0 = copy_buf(dinp, n_in), *w0 = copy_buf(dw, n_w), *b0 = copy_buf(db, 5);
    cnn_dense_backward(dinp, dw, db, r, inp, w, &p, N);
    check_doubled("dense dinp", dinp, d0, n_in);
    check_doubled("dense dw", dw, w0, n_w);
    check_doubled("dense db", db, b0, 5);
    free(d0), free(w0), free(b0), free(dw1);
    free(inp), free(w), free(b), free(r), free(out), free(dinp), free(dw), free(db);
}
END_TEST

/* ---- pooling ----------------------------------------------------------- */

struct pool_case {
    int n, c, h, w, kh, kw, sh, sw, pt, pl, pb, pr, ceil, incl;
};

static const struct pool_case pool_cases[] = {
    {2, 3, 7, 7, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1},  /* ceil mode, pad, count_include_pad */
    {2, 3, 7, 7, 3, 3, 2, 2, 1, 1, 1, 1, 1, 0},  /* same, exclude pad */
    {3, 2, 8, 6, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0},  /* plain 2x2 */
    {2, 2, 9, 5, 3, 2, 2, 1, 0, 1, 2, 0, 0, 1},  /* asymmetric pad */
    {2, 4, 6, 9, 2, 3, 3, 2, 1, 0, 0, 2, 1, 0},  /* ceil mode overhang, asym pad */
    {2, 2, 5, 5, 3, 3, 1, 1, 1, 1, 1, 1, 0, 0},  /* overlapping stride 1 */
    {2, 2, 6, 13, 2, 2, 2, 2, 0, 0, 0, 0, 0, 1}, /* plain 2x2, 4 outputs + 2, odd width */
};
#define N_POOL_CASES (int)(sizeof pool_cases / sizeof pool_cases[0])

static void pool_params(struct cnn_pool2d *p, const struct pool_case *k)
{
    memset(p, 0, sizeof *p);
    p->c = k->c, p->h = k->h, p->w = k->w, p->kh = k->kh, p->kw = k->kw, p->sh = k->sh;
    p->sw = k->sw, p->pad_t = k->pt, p->pad_l = k->pl, p->pad_b = k->pb, p->pad_r = k->pr;
    p->ceil_mode = k->ceil, p->count_include_pad = k->incl;
    struct cnn_err err = {0};
    ck_assert_msg(cnn_pool2d_shape(p, &err) == 0, "bad test case: %s", err.msg);
}

struct pool_ctx {
    float *out, *inp;
    const struct cnn_pool2d *p;
    int N, max;
};

static void pool_fwd(void *v)
{
    struct pool_ctx *c = v;
    if (c->max)
        cnn_maxpool_forward(c->out, c->inp, c->p, c->N);
    else
        cnn_avgpool_forward(c->out, c->inp, c->p, c->N);
}

/* Distinct values 0.05 apart in random order: no window max is within 2h of another. */
static float *distinct_buf(size_t n)
{
    float *x = zero_buf(n);
    for (size_t i = 0; i < n; i++)
        x[i] = 0.05f * (float)i - 0.025f * (float)n;
    for (size_t i = n - 1; i > 0; i--) {
        lcg_state = lcg_state * 1664525u + 1013904223u;
        size_t j = (lcg_state >> 8) % (i + 1);
        float t = x[i];
        x[i] = x[j], x[j] = t;
    }
    return x;
}

START_TEST(test_pool_backward_matches_finite_differences)
{
    const struct pool_case *k = &pool_cases[_i];
    struct cnn_pool2d p;
    pool_params(&p, k);
    lcg_state = 300u + (unsigned)_i;
    const int N = k->n;
    const size_t n_in = (size_t)p.c * N * p.h * p.w, n_out = (size_t)p.c * N * p.oh * p.ow;
    float *inp = distinct_buf(n_in), *r = rand_buf(n_out, 1.0f), *out = zero_buf(n_out);
    for (int max = 0; max <= 1; max++) {
        float *dinp = zero_buf(n_in);
        if (max)
            cnn_maxpool_backward(dinp, r, inp, &p, N);
        else
            cnn_avgpool_backward(dinp, r, &p, N);
        struct pool_ctx ctx = {out, inp, &p, N, max};
        struct fd f = {pool_fwd, &ctx, out, r, n_out};
        char name[64];
        snprintf(name, sizeof name, "%s case %d dinp", max ? "maxpool" : "avgpool", _i);
        fd_check(name, &f, inp, n_in, dinp, 1e-2f, FD_TOL);
        float *d0 = copy_buf(dinp, n_in);
        if (max)
            cnn_maxpool_backward(dinp, r, inp, &p, N);
        else
            cnn_avgpool_backward(dinp, r, &p, N);
        check_doubled(name, dinp, d0, n_in);
        free(d0), free(dinp);
    }
    free(inp), free(r), free(out);
}
END_TEST

/* Equal values in a window: the whole gradient goes to the first in row-major order, as
 * the forward's first-maximum rule (and PyTorch's CPU kernel) picks. */
START_TEST(test_maxpool_backward_routes_ties_to_first_maximum)
{
    struct cnn_pool2d p;
    const struct pool_case k = {1, 1, 4, 4, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0};
    pool_params(&p, &k);
    const float inp[16] = {1, 5, 5, 2, /**/ 5, 5, 0, 5, /**/ 3, 3, 3, 3, /**/ 3, 3, 3, 3};
    const float dout[4] = {1.0f, 2.0f, 3.0f, 4.0f};
    float dinp[16] = {0};
    cnn_maxpool_backward(dinp, dout, inp, &p, 1);
    const float want[16] = {0, 1, 2, 0, /**/ 0, 0, 0, 0, /**/ 3, 0, 4, 0, /**/ 0, 0, 0, 0};
    for (int i = 0; i < 16; i++)
        ck_assert_msg(dinp[i] == want[i], "2x2: dinp[%d] = %g, want %g", i, (double)dinp[i],
                      (double)want[i]);
    /* Four windows in one row (the vectorised 2x2 path): all equal, b = c = e, c = e, e. */
    const struct pool_case k8 = {1, 1, 2, 8, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0};
    pool_params(&p, &k8);
    const float in8[16] = {1, 1, 0, 5, 0, 0, 0, 0, /**/ 1, 1, 5, 5, 7, 7, 0, 9};
    memset(dinp, 0, sizeof dinp);
    cnn_maxpool_backward(dinp, dout, in8, &p, 1);
    const float want8[16] = {1, 0, 0, 2, 0, 0, 0, 0, /**/ 0, 0, 0, 0, 3, 0, 0, 4};
    for (int i = 0; i < 16; i++)
        ck_assert_msg(dinp[i] == want8[i], "2x2 x4: dinp[%d] = %g, want %g", i, (double)dinp[i],
                      (double)want8[i]);
    /* The general path: overlapping 3x3 windows, stride 1. */
    const struct pool_case k3 = {1, 1, 4, 4, 3, 3, 1, 1, 0, 0, 0, 0, 0, 0};
    pool_params(&p, &k3);
    memset(dinp, 0, sizeof dinp);
    cnn_maxpool_backward(dinp, dout, inp, &p, 1);
    const float want3[16] = {0, 3, 0, 0, /**/ 3, 4, 0, 0, /**/ 0, 0, 0, 0, /**/ 0, 0, 0, 0};
    for (int i = 0; i < 16; i++)
        ck_assert_msg(dinp[i] == want3[i], "3x3: dinp[%d] = %g, want %g", i, (double)dinp[i],
                      (double)want3[i]);
}
END_TEST

struct gap_ctx {
    float *out, *inp;
    size_t planes, hw;
};

static void gap_fwd(void *v)
{
    struct gap_ctx *c = v;
    cnn_global_avgpool_forward(c->out, c->inp, c->planes, c->hw);
}

START_TEST(test_global_avgpool_backward_matches_finite_differences)
{
    lcg_state = 21;
    const size_t planes = 3 * 2, hw = 5 * 7;
    float *inp = rand_buf(planes * hw, 1.0f), *r = rand_buf(planes, 1.0f), *out = zero_buf(planes);
    float *dinp = zero_buf(planes * hw);
    cnn_global_avgpool_backward(dinp, r, planes, hw);
    struct gap_ctx ctx = {out, inp, planes, hw};
    struct fd f = {gap_fwd, &ctx, out, r, planes};
    fd_check("global avgpool dinp", &f, inp, planes * hw, dinp, 1e-2f, FD_TOL);
    float *d0 = copy_buf(dinp, planes * hw);
    cnn_global_avgpool_backward(dinp, r, planes, hw);
    check_doubled("global avgpool dinp", dinp, d0, planes * hw);
    free(d0), free(inp), free(r), free(out), free(dinp);
}
END_TEST

Suite *grad_conv_suite(void)
{
    Suite *s = suite_create("grad_conv");
    TCase *tc = tcase_create("grad");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_conv2d_backward_matches_finite_differences_and_direct_loops, 0,
                        N_CONV_CASES);
    tcase_add_test(tc, test_conv2d_backward_in_chunks_crossing_images_matches_direct_loops);
    tcase_add_test(tc, test_conv2d_backward_scratch_is_zero_only_without_im2col);
    tcase_add_test(tc, test_conv2d_winograd_input_gradient_and_forward_in_parts);
    tcase_add_test(tc, test_conv2d_winograd_weight_gradient_channel_remainders);
    tcase_add_test(tc, test_dense_backward_matches_finite_differences);
    tcase_add_loop_test(tc, test_pool_backward_matches_finite_differences, 0, N_POOL_CASES);
    tcase_add_test(tc, test_maxpool_backward_routes_ties_to_first_maximum);
    tcase_add_test(tc, test_global_avgpool_backward_matches_finite_differences);
    suite_add_tcase(s, tc);
    return s;
}
