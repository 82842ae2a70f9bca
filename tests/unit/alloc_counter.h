/* Allocation counter (alloc_counter.c): number of malloc-family calls so far in this
 * process, and the largest request.  Weak: absent in sanitizer builds, where the tests that
 * use it check less. */
#ifndef ALLOC_COUNTER_H
#define ALLOC_COUNTER_H

#include <stddef.h>

long alloc_counter_calls(void) __attribute__((weak));
/* Bytes of the largest malloc-family request since the last call with reset != 0. */
size_t alloc_counter_largest(int reset) __attribute__((weak));

#endif
