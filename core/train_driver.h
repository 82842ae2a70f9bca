/* The training driver shared by `cnn train` and cnnd's fine-tune jobs: the train/validation
 * split, a trainer from a base model (label matching: the same labels keep the head, other
 * labels get a new classifier head), the epoch loop with progress and cancel, and the
 * lineage metadata written with one set of keys into the exported model.  Opening the
 * dataset, printing, logging and saving or publishing stay with the callers.  Nothing here
 * prints. */
#ifndef CNN_TRAIN_DRIVER_H
#define CNN_TRAIN_DRIVER_H

#include "dataset.h"
#include "err.h"
#include "model.h"
#include "train.h"
#include "train_loop.h"

/* What the run does with the base model's classifier head (lineage key `head`). */
enum cnn_train_head {
    CNN_TRAIN_HEAD_KEPT = 0,     /* no label set given, or the base's own labels */
    CNN_TRAIN_HEAD_REPLACED = 1, /* a new head for another label set */
    CNN_TRAIN_HEAD_RANDOM = 2,   /* a fresh model (parent NULL): every weight from the seed */
};

struct cnn_train_driver_opts {
    /* the trainer's configuration: lr, momentum, nesterov, weight_decay, schedule,
     * step_epochs (0 here: epochs / 3, at least 1), step_gamma, freeze_upto (borrowed until
     * setup returns), seed (also the split, shuffles and augmentation), threads, cancel
     * (borrowed for the driver's life; also checked before every validation batch).  The
     * driver sets steps_per_epoch, warmup_steps, total_steps and max_batch itself. */
    struct cnn_train_config train;
    /* label set: NULL keeps the base's head; else n_labels names (borrowed until
     * cnn_train_driver_setup() returns) -- the base's own labels keep the head, others
     * replace it with n_labels outputs */
    const char *const *labels;
    int n_labels;
    double val_split;       /* stratified fraction held out, [0, 1) */
    int epochs, batch;      /* >= 1; 1..65536 */
    double warmup_epochs;   /* linear warm-up, may be fractional; rounded to steps */
    long max_steps;         /* > 0: stop after this many steps overall (benchmarks) */
    struct cnn_augment aug; /* training batches only */
    /* optional; called on the thread of cnn_train_driver_run() (see cnn_loop_config) */
    void (*progress)(const struct cnn_train_progress *p, void *arg);
    void *progress_arg;
    /* lineage; strings borrowed for the driver's life */
    const char *parent;          /* "FILE" or "NAME/VERSION"; NULL: a fresh model */
    const char *dataset;         /* NULL: cnn_dataset_source() */
    const char *dataset_split;   /* IDX split, or NULL */
    const char *dataset_classes; /* the dataset classes kept, e.g. "3,0", or NULL */
    const char *extra;           /* the caller's own "key=value\n" lines, or NULL */
    const char *trained_by;      /* e.g. "cnn train 0.1.0" */
};

/* Defaults: train = cnn_train_config_default() but step_epochs 0 (auto) and seed 1; no
 * labels, val_split 0.1, 10 epochs, batch 64, no warm-up, no step limit, no augmentation,
 * no progress, parent NULL, trained_by "". */
void cnn_train_driver_opts_default(struct cnn_train_driver_opts *o);

struct cnn_train_driver_info {
    int n_train, n_val;                  /* items after the split */
    long steps_per_epoch;                /* cnn_train_loop_steps_per_epoch(n_train, batch) */
    long total_steps;                    /* steps_per_epoch * epochs, capped by max_steps */
    long warmup_steps;                   /* warmup_epochs * steps_per_epoch, rounded */
    int classes;                         /* the trainer's classes; 0 before setup */
    enum cnn_train_head head;            /* valid after setup */
    long steps_done;                     /* steps trained so far */
    int epochs_done;                     /* whole epochs (with validation) run */
    const struct cnn_epoch_result *last; /* the last whole epoch, NULL when none; owned
                                            by the driver */
    double seconds;                      /* wall time of cnn_train_driver_run() */
};

struct cnn_train_driver;

/* Splits d (borrowed: must outlive the driver) into training and validation items and
 * plans the steps; no trainer yet (cnn_train_driver_setup()), so the caller may check the
 * plan first (cnn_train_driver_info()).  o is copied.  *out owned by the caller:
 * cnn_train_driver_destroy().  CNN_EINVAL for a bad split or no training item (the
 * dataset's message), CNN_ENOMEM.  Any thread; one thread per driver afterwards. */
int cnn_train_driver_create(const struct cnn_dataset *d, const struct cnn_train_driver_opts *o,
                            struct cnn_train_driver **out, struct cnn_err *err);
void cnn_train_driver_destroy(struct cnn_train_driver *drv);

/* Makes the trainer from base (compiled; only read, and only during this call: the
 * trainer, the preprocessing and the base's `arch` / `trained_at` metadata are copied), then
 * replaces the head when o->labels differ from base's labels.  CNN_ENOENT for an unknown
 * freeze_upto layer, CNN_EINVAL for a bad configuration or a head that cannot be replaced
 * (message "new head: ..."), CNN_ENOMEM; calling it twice is CNN_EINVAL. */
int cnn_train_driver_setup(struct cnn_train_driver *drv, const struct cnn_model *base,
                           struct cnn_err *err);

/* Evaluation-mode accuracy and cross-entropy of the trainer's weights now on the
 * validation items (cnn_train_loop_validate(), batches of o->batch, o->train.cancel
 * checked): called after setup and before run it scores the base model on exactly the
 * items every epoch is validated on, which is what a "no worse than the parent" gate
 * compares with.  *acc, *loss NAN without validation items.  CNN_EINVAL before setup,
 * CNN_ECANCELED, CNN_ENOMEM. */
int cnn_train_driver_validate(struct cnn_train_driver *drv, double *acc, double *loss,
                              struct cnn_err *err);

/* Runs the epochs (cnn_train_loop_run()) and times them.  0; CNN_ECANCELED when the cancel
 * flag was set (between steps: nothing to export); a step's error (e.g. divergence). */
int cnn_train_driver_run(struct cnn_train_driver *drv, struct cnn_err *err);

/* The trained model with the lineage metadata (cnn_train_driver_lineage()): *out owned by
 * the caller.  Fails as cnn_trainer_export(); CNN_EINVAL before setup. */
int cnn_train_driver_export(const struct cnn_train_driver *drv, struct cnn_model **out,
                            struct cnn_err *err);

/* The lineage as "key=value" lines, in this order (optional keys in brackets):
 *   [arch] parent [parent_trained_at] head classes dataset [dataset_split]
 *   [dataset_classes] train_items val_items val_split epochs augment [crop_pad]
 *   <cnn_trainer_describe(): lr momentum nesterov weight_decay schedule step_epochs
 *   step_gamma warmup_steps total_steps loss seed batch bn_momentum frozen_upto steps>
 *   [final_train_loss final_train_acc] [final_val_loss final_val_acc] train_seconds
 *   <o->extra> trained_at trained_by
 * head is kept, replaced or random; parent is "none (random init)" for a fresh model.
 * Owned by the caller (free); NULL when out of memory or before setup.  Cut after the
 * last whole line at 8 KiB. */
char *cnn_train_driver_lineage(const struct cnn_train_driver *drv);

/* Adds m's answers over the validation items to confusion[label * K + predicted] (K =
 * cnn_model_num_classes(m); the caller zeroes K * K longs), as cnn_train_loop_confusion():
 * for the picture of a finished run (m is the export).  0 with no validation items;
 * CNN_EINVAL when a label reaches past K. */
int cnn_train_driver_confusion(const struct cnn_train_driver *drv, const struct cnn_model *m,
                               long *confusion, struct cnn_err *err);

void cnn_train_driver_info(const struct cnn_train_driver *drv, struct cnn_train_driver_info *out);

#endif
