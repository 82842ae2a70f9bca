/* Inside the jobs module (jobs.c: table, threads, status; job_run.c: running one job):
 * the job record and the table.  Locking as in the DESIGN note of jobs.h. */
#ifndef JOBS_INTERNAL_H
#define JOBS_INTERNAL_H

#include "job_curve.h"
#include "jobs.h"
#include "repository.h"
#include "train_loop.h"

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>

#define JOB_MAX_TRANSITIONS 8

struct job {
    long id;
    char model[REPO_NAME_MAX];
    struct job_spec spec;        /* owned */
    char dataset_real[PATH_MAX]; /* resolved under the data root */
    atomic_int cancel;           /* set by jobs_cancel / destroy; read by the trainer */
    /* the rest: j->mu */
    enum job_state state;
    long cancel_step; /* total steps when the cancel was asked; -1 = none */
    double created_at, started_at, finished_at; /* Unix seconds; 0 = not yet */
    struct {
        enum job_state state;
        double at;
    } transitions[JOB_MAX_TRANSITIONS];
    int n_transitions;
    int parent_version, version; /* version published; 0 = none */
    int train_items, val_items, classes;
    int epoch, epochs;          /* epoch: 1-based, the one running (or last run) */
    long step, steps_per_epoch; /* step within the epoch */
    long total_step, total_steps;
    double loss, accuracy, items_per_s, eta_s, elapsed_s;
    double val_accuracy;              /* last epoch's; NAN before */
    double parent_val_accuracy;       /* the parent on the same items; NAN when not scored */
    struct cnn_epoch_result *history; /* owned, `epochs` entries, n_history filled */
    int n_history;
    char phase[32]; /* "loading dataset", "training", "publishing", ... */
    char error[200];
    char rejected_model[REPO_NAME_MAX + 48]; /* NAME/.rejected-jobN when kept */
    struct job_curve curve; /* per-step points and, once trained, the confusion matrix */
    struct job *next;                        /* table, newest first */
};

struct jobs {
    struct jobs_config cfg;
    char *repository; /* owned copy */
    char version[32];
    pthread_mutex_t mu;
    pthread_cond_t cv; /* a job was queued, or stop */
    struct job *table; /* newest first */
    long next_id;
    int queued, stop;
    pthread_t *threads;
    int n_threads;
};

/* Moves job to `state` (recording the transition and the metrics).  Caller holds j->mu. */
void jobs_set_state_locked(struct jobs *j, struct job *job, enum job_state state);

/* Runs one job on the calling job thread, from loading its dataset to publishing; ends with
 * the job in a final state.  Takes j->mu only to update the job. */
void job_run(struct jobs *j, struct job *job);

#endif
