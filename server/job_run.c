/* Running one fine-tune job on a job thread (see jobs.h): the live version (the parent) ->
 * the dataset under the data root -> the training driver (split, head, the parent scored on
 * the validation items, epochs with progress, lineage) -> the gate ("parent": no worse than
 * the parent on the same items; min_accuracy) -> publish + registry (succeeded) or the model
 * kept as NAME/.rejected-jobN (rejected).  A cancel stops it at the next step, writes nothing. */
#include "examples.h"
#include "fsroot.h"
#include "jobs_internal.h"
#include "log.h"
#include "memtrim.h"
#include "metrics.h"
#include "publish.h"
#include "registry.h"
#include "train_driver.h"

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct run {
    struct jobs *j;
    struct job *job;
    struct model_version *mv; /* the parent, held until the driver has copied it */
    struct cnn_dataset *d;
    struct cnn_train_driver *drv;
    char parent[REPO_NAME_MAX + 16], dataset[SAFEPATH_MAX + 16], extra[128], trained_by[96];
    char *classes; /* "3,0" when the spec picks dataset classes, else NULL; owned */
};

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
    if (!p->epoch_done)
        job_curve_add(&job->curve, p->total_step, p->step_loss, p->step_accuracy);
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
    const struct cnn_preproc *pp = cnn_model_preproc(rn->mv->model);
    int rc;
    if (rn->j->cfg.data_root) { /* every open beneath the root, no symlink (not raceable) */
        struct cnn_fsroot root = {open(rn->j->cfg.data_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
        if (root.fd < 0)
            return cnn_err_set(err, CNN_EIO, "the data root cannot be opened");
        rc = cnn_dataset_open_at(&root, sp->path, sp->format, sp->split, pp, &rn->d, err);
        close(root.fd);
    } else {
        rc = cnn_dataset_open(rn->job->dataset_real, sp->format, sp->split, pp, &rn->d, err);
    }
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

/* "1,8,9" for the spec's dataset classes, NULL when it keeps them all or out of memory. */
static char *class_list(const struct job_spec *sp)
{
    if (!sp->classes)
        return NULL;
    size_t cap = (size_t)sp->n_classes * 12 + 1;
    char *s = malloc(cap);
    size_t n = 0;
    for (int i = 0; s && i < sp->n_classes; i++)
        n += (size_t)snprintf(s + n, cap - n, "%s%d", i ? "," : "", sp->classes[i]);
    return s;
}

/* The driver: split, plan; the lineage strings live in rn. */
static int make_driver(struct run *rn, struct cnn_err *err)
{
    const struct job *job = rn->job;
    const struct job_spec *sp = &job->spec;
    struct cnn_train_driver_opts o;
    cnn_train_driver_opts_default(&o);
    o.labels = (const char *const *)sp->labels;
    o.n_labels = sp->n_labels;
    o.train.lr = (float)sp->learning_rate;
    o.train.momentum = (float)sp->momentum;
    o.train.weight_decay = (float)sp->weight_decay;
    o.train.schedule = sp->schedule;
    o.train.freeze_upto = sp->freeze[0] ? sp->freeze : NULL;
    o.train.seed = sp->seed;
    o.train.threads = rn->j->cfg.threads_per_job; /* helpers inherit this thread's nice value */
    o.train.cancel = &rn->job->cancel;
    o.val_split = sp->validation_split;
    o.epochs = sp->epochs;
    o.batch = sp->batch_size;
    o.progress = on_progress;
    o.progress_arg = rn;
    snprintf(rn->parent, sizeof rn->parent, "%s/%d", job->model, rn->mv->version);
    o.parent = rn->parent;
    snprintf(rn->dataset, sizeof rn->dataset, "%s:%s",
             sp->format == CNN_DATASET_IDX ? "idx" : "folder", sp->path);
    o.dataset = rn->dataset;
    o.dataset_split = sp->format == CNN_DATASET_IDX ? sp->split : NULL;
    if (sp->classes && !(rn->classes = class_list(sp)))
        return cnn_err_set(err, CNN_ENOMEM, "out of memory");
    o.dataset_classes = rn->classes;
    snprintf(rn->extra, sizeof rn->extra, "gate=%s\nmin_accuracy=%g\njob_id=%ld\n",
             job_gate_name(sp->gate), sp->min_accuracy, job->id);
    o.extra = rn->extra;
    snprintf(rn->trained_by, sizeof rn->trained_by, "cnnd %s fine-tune job %ld", rn->j->cfg.version,
             job->id);
    o.trained_by = rn->trained_by;
    return cnn_train_driver_create(rn->d, &o, &rn->drv, err);
}

/* Gate "parent" with the parent's head: its accuracy on the validation items, before any
 * step (a new head has nothing to compare; the gate is then min_accuracy alone). */
static int score_parent(struct run *rn, const struct cnn_train_driver_info *in,
                        struct cnn_err *err)
{
    struct job *job = rn->job;
    if (job->spec.gate != JOB_GATE_PARENT || in->head != CNN_TRAIN_HEAD_KEPT || in->n_val == 0)
        return 0;
    set_phase(rn, "scoring the parent");
    double acc, loss;
    int rc = cnn_train_driver_validate(rn->drv, &acc, &loss, err);
    if (rc)
        return rc;
    pthread_mutex_lock(&rn->j->mu);
    job->parent_val_accuracy = acc;
    pthread_mutex_unlock(&rn->j->mu);
    size_t n = strlen(rn->extra);
    snprintf(rn->extra + n, sizeof rn->extra - n, "parent_val_acc=%.4f\n", acc);
    log_info("job parent scored id=%ld model=%s parent_version=%d val_items=%d val_acc=%.4f "
             "val_loss=%.4f",
             job->id, job->model, job->parent_version, in->n_val, acc, loss);
    return 0;
}

/* Everything up to a trained trainer.  0, CNN_ECANCELED or an error. */
static int train(struct run *rn, struct cnn_err *err)
{
    struct job *job = rn->job;
    int rc = registry_acquire(rn->j->cfg.reg, job->model, 0, &rn->mv, err);
    if (rc)
        return rc;
    int parent_version = rn->mv->version;
    pthread_mutex_lock(&rn->j->mu);
    job->parent_version = parent_version;
    snprintf(job->phase, sizeof job->phase, "loading dataset");
    pthread_mutex_unlock(&rn->j->mu);
    log_info("job started id=%ld model=%s parent_version=%d dataset=%s", job->id, job->model,
             parent_version, job->spec.path);

    if ((rc = open_dataset(rn, err)))
        return rc;
    if (atomic_load(&job->cancel))
        return cnn_err_set(err, CNN_ECANCELED, "cancelled while loading the dataset");
    if ((rc = make_driver(rn, err)))
        return rc;
    struct cnn_train_driver_info in;
    cnn_train_driver_info(rn->drv, &in);
    if (job->spec.min_accuracy > 0 && in.n_val == 0)
        return cnn_err_set(err, CNN_EINVAL, "no validation items: the gate cannot be decided");
    if ((rc = cnn_train_driver_setup(rn->drv, rn->mv->model, err)))
        return rc;
    registry_release(rn->j->cfg.reg, rn->mv); /* the trainer holds its own copy */
    rn->mv = NULL;

    cnn_train_driver_info(rn->drv, &in);
    if ((rc = score_parent(rn, &in, err)))
        return rc;
    pthread_mutex_lock(&rn->j->mu);
    job->train_items = in.n_train;
    job->val_items = in.n_val;
    job->classes = in.classes;
    job->steps_per_epoch = in.steps_per_epoch;
    job->total_steps = in.total_steps;
    snprintf(job->phase, sizeof job->phase, "training");
    pthread_mutex_unlock(&rn->j->mu);
    return cnn_train_driver_run(rn->drv, err);
}

/* The trained model's confusion matrix on the validation items, into the job (for the
 * dashboard); up to 100 classes; a failure is only logged. */
static void confusion(struct run *rn, const struct cnn_model *m)
{
    int k = cnn_model_num_classes(m);
    struct cnn_err err = {0};
    long *cm = k <= 100 ? calloc((size_t)k * (size_t)k, sizeof *cm) : NULL;
    if (!cm || cnn_train_driver_confusion(rn->drv, m, cm, &err) != 0) {
        if (cm)
            log_warn("job confusion matrix skipped id=%ld error=\"%s\"", rn->job->id, err.msg);
        free(cm);
        return;
    }
    pthread_mutex_lock(&rn->j->mu);
    job_curve_set_confusion(&rn->job->curve, cm, k);
    pthread_mutex_unlock(&rn->j->mu);
}

/* After training: the gate, export, and publish or keep as rejected.  Returns the final
 * state; *version the published version. */
static enum job_state finish(struct run *rn, int *version, char *msg, size_t cap)
{
    struct job *job = rn->job;
    const struct job_spec *sp = &job->spec;
    struct cnn_train_driver_info in;
    cnn_train_driver_info(rn->drv, &in);
    double val = in.last ? in.last->val_acc : NAN;
    pthread_mutex_lock(&rn->j->mu);
    double parent = job->parent_val_accuracy; /* NAN unless gate "parent" scored it */
    pthread_mutex_unlock(&rn->j->mu);
    int below_floor = in.n_val > 0 ? !(val >= sp->min_accuracy) : sp->min_accuracy > 0;
    int below_parent = !isnan(parent) && !(val >= parent);
    if (atomic_load(&job->cancel)) {
        snprintf(msg, cap, "cancelled after training, before publishing");
        return JOB_CANCELLED;
    }
    set_phase(rn, "exporting");
    struct cnn_err err = {0};
    struct cnn_model *m = NULL;
    int rc = cnn_train_driver_export(rn->drv, &m, &err);
    if (rc) {
        snprintf(msg, cap, "export failed: %s", err.msg);
        return JOB_FAILED;
    }
    confusion(rn, m);
    if (atomic_load(&job->cancel)) { /* the last moment a cancel still stops the publish */
        cnn_model_destroy(m);
        snprintf(msg, cap, "cancelled after training, before publishing");
        return JOB_CANCELLED;
    }
    enum job_state state;
    if (below_floor || below_parent) {
        char dir[48];
        snprintf(dir, sizeof dir, ".rejected-job%ld", job->id);
        int n = 0;
        if (below_parent)
            n = snprintf(msg, cap,
                         "validation accuracy %.4f is %.4f below the parent's %.4f (version %d, "
                         "the same %d validation items)",
                         val, parent - val, parent, job->parent_version, in.n_val);
        if (below_floor && n >= 0 && (size_t)n < cap)
            n += snprintf(msg + n, cap - (size_t)n, "%s%.4f is below min_accuracy %g (by %.4f)",
                          n ? " and " : "validation accuracy ", val, sp->min_accuracy,
                          sp->min_accuracy - val);
        if (n >= 0 && (size_t)n < cap)
            snprintf(msg + n, cap - (size_t)n, "; not published");
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
            log_info("job published id=%ld model=%s version=%d val_acc=%.4f parent_val_acc=%.4f",
                     job->id, job->model, *version, val, parent);
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
    struct cnn_train_driver_info in = {0};
    if (rn.drv)
        cnn_train_driver_info(rn.drv, &in);
    cnn_train_driver_destroy(rn.drv);
    cnn_dataset_destroy(rn.d);
    free(rn.classes);
    memtrim_thread(); /* the trainer's memory back before the job is seen as finished */
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
             id, job_state_name(state), version, val, steps, in.seconds, msg[0] ? " error=\"" : "",
             msg, msg[0] ? "\"" : "");
}
