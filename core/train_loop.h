/* Epochs of a trainer over a dataset: per-epoch shuffling and augmentation drawn from the
 * seed, mini-batches, validation after every epoch, a progress callback (epoch, step,
 * loss, accuracy, items/s, ETA), a cancel flag checked between steps; plus evaluating a
 * compiled model over a dataset into a confusion matrix.  Used by `cnn train` / `cnn eval`
 * and the daemon's fine-tune jobs.  Nothing here prints. */
#ifndef CNN_TRAIN_LOOP_H
#define CNN_TRAIN_LOOP_H

#include "dataset.h"
#include "err.h"
#include "model.h"
#include "train.h"

#include <stdatomic.h>
#include <stdint.h>

struct cnn_epoch_result {
    int epoch;          /* 0-based */
    long steps;         /* steps run in this epoch */
    long items;         /* training items seen */
    double train_loss;  /* mean over the epoch's batches, weighted by batch size */
    double train_acc;   /* fraction of items right in training mode, before each update */
    double val_loss;    /* cross-entropy of the evaluation-mode output; NAN without
                           validation items */
    double val_acc;     /* NAN without validation items */
    double seconds;     /* wall time of the epoch, validation included */
    double items_per_s; /* training items per second (validation excluded) */
};

struct cnn_train_progress {
    int epoch, epochs;            /* 0-based epoch, configured epochs */
    long step, steps_per_epoch;   /* steps done in this epoch, of how many */
    long total_step, total_steps; /* steps done overall, of how many */
    long total_items;             /* training items done overall */
    double loss, accuracy;        /* running means over this epoch so far */
    double step_loss, step_accuracy; /* of the last step's batch alone; NAN on epoch calls */
    float lr;                     /* rate of the last step */
    double items_per_s;           /* this epoch so far */
    double elapsed_s, eta_s;      /* since the start; estimate to the end (validation excluded) */
    const struct cnn_epoch_result *epoch_done; /* set on the call after an epoch's
                                                  validation; NULL on step calls */
};

struct cnn_loop_config {
    const struct cnn_preproc *input; /* the trainer's input: cnn_model_preproc() of the model
                                        it was made from; the items must have its c, h, w */
    int epochs;                      /* >= 1 */
    int batch;                       /* items per step, 1..trainer's max_batch */
    uint64_t seed;                   /* epoch e shuffles with a seed derived from (seed, e) */
    struct cnn_augment aug;          /* training batches only */
    long max_steps;                  /* > 0: stop after this many steps overall (benchmarks) */
    const atomic_int *cancel;        /* optional: checked before every step and validation batch */
    /* Called after every step and once after each epoch (epoch_done set); any thread the
     * loop runs on; must not call back into the trainer. */
    void (*progress)(const struct cnn_train_progress *p, void *arg);
    void *progress_arg;
};

/* Steps per epoch for n_train items in batches of `batch`: ceil(n / batch), minus a final
 * batch of a single item (skipped: batch norm needs two).  The trainer's steps_per_epoch
 * and (cosine) total_steps must be set from this before cnn_trainer_create(). */
long cnn_train_loop_steps_per_epoch(int n_train, int batch);

/* Trains t for c->epochs epochs over items train_idx[0..n_train) of d, validating on
 * val_idx[0..n_val) (n_val may be 0) after each epoch.  results[c->epochs] (optional) gets
 * the epochs run; *epochs_done (optional) how many completed.  Errors: CNN_EINVAL for a bad
 * config, labels beyond the trainer's classes or items whose shape is not c->input's;
 * CNN_ECANCELED when *c->cancel became nonzero (between steps; the trainer holds the
 * weights of the last whole step); a step's error (e.g. divergence) as is.  The caller
 * exports and saves only on success, so a cancelled run writes nothing.  With max_steps
 * the run ends early with success; the last epoch's result is then partial. */
int cnn_train_loop_run(struct cnn_trainer *t, const struct cnn_dataset *d, const int *train_idx,
                       int n_train, const int *val_idx, int n_val, const struct cnn_loop_config *c,
                       struct cnn_epoch_result *results, int *epochs_done, struct cnn_err *err);

/* Evaluation-mode accuracy and cross-entropy of t over items idx[0..n) of d, in batches of
 * up to `batch`.  cancel optional.  *acc, *loss get NAN when n == 0. */
int cnn_train_loop_validate(struct cnn_trainer *t, const struct cnn_dataset *d, const int *idx,
                            int n, int batch, const atomic_int *cancel, double *acc, double *loss,
                            struct cnn_err *err);

/* Runs compiled model m (one session with up to `batch` items) over items idx[0..n) of d
 * (idx NULL: all) and adds each item to confusion[class * K + predicted], K =
 * cnn_model_num_classes(m) (caller zeroes it; K * K longs); class = label_map[label]
 * (label_map NULL: the dataset label itself; e.g. folder names matched to model labels).
 * predicted = first maximal output.  CNN_EINVAL when a class reaches past K or d's item
 * shape differs from m's input. */
int cnn_train_loop_confusion(const struct cnn_model *m, const struct cnn_dataset *d, const int *idx,
                             int n, const int *label_map, int batch, const atomic_int *cancel,
                             long *confusion, struct cnn_err *err);

#endif
