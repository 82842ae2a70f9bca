/* One training run for `cnn train` and the fine-tune jobs: split, trainer (same labels keep
 * the head, others replace it), the epoch loop, and the lineage metadata with one key set. */
#include "train_driver.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LINEAGE_CAP 8192

struct cnn_train_driver {
    struct cnn_train_driver_opts o; /* strings borrowed, see the header */
    const struct cnn_dataset *d;
    int *train_idx, *val_idx, n_train, n_val;
    long spe, total_steps, warmup_steps;
    struct cnn_trainer *t;
    struct cnn_preproc input; /* the base's, copied at setup */
    enum cnn_train_head head;
    char arch[64]; /* the base's `arch`, "" when none */
    char parent_trained_at[64];
    struct cnn_epoch_result *results; /* o.epochs */
    int epochs_done;
    double seconds;
};

void cnn_train_driver_opts_default(struct cnn_train_driver_opts *o)
{
    *o = (struct cnn_train_driver_opts){
        .val_split = 0.1,
        .epochs = 10,
        .batch = 64,
        .trained_by = "",
    };
    cnn_train_config_default(&o->train);
    o->train.step_epochs = 0;
    o->train.seed = 1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int cnn_train_driver_create(const struct cnn_dataset *d, const struct cnn_train_driver_opts *o,
                            struct cnn_train_driver **out, struct cnn_err *err)
{
    *out = NULL;
    if (!d || !o)
        return cnn_err_set(err, CNN_EINVAL, "train: missing dataset or options");
    if (o->epochs < 1 || o->batch < 1 || o->batch > 65536)
        return cnn_err_set(err, CNN_EINVAL, "train: epochs %d or batch %d out of range", o->epochs,
                           o->batch);
    struct cnn_train_driver *drv = calloc(1, sizeof *drv);
    if (!drv)
        return cnn_err_set(err, CNN_ENOMEM, "train: out of memory");
    drv->o = *o;
    drv->d = d;
    int n = cnn_dataset_count(d);
    drv->train_idx = malloc((size_t)(n > 0 ? n : 1) * sizeof *drv->train_idx);
    drv->val_idx = malloc((size_t)(n > 0 ? n : 1) * sizeof *drv->val_idx);
    drv->results = calloc((size_t)o->epochs, sizeof *drv->results);
    int rc = 0;
    if (!drv->train_idx || !drv->val_idx || !drv->results)
        rc = cnn_err_set(err, CNN_ENOMEM, "train: out of memory");
    if (rc == 0)
        rc = cnn_dataset_split(d, o->val_split, o->train.seed, drv->train_idx, &drv->n_train,
                               drv->val_idx, &drv->n_val, err);
    if (rc == 0 && drv->n_train < 1)
        rc = cnn_err_set(err, CNN_EINVAL, "train: no training items");
    if (rc) {
        cnn_train_driver_destroy(drv);
        return rc;
    }
    drv->spe = cnn_train_loop_steps_per_epoch(drv->n_train, o->batch);
    drv->total_steps = drv->spe * o->epochs;
    if (o->max_steps > 0 && o->max_steps < drv->total_steps)
        drv->total_steps = o->max_steps;
    drv->warmup_steps = (long)llround(o->warmup_epochs * (double)drv->spe);
    *out = drv;
    return 0;
}

void cnn_train_driver_destroy(struct cnn_train_driver *drv)
{
    if (!drv)
        return;
    cnn_trainer_destroy(drv->t);
    free(drv->train_idx);
    free(drv->val_idx);
    free(drv->results);
    free(drv);
}

/* 1 when m's labels are exactly labels[0..n). */
static int same_labels(const struct cnn_model *m, const char *const *labels, int n)
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

/* o->train with the steps planned here. */
static void train_config(const struct cnn_train_driver *drv, struct cnn_train_config *cfg)
{
    const struct cnn_train_driver_opts *o = &drv->o;
    *cfg = o->train;
    if (cfg->step_epochs <= 0)
        cfg->step_epochs = o->epochs >= 3 ? o->epochs / 3 : 1;
    cfg->steps_per_epoch = drv->spe;
    cfg->warmup_steps = drv->warmup_steps;
    cfg->total_steps = drv->total_steps;
    cfg->max_batch = o->batch;
}

int cnn_train_driver_setup(struct cnn_train_driver *drv, const struct cnn_model *base,
                           struct cnn_err *err)
{
    if (!drv || !base || drv->t)
        return cnn_err_set(err, CNN_EINVAL, "train: no driver or base model, or set up twice");
    struct cnn_train_config cfg;
    train_config(drv, &cfg);
    drv->t = cnn_trainer_create(base, &cfg, err);
    if (!drv->t)
        return err && err->code ? err->code : CNN_ENOMEM;
    drv->input = *cnn_model_preproc(base);
    cnn_model_meta_value(base, "arch", drv->arch, sizeof drv->arch);
    cnn_model_meta_value(base, "trained_at", drv->parent_trained_at, sizeof drv->parent_trained_at);
    drv->head = drv->o.parent ? CNN_TRAIN_HEAD_KEPT : CNN_TRAIN_HEAD_RANDOM;
    if (drv->o.labels && !same_labels(base, drv->o.labels, drv->o.n_labels)) {
        struct cnn_err e = {0};
        int rc = cnn_trainer_replace_head(drv->t, drv->o.labels, drv->o.n_labels, &e);
        if (rc) {
            cnn_trainer_destroy(drv->t);
            drv->t = NULL;
            return cnn_err_set(err, rc, "new head: %s", e.msg);
        }
        drv->head = CNN_TRAIN_HEAD_REPLACED;
    }
    return 0;
}

int cnn_train_driver_validate(struct cnn_train_driver *drv, double *acc, double *loss,
                              struct cnn_err *err)
{
    *acc = *loss = NAN;
    if (!drv || !drv->t)
        return cnn_err_set(err, CNN_EINVAL, "train: the driver has no trainer (setup)");
    return cnn_train_loop_validate(drv->t, drv->d, drv->val_idx, drv->n_val, drv->o.batch,
                                   drv->o.train.cancel, acc, loss, err);
}

int cnn_train_driver_run(struct cnn_train_driver *drv, struct cnn_err *err)
{
    if (!drv || !drv->t)
        return cnn_err_set(err, CNN_EINVAL, "train: the driver has no trainer (setup)");
    const struct cnn_train_driver_opts *o = &drv->o;
    struct cnn_loop_config lc = {
        .input = &drv->input,
        .epochs = o->epochs,
        .batch = o->batch,
        .seed = o->train.seed,
        .aug = o->aug,
        .max_steps = o->max_steps,
        .cancel = o->train.cancel,
        .progress = o->progress,
        .progress_arg = o->progress_arg,
    };
    double t0 = now_s();
    int rc = cnn_train_loop_run(drv->t, drv->d, drv->train_idx, drv->n_train, drv->val_idx,
                                drv->n_val, &lc, drv->results, &drv->epochs_done, err);
    drv->seconds = now_s() - t0;
    return rc;
}

static const char *head_name(enum cnn_train_head h)
{
    switch (h) {
    case CNN_TRAIN_HEAD_KEPT:
        return "kept";
    case CNN_TRAIN_HEAD_REPLACED:
        return "replaced";
    case CNN_TRAIN_HEAD_RANDOM:
        return "random";
    }
    return "?";
}

static const char *augment_name(const struct cnn_augment *a)
{
    if (a->crop_pad > 0)
        return a->hflip ? "crop,flip" : "crop";
    return a->hflip ? "flip" : "none";
}

char *cnn_train_driver_lineage(const struct cnn_train_driver *drv)
{
    if (!drv || !drv->t)
        return NULL;
    const struct cnn_train_driver_opts *o = &drv->o;
    size_t cap = LINEAGE_CAP;
    char *buf = malloc(cap);
    if (!buf)
        return NULL;
    int n = 0;
#define PUT(...) (n += snprintf(buf + n, n < (int)cap ? cap - (size_t)n : 0, __VA_ARGS__))
    if (drv->arch[0])
        PUT("arch=%s\n", drv->arch);
    PUT("parent=%s\n", o->parent ? o->parent : "none (random init)");
    if (o->parent && drv->parent_trained_at[0])
        PUT("parent_trained_at=%s\n", drv->parent_trained_at);
    PUT("head=%s\nclasses=%d\n", head_name(drv->head), cnn_trainer_num_classes(drv->t));
    PUT("dataset=%s\n", o->dataset ? o->dataset : cnn_dataset_source(drv->d));
    if (o->dataset_split)
        PUT("dataset_split=%s\n", o->dataset_split);
    if (o->dataset_classes)
        PUT("dataset_classes=%s\n", o->dataset_classes);
    PUT("train_items=%d\nval_items=%d\nval_split=%g\nepochs=%d\naugment=%s\n", drv->n_train,
        drv->n_val, o->val_split, o->epochs, augment_name(&o->aug));
    if (o->aug.crop_pad > 0)
        PUT("crop_pad=%d\n", o->aug.crop_pad);
    char hyper[2048];
    cnn_trainer_describe(drv->t, hyper, sizeof hyper);
    PUT("%s%s", hyper, hyper[0] && hyper[strlen(hyper) - 1] != '\n' ? "\n" : "");
    if (drv->epochs_done > 0) {
        const struct cnn_epoch_result *e = &drv->results[drv->epochs_done - 1];
        PUT("final_train_loss=%.4f\nfinal_train_acc=%.4f\n", e->train_loss, e->train_acc);
        if (!isnan(e->val_acc))
            PUT("final_val_loss=%.4f\nfinal_val_acc=%.4f\n", e->val_loss, e->val_acc);
    }
    PUT("train_seconds=%.1f\n", drv->seconds);
    if (o->extra && o->extra[0])
        PUT("%s%s", o->extra, o->extra[strlen(o->extra) - 1] != '\n' ? "\n" : "");
    time_t now = time(NULL);
    struct tm tm;
    char when[32] = "";
    if (gmtime_r(&now, &tm))
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    PUT("trained_at=%s\ntrained_by=%s\n", when, o->trained_by ? o->trained_by : "");
#undef PUT
    if (n >= (int)cap) { /* cut after the last whole line */
        size_t k = cap - 1;
        while (k > 0 && buf[k - 1] != '\n')
            k--;
        buf[k] = '\0';
    }
    return buf;
}

int cnn_train_driver_export(const struct cnn_train_driver *drv, struct cnn_model **out,
                            struct cnn_err *err)
{
    *out = NULL;
    if (!drv || !drv->t)
        return cnn_err_set(err, CNN_EINVAL, "train: the driver has no trainer (setup)");
    char *meta = cnn_train_driver_lineage(drv);
    if (!meta)
        return cnn_err_set(err, CNN_ENOMEM, "train: out of memory for the lineage");
    int rc = cnn_trainer_export(drv->t, meta, out, err);
    free(meta);
    return rc;
}

int cnn_train_driver_confusion(const struct cnn_train_driver *drv, const struct cnn_model *m,
                               long *confusion, struct cnn_err *err)
{
    if (drv->n_val == 0)
        return 0;
    return cnn_train_loop_confusion(m, drv->d, drv->val_idx, drv->n_val, NULL, drv->o.batch,
                                    drv->o.train.cancel, confusion, err);
}

void cnn_train_driver_info(const struct cnn_train_driver *drv, struct cnn_train_driver_info *out)
{
    *out = (struct cnn_train_driver_info){
        .n_train = drv->n_train,
        .n_val = drv->n_val,
        .steps_per_epoch = drv->spe,
        .total_steps = drv->total_steps,
        .warmup_steps = drv->warmup_steps,
        .classes = drv->t ? cnn_trainer_num_classes(drv->t) : 0,
        .head = drv->head,
        .steps_done = drv->t ? cnn_trainer_step_count(drv->t) : 0,
        .epochs_done = drv->epochs_done,
        .last = drv->epochs_done > 0 ? &drv->results[drv->epochs_done - 1] : NULL,
        .seconds = drv->seconds,
    };
}
