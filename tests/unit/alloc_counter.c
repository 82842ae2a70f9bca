/* Counting allocator for the no-allocation tests: replaces malloc and friends in the test
 * binary and forwards to glibc's __libc_* entry points.  Linked only into builds without
 * sanitizers (they bring their own allocator), see the Makefile. */
#include "alloc_counter.h"

#include <errno.h>
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

long alloc_counter_calls(void)
{
    return atomic_load(&calls);
}

size_t alloc_counter_largest(int reset)
{
    return reset ? atomic_exchange(&largest, 0) : atomic_load(&largest);
}

static void count(size_t bytes)
{
    atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed);
    size_t was = atomic_load_explicit(&largest, memory_order_relaxed);
    while (bytes > was &&
           !atomic_compare_exchange_weak_explicit(&largest, &was, bytes, memory_order_relaxed,
                                                  memory_order_relaxed))
        ;
}

void *malloc(size_t n)
{
    count(n);
    return __libc_malloc(n);
}

void *calloc(size_t a, size_t b)
{
    count(b && a > SIZE_MAX / b ? SIZE_MAX : a * b);
    return __libc_calloc(a, b);
}

void *realloc(void *p, size_t n)
{
    count(n);
    return __libc_realloc(p, n);
}

void *aligned_alloc(size_t align, size_t n)
{
    count(n);
    return __libc_memalign(align, n);
}

void *memalign(size_t align, size_t n)
{
    count(n);
    return __libc_memalign(align, n);
}

int posix_memalign(void **out, size_t align, size_t n)
{
    count(n);
    void *p = __libc_memalign(align, n);
    if (!p)
        return ENOMEM;
    *out = p;
    return 0;
}

void free(void *p)
{
    __libc_free(p);
}
