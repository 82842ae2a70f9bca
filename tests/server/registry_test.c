/* Helpers shared by the registry suites (check_registry.c, check_registry_scan.c): a
 * registry on a temporary repository, acquire with checks, one request through a version's
 * batcher, publishing a seeded model, and a registry_foreach collector. */
#include "registry_test.h"

#include <check.h>
#include <stdio.h>
#include <string.h>

static void log_batch(void *arg, int batch_size, int64_t compute_ns, int expired)
{
    (void)compute_ns, (void)expired;
    struct batch_log *bl = arg;
    pthread_mutex_lock(&bl->mu);
    if (bl->n < 64)
        bl->sizes[bl->n] = batch_size;
    bl->n++;
    pthread_mutex_unlock(&bl->mu);
}

struct registry_config reg_config(const char *repo, int max_versions, struct batch_log *bl)
{
    struct registry_config c = {.repository = repo, .max_versions = max_versions};
    c.batching = (struct batcher_config){.max_batch_size = 8,
                                         .max_queue_delay_us = 200,
                                         .max_queue_size = 64,
                                         .instances = 1,
                                         .blas_threads = 1,
                                         .on_batch = bl ? log_batch : NULL,
                                         .on_batch_arg = bl};
    return c;
}

struct registry *make_registry(const struct registry_config *c)
{
    struct cnn_err err = {0};
    struct registry *r = registry_create(c, &err);
    ck_assert_msg(r != NULL, "registry_create: %s", err.msg);
    return r;
}

int scan(struct registry *r)
{
    struct cnn_err err = {0};
    return registry_scan(r, &err);
}

struct model_version *acquire(struct registry *r, const char *name, int version)
{
    struct cnn_err err = {0};
    struct model_version *mv = NULL;
    int rc = registry_acquire(r, name, version, &mv, &err);
    ck_assert_msg(rc == 0, "acquire %s/%d: %s", name, version, err.msg);
    ck_assert_ptr_nonnull(mv);
    ck_assert_str_eq(mv->name, name);
    return mv;
}

int acquire_rc(struct registry *r, const char *name, int version, struct cnn_err *err)
{
    struct model_version *mv = (struct model_version *)1;
    int rc = registry_acquire(r, name, version, &mv, err);
    if (rc == 0)
        registry_release(r, mv);
    else
        ck_assert_ptr_null(mv);
    return rc;
}

void waiter_done(struct batcher_item *item, int status)
{
    struct waiter *w = item->ctx;
    pthread_mutex_lock(&w->mu);
    w->status = status;
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Runs one input through mv's batcher; returns the item's status (or the submit error). */
int run_one(struct model_version *mv, const float *in, float *out)
{
    struct waiter w;
    memset(&w, 0, sizeof w);
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    w.it = (struct batcher_item){.input = in, .output = w.out, .done = waiter_done, .ctx = &w};
    struct batcher_item *p = &w.it;
    struct cnn_err err = {0};
    int rc = batcher_submit(mv->batcher, &p, 1, &err);
    if (rc == 0) {
        pthread_mutex_lock(&w.mu);
        while (!w.done)
            pthread_cond_wait(&w.cv, &w.mu);
        pthread_mutex_unlock(&w.mu);
        rc = w.status;
        memcpy(out, w.out, sizeof w.out);
    }
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
    return rc;
}

/* Saves a model with this seed as repo/name/version and returns its output for in. */
void publish(const char *repo, const char *name, int version, uint64_t seed, const float *in,
             float *ref)
{
    struct cnn_model *m = stm_model(seed);
    stm_publish(m, repo, name, version);
    if (in)
        stm_forward_one(m, in, ref);
    cnn_model_destroy(m);
}

/* Output of mv for in equals ref within 1e-5. */
void check_serves(struct model_version *mv, const float *in, const float *ref)
{
    float out[STM_CLASSES];
    ck_assert_int_eq(run_one(mv, in, out), 0);
    float d = stm_max_diff(ref, out, STM_CLASSES);
    ck_assert_msg(d <= 1e-5f, "%s/%d differs from its model by %g", mv->name, mv->version,
                  (double)d);
}

void wait_freed(struct registry *r, int n)
{
    int64_t give_up = stm_now_ns() + 30 * 1000000000ll;
    while (registry_freed_count(r) < n && stm_now_ns() < give_up)
        stm_sleep_ms(1);
    ck_assert_int_eq(registry_freed_count(r), n);
}

void collect(const struct model_version *mv, int is_live, void *arg)
{
    struct seen *s = arg;
    if (s->n < 8)
        snprintf(s->what[s->n], sizeof s->what[0], "%s/%d%s", mv->name, mv->version,
                 is_live ? " live" : "");
    s->n++;
}

int seen_has(const struct seen *s, const char *what)
{
    for (int i = 0; i < s->n && i < 8; i++)
        if (strcmp(s->what[i], what) == 0)
            return 1;
    return 0;
}
