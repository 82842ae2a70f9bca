/* Running one fine-tune job on a job thread (see jobs.h): the live version of the model
 * -> the dataset under the data root (class folders matched to labels by name) -> a
 * trainer (new head for a new label set) -> cnn_train_loop_run with progress written into
 * the job -> the validation gate -> publish_version + registry_publish (succeeded), or the
 * model kept as NAME/.rejected-jobN (rejected).  A cancel stops it at the next step and
 * writes nothing. */
#include "examples.h"
#include "jobs_internal.h"
#include "log.h"
#include "metrics.h"
#include "publish.h"
#include "registry.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct run {
    struct jobs *j;
    struct job *job;
    struct model_version *mv; /* the parent, held until the trainer has copied it */
    int parent_version;
    char parent_arch[64], parent_trained_at[64];
    struct cnn_preproc pp;
    struct cnn_dataset *d;
    int *train_idx, *val_idx, n_train, n_val;
    int head_replaced;
    struct cnn_trainer *t;
    struct cnn_epoch_result *results;
    int epochs_done;
    double seconds;
};

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void set_phase(struct run *rn, const char *phase)
{
    pthread_mutex_lock(&rn->j->mu);
    snprintf(rn->job->phase, sizeof rn->job->phase, "%s", phase);
    pthread_mutex_unlock(&rn->j->mu);
}

static void on_progress(const struct cnn_train_progress *p, void *arg)
{
    struct run *rn = arg;
    struct job *job = rn->job;
    pthread_mutex_lock(&rn->j->mu);
    job->epoch = p->epoch + 1;
    job->step = p->step;
    job->steps_per_epoch = p->steps_per_epoch;
    job->total_step = p->total_step;
    job->total_steps = p->total_steps;
    job->loss = p->loss;
    job->accuracy = p->accuracy;
    job->items_per_s = p->items_per_s;
    job->eta_s = p->eta_s;
    job->elapsed_s = p->elapsed_s;
    if (p->epoch_done && job->n_history < job->epochs) {
        job->history[job->n_history++] = *p->epoch_done;
        job->val_accuracy = p->epoch_done->val_acc;
    }
    pthread_mutex_unlock(&rn->j->mu);
    struct metrics *m = rn->j->cfg.metrics;
    if (m && !p->epoch_done)
        metrics_train_step(m, p->loss, p->accuracy);
    if (p->epoch_done) {
        const struct cnn_epoch_result *e = p->epoch_done;
        if (m && !isnan(e->val_acc))
            metrics_train_validation(m, e->val_acc);
        log_info("job epoch id=%ld model=%s epoch=%d/%d train_loss=%.4f train_acc=%.4f "
                 "val_loss=%.4f val_acc=%.4f items_per_s=%.0f seconds=%.1f",
                 job->id, job->model, e->epoch + 1, p->epochs, e->train_loss, e->train_acc,
                 e->val_loss, e->val_acc, e->items_per_s, e->seconds);
    }
}

/* Label i of m, "class<i>" when unlabelled. */
static const char *label_of(const struct cnn_model *m, int i, char *buf, size_t cap)
{
    const char *l = cnn_model_label(m, i);
    if (l)
        return l;
    snprintf(buf, cap, "class%d", i);
    return buf;
}

/* Class folders -> label order: folder k (names decoded) must be labels[order[k]]; the
 * dataset is renumbered so that label j is labels[j]. */
static int match_folders(struct run *rn, const char *const *labels, int n, int new_head,
                         struct cnn_err *err)
{
    int k_data = cnn_dataset_num_classes(rn->d);
    if (k_data != n && new_head)
        return cnn_err_set(err, CNN_EINVAL,
                           "the folder has %d class folders for %d labels: give one folder "
                           "per label",
                           k_data, n);
    if (k_data != n)
        return cnn_err_set(err, CNN_EINVAL,
                           "the folder has %d class folders but the model %d labels: "
                           "fine-tuning the same head needs a folder for every label, in any "
                           "order (or give labels for a new head)",
                           k_data, n);
    int *order = malloc((size_t)n * sizeof *order);
    if (!order)
        return cnn_err_set(err, CNN_ENOMEM, "out of memory");
    int rc = 0;
    for (int want = 0; want < n && rc == 0; want++) {
        order[want] = -1;
        for (int k = 0; k < k_data; k++) {
            char name[CNN_LABEL_MAX * 3 + 1];
            if (examples_dir_label(cnn_dataset_class_name(rn->d, k), name, sizeof name) == 0 &&
                strcmp(name, labels[want]) == 0)
                order[want] = k;
        }
        if (order[want] < 0)
            rc = cnn_err_set(err, CNN_EINVAL, "no class folder for label '%.60s'", labels[want]);
    }
    if (rc == 0)
        rc = cnn_dataset_keep_classes(rn->d, order, n, err);
    free(order);
    return rc;
}

static int open_dataset(struct run *rn, struct cnn_err *err)
{
    const struct job_spec *sp = &rn->job->spec;
    int rc = cnn_dataset_open(rn->job->dataset_real, sp->format, sp->split, &rn->pp, &rn->d, err);
    if (rc)
        return rc;
    if (sp->classes && (rc = cnn_dataset_keep_classes(rn->d, sp->classes, sp->n_classes, err)))
        return rc;
    const struct cnn_model *m = rn->mv->model;
    int head = sp->labels ? sp->n_labels : cnn_model_num_classes(m);
    if (sp->format == CNN_DATASET_FOLDER) {
        if (sp->labels)
            return match_folders(rn, (const char *const *)sp->labels, sp->n_labels, 1, err);
        const char **labels = malloc((size_t)head * sizeof *labels);
        char(*bufs)[24] = malloc((size_t)head * sizeof *bufs);
        if (!labels || !bufs)
            rc = cnn_err_set(err, CNN_ENOMEM, "out of memory");
        for (int i = 0; rc == 0 && i < head; i++)
            labels[i] = label_of(m, i, bufs[i], sizeof bufs[i]);
        if (rc == 0)
            rc = match_folders(rn, labels, head, 0, err);
        free(labels);
        free(bufs);
        return rc;
    }
    if (cnn_dataset_num_classes(rn->d) > head)
        return cnn_err_set(err, CNN_EINVAL,
                           "the dataset has labels up to %d but %s %d classes (give labels for "
                           "a new head, with dataset.classes to pick classes)",
                           cnn_dataset_num_classes(rn->d) - 1,
                           sp->labels ? "labels names" : "the model has", head);
    return 0;
}

static int same_labels(const struct cnn_model *m, char **labels, int n)
{
    if (cnn_model_num_classes(m) != n)
        return 0;
    for (int k = 0; k < n; k++) {
        const char *l = cnn_model_label(m, k);
        if (!l || strcmp(l, labels[k]) != 0)
            return 0;
    }
    return 1;
}

static int make_trainer(struct run *rn, struct cnn_err *err)
{
    const struct job_spec *sp = &rn->job->spec;
    long spe = cnn_train_loop_steps_per_epoch(rn->n_train, sp->batch_size);
    struct cnn_train_config cfg;
    cnn_train_config_default(&cfg);
    cfg.lr = (float)sp->learning_rate;
    cfg.momentum = (float)sp->momentum;
    cfg.weight_decay = (float)sp->weight_decay;
    cfg.schedule = sp->schedule;
    cfg.step_epochs = sp->epochs >= 3 ? sp->epochs / 3 : 1;
    cfg.step_gamma = 0.1f;
    cfg.steps_per_epoch = spe > 0 ? spe : 1;
    cfg.total_steps = cfg.steps_per_epoch * sp->epochs;
    cfg.freeze_upto = sp->freeze[0] ? sp->freeze : NULL;
    cfg.seed = sp->seed;
    cfg.max_batch = sp->batch_size;
    cfg.threads = rn->j->cfg.threads_per_job; /* helpers inherit this thread's nice value */
    cfg.cancel = &rn->job->cancel;
    rn->t = cnn_trainer_create(rn->mv->model, &cfg, err);
    if (!rn->t)
        return err->code ? err->code : CNN_ENOMEM;
    if (sp->labels && !same_labels(rn->mv->model, sp->labels, sp->n_labels)) {
        int rc =
            cnn_trainer_replace_head(rn->t, (const char *const *)sp->labels, sp->n_labels, err);
        if (rc)
            return rc;
        rn->head_replaced = 1;
    }
    return 0;
}

/* Lineage metadata: parent, dataset, hyperparameters, final metrics ("key=value" lines). */
static char *lineage(const struct run *rn)
{
    const struct job *job = rn->job;
    const struct job_spec *sp = &job->spec;
    size_t cap = 8192;
    char *buf = malloc(cap);
    if (!buf)
        return NULL;
    int n = 0;
#define PUT(...) (n += snprintf(buf + n, n < (int)cap ? cap - (size_t)n : 0, __VA_ARGS__))
    if (rn->parent_arch[0])
        PUT("arch=%s\n", rn->parent_arch);
    PUT("parent=%s/%d\n", job->model, rn->parent_version);
    if (rn->parent_trained_at[0])
        PUT("parent_trained_at=%s\n", rn->parent_trained_at);
    PUT("dataset=%s:%s\n", sp->format == CNN_DATASET_IDX ? "idx" : "folder", sp->path);
    if (sp->format == CNN_DATASET_IDX)
        PUT("dataset_split=%s\n", sp->split);
    if (sp->classes) {
        PUT("dataset_classes=");
        for (int i = 0; i < sp->n_classes; i++)
            PUT("%s%d", i ? "," : "", sp->classes[i]);
        PUT("\n");
    }
    PUT("train_items=%d\nval_items=%d\nval_split=%g\nepochs=%d\n", rn->n_train, rn->n_val,
        sp->validation_split, sp->epochs);
    PUT("head=%s\n", rn->head_replaced ? "replaced" : "kept");
    char hyper[2048];
    cnn_trainer_describe(rn->t, hyper, sizeof hyper);
    PUT("%s%s", hyper, hyper[0] && hyper[strlen(hyper) - 1] != '\n' ? "\n" : "");
    if (rn->epochs_done > 0) {
        const struct cnn_epoch_result *e = &rn->results[rn->epochs_done - 1];
        PUT("final_train_loss=%.4f\nfinal_train_acc=%.4f\n", e->train_loss, e->train_acc);
        if (!isnan(e->val_acc))
            PUT("final_val_loss=%.4f\nfinal_val_acc=%.4f\n", e->val_loss, e->val_acc);
    }
    PUT("min_accuracy=%g\ntrain_seconds=%.1f\njob_id=%ld\n", sp->min_accuracy, rn->seconds,
        job->id);
    time_t now = time(NULL);
    struct tm tm;
    char at[32] = "";
    if (gmtime_r(&now, &tm))
        strftime(at, sizeof at, "%Y-%m-%dT%H:%M:%SZ", &tm);
    PUT("trained_at=%s\ntrained_by=cnnd %s fine-tune job %ld\n", at, rn->j->cfg.version, job->id);
#undef PUT
    if (n >= (int)cap) { /* cut after the last whole line */
        size_t k = cap - 1;
        while (k > 0 && buf[k - 1] != '\n')
            k--;
        buf[k] = '\0';
    }
    return buf;
}

/* Everything up to a trained trainer.  0, CNN_ECANCELED or an error. */
static int train(struct run *rn, struct cnn_err *err)
{
    struct job *job = rn->job;
    int rc = registry_acquire(rn->j->cfg.reg, job->model, 0, &rn->mv, err);
    if (rc)
        return rc;
    rn->parent_version = rn->mv->version;
    rn->pp = *cnn_model_preproc(rn->mv->model);
    cnn_model_meta_value(rn->mv->model, "arch", rn->parent_arch, sizeof rn->parent_arch);
    cnn_model_meta_value(rn->mv->model, "trained_at", rn->parent_trained_at,
             sizeof rn->parent_trained_at);
    pthread_mutex_lock(&rn->j->mu);
    job->parent_version = rn->parent_version;
    snprintf(job->phase, sizeof job->phase, "loading dataset");
    pthread_mutex_unlock(&rn->j->mu);
    log_info("job started id=%ld model=%s parent_version=%d dataset=%s", job->id, job->model,
             rn->parent_version, job->spec.path);

    if ((rc = open_dataset(rn, err)))
        return rc;
    if (atomic_load(&job->cancel))
        return cnn_err_set(err, CNN_ECANCELED, "cancelled while loading the dataset");
    int n = cnn_dataset_count(rn->d);
    rn->train_idx = malloc((size_t)n * sizeof *rn->train_idx);
    rn->val_idx = malloc((size_t)n * sizeof *rn->val_idx);
    rn->results = calloc((size_t)job->spec.epochs, sizeof *rn->results);
    if (!rn->train_idx || !rn->val_idx || !rn->results)
        return cnn_err_set(err, CNN_ENOMEM, "out of memory");
    rc = cnn_dataset_split(rn->d, job->spec.validation_split, job->spec.seed, rn->train_idx,
                           &rn->n_train, rn->val_idx, &rn->n_val, err);
    if (rc)
        return rc;
    if (job->spec.min_accuracy > 0 && rn->n_val == 0)
        return cnn_err_set(err, CNN_EINVAL, "no validation items: the gate cannot be decided");
    if ((rc = make_trainer(rn, err)))
        return rc;
    registry_release(rn->j->cfg.reg, rn->mv); /* the trainer holds its own copy */
    rn->mv = NULL;

    long spe = cnn_train_loop_steps_per_epoch(rn->n_train, job->spec.batch_size);
    pthread_mutex_lock(&rn->j->mu);
    job->train_items = rn->n_train;
    job->val_items = rn->n_val;
    job->classes = cnn_trainer_num_classes(rn->t);
    job->steps_per_epoch = spe;
    job->total_steps = spe * job->spec.epochs;
    snprintf(job->phase, sizeof job->phase, "training");
    pthread_mutex_unlock(&rn->j->mu);

    struct cnn_loop_config lc = {
        .input = &rn->pp,
        .epochs = job->spec.epochs,
        .batch = job->spec.batch_size,
        .seed = job->spec.seed,
        .cancel = &job->cancel,
        .progress = on_progress,
        .progress_arg = rn,
    };
    double t0 = mono_now();
    rc = cnn_train_loop_run(rn->t, rn->d, rn->train_idx, rn->n_train, rn->val_idx, rn->n_val, &lc,
                            rn->results, &rn->epochs_done, err);
    rn->seconds = mono_now() - t0;
    return rc;
}

/* After training: the gate, export, and publish or keep as rejected.  Returns the final
 * state; *version the published version. */
static enum job_state finish(struct run *rn, int *version, char *msg, size_t cap)
{
    struct job *job = rn->job;
    const struct job_spec *sp = &job->spec;
    double val = rn->epochs_done > 0 ? rn->results[rn->epochs_done - 1].val_acc : NAN;
    int passed = rn->n_val > 0 ? val >= sp->min_accuracy : sp->min_accuracy <= 0;
    if (atomic_load(&job->cancel)) {
        snprintf(msg, cap, "cancelled after training, before publishing");
        return JOB_CANCELLED;
    }
    set_phase(rn, "exporting");
    char *meta = lineage(rn);
    struct cnn_err err = {0};
    struct cnn_model *m = NULL;
    int rc = meta ? cnn_trainer_export(rn->t, meta, &m, &err)
                  : cnn_err_set(&err, CNN_ENOMEM, "out of memory");
    free(meta);
    if (rc) {
        snprintf(msg, cap, "export failed: %s", err.msg);
        return JOB_FAILED;
    }
    if (atomic_load(&job->cancel)) { /* the last moment a cancel still stops the publish */
        cnn_model_destroy(m);
        snprintf(msg, cap, "cancelled after training, before publishing");
        return JOB_CANCELLED;
    }
    enum job_state state;
    if (!passed) {
        char dir[48];
        snprintf(dir, sizeof dir, ".rejected-job%ld", job->id);
        snprintf(msg, cap, "validation accuracy %.4f is below min_accuracy %g; not published", val,
                 sp->min_accuracy);
        if (publish_hidden(rn->j->cfg.repository, job->model, dir, m, &err) == 0) {
            pthread_mutex_lock(&rn->j->mu);
            snprintf(job->rejected_model, sizeof job->rejected_model, "%s/%s", job->model, dir);
            pthread_mutex_unlock(&rn->j->mu);
        } else {
            log_warn("job rejected model not kept id=%ld error=\"%s\"", job->id, err.msg);
        }
        state = JOB_REJECTED;
    } else {
        set_phase(rn, "publishing");
        char tag[32];
        snprintf(tag, sizeof tag, "job%ld", job->id);
        rc = publish_version(rn->j->cfg.repository, job->model, m, tag, version, &err);
        if (rc == 0) {
            log_info("job published id=%ld model=%s version=%d val_acc=%.4f", job->id, job->model,
                     *version, val);
            rc = registry_publish(rn->j->cfg.reg, job->model, *version, &err);
        }
        if (rc) {
            snprintf(msg, cap, "%s", err.msg);
            state = JOB_FAILED;
        } else {
            if (rn->j->cfg.metrics)
                metrics_count_publish(rn->j->cfg.metrics);
            state = JOB_SUCCEEDED;
        }
    }
    cnn_model_destroy(m);
    return state;
}

void job_run(struct jobs *j, struct job *job)
{
    struct run rn = {.j = j, .job = job};
    struct cnn_err err = {0};
    char msg[sizeof job->error] = "";
    int version = 0;
    enum job_state state;
    int rc = train(&rn, &err);
    if (rc == CNN_ECANCELED) {
        state = JOB_CANCELLED;
        snprintf(msg, sizeof msg, "cancelled: %s", err.msg);
    } else if (rc) {
        state = JOB_FAILED;
        snprintf(msg, sizeof msg, "%s", err.msg[0] ? err.msg : cnn_strerror(rc));
    } else {
        state = finish(&rn, &version, msg, sizeof msg);
    }
    if (rn.mv)
        registry_release(j->cfg.reg, rn.mv);
    cnn_trainer_destroy(rn.t);
    cnn_dataset_destroy(rn.d);
    free(rn.train_idx);
    free(rn.val_idx);
    free(rn.results);
    pthread_mutex_lock(&j->mu);
    job->version = version;
    snprintf(job->error, sizeof job->error, "%s", state == JOB_SUCCEEDED ? "" : msg);
    snprintf(job->phase, sizeof job->phase, "done");
    double val = job->val_accuracy;
    long id = job->id, steps = job->total_step;
    jobs_set_state_locked(j, job, state);
    pthread_mutex_unlock(&j->mu);
    /* the job belongs to the table from here: not touched again */
    log_info("job finished id=%ld state=%s version=%d val_acc=%.4f steps=%ld seconds=%.1f%s%s%s",
             id, job_state_name(state), version, val, steps, rn.seconds, msg[0] ? " error=\"" : "",
             msg, msg[0] ? "\"" : "");
}
