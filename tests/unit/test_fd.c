/* Finite-difference gradient checks (see test_fd.h). */
#include "test_fd.h"

#include <check.h>
#include <math.h>
#include <stdio.h>

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
void fd_check(const char *what, const struct fd *f, float *x, size_t n, const float *grad, float h,
              double rtol, double atol)
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
void check_doubled(const char *what, const float *now, const float *first, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(fabsf(now[i] - 2.0f * first[i]) <= 1e-5f * (1.0f + fabsf(first[i])),
                      "%s[%zu]: second call gave %g, first %g (not accumulated)", what, i,
                      (double)now[i], (double)first[i]);
}

void check_same(const char *what, const float *a, const float *b, size_t n, float tol)
{
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(fabsf(a[i] - b[i]) <= tol * (1.0f + fabsf(b[i])), "%s[%zu]: %g vs %g", what,
                      i, (double)a[i], (double)b[i]);
}
