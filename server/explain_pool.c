/* The explanation threads and their slot count (see explain_pool.h). */
#include "explain_pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

struct explain_pool {
    pthread_mutex_t mu; /* guards head, tail, stop */
    pthread_cond_t cv;
    struct explain_job *head, *tail;
    int stop;
    atomic_int reserved;
    int max_jobs, n_threads;
    pthread_t *threads;
};

static void *worker(void *arg)
{
    struct explain_pool *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->head && !p->stop)
            pthread_cond_wait(&p->cv, &p->mu);
        struct explain_job *job = p->head;
        if (job) {
            p->head = job->next;
            if (!p->head)
                p->tail = NULL;
        }
        pthread_mutex_unlock(&p->mu);
        if (!job)
            return NULL; /* stopping and nothing left */
        job->run(job);
    }
}

struct explain_pool *explain_pool_create(int threads, int max_jobs, struct cnn_err *err)
{
    if (threads < 1 || threads > 64 || max_jobs < 1) {
        cnn_err_set(err, CNN_EINVAL, "explain: %d threads, %d slots", threads, max_jobs);
        return NULL;
    }
    struct explain_pool *p = calloc(1, sizeof *p);
    if (p)
        p->threads = calloc((size_t)threads, sizeof *p->threads);
    if (!p || !p->threads) {
        free(p);
        cnn_err_set(err, CNN_ENOMEM, "explain: out of memory");
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    atomic_init(&p->reserved, 0);
    p->max_jobs = max_jobs;
    for (; p->n_threads < threads; p->n_threads++)
        if (pthread_create(&p->threads[p->n_threads], NULL, worker, p) != 0) {
            cnn_err_set(err, CNN_ENOMEM, "explain: cannot start thread %d", p->n_threads);
            explain_pool_destroy(p);
            return NULL;
        }
    return p;
}

void explain_pool_destroy(struct explain_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_threads; i++)
        pthread_join(p->threads[i], NULL);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->threads);
    free(p);
}

int explain_pool_reserve(struct explain_pool *p)
{
    int n = atomic_fetch_add_explicit(&p->reserved, 1, memory_order_relaxed);
    if (n < p->max_jobs)
        return 0;
    atomic_fetch_sub_explicit(&p->reserved, 1, memory_order_relaxed);
    return CNN_EBUSY;
}

void explain_pool_release(struct explain_pool *p)
{
    atomic_fetch_sub_explicit(&p->reserved, 1, memory_order_relaxed);
}

int explain_pool_busy(struct explain_pool *p)
{
    return atomic_load_explicit(&p->reserved, memory_order_relaxed);
}

void explain_pool_run(struct explain_pool *p, struct explain_job *job)
{
    job->next = NULL;
    pthread_mutex_lock(&p->mu);
    if (p->tail)
        p->tail->next = job;
    else
        p->head = job;
    p->tail = job;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}
