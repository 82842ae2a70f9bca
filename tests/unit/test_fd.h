/* Finite-difference gradient checks shared by the grad suites (check_grad_conv.c,
 * check_grad_layers.c): L = sum(r * out) over a forward under test, central differences
 * against an analytic gradient, and the accumulation contract of the backward kernels. */
#ifndef TEST_FD_H
#define TEST_FD_H

#include <stddef.h>

/* The forward under test: recomputes fd->out (n_out floats) from the current inputs. */
struct fd {
    void (*forward)(void *ctx);
    void *ctx;
    const float *out;
    const float *r; /* L = sum r * out; NULL means r = 1 */
    size_t n_out;
};

/* Central difference of L in each of x[0..n) against grad; the step actually taken is
 * (x+h) - (x-h) in float.  Passes when |num - ana| <= atol + rtol * max(|num|, |ana|). */
void fd_check(const char *what, const struct fd *f, float *x, size_t n, const float *grad, float h,
              double rtol, double atol);

/* Backward called a second time on the same buffers: now[i] must be 2 * first[i]. */
void check_doubled(const char *what, const float *now, const float *first, size_t n);

/* Asserts |a[i] - b[i]| <= tol * (1 + |b[i]|) for each of the n values. */
void check_same(const char *what, const float *a, const float *b, size_t n, float tol);

#define FD_TOL 2e-3, 5e-4 /* rtol, atol: float forward, L summed in double */

#endif
