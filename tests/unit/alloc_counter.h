/* Allocation counter (alloc_counter.c): number of malloc-family calls so far in this
 * process.  Weak: absent in sanitizer builds, where the no-allocation test is not built. */
#ifndef ALLOC_COUNTER_H
#define ALLOC_COUNTER_H

long alloc_counter_calls(void) __attribute__((weak));

#endif
