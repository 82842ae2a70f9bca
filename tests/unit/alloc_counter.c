/* Counting allocator for the no-allocation tests: replaces malloc and friends in the test
 * binary and forwards to glibc's __libc_* entry points.  Linked only into builds without
 * sanitizers (they bring their own allocator), see the Makefile. */
#include "alloc_counter.h"

#include <errno.h>
#include <malloc.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

static atomic_long calls;
static atomic_size_t largest; /* bytes of the largest request since the last reset */
/* Usable bytes of the blocks not yet freed, and the most live at once since the last reset;
 * signed, in case a block the dynamic loader allocated before us is freed through us. */
static atomic_llong live, peak;

long alloc_counter_calls(void)
{
    return atomic_load(&calls);
}

size_t alloc_counter_largest(int reset)
{
    return reset ? atomic_exchange(&largest, 0) : atomic_load(&largest);
}

static size_t nonneg(long long v)
{
    return v > 0 ? (size_t)v : 0;
}

size_t alloc_counter_live(void)
{
    return nonneg(atomic_load(&live));
}

size_t alloc_counter_peak(int reset)
{
    return nonneg(reset ? atomic_exchange(&peak, atomic_load(&live)) : atomic_load(&peak));
}

/* p (may be NULL) was just allocated: add it to live and raise peak. */
static void *gained(void *p)
{
    if (p) {
        const long long size = (long long)malloc_usable_size(p);
        long long now = atomic_fetch_add(&live, size) + size, was = atomic_load(&peak);
        while (now > was && !atomic_compare_exchange_weak(&peak, &was, now))
            ;
    }
    return p;
}

/* p (may be NULL) is about to be freed or moved by realloc. */
static void lost(void *p)
{
    if (p)
        atomic_fetch_sub(&live, (long long)malloc_usable_size(p));
}

static void count(size_t bytes)
{
    atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed);
    size_t was = atomic_load_explicit(&largest, memory_order_relaxed);
    while (bytes > was && !atomic_compare_exchange_weak_explicit(
                              &largest, &was, bytes, memory_order_relaxed, memory_order_relaxed))
        ;
}

void *malloc(size_t n)
{
    count(n);
    return gained(__libc_malloc(n));
}

void *calloc(size_t a, size_t b)
{
    count(b && a > SIZE_MAX / b ? SIZE_MAX : a * b);
    return gained(__libc_calloc(a, b));
}

void *realloc(void *p, size_t n)
{
    count(n);
    const long long old = p ? (long long)malloc_usable_size(p) : 0;
    void *q = __libc_realloc(p, n);
    if (q || n == 0) { /* moved, resized or (n == 0) freed: p's bytes are gone */
        atomic_fetch_sub(&live, old);
        gained(q);
    }
    return q;
}

void *aligned_alloc(size_t align, size_t n)
{
    count(n);
    return gained(__libc_memalign(align, n));
}

void *memalign(size_t align, size_t n)
{
    count(n);
    return gained(__libc_memalign(align, n));
}

int posix_memalign(void **out, size_t align, size_t n)
{
    count(n);
    void *p = gained(__libc_memalign(align, n));
    if (!p)
        return ENOMEM;
    *out = p;
    return 0;
}

void free(void *p)
{
    lost(p);
    __libc_free(p);
}
