/* Suite grad: every backward kernel of grad.h against central finite differences of the
 * engine's forward kernels, L = sum(r * out) with random r (and the loss itself for the
 * losses), on small odd shapes; conv also against naive direct loops in double.  Also the
 * accumulation contract (a second call doubles the gradient), NULL gradients, PyTorch's
 * kink conventions, the batch-norm statistics and running-stat update, dropout masks. */
#include "grad.h"
#include "layer.h"
#include "test_util.h"

#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Moves every value at least gap away from each kink (so x +- h never crosses one). */
static void avoid_kinks(float *x, size_t n, const float *kinks, int nk, float gap)
{
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < nk; k++)
            if (fabsf(x[i] - kinks[k]) < gap)
                x[i] = kinks[k] + (x[i] >= kinks[k] ? gap : -gap);
}

/* ---- finite differences ------------------------------------------------ */

/* The forward under test: recomputes fd->out (n_out floats) from the current inputs. */
struct fd {
    void (*forward)(void *ctx);
    void *ctx;
    const float *out;
    const float *r; /* L = sum r * out; NULL means r = 1 */
    size_t n_out;
};

static double fd_loss(const struct fd *f)
{
    f->forward(f->ctx);
    double s = 0.0;
    for (size_t i = 0; i < f->n_out; i++)
        s += (f->r ? (double)f->r[i] : 1.0) * f->out[i];
    return s;
}

/* Central difference of L in each of x[0..n) against grad; the step actually taken is
 * (x+h) - (x-h) in float.  Passes when |num - ana| <= atol + rtol * max(|num|, |ana|). */
static void fd_check(const char *what, const struct fd *f, float *x, size_t n, const float *grad,
                     float h, double rtol, double atol)
{
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        const float x0 = x[i], xp = x0 + h, xm = x0 - h;
        x[i] = xp;
        const double lp = fd_loss(f);
        x[i] = xm;
        const double lm = fd_loss(f);
        x[i] = x0;
        const double num = (lp - lm) / ((double)xp - (double)xm), ana = grad[i];
        const double err = fabs(num - ana);
        const double lim = atol + rtol * fmax(fabs(num), fabs(ana));
        ck_assert_msg(err <= lim, "%s[%zu]: analytic %.6g vs numeric %.6g", what, i, ana, num);
        if (err > worst)
            worst = err;
    }
    f->forward(f->ctx); /* leave out consistent with the restored inputs */
    printf("%-48s fd max abs err %.2e (%zu values)\n", what, worst, n);
}

/* Backward called a second time on the same buffers: now[i] must be 2 * first[i]. */
static void check_doubled(const char *what, const float *now, const float *first, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(fabsf(now[i] - 2.0f * first[i]) <= 1e-5f * (1.0f + fabsf(first[i])),
                      "%s[%zu]: second call gave %g, first %g (not accumulated)", what, i,
                      (double)now[i], (double)first[i]);
}

static void check_same(const char *what, const float *a, const float *b, size_t n, float tol)
{
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(fabsf(a[i] - b[i]) <= tol * (1.0f + fabsf(b[i])), "%s[%zu]: %g vs %g", what,
                      i, (double)a[i], (double)b[i]);
}

#define FD_TOL 2e-3, 5e-4 /* rtol, atol: float forward, L summed in double */

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
        cnn_conv2d_winograd_rows(dinp, r, u, NULL, scratch, &q, N, 0, th, 1);
        cnn_conv2d_winograd_rows(dinp, r, u, NULL, scratch, &q, N, th, N * th, 1);
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
        cnn_conv2d_winograd_rows(got, inp, u, b, scratch, &p, N, 0, tf, 0);
        cnn_conv2d_winograd_rows(got, inp, u, b, scratch, &p, N, tf, N * tf, 0);
        check_same("winograd forward in parts", got, want, n_out, 1e-4f);
        free(rin), free(rw), free(rb), free(inp), free(w), free(r), free(b), free(dinp);
        free(scratch), free(tmp), free(u), free(want), free(got);
    }
    struct cnn_conv2d p, q; /* stride 2: not a Winograd gradient */
    conv_params(&p, &(struct conv_case){2, 16, 9, 9, 16, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1});
    ck_assert_int_eq(cnn_conv2d_backward_winograd_shape(&p, &q), 0);
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

/* ---- activations, softmax, flatten, add/concat ------------------------- */

struct act_ctx {
    float *out, *inp;
    size_t n;
    const struct cnn_act_params *act;
};

static void act_fwd(void *v)
{
    struct act_ctx *c = v;
    memcpy(c->out, c->inp, c->n * sizeof *c->out);
    cnn_act_apply(c->out, c->n, c->act);
}

static const struct cnn_act_params act_cases[] = {
    {CNN_ACT_NONE, 0, 0},        {CNN_ACT_RELU, 0, 0},       {CNN_ACT_LEAKY_RELU, 0.1f, 0},
    {CNN_ACT_CLIP, -0.4f, 0.6f}, {CNN_ACT_CLIP, 0.0f, 6.0f}, {CNN_ACT_SIGMOID, 0, 0},
    {CNN_ACT_TANH, 0, 0},
};
#define N_ACT_CASES (int)(sizeof act_cases / sizeof act_cases[0])

START_TEST(test_act_backward_matches_finite_differences_from_x_y_or_both)
{
    const struct cnn_act_params *a = &act_cases[_i];
    lcg_state = 400u + (unsigned)_i;
    const size_t n = 2 * 3 * 5 * 7;
    const float scale = a->kind == CNN_ACT_CLIP && a->beta > 1.0f ? 8.0f : 2.0f;
    float *x = rand_buf(n, scale), *r = rand_buf(n, 1.0f), *y = zero_buf(n);
    const float kinks[2] = {a->kind == CNN_ACT_CLIP ? a->alpha : 0.0f,
                            a->kind == CNN_ACT_CLIP ? a->beta : 0.0f};
    avoid_kinks(x, n, kinks, 2, 0.05f);
    struct act_ctx ctx = {y, x, n, a};
    act_fwd(&ctx);
    float *g_both = zero_buf(n), *g_x = zero_buf(n), *g_y = zero_buf(n);
    cnn_act_backward(g_both, r, x, y, n, a);
    cnn_act_backward(g_x, r, x, NULL, n, a);
    cnn_act_backward(g_y, r, NULL, y, n, a);
    char name[64];
    snprintf(name, sizeof name, "act %s(%g,%g) dinp", cnn_act_name(a->kind), (double)a->alpha,
             (double)a->beta);
    struct fd f = {act_fwd, &ctx, y, r, n};
    fd_check(name, &f, x, n, g_both, 5e-3f, FD_TOL);
    check_same("act from x only", g_x, g_both, n, 1e-6f);
    check_same("act from y only", g_y, g_both, n, 1e-6f);
    float *d0 = copy_buf(g_both, n);
    cnn_act_backward(g_both, r, x, y, n, a);
    check_doubled(name, g_both, d0, n);
    free(d0), free(x), free(r), free(y), free(g_both), free(g_x), free(g_y);
}
END_TEST

/* At the kinks PyTorch's conventions: relu'(0) = 0, leaky'(0) = slope, clip' = 0 at and
 * beyond both bounds. */
START_TEST(test_act_backward_kinks_follow_pytorch)
{
    const float x[5] = {-1.0f, 0.0f, 0.5f, 6.0f, 7.0f}, g[5] = {1, 1, 1, 1, 1};
    struct {
        struct cnn_act_params a;
        float want[5];
    } cases[] = {
        {{CNN_ACT_RELU, 0, 0}, {0, 0, 1, 1, 1}},
        {{CNN_ACT_LEAKY_RELU, 0.2f, 0}, {0.2f, 0.2f, 1, 1, 1}},
        {{CNN_ACT_CLIP, 0.0f, 6.0f}, {0, 0, 1, 0, 0}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        float d[5] = {0};
        cnn_act_backward(d, g, x, NULL, 5, &cases[c].a);
        for (int i = 0; i < 5; i++)
            ck_assert_msg(d[i] == cases[c].want[i], "%s at x=%g: %g, want %g",
                          cnn_act_name(cases[c].a.kind), (double)x[i], (double)d[i],
                          (double)cases[c].want[i]);
    }
}
END_TEST

struct softmax_ctx {
    float *out, *inp;
    int K, N;
};

static void softmax_fwd(void *v)
{
    struct softmax_ctx *c = v;
    cnn_softmax_forward(c->out, c->inp, c->K, c->N);
}

START_TEST(test_softmax_backward_matches_finite_differences)
{
    lcg_state = 31;
    const int K = 7, N = 3;
    const size_t n = (size_t)K * N;
    float *x = rand_buf(n, 3.0f), *r = rand_buf(n, 1.0f), *y = zero_buf(n), *d = zero_buf(n);
    struct softmax_ctx ctx = {y, x, K, N};
    softmax_fwd(&ctx);
    cnn_softmax_backward(d, r, y, K, N);
    struct fd f = {softmax_fwd, &ctx, y, r, n};
    fd_check("softmax dinp", &f, x, n, d, 5e-3f, 1e-2, 5e-4);
    float *d0 = copy_buf(d, n);
    cnn_softmax_backward(d, r, y, K, N);
    check_doubled("softmax dinp", d, d0, n);
    free(d0), free(x), free(r), free(y), free(d);
}
END_TEST

struct flat_ctx {
    float *out, *inp;
    int C, N, hw;
};

static void flat_fwd(void *v)
{
    struct flat_ctx *c = v;
    cnn_flatten_forward(c->out, c->inp, c->C, c->N, c->hw);
}

START_TEST(test_flatten_backward_matches_finite_differences)
{
    lcg_state = 41;
    const int C = 3, N = 2, hw = 5 * 3;
    const size_t n = (size_t)C * N * hw;
    float *x = rand_buf(n, 1.0f), *r = rand_buf(n, 1.0f), *y = zero_buf(n), *d = zero_buf(n);
    cnn_flatten_backward(d, r, C, N, hw);
    struct flat_ctx ctx = {y, x, C, N, hw};
    struct fd f = {flat_fwd, &ctx, y, r, n};
    fd_check("flatten dinp", &f, x, n, d, 1e-2f, FD_TOL);
    float *d0 = copy_buf(d, n);
    cnn_flatten_backward(d, r, C, N, hw);
    check_doubled("flatten dinp", d, d0, n);
    free(d0), free(x), free(r), free(y), free(d);
}
END_TEST

/* Add: each input's gradient is dout.  Concat along channels of (C, N, H, W): each input's
 * gradient is its block of dout.  Checked by finite differences of the forwards. */
struct addcat_ctx {
    float *out, *a, *b;
    size_t na, nb;
    int concat;
};

static void addcat_fwd(void *v)
{
    struct addcat_ctx *c = v;
    if (c->concat) {
        memcpy(c->out, c->a, c->na * sizeof(float));
        memcpy(c->out + c->na, c->b, c->nb * sizeof(float));
    } else {
        const float *in[2] = {c->a, c->b};
        const struct cnn_act_params none = {CNN_ACT_NONE, 0, 0};
        cnn_add_forward(c->out, in, 2, c->na, &none);
    }
}

START_TEST(test_add_and_concat_backward_by_accumulate_match_finite_differences)
{
    lcg_state = 51;
    const int N = 2, hw = 3 * 5, ca = 3, cb = 2;
    for (int concat = 0; concat <= 1; concat++) {
        const size_t na = (size_t)ca * N * hw, nb = concat ? (size_t)cb * N * hw : na;
        const size_t n_out = concat ? na + nb : na;
        float *a = rand_buf(na, 1.0f), *b = rand_buf(nb, 1.0f), *r = rand_buf(n_out, 1.0f);
        float *out = zero_buf(n_out), *da = zero_buf(na), *dbuf = zero_buf(nb);
        cnn_grad_accumulate(da, r, na);
        cnn_grad_accumulate(dbuf, concat ? r + na : r, nb);
        struct addcat_ctx ctx = {out, a, b, na, nb, concat};
        struct fd f = {addcat_fwd, &ctx, out, r, n_out};
        fd_check(concat ? "concat dinp 0" : "add dinp 0", &f, a, na, da, 1e-2f, FD_TOL);
        fd_check(concat ? "concat dinp 1" : "add dinp 1", &f, b, nb, dbuf, 1e-2f, FD_TOL);
        float *d0 = copy_buf(da, na);
        cnn_grad_accumulate(da, r, na);
        check_doubled("accumulate", da, d0, na);
        free(d0), free(a), free(b), free(r), free(out), free(da), free(dbuf);
    }
}
END_TEST

/* ---- batch norm -------------------------------------------------------- */

struct bn_ctx {
    float *out, *inp, *gamma, *beta, *mean, *inv_std;
    int C;
    size_t n_hw;
};

static void bn_fwd(void *v)
{
    struct bn_ctx *c = v;
    int rc = cnn_batchnorm_train_forward(c->out, c->mean, c->inv_std, NULL, NULL, c->inp, c->gamma,
                                         c->beta, 1e-5f, 0.1f, c->C, c->n_hw, NULL);
    ck_assert_int_eq(rc, 0);
}

START_TEST(test_batchnorm_train_forward_uses_batch_stats_and_updates_running_stats)
{
    lcg_state = 61;
    const int C = 3;
    const size_t n_hw = 2 * 5 * 3;
    const float eps = 1e-3f, mom = 0.1f;
    float *x = rand_buf((size_t)C * n_hw, 2.0f), *gamma = rand_buf(C, 1.0f);
    float *beta = rand_buf(C, 1.0f), *rm = rand_buf(C, 1.0f), *rv = zero_buf(C);
    for (int c = 0; c < C; c++) {
        rv[c] = 0.5f + 0.1f * (float)c;
        for (size_t i = 0; i < n_hw; i++) /* shift each channel's mean away from 0 */
            x[(size_t)c * n_hw + i] += 3.0f * (float)(c + 1);
    }
    float *rm0 = copy_buf(rm, C), *rv0 = copy_buf(rv, C);
    float *y = zero_buf((size_t)C * n_hw), *sm = zero_buf(C), *si = zero_buf(C);
    ck_assert_int_eq(
        cnn_batchnorm_train_forward(y, sm, si, rm, rv, x, gamma, beta, eps, mom, C, n_hw, NULL), 0);
    for (int c = 0; c < C; c++) {
        const float *xc = x + (size_t)c * n_hw;
        double s = 0, ss = 0;
        for (size_t i = 0; i < n_hw; i++)
            s += xc[i];
        const double mean = s / n_hw;
        for (size_t i = 0; i < n_hw; i++)
            ss += (xc[i] - mean) * (xc[i] - mean);
        const double var = ss / n_hw, unbiased = ss / (n_hw - 1);
        ck_assert_double_eq_tol(sm[c], mean, 1e-5 * (1 + fabs(mean)));
        ck_assert_double_eq_tol(si[c], 1.0 / sqrt(var + eps), 1e-5);
        for (size_t i = 0; i < n_hw; i++) {
            const double want = gamma[c] * (xc[i] - mean) / sqrt(var + eps) + beta[c];
            ck_assert_double_eq_tol(y[(size_t)c * n_hw + i], want, 1e-4);
        }
        ck_assert_double_eq_tol(rm[c], 0.9 * rm0[c] + 0.1 * mean, 1e-5 * (1 + fabs(mean)));
        ck_assert_double_eq_tol(rv[c], 0.9 * rv0[c] + 0.1 * unbiased, 1e-5 * (1 + unbiased));
    }
    /* One value per channel: PyTorch refuses to train on it, and so do we. */
    struct cnn_err err = {0};
    ck_assert_int_eq(
        cnn_batchnorm_train_forward(y, sm, si, rm, rv, x, gamma, beta, eps, mom, C, 1, &err),
        CNN_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "batchnorm"));
    free(x), free(gamma), free(beta), free(rm), free(rv), free(rm0), free(rv0), free(y);
    free(sm), free(si);
}
END_TEST

START_TEST(test_batchnorm_train_backward_through_batch_stats_matches_finite_differences)
{
    lcg_state = 71;
    const int C = 4;
    const size_t n_hw = 3 * 5 * 3, n = (size_t)C * n_hw;
    float *x = rand_buf(n, 1.5f), *gamma = rand_buf(C, 1.5f), *beta = rand_buf(C, 1.0f);
    float *r = rand_buf(n, 1.0f), *y = zero_buf(n), *sm = zero_buf(C), *si = zero_buf(C);
    float *dx = zero_buf(n), *dg = zero_buf(C), *dbeta = zero_buf(C);
    struct bn_ctx ctx = {y, x, gamma, beta, sm, si, C, n_hw};
    bn_fwd(&ctx);
    cnn_batchnorm_train_backward(dx, dg, dbeta, r, x, gamma, sm, si, C, n_hw);
    struct fd f = {bn_fwd, &ctx, y, r, n};
    fd_check("batchnorm train dinp", &f, x, n, dx, 5e-3f, FD_TOL);
    fd_check("batchnorm train dgamma", &f, gamma, C, dg, 5e-3f, FD_TOL);
    fd_check("batchnorm train dbeta", &f, beta, C, dbeta, 5e-3f, FD_TOL);
    float *dx1 = zero_buf(n);
    cnn_batchnorm_train_backward(dx1, NULL, NULL, r, x, gamma, sm, si, C, n_hw);
    check_same("batchnorm dinp alone", dx1, dx, n, 1e-6f);
    float *d0 = copy_buf(dx, n), *g0 = copy_buf(dg, C), *b0 = copy_buf(dbeta, C);
    cnn_batchnorm_train_backward(dx, dg, dbeta, r, x, gamma, sm, si, C, n_hw);
    check_doubled("batchnorm dinp", dx, d0, n);
    check_doubled("batchnorm dgamma", dg, g0, C);
    check_doubled("batchnorm dbeta", dbeta, b0, C);
    free(d0), free(g0), free(b0), free(dx1), free(x), free(gamma), free(beta), free(r), free(y);
    free(sm), free(si), free(dx), free(dg), free(dbeta);
}
END_TEST

/* Channels much longer than the kernels' summation blocks, with a mean far from 0: the
 * forward and backward against the textbook formulas evaluated in double. */
START_TEST(test_batchnorm_long_channels_match_double_formulas)
{
    lcg_state = 75;
    const int C = 2;
    const size_t n_hw = 3001, n = (size_t)C * n_hw;
    float *x = rand_buf(n, 1.0f), *gamma = rand_buf(C, 1.5f), *beta = rand_buf(C, 1.0f);
    float *r = rand_buf(n, 1.0f), *y = zero_buf(n), *sm = zero_buf(C), *si = zero_buf(C);
    float *dx = zero_buf(n), *dg = zero_buf(C), *dbeta = zero_buf(C);
    for (size_t i = 0; i < n; i++)
        x[i] += 50.0f;
    ck_assert_int_eq(cnn_batchnorm_train_forward(y, sm, si, NULL, NULL, x, gamma, beta, 1e-5f, 0.1f,
                                                 C, n_hw, NULL),
                     0);
    cnn_batchnorm_train_backward(dx, dg, dbeta, r, x, gamma, sm, si, C, n_hw);
    for (int c = 0; c < C; c++) {
        const float *xc = x + (size_t)c * n_hw, *g = r + (size_t)c * n_hw;
        double s = 0, ss = 0, sg = 0, sgx = 0;
        for (size_t i = 0; i < n_hw; i++)
            s += xc[i];
        const double mean = s / n_hw;
        for (size_t i = 0; i < n_hw; i++)
            ss += (xc[i] - mean) * (xc[i] - mean);
        const double is = 1.0 / sqrt(ss / n_hw + 1e-5);
        for (size_t i = 0; i < n_hw; i++) {
            const double xh = (xc[i] - mean) * is;
            ck_assert_double_eq_tol(y[(size_t)c * n_hw + i], gamma[c] * xh + beta[c], 2e-4);
            sg += g[i];
            sgx += g[i] * xh;
        }
        ck_assert_double_eq_tol(dbeta[c], sg, 1e-3);
        ck_assert_double_eq_tol(dg[c], sgx, 1e-3);
        for (size_t i = 0; i < n_hw; i++) {
            const double xh = (xc[i] - mean) * is;
            const double want = gamma[c] * is * (g[i] - sg / n_hw - xh * sgx / n_hw);
            ck_assert_double_eq_tol(dx[(size_t)c * n_hw + i], want, 2e-4 * (1 + fabs(want)));
        }
    }
    free(x), free(gamma), free(beta), free(r), free(y), free(sm), free(si), free(dx), free(dg);
    free(dbeta);
}
END_TEST

struct bn_eval_ctx {
    float *out, *inp, *gamma, *beta, *mean, *var, *scale, *shift;
    int C;
    size_t n_hw;
};

static void bn_eval_fwd(void *v) /* inference BN as the engine runs it: scale and shift */
{
    struct bn_eval_ctx *c = v;
    for (int i = 0; i < c->C; i++) {
        c->scale[i] = c->gamma[i] / sqrtf(c->var[i] + 1e-5f);
        c->shift[i] = c->beta[i] - c->mean[i] * c->scale[i];
    }
    const struct cnn_act_params none = {CNN_ACT_NONE, 0, 0};
    cnn_scale_shift_forward(c->out, c->inp, c->scale, c->shift, c->C, c->n_hw, &none);
}

START_TEST(test_batchnorm_eval_backward_matches_finite_differences)
{
    lcg_state = 73;
    const int C = 3;
    const size_t n_hw = 2 * 4 * 5, n = (size_t)C * n_hw;
    float *x = rand_buf(n, 1.5f), *gamma = rand_buf(C, 1.5f), *beta = rand_buf(C, 1.0f);
    float *mean = rand_buf(C, 0.5f), *var = rand_buf(C, 0.2f), *r = rand_buf(n, 1.0f);
    for (int c = 0; c < C; c++)
        var[c] += 0.5f;
    float *y = zero_buf(n), *scale = zero_buf(C), *shift = zero_buf(C);
    float *dx = zero_buf(n), *dg = zero_buf(C), *dbeta = zero_buf(C);
    cnn_batchnorm_eval_backward(dx, dg, dbeta, r, x, gamma, mean, var, 1e-5f, C, n_hw);
    struct bn_eval_ctx ctx = {y, x, gamma, beta, mean, var, scale, shift, C, n_hw};
    struct fd f = {bn_eval_fwd, &ctx, y, r, n};
    fd_check("batchnorm eval dinp", &f, x, n, dx, 1e-2f, FD_TOL);
    fd_check("batchnorm eval dgamma", &f, gamma, C, dg, 1e-2f, FD_TOL);
    fd_check("batchnorm eval dbeta", &f, beta, C, dbeta, 1e-2f, FD_TOL);
    float *d0 = copy_buf(dx, n);
    cnn_batchnorm_eval_backward(dx, NULL, NULL, r, x, gamma, mean, var, 1e-5f, C, n_hw);
    check_doubled("batchnorm eval dinp", dx, d0, n);
    free(d0), free(x), free(gamma), free(beta), free(mean), free(var), free(r), free(y);
    free(scale), free(shift), free(dx), free(dg), free(dbeta);
}
END_TEST

/* ---- dropout ----------------------------------------------------------- */

START_TEST(test_dropout_train_forward_masks_scales_and_is_seeded)
{
    lcg_state = 81;
    const size_t n = 20000;
    const float rate = 0.3f;
    float *x = rand_buf(n, 1.0f), *y = zero_buf(n), *y2 = zero_buf(n);
    uint8_t *m = malloc(n), *m2 = malloc(n);
    ck_assert(m && m2);
    uint64_t s1 = 42, s2 = 42, s3 = 43;
    cnn_dropout_train_forward(y, m, x, rate, n, &s1);
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        ck_assert(m[i] == 0 || m[i] == 1);
        kept += m[i];
        const float want = m[i] ? x[i] / (1.0f - rate) : 0.0f;
        ck_assert_msg(fabsf(y[i] - want) <= 1e-6f, "out[%zu] = %g, want %g", i, (double)y[i],
                      (double)want);
    }
    /* Binomial(n, 0.7): sd = sqrt(n * 0.21) ~ 65; allow 5 sd. */
    ck_assert_msg(fabs((double)kept - 0.7 * n) < 5 * sqrt(0.21 * n), "kept %zu of %zu", kept, n);
    ck_assert_uint_ne(s1, 42); /* the state advanced */
    cnn_dropout_train_forward(y2, m2, x, rate, n, &s2);
    ck_assert_int_eq(memcmp(m, m2, n), 0); /* same seed, same mask */
    ck_assert_uint_eq(s1, s2);
    cnn_dropout_train_forward(y2, m2, x, rate, n, &s3);
    ck_assert_int_ne(memcmp(m, m2, n), 0);
    cnn_dropout_train_forward(y2, m2, x, rate, n, &s1); /* the next batch gets a new mask */
    ck_assert_int_ne(memcmp(m, m2, n), 0);
    /* rate 0 keeps everything unscaled; rate 1 drops everything. */
    cnn_dropout_train_forward(y2, m2, x, 0.0f, n, &s1);
    for (size_t i = 0; i < n; i++)
        ck_assert(m2[i] == 1 && y2[i] == x[i]);
    cnn_dropout_train_forward(y2, m2, x, 1.0f, n, &s1);
    for (size_t i = 0; i < n; i++)
        ck_assert(m2[i] == 0 && y2[i] == 0.0f);
    float *d = zero_buf(n);
    cnn_dropout_backward(d, x, m2, 1.0f, n);
    for (size_t i = 0; i < n; i++)
        ck_assert(d[i] == 0.0f);
    free(d), free(x), free(y), free(y2), free(m), free(m2);
}
END_TEST

struct drop_ctx {
    float *out, *inp;
    uint8_t *mask;
    float rate;
    size_t n;
    uint64_t seed;
};

static void drop_fwd(void *v) /* the same seed each time: the same mask */
{
    struct drop_ctx *c = v;
    uint64_t s = c->seed;
    cnn_dropout_train_forward(c->out, c->mask, c->inp, c->rate, c->n, &s);
}

START_TEST(test_dropout_backward_with_the_same_mask_matches_finite_differences)
{
    lcg_state = 83;
    const size_t n = 3 * 2 * 5 * 5;
    float *x = rand_buf(n, 1.0f), *r = rand_buf(n, 1.0f), *y = zero_buf(n), *d = zero_buf(n);
    uint8_t *mask = malloc(n);
    ck_assert_ptr_nonnull(mask);
    struct drop_ctx ctx = {y, x, mask, 0.4f, n, 1234};
    drop_fwd(&ctx);
    cnn_dropout_backward(d, r, mask, 0.4f, n);
    struct fd f = {drop_fwd, &ctx, y, r, n};
    fd_check("dropout dinp", &f, x, n, d, 1e-2f, FD_TOL);
    float *d0 = copy_buf(d, n);
    cnn_dropout_backward(d, r, mask, 0.4f, n);
    check_doubled("dropout dinp", d, d0, n);
    free(d0), free(x), free(r), free(y), free(d), free(mask);
}
END_TEST

/* ---- LRN --------------------------------------------------------------- */

struct lrn_ctx {
    float *out, *inp;
    const struct cnn_lrn *p;
    int C;
    size_t n_hw;
};

static void lrn_fwd(void *v)
{
    struct lrn_ctx *c = v;
    cnn_lrn_forward(c->out, c->inp, c->p, c->C, c->n_hw);
}

START_TEST(test_lrn_backward_matches_finite_differences)
{
    const struct cnn_lrn cases[] = {
        {3, 1.0f, 0.75f, 1.5f}, /* the beta = 0.75 fast path */
        {5, 2.0f, 0.6f, 1.0f},
        {1, 0.5f, 0.75f, 2.0f},
        {4, 1.5f, 0.5f, 1.0f}, /* even size: window c-1 .. c+2 */
    };
    const struct cnn_lrn *p = &cases[_i];
    lcg_state = 90u + (unsigned)_i;
    const int C = 6;
    const size_t n_hw = 2 * 3 * 5, n = (size_t)C * n_hw;
    float *x = rand_buf(n, 1.5f), *r = rand_buf(n, 1.0f), *y = zero_buf(n), *d = zero_buf(n);
    float *scratch = zero_buf(cnn_lrn_backward_scratch_floats(C, n_hw));
    ck_assert_uint_eq(cnn_lrn_backward_scratch_floats(C, n_hw), (size_t)(C + 1) * n_hw);
    cnn_lrn_backward(d, r, x, scratch, p, C, n_hw);
    struct lrn_ctx ctx = {y, x, p, C, n_hw};
    struct fd f = {lrn_fwd, &ctx, y, r, n};
    char name[64];
    snprintf(name, sizeof name, "lrn size %d beta %g dinp", p->size, (double)p->beta);
    fd_check(name, &f, x, n, d, 5e-3f, FD_TOL);
    float *d0 = copy_buf(d, n);
    cnn_lrn_backward(d, r, x, scratch, p, C, n_hw);
    check_doubled(name, d, d0, n);
    free(d0), free(x), free(r), free(y), free(d), free(scratch);
}
END_TEST

/* ---- losses ------------------------------------------------------------ */

struct xent_ctx {
    float loss;
    float *logits;
    const int *labels;
    int K, N;
};

static void xent_fwd(void *v)
{
    struct xent_ctx *c = v;
    ck_assert_int_eq(cnn_softmax_xent(&c->loss, NULL, NULL, c->logits, c->labels, c->K, c->N, NULL),
                     0);
}

START_TEST(test_softmax_xent_value_gradient_and_top1_count)
{
    lcg_state = 101;
    const int K = 6, N = 5;
    const size_t n = (size_t)K * N;
    const int labels[5] = {0, 5, 2, 2, 3};
    float *z = rand_buf(n, 3.0f), *dz = rand_buf(n, 100.0f); /* garbage: must be overwritten */
    z[3 * N + 4] = 10.0f;                                    /* item 4: label 3 is clearly top-1 */
    float loss = 0;
    int correct = -1;
    ck_assert_int_eq(cnn_softmax_xent(&loss, dz, &correct, z, labels, K, N, NULL), 0);
    double want = 0;
    int hits = 0;
    for (int i = 0; i < N; i++) {
        double sum = 0;
        int best = 0;
        for (int k = 0; k < K; k++) {
            sum += exp((double)z[k * N + i]);
            if (z[k * N + i] > z[best * N + i])
                best = k;
        }
        want += -log(exp((double)z[labels[i] * N + i]) / sum) / N;
        hits += best == labels[i];
        for (int k = 0; k < K; k++) {
            const double g = (exp((double)z[k * N + i]) / sum - (k == labels[i])) / N;
            ck_assert_double_eq_tol(dz[k * N + i], g, 1e-6);
        }
    }
    ck_assert_double_eq_tol(loss, want, 1e-5);
    ck_assert_int_eq(correct, hits);
    ck_assert_int_ge(correct, 1);
    struct xent_ctx ctx = {0, z, labels, K, N};
    struct fd f = {xent_fwd, &ctx, &ctx.loss, NULL, 1};
    fd_check("softmax xent dlogits", &f, z, n, dz, 1e-2f, 1e-2, 2e-4);
    free(z), free(dz);
}
END_TEST

START_TEST(test_softmax_xent_is_stable_and_rejects_bad_labels)
{
    const int K = 3, N = 2, labels[2] = {1, 2};
    const float big[6] = {1000.0f, -1000.0f, 1001.0f, 0.0f, 999.0f, -998.0f};
    float loss, d[6];
    int correct;
    ck_assert_int_eq(cnn_softmax_xent(&loss, d, &correct, big, labels, K, N, NULL), 0);
    /* item 0: logits (1000, 1001, 999), label 1; item 1: (-1000, 0, -998), label 2 */
    const double l0 = log(exp(-1.0) + 1.0 + exp(-2.0));
    const double l1 = 998.0 + log(exp(-1000.0) + 1.0 + exp(-998.0));
    ck_assert(isfinite(loss));
    ck_assert_double_eq_tol(loss, (l0 + l1) / 2, 1e-4);
    ck_assert_int_eq(correct, 1);
    for (int i = 0; i < 6; i++)
        ck_assert(isfinite(d[i]));

    const int bad[2] = {1, 3};
    float keep[6] = {7, 7, 7, 7, 7, 7};
    struct cnn_err err = {0};
    ck_assert_int_eq(cnn_softmax_xent(&loss, keep, NULL, big, bad, K, N, &err), CNN_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "label 3"));
    for (int i = 0; i < 6; i++)
        ck_assert(keep[i] == 7.0f);
    const int neg[2] = {-1, 0};
    ck_assert_int_eq(cnn_softmax_xent(&loss, NULL, NULL, big, neg, K, N, &err), CNN_EINVAL);
    ck_assert_int_eq(cnn_softmax_xent(&loss, NULL, NULL, big, labels, 0, N, &err), CNN_EINVAL);
}
END_TEST

struct mse_ctx {
    float loss;
    float *pred, *target;
    size_t n;
};

static void mse_fwd(void *v)
{
    struct mse_ctx *c = v;
    c->loss = cnn_mse_loss(NULL, c->pred, c->target, c->n);
}

START_TEST(test_mse_loss_is_pytorch_mean_and_matches_finite_differences)
{
    lcg_state = 111;
    const size_t n = 4 * 3;
    float *p = rand_buf(n, 2.0f), *t = rand_buf(n, 2.0f), *d = rand_buf(n, 50.0f);
    const float loss = cnn_mse_loss(d, p, t, n);
    double want = 0;
    for (size_t i = 0; i < n; i++) {
        want += ((double)p[i] - t[i]) * ((double)p[i] - t[i]) / n;
        ck_assert_double_eq_tol(d[i], 2.0 * ((double)p[i] - t[i]) / n, 1e-6);
    }
    ck_assert_double_eq_tol(loss, want, 1e-5);
    struct mse_ctx ctx = {0, p, t, n};
    struct fd f = {mse_fwd, &ctx, &ctx.loss, NULL, 1};
    fd_check("mse dpred", &f, p, n, d, 1e-2f, 1e-2, 2e-4);
    free(p), free(t), free(d);
}
END_TEST

Suite *grad_suite(void)
{
    Suite *s = suite_create("grad");
    TCase *tc = tcase_create("grad");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_conv2d_backward_matches_finite_differences_and_direct_loops, 0,
                        N_CONV_CASES);
    tcase_add_test(tc, test_conv2d_backward_in_chunks_crossing_images_matches_direct_loops);
    tcase_add_test(tc, test_conv2d_backward_scratch_is_zero_only_without_im2col);
    tcase_add_test(tc, test_conv2d_winograd_input_gradient_and_forward_in_parts);
    tcase_add_test(tc, test_dense_backward_matches_finite_differences);
    tcase_add_loop_test(tc, test_pool_backward_matches_finite_differences, 0, N_POOL_CASES);
    tcase_add_test(tc, test_maxpool_backward_routes_ties_to_first_maximum);
    tcase_add_test(tc, test_global_avgpool_backward_matches_finite_differences);
    tcase_add_loop_test(tc, test_act_backward_matches_finite_differences_from_x_y_or_both, 0,
                        N_ACT_CASES);
    tcase_add_test(tc, test_act_backward_kinks_follow_pytorch);
    tcase_add_test(tc, test_softmax_backward_matches_finite_differences);
    tcase_add_test(tc, test_flatten_backward_matches_finite_differences);
    tcase_add_test(tc, test_add_and_concat_backward_by_accumulate_match_finite_differences);
    tcase_add_test(tc, test_batchnorm_train_forward_uses_batch_stats_and_updates_running_stats);
    tcase_add_test(tc,
                   test_batchnorm_train_backward_through_batch_stats_matches_finite_differences);
    tcase_add_test(tc, test_batchnorm_long_channels_match_double_formulas);
    tcase_add_test(tc, test_batchnorm_eval_backward_matches_finite_differences);
    tcase_add_test(tc, test_dropout_train_forward_masks_scales_and_is_seeded);
    tcase_add_test(tc, test_dropout_backward_with_the_same_mask_matches_finite_differences);
    tcase_add_loop_test(tc, test_lrn_backward_matches_finite_differences, 0, 4);
    tcase_add_test(tc, test_softmax_xent_value_gradient_and_top1_count);
    tcase_add_test(tc, test_softmax_xent_is_stable_and_rejects_bad_labels);
    tcase_add_test(tc, test_mse_loss_is_pytorch_mean_and_matches_finite_differences);
    suite_add_tcase(s, tc);
    return s;
}
