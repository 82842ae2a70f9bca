/* The explanation threads: a few threads (explain_threads) that compute saliency maps off
 * the HTTP and inference threads, and the cap on explanations in flight
 * (explain_max_concurrent; beyond it POST .../explain answers 429 at once).
 *
 * DESIGN: a handler reserves a slot (an atomic count, no lock) once the request is checked,
 * right before it submits the image to the batcher; the job is queued only once that item
 * came back, from that worker's done callback, which must not block: explain_pool_run only
 * links the job and signals.  One mutex (p->mu, owned here) guards the job list and the stop
 * flag; no lock is held while a job runs.  A job's run() owns the request until it resumes
 * the connection, and gives the slot back just before.  Threads: reserve from HTTP threads,
 * release from pool threads (or workers, on a failed item), run from batcher workers, jobs on
 * the pool's threads; create/destroy: main. */
#ifndef EXPLAIN_POOL_H
#define EXPLAIN_POOL_H

#include "err.h"

struct explain_job {
    void (*run)(struct explain_job *job); /* on a pool thread */
    struct explain_job *next;             /* queue link, the pool's while queued */
};

struct explain_pool;

/* threads 1..64 workers; max_jobs >= 1 jobs reserved at once.  NULL with err. */
struct explain_pool *explain_pool_create(int threads, int max_jobs, struct cnn_err *err);
/* Runs every queued job, joins the threads, frees.  NULL is a no-op.  Call after the
 * listeners drained (no reservation left). */
void explain_pool_destroy(struct explain_pool *p);

/* Takes a slot: 0, or CNN_EBUSY when max_jobs are reserved already. */
int explain_pool_reserve(struct explain_pool *p);
/* Gives a slot back (after the job ran, or when the request ends without one). */
void explain_pool_release(struct explain_pool *p);
/* Queues a job of a reserved slot; never blocks on a running job. */
void explain_pool_run(struct explain_pool *p, struct explain_job *job);
/* Slots reserved now (for the dashboard). */
int explain_pool_busy(struct explain_pool *p);

#endif
