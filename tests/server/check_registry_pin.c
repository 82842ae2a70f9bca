/* Registry pin suite: activating an older version by hand keeps it live while newer
 * versions are published and scanned, survives a new registry on the same repository
 * (restart), is refused for unknown or broken versions without changing anything, and is
 * removed by publish / activate(0); unload and load by name.  Which model serves is checked
 * by comparing its outputs with the in-memory model that was saved as that version. */
#include "registry.h"
#include "server_test_models.h"

#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct registry *open_registry(const char *repo, int max_versions)
{
    struct registry_config c = {.repository = repo, .max_versions = max_versions};
    c.batching = (struct batcher_config){.max_batch_size = 4,
                                         .max_queue_delay_us = 100,
                                         .max_queue_size = 16,
                                         .instances = 1,
                                         .blas_threads = 1};
    struct cnn_err err = {0};
    struct registry *r = registry_create(&c, &err);
    ck_assert_msg(r != NULL, "%s", err.msg);
    ck_assert_int_eq(registry_scan(r, &err), 0);
    return r;
}

/* The version `version` (0 = live) of m answers as the model saved from seed. */
static int serves(struct registry *r, int version, int want_version, uint64_t seed)
{
    struct model_version *mv = NULL;
    struct cnn_err err = {0};
    if (registry_acquire(r, "m", version, &mv, &err) != 0)
        return 0;
    float in[STM_IN], got[STM_CLASSES], want[STM_CLASSES];
    stm_fill(in, STM_IN, 77);
    stm_forward_one(mv->model, in, got);
    struct cnn_model *ref = stm_model(seed);
    stm_forward_one(ref, in, want);
    cnn_model_destroy(ref);
    int ok = mv->version == want_version && stm_max_diff(got, want, STM_CLASSES) < 1e-6f;
    registry_release(r, mv);
    return ok;
}

static void save(const char *repo, int version, uint64_t seed)
{
    struct cnn_model *m = stm_model(seed);
    stm_publish(m, repo, "m", version);
    cnn_model_destroy(m);
}

static void read_pin_file(const char *repo, char *buf, size_t cap)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/m/live_version", repo);
    buf[0] = '\0';
    FILE *f = fopen(path, "r");
    if (f) {
        if (!fgets(buf, (int)cap, f))
            buf[0] = '\0';
        fclose(f);
    }
}

START_TEST(test_pinned_version_stays_live_while_newer_ones_arrive)
{
    char *repo = stm_tempdir();
    save(repo, 1, 101);
    save(repo, 2, 102);
    struct registry *r = open_registry(repo, 2);
    struct cnn_err err = {0};
    ck_assert(serves(r, 0, 2, 102));
    ck_assert_msg(registry_activate(r, "m", 1, &err) == 0, "%s", err.msg); /* roll back */
    ck_assert(serves(r, 0, 1, 101));
    ck_assert_int_eq(registry_pinned(r, "m"), 1);
    char pin[32];
    read_pin_file(repo, pin, sizeof pin);
    ck_assert_str_eq(pin, "1\n");
    /* a newer version is loaded by the scan (one free slot) but does not go live */
    save(repo, 3, 103);
    ck_assert_int_eq(registry_scan(r, &err), 0);
    ck_assert(serves(r, 0, 1, 101));
    ck_assert(serves(r, 3, 3, 103));
    ck_assert(!serves(r, 2, 2, 102)); /* pushed out of the two slots */
    /* restart: a new registry on the same repository keeps the pin */
    registry_destroy(r);
    r = open_registry(repo, 2);
    ck_assert(serves(r, 0, 1, 101));
    ck_assert_int_eq(registry_pinned(r, "m"), 1);
    /* activate(0) removes the pin: the newest is live again */
    ck_assert_int_eq(registry_activate(r, "m", 0, &err), 0);
    ck_assert(serves(r, 0, 3, 103));
    ck_assert_int_eq(registry_pinned(r, "m"), 0);
    read_pin_file(repo, pin, sizeof pin);
    ck_assert_str_eq(pin, "");
    registry_destroy(r);
    stm_rmtree(repo);
    free(repo);
}
END_TEST

START_TEST(test_pin_with_one_slot_loads_only_the_pinned_version)
{
    char *repo = stm_tempdir();
    save(repo, 1, 201);
    save(repo, 2, 202);
    struct registry *r = open_registry(repo, 1);
    struct cnn_err err = {0};
    ck_assert(serves(r, 0, 2, 202));
    ck_assert_int_eq(registry_activate(r, "m", 1, &err), 0); /* v1 not loaded: loaded now */
    ck_assert(serves(r, 0, 1, 201));
    ck_assert(!serves(r, 2, 2, 202));
    save(repo, 3, 203);
    ck_assert_int_eq(registry_scan(r, &err), 0);
    ck_assert(serves(r, 0, 1, 201));
    ck_assert(!serves(r, 3, 3, 203));
    /* publishing version 3 removes the pin and makes it live */
    ck_assert_msg(registry_publish(r, "m", 3, &err) == 0, "%s", err.msg);
    ck_assert(serves(r, 0, 3, 203));
    ck_assert_int_eq(registry_pinned(r, "m"), 0);
    registry_destroy(r);
    stm_rmtree(repo);
    free(repo);
}
END_TEST

START_TEST(test_activate_refuses_unknown_and_broken_versions_changing_nothing)
{
    char *repo = stm_tempdir();
    save(repo, 1, 301);
    save(repo, 2, 302);
    struct registry *r = open_registry(repo, 2);
    struct cnn_err err = {0};
    ck_assert_int_eq(registry_activate(r, "m", 1, &err), 0);
    ck_assert_int_eq(registry_activate(r, "m", 9, &err), CNN_ENOENT);
    ck_assert_int_eq(registry_activate(r, "nope", 1, &err), CNN_ENOENT);
    ck_assert_int_eq(registry_activate(r, "../m", 1, &err), CNN_EINVAL);
    stm_write_file(repo, "m/4/model.cnn", "not a model file at all");
    int rc = registry_activate(r, "m", 4, &err);
    ck_assert_int_ne(rc, 0);
    ck_assert_msg(strstr(err.msg, "version 4") != NULL, "%s", err.msg);
    char pin[32];
    read_pin_file(repo, pin, sizeof pin);
    ck_assert_str_eq(pin, "1\n"); /* restored */
    ck_assert(serves(r, 0, 1, 301));
    /* a pin file that is not a number is ignored: the newest loadable version is live */
    stm_write_file(repo, "m/live_version", "abc\n");
    ck_assert_int_eq(registry_scan(r, &err), 0);
    ck_assert(serves(r, 0, 2, 302));
    ck_assert_int_eq(registry_pinned(r, "m"), 0);
    registry_destroy(r);
    stm_rmtree(repo);
    free(repo);
}
END_TEST

static void count_live(const struct model_version *mv, int is_live, void *arg)
{
    int *live = arg;
    if (is_live)
        *live = mv->version;
}

START_TEST(test_unload_and_load_by_name)
{
    char *repo = stm_tempdir();
    save(repo, 1, 401);
    save(repo, 2, 402);
    struct registry *r = open_registry(repo, 2);
    struct cnn_err err = {0};
    ck_assert_int_eq(registry_activate(r, "m", 1, &err), 0);
    int live = 0;
    registry_foreach(r, count_live, &live);
    ck_assert_int_eq(live, 1); /* listings see the pinned version as live */
    ck_assert_int_eq(registry_unload_model(r, "m", &err), 0);
    struct model_version *mv = NULL;
    ck_assert_int_eq(registry_acquire(r, "m", 0, &mv, &err), CNN_ENOENT);
    ck_assert_ptr_nonnull(strstr(err.msg, "unloaded"));
    ck_assert_int_eq(registry_scan(r, &err), 0); /* scans leave it unloaded */
    ck_assert(!serves(r, 0, 1, 401));
    ck_assert_int_eq(registry_ready(r), 0);
    ck_assert_int_eq(registry_unload_model(r, "nope", &err), CNN_ENOENT);
    ck_assert_int_eq(registry_load_model(r, "nope", &err), CNN_ENOENT);
    ck_assert_int_eq(registry_load_model(r, "m", &err), 0);
    ck_assert(serves(r, 0, 1, 401)); /* the pin still holds */
    registry_destroy(r);
    stm_rmtree(repo);
    free(repo);
}
END_TEST

Suite *registry_pin_suite(void)
{
    Suite *s = suite_create("registry_pin");
    TCase *tc = tcase_create("registry_pin");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_pinned_version_stays_live_while_newer_ones_arrive);
    tcase_add_test(tc, test_pin_with_one_slot_loads_only_the_pinned_version);
    tcase_add_test(tc, test_activate_refuses_unknown_and_broken_versions_changing_nothing);
    tcase_add_test(tc, test_unload_and_load_by_name);
    suite_add_tcase(s, tc);
    return s;
}
