/* Jobs suite: fine-tune jobs end to end on the tiny test model and a generated IDX dataset
 * (four classes = four bright quadrants): a job that passes its gate publishes version 2
 * and makes it live (its accuracy checked here with plain forward passes), a gate of 1.01
 * rejects without a version, a running job is cancelled within one step, a queued one at
 * once, a full queue refuses, destroy cancels a running job; publishing from two threads
 * gives distinct complete versions and leftovers of a killed publish are removed; the
 * label <-> folder name encoding; the training metrics on /metrics. */
#include "dataset.h"
#include "examples.h"
#include "jobs.h"
#include "metrics.h"
#include "publish.h"
#include "registry.h"
#include "server_test_models.h"

#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define N_ITEMS 240

/* Class k of image i: bright quadrant k (200 +- noise) on a dark background (20 +- noise). */
static void make_image(int i, int k, uint8_t *px)
{
    uint64_t s = (uint64_t)i * 2654435761u + 17;
    for (int y = 0; y < STM_H; y++)
        for (int x = 0; x < STM_W; x++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            int q = (y >= STM_H / 2) * 2 + (x >= STM_W / 2);
            int noise = (int)((s >> 33) % 41) - 20;
            px[y * STM_W + x] = (uint8_t)((q == k ? 200 : 30) + noise);
        }
}

static void be32(FILE *f, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    ck_assert_int_eq(fwrite(b, 1, 4, f), 4);
}

/* dir/train-images-idx3-ubyte and dir/train-labels-idx1-ubyte. */
static void write_idx(const char *dir)
{
    char p[PATH_MAX];
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    snprintf(p, sizeof p, "%s/train-images-idx3-ubyte", dir);
    FILE *f = fopen(p, "wb");
    be32(f, 0x803);
    be32(f, N_ITEMS);
    be32(f, STM_H);
    be32(f, STM_W);
    for (int i = 0; i < N_ITEMS; i++) {
        uint8_t px[STM_H * STM_W];
        make_image(i, i % 4, px);
        ck_assert_int_eq(fwrite(px, 1, sizeof px, f), sizeof px);
    }
    fclose(f);
    snprintf(p, sizeof p, "%s/train-labels-idx1-ubyte", dir);
    f = fopen(p, "wb");
    be32(f, 0x801);
    be32(f, N_ITEMS);
    for (int i = 0; i < N_ITEMS; i++)
        fputc(i % 4, f);
    fclose(f);
}

struct fixture {
    char *repo, *data;
    char set[PATH_MAX];
    struct registry *reg;
    struct metrics *metrics;
    struct jobs *jobs;
};

static void setup(struct fixture *fx, int queue_size)
{
    fx->repo = stm_tempdir();
    fx->data = stm_tempdir();
    struct cnn_model *m = stm_model(5);
    stm_publish(m, fx->repo, "m", 1);
    cnn_model_destroy(m);
    snprintf(fx->set, sizeof fx->set, "%s/set", fx->data);
    write_idx(fx->set);
    struct registry_config rc = {.repository = fx->repo, .max_versions = 1};
    rc.batching = (struct batcher_config){.max_batch_size = 4,
                                          .max_queue_delay_us = 100,
                                          .max_queue_size = 16,
                                          .instances = 1,
                                          .blas_threads = 1};
    struct cnn_err err = {0};
    fx->reg = registry_create(&rc, &err);
    ck_assert_msg(fx->reg != NULL, "%s", err.msg);
    ck_assert_int_eq(registry_scan(fx->reg, &err), 0);
    fx->metrics = metrics_create();
    struct jobs_config jc = {.repository = fx->repo,
                             .max_jobs = 1,
                             .queue_size = queue_size,
                             .nice = 0,
                             .reg = fx->reg,
                             .metrics = fx->metrics,
                             .version = "test"};
    fx->jobs = jobs_create(&jc, &err);
    ck_assert_msg(fx->jobs != NULL, "%s", err.msg);
}

static void teardown(struct fixture *fx)
{
    jobs_destroy(fx->jobs);
    registry_destroy(fx->reg);
    metrics_destroy(fx->metrics);
    stm_rmtree(fx->repo);
    stm_rmtree(fx->data);
    free(fx->repo);
    free(fx->data);
}

static long submit(struct fixture *fx, const char *body, int want_rc)
{
    struct job_spec spec;
    struct cnn_err err = {0};
    ck_assert_msg(job_spec_parse(body, strlen(body), &spec, &err) == 0, "%s", err.msg);
    long id = 0;
    int rc = jobs_submit(fx->jobs, "m", &spec, fx->set, &id, &err);
    job_spec_free(&spec);
    ck_assert_msg(rc == want_rc, "submit: rc %d (%s), expected %d", rc, err.msg, want_rc);
    return id;
}

static const char *state_of(json_t *j)
{
    return json_string_value(json_object_get(j, "state"));
}

static long int_of(json_t *j, const char *key)
{
    return (long)json_integer_value(json_object_get(j, key));
}

/* Polls until the job is final, or until it is running with at least min_steps steps
 * (min_steps > 0).  Returns the status (caller decrefs). */
static json_t *wait_job(struct fixture *fx, long id, long min_steps)
{
    for (int i = 0; i < 6000; i++) {
        json_t *j = jobs_status_json(fx->jobs, id);
        ck_assert_ptr_nonnull(j);
        const char *s = state_of(j);
        if (strcmp(s, "queued") != 0 && strcmp(s, "running") != 0)
            return j;
        if (min_steps > 0 && strcmp(s, "running") == 0 && int_of(j, "total_step") >= min_steps)
            return j;
        json_decref(j);
        stm_sleep_ms(10);
    }
    ck_abort_msg("job %ld did not finish", id);
    return NULL;
}

/* Fraction of images idx[0..n) (NULL: all N_ITEMS) the live model classifies right (plain
 * forward passes); *version (optional) the live version. */
static double live_accuracy_on(struct fixture *fx, const int *idx, int n, int *version)
{
    struct model_version *mv = NULL;
    struct cnn_err err = {0};
    ck_assert_int_eq(registry_acquire(fx->reg, "m", 0, &mv, &err), 0);
    if (version)
        *version = mv->version;
    int right = 0;
    for (int k = 0; k < n; k++) {
        int i = idx ? idx[k] : k;
        uint8_t px[STM_IN];
        float in[STM_IN], out[STM_CLASSES];
        make_image(i, i % 4, px);
        for (int q = 0; q < STM_IN; q++)
            in[q] = px[q] / 255.0f;
        stm_forward_one(mv->model, in, out);
        int best = 0;
        for (int c = 1; c < STM_CLASSES; c++)
            best = out[c] > out[best] ? c : best;
        right += best == i % 4;
    }
    registry_release(fx->reg, mv);
    return (double)right / n;
}

static double live_accuracy(struct fixture *fx, int *version)
{
    return live_accuracy_on(fx, NULL, N_ITEMS, version);
}

static int exists(const char *repo, const char *rel)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/%s", repo, rel);
    return access(p, F_OK) == 0;
}

/* Accuracy of the live model on the validation items of a split (fraction, seed) of the
 * dataset, with plain forward passes: the reference for the parent's score. */
static double live_val_accuracy(struct fixture *fx, double fraction, uint64_t seed)
{
    struct cnn_dataset *d = NULL;
    struct cnn_err err = {0};
    struct model_version *mv = NULL;
    ck_assert_int_eq(registry_acquire(fx->reg, "m", 0, &mv, &err), 0);
    ck_assert_msg(cnn_dataset_open(fx->set, CNN_DATASET_IDX, "train",
                                   cnn_model_preproc(mv->model), &d, &err) == 0,
                  "%s", err.msg);
    registry_release(fx->reg, mv);
    int tr[N_ITEMS], va[N_ITEMS], nt = 0, nv = 0;
    ck_assert_int_eq(cnn_dataset_split(d, fraction, seed, tr, &nt, va, &nv, &err), 0);
    cnn_dataset_destroy(d);
    return live_accuracy_on(fx, va, nv, NULL);
}

static double real_of(json_t *j, const char *key)
{
    json_t *v = json_object_get(j, key);
    ck_assert_msg(json_is_real(v), "%s is not a number", key);
    return json_real_value(v);
}

START_TEST(test_job_trains_passes_gate_and_publishes_live_version)
{
    struct fixture fx;
    setup(&fx, 1);
    int v0;
    double acc0 = live_accuracy(&fx, &v0);
    double parent_ref = live_val_accuracy(&fx, 0.25, 3);
    long id = submit(&fx,
                     "{\"dataset\":{\"format\":\"idx\",\"path\":\"set\"},\"epochs\":8,"
                     "\"batch_size\":16,\"learning_rate\":0.1,\"validation_split\":0.25,"
                     "\"min_accuracy\":0.9,\"seed\":3}",
                     0);
    json_t *j = wait_job(&fx, id, 0);
    ck_assert_msg(strcmp(state_of(j), "succeeded") == 0, "%s: %s", state_of(j),
                  json_string_value(json_object_get(j, "error")));
    ck_assert_int_eq(int_of(j, "version"), 2);
    ck_assert_int_eq(int_of(j, "parent_version"), 1);
    ck_assert_int_eq((int)json_array_size(json_object_get(j, "history")), 8);
    ck_assert_int_eq(int_of(j, "val_items"), N_ITEMS / 4);
    double va = json_real_value(json_object_get(j, "val_accuracy"));
    ck_assert_msg(va >= 0.9, "val acc %g", va);
    double pva = real_of(j, "parent_val_accuracy"); /* default gate: better than the parent */
    ck_assert_msg(pva < va, "parent %.4f, candidate %.4f", pva, va);
    ck_assert_msg(fabs(pva - parent_ref) < 1e-9, "parent %.4f, reference %.4f", pva, parent_ref);
    ck_assert_str_eq(json_string_value(json_object_get(j, "gate")), "parent");
    long steps = int_of(j, "total_steps");
    ck_assert_int_eq(int_of(j, "total_step"), steps);
    json_t *tr = json_object_get(j, "transitions");
    ck_assert_int_eq((int)json_array_size(tr), 3);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(tr, 1), "state")), "running");
    json_decref(j);
    int v;
    double acc = live_accuracy(&fx, &v);
    ck_assert_int_eq(v, 2);
    ck_assert_msg(acc >= 0.9 && acc > acc0, "live accuracy %g (before %g)", acc, acc0);
    ck_assert(exists(fx.repo, "m/2/model.cnn"));
    /* training metrics */
    struct metrics_gauges g = {0};
    size_t len = 0;
    char *text = metrics_render(fx.metrics, &g, &len);
    char want[64];
    snprintf(want, sizeof want, "cnnd_train_steps_total %ld\n", steps);
    ck_assert_msg(strstr(text, want) != NULL, "no '%s'", want);
    ck_assert_ptr_nonnull(strstr(text, "cnnd_publish_total 1\n"));
    ck_assert_ptr_nonnull(strstr(text, "cnnd_jobs{state=\"succeeded\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(text, "cnnd_jobs{state=\"running\"} 0\n"));
    ck_assert_ptr_null(strstr(text, "cnnd_train_loss NaN"));
    free(text);
    teardown(&fx);
}
END_TEST

START_TEST(test_gate_not_met_rejects_and_publishes_nothing)
{
    struct fixture fx;
    setup(&fx, 1);
    long id = submit(&fx,
                     "{\"dataset\":{\"format\":\"idx\",\"path\":\"set\"},\"epochs\":1,"
                     "\"min_accuracy\":1.01}",
                     0);
    json_t *j = wait_job(&fx, id, 0);
    ck_assert_str_eq(state_of(j), "rejected");
    ck_assert(json_is_null(json_object_get(j, "version")));
    ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(j, "error")), "min_accuracy"));
    json_decref(j);
    int v;
    live_accuracy(&fx, &v);
    ck_assert_int_eq(v, 1);
    ck_assert(!exists(fx.repo, "m/2"));
    ck_assert(exists(fx.repo, "m/.rejected-job1/model.cnn"));
    teardown(&fx);
}
END_TEST

/* Trains version 2 well (gate min_accuracy), then returns the fixture with it live. */
static void publish_good_v2(struct fixture *fx)
{
    long id = submit(fx,
                     "{\"dataset\":{\"format\":\"idx\",\"path\":\"set\"},\"epochs\":8,"
                     "\"batch_size\":16,\"learning_rate\":0.1,\"validation_split\":0.25,"
                     "\"gate\":\"min_accuracy\",\"seed\":3}",
                     0);
    json_t *j = wait_job(fx, id, 0);
    ck_assert_msg(strcmp(state_of(j), "succeeded") == 0, "%s: %s", state_of(j),
                  json_string_value(json_object_get(j, "error")));
    ck_assert(json_is_null(json_object_get(j, "parent_val_accuracy"))); /* not scored */
    json_decref(j);
}

/* The default gate: a candidate worse than the version it would replace, on the same
 * validation items, is rejected with the loss in the message; nothing is published. */
START_TEST(test_default_gate_rejects_a_candidate_worse_than_the_parent)
{
    struct fixture fx;
    setup(&fx, 1);
    publish_good_v2(&fx);
    int v;
    double parent_ref = live_val_accuracy(&fx, 0.25, 3);
    live_accuracy(&fx, &v);
    ck_assert_int_eq(v, 2);
    /* weight decay 1 at learning rate 1 wipes the weights out: far worse, but finite */
    long id = submit(&fx,
                     "{\"dataset\":{\"format\":\"idx\",\"path\":\"set\"},\"epochs\":2,"
                     "\"batch_size\":16,\"learning_rate\":1,\"momentum\":0,"
                     "\"weight_decay\":1,\"validation_split\":0.25,\"seed\":3}",
                     0);
    json_t *j = wait_job(&fx, id, 0);
    const char *e = json_string_value(json_object_get(j, "error"));
    ck_assert_msg(strcmp(state_of(j), "rejected") == 0, "%s: %s", state_of(j), e);
    ck_assert_str_eq(json_string_value(json_object_get(j, "gate")), "parent");
    double pva = real_of(j, "parent_val_accuracy"), va = real_of(j, "val_accuracy");
    ck_assert_msg(fabs(pva - parent_ref) < 1e-9, "parent %.4f, reference %.4f", pva, parent_ref);
    ck_assert_msg(va < pva, "candidate %.4f, parent %.4f", va, pva);
    ck_assert(fabs(real_of(j, "val_accuracy_change") - (va - pva)) < 1e-12);
    char want[96];
    snprintf(want, sizeof want, "is %.4f below the parent's %.4f (version 2", pva - va, pva);
    ck_assert_msg(strstr(e, want) != NULL, "'%s' lacks '%s'", e, want);
    json_decref(j);
    live_accuracy(&fx, &v);
    ck_assert_int_eq(v, 2);
    ck_assert(!exists(fx.repo, "m/3"));
    ck_assert(exists(fx.repo, "m/.rejected-job2/model.cnn"));
    teardown(&fx);
}
END_TEST

/* The absolute gate still works: gate "min_accuracy" publishes the same worse candidate
 * when min_accuracy allows it, and rejects by min_accuracy alone (message: by how much). */
START_TEST(test_min_accuracy_gate_is_absolute_and_still_available)
{
    struct fixture fx;
    setup(&fx, 2);
    publish_good_v2(&fx);
    const char *worse = "{\"dataset\":{\"format\":\"idx\",\"path\":\"set\"},\"epochs\":2,"
                        "\"batch_size\":16,\"learning_rate\":1,\"momentum\":0,"
                        "\"weight_decay\":1,\"validation_split\":0.25,\"seed\":3,"
                        "\"gate\":\"min_accuracy\"}";
    long id = submit(&fx, worse, 0);
    json_t *j = wait_job(&fx, id, 0);
    ck_assert_msg(strcmp(state_of(j), "succeeded") == 0, "%s: %s", state_of(j),
                  json_string_value(json_object_get(j, "error")));
    ck_assert_int_eq(int_of(j, "version"), 3);
    json_decref(j);
    id = submit(&fx,
                "{\"dataset\":{\"format\":\"idx\",\"path\":\"set\"},\"epochs\":1,"
                "\"gate\":\"min_accuracy\",\"min_accuracy\":1.01}",
                0);
    j = wait_job(&fx, id, 0);
    ck_assert_str_eq(state_of(j), "rejected");
    const char *e = json_string_value(json_object_get(j, "error"));
    char want[64];
    snprintf(want, sizeof want, "is below min_accuracy 1.01 (by %.4f)",
             1.01 - real_of(j, "val_accuracy"));
    ck_assert_msg(strstr(e, want) && !strstr(e, "parent"), "'%s' lacks '%s'", e, want);
    json_decref(j);
    int v;
    live_accuracy(&fx, &v);
    ck_assert_int_eq(v, 3);
    teardown(&fx);
}
END_TEST

START_TEST(test_cancel_running_within_one_step_queued_at_once_and_queue_limit)
{
    struct fixture fx;
    setup(&fx, 1);
    const char *longjob = "{\"dataset\":{\"format\":\"idx\",\"path\":\"set\"},\"epochs\":1000,"
                          "\"batch_size\":2}";
    long a = submit(&fx, longjob, 0);
    json_decref(wait_job(&fx, a, 5));
    long b = submit(&fx, longjob, 0); /* queued behind a */
    submit(&fx, longjob, CNN_EBUSY);  /* 1 running + 1 queued = full */
    enum job_state st;
    struct cnn_err err = {0};
    ck_assert_int_eq(jobs_cancel(fx.jobs, b, &st, &err), 0);
    ck_assert_int_eq(st, JOB_CANCELLED);
    ck_assert_int_eq(jobs_cancel(fx.jobs, a, &st, &err), 0);
    ck_assert_int_eq(st, JOB_RUNNING);
    json_t *j = wait_job(&fx, a, 0);
    ck_assert_str_eq(state_of(j), "cancelled");
    long asked = int_of(j, "cancel_step"), done = int_of(j, "total_step");
    ck_assert_msg(asked >= 5 && done - asked <= 1, "asked at %ld, stopped at %ld", asked, done);
    ck_assert(json_is_null(json_object_get(j, "version")));
    json_decref(j);
    ck_assert(!exists(fx.repo, "m/2"));
    ck_assert_int_eq(jobs_cancel(fx.jobs, a, &st, &err), CNN_EBUSY);
    ck_assert_int_eq(jobs_cancel(fx.jobs, 99, &st, &err), CNN_ENOENT);
    json_t *list = jobs_list_json(fx.jobs);
    ck_assert_int_eq((int)json_array_size(json_object_get(list, "jobs")), 2);
    json_decref(list);
    /* destroy with a job running cancels it and returns */
    long c = submit(&fx, longjob, 0);
    json_decref(wait_job(&fx, c, 3));
    int64_t t0 = stm_now_ns();
    teardown(&fx);
    ck_assert_msg(stm_now_ns() - t0 < 5000000000LL, "destroy took too long");
}
END_TEST

struct pub_arg {
    const char *repo;
    const struct cnn_model *m;
    int versions[5];
};

static void *publisher(void *p)
{
    struct pub_arg *a = p;
    for (int i = 0; i < 5; i++) {
        struct cnn_err err = {0};
        ck_assert_msg(publish_version(a->repo, "m", a->m, "t", &a->versions[i], &err) == 0, "%s",
                      err.msg);
    }
    return NULL;
}

START_TEST(test_concurrent_publishes_get_distinct_complete_versions)
{
    char *repo = stm_tempdir();
    struct cnn_model *m = stm_model(9);
    stm_publish(m, repo, "m", 1);
    stm_write_file(repo, "m/.publish-old-1-0/model.cnn.tmp", "half a model");
    struct pub_arg a = {repo, m, {0}}, b = {repo, m, {0}};
    pthread_t ta, tb;
    pthread_create(&ta, NULL, publisher, &a);
    pthread_create(&tb, NULL, publisher, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    int seen[12] = {0};
    for (int i = 0; i < 5; i++) {
        ck_assert(a.versions[i] >= 2 && a.versions[i] <= 11);
        ck_assert(b.versions[i] >= 2 && b.versions[i] <= 11);
        seen[a.versions[i]]++;
        seen[b.versions[i]]++;
    }
    for (int v = 2; v <= 11; v++) {
        ck_assert_int_eq(seen[v], 1);
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/m/%d/model.cnn", repo, v);
        struct cnn_model *back = NULL;
        struct cnn_err err = {0};
        ck_assert_msg(cnn_model_load(p, &back, &err) == 0, "%s: %s", p, err.msg);
        cnn_model_destroy(back);
    }
    ck_assert_int_eq(publish_highest_version(repo, "m"), 11);
    ck_assert_int_eq(publish_cleanup(repo), 1); /* only the leftover */
    ck_assert(!exists(repo, "m/.publish-old-1-0"));
    DIR *d = opendir(repo);
    ck_assert_ptr_nonnull(d);
    closedir(d);
    cnn_model_destroy(m);
    stm_rmtree(repo);
    free(repo);
}
END_TEST

/* A replica starting on a shared repository must not remove another replica's publish in
 * progress: a temp folder whose lock is held (as publish_version holds it until the rename)
 * stays; once the lock is gone (the publisher was killed) the next cleanup removes it. */
START_TEST(test_cleanup_leaves_a_publish_in_progress_alone)
{
    char *repo = stm_tempdir();
    struct cnn_model *m = stm_model(9);
    stm_publish(m, repo, "m", 1);
    stm_write_file(repo, "m/.publish-job3-77-abc/model.cnn.tmp", "half a model");
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/m/.publish-job3-77-abc", repo);
    int fd = open(p, O_RDONLY | O_DIRECTORY);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(flock(fd, LOCK_EX), 0); /* another open file description: a publisher */
    ck_assert_int_eq(publish_cleanup(repo), 0);
    ck_assert(exists(repo, "m/.publish-job3-77-abc"));
    close(fd); /* the publisher died */
    ck_assert_int_eq(publish_cleanup(repo), 1);
    ck_assert(!exists(repo, "m/.publish-job3-77-abc"));
    ck_assert(exists(repo, "m/1/model.cnn"));
    cnn_model_destroy(m);
    stm_rmtree(repo);
    free(repo);
}
END_TEST

START_TEST(test_label_folder_names_round_trip)
{
    static const char *const labels[] = {"T-shirt/top", "Ankle boot",  ".hidden", "50%",
                                         "a\\b",        "caf\xc3\xa9", "x"};
    for (size_t i = 0; i < sizeof labels / sizeof labels[0]; i++) {
        char dir[256], back[128];
        ck_assert_int_eq(examples_label_dir(labels[i], dir, sizeof dir), 0);
        ck_assert_msg(!strchr(dir, '/') && dir[0] != '.', "%s -> %s", labels[i], dir);
        ck_assert_int_eq(examples_dir_label(dir, back, sizeof back), 0);
        ck_assert_str_eq(back, labels[i]);
    }
    char dir[64];
    examples_label_dir("T-shirt/top", dir, sizeof dir);
    ck_assert_str_eq(dir, "T-shirt%2Ftop");
    ck_assert_int_eq(examples_label_dir("", dir, sizeof dir), -1);
    ck_assert_int_eq(examples_label_dir("abcdef", dir, 4), -1);
    char back[16];
    ck_assert_int_eq(examples_dir_label("bad%zz", back, sizeof back), -1);
    ck_assert_int_eq(examples_dir_label("nul%00", back, sizeof back), -1);
}
END_TEST

Suite *jobs_suite(void)
{
    Suite *s = suite_create("jobs");
    TCase *tc = tcase_create("jobs");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_job_trains_passes_gate_and_publishes_live_version);
    tcase_add_test(tc, test_gate_not_met_rejects_and_publishes_nothing);
    tcase_add_test(tc, test_default_gate_rejects_a_candidate_worse_than_the_parent);
    tcase_add_test(tc, test_min_accuracy_gate_is_absolute_and_still_available);
    tcase_add_test(tc, test_cancel_running_within_one_step_queued_at_once_and_queue_limit);
    tcase_add_test(tc, test_concurrent_publishes_get_distinct_complete_versions);
    tcase_add_test(tc, test_cleanup_leaves_a_publish_in_progress_alone);
    tcase_add_test(tc, test_label_folder_names_round_trip);
    suite_add_tcase(s, tc);
    return s;
}
