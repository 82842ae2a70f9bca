/* Timing helpers for `cnn bench`: monotonic clock, process CPU time (getrusage), system
 * busy/steal time (/proc/stat) and latency percentiles, as the peer benchmarks define them
 * (/work/shared/peers/README.md). */
#ifndef CNN_TOOL_BENCH_STATS_H
#define CNN_TOOL_BENCH_STATS_H

#include <stddef.h>

struct bench_clock {
    double wall_s; /* CLOCK_MONOTONIC */
    double own_s;  /* user + system CPU of this process */
    double busy_s; /* all CPUs: user + nice + system + irq + softirq (0 without /proc/stat) */
    double steal_s;
};

/* Seconds on the monotonic clock. */
double bench_now_s(void);
void bench_clock_read(struct bench_clock *c);

/* Sorts v[0..n) ascending in place. */
void bench_sort(double *v, size_t n);
/* Percentile q (0..100) of sorted v[0..n), n >= 1, linear between closest ranks (numpy's
 * default): the median is bench_percentile(v, n, 50). */
double bench_percentile(const double *sorted, size_t n, double q);

#endif
