/* The trainer: a mutable copy of a model's graph and ORIGINAL (unfolded) weights, with
 * gradient and momentum blocks of the same layout, that runs the unfused layer graph
 * forward and backward over mini-batches and updates the weights by SGD.
 *
 * Life cycle.  cnn_trainer_create() copies a loaded (or built and compiled) model; the
 * model is only read, so it may keep serving meanwhile.  Optionally cnn_trainer_replace_head()
 * for a new label set.  Then cnn_trainer_step() per mini-batch (the epoch loop, progress
 * and datasets live in train_loop.c), cnn_trainer_evaluate() for validation and
 * cnn_trainer_export() for a new compiled immutable model, which cnn_model_save() writes.
 *
 * Semantics (matching PyTorch where it has a counterpart, checked against it in
 * tests/unit/check_train.c):
 * - Training mode: batch norm normalises with batch statistics and updates its running
 *   mean / variance (momentum bn_momentum, unbiased variance); dropout drops with a
 *   generator seeded from seed.  Evaluation mode: running statistics, no dropout.
 * - Loss CNN_LOSS_XENT: softmax cross-entropy, mean over the batch.  When the model ends in
 *   a softmax layer the loss is computed from that layer's input (the logits) and the
 *   softmax layer itself is skipped in training.  CNN_LOSS_MSE: mean over all elements of
 *   (output - target)^2 where output is the model's last layer (through its softmax, if
 *   it ends in one).
 * - SGD as torch.optim.SGD (dampening 0): g = grad + wd * w; buf = momentum * buf + g;
 *   g = nesterov ? g + momentum * buf : buf; w -= lr * g.  Weight decay applies ONLY to
 *   conv and dense weights (slot 0), never to biases or batch-norm gamma / beta.
 * - Frozen layers (freeze_upto): every layer with index <= that layer's index.  Their
 *   weights never change; a frozen batch norm runs in evaluation mode (running statistics,
 *   not updated) also while training; backward stops where no trainable layer remains.
 * - Reproducible: the same model, config (seed included), and batches in the same order give
 *   bit-identical weights for the same cfg.threads (with one BLAS thread; OpenBLAS may
 *   split sums differently across its threads).
 *
 * Threads: a trainer is used by one thread at a time (with cfg.threads > 1 it runs its
 * own helper threads inside each call); several trainers may run at once from the same
 * const model.  Nothing here prints. */
#ifndef CNN_TRAIN_H
#define CNN_TRAIN_H

#include "err.h"
#include "model.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

enum cnn_loss { CNN_LOSS_XENT = 0, CNN_LOSS_MSE = 1 };

enum cnn_lr_schedule {
    CNN_LR_CONSTANT = 0,
    CNN_LR_STEP = 1,   /* lr * step_gamma ^ floor(epoch / step_epochs) */
    CNN_LR_COSINE = 2, /* lr * (1 + cos(pi * s / S)) / 2 over the steps after warm-up */
};

struct cnn_train_config {
    float lr;           /* base learning rate, > 0 */
    float momentum;     /* [0, 1) */
    int nesterov;       /* 1: Nesterov momentum (needs momentum > 0) */
    float weight_decay; /* >= 0; conv and dense weights only */
    enum cnn_lr_schedule schedule;
    int step_epochs;         /* CNN_LR_STEP: epochs between decays, >= 1 */
    float step_gamma;        /* CNN_LR_STEP: factor per decay, (0, 1] */
    long steps_per_epoch;    /* >= 1; maps steps to epochs for CNN_LR_STEP and
                                cnn_trainer_epoch() */
    long warmup_steps;       /* >= 0: step s < warmup_steps uses lr * (s + 1) / warmup_steps */
    long total_steps;        /* CNN_LR_COSINE: all steps including warm-up, > warmup_steps */
    const char *freeze_upto; /* layer name: freeze it and every layer before it; NULL: none */
    enum cnn_loss loss;
    uint64_t seed;            /* dropout masks, new head weights */
    int max_batch;            /* largest n passed to step / evaluate, 1..65536 */
    float bn_momentum;        /* batch-norm running statistics update, [0, 1]; PyTorch: 0.1 */
    const atomic_int *cancel; /* optional: step returns CNN_ECANCELED when *cancel != 0 */
    int input_grad;           /* diagnostic: 1 = also compute the gradient of the input */
    int im2col_only; /* diagnostic: 1 = no Winograd for 3x3 convs (the tests' reference path) */
    int unfused; /* diagnostic: 1 = a batch norm and the relu after it run as two layers */
    int threads; /* 0 or 1: the caller only; 2..256: a step splits every layer over this many
                    threads (give BLAS 1 thread then, see cnn_gemm_set_threads()) */
};

/* Defaults: lr 0.01, momentum 0.9, no Nesterov, weight decay 0, constant schedule
 * (step_epochs 1, step_gamma 0.1), steps_per_epoch 1, no warm-up, total_steps 0, nothing
 * frozen, cross-entropy, seed 0, max_batch 32, bn_momentum 0.1, no cancel flag. */
void cnn_train_config_default(struct cnn_train_config *cfg);

struct cnn_train_stats {
    float loss;  /* mean loss of the batch (before the update) */
    int correct; /* items whose top-1 output is the label (0 when no labels) */
    int n;       /* items in the batch */
    float lr;    /* rate this step used */
    long step;   /* steps done after this one */
};

struct cnn_trainer;

/* Copies m's graph, weights, labels, metadata and preprocessing; m is never written and
 * may be destroyed afterwards.  cfg is copied (freeze_upto is resolved now; cancel is kept
 * as a borrowed pointer that must outlive the trainer).  Owned by the caller:
 * cnn_trainer_destroy().  NULL with err set on a bad config (CNN_EINVAL), an unknown
 * freeze_upto layer (CNN_ENOENT) or out of memory. */
struct cnn_trainer *cnn_trainer_create(const struct cnn_model *m,
                                       const struct cnn_train_config *cfg, struct cnn_err *err);
void cnn_trainer_destroy(struct cnn_trainer *t);

/* Gives the last dense layer n outputs with fresh Xavier-uniform weights drawn from the
 * seed (bias 0) and sets labels (n strings, copied; NULL = unlabelled).  Layers after it
 * must carry no weights (a softmax, activation or dropout may follow).  Other weights and
 * their momentum are kept; the head's momentum starts at 0.  CNN_EINVAL when the model has
 * no dense layer, n is out of range or a label is bad; on error the trainer is unchanged. */
int cnn_trainer_replace_head(struct cnn_trainer *t, const char *const *labels, int n,
                             struct cnn_err *err);

/* One SGD step on a mini-batch: forward in training mode, loss, backward, update.
 * images: (n, C, H, W) NCHW as for cnn_session_forward().  labels[n] in [0, classes):
 * required for CNN_LOSS_XENT, optional for CNN_LOSS_MSE (then only used for `correct`).
 * targets: CNN_LOSS_MSE only, (n, C, H, W) of the last layer's output (n x classes for a
 * classifier); NULL otherwise.  out (optional) gets the batch statistics.
 * Errors, all before anything changes: CNN_EINVAL for n outside 1..max_batch, a label out
 * of range, a non-finite input or target, a training batch norm that would see fewer than
 * 2 values per channel (n * H * W < 2); CNN_ECANCELED when the cancel flag is set.
 * CNN_EINVAL also when the loss is not finite (diverged): then running statistics may have
 * moved but weights have not. */
int cnn_trainer_step(struct cnn_trainer *t, const float *images, const int *labels,
                     const float *targets, int n, struct cnn_train_stats *out, struct cnn_err *err);

/* Forward in evaluation mode (running statistics, no dropout); changes nothing.
 * probs (optional): (n, classes) the last layer's output, as cnn_session_forward() gives.
 * correct (optional, needs labels): items whose first maximal output is the label.
 * CNN_EINVAL for n outside 1..max_batch or a label out of range. */
int cnn_trainer_evaluate(struct cnn_trainer *t, const float *images, const int *labels, int n,
                         float *probs, int *correct, struct cnn_err *err);

/* Learning rate the next step will use. */
float cnn_trainer_lr(const struct cnn_trainer *t);
/* Steps done so far, and the epoch of the next step (steps / steps_per_epoch). */
long cnn_trainer_step_count(const struct cnn_trainer *t);
long cnn_trainer_epoch(const struct cnn_trainer *t);
/* Classes of the trainer's model (after any head replacement). */
int cnn_trainer_num_classes(const struct cnn_trainer *t);

/* Writes the hyperparameters as "key=value" lines into buf (always NUL-terminated when
 * size > 0), for the lineage metadata.  Returns the length it needed, as snprintf. */
int cnn_trainer_describe(const struct cnn_trainer *t, char *buf, size_t size);

/* New compiled immutable model with the trained weights, running statistics, labels and
 * preprocessing; metadata = meta_lineage (NULL keeps the source model's).  *out is owned by
 * the caller; write it with cnn_model_save() (atomic).  The trainer is unchanged and may
 * keep training.  Fails with the compile error (e.g. CNN_EFORMAT for non-finite weights
 * after divergence) or CNN_ENOMEM. */
int cnn_trainer_export(const struct cnn_trainer *t, const char *meta_lineage,
                       struct cnn_model **out, struct cnn_err *err);

/* ---- diagnostics (tests, gradient checks) -------------------------------- */

/* Forward in training mode, loss and backward WITHOUT an update: gradients as
 * cnn_trainer_step() computes them, no step counted, running statistics not updated
 * (dropout still draws masks).  Same arguments and errors as cnn_trainer_step(). */
int cnn_trainer_compute_gradients(struct cnn_trainer *t, const float *images, const int *labels,
                                  const float *targets, int n, struct cnn_train_stats *out,
                                  struct cnn_err *err);
/* Weight slot `slot` of `layer` (slots as in enum cnn_layer_kind) in the trainer's own
 * parameter block, writable (a test may perturb it); NULL when absent. */
float *cnn_trainer_weights(struct cnn_trainer *t, int layer, int slot, size_t *count);
/* Gradient of the last step / compute_gradients for that slot (zeros for frozen layers
 * and for BN running statistics); NULL when absent. */
const float *cnn_trainer_grad(const struct cnn_trainer *t, int layer, int slot, size_t *count);
/* Gradient of the loss w.r.t. the input of the last step, (C, N, H, W) channel-major
 * (= NCHW when N = 1); NULL unless cfg.input_grad was set. */
const float *cnn_trainer_input_grad(const struct cnn_trainer *t);

#endif
