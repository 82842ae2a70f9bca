/* Allocation counter (alloc_counter.c): number of malloc-family calls so far in this
 * process, the largest request, and the live heap bytes and their peak.  Weak: absent in sanitizer
 * builds, where the tests that use it check less. */
#ifndef ALLOC_COUNTER_H
#define ALLOC_COUNTER_H

#include <stddef.h>

long alloc_counter_calls(void) __attribute__((weak));
/* Bytes of the largest malloc-family request since the last call with reset != 0. */
size_t alloc_counter_largest(int reset) __attribute__((weak));
/* Heap bytes live now (malloc_usable_size of every block not yet freed), and the most that
 * were live at once since the last call with reset != 0 (reset: from what is live now). */
size_t alloc_counter_live(void) __attribute__((weak));
size_t alloc_counter_peak(int reset) __attribute__((weak));

#endif
