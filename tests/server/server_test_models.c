/* Test helpers shared by the server suites (see server_test_models.h). */
#define _XOPEN_SOURCE 700 /* nftw */
#include "server_test_models.h"

#include "session.h"

#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void stm_fill(float *x, size_t n, uint64_t seed)
{
    uint64_t s = seed ^ 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < n; i++) {
        /* xorshift64*: independent of the generator in tests/unit */
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        uint64_t r = s * 2685821657736338717ull;
        x[i] = (float)((double)(r >> 40) / 8388608.0 - 1.0);
    }
}

static void add_layer(struct cnn_model *m, struct cnn_layer_desc d)
{
    struct cnn_err err = {0};
    int rc = cnn_model_add(m, &d, &err);
    ck_assert_msg(rc >= 0, "add layer: %s", err.msg);
}

struct cnn_model *stm_model(uint64_t seed)
{
    struct cnn_preproc pp = {.c = STM_C, .h = STM_H, .w = STM_W, .std = {1, 1, 1}};
    struct cnn_err err = {0};
    struct cnn_model *m = cnn_model_create(&pp, &err);
    ck_assert_msg(m != NULL, "create: %s", err.msg);
    struct cnn_layer_desc d = {.kind = CNN_LAYER_CONV2D, .name = "conv"};
    d.p.conv = (struct cnn_conv2d){.oc = 4,
                                   .kh = 3,
                                   .kw = 3,
                                   .sh = 1,
                                   .sw = 1,
                                   .dh = 1,
                                   .dw = 1,
                                   .pad_t = 1,
                                   .pad_l = 1,
                                   .pad_b = 1,
                                   .pad_r = 1,
                                   .groups = 1,
                                   .has_bias = 1};
    add_layer(m, d);
    d = (struct cnn_layer_desc){.kind = CNN_LAYER_ACT, .name = "relu"};
    d.p.act.kind = CNN_ACT_RELU;
    add_layer(m, d);
    d = (struct cnn_layer_desc){.kind = CNN_LAYER_MAXPOOL, .name = "pool"};
    d.p.pool = (struct cnn_pool2d){.kh = 2, .kw = 2, .sh = 2, .sw = 2};
    add_layer(m, d);
    add_layer(m, (struct cnn_layer_desc){.kind = CNN_LAYER_FLATTEN, .name = "flat"});
    d = (struct cnn_layer_desc){.kind = CNN_LAYER_DENSE, .name = "fc"};
    d.p.dense = (struct cnn_dense){.out = STM_CLASSES, .has_bias = 1};
    add_layer(m, d);
    add_layer(m, (struct cnn_layer_desc){.kind = CNN_LAYER_SOFTMAX, .name = "prob"});
    const char *labels[STM_CLASSES] = {"c0", "c1", "c2", "c3"};
    ck_assert_int_eq(cnn_model_set_labels(m, labels, STM_CLASSES, &err), 0);
    ck_assert_int_eq(cnn_model_alloc_params(m, &err), 0);
    cnn_model_init_random(m, seed);
    for (int layer = 1; layer < cnn_model_layer_count(m); layer++) {
        size_t n = 0;
        float *bias = cnn_model_weights_mut(m, layer, 1, &n);
        if (bias)
            stm_fill(bias, n, seed * 31 + (uint64_t)layer);
    }
    ck_assert_msg(cnn_model_compile(m, &err) == 0, "compile: %s", err.msg);
    return m;
}

void stm_forward_one(const struct cnn_model *m, const float *in, float *out)
{
    struct cnn_err err = {0};
    struct cnn_session *s = cnn_session_create(m, 1, &err);
    ck_assert_msg(s != NULL, "session: %s", err.msg);
    const float *probs = NULL;
    ck_assert_int_eq(cnn_session_forward(s, m, in, 1, &probs, &err), 0);
    memcpy(out, probs, (size_t)cnn_model_num_classes(m) * sizeof(float));
    cnn_session_destroy(s);
}

float stm_max_diff(const float *a, const float *b, size_t n)
{
    float worst = 0;
    for (size_t i = 0; i < n; i++) {
        float d = fabsf(a[i] - b[i]);
        if (!(d <= worst))
            worst = d; /* also catches NaN */
    }
    return worst;
}

char *stm_tempdir(void)
{
    const char *base = getenv("TMPDIR");
    char buf[4096];
    snprintf(buf, sizeof buf, "%s/cnnd-test-XXXXXX", base && *base ? base : "/tmp");
    ck_assert_msg(mkdtemp(buf) != NULL, "mkdtemp %s: %s", buf, strerror(errno));
    char *p = strdup(buf);
    ck_assert(p != NULL);
    return p;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

void stm_rmtree(const char *path)
{
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* mkdir -p of the folder part of path (everything before the last '/'). */
static void make_parents(const char *path)
{
    char buf[4096];
    ck_assert(strlen(path) < sizeof buf);
    strcpy(buf, path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0)
            ck_assert_msg(errno == EEXIST, "mkdir %s: %s", buf, strerror(errno));
        *p = '/';
    }
}

void stm_publish(const struct cnn_model *m, const char *repo, const char *name, int version)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s/%d/model.cnn", repo, name, version);
    make_parents(path);
    struct cnn_err err = {0};
    ck_assert_msg(cnn_model_save(m, path, &err) == 0, "save %s: %s", path, err.msg);
}

void stm_write_file(const char *repo, const char *rel, const char *text)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", repo, rel);
    make_parents(path);
    FILE *f = fopen(path, "w");
    ck_assert_msg(f != NULL, "open %s: %s", path, strerror(errno));
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
}

int64_t stm_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void stm_sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}
