/* Four-lane float helpers for the grad_*.c kernels (internal).  -O2 leaves loops of unknown
 * length scalar and turns selects into branches that mispredict on real activations, so the
 * hot loops use the GCC/clang vector extension like the forward kernels do; memcpy does
 * the unaligned loads and stores.  Sums over a channel run in float lanes within blocks of
 * GRAD_BLOCK values and across blocks in double, which keeps them off the add latency
 * chain without losing accuracy on large batches. */
#ifndef CNN_GRAD_SIMD_H
#define CNN_GRAD_SIMD_H

#include <stddef.h>
#include <string.h>

typedef float grad_v4f __attribute__((vector_size(16)));
typedef int grad_v4i __attribute__((vector_size(16)));

#define GRAD_BLOCK 1024

static inline grad_v4f grad_load4(const float *p)
{
    grad_v4f v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void grad_store4(float *p, grad_v4f v)
{
    memcpy(p, &v, sizeof v);
}

static inline grad_v4f grad_splat4(float a)
{
    return (grad_v4f){a, a, a, a};
}

/* mask ? a : b per lane (mask lanes are 0 or -1, as vector compares give). */
static inline grad_v4f grad_select4(grad_v4i mask, grad_v4f a, grad_v4f b)
{
    return (grad_v4f)((mask & (grad_v4i)a) | (~mask & (grad_v4i)b));
}

static inline float grad_hsum4(grad_v4f v)
{
    return (v[0] + v[1]) + (v[2] + v[3]);
}

/* d[i] += s[i] for n floats. */
static inline void grad_add(float *restrict d, const float *restrict s, size_t n)
{
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
        grad_store4(d + i, grad_load4(d + i) + grad_load4(s + i));
    for (; i < n; i++)
        d[i] += s[i];
}

/* Sum of x[0..n). */
static inline double grad_sum(const float *x, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n;) {
        const size_t end = n - i > GRAD_BLOCK ? i + GRAD_BLOCK : n;
        grad_v4f a0 = grad_splat4(0.0f), a1 = a0;
        for (; i + 8 <= end; i += 8) {
            a0 += grad_load4(x + i);
            a1 += grad_load4(x + i + 4);
        }
        float b = grad_hsum4(a0 + a1);
        for (; i < end; i++)
            b += x[i];
        s += b;
    }
    return s;
}

#endif
