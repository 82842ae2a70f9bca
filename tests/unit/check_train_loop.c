/* Train-loop cases of suite `dataset` (added by check_dataset.c): epochs over a synthetic
 * separable IDX dataset the test writes, reproducibility per seed, cancel at a step
 * boundary, argument checks, the confusion matrix against per-item forward passes, and the
 * `cnn train` / `cnn eval` tools end to end (SIGINT writes nothing). */
#include "dataset.h"
#include "session.h"
#include "test_nets.h"
#include "test_util.h"
#include "train_loop.h"

#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

TCase *train_loop_tcase(void);

static char dir[64];

static void write_file(const char *path, const uint8_t *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(b, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

/* n items of side x side pixels, 4 classes: noise 0..79 and a 3x3 blob of 200..255 inside
 * quadrant (label) -- top-left, top-right, bottom-left, bottom-right.  Written as
 * <dir>/<split>-{images-idx3,labels-idx1}-ubyte. */
static void write_quadrants(const char *split, int n, int side, uint64_t seed)
{
    size_t plane = (size_t)side * side;
    uint8_t *img = malloc(16 + (size_t)n * plane), *lab = malloc(8 + (size_t)n);
    uint64_t s = seed;
#define RND() ((s = s * 6364136223846793005ull + 1442695040888963407ull) >> 33)
    memcpy(img, "\0\0\x08\x03", 4);
    put_be32(img + 4, (uint32_t)n);
    put_be32(img + 8, (uint32_t)side);
    put_be32(img + 12, (uint32_t)side);
    memcpy(lab, "\0\0\x08\x01", 4);
    put_be32(lab + 4, (uint32_t)n);
    int half = side / 2;
    for (int i = 0; i < n; i++) {
        int k = i % 4;
        uint8_t *p = img + 16 + (size_t)i * plane;
        for (size_t q = 0; q < plane; q++)
            p[q] = (uint8_t)(RND() % 80);
        int oy = (k / 2) * half + (int)(RND() % (uint64_t)(half - 2));
        int ox = (k % 2) * half + (int)(RND() % (uint64_t)(half - 2));
        for (int y = 0; y < 3; y++)
            for (int x = 0; x < 3; x++)
                p[(oy + y) * side + ox + x] = (uint8_t)(200 + RND() % 56);
        lab[8 + i] = (uint8_t)k;
    }
#undef RND
    char path[256];
    snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte", dir, split);
    write_file(path, img, 16 + (size_t)n * plane);
    snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte", dir, split);
    write_file(path, lab, 8 + (size_t)n);
    free(img);
    free(lab);
}

static void setup(void)
{
    make_tmpdir(dir, sizeof dir);
}

static void teardown(void)
{
    rm_tree(dir);
}

/* The 4-class 1x8x8 test net, compiled, and a trainer for it. */
struct rig {
    struct cnn_model *m;
    struct cnn_trainer *t;
    struct cnn_dataset *d;
    int tr[512], va[512], nt, nv;
};

static void rig_open(struct rig *r, int n, uint64_t data_seed, uint64_t seed, int batch,
                     long spe_epochs, const atomic_int *cancel)
{
    struct cnn_err err = {0};
    r->m = test_net_small(7);
    ck_assert_msg(cnn_model_compile(r->m, &err) == 0, "%s", err.msg);
    write_quadrants("train", n, 8, data_seed);
    ck_assert_msg(
        cnn_dataset_open(dir, CNN_DATASET_IDX, "train", cnn_model_preproc(r->m), &r->d, &err) == 0,
        "%s", err.msg);
    ck_assert_int_eq(cnn_dataset_split(r->d, 0.25, seed, r->tr, &r->nt, r->va, &r->nv, &err), 0);
    struct cnn_train_config cfg;
    cnn_train_config_default(&cfg);
    cfg.lr = 0.05f;
    cfg.momentum = 0.9f;
    cfg.max_batch = batch;
    cfg.seed = seed;
    cfg.steps_per_epoch = cnn_train_loop_steps_per_epoch(r->nt, batch);
    cfg.schedule = CNN_LR_COSINE;
    cfg.total_steps = cfg.steps_per_epoch * spe_epochs;
    cfg.cancel = cancel;
    r->t = cnn_trainer_create(r->m, &cfg, &err);
    ck_assert_msg(r->t != NULL, "%s", err.msg);
}

static void rig_close(struct rig *r)
{
    cnn_trainer_destroy(r->t);
    cnn_dataset_destroy(r->d);
    cnn_model_destroy(r->m);
}

START_TEST(test_steps_per_epoch_skips_a_last_single_item)
{
    ck_assert_int_eq(cnn_train_loop_steps_per_epoch(10, 4), 3); /* 4 4 2 */
    ck_assert_int_eq(cnn_train_loop_steps_per_epoch(9, 4), 2);  /* 4 4 (1 skipped) */
    ck_assert_int_eq(cnn_train_loop_steps_per_epoch(8, 4), 2);
    ck_assert_int_eq(cnn_train_loop_steps_per_epoch(1, 4), 1);
    ck_assert_int_eq(cnn_train_loop_steps_per_epoch(5, 1), 5);
    ck_assert_int_eq(cnn_train_loop_steps_per_epoch(0, 4), 0);
}
END_TEST

struct seen {
    int steps, epochs, last_epoch_steps;
    long max_total;
};

static void count_progress(const struct cnn_train_progress *p, void *arg)
{
    struct seen *s = arg;
    if (p->epoch_done) {
        s->epochs++;
        s->last_epoch_steps = (int)p->epoch_done->steps;
    } else {
        s->steps++;
        ck_assert_int_eq(p->total_step, s->steps);
        ck_assert(p->total_items > 0);
    }
    s->max_total = p->total_step > s->max_total ? p->total_step : s->max_total;
}

START_TEST(test_loop_learns_separable_quadrants)
{
    struct rig r;
    rig_open(&r, 240, 3, 11, 16, 6, NULL);
    struct cnn_epoch_result res[6];
    struct seen seen = {0};
    struct cnn_loop_config c = {.input = cnn_model_preproc(r.m),
                                .epochs = 6,
                                .batch = 16,
                                .seed = 11,
                                .progress = count_progress,
                                .progress_arg = &seen};
    int done = -1;
    struct cnn_err err = {0};
    int rc = cnn_train_loop_run(r.t, r.d, r.tr, r.nt, r.va, r.nv, &c, res, &done, &err);
    ck_assert_msg(rc == 0, "%s", err.msg);
    ck_assert_int_eq(done, 6);
    long spe = cnn_train_loop_steps_per_epoch(r.nt, 16);
    ck_assert_int_eq(seen.steps, 6 * spe);
    ck_assert_int_eq(seen.epochs, 6);
    ck_assert_int_eq(cnn_trainer_step_count(r.t), 6 * spe);
    for (int e = 0; e < 6; e++) {
        ck_assert_int_eq(res[e].epoch, e);
        ck_assert_int_eq(res[e].steps, spe);
        ck_assert_int_eq(res[e].items, r.nt);
    }
    ck_assert_msg(res[5].train_loss < 0.5 * res[0].train_loss, "loss %g -> %g", res[0].train_loss,
                  res[5].train_loss);
    ck_assert_msg(res[5].val_acc >= 0.95, "validation accuracy %g", res[5].val_acc);
    /* the loop's validation agrees with counting by hand */
    double acc, loss;
    ck_assert_int_eq(cnn_train_loop_validate(r.t, r.d, r.va, r.nv, 7, NULL, &acc, &loss, &err), 0);
    ck_assert_double_eq_tol(acc, res[5].val_acc, 1e-12);
    rig_close(&r);
}
END_TEST

START_TEST(test_loop_same_seed_same_run_with_augmentation)
{
    double loss[3];
    uint64_t seeds[3] = {5, 5, 6};
    for (int k = 0; k < 3; k++) {
        struct rig r;
        rig_open(&r, 120, 4, seeds[k], 8, 2, NULL);
        struct cnn_epoch_result res[2];
        struct cnn_loop_config c = {.input = cnn_model_preproc(r.m),
                                    .epochs = 2,
                                    .batch = 8,
                                    .seed = seeds[k],
                                    .aug = {.crop_pad = 1, .hflip = 1}};
        struct cnn_err err = {0};
        ck_assert_int_eq(cnn_train_loop_run(r.t, r.d, r.tr, r.nt, r.va, r.nv, &c, res, NULL, &err),
                         0);
        loss[k] = res[1].train_loss;
        rig_close(&r);
    }
    ck_assert_msg(loss[0] == loss[1], "same seed: %.17g vs %.17g", loss[0], loss[1]);
    ck_assert_msg(loss[0] != loss[2], "different seeds gave the same loss %.17g", loss[0]);
}
END_TEST

static void cancel_at_3(const struct cnn_train_progress *p, void *arg)
{
    if (!p->epoch_done && p->total_step == 3)
        atomic_store((atomic_int *)arg, 1);
}

START_TEST(test_loop_cancel_stops_at_the_next_step)
{
    static atomic_int cancel;
    atomic_store(&cancel, 0);
    struct rig r;
    rig_open(&r, 120, 4, 1, 8, 3, NULL);
    struct cnn_loop_config c = {.input = cnn_model_preproc(r.m),
                                .epochs = 3,
                                .batch = 8,
                                .seed = 1,
                                .cancel = &cancel,
                                .progress = cancel_at_3,
                                .progress_arg = &cancel};
    int done = -1;
    struct cnn_err err = {0};
    ck_assert_int_eq(cnn_train_loop_run(r.t, r.d, r.tr, r.nt, r.va, r.nv, &c, NULL, &done, &err),
                     CNN_ECANCELED);
    ck_assert_int_eq(cnn_trainer_step_count(r.t), 3);
    ck_assert_int_eq(done, 0);
    ck_assert_ptr_nonnull(strstr(err.msg, "cancel"));
    /* set before the start: no step at all */
    ck_assert_int_eq(cnn_train_loop_run(r.t, r.d, r.tr, r.nt, r.va, r.nv, &c, NULL, &done, &err),
                     CNN_ECANCELED);
    ck_assert_int_eq(cnn_trainer_step_count(r.t), 3);
    rig_close(&r);
}
END_TEST

START_TEST(test_loop_max_steps_ends_early)
{
    struct rig r;
    rig_open(&r, 120, 4, 1, 8, 3, NULL);
    struct seen seen = {0};
    struct cnn_loop_config c = {.input = cnn_model_preproc(r.m),
                                .epochs = 3,
                                .batch = 8,
                                .max_steps = 13,
                                .progress = count_progress,
                                .progress_arg = &seen};
    struct cnn_err err = {0};
    int done = -1;
    ck_assert_int_eq(cnn_train_loop_run(r.t, r.d, r.tr, r.nt, r.va, r.nv, &c, NULL, &done, &err),
                     0);
    ck_assert_int_eq(cnn_trainer_step_count(r.t), 13);
    ck_assert_int_eq(seen.steps, 13);
    long spe = cnn_train_loop_steps_per_epoch(r.nt, 8); /* 90 items: 12 steps */
    ck_assert_int_eq(done, 2);
    ck_assert_int_eq(seen.last_epoch_steps, 13 - spe);
    rig_close(&r);
}
END_TEST

START_TEST(test_loop_rejects_bad_shapes_classes_and_config)
{
    struct rig r;
    rig_open(&r, 40, 4, 1, 8, 1, NULL);
    struct cnn_err err = {0};
    struct cnn_preproc other = *cnn_model_preproc(r.m);
    other.w = 9;
    struct cnn_loop_config c = {.input = &other, .epochs = 1, .batch = 8};
    ck_assert_int_eq(cnn_train_loop_run(r.t, r.d, r.tr, r.nt, r.va, r.nv, &c, NULL, NULL, &err),
                     CNN_EINVAL);
    c.input = cnn_model_preproc(r.m);
    c.epochs = 0;
    ck_assert_int_eq(cnn_train_loop_run(r.t, r.d, r.tr, r.nt, r.va, r.nv, &c, NULL, NULL, &err),
                     CNN_EINVAL);
    c.epochs = 1;
    c.batch = 0;
    ck_assert_int_eq(cnn_train_loop_run(r.t, r.d, r.tr, r.nt, r.va, r.nv, &c, NULL, NULL, &err),
                     CNN_EINVAL);
    c.batch = 8;
    int bad_idx[1] = {40};
    ck_assert_int_eq(cnn_train_loop_run(r.t, r.d, bad_idx, 1, NULL, 0, &c, NULL, NULL, &err),
                     CNN_EINVAL);
    ck_assert_int_eq(cnn_trainer_step_count(r.t), 0);
    /* a model with fewer classes than the dataset */
    struct cnn_err e2 = {0};
    ck_assert_int_eq(cnn_trainer_replace_head(r.t, NULL, 3, &e2), 0);
    ck_assert_int_eq(cnn_train_loop_run(r.t, r.d, r.tr, r.nt, r.va, r.nv, &c, NULL, NULL, &err),
                     CNN_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "classes"));
    rig_close(&r);
}
END_TEST

/* Confusion matrix against one forward pass per item and an argmax written here. */
START_TEST(test_confusion_matches_per_item_forward)
{
    struct cnn_err err = {0};
    struct cnn_model *m = test_net_small(21);
    ck_assert_int_eq(cnn_model_compile(m, &err), 0);
    write_quadrants("t10k", 37, 8, 9);
    struct cnn_dataset *d = NULL;
    ck_assert_int_eq(
        cnn_dataset_open(dir, CNN_DATASET_AUTO, "t10k", cnn_model_preproc(m), &d, &err), 0);
    long cm[16] = {0}, want[16] = {0}, mapped[16] = {0};
    ck_assert_int_eq(cnn_train_loop_confusion(m, d, NULL, 0, NULL, 5, NULL, cm, &err), 0);
    int map[4] = {2, 3, 0, 1};
    ck_assert_int_eq(cnn_train_loop_confusion(m, d, NULL, 0, map, 64, NULL, mapped, &err), 0);
    struct cnn_session *s = cnn_session_create(m, 1, &err);
    ck_assert_ptr_nonnull(s);
    for (int i = 0; i < 37; i++) {
        float x[64];
        int lab;
        cnn_dataset_batch(d, &i, 1, NULL, 0, x, &lab);
        const float *p;
        ck_assert_int_eq(cnn_session_forward(s, m, x, 1, &p, &err), 0);
        int best = 0;
        for (int k = 1; k < 4; k++)
            if (p[k] > p[best])
                best = k;
        want[lab * 4 + best]++;
    }
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) {
            ck_assert_int_eq(cm[i * 4 + j], want[i * 4 + j]);
            ck_assert_int_eq(mapped[map[i] * 4 + j], want[i * 4 + j]);
        }
    int bad_map[4] = {0, 1, 2, 4};
    ck_assert_int_eq(cnn_train_loop_confusion(m, d, NULL, 0, bad_map, 8, NULL, cm, &err),
                     CNN_EINVAL);
    cnn_session_destroy(s);
    cnn_dataset_destroy(d);
    cnn_model_destroy(m);
}
END_TEST

/* ---- the tools ------------------------------------------------------------------------ */

static pid_t spawn_tool(char **args, const char *out_path)
{
    const char *tool = getenv("CNN_TOOL");
    ck_assert_msg(tool && *tool, "CNN_TOOL is not set (make unit sets it to the built cnn)");
    char *argv[40];
    int n = 0;
    argv[n++] = (char *)tool;
    for (; *args && n < 39; args++)
        argv[n++] = *args;
    argv[n] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid;
    ck_assert_int_eq(posix_spawn(&pid, tool, &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    return pid;
}

static int wait_status(pid_t pid)
{
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 1000 + WTERMSIG(st);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

/* lenet5 takes 1x28x28: 4-class quadrant images at that size. */
START_TEST(test_tool_train_eval_and_fine_tune_with_lineage)
{
    write_quadrants("train", 160, 28, 5);
    write_quadrants("t10k", 80, 28, 6);
    char out[256], log[256], model[256];
    snprintf(log, sizeof log, "%s/log.txt", dir);
    snprintf(model, sizeof model, "%s/q.cnn", dir);
    char *args[] = {"train",     "lenet5", "--data", dir,        "--epochs",    "4",      "--batch",
                    "16",        "--lr",   "0.05",   "--labels", "tl,tr,bl,br", "--seed", "3",
                    "--threads", "1",      "--out",  model,      NULL};
    int st = wait_status(spawn_tool(args, log));
    char *text = slurp(log);
    ck_assert_msg(st == 0, "cnn train exited %d:\n%s", st, text);
    ck_assert_ptr_nonnull(strstr(text, "epoch 4/4"));
    ck_assert_ptr_nonnull(strstr(text, "saved"));
    struct cnn_model *m = NULL;
    struct cnn_err err = {0};
    ck_assert_msg(cnn_model_load(model, &m, &err) == 0, "%s", err.msg);
    ck_assert_str_eq(cnn_model_label(m, 3), "br");
    const char *meta = cnn_model_meta(m);
    ck_assert_ptr_nonnull(strstr(meta, "arch=lenet5\n"));
    ck_assert_ptr_nonnull(strstr(meta, "parent=none (random init)\n"));
    ck_assert_ptr_nonnull(strstr(meta, "head=random\nclasses=4\n"));
    ck_assert_ptr_nonnull(strstr(meta, "dataset=idx:"));
    ck_assert_ptr_nonnull(strstr(meta, "final_val_acc="));
    cnn_model_destroy(m);
    char *eargs[] = {"eval", model, "--data", dir, NULL};
    snprintf(out, sizeof out, "%s/eval.txt", dir);
    st = wait_status(spawn_tool(eargs, out));
    text = slurp(out);
    ck_assert_msg(st == 0, "cnn eval exited %d:\n%s", st, text);
    double acc = 0;
    const char *a = strstr(text, "accuracy: ");
    ck_assert_ptr_nonnull(a);
    ck_assert_int_eq(sscanf(a, "accuracy: %lf%%", &acc), 1);
    ck_assert_msg(acc >= 90.0, "test accuracy %.2f%%\n%s", acc, text);
    ck_assert_ptr_nonnull(strstr(text, "confusion matrix"));
    ck_assert_ptr_nonnull(strstr(text, "/20)")); /* per class: 80 test items, 20 each */

    /* fine-tune: a 2-class subset, new head, everything before fc3 frozen */
    char child[256];
    snprintf(child, sizeof child, "%s/child.cnn", dir);
    char *fargs[] = {"train",    model,   "--data",   dir, "--classes", "3,0", "--labels",  "br,tl",
                     "--freeze", "relu4", "--epochs", "2", "--batch",   "16",  "--threads", "1",
                     "--out",    child,   NULL};
    st = wait_status(spawn_tool(fargs, log));
    text = slurp(log);
    ck_assert_msg(st == 0, "fine-tune exited %d:\n%s", st, text);
    ck_assert_ptr_nonnull(strstr(text, "new head"));
    ck_assert_msg(cnn_model_load(child, &m, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(cnn_model_num_classes(m), 2);
    ck_assert_str_eq(cnn_model_label(m, 0), "br");
    meta = cnn_model_meta(m);
    char want[300];
    snprintf(want, sizeof want, "parent=%s\n", model);
    ck_assert_ptr_nonnull(strstr(meta, want));
    ck_assert_ptr_nonnull(strstr(meta, "head=replaced\nclasses=2\n"));
    ck_assert_ptr_nonnull(strstr(meta, "dataset_classes=3,0\n"));
    cnn_model_destroy(m);
    char *cargs[] = {"eval", child, "--data", dir, "--classes", "3,0", NULL};
    st = wait_status(spawn_tool(cargs, out));
    text = slurp(out);
    ck_assert_msg(st == 0, "eval of the child exited %d:\n%s", st, text);
    a = strstr(text, "accuracy: ");
    ck_assert_ptr_nonnull(a);
    ck_assert_int_eq(sscanf(a, "accuracy: %lf%%", &acc), 1);
    ck_assert_msg(acc >= 90.0, "2-class accuracy %.2f%%\n%s", acc, text);
    ck_assert_ptr_nonnull(strstr(text, "40 images"));
}
END_TEST

START_TEST(test_tool_train_sigint_writes_nothing)
{
    write_quadrants("train", 400, 28, 5);
    char log[256], model[256];
    snprintf(log, sizeof log, "%s/log.txt", dir);
    snprintf(model, sizeof model, "%s/never.cnn", dir);
    char *args[] = {"train", "lenet5",    "--data", dir,     "--epochs", "10000", "--batch",
                    "8",     "--threads", "1",      "--out", model,      NULL};
    pid_t pid = spawn_tool(args, log);
    /* wait until it trains: the first epoch line */
    for (int i = 0; i < 600 && !strstr(slurp(log), "epoch 1/"); i++) {
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    ck_assert_msg(strstr(slurp(log), "epoch 1/") != NULL, "no epoch line:\n%s", slurp(log));
    kill(pid, SIGINT);
    int st = wait_status(pid);
    char *text = slurp(log);
    ck_assert_msg(st == 128 + SIGINT, "exit %d:\n%s", st, text);
    ck_assert_ptr_nonnull(strstr(text, "nothing written"));
    /* neither the model nor a temp file next to it */
    DIR *dp = opendir(dir);
    struct dirent *e;
    while ((e = readdir(dp)) != NULL)
        ck_assert_msg(strstr(e->d_name, "never") == NULL && strstr(e->d_name, ".cnn") == NULL,
                      "left behind: %s", e->d_name);
    closedir(dp);
}
END_TEST

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* kill -9 cannot be caught, so what protects the output is the save itself (temp file,
 * fsync, rename): killed at 16 moments spread over a whole run, from start-up to the save
 * at its end, the --out path either does not exist or holds a complete model that loads;
 * the only other thing a kill may leave is the hidden temp file of a save it cut short. */
START_TEST(test_tool_train_sigkill_never_leaves_a_partial_model)
{
    write_quadrants("train", 2000, 28, 9);
    char log[256], model[256];
    snprintf(log, sizeof log, "%s/log.txt", dir);
    snprintf(model, sizeof model, "%s/model.cnn", dir);
    char *args[] = {"train", "lenet5", "--data",  dir, "--epochs", "2", "--batch", "8",
                    "--threads", "1", "--quiet", "--out", model, NULL};
    double t0 = now_s();
    pid_t pid = spawn_tool(args, log);
    ck_assert_msg(wait_status(pid) == 0, "uninterrupted run failed:\n%s", slurp(log));
    const double full = now_s() - t0;
    struct cnn_model *m = NULL;
    struct cnn_err err = {0};
    ck_assert_msg(cnn_model_load(model, &m, &err) == 0, "%s", err.msg);
    cnn_model_destroy(m);
    int complete = 0, absent = 0;
    for (int k = 0; k < 16; k++) {
        unlink(model);
        /* moments up to 25% past the measured run, denser near its end (the save) */
        const double frac = k < 8 ? (k + 0.5) / 8.0 : 0.9 + 0.05 * (k - 8);
        pid = spawn_tool(args, log);
        struct timespec ts = {(time_t)(full * frac), (long)(fmod(full * frac, 1.0) * 1e9)};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int st;
        ck_assert_int_eq(waitpid(pid, &st, 0), pid);
        if (access(model, F_OK) != 0) {
            absent++;
            continue;
        }
        ck_assert_msg(cnn_model_load(model, &m, &err) == 0, "kill at %.0f%% left %s: %s",
                      100 * frac, model, err.msg);
        cnn_model_destroy(m);
        complete++;
    }
    printf("train: kill -9 at 16 moments of a %.2f s run: %d left no model, %d a complete one\n",
           full, absent, complete);
    ck_assert_int_eq(absent + complete, 16);
    ck_assert_msg(absent > 0, "every kill came after the save: the moments missed the run");
    DIR *dp = opendir(dir);
    struct dirent *e;
    while ((e = readdir(dp)) != NULL)
        ck_assert_msg(strcmp(e->d_name, "model.cnn") == 0 || strstr(e->d_name, ".cnn") == NULL ||
                          strncmp(e->d_name, ".model.cnn.tmp-", 15) == 0,
                      "left behind: %s", e->d_name);
    closedir(dp);
}
END_TEST

/* Width and height from a PNG file's IHDR; 0 when it is not a PNG. */
static void png_dims(const char *path, unsigned *w, unsigned *h)
{
    unsigned char b[24] = {0};
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "%s not written", path);
    size_t n = fread(b, 1, sizeof b, f);
    fclose(f);
    *w = *h = 0;
    if (n == 24 && memcmp(b, "\x89PNG\r\n\x1a\n", 8) == 0 && memcmp(b + 12, "IHDR", 4) == 0) {
        *w = (unsigned)b[16] << 24 | (unsigned)b[17] << 16 | (unsigned)b[18] << 8 | b[19];
        *h = (unsigned)b[20] << 24 | (unsigned)b[21] << 16 | (unsigned)b[22] << 8 | b[23];
    }
}

/* cnn train --log/--plot: one CSV row per step and per epoch, the epoch's loss equal to the
 * mean of its steps' (every batch full here) and to the printed one; cnn eval --json equals
 * the text output and the confusion rows hold each class's 20 items; the pictures exist. */
START_TEST(test_tool_train_log_plot_and_eval_json_plot)
{
    write_quadrants("train", 160, 28, 5); /* 144 train / 16 val: 9 full batches of 16 */
    write_quadrants("t10k", 80, 28, 6);
    char log[256], csv[256], curves[256], model[256], out[256], conf[256];
    snprintf(log, sizeof log, "%s/log.txt", dir);
    snprintf(csv, sizeof csv, "%s/train.csv", dir);
    snprintf(curves, sizeof curves, "%s/curves.png", dir);
    snprintf(model, sizeof model, "%s/q.cnn", dir);
    char *args[] = {"train", "lenet5", "--data", dir,      "--epochs", "2",    "--batch",
                    "16",    "--seed", "3",      "--threads", "1",     "--log", csv,
                    "--plot", curves,  "--out",  model,    NULL};
    int st = wait_status(spawn_tool(args, log));
    char *text = slurp(log);
    ck_assert_msg(st == 0, "cnn train exited %d:\n%s", st, text);
    double printed = -1;
    const char *e1 = strstr(text, "epoch 1/2");
    ck_assert_ptr_nonnull(e1);
    ck_assert_int_eq(sscanf(strstr(e1, "train loss"), "train loss %lf", &printed), 1);
    char *rows = strdup(slurp(csv));
    ck_assert_ptr_nonnull(strstr(rows, "kind,epoch,step,loss,accuracy,lr,images_per_s,val_loss,"
                                       "val_accuracy\n"));
    int steps = 0, epochs = 0;
    double sum = 0, epoch_loss[2] = {0}, val_acc = -1;
    for (char *line = strtok(rows, "\n"); line; line = strtok(NULL, "\n")) {
        char kind[8];
        int ep;
        long step;
        double loss, acc;
        if (sscanf(line, "%7[a-z],%d,%ld,%lf,%lf", kind, &ep, &step, &loss, &acc) != 5)
            continue; /* the header */
        if (strcmp(kind, "step") == 0) {
            ck_assert_int_eq(step, ++steps);
            ck_assert(isfinite(loss) && acc >= 0 && acc <= 1);
            sum += ep == 1 ? loss : 0;
        } else {
            ck_assert_str_eq(kind, "epoch");
            epoch_loss[epochs++] = loss;
            val_acc = atof(strrchr(line, ',') + 1);
        }
    }
    free(rows);
    ck_assert_int_eq(steps, 18);
    ck_assert_int_eq(epochs, 2);
    ck_assert_msg(fabs(sum / 9 - epoch_loss[0]) <= 1e-4 * (1 + epoch_loss[0]),
                  "epoch 1: mean of steps %g vs epoch row %g", sum / 9, epoch_loss[0]);
    ck_assert_msg(fabs(printed - epoch_loss[0]) <= 1e-4, "printed %g vs csv %g", printed,
                  epoch_loss[0]);
    ck_assert(val_acc >= 0 && val_acc <= 1);
    unsigned w, h;
    png_dims(curves, &w, &h);
    ck_assert(w == 800 && h == 600);

    snprintf(conf, sizeof conf, "%s/confusion.png", dir);
    snprintf(out, sizeof out, "%s/eval.txt", dir);
    char *eargs[] = {"eval", model, "--data", dir, NULL};
    ck_assert_int_eq(wait_status(spawn_tool(eargs, out)), 0);
    double acc_text = -1, acc_json = -2;
    ck_assert_int_eq(sscanf(strstr(slurp(out), "accuracy: "), "accuracy: %lf%%", &acc_text), 1);
    char *jargs[] = {"eval", model, "--data", dir, "--json", "--plot", conf, NULL};
    ck_assert_int_eq(wait_status(spawn_tool(jargs, out)), 0);
    text = slurp(out);
    ck_assert_msg(text[0] == '{' && strchr(text, '\n') == strrchr(text, '\n'), "%s", text);
    ck_assert_int_eq(sscanf(strstr(text, "\"accuracy\":"), "\"accuracy\":%lf", &acc_json), 1);
    ck_assert_msg(fabs(acc_json * 100 - acc_text) <= 0.01, "json %g vs text %g%%", acc_json,
                  acc_text);
    const char *cm = strstr(text, "\"confusion\":[");
    ck_assert_ptr_nonnull(cm);
    cm += strlen("\"confusion\":[");
    for (int i = 0; i < 4; i++) {
        long v[4], row = 0;
        ck_assert_int_eq(sscanf(cm, "[%ld,%ld,%ld,%ld]", &v[0], &v[1], &v[2], &v[3]), 4);
        for (int j = 0; j < 4; j++)
            row += v[j];
        ck_assert_int_eq(row, 20);
        cm = strchr(cm, ']') + 2;
    }
    png_dims(conf, &w, &h);
    ck_assert(w == 40 + 4 * 48 + 8 && h == w);
}
END_TEST

TCase *train_loop_tcase(void)
{
    TCase *tc = tcase_create("loop");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_steps_per_epoch_skips_a_last_single_item);
    tcase_add_test(tc, test_loop_learns_separable_quadrants);
    tcase_add_test(tc, test_loop_same_seed_same_run_with_augmentation);
    tcase_add_test(tc, test_loop_cancel_stops_at_the_next_step);
    tcase_add_test(tc, test_loop_max_steps_ends_early);
    tcase_add_test(tc, test_loop_rejects_bad_shapes_classes_and_config);
    tcase_add_test(tc, test_confusion_matches_per_item_forward);
    tcase_add_test(tc, test_tool_train_eval_and_fine_tune_with_lineage);
    tcase_add_test(tc, test_tool_train_log_plot_and_eval_json_plot);
    tcase_add_test(tc, test_tool_train_sigint_writes_nothing);
    tcase_add_test(tc, test_tool_train_sigkill_never_leaves_a_partial_model);
    return tc;
}
