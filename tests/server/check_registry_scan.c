/* Registry scan suite: failed loads reported once and retried when the file changes, bad
 * configs failing only their model, config overrides (batching, labels, preprocessing), the config
 * parser's errors, name and version validation, an unreadable repository, and the stale
 * temp files a scan removes from a model folder. */
#include "durable.h"
#include "registry.h"
#include "registry_test.h"
#include "repository.h"
#include "server_test_models.h"

#include <check.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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
        {"[batching]\ninstances = 2\n[preprocessing]\nmean = 0.5,x\n", CNN_EINVAL, ":4: key mean"},
        {"[preprocessing]\nstd = 1,0,1\n", CNN_EINVAL, ":2: key std"},
        {"[preprocessing]\nmean = 1,2\n", CNN_EINVAL, ":2: key mean"},
        {"[preprocessing]\nscale = -1\n", CNN_EINVAL, ":2: key scale"},
        {"[preprocessing]\nresize = crop\n", CNN_EINVAL, ":2: key resize"},
        {"[preprocessing]\nresize_short = 0\n", CNN_EINVAL, ":2: key resize_short"},
        {"[preprocessing]\ninvert = 2\n", CNN_EINVAL, ":2: key invert"},
        {"[preprocessing]\ninput_size = 224\n", CNN_EINVAL, ":2: key input_size"},
        {"[preprocessing]\nchannels = bgr\n", CNN_EINVAL, ":2: key channels"},
        {"[preprocessing]\nchannel_order = brg\n", CNN_EINVAL, ":2: key channel_order"},
        {"[preprocessing]\nchannel_order = BGR\n", CNN_EINVAL, ":2: key channel_order"},
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

/* [preprocessing] overrides the model's preprocessing when it loads (scale folded into mean
 * and std); an input_size other than the model's fails that model only. */
START_TEST(test_config_preprocessing_applied)
{
    char *repo = stm_tempdir();
    publish(repo, "p", 1, 63, NULL, NULL);
    stm_write_file(repo, "p/config.ini",
                   "[preprocessing]\nscale = 255\nmean = 127.5\nstd = 63.75\ninvert = 1\n");
    publish(repo, "q", 1, 64, NULL, NULL);
    stm_write_file(repo, "q/config.ini", "[preprocessing]\ninput_size = 1x1\n");
    struct batch_log bl = {.n = 0};
    pthread_mutex_init(&bl.mu, NULL);
    struct registry_config c = reg_config(repo, 1, &bl);
    struct registry *r = make_registry(&c);
    ck_assert_int_eq(scan(r), 1); /* q */
    struct cnn_err err = {0};
    ck_assert_int_eq(acquire_rc(r, "q", 0, &err), CNN_ENOENT);
    struct model_version *mv = acquire(r, "p", 0);
    const struct cnn_preproc *pp = cnn_model_preproc(mv->model);
    ck_assert_int_eq(pp->invert, 1);
    for (int k = 0; k < pp->c; k++) {
        ck_assert_float_eq_tol(pp->mean[k], 0.5f, 1e-7f);
        ck_assert_float_eq_tol(pp->std[k], 0.25f, 1e-7f);
    }
    registry_release(r, mv);
    registry_destroy(r);
    pthread_mutex_destroy(&bl.mu);
    /* repo_apply_preproc on its own: 3 values for a gray input, a crop that does not fit */
    struct cnn_preproc gray = {.c = 1, .h = 8, .w = 8, .std = {1, 1, 1}}, out;
    struct repo_preproc o = {.set = REPO_PP_MEAN, .n_mean = 3};
    ck_assert_int_eq(repo_apply_preproc(&o, &gray, &out, &err), CNN_EINVAL);
    o = (struct repo_preproc){.set = REPO_PP_RESIZE | REPO_PP_RESIZE_SHORT,
                              .resize = CNN_RESIZE_SHORTER_CROP,
                              .resize_short = 4};
    ck_assert_int_eq(repo_apply_preproc(&o, &gray, &out, &err), CNN_EINVAL);
    o.resize_short = 9;
    ck_assert_int_eq(repo_apply_preproc(&o, &gray, &out, &err), 0);
    ck_assert_int_eq(out.resize, CNN_RESIZE_SHORTER_CROP);
    ck_assert_int_eq(out.resize_short, 9);
    ck_assert_float_eq(out.std[0], 1.0f);
    stm_rmtree(repo);
    free(repo);
}
END_TEST

/* channel_order = rgb | bgr parses into the override and is applied on load; bgr on a gray
 * model is refused. */
START_TEST(test_config_channel_order)
{
    char *repo = stm_tempdir();
    struct batcher_config defaults = {.max_batch_size = 8,
                                      .max_queue_delay_us = 500,
                                      .max_queue_size = 100,
                                      .instances = 1,
                                      .blas_threads = 1};
    struct repo_model_config mc;
    struct cnn_err err = {0};
    stm_write_file(repo, "x/config.ini", "[preprocessing]\nchannel_order = bgr\n");
    ck_assert_msg(repo_read_config(repo, "x", &defaults, &mc, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(mc.pp.set, REPO_PP_CHANNEL_ORDER);
    ck_assert_int_eq(mc.pp.bgr, 1);
    struct cnn_preproc rgb = {.c = 3, .h = 8, .w = 8, .mean = {0.1f, 0.2f, 0.3f}, .std = {1, 2, 3}},
                       out;
    ck_assert_msg(repo_apply_preproc(&mc.pp, &rgb, &out, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(out.bgr, 1);
    ck_assert_float_eq(out.mean[0], 0.1f); /* mean/std are not reordered */
    ck_assert_float_eq(out.std[2], 3.0f);
    struct cnn_preproc gray = {.c = 1, .h = 8, .w = 8, .std = {1, 1, 1}};
    ck_assert_int_eq(repo_apply_preproc(&mc.pp, &gray, &out, &err), CNN_EINVAL);
    ck_assert_msg(strstr(err.msg, "3 channels") != NULL, "%s", err.msg);
    repo_config_free(&mc);

    stm_write_file(repo, "x/config.ini", "[preprocessing]\nchannel_order = rgb\n");
    ck_assert_msg(repo_read_config(repo, "x", &defaults, &mc, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(mc.pp.bgr, 0);
    rgb.bgr = 1; /* a BGR model file made RGB by its config */
    ck_assert_int_eq(repo_apply_preproc(&mc.pp, &rgb, &out, &err), 0);
    ck_assert_int_eq(out.bgr, 0);
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

/* Sets REPO/rel's modification time `seconds` into the past. */
static void age_file(const char *repo, const char *rel, int seconds)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/%s", repo, rel);
    struct timespec ts[2];
    clock_gettime(CLOCK_REALTIME, &ts[0]);
    ts[0].tv_sec -= seconds;
    ts[1] = ts[0];
    ck_assert_int_eq(utimensat(AT_FDCWD, p, ts, 0), 0);
}

static int present(const char *repo, const char *rel)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/%s", repo, rel);
    return access(p, F_OK) == 0;
}

START_TEST(test_scan_removes_stale_temp_files_of_a_model_folder)
{
    char *repo = stm_tempdir();
    float in[STM_IN], ref[STM_CLASSES];
    stm_fill(in, STM_IN, 8);
    publish(repo, "m", 1, 81, in, ref);
    const char *stale = "m/.live_version.tmp-4242-0123456789abcdef";
    const char *fresh = "m/.live_version.tmp-4243-fedcba9876543210"; /* a writer at work */
    const char *other = "m/.model.cnn.tmp-123456";                   /* not a durable temp */
    stm_write_file(repo, stale, "3");
    stm_write_file(repo, fresh, "4");
    stm_write_file(repo, other, "partial");
    age_file(repo, stale, CNN_DURABLE_STALE_S + 60);
    age_file(repo, other, CNN_DURABLE_STALE_S + 60);
    struct registry_config c = reg_config(repo, 2, NULL);
    struct registry *r = make_registry(&c);
    ck_assert_int_eq(scan(r), 0);
    ck_assert(!present(repo, stale));
    ck_assert(present(repo, fresh));
    ck_assert(present(repo, other));
    struct model_version *mv = acquire(r, "m", 0);
    ck_assert_int_eq(mv->version, 1);
    check_serves(mv, in, ref);
    registry_release(r, mv);
    registry_destroy(r);
    stm_rmtree(repo);
    free(repo);
}
END_TEST

Suite *registry_scan_suite(void)
{
    Suite *s = suite_create("registry_scan");
    TCase *tc = tcase_create("scan");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_failed_version_keeps_live_is_reported_once_and_retried_when_changed);
    tcase_add_test(tc, test_bad_config_fails_that_model_only);
    tcase_add_test(tc, test_config_overrides_batching_and_labels);
    tcase_add_test(tc, test_config_parser_names_file_line_and_key);
    tcase_add_test(tc, test_config_preprocessing_applied);
    tcase_add_test(tc, test_config_channel_order);
    tcase_add_test(tc, test_names_and_versions_validated);
    tcase_add_test(tc, test_unreadable_repository_and_bad_arguments);
    tcase_add_test(tc, test_scan_removes_stale_temp_files_of_a_model_folder);
    suite_add_tcase(s, tc);
    return s;
}
