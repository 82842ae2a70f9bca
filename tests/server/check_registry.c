/* Registry suite: loading a temporary repository, live and explicit versions, hot swap
 * while an old reference is held, failed loads and bad configs, config overrides, the
 * config parser's errors, and publish cycles under concurrent use.  Results are checked
 * against batch-of-one forward passes of the in-memory models that were saved. */
#include "registry.h"
#include "repository.h"
#include "server_test_models.h"

#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- helpers ------------------------------------------------------------------------ */

struct batch_log {
    pthread_mutex_t mu;
    int n, sizes[64];
};

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

static struct registry_config reg_config(const char *repo, int max_versions, struct batch_log *bl)
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

static struct registry *make_registry(const struct registry_config *c)
{
    struct cnn_err err = {0};
    struct registry *r = registry_create(c, &err);
    ck_assert_msg(r != NULL, "registry_create: %s", err.msg);
    return r;
}

static int scan(struct registry *r)
{
    struct cnn_err err = {0};
    return registry_scan(r, &err);
}

static struct model_version *acquire(struct registry *r, const char *name, int version)
{
    struct cnn_err err = {0};
    struct model_version *mv = NULL;
    int rc = registry_acquire(r, name, version, &mv, &err);
    ck_assert_msg(rc == 0, "acquire %s/%d: %s", name, version, err.msg);
    ck_assert_ptr_nonnull(mv);
    ck_assert_str_eq(mv->name, name);
    return mv;
}

static int acquire_rc(struct registry *r, const char *name, int version, struct cnn_err *err)
{
    struct model_version *mv = (struct model_version *)1;
    int rc = registry_acquire(r, name, version, &mv, err);
    if (rc == 0)
        registry_release(r, mv);
    else
        ck_assert_ptr_null(mv);
    return rc;
}

/* One item's completion, waited for by the submitting thread. */
struct waiter {
    struct batcher_item it;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, status;
    float out[STM_CLASSES];
};

static void waiter_done(struct batcher_item *item, int status)
{
    struct waiter *w = item->ctx;
    pthread_mutex_lock(&w->mu);
    w->status = status;
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Runs one input through mv's batcher; returns the item's status (or the submit error). */
static int run_one(struct model_version *mv, const float *in, float *out)
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
static void publish(const char *repo, const char *name, int version, uint64_t seed, const float *in,
                    float *ref)
{
    struct cnn_model *m = stm_model(seed);
    stm_publish(m, repo, name, version);
    if (in)
        stm_forward_one(m, in, ref);
    cnn_model_destroy(m);
}

/* Output of mv for in equals ref within 1e-5. */
static void check_serves(struct model_version *mv, const float *in, const float *ref)
{
    float out[STM_CLASSES];
    ck_assert_int_eq(run_one(mv, in, out), 0);
    float d = stm_max_diff(ref, out, STM_CLASSES);
    ck_assert_msg(d <= 1e-5f, "%s/%d differs from its model by %g", mv->name, mv->version,
                  (double)d);
}

static void wait_freed(struct registry *r, int n)
{
    int64_t give_up = stm_now_ns() + 30 * 1000000000ll;
    while (registry_freed_count(r) < n && stm_now_ns() < give_up)
        stm_sleep_ms(1);
    ck_assert_int_eq(registry_freed_count(r), n);
}

/* ---- tests -------------------------------------------------------------------------- */

struct seen {
    int n;
    char what[8][80];
};

static void collect(const struct model_version *mv, int is_live, void *arg)
{
    struct seen *s = arg;
    if (s->n < 8)
        snprintf(s->what[s->n], sizeof s->what[0], "%s/%d%s", mv->name, mv->version,
                 is_live ? " live" : "");
    s->n++;
}

static int seen_has(const struct seen *s, const char *what)
{
    for (int i = 0; i < s->n && i < 8; i++)
        if (strcmp(s->what[i], what) == 0)
            return 1;
    return 0;
}

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

START_TEST(test_failed_version_keeps_live_is_reported_once_and_retried_when_changed)
{
    char *repo = stm_tempdir();
    float in[STM_IN], ref2[STM_CLASSES], ref3[STM_CLASSES];
    stm_fill(in, STM_IN, 6);
    publish(repo, "m", 1, 41, NULL, NULL);
    publish(repo, "m", 2, 42, in, ref2);
    struct registry_config c = reg_config(repo, 1, NULL);
    struct registry *r = make_registry(&c);
    ck_assert_int_eq(scan(r), 0);
    stm_write_file(repo, "m/3/model.cnn", "this is not a model file");
    ck_assert_int_eq(scan(r), 1);
    struct model_version *mv = acquire(r, "m", 0);
    ck_assert_int_eq(mv->version, 2);
    check_serves(mv, in, ref2);
    registry_release(r, mv);
    ck_assert_int_eq(scan(r), 0); /* same file: not retried, not reported again */
    /* a version folder whose model.cnn is not there yet is skipped silently */
    stm_write_file(repo, "m/4/.model.cnn.tmp-123456", "partial");
    ck_assert_int_eq(scan(r), 0);
    publish(repo, "m", 3, 43, in, ref3); /* replaced by a good file: retried */
    ck_assert_int_eq(scan(r), 0);
    mv = acquire(r, "m", 0);
    ck_assert_int_eq(mv->version, 3);
    check_serves(mv, in, ref3);
    registry_release(r, mv);
    wait_freed(r, 1); /* version 2 */
    registry_destroy(r);
    stm_rmtree(repo);
    free(repo);
}
END_TEST

START_TEST(test_bad_config_fails_that_model_only)
{
    char *repo = stm_tempdir();
    float in[STM_IN], ref[STM_CLASSES];
    stm_fill(in, STM_IN, 7);
    publish(repo, "good", 1, 51, in, ref);
    publish(repo, "bad", 1, 52, NULL, NULL);
    stm_write_file(repo, "bad/config.ini",
                   "[batching]\nmax_batch_size = 4\nmax_queue_size = lots\n");
    struct registry_config c = reg_config(repo, 1, NULL);
    struct registry *r = make_registry(&c);
    ck_assert_int_eq(scan(r), 1);
    struct cnn_err err = {0};
    ck_assert_int_eq(acquire_rc(r, "bad", 0, &err), CNN_ENOENT);
    struct model_version *mv = acquire(r, "good", 0);
    check_serves(mv, in, ref);
    registry_release(r, mv);
    ck_assert_int_eq(scan(r), 0); /* same error: logged and counted once */
    ck_assert_int_eq(acquire_rc(r, "bad", 0, &err), CNN_ENOENT);
    stm_write_file(repo, "bad/config.ini", "[batching]\nmax_batch_size = 4\n");
    ck_assert_int_eq(scan(r), 0);
    mv = acquire(r, "bad", 0);
    ck_assert_int_eq(mv->version, 1);
    registry_release(r, mv);
    registry_destroy(r);
    stm_rmtree(repo);
    free(repo);
}
END_TEST

START_TEST(test_config_overrides_batching_and_labels)
{
    char *repo = stm_tempdir();
    publish(repo, "m", 1, 61, NULL, NULL);
    stm_write_file(repo, "m/config.ini",
                   "; per-model settings\n[batching]\nmax_batch_size = 2\n"
                   "max_queue_delay_us = 100000 ; long: batches fill from the queue\n"
                   "[model]\nlabels = meta/names.txt\n");
    stm_write_file(repo, "m/meta/names.txt", "alpha\r\nbeta\ngamma\ndelta");
    publish(repo, "n", 1, 62, NULL, NULL);
    stm_write_file(repo, "n/config.ini", "[model]\nlabels = names.txt\n");
    stm_write_file(repo, "n/names.txt", "one\ntwo\nthree\n"); /* 3 labels, 4 classes */
    struct batch_log bl = {.n = 0};
    pthread_mutex_init(&bl.mu, NULL);
    struct registry_config c = reg_config(repo, 1, &bl);
    struct registry *r = make_registry(&c);
    ck_assert_int_eq(scan(r), 1); /* n: label count does not match */
    struct cnn_err err = {0};
    ck_assert_int_eq(acquire_rc(r, "n", 0, &err), CNN_ENOENT);
    struct model_version *mv = acquire(r, "m", 0);
    const char *want[4] = {"alpha", "beta", "gamma", "delta"};
    for (int i = 0; i < 4; i++)
        ck_assert_str_eq(cnn_model_label(mv->model, i), want[i]);

    struct waiter w[5];
    struct batcher_item *items[5];
    float in[5][STM_IN];
    for (int i = 0; i < 5; i++) {
        memset(&w[i], 0, sizeof w[i]);
        pthread_mutex_init(&w[i].mu, NULL);
        pthread_cond_init(&w[i].cv, NULL);
        stm_fill(in[i], STM_IN, 200 + (uint64_t)i);
        w[i].it = (struct batcher_item){
            .input = in[i], .output = w[i].out, .done = waiter_done, .ctx = &w[i]};
        items[i] = &w[i].it;
    }
    ck_assert_int_eq(batcher_submit(mv->batcher, items, 5, &err), 0);
    for (int i = 0; i < 5; i++) {
        pthread_mutex_lock(&w[i].mu);
        while (!w[i].done)
            pthread_cond_wait(&w[i].cv, &w[i].mu);
        pthread_mutex_unlock(&w[i].mu);
        ck_assert_int_eq(w[i].status, 0);
        pthread_cond_destroy(&w[i].cv);
        pthread_mutex_destroy(&w[i].mu);
    }
    pthread_mutex_lock(&bl.mu);
    ck_assert_int_eq(bl.n, 3);
    ck_assert_int_eq(bl.sizes[0], 2);
    ck_assert_int_eq(bl.sizes[1], 2);
    ck_assert_int_eq(bl.sizes[2], 1);
    pthread_mutex_unlock(&bl.mu);
    registry_release(r, mv);
    /* fixing the labels file makes the failed version load on the next scan */
    stm_write_file(repo, "n/names.txt", "one\ntwo\nthree\nfour\n");
    ck_assert_int_eq(scan(r), 0);
    mv = acquire(r, "n", 0);
    ck_assert_str_eq(cnn_model_label(mv->model, 3), "four");
    registry_release(r, mv);
    registry_destroy(r);
    pthread_mutex_destroy(&bl.mu);
    stm_rmtree(repo);
    free(repo);
}
END_TEST

START_TEST(test_config_parser_names_file_line_and_key)
{
    static const struct {
        const char *text;
        int code;
        const char *where; /* expected in the message */
    } cases[] = {
        {"[batching]\nmax_queue_size = lots\n", CNN_EINVAL, "x/config.ini:2: key max_queue_size"},
        {"[batching]\n\n; c\nmax_batch_size = 0\n", CNN_EINVAL,
         "x/config.ini:4: key max_batch_size"},
        {"[batching]\nmax_batch_size = 4097\n", CNN_EINVAL, "x/config.ini:2: key max_batch_size"},
        {"[batching]\nmax_batch_size = 8x\n", CNN_EINVAL, ":2: key max_batch_size"},
        {"[batching]\ninstances = -1\n", CNN_EINVAL, ":2: key instances"},
        {"[batching]\nmax_queue_delay_us = 60000001\n", CNN_EINVAL, ":2: key max_queue_delay_us"},
        {"[batching]\nmax_batch = 8\n", CNN_EINVAL, ":2: key max_batch"},
        {"instances = 2\n", CNN_EINVAL, "x/config.ini:1: key instances"},
        {"[batching]\ninstances = 2\n[preprocessing]\nmean = 0.5\n", CNN_EINVAL, ":4: key mean"},
        {"[model]\nlabels = /etc/passwd\n", CNN_EINVAL, ":2: key labels"},
        {"[model]\nlabels = a/../../b\n", CNN_EINVAL, ":2: key labels"},
        {"[model]\nlabels = missing.txt\n", CNN_EIO, "x/missing.txt"},
        {"[batching\nmax_batch_size = 2\n", CNN_EINVAL, "x/config.ini:1:"},
        {"[batching]\nno equals sign here\n", CNN_EINVAL, "x/config.ini:2:"},
        {"[model]\nlabels = l.txt\n", CNN_EINVAL, "x/l.txt:2: label empty"},
    };
    char *repo = stm_tempdir();
    stm_write_file(repo, "x/l.txt", "a\n\nc\n");
    struct batcher_config defaults = {.max_batch_size = 8,
                                      .max_queue_delay_us = 500,
                                      .max_queue_size = 100,
                                      .instances = 1,
                                      .blas_threads = 1};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        stm_write_file(repo, "x/config.ini", cases[i].text);
        struct repo_model_config mc;
        struct cnn_err err = {0};
        int rc = repo_read_config(repo, "x", &defaults, &mc, &err);
        repo_config_free(&mc);
        ck_assert_msg(rc == cases[i].code, "case %zu: rc %d (%s)", i, rc, err.msg);
        ck_assert_msg(strstr(err.msg, cases[i].where) != NULL, "case %zu: message \"%s\"", i,
                      err.msg);
        ck_assert_msg(strstr(err.msg, repo) == NULL, "case %zu: server path in \"%s\"", i, err.msg);
    }
    /* a FIFO named config.ini is refused without blocking; an oversized file is refused */
    char fifo[4096];
    snprintf(fifo, sizeof fifo, "%s/x/config.ini", repo);
    remove(fifo);
    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    struct repo_model_config mc;
    struct cnn_err err = {0};
    ck_assert_int_eq(repo_read_config(repo, "x", &defaults, &mc, &err), CNN_EIO);
    ck_assert_ptr_nonnull(strstr(err.msg, "not a regular file"));
    remove(fifo);
    char *big = malloc(70000);
    ck_assert(big != NULL);
    memset(big, ';', 69999);
    big[69999] = '\0';
    stm_write_file(repo, "x/config.ini", big);
    free(big);
    ck_assert_int_eq(repo_read_config(repo, "x", &defaults, &mc, &err), CNN_ELIMIT);
    /* a valid file: every key applied, others keep the defaults */
    stm_write_file(repo, "x/config.ini",
                   "# comment\n[batching]\nmax_batch_size = 16\ninstances=2\n"
                   "max_queue_size = 1000000\n[model]\nlabels = l.txt\n");
    stm_write_file(repo, "x/l.txt", "cat\ndog\n");
    ck_assert_int_eq(repo_read_config(repo, "x", &defaults, &mc, &err), 0);
    ck_assert_int_eq(mc.batching.max_batch_size, 16);
    ck_assert_int_eq(mc.batching.instances, 2);
    ck_assert_int_eq(mc.batching.max_queue_size, 1000000);
    ck_assert_int_eq(mc.batching.max_queue_delay_us, 500);
    ck_assert_int_eq(mc.n_labels, 2);
    ck_assert_str_eq(mc.labels[0], "cat");
    ck_assert_str_eq(mc.labels[1], "dog");
    repo_config_free(&mc);
    /* no config file: the defaults */
    ck_assert_int_eq(repo_read_config(repo, "y", &defaults, &mc, &err), 0);
    ck_assert_int_eq(mc.batching.max_batch_size, 8);
    ck_assert_ptr_null(mc.labels);
    repo_config_free(&mc);
    stm_rmtree(repo);
    free(repo);
}
END_TEST

START_TEST(test_names_and_versions_validated)
{
    static const struct {
        const char *s;
        int ok;
    } names[] = {{"resnet18", 1},
                 {"a", 1},
                 {"A.b-c_9", 1},
                 {"", 0},
                 {".hidden", 0},
                 {"a b", 0},
                 {"a/b", 0},
                 {"..", 0},
                 {"é", 0},
                 {"x\n", 0},
                 {"123456789012345678901234567890123456789012345678901234567890123", 1},
                 {"1234567890123456789012345678901234567890123456789012345678901234", 0}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        ck_assert_msg(repo_valid_name(names[i].s) == names[i].ok, "name \"%s\"", names[i].s);
    static const struct {
        const char *s;
        int v;
    } versions[] = {{"1", 1},          {"42", 42}, {"2147483647", 2147483647},
                    {"2147483648", 0}, {"0", 0},   {"01", 0},
                    {"-1", 0},         {"+1", 0},  {"1a", 0},
                    {"", 0},           {" 1", 0}};
    for (size_t i = 0; i < sizeof versions / sizeof versions[0]; i++)
        ck_assert_msg(repo_parse_version(versions[i].s) == versions[i].v, "version \"%s\"",
                      versions[i].s);

    char *repo = stm_tempdir();
    publish(repo, "m", 5, 71, NULL, NULL);
    publish(repo, "m", 1, 72, NULL, NULL);
    publish(repo, ".hidden", 1, 73, NULL, NULL);
    publish(repo, "bad name", 1, 74, NULL, NULL);
    stm_write_file(repo, "m/01/model.cnn", "x");
    stm_write_file(repo, "m/0/model.cnn", "x");
    stm_write_file(repo, "m/v7/model.cnn", "x");
    stm_write_file(repo, "m/9", "a file, not a folder");
    stm_write_file(repo, "file.txt", "not a model folder");
    struct registry_config c = reg_config(repo, 3, NULL);
    struct registry *r = make_registry(&c);
    ck_assert_int_eq(scan(r), 0);
    struct seen s = {0};
    registry_foreach(r, collect, &s);
    ck_assert_int_eq(s.n, 2);
    ck_assert(seen_has(&s, "m/5 live"));
    ck_assert(seen_has(&s, "m/1"));
    registry_destroy(r);
    stm_rmtree(repo);
    free(repo);
}
END_TEST

START_TEST(test_unreadable_repository_and_bad_arguments)
{
    struct cnn_err err = {0};
    struct registry_config c = reg_config("/nonexistent/cnnd-test-repo", 1, NULL);
    struct registry *r = make_registry(&c);
    ck_assert_int_eq(registry_scan(r, &err), CNN_ENOENT);
    ck_assert_int_eq(registry_ready(r), 0);
    registry_destroy(r);
    c.max_versions = 0;
    ck_assert_ptr_null(registry_create(&c, &err));
    ck_assert_int_eq(err.code, CNN_EINVAL);
    c = reg_config(NULL, 1, NULL);
    ck_assert_ptr_null(registry_create(&c, &err));
    registry_destroy(NULL);
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
    tcase_add_test(tc, test_failed_version_keeps_live_is_reported_once_and_retried_when_changed);
    tcase_add_test(tc, test_bad_config_fails_that_model_only);
    tcase_add_test(tc, test_config_overrides_batching_and_labels);
    tcase_add_test(tc, test_config_parser_names_file_line_and_key);
    tcase_add_test(tc, test_names_and_versions_validated);
    tcase_add_test(tc, test_unreadable_repository_and_bad_arguments);
    tcase_add_test(tc, test_removed_live_version_stays_until_a_newer_one);
    tcase_add_test(tc, test_concurrent_scans_load_each_version_once);
    tcase_add_test(tc, test_destroy_drains_queued_requests);
    tcase_add_test(tc, test_publish_cycles_under_concurrent_use);
    suite_add_tcase(s, tc);
    return s;
}
