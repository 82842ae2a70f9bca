/* Split runner (see split_forward.h).  DESIGN: the caller and W-1 helper threads each run
 * one slice of the batch; a generation counter (written under the mutex) starts a round and
 * a pending counter ends it.  Both sides spin briefly before sleeping on the condvars: a
 * LeNet batch takes ~70 us, less than a futex wake-up round trip.  No lock is held while
 * computing. */
#include "split_forward.h"

#include "session.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct worker {
    struct split_runner *r;
    struct cnn_session *s;
    int index;
    int rc;
    pthread_t thread;
};

struct split_runner {
    const struct cnn_model *m;
    int batch, workers, classes;
    size_t image_floats;
    float *input, *output;
    struct worker *w;
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    atomic_ulong generation;
    atomic_int pending;
    atomic_int stop;
    int n, started;
};

/* Slice [*lo, *hi) of n images for worker i. */
static void slice(int n, int workers, int i, int *lo, int *hi)
{
    *lo = (int)((long)n * i / workers);
    *hi = (int)((long)n * (i + 1) / workers);
}

static void run_slice(struct worker *w, int n)
{
    struct split_runner *r = w->r;
    int lo, hi;
    slice(n, r->workers, w->index, &lo, &hi);
    w->rc = 0;
    if (hi <= lo)
        return;
    const float *out;
    struct cnn_err err;
    w->rc = cnn_session_forward(w->s, r->m, r->input + (size_t)lo * r->image_floats, hi - lo,
                                &out, &err);
    if (w->rc == 0)
        memcpy(r->output + (size_t)lo * r->classes, out,
               sizeof(float) * (size_t)(hi - lo) * r->classes);
}

#define SPIN_ROUNDS 4000 /* pause instructions, a few hundred microseconds */

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct split_runner *r = w->r;
    unsigned long seen = 0;
    for (;;) {
        for (int i = 0; i < SPIN_ROUNDS && atomic_load(&r->generation) == seen &&
                        !atomic_load(&r->stop);
             i++)
            __builtin_ia32_pause();
        pthread_mutex_lock(&r->mu);
        while (!atomic_load(&r->stop) && atomic_load(&r->generation) == seen)
            pthread_cond_wait(&r->go, &r->mu);
        if (atomic_load(&r->stop)) {
            pthread_mutex_unlock(&r->mu);
            break;
        }
        seen = atomic_load(&r->generation);
        int n = r->n;
        pthread_mutex_unlock(&r->mu);
        run_slice(w, n);
        pthread_mutex_lock(&r->mu);
        if (atomic_fetch_sub(&r->pending, 1) == 1)
            pthread_cond_signal(&r->done);
        pthread_mutex_unlock(&r->mu);
    }
    return NULL;
}

struct split_runner *split_create(const struct cnn_model *m, int batch, int workers,
                                  struct cnn_err *err)
{
    if (workers < 1 || workers > batch) {
        cnn_err_set(err, CNN_EINVAL, "split: %d workers for batch %d", workers, batch);
        return NULL;
    }
    struct split_runner *r = calloc(1, sizeof *r);
    if (!r)
        goto nomem;
    const struct cnn_preproc *pp = cnn_model_preproc(m);
    r->m = m;
    r->batch = batch;
    r->workers = workers;
    r->classes = cnn_model_num_classes(m);
    r->image_floats = (size_t)pp->c * pp->h * pp->w;
    r->input = calloc((size_t)batch * r->image_floats, sizeof(float));
    r->output = calloc((size_t)batch * r->classes, sizeof(float));
    r->w = calloc((size_t)workers, sizeof *r->w);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->go, NULL);
    pthread_cond_init(&r->done, NULL);
    if (!r->input || !r->output || !r->w)
        goto nomem;
    for (int i = 0; i < workers; i++) {
        int lo, hi;
        slice(batch, workers, i, &lo, &hi);
        r->w[i] = (struct worker){.r = r, .index = i};
        r->w[i].s = cnn_session_create(m, hi - lo, err);
        if (!r->w[i].s) {
            split_destroy(r);
            return NULL;
        }
    }
    for (int i = 1; i < workers; i++) { /* worker 0 is the caller */
        if (pthread_create(&r->w[i].thread, NULL, worker_main, &r->w[i]) != 0) {
            split_destroy(r);
            cnn_err_set(err, CNN_ENOMEM, "split: cannot start thread");
            return NULL;
        }
        r->started = i;
    }
    return r;
nomem:
    split_destroy(r);
    cnn_err_set(err, CNN_ENOMEM, "split: out of memory");
    return NULL;
}

float *split_input(struct split_runner *r)
{
    return r->input;
}

int split_forward(struct split_runner *r, int n, const float **out, struct cnn_err *err)
{
    if (n < 1 || n > r->batch)
        return cnn_err_set(err, CNN_EINVAL, "split: batch %d outside 1..%d", n, r->batch);
    pthread_mutex_lock(&r->mu);
    r->n = n;
    atomic_store(&r->pending, r->workers - 1);
    atomic_fetch_add(&r->generation, 1);
    pthread_cond_broadcast(&r->go);
    pthread_mutex_unlock(&r->mu);
    run_slice(&r->w[0], n);
    for (int i = 0; i < SPIN_ROUNDS && atomic_load(&r->pending) > 0; i++)
        __builtin_ia32_pause();
    pthread_mutex_lock(&r->mu);
    while (atomic_load(&r->pending) > 0)
        pthread_cond_wait(&r->done, &r->mu);
    pthread_mutex_unlock(&r->mu);
    for (int i = 0; i < r->workers; i++)
        if (r->w[i].rc)
            return cnn_err_set(err, r->w[i].rc, "split: worker %d failed", i);
    *out = r->output;
    return 0;
}

void split_destroy(struct split_runner *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    atomic_store(&r->stop, 1);
    pthread_cond_broadcast(&r->go);
    pthread_mutex_unlock(&r->mu);
    for (int i = 1; i <= r->started; i++)
        pthread_join(r->w[i].thread, NULL);
    for (int i = 0; r->w && i < r->workers; i++)
        cnn_session_destroy(r->w[i].s);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->go);
    pthread_cond_destroy(&r->done);
    free(r->w);
    free(r->input);
    free(r->output);
    free(r);
}
