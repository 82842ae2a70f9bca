/* Worker team (see workers.h).  DESIGN: a generation counter, bumped under the mutex,
 * starts a round and a pending counter ends it.  Both sides spin for a few hundred
 * microseconds before sleeping on a condvar: rounds are often shorter than a futex
 * wake-up round trip.  No lock is held while a part runs.
 * A part runs once per round, by whoever claims it first: its helper, or the caller once
 * part 0 is done -- a helper still asleep, or whose core the host or another process has
 * taken, then costs the round its part's time instead of holding every later op up.
 * claimed[i] is the last generation whose part i someone took, so a helper that wakes
 * late, holding an older round's fn, claims nothing. */
#include "workers.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

struct helper {
    struct cnn_workers *team;
    int part;
    pthread_t thread;
};

struct cnn_workers {
    int threads, started;
    struct helper *helpers;  /* threads - 1 */
    atomic_ulong *claimed;   /* threads: per part, the generation that took it */
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    atomic_ulong generation;
    atomic_int pending;
    atomic_int stop;
    cnn_work_fn fn; /* of the current round, written before generation moves */
    void *ctx;
};

#define SPIN_ROUNDS 4000 /* pause instructions: a few hundred microseconds */

static void pause_cpu(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Takes part `part` of round `gen` unless someone already has; 1 when the caller should run it. */
static int claim(struct cnn_workers *w, int part, unsigned long gen)
{
    unsigned long seen = atomic_load(&w->claimed[part]);
    while (seen < gen)
        if (atomic_compare_exchange_weak(&w->claimed[part], &seen, gen))
            return 1;
    return 0;
}

/* Part `part` done: the last one wakes the caller if it sleeps. */
static void finish_part(struct cnn_workers *w)
{
    if (atomic_fetch_sub(&w->pending, 1) == 1) {
        pthread_mutex_lock(&w->mu);
        pthread_cond_signal(&w->done);
        pthread_mutex_unlock(&w->mu);
    }
}

static void *helper_main(void *arg)
{
    struct helper *h = arg;
    struct cnn_workers *w = h->team;
    unsigned long seen = 0;
    for (;;) {
        for (int i = 0;
             i < SPIN_ROUNDS && atomic_load(&w->generation) == seen && !atomic_load(&w->stop); i++)
            pause_cpu();
        pthread_mutex_lock(&w->mu);
        while (!atomic_load(&w->stop) && atomic_load(&w->generation) == seen)
            pthread_cond_wait(&w->go, &w->mu);
        if (atomic_load(&w->stop)) {
            pthread_mutex_unlock(&w->mu);
            return NULL;
        }
        seen = atomic_load(&w->generation);
        cnn_work_fn fn = w->fn;
        void *ctx = w->ctx;
        pthread_mutex_unlock(&w->mu);
        if (claim(w, h->part, seen)) {
            fn(ctx, h->part, w->threads);
            finish_part(w);
        }
    }
}

struct cnn_workers *cnn_workers_create(int threads, struct cnn_err *err)
{
    if (threads < 1 || threads > 256) {
        cnn_err_set(err, CNN_EINVAL, "workers: %d threads outside 1..256", threads);
        return NULL;
    }
    struct cnn_workers *w = calloc(1, sizeof *w);
    if (!w || !(w->helpers = calloc((size_t)threads, sizeof *w->helpers)) ||
        !(w->claimed = calloc((size_t)threads, sizeof *w->claimed))) {
        if (w)
            free(w->helpers);
        free(w);
        cnn_err_set(err, CNN_ENOMEM, "workers: out of memory");
        return NULL;
    }
    w->threads = threads;
    for (int i = 0; i < threads; i++)
        atomic_init(&w->claimed[i], 0);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->go, NULL);
    pthread_cond_init(&w->done, NULL);
    for (int i = 1; i < threads; i++) {
        struct helper *h = &w->helpers[i - 1];
        h->team = w;
        h->part = i;
        if (pthread_create(&h->thread, NULL, helper_main, h) != 0) {
            cnn_workers_destroy(w);
            cnn_err_set(err, CNN_ENOMEM, "workers: cannot start thread %d of %d", i + 1, threads);
            return NULL;
        }
        w->started = i;
    }
    return w;
}

void cnn_workers_destroy(struct cnn_workers *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    atomic_store(&w->stop, 1);
    pthread_cond_broadcast(&w->go);
    pthread_mutex_unlock(&w->mu);
    for (int i = 0; i < w->started; i++)
        pthread_join(w->helpers[i].thread, NULL);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->go);
    pthread_cond_destroy(&w->done);
    free(w->helpers);
    free(w->claimed);
    free(w);
}

int cnn_workers_count(const struct cnn_workers *w)
{
    return w ? w->threads : 1;
}

void cnn_workers_run(struct cnn_workers *w, cnn_work_fn fn, void *ctx)
{
    if (!w || w->threads == 1) {
        fn(ctx, 0, 1);
        return;
    }
    pthread_mutex_lock(&w->mu);
    w->fn = fn;
    w->ctx = ctx;
    atomic_store(&w->pending, w->threads - 1);
    const unsigned long gen = atomic_fetch_add(&w->generation, 1) + 1;
    pthread_cond_broadcast(&w->go);
    pthread_mutex_unlock(&w->mu);
    fn(ctx, 0, w->threads);
    for (int i = 1; i < w->threads; i++) /* the parts no helper has started yet */
        if (claim(w, i, gen)) {
            fn(ctx, i, w->threads);
            finish_part(w);
        }
    for (int i = 0; i < SPIN_ROUNDS && atomic_load(&w->pending) > 0; i++)
        pause_cpu();
    if (atomic_load(&w->pending) > 0) {
        pthread_mutex_lock(&w->mu);
        while (atomic_load(&w->pending) > 0)
            pthread_cond_wait(&w->done, &w->mu);
        pthread_mutex_unlock(&w->mu);
    }
}
