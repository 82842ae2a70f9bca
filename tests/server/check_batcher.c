/* Batcher suite: batches gather up to max_batch_size, a lone item waits max_queue_delay
 * (with requests on their way: no longer than its batch computes),
 * a full queue refuses at once, expired items are answered CNN_EBUSY uncomputed, destroy
 * drains, and many submitting threads each get every item completed exactly once.
 * Outputs are compared with batch-of-one forward passes of the same inputs. */
#include "batcher.h"
#include "gemm.h"
#include "server_test_models.h"

#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BATCHES 4096

/* What the callbacks saw; one mutex, one condvar. */
struct collector {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done; /* done() calls */
    int n_batches;
    int sizes[MAX_BATCHES]; /* batch_size per on_batch call */
    int expired;            /* sum of on_batch's expired */
    int computed;           /* sum of on_batch's batch_size */
    /* gate: the blocker item's done() waits here until open */
    int blocked, open;
    /* on_cores: cores held now and at most, batches taken by mode */
    int cores_now, cores_max, n_split, n_single;
};

struct titem {
    struct batcher_item it;
    float in[STM_IN];
    float out[STM_CLASSES];
    int status;
    atomic_int calls;
    struct collector *col;
};

static void collector_init(struct collector *c)
{
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
}

static void collector_fini(struct collector *c)
{
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
}

static void on_batch(void *arg, int batch_size, int64_t compute_ns, int expired)
{
    struct collector *c = arg;
    ck_assert(compute_ns >= 0);
    pthread_mutex_lock(&c->mu);
    if (c->n_batches < MAX_BATCHES)
        c->sizes[c->n_batches] = batch_size;
    c->n_batches++;
    c->expired += expired;
    c->computed += batch_size;
    pthread_mutex_unlock(&c->mu);
}

static void on_cores(void *arg, int cores, int split)
{
    struct collector *c = arg;
    pthread_mutex_lock(&c->mu);
    c->cores_now += cores;
    if (c->cores_now > c->cores_max)
        c->cores_max = c->cores_now;
    if (cores > 0)
        *(split ? &c->n_split : &c->n_single) += 1;
    pthread_mutex_unlock(&c->mu);
}

static void item_done(struct batcher_item *item, int status)
{
    struct titem *t = item->ctx;
    t->status = status;
    atomic_fetch_add(&t->calls, 1);
    pthread_mutex_lock(&t->col->mu);
    t->col->done++;
    pthread_cond_broadcast(&t->col->cv);
    pthread_mutex_unlock(&t->col->mu);
}

/* done() of the blocker: announces itself, then holds its worker until the gate opens. */
static void blocker_done(struct batcher_item *item, int status)
{
    struct titem *t = item->ctx;
    struct collector *c = t->col;
    pthread_mutex_lock(&c->mu);
    c->blocked = 1;
    pthread_cond_broadcast(&c->cv);
    while (!c->open)
        pthread_cond_wait(&c->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
    item_done(item, status);
}

static void titem_init(struct titem *t, struct collector *c, uint64_t seed)
{
    memset(t, 0, sizeof *t);
    stm_fill(t->in, STM_IN, seed);
    for (int k = 0; k < STM_CLASSES; k++)
        t->out[k] = -7.0f; /* sentinel: softmax never writes a negative value */
    t->col = c;
    t->status = 12345;
    t->it.input = t->in;
    t->it.output = t->out;
    t->it.done = item_done;
    t->it.ctx = t;
}

/* Waits until c->done >= n; fails after 30 s. */
static void wait_done(struct collector *c, int n)
{
    int64_t give_up = stm_now_ns() + 30 * 1000000000ll;
    pthread_mutex_lock(&c->mu);
    while (c->done < n && stm_now_ns() < give_up) {
        pthread_mutex_unlock(&c->mu);
        stm_sleep_ms(1);
        pthread_mutex_lock(&c->mu);
    }
    int done = c->done;
    pthread_mutex_unlock(&c->mu);
    ck_assert_msg(done >= n, "only %d of %d items completed", done, n);
}

static void wait_blocked(struct collector *c)
{
    pthread_mutex_lock(&c->mu);
    while (!c->blocked)
        pthread_cond_wait(&c->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
}

static void open_gate(struct collector *c)
{
    pthread_mutex_lock(&c->mu);
    c->open = 1;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static struct batcher_config config(struct collector *c, int max_batch, int delay_us, int queue,
                                    int instances)
{
    return (struct batcher_config){.max_batch_size = max_batch,
                                   .max_queue_delay_us = delay_us,
                                   .max_queue_size = queue,
                                   .instances = instances,
                                   .blas_threads = 1,
                                   .on_batch = on_batch,
                                   .on_batch_arg = c};
}

static struct batcher *make_batcher(const struct cnn_model *m, const struct batcher_config *cfg)
{
    struct cnn_err err = {0};
    struct batcher *b = batcher_create(m, cfg, &err);
    ck_assert_msg(b != NULL, "batcher_create: %s", err.msg);
    return b;
}

/* Each item completed once with status 0 and output == single-image forward (<= 1e-5). */
static void check_outputs(const struct cnn_model *m, struct titem *t, int n)
{
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(atomic_load(&t[i].calls), 1);
        ck_assert_int_eq(t[i].status, 0);
        float ref[STM_CLASSES];
        stm_forward_one(m, t[i].in, ref);
        float d = stm_max_diff(ref, t[i].out, STM_CLASSES);
        ck_assert_msg(d <= 1e-5f, "item %d differs from its single-image result by %g", i,
                      (double)d);
    }
}

START_TEST(test_batches_gather_up_to_max_batch_size)
{
    struct cnn_model *m = stm_model(1);
    struct collector c;
    collector_init(&c);
    struct batcher_config cfg = config(&c, 8, 100000, 64, 1);
    struct batcher *b = make_batcher(m, &cfg);
    struct titem t[20];
    struct batcher_item *items[20];
    for (int i = 0; i < 20; i++) {
        titem_init(&t[i], &c, 100 + (uint64_t)i);
        items[i] = &t[i].it;
    }
    struct cnn_err err = {0};
    ck_assert_int_eq(batcher_submit(b, items, 20, &err), 0);
    wait_done(&c, 20);
    batcher_destroy(b);
    ck_assert_int_eq(c.n_batches, 3);
    ck_assert_int_eq(c.sizes[0], 8);
    ck_assert_int_eq(c.sizes[1], 8);
    ck_assert_int_eq(c.sizes[2], 4);
    ck_assert_int_eq(c.expired, 0);
    check_outputs(m, t, 20);
    for (int i = 0; i < 20; i++) {
        ck_assert_int_eq(t[i].it.batch_size, i < 16 ? 8 : 4);
        ck_assert(t[i].it.started_ns >= t[i].it.enqueued_ns);
    }
    collector_fini(&c);
    cnn_model_destroy(m);
}
END_TEST

START_TEST(test_lone_item_completes_after_queue_delay)
{
    struct cnn_model *m = stm_model(2);
    struct collector c;
    collector_init(&c);
    const int delay_us = 50000;
    struct batcher_config cfg = config(&c, 8, delay_us, 16, 1);
    struct batcher *b = make_batcher(m, &cfg);
    struct titem t;
    titem_init(&t, &c, 7);
    struct batcher_item *one = &t.it;
    int64_t t0 = stm_now_ns();
    ck_assert_int_eq(batcher_submit(b, &one, 1, NULL), 0);
    wait_done(&c, 1);
    int64_t waited = stm_now_ns() - t0;
    /* a lower bound only: the batch cannot start before the delay unless it is full */
    ck_assert_msg(waited >= (int64_t)delay_us * 1000, "completed after %lld ns", (long long)waited);
    ck_assert(t.it.started_ns - t.it.enqueued_ns >= (int64_t)delay_us * 1000);
    ck_assert_int_eq(t.it.batch_size, 1);
    batcher_destroy(b);
    check_outputs(m, &t, 1);
    collector_fini(&c);
    cnn_model_destroy(m);
}
END_TEST

/* Submits one item, waits for it and returns how long it waited in the queue. */
static int64_t queued_ns_of_one(struct batcher *b, struct collector *c, struct titem *t,
                                int done_before)
{
    struct batcher_item *one = &t->it;
    ck_assert_int_eq(batcher_submit(b, &one, 1, NULL), 0);
    wait_done(c, done_before + 1);
    ck_assert_int_eq(t->it.batch_size, 1);
    return t->it.started_ns - t->it.enqueued_ns;
}

/* With the server's count of requests on their way (cfg.incoming): nothing on its way ->
 * a lone item runs at once; something on its way -> the first batch waits the whole delay
 * (no compute time measured yet), later ones no longer than their batch takes to compute
 * (microseconds for this model), far below the delay.  Fresh batchers: nothing measured. */
START_TEST(test_incoming_wait_bounded_by_compute_time)
{
    struct cnn_model *m = stm_model(2);
    struct collector c;
    collector_init(&c);
    const int64_t delay_ns = 300 * 1000000LL;
    atomic_int incoming;
    atomic_init(&incoming, 0);
    struct batcher_config cfg = config(&c, 8, (int)(delay_ns / 1000), 16, 1);
    cfg.incoming = &incoming;
    struct titem t[4];
    for (int i = 0; i < 4; i++)
        titem_init(&t[i], &c, 70 + (uint64_t)i);
    struct batcher *b = make_batcher(m, &cfg);
    int64_t q = queued_ns_of_one(b, &c, &t[0], 0);
    ck_assert_msg(q < delay_ns / 10, "nothing on its way, yet it waited %lld ns", (long long)q);
    batcher_destroy(b);
    atomic_store(&incoming, 1); /* a request that never arrives */
    b = make_batcher(m, &cfg);
    q = queued_ns_of_one(b, &c, &t[1], 1);
    ck_assert_msg(q >= delay_ns, "first wait %lld ns, shorter than the delay", (long long)q);
    for (int i = 2; i < 4; i++) {
        q = queued_ns_of_one(b, &c, &t[i], i);
        ck_assert_msg(q < delay_ns / 10, "item %d waited %lld ns for a batch computed in us", i,
                      (long long)q);
    }
    batcher_destroy(b);
    check_outputs(m, t, 4);
    collector_fini(&c);
    cnn_model_destroy(m);
}
END_TEST

START_TEST(test_full_queue_refuses_at_once_all_or_nothing)
{
    struct cnn_model *m = stm_model(3);
    struct collector c;
    collector_init(&c);
    struct batcher_config cfg = config(&c, 1, 0, 4, 1);
    struct batcher *b = make_batcher(m, &cfg);
    struct titem blocker, t[7];
    titem_init(&blocker, &c, 1);
    blocker.it.done = blocker_done;
    struct batcher_item *p = &blocker.it;
    ck_assert_int_eq(batcher_submit(b, &p, 1, NULL), 0);
    wait_blocked(&c); /* the only worker now sits in the blocker's done() */
    struct batcher_item *items[7];
    for (int i = 0; i < 7; i++) {
        titem_init(&t[i], &c, 50 + (uint64_t)i);
        items[i] = &t[i].it;
    }
    struct cnn_err err = {0};
    ck_assert_int_eq(batcher_submit(b, items, 3, &err), 0);
    ck_assert_int_eq(batcher_queue_depth(b), 3);
    /* two do not fit in the one free slot: neither is queued */
    ck_assert_int_eq(batcher_submit(b, items + 3, 2, &err), CNN_EBUSY);
    ck_assert_int_eq(err.code, CNN_EBUSY);
    ck_assert_int_eq(batcher_queue_depth(b), 3);
    ck_assert_int_eq(batcher_submit(b, items + 3, 1, &err), 0);
    ck_assert_int_eq(batcher_queue_depth(b), 4);
    ck_assert_int_eq(batcher_submit(b, items + 4, 1, &err), CNN_EBUSY);
    ck_assert_int_eq(batcher_submit(b, items + 5, 2, &err), CNN_EBUSY);
    open_gate(&c);
    wait_done(&c, 5);
    batcher_destroy(b);
    check_outputs(m, t, 4);
    for (int i = 4; i < 7; i++) {
        ck_assert_int_eq(atomic_load(&t[i].calls), 0);
        ck_assert_int_eq(t[i].status, 12345);
    }
    ck_assert_int_eq(c.done, 5);
    ck_assert_int_eq(c.computed, 5);
    collector_fini(&c);
    cnn_model_destroy(m);
}
END_TEST

START_TEST(test_expired_items_answered_busy_and_not_computed)
{
    struct cnn_model *m = stm_model(4);
    struct collector c;
    collector_init(&c);
    struct batcher_config cfg = config(&c, 4, 0, 32, 1);
    struct batcher *b = make_batcher(m, &cfg);
    struct titem blocker, t[10];
    titem_init(&blocker, &c, 1);
    blocker.it.done = blocker_done;
    struct batcher_item *p = &blocker.it;
    ck_assert_int_eq(batcher_submit(b, &p, 1, NULL), 0);
    wait_blocked(&c);
    struct batcher_item *items[10];
    int64_t now = stm_now_ns();
    for (int i = 0; i < 10; i++) {
        titem_init(&t[i], &c, 70 + (uint64_t)i);
        /* even items: deadline 1 ms from now, which passes while the worker is held;
         * odd items: no deadline (0) or one an hour away */
        if (i % 2 == 0)
            t[i].it.deadline_ns = now + 1000000;
        else if (i % 4 == 1)
            t[i].it.deadline_ns = now + 3600ll * 1000000000;
        items[i] = &t[i].it;
    }
    ck_assert_int_eq(batcher_submit(b, items, 10, NULL), 0);
    stm_sleep_ms(20);
    open_gate(&c);
    wait_done(&c, 11);
    batcher_destroy(b);
    ck_assert_int_eq(c.expired, 5);
    ck_assert_int_eq(c.computed, 1 + 5);
    for (int i = 0; i < 10; i++) {
        ck_assert_int_eq(atomic_load(&t[i].calls), 1);
        if (i % 2 == 0) {
            ck_assert_int_eq(t[i].status, CNN_EBUSY);
            ck_assert_int_eq(t[i].it.batch_size, 0);
            for (int k = 0; k < STM_CLASSES; k++)
                ck_assert(t[i].out[k] == -7.0f); /* never written */
        } else {
            check_outputs(m, &t[i], 1);
        }
    }
    for (int i = 0; i < c.n_batches; i++)
        ck_assert(c.sizes[i] <= 4);
    collector_fini(&c);
    cnn_model_destroy(m);
}
END_TEST

static int always_gone(const struct batcher_item *item)
{
    (void)item;
    return 1;
}

/* Items whose client left (gone() == 1) are answered CNN_ECANCELED and not computed; the
 * others of the same gathered batch are computed and see the smaller batch size. */
START_TEST(test_gone_items_cancelled_and_not_computed)
{
    struct cnn_model *m = stm_model(4);
    struct collector c;
    collector_init(&c);
    struct batcher_config cfg = config(&c, 8, 0, 32, 1);
    struct batcher *b = make_batcher(m, &cfg);
    struct titem blocker, t[6];
    titem_init(&blocker, &c, 1);
    blocker.it.done = blocker_done;
    struct batcher_item *p = &blocker.it;
    ck_assert_int_eq(batcher_submit(b, &p, 1, NULL), 0);
    wait_blocked(&c);
    struct batcher_item *items[6];
    for (int i = 0; i < 6; i++) {
        titem_init(&t[i], &c, 90 + (uint64_t)i);
        if (i % 3 == 0)
            t[i].it.gone = always_gone;
        items[i] = &t[i].it;
    }
    ck_assert_int_eq(batcher_submit(b, items, 6, NULL), 0);
    open_gate(&c);
    wait_done(&c, 7);
    batcher_destroy(b);
    ck_assert_int_eq(c.computed, 1 + 4);
    for (int i = 0; i < 6; i++) {
        ck_assert_int_eq(atomic_load(&t[i].calls), 1);
        if (i % 3 == 0) {
            ck_assert_int_eq(t[i].status, CNN_ECANCELED);
            for (int k = 0; k < STM_CLASSES; k++)
                ck_assert(t[i].out[k] == -7.0f); /* never written */
        } else {
            ck_assert_int_eq(t[i].it.batch_size, 4);
            check_outputs(m, &t[i], 1);
        }
    }
    collector_fini(&c);
    cnn_model_destroy(m);
}
END_TEST

START_TEST(test_destroy_drains_queued_items)
{
    struct cnn_model *m = stm_model(5);
    struct collector c;
    collector_init(&c);
    /* a delay of 60 s: only closing the batcher can make these batches start in time */
    struct batcher_config cfg = config(&c, 4, 60000000, 64, 2);
    struct batcher *b = make_batcher(m, &cfg);
    struct titem t[19];
    struct batcher_item *items[19];
    for (int i = 0; i < 19; i++) {
        titem_init(&t[i], &c, 300 + (uint64_t)i);
        items[i] = &t[i].it;
    }
    ck_assert_int_eq(batcher_submit(b, items, 16, NULL), 0);
    ck_assert_int_eq(batcher_submit(b, items + 16, 3, NULL), 0);
    batcher_destroy(b);
    ck_assert_int_eq(c.done, 19);
    ck_assert_int_eq(c.computed, 19);
    check_outputs(m, t, 19);
    collector_fini(&c);
    cnn_model_destroy(m);
}
END_TEST

enum { SUBMITTERS = 8, PER_THREAD = 200, POOL = 16 };

struct submitter {
    struct batcher *b;
    struct titem *items; /* PER_THREAD */
    int refused;
};

static void *submit_loop(void *arg)
{
    struct submitter *s = arg;
    int i = 0;
    while (i < PER_THREAD) {
        int n = 1 + i % 3; /* groups of 1, 2, 3 items */
        if (n > PER_THREAD - i)
            n = PER_THREAD - i;
        struct batcher_item *group[3];
        for (int k = 0; k < n; k++)
            group[k] = &s->items[i + k].it;
        struct cnn_err err = {0};
        int rc = batcher_submit(s->b, group, n, &err);
        if (rc == CNN_EBUSY) { /* queue full: try again shortly */
            s->refused++;
            stm_sleep_ms(1);
            continue;
        }
        ck_assert_msg(rc == 0, "submit: %s", err.msg);
        i += n;
    }
    return NULL;
}

/* SUBMITTERS threads each submit their PER_THREAD items of all; returns when all are queued. */
static void submit_concurrently(struct batcher *b, struct titem *all)
{
    struct submitter s[SUBMITTERS];
    pthread_t th[SUBMITTERS];
    for (int i = 0; i < SUBMITTERS; i++) {
        s[i] = (struct submitter){.b = b, .items = all + i * PER_THREAD};
        ck_assert_int_eq(pthread_create(&th[i], NULL, submit_loop, &s[i]), 0);
    }
    for (int i = 0; i < SUBMITTERS; i++)
        pthread_join(th[i], NULL);
}

START_TEST(test_concurrent_submitters_each_item_completed_once)
{
    struct cnn_model *m = stm_model(6);
    float ref[POOL][STM_CLASSES];
    struct collector c;
    collector_init(&c);
    struct batcher_config cfg = config(&c, 8, 200, 256, 2);
    struct batcher *b = make_batcher(m, &cfg);
    struct titem *all = calloc(SUBMITTERS * PER_THREAD, sizeof *all);
    ck_assert(all != NULL);
    for (int i = 0; i < SUBMITTERS * PER_THREAD; i++)
        titem_init(&all[i], &c, 1000 + (uint64_t)(i % POOL));
    for (int k = 0; k < POOL; k++)
        stm_forward_one(m, all[k].in, ref[k]);
    submit_concurrently(b, all);
    wait_done(&c, SUBMITTERS * PER_THREAD);
    batcher_destroy(b);
    ck_assert_int_eq(c.done, SUBMITTERS * PER_THREAD);
    ck_assert_int_eq(c.computed, SUBMITTERS * PER_THREAD);
    ck_assert_int_eq(c.expired, 0);
    for (int i = 0; i < SUBMITTERS * PER_THREAD; i++) {
        ck_assert_int_eq(atomic_load(&all[i].calls), 1);
        ck_assert_int_eq(all[i].status, 0);
        ck_assert_msg(stm_max_diff(ref[i % POOL], all[i].out, STM_CLASSES) <= 1e-5f,
                      "item %d differs from its single-image result", i);
    }
    for (int i = 0; i < c.n_batches && i < MAX_BATCHES; i++)
        ck_assert(c.sizes[i] >= 1 && c.sizes[i] <= 8);
    free(all);
    collector_fini(&c);
    cnn_model_destroy(m);
}
END_TEST

START_TEST(test_bad_config_and_bad_items_rejected)
{
    struct cnn_model *m = stm_model(7);
    struct collector c;
    collector_init(&c);
    struct cnn_err err = {0};
    struct batcher_config bad[4] = {config(&c, 0, 0, 4, 1), config(&c, 2, -1, 4, 1),
                                    config(&c, 2, 0, 0, 1), config(&c, 2, 0, 4, 0)};
    for (int i = 0; i < 4; i++) {
        err.code = 0;
        ck_assert_ptr_null(batcher_create(m, &bad[i], &err));
        ck_assert_int_eq(err.code, CNN_EINVAL);
        ck_assert(strlen(err.msg) > 0);
    }
    ck_assert_ptr_null(batcher_create(NULL, &bad[0], &err));
    struct batcher_config cfg = config(&c, 2, 0, 4, 1);
    struct batcher *b = make_batcher(m, &cfg);
    struct titem t;
    titem_init(&t, &c, 1);
    struct batcher_item *p = &t.it;
    ck_assert_int_eq(batcher_submit(b, &p, 0, &err), CNN_EINVAL);
    t.it.done = NULL;
    ck_assert_int_eq(batcher_submit(b, &p, 1, &err), CNN_EINVAL);
    t.it.done = item_done;
    t.it.output = NULL;
    ck_assert_int_eq(batcher_submit(b, &p, 1, &err), CNN_EINVAL);
    ck_assert_int_eq(batcher_queue_depth(b), 0);
    batcher_destroy(b);
    batcher_destroy(NULL);
    ck_assert_int_eq(c.done, 0);
    collector_fini(&c);
    cnn_model_destroy(m);
}
END_TEST

/* Submits n items, each after the one before completed (the queue is then always short). */
static void submit_one_by_one(struct batcher *b, struct collector *c, struct titem *t, int n,
                              uint64_t seed)
{
    struct cnn_err err = {0};
    for (int i = 0; i < n; i++) {
        titem_init(&t[i], c, seed + (uint64_t)i);
        struct batcher_item *one = &t[i].it;
        ck_assert_int_eq(batcher_submit(b, &one, 1, &err), 0);
        wait_done(c, i + 1);
    }
}

/* split on, 2 instances, items one at a time: every batch finds the queue short and runs on
 * the team of both cores, with the single-image results. */
START_TEST(test_split_lone_items_run_on_every_core)
{
    struct cnn_model *m = stm_model(8);
    struct collector c;
    collector_init(&c);
    struct batcher_config cfg = config(&c, 8, 0, 64, 2);
    cfg.split = 1;
    cfg.on_cores = on_cores;
    struct batcher *b = make_batcher(m, &cfg);
    struct titem t[6];
    submit_one_by_one(b, &c, t, 6, 300);
    batcher_destroy(b);
    ck_assert_int_eq(c.n_split, 6);
    ck_assert_int_eq(c.n_single, 0);
    ck_assert_int_eq(c.cores_max, 2);
    ck_assert_int_eq(c.cores_now, 0);
    check_outputs(m, t, 6);
    collector_fini(&c);
    cnn_model_destroy(m);
}
END_TEST

/* split on, 3 instances, 4 threads submitting: whatever the modes chosen, the cores held never
 * exceed the instances, every item completes once with its single-image result. */
START_TEST(test_split_never_holds_more_cores_than_instances)
{
    struct cnn_model *m = stm_model(9);
    struct collector c;
    collector_init(&c);
    struct batcher_config cfg = config(&c, 4, 100, 256, 3);
    cfg.split = 1;
    cfg.on_cores = on_cores;
    struct batcher *b = make_batcher(m, &cfg);
    struct titem *all = calloc(SUBMITTERS * PER_THREAD, sizeof *all);
    ck_assert(all != NULL);
    for (int i = 0; i < SUBMITTERS * PER_THREAD; i++)
        titem_init(&all[i], &c, 2000 + (uint64_t)i);
    submit_concurrently(b, all);
    wait_done(&c, SUBMITTERS * PER_THREAD);
    batcher_destroy(b);
    ck_assert_int_eq(c.computed, SUBMITTERS * PER_THREAD);
    ck_assert_int_ge(c.n_split + c.n_single, c.n_batches);
    ck_assert_int_ge(c.cores_max, 1);
    ck_assert_int_le(c.cores_max, 3);
    ck_assert_int_eq(c.cores_now, 0);
    check_outputs(m, all, SUBMITTERS * PER_THREAD);
    free(all);
    collector_fini(&c);
    cnn_model_destroy(m);
}
END_TEST

/* split off (or blas_threads > 1): every batch on one core, as before the option existed. */
START_TEST(test_split_off_runs_every_batch_alone)
{
    struct cnn_model *m = stm_model(10);
    for (int round = 0; round < 2; round++) {
        struct collector c;
        collector_init(&c);
        struct batcher_config cfg = config(&c, 8, 0, 64, 2);
        cfg.split = round == 1;
        cfg.blas_threads = round == 1 ? 2 : 1; /* split asked for, but BLAS has threads */
        cfg.on_cores = on_cores;
        struct batcher *b = make_batcher(m, &cfg);
        struct titem t[3];
        submit_one_by_one(b, &c, t, 3, 400);
        batcher_destroy(b);
        ck_assert_int_eq(c.n_split, 0);
        ck_assert_int_eq(c.n_single, 3);
        ck_assert_int_eq(c.cores_max, 1);
        check_outputs(m, t, 3);
        collector_fini(&c);
    }
    cnn_gemm_set_threads(1);
    cnn_model_destroy(m);
}
END_TEST

/* split on, but each lone item is below split_min_flops: every batch stays on one core; a
 * full batch of 4 reaches the bound and splits. */
START_TEST(test_split_skips_batches_below_the_work_bound)
{
    struct cnn_model *m = stm_model(11);
    struct collector c;
    collector_init(&c);
    struct batcher_config cfg = config(&c, 8, 0, 64, 2);
    cfg.split = 1;
    cfg.split_min_flops = 3.5 * cnn_model_flops(m);
    cfg.on_cores = on_cores;
    struct batcher *b = make_batcher(m, &cfg);
    struct titem t[3];
    submit_one_by_one(b, &c, t, 3, 500);
    ck_assert_int_eq(c.n_split, 0);
    ck_assert_int_eq(c.n_single, 3);
    ck_assert_int_eq(c.cores_max, 1);
    check_outputs(m, t, 3);
    struct titem four[4]; /* submitted together: one batch of 4 on both cores */
    struct batcher_item *items[4];
    for (int i = 0; i < 4; i++) {
        titem_init(&four[i], &c, 600 + (uint64_t)i);
        items[i] = &four[i].it;
    }
    struct cnn_err err = {0};
    ck_assert_int_eq(batcher_submit(b, items, 4, &err), 0);
    wait_done(&c, 7);
    ck_assert_int_eq(c.n_split, 1);
    ck_assert_int_eq(c.cores_max, 2);
    check_outputs(m, four, 4);
    batcher_destroy(b);
    collector_fini(&c);
    cnn_model_destroy(m);
}
END_TEST

Suite *batcher_suite(void)
{
    Suite *s = suite_create("batcher");
    TCase *tc = tcase_create("batcher");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_batches_gather_up_to_max_batch_size);
    tcase_add_test(tc, test_lone_item_completes_after_queue_delay);
    tcase_add_test(tc, test_incoming_wait_bounded_by_compute_time);
    tcase_add_test(tc, test_full_queue_refuses_at_once_all_or_nothing);
    tcase_add_test(tc, test_expired_items_answered_busy_and_not_computed);
    tcase_add_test(tc, test_gone_items_cancelled_and_not_computed);
    tcase_add_test(tc, test_destroy_drains_queued_items);
    tcase_add_test(tc, test_concurrent_submitters_each_item_completed_once);
    tcase_add_test(tc, test_bad_config_and_bad_items_rejected);
    tcase_add_test(tc, test_split_lone_items_run_on_every_core);
    tcase_add_test(tc, test_split_never_holds_more_cores_than_instances);
    tcase_add_test(tc, test_split_off_runs_every_batch_alone);
    tcase_add_test(tc, test_split_skips_batches_below_the_work_bound);
    suite_add_tcase(s, tc);
    return s;
}
