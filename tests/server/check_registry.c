/* Registry suite, versions and lifetime: loading a temporary repository, live and
 * explicit versions, hot swap while an old reference is held, a removed live version,
 * concurrent scans, draining on destroy, and publish cycles under concurrent use.  Results
 * are checked against batch-of-one forward passes of the in-memory models that were saved.
 * Scan policy (failures, configs, names) is in check_registry_scan.c. */
#include "registry.h"
#include "registry_test.h"
#include "repository.h"
#include "server_test_models.h"

#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- tests -------------------------------------------------------------------------- */

START_TEST(test_scan_loads_and_acquire_finds_live_and_explicit_versions)
{
    char *repo = stm_tempdir();
    float in[STM_IN], ref_a1[STM_CLASSES], ref_a2[STM_CLASSES], ref_b1[STM_CLASSES];
    stm_fill(in, STM_IN, 99);
    publish(repo, "a", 1, 11, in, ref_a1);
    publish(repo, "a", 2, 12, in, ref_a2);
    publish(repo, "b.v-2_x", 1, 21, in, ref_b1);
    /* the two versions must be distinguishable for the checks below to mean anything */
    ck_assert(stm_max_diff(ref_a1, ref_a2, STM_CLASSES) > 1e-4f);
    struct registry_config c = reg_config(repo, 2, NULL);
    struct registry *r = make_registry(&c);
    ck_assert_int_eq(registry_ready(r), 0);
    ck_assert_int_eq(scan(r), 0);
    ck_assert_int_eq(registry_ready(r), 1);

    struct model_version *live = acquire(r, "a", 0);
    ck_assert_int_eq(live->version, 2);
    ck_assert_ptr_nonnull(live->model);
    ck_assert_str_eq(cnn_model_label(live->model, 3), "c3");
    check_serves(live, in, ref_a2);
    struct model_version *v1 = acquire(r, "a", 1);
    ck_assert_int_eq(v1->version, 1);
    check_serves(v1, in, ref_a1);
    struct model_version *b = acquire(r, "b.v-2_x", 0);
    ck_assert_int_eq(b->version, 1);
    check_serves(b, in, ref_b1);

    struct cnn_err err = {0};
    ck_assert_int_eq(acquire_rc(r, "nope", 0, &err), CNN_ENOENT);
    ck_assert_ptr_nonnull(strstr(err.msg, "nope"));
    ck_assert_int_eq(acquire_rc(r, "a", 3, &err), CNN_ENOENT);
    ck_assert_int_eq(acquire_rc(r, "../a\n", 0, &err), CNN_ENOENT);
    ck_assert_ptr_null(strchr(err.msg, '\n')); /* client text is not echoed */
    ck_assert_int_eq(acquire_rc(r, "a", -1, &err), CNN_EINVAL);

    struct seen s = {0};
    registry_foreach(r, collect, &s);
    ck_assert_int_eq(s.n, 3);
    ck_assert(seen_has(&s, "a/2 live"));
    ck_assert(seen_has(&s, "a/1"));
    ck_assert(seen_has(&s, "b.v-2_x/1 live"));

    registry_release(r, live);
    registry_release(r, v1);
    registry_release(r, b);
    registry_release(r, NULL);
    ck_assert_int_eq(registry_freed_count(r), 0); /* still listed */
    registry_destroy(r);
    stm_rmtree(repo);
    free(repo);
}
END_TEST

START_TEST(test_publish_swaps_live_while_old_reference_stays_usable)
{
    char *repo = stm_tempdir();
    float in[STM_IN], ref1[STM_CLASSES], ref2[STM_CLASSES];
    stm_fill(in, STM_IN, 5);
    publish(repo, "m", 1, 31, in, ref1);
    struct registry_config c = reg_config(repo, 1, NULL);
    struct registry *r = make_registry(&c);
    ck_assert_int_eq(scan(r), 0);
    struct model_version *old = acquire(r, "m", 0);
    ck_assert_int_eq(old->version, 1);

    publish(repo, "m", 2, 32, in, ref2);
    ck_assert_int_eq(scan(r), 0);
    struct model_version *live = acquire(r, "m", 0);
    ck_assert_int_eq(live->version, 2);
    check_serves(live, in, ref2);
    struct cnn_err err = {0};
    ck_assert_int_eq(acquire_rc(r, "m", 1, &err), CNN_ENOENT); /* max_versions 1 */
    struct seen s = {0};
    registry_foreach(r, collect, &s);
    ck_assert_int_eq(s.n, 1);
    ck_assert(seen_has(&s, "m/2 live"));

    /* the held version still computes with its own weights */
    check_serves(old, in, ref1);
    check_serves(old, in, ref1);
    stm_sleep_ms(20);
    ck_assert_int_eq(registry_freed_count(r), 0);
    registry_release(r, old);
    wait_freed(r, 1);
    registry_release(r, live);
    registry_destroy(r);
    stm_rmtree(repo);
    free(repo);
}
END_TEST

START_TEST(test_removed_live_version_stays_until_a_newer_one)
{
    char *repo = stm_tempdir();
    float in[STM_IN], ref1[STM_CLASSES];
    stm_fill(in, STM_IN, 8);
    publish(repo, "m", 1, 81, in, ref1);
    struct registry_config c = reg_config(repo, 1, NULL);
    struct registry *r = make_registry(&c);
    ck_assert_int_eq(scan(r), 0);
    char path[4096];
    snprintf(path, sizeof path, "%s/m/1", repo);
    stm_rmtree(path);
    ck_assert_int_eq(scan(r), 0);
    struct model_version *mv = acquire(r, "m", 0);
    ck_assert_int_eq(mv->version, 1);
    check_serves(mv, in, ref1);
    registry_release(r, mv);
    publish(repo, "m", 2, 82, NULL, NULL);
    ck_assert_int_eq(scan(r), 0);
    mv = acquire(r, "m", 0);
    ck_assert_int_eq(mv->version, 2);
    registry_release(r, mv);
    wait_freed(r, 1);
    registry_destroy(r);
    stm_rmtree(repo);
    free(repo);
}
END_TEST

static void *scan_loop(void *arg)
{
    struct registry *r = arg;
    long failures = 0;
    for (int i = 0; i < 5; i++)
        failures += scan(r);
    return (void *)failures;
}

START_TEST(test_concurrent_scans_load_each_version_once)
{
    char *repo = stm_tempdir();
    for (int v = 1; v <= 3; v++)
        publish(repo, "m", v, 90 + (uint64_t)v, NULL, NULL);
    publish(repo, "k", 7, 97, NULL, NULL);
    struct registry_config c = reg_config(repo, 2, NULL);
    struct registry *r = make_registry(&c);
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, scan_loop, r), 0);
    for (int i = 0; i < 3; i++) {
        void *failures;
        pthread_join(th[i], &failures);
        ck_assert_int_eq((long)failures, 0);
    }
    struct seen s = {0};
    registry_foreach(r, collect, &s);
    ck_assert_int_eq(s.n, 3);
    ck_assert(seen_has(&s, "m/3 live"));
    ck_assert(seen_has(&s, "m/2"));
    ck_assert(seen_has(&s, "k/7 live"));
    ck_assert_int_eq(registry_freed_count(r), 0); /* nothing was loaded twice */
    registry_destroy(r);
    stm_rmtree(repo);
    free(repo);
}
END_TEST

START_TEST(test_destroy_drains_queued_requests)
{
    char *repo = stm_tempdir();
    float in[STM_IN], ref[STM_CLASSES];
    stm_fill(in, STM_IN, 10);
    publish(repo, "m", 1, 95, in, ref);
    /* a 60 s delay and batches of 8: only the shutdown drain can run these 3 items */
    stm_write_file(repo, "m/config.ini", "[batching]\nmax_queue_delay_us = 60000000\n");
    struct registry_config c = reg_config(repo, 1, NULL);
    struct registry *r = make_registry(&c);
    ck_assert_int_eq(scan(r), 0);
    struct model_version *mv = acquire(r, "m", 0);
    struct waiter w[3];
    struct batcher_item *items[3];
    for (int i = 0; i < 3; i++) {
        memset(&w[i], 0, sizeof w[i]);
        pthread_mutex_init(&w[i].mu, NULL);
        pthread_cond_init(&w[i].cv, NULL);
        w[i].status = 12345;
        w[i].it = (struct batcher_item){
            .input = in, .output = w[i].out, .done = waiter_done, .ctx = &w[i]};
        items[i] = &w[i].it;
    }
    ck_assert_int_eq(batcher_submit(mv->batcher, items, 3, NULL), 0);
    registry_release(r, mv);
    registry_destroy(r);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(w[i].done, 1);
        ck_assert_int_eq(w[i].status, 0);
        ck_assert(stm_max_diff(ref, w[i].out, STM_CLASSES) <= 1e-5f);
        pthread_cond_destroy(&w[i].cv);
        pthread_mutex_destroy(&w[i].mu);
    }
    stm_rmtree(repo);
    free(repo);
}
END_TEST

/* ---- publish cycles under load ------------------------------------------------------ */

enum { CYCLES = 20, CLIENTS = 4 };

struct load {
    struct registry *r;
    const float *in;
    float (*ref)[STM_CLASSES]; /* by version */
    atomic_int stop;
    atomic_int failures, requests;
};

/* Half the clients release in done() on the worker thread, as the HTTP side may. */
struct async_req {
    struct batcher_item it;
    struct registry *r;
    struct model_version *mv;
    float out[STM_CLASSES];
    const float *ref;
    struct load *ld;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
};

static void async_done(struct batcher_item *item, int status)
{
    struct async_req *q = item->ctx;
    if (status != 0 || stm_max_diff(q->ref, q->out, STM_CLASSES) > 1e-5f)
        atomic_fetch_add(&q->ld->failures, 1);
    registry_release(q->r, q->mv); /* may start the version's teardown on the janitor */
    pthread_mutex_lock(&q->mu);
    q->done = 1;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

static void *client_sync(void *arg)
{
    struct load *ld = arg;
    while (!atomic_load(&ld->stop)) {
        struct model_version *mv = NULL;
        struct cnn_err err = {0};
        if (registry_acquire(ld->r, "m", 0, &mv, &err) != 0) {
            atomic_fetch_add(&ld->failures, 1);
            continue;
        }
        float out[STM_CLASSES];
        if (run_one(mv, ld->in, out) != 0 ||
            stm_max_diff(ld->ref[mv->version], out, STM_CLASSES) > 1e-5f)
            atomic_fetch_add(&ld->failures, 1);
        registry_release(ld->r, mv);
        atomic_fetch_add(&ld->requests, 1);
    }
    return NULL;
}

static void *client_async(void *arg)
{
    struct load *ld = arg;
    struct async_req q;
    memset(&q, 0, sizeof q);
    pthread_mutex_init(&q.mu, NULL);
    pthread_cond_init(&q.cv, NULL);
    q.r = ld->r;
    q.ld = ld;
    while (!atomic_load(&ld->stop)) {
        struct cnn_err err = {0};
        if (registry_acquire(ld->r, "m", 0, &q.mv, &err) != 0) {
            atomic_fetch_add(&ld->failures, 1);
            continue;
        }
        q.ref = ld->ref[q.mv->version];
        q.done = 0;
        q.it =
            (struct batcher_item){.input = ld->in, .output = q.out, .done = async_done, .ctx = &q};
        struct batcher_item *p = &q.it;
        if (batcher_submit(q.mv->batcher, &p, 1, &err) != 0) {
            atomic_fetch_add(&ld->failures, 1);
            registry_release(ld->r, q.mv);
            continue;
        }
        pthread_mutex_lock(&q.mu);
        while (!q.done)
            pthread_cond_wait(&q.cv, &q.mu);
        pthread_mutex_unlock(&q.mu);
        atomic_fetch_add(&ld->requests, 1);
    }
    pthread_cond_destroy(&q.cv);
    pthread_mutex_destroy(&q.mu);
    return NULL;
}

START_TEST(test_publish_cycles_under_concurrent_use)
{
    char *repo = stm_tempdir();
    float in[STM_IN];
    static float ref[CYCLES + 2][STM_CLASSES];
    stm_fill(in, STM_IN, 9);
    publish(repo, "m", 1, 1001, in, ref[1]);
    struct registry_config c = reg_config(repo, 1, NULL);
    struct registry *r = make_registry(&c);
    ck_assert_int_eq(scan(r), 0);
    struct load ld = {.r = r, .in = in, .ref = ref};
    pthread_t th[CLIENTS];
    for (int i = 0; i < CLIENTS; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, i % 2 ? client_async : client_sync, &ld), 0);
    for (int v = 2; v <= CYCLES + 1; v++) {
        publish(repo, "m", v, 1000 + (uint64_t)v, in, ref[v]);
        ck_assert_int_eq(scan(r), 0);
        stm_sleep_ms(5);
    }
    int before_stop = atomic_load(&ld.requests);
    atomic_store(&ld.stop, 1);
    for (int i = 0; i < CLIENTS; i++)
        pthread_join(th[i], NULL);
    ck_assert_int_eq(atomic_load(&ld.failures), 0);
    ck_assert_int_gt(before_stop, 0);
    struct model_version *mv = acquire(r, "m", 0);
    ck_assert_int_eq(mv->version, CYCLES + 1);
    registry_release(r, mv);
    wait_freed(r, CYCLES); /* every replaced version, once its last user let go */
    registry_destroy(r);
    stm_rmtree(repo);
    free(repo);
}
END_TEST

Suite *registry_suite(void)
{
    Suite *s = suite_create("registry");
    TCase *tc = tcase_create("registry");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_scan_loads_and_acquire_finds_live_and_explicit_versions);
    tcase_add_test(tc, test_publish_swaps_live_while_old_reference_stays_usable);
    tcase_add_test(tc, test_removed_live_version_stays_until_a_newer_one);
    tcase_add_test(tc, test_concurrent_scans_load_each_version_once);
    tcase_add_test(tc, test_destroy_drains_queued_requests);
    tcase_add_test(tc, test_publish_cycles_under_concurrent_use);
    suite_add_tcase(s, tc);
    return s;
}
