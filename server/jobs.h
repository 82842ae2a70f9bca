/* Fine-tune jobs: a table of jobs with their progress, a bounded pool of job threads, a
 * FIFO queue, cancellation, and the run of one job (job_run.c): dataset under the data
 * root -> trainer from the live version -> epochs -> validation gate -> publish.
 *
 * DESIGN: jobs_create starts max_jobs job threads (each at nice `nice`); a submitted job
 * waits in the queue (at most queue_size; beyond it jobs_submit fails with CNN_EBUSY) until
 * a thread takes it.  j->mu guards the table: every job's state, progress fields, history
 * and the queue; a job thread writes its own job's progress under j->mu for the moment of
 * copying numbers and holds no lock while loading, training, writing or calling the
 * registry.  Cancel = the job's atomic flag, which the trainer checks before every step
 * (cnn_train_loop_run), so a running job stops within one step; a queued job is cancelled
 * at once.  Finished jobs stay listed (the newest JOBS_KEEP_FINISHED).  Jobs live in
 * memory: a restart forgets them (a version a job published stays published).
 * Threads: submit / status / list / cancel from admin MHD threads; destroy from main. */
#ifndef JOBS_H
#define JOBS_H

#include "err.h"
#include "job_spec.h"

#include <jansson.h>
#include <stddef.h>

#define JOBS_KEEP_FINISHED 100

struct registry;
struct metrics;

enum job_state {
    JOB_QUEUED = 0,
    JOB_RUNNING,
    JOB_SUCCEEDED,
    JOB_FAILED,
    JOB_CANCELLED,
    JOB_REJECTED
};

struct jobs_config {
    const char *repository;  /* model repository: versions are published into it */
    int max_jobs;            /* job threads, >= 1 */
    int queue_size;          /* queued jobs at most, >= 0 */
    int nice;                /* nice value of job threads (0..19) */
    int threads_per_job;     /* threads a job's trainer splits each layer over, >= 1 */
    struct registry *reg;    /* borrowed; must outlive jobs_destroy */
    struct metrics *metrics; /* borrowed; may be NULL */
    const char *version;     /* cnnd version, for the lineage */
    /* data root (borrowed, outlives the jobs): datasets are opened under it with openat2
     * (core/fsroot.h); NULL opens the resolved dataset path as it is */
    const char *data_root;
};

struct jobs;

/* Starts the job threads.  NULL with err on failure. */
struct jobs *jobs_create(const struct jobs_config *cfg, struct cnn_err *err);
/* Cancels every queued and running job, joins the threads, frees everything. */
void jobs_destroy(struct jobs *j);

/* Queues a fine-tune job of model `name` with *spec (taken over: *spec is emptied) and the
 * dataset's resolved path.  *id gets the job id.  CNN_EBUSY when the queue is full. */
int jobs_submit(struct jobs *j, const char *name, struct job_spec *spec, const char *dataset_real,
                long *id, struct cnn_err *err);

/* A job's status object (new reference); NULL when there is no such job. */
json_t *jobs_status_json(struct jobs *j, long id);
/* A job's step curve (job_curve.h) with its id, state, total_steps, epochs, per-epoch history
 * and confusion matrix (new reference); NULL when there is no such job. */
json_t *jobs_curve_json(struct jobs *j, long id);
/* {"jobs": [status, ...]} newest first (new reference). */
json_t *jobs_list_json(struct jobs *j);

/* Asks job id to stop: a queued job is cancelled at once, a running one at its next step.
 * *state gets the state afterwards.  CNN_ENOENT: no such job; CNN_EBUSY: it already
 * finished (nothing to cancel). */
int jobs_cancel(struct jobs *j, long id, enum job_state *state, struct cnn_err *err);

/* "queued", "running", "succeeded", "failed", "cancelled", "rejected". */
const char *job_state_name(enum job_state s);

#endif
