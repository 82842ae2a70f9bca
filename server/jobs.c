/* Fine-tune jobs (see jobs.h): the table, the job threads and the status JSON; running one
 * job is job_run.c. */
#define _GNU_SOURCE /* pthread_setname_np */
#include "jobs_internal.h"

#include "log.h"
#include "metrics.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static const char *const STATE_NAMES[] = {"queued", "running",   "succeeded",
                                          "failed", "cancelled", "rejected"};

const char *job_state_name(enum job_state s)
{
    return (unsigned)s < 6 ? STATE_NAMES[s] : "unknown";
}

static double wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int is_final(enum job_state s)
{
    return s >= JOB_SUCCEEDED;
}

void jobs_set_state_locked(struct jobs *j, struct job *job, enum job_state state)
{
    enum job_state old = job->state;
    int fresh = job->n_transitions == 0;
    job->state = state;
    double now = wall_now();
    if (job->n_transitions < JOB_MAX_TRANSITIONS) {
        job->transitions[job->n_transitions].state = state;
        job->transitions[job->n_transitions].at = now;
        job->n_transitions++;
    }
    if (state == JOB_RUNNING)
        job->started_at = now;
    if (is_final(state))
        job->finished_at = now;
    if (j->cfg.metrics)
        metrics_job_state(j->cfg.metrics, fresh ? NULL : job_state_name(old),
                          job_state_name(state));
}

static void job_free(struct job *job)
{
    job_spec_free(&job->spec);
    job_curve_free(&job->curve);
    free(job->history);
    free(job);
}

/* Forgets the oldest finished jobs beyond JOBS_KEEP_FINISHED.  Caller holds j->mu. */
static void prune_locked(struct jobs *j)
{
    int finished = 0;
    for (struct job **pp = &j->table; *pp;) {
        struct job *job = *pp;
        if (is_final(job->state) && ++finished > JOBS_KEEP_FINISHED) {
            *pp = job->next;
            if (j->cfg.metrics)
                metrics_job_state(j->cfg.metrics, job_state_name(job->state), NULL);
            job_free(job);
            continue;
        }
        pp = &job->next;
    }
}

static void *job_thread(void *arg)
{
    struct jobs *j = arg;
    pthread_setname_np(pthread_self(), "cnnd-job");
    /* Linux: the nice value of this thread only, so inference threads win the CPU */
    if (j->cfg.nice > 0 && setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), j->cfg.nice) != 0)
        log_warn("job thread nice failed nice=%d error=\"%s\"", j->cfg.nice, strerror(errno));
    pthread_mutex_lock(&j->mu);
    for (;;) {
        struct job *next = NULL;
        while (!j->stop) {
            for (struct job *job = j->table; job; job = job->next)
                if (job->state == JOB_QUEUED)
                    next = job; /* the oldest: the table is newest first */
            if (next)
                break;
            pthread_cond_wait(&j->cv, &j->mu);
        }
        if (j->stop)
            break;
        j->queued--;
        jobs_set_state_locked(j, next, JOB_RUNNING);
        pthread_mutex_unlock(&j->mu);
        job_run(j, next); /* ends with the job in a final state; it is not touched again */
        pthread_mutex_lock(&j->mu);
        prune_locked(j);
    }
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

struct jobs *jobs_create(const struct jobs_config *cfg, struct cnn_err *err)
{
    if (!cfg || !cfg->repository || !cfg->reg || cfg->max_jobs < 1 || cfg->queue_size < 0) {
        cnn_err_set(err, CNN_EINVAL, "jobs: bad configuration");
        return NULL;
    }
    struct jobs *j = calloc(1, sizeof *j);
    if (!j || !(j->repository = strdup(cfg->repository)) ||
        !(j->threads = calloc((size_t)cfg->max_jobs, sizeof *j->threads))) {
        if (j)
            free(j->repository);
        free(j);
        cnn_err_set(err, CNN_ENOMEM, "jobs: out of memory");
        return NULL;
    }
    j->cfg = *cfg;
    j->cfg.repository = j->repository;
    snprintf(j->version, sizeof j->version, "%s", cfg->version ? cfg->version : "");
    j->cfg.version = j->version;
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    for (int i = 0; i < cfg->max_jobs; i++) {
        int rc = pthread_create(&j->threads[i], NULL, job_thread, j);
        if (rc) {
            cnn_err_set(err, CNN_ENOMEM, "jobs: cannot start a job thread: %s", strerror(rc));
            jobs_destroy(j);
            return NULL;
        }
        j->n_threads++;
    }
    return j;
}

void jobs_destroy(struct jobs *j)
{
    if (!j)
        return;
    pthread_mutex_lock(&j->mu);
    j->stop = 1;
    for (struct job *job = j->table; job; job = job->next) {
        atomic_store(&job->cancel, 1);
        if (job->state == JOB_QUEUED) {
            snprintf(job->error, sizeof job->error, "server shutting down");
            jobs_set_state_locked(j, job, JOB_CANCELLED);
        }
    }
    j->queued = 0;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    for (int i = 0; i < j->n_threads; i++)
        pthread_join(j->threads[i], NULL);
    while (j->table) {
        struct job *next = j->table->next;
        if (j->cfg.metrics)
            metrics_job_state(j->cfg.metrics, job_state_name(j->table->state), NULL);
        job_free(j->table);
        j->table = next;
    }
    pthread_cond_destroy(&j->cv);
    pthread_mutex_destroy(&j->mu);
    free(j->threads);
    free(j->repository);
    free(j);
}

int jobs_submit(struct jobs *j, const char *name, struct job_spec *spec, const char *dataset_real,
                long *id, struct cnn_err *err)
{
    struct job *job = calloc(1, sizeof *job);
    if (job)
        job->history = calloc((size_t)spec->epochs, sizeof *job->history);
    if (!job || !job->history) {
        free(job);
        return cnn_err_set(err, CNN_ENOMEM, "out of memory");
    }
    snprintf(job->model, sizeof job->model, "%s", name);
    snprintf(job->dataset_real, sizeof job->dataset_real, "%s", dataset_real);
    atomic_init(&job->cancel, 0);
    job->cancel_step = -1;
    job->epochs = spec->epochs;
    job->val_accuracy = job->parent_val_accuracy = NAN;
    job->loss = job->accuracy = NAN;
    snprintf(job->phase, sizeof job->phase, "queued");
    pthread_mutex_lock(&j->mu);
    int running = 0;
    for (struct job *o = j->table; o; o = o->next)
        running += o->state == JOB_RUNNING;
    if (j->stop || running + j->queued >= j->cfg.max_jobs + j->cfg.queue_size) {
        int stopping = j->stop, queued = j->queued;
        pthread_mutex_unlock(&j->mu);
        free(job->history);
        free(job);
        return stopping ? cnn_err_set(err, CNN_EBUSY, "server shutting down")
                        : cnn_err_set(err, CNN_EBUSY,
                                      "job queue full: %d running, %d queued (job_queue_size)",
                                      running, queued);
    }
    job->spec = *spec; /* taken over */
    memset(spec, 0, sizeof *spec);
    job->id = ++j->next_id;
    job->created_at = wall_now();
    jobs_set_state_locked(j, job, JOB_QUEUED);
    job->next = j->table;
    j->table = job;
    j->queued++;
    *id = job->id;
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
    log_info("job queued id=%ld model=%s dataset=%s epochs=%d", *id, name, job->spec.path,
             job->spec.epochs);
    return 0;
}

static struct job *find_locked(struct jobs *j, long id)
{
    for (struct job *job = j->table; job; job = job->next)
        if (job->id == id)
            return job;
    return NULL;
}

int jobs_cancel(struct jobs *j, long id, enum job_state *state, struct cnn_err *err)
{
    pthread_mutex_lock(&j->mu);
    struct job *job = find_locked(j, id);
    int rc = 0;
    if (!job) {
        rc = cnn_err_set(err, CNN_ENOENT, "no job %ld", id);
    } else if (job->state == JOB_QUEUED) {
        atomic_store(&job->cancel, 1);
        j->queued--;
        snprintf(job->error, sizeof job->error, "cancelled while queued");
        snprintf(job->phase, sizeof job->phase, "done");
        jobs_set_state_locked(j, job, JOB_CANCELLED);
    } else if (job->state == JOB_RUNNING) {
        if (!atomic_exchange(&job->cancel, 1))
            job->cancel_step = job->total_step;
    } else {
        rc = cnn_err_set(err, CNN_EBUSY, "job %ld already finished (%s)", id,
                         job_state_name(job->state));
    }
    if (job)
        *state = job->state;
    pthread_mutex_unlock(&j->mu);
    if (rc == 0)
        log_info("job cancel requested id=%ld state=%s", id, job_state_name(*state));
    return rc;
}

/* ---- status JSON ------------------------------------------------------------------------ */

static json_t *num(double x)
{
    return isfinite(x) ? json_real(x) : json_null();
}

static json_t *int_or_null(long v)
{
    return v > 0 ? json_integer(v) : json_null();
}

static json_t *when(double t)
{
    if (t <= 0)
        return json_null();
    time_t s = (time_t)t;
    struct tm tm;
    char buf[40];
    if (!gmtime_r(&s, &tm))
        return json_null();
    size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, sizeof buf - n, ".%03dZ", (int)((t - (double)s) * 1000) % 1000);
    return json_string(buf);
}

/* Caller holds j->mu. */
static json_t *status_locked(const struct job *job)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_t *tr = json_array(), *hist = json_array();
    for (int i = 0; tr && i < job->n_transitions; i++)
        json_array_append_new(tr, json_pack("{s:s, s:o}", "state",
                                            job_state_name(job->transitions[i].state), "at",
                                            when(job->transitions[i].at)));
    for (int i = 0; hist && i < job->n_history; i++) {
        const struct cnn_epoch_result *e = &job->history[i];
        json_array_append_new(hist, json_pack("{s:i, s:o, s:o, s:o, s:o, s:o, s:o, s:I}", "epoch",
                                              e->epoch + 1, "train_loss", num(e->train_loss),
                                              "train_accuracy", num(e->train_acc), "val_loss",
                                              num(e->val_loss), "val_accuracy", num(e->val_acc),
                                              "items_per_s", num(e->items_per_s), "seconds",
                                              num(e->seconds), "steps", (json_int_t)e->steps));
    }
    json_object_set_new(o, "id", json_integer(job->id));
    json_object_set_new(o, "model", json_string(job->model));
    json_object_set_new(o, "state", json_string(job_state_name(job->state)));
    json_object_set_new(o, "phase", json_string(job->phase));
    json_object_set_new(o, "error", job->error[0] ? json_string(job->error) : json_null());
    json_object_set_new(o, "parent_version", int_or_null(job->parent_version));
    json_object_set_new(o, "version", int_or_null(job->version));
    json_object_set_new(o, "created_at", when(job->created_at));
    json_object_set_new(o, "started_at", when(job->started_at));
    json_object_set_new(o, "finished_at", when(job->finished_at));
    json_object_set_new(o, "transitions", tr);
    json_object_set_new(o, "epoch", json_integer(job->epoch));
    json_object_set_new(o, "epochs", json_integer(job->epochs));
    json_object_set_new(o, "step", json_integer(job->step));
    json_object_set_new(o, "steps_per_epoch", json_integer(job->steps_per_epoch));
    json_object_set_new(o, "total_step", json_integer(job->total_step));
    json_object_set_new(o, "total_steps", json_integer(job->total_steps));
    json_object_set_new(o, "loss", num(job->loss));
    json_object_set_new(o, "accuracy", num(job->accuracy));
    json_object_set_new(o, "items_per_s", num(job->items_per_s));
    json_object_set_new(o, "eta_s", job->state == JOB_RUNNING ? num(job->eta_s) : json_null());
    json_object_set_new(o, "elapsed_s", num(job->elapsed_s));
    json_object_set_new(o, "train_items", json_integer(job->train_items));
    json_object_set_new(o, "val_items", json_integer(job->val_items));
    json_object_set_new(o, "classes", json_integer(job->classes));
    json_object_set_new(o, "val_accuracy", num(job->val_accuracy));
    json_object_set_new(o, "parent_val_accuracy", num(job->parent_val_accuracy));
    json_object_set_new(o, "val_accuracy_change",
                        num(job->val_accuracy - job->parent_val_accuracy));
    json_object_set_new(o, "gate", json_string(job_gate_name(job->spec.gate)));
    json_object_set_new(o, "min_accuracy", json_real(job->spec.min_accuracy));
    json_object_set_new(o, "history", hist);
    char link[64];
    snprintf(link, sizeof link, "/admin/v1/jobs/%ld/curve", job->id);
    json_object_set_new(o, "curve", json_string(link));
    json_object_set_new(o, "confusion", job_curve_confusion_json(&job->curve));
    json_object_set_new(o, "cancel_requested", json_boolean(atomic_load(&job->cancel)));
    json_object_set_new(o, "cancel_step",
                        job->cancel_step >= 0 ? json_integer(job->cancel_step) : json_null());
    if (job->rejected_model[0])
        json_object_set_new(o, "rejected_model", json_string(job->rejected_model));
    json_object_set_new(o, "request", job_spec_json(&job->spec));
    return o;
}

json_t *jobs_status_json(struct jobs *j, long id)
{
    pthread_mutex_lock(&j->mu);
    struct job *job = find_locked(j, id);
    json_t *o = job ? status_locked(job) : NULL;
    pthread_mutex_unlock(&j->mu);
    return o;
}

json_t *jobs_curve_json(struct jobs *j, long id)
{
    pthread_mutex_lock(&j->mu);
    struct job *job = find_locked(j, id);
    json_t *o = job ? job_curve_json(&job->curve) : NULL;
    if (o) {
        json_object_set_new(o, "id", json_integer(job->id));
        json_object_set_new(o, "state", json_string(job_state_name(job->state)));
        json_object_set_new(o, "total_steps", json_integer(job->total_steps));
        json_object_set_new(o, "epochs", json_integer(job->epochs));
        json_t *st = status_locked(job);
        json_object_set(o, "history", json_object_get(st, "history"));
        json_object_set(o, "confusion", json_object_get(st, "confusion"));
        json_decref(st);
    }
    pthread_mutex_unlock(&j->mu);
    return o;
}

json_t *jobs_list_json(struct jobs *j)
{
    json_t *list = json_array();
    pthread_mutex_lock(&j->mu);
    for (struct job *job = j->table; list && job; job = job->next)
        json_array_append_new(list, status_locked(job));
    pthread_mutex_unlock(&j->mu);
    return json_pack("{s:o}", "jobs", list);
}
