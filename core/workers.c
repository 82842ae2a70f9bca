/* Worker team (see workers.h).  DESIGN: a generation counter starts a round and a pending
 * counter ends it.  Both sides spin for a while (SPIN_NS) before sleeping on a condvar:
 * rounds are often shorter than a futex wake-up round trip.  Neither the start nor the end
 * of a round takes the mutex unless someone sleeps: the round's fn and ctx are atomics
 * written before the generation moves, and the mutex and condvars serve only sleepers,
 * counted in `sleepers` (helpers) and `caller_sleeps`.  No lock is held while a part runs.
 * A part runs once per round, by whoever claims it first: its helper, or the caller once
 * part 0 is done -- a helper still asleep, or whose core the host or another process has
 * taken, then costs the round its part's time instead of holding every later op up.
 * claimed[i] is the last generation whose part i someone took, so a helper that wakes
 * late, holding an older round's fn, claims nothing: a round's fn and ctx are replaced only
 * after every part of the previous round was claimed, and read before claiming.
 * Placement: the helpers' CPU masks leave out the CPU the caller runs on, see
 * place_helpers(). */
#define _GNU_SOURCE /* sched_getcpu, cpu_set_t, pthread_{get,set}affinity_np */
#include "workers.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

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
    atomic_int sleepers;      /* helpers waiting on go (changed under mu) */
    atomic_int caller_sleeps; /* 1 while the caller waits on done (changed under mu) */
    _Atomic(cnn_work_fn) fn;  /* of the current round, written before generation moves */
    _Atomic(void *) ctx;
    cpu_set_t allowed; /* the creating thread's CPUs, which the helpers started with */
    int placing;       /* allowed has 2 or more CPUs: the helpers can keep off the caller's */
    int helpers_avoid; /* the CPU the helpers' masks leave out now, or -1 */
};

/* How long an idle side spins before it sleeps.  A count of pause instructions was a few
 * hundred microseconds on the CPUs it was set on, but a pause takes 10 ns on the AVX-512
 * Xeon (model 167), where 4000 of them were 40 us: a helper done with its part that long
 * before the caller slept, and the next op waited on its wake-up (ResNet-18 batch 1 on 2
 * threads: the helper started an op 1-20 us late on average, and 51k TSC cycles late after
 * the two-round Winograd op). */
#define SPIN_NS 300000L

static void pause_cpu(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static long long now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* Spins until done(w, arg) or SPIN_NS have passed (the clock read every 64 pauses);
 * returns done's last value. */
static int spin_until(int (*done)(struct cnn_workers *, unsigned long), struct cnn_workers *w,
                      unsigned long arg)
{
    long long deadline = 0;
    for (int i = 1;; i++) {
        if (done(w, arg))
            return 1;
        pause_cpu();
        if (i % 64 == 0) {
            const long long t = now_ns();
            if (!deadline)
                deadline = t + SPIN_NS;
            else if (t >= deadline)
                return done(w, arg);
        }
    }
}

static int round_started(struct cnn_workers *w, unsigned long seen)
{
    return atomic_load(&w->generation) != seen || atomic_load(&w->stop);
}

static int round_done(struct cnn_workers *w, unsigned long unused)
{
    (void)unused;
    return atomic_load(&w->pending) == 0;
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

/* Part `part` done: the last one wakes the caller if it sleeps.  (The caller sets
 * caller_sleeps before its last look at pending, this side reads it after the decrement,
 * both sequentially consistent: one of them sees the other.) */
static void finish_part(struct cnn_workers *w)
{
    if (atomic_fetch_sub(&w->pending, 1) == 1 && atomic_load(&w->caller_sleeps)) {
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
        if (!spin_until(round_started, w, seen)) {
            pthread_mutex_lock(&w->mu);
            atomic_fetch_add(&w->sleepers, 1); /* before the last look: see cnn_workers_run */
            while (!round_started(w, seen))
                pthread_cond_wait(&w->go, &w->mu);
            atomic_fetch_sub(&w->sleepers, 1);
            pthread_mutex_unlock(&w->mu);
        }
        if (atomic_load(&w->stop))
            return NULL;
        seen = atomic_load(&w->generation);
        cnn_work_fn fn = atomic_load(&w->fn);
        void *ctx = atomic_load(&w->ctx);
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
    w->helpers_avoid = -1;
    w->placing = pthread_getaffinity_np(pthread_self(), sizeof w->allowed, &w->allowed) == 0 &&
                 CPU_COUNT(&w->allowed) >= 2;
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

/* Keeps the helpers off the caller's CPU: when the caller runs on a CPU other than the one
 * their masks leave out, each helper's mask becomes `allowed` without it, which moves a
 * helper there at once.  Why: the scheduler wakes a sleeping thread where it last ran or
 * next to its waker, and on a small VM it then left the caller and a helper on one vCPU
 * while the other idled for 10-20 ms -- the pass took twice as long (cnnd serving
 * ResNet-18 at batch 1 on 2 threads: about 1 pass in 100, each with both threads on one
 * vCPU in `perf sched timehist`).  A mask changes only when the caller's CPU does: the
 * helpers are free to move among the rest. */
static void place_helpers(struct cnn_workers *w)
{
    const int cpu = sched_getcpu();
    if (!w->placing || cpu < 0 || cpu == w->helpers_avoid || cpu >= CPU_SETSIZE ||
        !CPU_ISSET(cpu, &w->allowed))
        return;
    cpu_set_t away = w->allowed;
    CPU_CLR(cpu, &away);
    for (int i = 0; i < w->started; i++)
        pthread_setaffinity_np(w->helpers[i].thread, sizeof away, &away);
    w->helpers_avoid = cpu;
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
    atomic_store(&w->fn, fn);
    atomic_store(&w->ctx, ctx);
    place_helpers(w);
    atomic_store(&w->pending, w->threads - 1);
    const unsigned long gen = atomic_fetch_add(&w->generation, 1) + 1;
    /* A helper counts itself in sleepers before its last look at the generation, and this
     * reads sleepers after moving it (both sequentially consistent): either it sees the new
     * round or this wakes it, under the mutex it waits with. */
    if (atomic_load(&w->sleepers)) {
        pthread_mutex_lock(&w->mu);
        pthread_cond_broadcast(&w->go);
        pthread_mutex_unlock(&w->mu);
    }
    fn(ctx, 0, w->threads);
    for (int i = 1; i < w->threads; i++) /* the parts no helper has started yet */
        if (claim(w, i, gen)) {
            fn(ctx, i, w->threads);
            finish_part(w);
        }
    if (!spin_until(round_done, w, 0)) {
        pthread_mutex_lock(&w->mu);
        atomic_store(&w->caller_sleeps, 1);
        while (atomic_load(&w->pending) > 0)
            pthread_cond_wait(&w->done, &w->mu);
        atomic_store(&w->caller_sleeps, 0);
        pthread_mutex_unlock(&w->mu);
    }
}
