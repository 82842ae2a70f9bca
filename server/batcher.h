/* Per-model-version dynamic batcher and its inference workers.
 *
 * DESIGN: HTTP threads preprocess images into float tensors and submit them as items;
 * `instances` worker threads (each with its own cnn_session sized for max_batch_size)
 * wait for the first item, gather more until max_batch_size items or max_queue_delay_us
 * have passed, drop items whose deadline passed (completed with CNN_EBUSY, never
 * computed), run one batched forward pass and complete every item.  One mutex guards the
 * queue and the core tokens; no lock is held while computing or calling completion callbacks.
 * A batch that finds the queue short may run split over a worker team on every core
 * (batcher_config.split).
 * Threads: batcher_submit from any thread; completions run on worker threads. */
#ifndef BATCHER_H
#define BATCHER_H

#include "err.h"
#include "model.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct batcher_config {
    int max_batch_size;      /* items per forward pass, >= 1 */
    int max_queue_delay_us;  /* how long a worker waits to fill a batch after the first item */
    int max_queue_size;      /* queued items; beyond it submit fails with CNN_EBUSY at once */
    int instances;           /* worker threads, each with its own session */
    int blas_threads;        /* BLAS threads per forward pass (instances x this <= cores) */
    /* 1: a batch that finds the queue short (nothing else queued or on its way, no other
     * batch running) runs on a team of `instances` threads, its layers split over them
     * (cnn_session_forward_team); else on its worker alone, as always.  Only with
     * blas_threads 1 and instances > 1.  The batcher's `instances` cores are tokens: a
     * batch holds 1 or all of them, so instances x threads never exceeds them. */
    int split;
    /* A batch of fewer FLOPs (the model's per image x images) runs on one core even when
     * split is on: on a tiny net waking the team costs more than the split saves. */
    double split_min_flops;
    /* Optional (metrics): a batch took `cores` cores (1 alone, instances when split) or,
     * with cores < 0, gave them back.  On the worker, no lock held. */
    void (*on_cores)(void *arg, int cores, int split);
    /* Optional, called on the worker after each forward pass (metrics): batch size, the
     * compute time, and how many items of the gathered batch had expired.  Called before
     * the batch's done() callbacks; batch_size is 0 (no forward pass) when every gathered
     * item had expired or the forward pass failed. */
    void (*on_batch)(void *arg, int batch_size, int64_t compute_ns, int expired);
    void *on_batch_arg;
    /* Optional, shared by every batcher: inference requests the HTTP side is receiving or
     * decoding and has not submitted yet.  When set, a worker holding fewer than
     * max_batch_size items waits for more only while this is > 0: under load batches fill
     * up to the delay as usual, while a lone request at low load runs at once instead of
     * waiting max_queue_delay_us for company that is not coming.  It then also waits no
     * longer than the batch in hand takes to compute (measured per item over the last
     * batches; the first batch waits up to the delay): for a model that computes an image
     * in microseconds, running now and taking the newcomers next is sooner for everyone. */
    const atomic_int *incoming;
};

struct batcher_item;
/* Called once per item on a worker thread: status 0 (item->output filled), CNN_EBUSY
 * (deadline passed while queued: not computed) or CNN_ECANCELED (its gone() said the
 * client left, or the batcher shut down before it ran: not computed).  The callee owns the item again from this moment. */
typedef void (*batcher_done_fn)(struct batcher_item *item, int status);

struct batcher_item {
    const float *input;      /* (C, H, W) preprocessed; borrowed until done */
    float *output;           /* num_classes floats, written before done(item, 0) */
    int64_t deadline_ns;     /* CLOCK_MONOTONIC; 0 = none */
    int64_t enqueued_ns;     /* set by submit */
    int64_t started_ns;      /* set by the worker when its batch starts */
    int batch_size;          /* size of the batch it ran in, set by the worker */
    batcher_done_fn done;
    void *ctx;               /* caller's, untouched */
    /* Optional: 1 when nobody waits for the result any more (the client disconnected).
     * Asked on the worker, without the lock, just before the batch is computed; such an
     * item is completed with CNN_ECANCELED and not computed. */
    int (*gone)(const struct batcher_item *item);
    struct batcher_item *next; /* queue link, owned by the batcher while queued */
};

struct batcher;

/* Starts the workers for model m (borrowed: must outlive batcher_destroy). */
struct batcher *batcher_create(const struct cnn_model *m, const struct batcher_config *cfg,
                               struct cnn_err *err);
/* Queues n items atomically (all or none).  CNN_EBUSY when they do not fit in the queue or
 * the batcher is closing; done() is then never called for them. */
int batcher_submit(struct batcher *b, struct batcher_item *const *items, int n,
                   struct cnn_err *err);
/* Stops accepting, lets the workers finish everything queued (each item gets done()),
 * joins them and frees everything.  Must not be called from a worker thread. */
void batcher_destroy(struct batcher *b);
/* Items currently queued (not yet taken by a worker). */
int batcher_queue_depth(struct batcher *b);

#endif
