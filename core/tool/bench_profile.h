/* `cnn bench --profile`: collects each timed call's per-op times (cnn_session_profile) and
 * prints per compiled op its layers, kind, kernel variant, output shape, MFLOP, median ms
 * per forward, GFLOP/s and share of the total: a table, or one JSON line per op. */
#ifndef CNN_TOOL_BENCH_PROFILE_H
#define CNN_TOOL_BENCH_PROFILE_H

#include "model.h"

#include <stdio.h>

struct bench_profile;

/* Owned; for the compiled m (borrowed for the profile's life).  NULL when out of memory. */
struct bench_profile *bench_profile_create(const struct cnn_model *m);
void bench_profile_destroy(struct bench_profile *p);
/* The buffer a session fills (cnn_session_profile), one entry per op. */
double *bench_profile_slot(struct bench_profile *p);
/* Keeps the slot's current times as one more call; -1 when out of memory. */
int bench_profile_record(struct bench_profile *p);
/* Prints the medians over the recorded calls for batches of `batch` images; with json, one
 * line {"op":..,"layers":[..],...} per op, else a table with a total line. */
void bench_profile_print(const struct bench_profile *p, long long batch, int json, FILE *f);

#endif
