/* Dynamic batcher: a bounded FIFO of items and `instances` worker threads, each running
 * batched forward passes of one model through its own session.
 *
 * DESIGN: submitters (HTTP threads) append to the queue under b->mu and wake a worker.
 * A worker waits for the first item, then until max_batch_size items are queued or
 * max_queue_delay_us have passed since that item was enqueued (with cfg.incoming: while
 * more are on their way, and no longer than the batch in hand takes to compute, see
 * gather_ns) or the batcher closes, takes up to max_batch_size live items -- expired ones
 * are taken too and completed with CNN_EBUSY, uncomputed -- and releases the lock.
 * Packing, the forward pass, copying the outputs, on_batch and every done() run with no
 * lock held.  b->mu guards head, tail, depth, closing and item_ns; everything else is
 * immutable after batcher_create or owned by one worker.  batcher_destroy closes the
 * queue; workers drain it (computing every item) and exit, then destroy joins them.
 * Cores (cfg.split): b->mu also guards cores_used.  A worker takes a batch only while a
 * core is free and holds one for it -- or all `instances` of them when nothing else runs,
 * nothing is left queued and nothing is on its way: it then runs the batch on b->team,
 * which only the holder of every core may drive (one caller at a time), and lends itself
 * the other workers' im2col scratch for the other parts (cnn_session_forward_lent): a
 * worker touches its session only while it holds a core, so they are all idle meanwhile,
 * and every session needs scratch for one thread, as with split off. */
#include "batcher.h"

#include "gemm.h"
#include "log.h"
#include "session.h"
#include "workers.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BATCHER_MAX_BATCH 4096
#define BATCHER_MAX_INSTANCES 256

struct worker {
    struct batcher *b;
    struct cnn_session *session; /* owned */
    pthread_t thread;
    int id;
};

struct batcher {
    const struct cnn_model *model; /* borrowed */
    struct batcher_config cfg;
    size_t in_floats, out_floats; /* per item: C*H*W in, num_classes out */
    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC; items arrived, batch full, or closing */
    struct batcher_item *head, *tail;
    int depth;
    int closing;
    int n_workers; /* threads started */
    struct worker *workers;
    struct cnn_workers *team; /* instances threads when split, else NULL */
    int cores_used;           /* of cfg.instances, held by running batches */
    double flops_per_item;    /* the model's, for cfg.split_min_flops */
    int64_t item_ns;          /* compute time per item, averaged over batches; 0 = none yet */
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static struct timespec to_timespec(int64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000), .tv_nsec = (long)(ns % 1000000000)};
    return ts;
}

static int check_config(const struct batcher_config *c, struct cnn_err *err)
{
    if (c->max_batch_size < 1 || c->max_batch_size > BATCHER_MAX_BATCH)
        return cnn_err_set(err, CNN_EINVAL, "batcher: max_batch_size %d outside 1..%d",
                           c->max_batch_size, BATCHER_MAX_BATCH);
    if (c->max_queue_delay_us < 0)
        return cnn_err_set(err, CNN_EINVAL, "batcher: max_queue_delay_us %d < 0",
                           c->max_queue_delay_us);
    if (c->max_queue_size < 1)
        return cnn_err_set(err, CNN_EINVAL, "batcher: max_queue_size %d < 1", c->max_queue_size);
    if (c->instances < 1 || c->instances > BATCHER_MAX_INSTANCES)
        return cnn_err_set(err, CNN_EINVAL, "batcher: instances %d outside 1..%d", c->instances,
                           BATCHER_MAX_INSTANCES);
    return 0;
}

/* How long past the oldest item's arrival a worker may wait for company.  Without
 * cfg.incoming: max_queue_delay_us.  With it (the server), no longer than the batch in hand
 * takes to compute either: waiting longer costs its items more than running now and taking
 * the newcomers in the next batch saves them -- a LeNet-size model (~10 us per image) would
 * otherwise spend the delay waiting for requests that a free worker could already serve.
 * Caller holds b->mu. */
static int64_t gather_ns(const struct batcher *b, int64_t delay_ns)
{
    if (!b->cfg.incoming || b->item_ns == 0)
        return delay_ns;
    const int64_t work = b->item_ns * b->depth;
    return work < delay_ns ? work : delay_ns;
}

/* Folds one batch's compute time into b->item_ns (a moving average over about 8 batches).
 * Caller holds b->mu. */
static void note_compute(struct batcher *b, int64_t compute_ns, int n)
{
    const int64_t per_item = compute_ns / n > 0 ? compute_ns / n : 1;
    b->item_ns = b->item_ns ? b->item_ns + (per_item - b->item_ns) / 8 : per_item;
}

/* Pops up to max_batch_size items whose deadline has not passed into *live and every
 * expired item met on the way into *expired (both NULL-terminated lists in queue order).
 * Caller holds b->mu. */
static void take_batch(struct batcher *b, int64_t now, struct batcher_item **live, int *n_live,
                       struct batcher_item **expired, int *n_expired)
{
    struct batcher_item **lt = live, **et = expired;
    *n_live = *n_expired = 0;
    while (b->head && *n_live < b->cfg.max_batch_size) {
        struct batcher_item *it = b->head;
        b->head = it->next;
        b->depth--;
        it->next = NULL;
        if (it->deadline_ns != 0 && it->deadline_ns <= now) {
            *et = it;
            et = &it->next;
            (*n_expired)++;
        } else {
            *lt = it;
            lt = &it->next;
            (*n_live)++;
        }
    }
    if (!b->head)
        b->tail = NULL;
    *lt = NULL;
    *et = NULL;
}

/* Packs the live items into the session input, runs one forward pass, copies each row out.
 * No lock held.  Returns 0 or the forward pass's error code; *compute_ns gets its time. */
static int run_batch(struct worker *w, struct batcher_item *live, int n, int split,
                     int64_t *compute_ns)
{
    struct batcher *b = w->b;
    float *in = cnn_session_input(w->session);
    int i = 0;
    for (struct batcher_item *it = live; it; it = it->next, i++)
        memcpy(in + (size_t)i * b->in_floats, it->input, b->in_floats * sizeof(float));
    const float *probs = NULL;
    struct cnn_err err = {0};
    struct cnn_session *lenders[BATCHER_MAX_INSTANCES]; /* the other workers, idle */
    for (int k = 1; split && k < b->cfg.instances; k++)
        lenders[k - 1] = b->workers[(w->id + k) % b->cfg.instances].session;
    int64_t t0 = now_ns();
    int rc = cnn_session_forward_lent(w->session, b->model, split ? b->team : NULL, lenders, in, n,
                                      &probs, &err);
    *compute_ns = now_ns() - t0;
    if (rc) {
        log_error("batch forward failed worker=%d batch=%d error=\"%s\"", w->id, n, err.msg);
        return rc;
    }
    i = 0;
    for (struct batcher_item *it = live; it; it = it->next, i++)
        memcpy(it->output, probs + (size_t)i * b->out_floats, b->out_floats * sizeof(float));
    return 0;
}

/* Moves the items whose gone() says nobody waits any more out of *live (keeping the order
 * of the rest) and returns them as a list; batch_size of the rest is updated.  No lock. */
static struct batcher_item *drop_gone(struct batcher_item **live, int *n_live)
{
    struct batcher_item *gone = NULL, **gt = &gone, **lt = live;
    for (struct batcher_item *it = *live, *next; it; it = next) {
        next = it->next;
        if (it->gone && it->gone(it)) {
            *gt = it;
            gt = &it->next;
            (*n_live)--;
        } else {
            *lt = it;
            lt = &it->next;
        }
    }
    *gt = NULL;
    *lt = NULL;
    for (struct batcher_item *it = *live; it; it = it->next)
        it->batch_size = *n_live;
    for (struct batcher_item *it = gone; it; it = it->next)
        it->batch_size = 0;
    return gone;
}

/* Calls done(status) for every item of a list; reads ->next before each call because the
 * callee owns the item from then on. */
static void complete_list(struct batcher_item *it, int status)
{
    while (it) {
        struct batcher_item *next = it->next;
        it->next = NULL;
        it->done(it, status);
        it = next;
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct batcher *b = w->b;
    const int64_t delay_ns = (int64_t)b->cfg.max_queue_delay_us * 1000;
    pthread_mutex_lock(&b->mu);
    for (;;) {
        while (!b->head && !b->closing)
            pthread_cond_wait(&b->cv, &b->mu);
        if (!b->head)
            break; /* closing and drained */
        /* Gather: the oldest queued item sets the deadline of this batch. */
        while (b->head && b->depth < b->cfg.max_batch_size && !b->closing) {
            if (b->cfg.incoming && atomic_load_explicit(b->cfg.incoming, memory_order_relaxed) <= 0)
                break; /* nothing else on its way: run what we have */
            int64_t until = b->head->enqueued_ns + gather_ns(b, delay_ns);
            if (now_ns() >= until)
                break;
            struct timespec ts = to_timespec(until);
            pthread_cond_timedwait(&b->cv, &b->mu, &ts);
        }
        while (b->head && b->cores_used >= b->cfg.instances)
            pthread_cond_wait(&b->cv, &b->mu); /* a split batch holds every core */
        if (!b->head)
            continue; /* another worker took them */
        int64_t start = now_ns();
        struct batcher_item *live, *expired;
        int n_live, n_expired;
        take_batch(b, start, &live, &n_live, &expired, &n_expired);
        const int split =
            b->team && b->cores_used == 0 && !b->head &&
            b->flops_per_item * n_live >= b->cfg.split_min_flops &&
            (!b->cfg.incoming || atomic_load_explicit(b->cfg.incoming, memory_order_relaxed) <= 0);
        const int held = split ? b->cfg.instances : 1;
        b->cores_used += held;
        if (b->head)
            pthread_cond_broadcast(&b->cv); /* more work for the other workers */
        pthread_mutex_unlock(&b->mu);
        if (b->cfg.on_cores)
            b->cfg.on_cores(b->cfg.on_batch_arg, held, split);

        for (struct batcher_item *it = live; it; it = it->next) {
            it->started_ns = start;
            it->batch_size = n_live;
        }
        for (struct batcher_item *it = expired; it; it = it->next) {
            it->started_ns = start;
            it->batch_size = 0;
        }
        struct batcher_item *gone = drop_gone(&live, &n_live);
        int64_t compute_ns = 0;
        int status = n_live > 0 ? run_batch(w, live, n_live, split, &compute_ns) : 0;
        if (b->cfg.on_cores) /* told after taking, before giving back: never above the truth */
            b->cfg.on_cores(b->cfg.on_batch_arg, -held, split);
        pthread_mutex_lock(&b->mu);
        b->cores_used -= held;
        if (status == 0 && n_live > 0)
            note_compute(b, compute_ns, n_live);
        if (b->head)
            pthread_cond_broadcast(&b->cv); /* cores free for the waiting work */
        pthread_mutex_unlock(&b->mu);
        if (b->cfg.on_batch)
            b->cfg.on_batch(b->cfg.on_batch_arg, status == 0 ? n_live : 0, compute_ns, n_expired);
        complete_list(expired, CNN_EBUSY);
        complete_list(gone, CNN_ECANCELED);
        complete_list(live, status);
        pthread_mutex_lock(&b->mu);
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

static void stop_workers(struct batcher *b)
{
    pthread_mutex_lock(&b->mu);
    b->closing = 1;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
    for (int i = 0; i < b->n_workers; i++)
        pthread_join(b->workers[i].thread, NULL);
    b->n_workers = 0;
}

static void free_batcher(struct batcher *b)
{
    if (b->workers)
        for (int i = 0; i < b->cfg.instances; i++)
            cnn_session_destroy(b->workers[i].session);
    free(b->workers);
    cnn_workers_destroy(b->team);
    pthread_cond_destroy(&b->cv);
    pthread_mutex_destroy(&b->mu);
    free(b);
}

struct batcher *batcher_create(const struct cnn_model *m, const struct batcher_config *cfg,
                               struct cnn_err *err)
{
    if (!m || !cfg) {
        cnn_err_set(err, CNN_EINVAL, "batcher: no model or config");
        return NULL;
    }
    if (check_config(cfg, err))
        return NULL;
    struct batcher *b = calloc(1, sizeof *b);
    if (!b) {
        cnn_err_set(err, CNN_ENOMEM, "batcher: out of memory");
        return NULL;
    }
    b->model = m;
    b->cfg = *cfg;
    b->flops_per_item = cnn_model_flops(m);
    const struct cnn_preproc *pp = cnn_model_preproc(m);
    b->in_floats = (size_t)pp->c * (size_t)pp->h * (size_t)pp->w;
    b->out_floats = (size_t)cnn_model_num_classes(m);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int cv_rc = pthread_cond_init(&b->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (cv_rc || pthread_mutex_init(&b->mu, NULL)) {
        if (!cv_rc)
            pthread_cond_destroy(&b->cv);
        free(b);
        cnn_err_set(err, CNN_ENOMEM, "batcher: cannot create mutex or condition variable");
        return NULL;
    }
    b->workers = calloc((size_t)cfg->instances, sizeof *b->workers);
    if (!b->workers) {
        cnn_err_set(err, CNN_ENOMEM, "batcher: out of memory");
        goto fail;
    }
    if (cfg->split && cfg->instances > 1 && cfg->blas_threads <= 1 &&
        !(b->team = cnn_workers_create(cfg->instances, err)))
        goto fail;
    for (int i = 0; i < cfg->instances; i++) {
        b->workers[i].b = b;
        b->workers[i].id = i;
        b->workers[i].session = cnn_session_create(m, cfg->max_batch_size, err);
        if (!b->workers[i].session)
            goto fail;
    }
    /* Process-wide; only touched when it differs, so that creating a batcher for a new
     * version does not reconfigure OpenBLAS while other batchers compute. */
    if (cfg->blas_threads > 0 && cnn_gemm_get_threads() != cfg->blas_threads)
        cnn_gemm_set_threads(cfg->blas_threads);
    for (int i = 0; i < cfg->instances; i++) {
        int rc = pthread_create(&b->workers[i].thread, NULL, worker_main, &b->workers[i]);
        if (rc) {
            cnn_err_set(err, CNN_ENOMEM, "batcher: cannot start worker %d: %s", i, strerror(rc));
            goto fail;
        }
        b->n_workers++;
    }
    return b;
fail:
    stop_workers(b);
    free_batcher(b);
    return NULL;
}

int batcher_submit(struct batcher *b, struct batcher_item *const *items, int n, struct cnn_err *err)
{
    if (!b || !items || n < 1)
        return cnn_err_set(err, CNN_EINVAL, "batcher: nothing to submit");
    for (int i = 0; i < n; i++)
        if (!items[i] || !items[i]->input || !items[i]->output || !items[i]->done)
            return cnn_err_set(err, CNN_EINVAL, "batcher: item %d lacks input, output or done", i);
    int64_t now = now_ns();
    pthread_mutex_lock(&b->mu);
    if (b->closing) {
        pthread_mutex_unlock(&b->mu);
        return cnn_err_set(err, CNN_EBUSY, "batcher: shutting down");
    }
    if (n > b->cfg.max_queue_size - b->depth) {
        int depth = b->depth;
        pthread_mutex_unlock(&b->mu);
        return cnn_err_set(err, CNN_EBUSY, "batcher: queue full (%d of %d queued, %d more)", depth,
                           b->cfg.max_queue_size, n);
    }
    int was_empty = b->depth == 0;
    for (int i = 0; i < n; i++) {
        struct batcher_item *it = items[i];
        it->enqueued_ns = now;
        it->started_ns = 0;
        it->batch_size = 0;
        it->next = NULL;
        if (b->tail)
            b->tail->next = it;
        else
            b->head = it;
        b->tail = it;
    }
    b->depth += n;
    /* Wake an idle worker for a first item, or the gathering ones once a batch is full. */
    if (was_empty || b->depth >= b->cfg.max_batch_size)
        pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
    return 0;
}

void batcher_destroy(struct batcher *b)
{
    if (!b)
        return;
    stop_workers(b);
    /* Workers exit only on an empty queue; this is a guard for our own invariant. */
    struct batcher_item *left = b->head;
    b->head = b->tail = NULL;
    complete_list(left, CNN_ECANCELED);
    free_batcher(b);
}

int batcher_queue_depth(struct batcher *b)
{
    pthread_mutex_lock(&b->mu);
    int d = b->depth;
    pthread_mutex_unlock(&b->mu);
    return d;
}
