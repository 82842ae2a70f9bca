/* Insides of struct cnn_trainer, shared by train.c (life cycle, config, head replacement,
 * accessors), train_graph.c (forward and backward over the unfused graph), train_sgd.c
 * (learning-rate schedule and the update) and train_export.c (model copies). */
#ifndef CNN_TRAIN_INTERNAL_H
#define CNN_TRAIN_INTERNAL_H

#include "model_internal.h"
#include "train.h"

#include "workers.h"

#include <stdint.h>
#include <string.h>

/* Per layer of the trainer's graph; all tensors (C, N, H, W) sized for max_batch. */
struct train_layer {
    float *out;       /* forward output (after the fused activation) */
    float *pre;       /* output before the layer's fused activation, or NULL when none */
    float *dout;      /* gradient of out, or NULL when no gradient flows through it */
    float *save_mean; /* batch norm: batch mean and 1/sqrt(var + eps) of the last forward */
    float *save_inv_std;
    uint8_t *mask;  /* dropout: mask of the last training forward */
    int mask_off;   /* dropout: the last forward ran in evaluation mode (an identity) */
    float *wino_u;  /* conv that suits Winograd: its weights transformed at each forward */
    float *wino_ub; /* ... and those of its input gradient (cnn_conv2d_backward_winograd_shape) */
    int trainable;  /* has learned weights and is not frozen */
    int needs_grad; /* the gradient of its output is needed (params at or before it) */
    int n_out;      /* floats per image of out */
    int dout_ready; /* dout holds this step's gradient so far (else: stale, not zeroed) */
    /* trainable batch norm whose only consumer is a relu (layer i + 1): a training forward
     * writes the relu's out directly (this out stays unwritten) and the backward goes from
     * the relu's dout to this layer's input in the batch norm's passes (this dout unused) */
    int relu_fused;
};

/* Every buffer the trainer owns for its net and batch size, in one value: freed by one
 * call (train_graph_free), forgotten by one assignment ({0}), handed over by one copy
 * (a head replacement builds a new set aside and swaps it in only on success). */
struct train_bufs {
    float *grad;                 /* net->n_params floats, same layout as net->params */
    float *mom;                  /* momentum buffers, same layout */
    struct train_layer *tl;      /* n_tl = net->n_layers */
    int n_tl;
    struct cnn_workers *workers; /* cfg.threads > 1: the team a step's layers split over */
    int parts;                   /* parts per layer: the team's size, or 1 */
    float **scratch;             /* per part: conv forward/backward, LRN backward (part 0) */
    float **dw_part;             /* per part >= 1: its share of a conv's weight gradient */
    float **du_part;             /* per part: a Winograd conv's weight gradient, transformed */
    struct cnn_err *part_err;    /* per part: the error of a forward part */
    float *tmp;                  /* one activation: the pre-activation gradient of a layer */
    float *wflip;                /* the largest conv's weights, rotated for wino_ub */
    float *target;               /* MSE targets in (C, N, H, W) */
    float *bn_scale, *bn_shift;  /* evaluation-mode batch norm, max channels */
    int fused;                   /* the last forward ran the relu_fused pairs fused */
};

struct cnn_trainer {
    struct cnn_train_config cfg;
    struct cnn_model *net;       /* owned, never compiled: graph + params (weights, BN stats) */
    int freeze_idx;              /* layers 1..freeze_idx are frozen; 0 = none */
    int loss_layer;              /* layer whose output the loss reads */
    struct train_bufs buf;       /* owned (train_graph_alloc / train_graph_free) */
    uint64_t rng;                /* dropout generator state */
    long steps;
};

/* ---- train_export.c ---- */
/* New uncompiled model with src's preprocessing, layers (descriptor of layer `head` gets
 * `head_out` outputs when head > 0), labels (unless head > 0) and meta, params allocated
 * and copied slot by slot from src where the slot sizes agree (others left zero). */
int train_copy_model(const struct cnn_model *src, int head, int head_out, struct cnn_model **out,
                     struct cnn_err *err);

/* ---- train_graph.c, train_backward.c ---- */
/* The activation a layer applies after itself (its row's fused_act), or NULL. */
const struct cnn_act_params *train_layer_act(const struct cnn_layer *l);
/* Allocates t->buf (per-layer buffers, gradients, scratch) for t->net; 0 or CNN_ENOMEM
 * (then t->buf is empty).  t->buf must be empty before. */
int train_graph_alloc(struct cnn_trainer *t, struct cnn_err *err);
/* Frees every buffer of *b and empties it. */
void train_graph_free(struct train_bufs *b);
/* Layer i is the relu of a relu_fused batch norm and the last forward ran it fused. */
static inline int train_relu_fused_away(const struct cnn_trainer *t, int i)
{
    return i > 1 && t->buf.fused && t->buf.tl[i - 1].relu_fused;
}
/* Forward over n images (NCHW) up to layer `last`.  training: batch statistics, dropout;
 * update_stats: also move the running statistics. */
int train_forward(struct cnn_trainer *t, const float *images, int n, int last, int training,
                  int update_stats, struct cnn_err *err);
/* Zeroes t->buf.grad and marks every dout stale for batch n (each is zeroed by its first
 * writer in the backward); the loss then writes the loss layer's dout outright. */
void train_zero_grads(struct cnn_trainer *t, int n);
/* Back-propagates from t->buf.tl[t->loss_layer].dout down to the first layer that needs it,
 * accumulating into every dout and into t->buf.grad of trainable layers. */
void train_backward(struct cnn_trainer *t, int n);

/* One layer's forward for a worker team: layer i over n items (train_graph.c runs the
 * parts through the kind's row, layer_kind.h). */
struct train_fwd_job {
    struct cnn_trainer *t;
    int i, n, training, update_stats;
};

/* One layer's backward for a worker team (train_backward.c). */
struct train_bwd_job {
    struct cnn_trainer *t;
    int i, n;
    const float *dout; /* gradient of the layer's output before its fused activation */
    /* fresh[k]: input k's gradient holds nothing yet this step, so each part zeroes its own
     * region of it right before adding into it (or writes it outright), in cache, instead
     * of a memset of every gradient buffer at the start of the step */
    int fresh[CNN_MAX_INPUTS];
};

/* What most kinds' forward and backward parts start from. */
struct train_view {
    const struct cnn_layer *l, *il; /* the layer and its input 0 */
    struct train_layer *tl;
    const float *in;          /* input 0's output */
    float *dst;               /* forward: where the layer writes (pre when it has a fused act) */
    float *dinp;              /* backward: input 0's gradient, or NULL when none flows */
    float *P;                 /* the net's params */
    size_t hw, n_hw, count;   /* of input 0: H*W, N*H*W, C*N*H*W */
};

static inline struct train_view train_view(struct cnn_trainer *t, int i, int n)
{
    struct train_view v;
    v.l = &t->net->layers[i];
    v.il = &t->net->layers[v.l->inputs[0]];
    v.tl = &t->buf.tl[i];
    v.in = t->buf.tl[v.l->inputs[0]].out;
    v.dst = v.tl->pre ? v.tl->pre : v.tl->out;
    v.dinp = t->buf.tl[v.l->inputs[0]].dout;
    v.P = t->net->params;
    v.hw = (size_t)v.il->h * (size_t)v.il->w;
    v.n_hw = v.hw * (size_t)n;
    v.count = (size_t)v.il->c * v.n_hw;
    return v;
}

/* Gradient buffer of input k of layer l, or NULL when nothing upstream needs it. */
static inline float *train_din(struct cnn_trainer *t, const struct cnn_layer *l, int k)
{
    return t->buf.tl[l->inputs[k]].dout;
}

/* d[off, off + len) = 0 when input k's gradient is fresh (see train_bwd_job). */
static inline void train_zero_fresh(const struct train_bwd_job *job, int k, float *d, size_t off,
                                    size_t len)
{
    if (job->fresh[k] && d && len)
        memset(d + off, 0, len * sizeof(float));
}

/* dst = act(src) for n floats (relu vectorised). */
void train_act_copy(float *restrict dst, const float *restrict src, size_t n,
                    const struct cnn_act_params *act);
/* A frozen or evaluation-mode layer's activation: none. */
extern const struct cnn_act_params train_no_act;

/* A pool layer's part `part` of `parts` over channels, as the forward and the backward
 * split it: its params for channels [*lo, *lo + returned .c). */
static inline struct cnn_pool2d train_pool_part(const struct cnn_pool2d *p, int part, int parts,
                                                size_t *lo)
{
    size_t hi;
    struct cnn_pool2d q = *p;
    cnn_part_range((size_t)p->c, part, parts, lo, &hi);
    q.c = (int)(hi - *lo);
    return q;
}

/* ---- train_sgd.c ---- */
/* Learning rate of step `step` (0-based) under cfg's schedule and warm-up. */
float train_lr_at(const struct cnn_train_config *cfg, long step);
/* One SGD update of every trainable weight slot from t->buf.grad with rate lr. */
void train_sgd_update(struct cnn_trainer *t, float lr);

#endif
