/* A fixed team of threads that runs one function in parallel, split into parts: the
 * caller runs part 0 and each helper thread one more part -- or the caller runs it too,
 * after its own, when that helper has not started it yet -- and cnn_workers_run() returns
 * when every part is done.  Each part runs once, on one thread at a time.  Meant for many
 * short rounds (a layer of a training step takes 0.1-5 ms), so idle helpers spin briefly
 * before sleeping.  One caller at a time.  The helpers' CPU affinity masks leave out the
 * CPU the caller last started a round on (when the creating thread may use 2 or more), so
 * that the scheduler cannot leave a helper sharing the caller's core (workers.c). */
#ifndef CNN_WORKERS_H
#define CNN_WORKERS_H

#include "err.h"

#include <stddef.h>

struct cnn_workers;

/* fn(ctx, part, parts) for part = 0 .. parts-1, all at once. */
typedef void (*cnn_work_fn)(void *ctx, int part, int parts);

/* A team of `threads` (1..256; 1 starts no thread).  NULL with err set on failure. */
struct cnn_workers *cnn_workers_create(int threads, struct cnn_err *err);
void cnn_workers_destroy(struct cnn_workers *w);
/* Parts per round: the team's size, 1 for NULL. */
int cnn_workers_count(const struct cnn_workers *w);
/* Runs every part of fn and waits for them; a NULL team runs fn(ctx, 0, 1) in the caller. */
void cnn_workers_run(struct cnn_workers *w, cnn_work_fn fn, void *ctx);

/* Part `part` of `parts` of [0, n): [*lo, *hi), sizes differing by at most one. */
static inline void cnn_part_range(size_t n, int part, int parts, size_t *lo, size_t *hi)
{
    const size_t k = (size_t)part, base = n / (size_t)parts, extra = n % (size_t)parts;
    *lo = base * k + (k < extra ? k : extra);
    *hi = *lo + base + (k < extra ? 1 : 0);
}

#endif
