/* Suite model_io: the native model file.  Round trips (weights, layer infos, labels, meta,
 * preproc, forward outputs) of the test model (test_model_io.h), and saves that fail
 * (missing folder, write error, rename error) leaving the target untouched.  Corrupt and
 * hostile files are in check_model_io_hostile.c. */
#include "model.h"
#include "model_internal.h"
#include "session.h"
#include "test_model_io.h"
#include "test_util.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
/* Number of entries in dir (without . and ..). */
static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    }
    closedir(d);
    return n;
}

/* Copy of every weight slot of m, in layer/slot order, for comparison after compile. */
static float *snapshot_weights(const struct cnn_model *m, size_t *n)
{
    size_t total = 0;
    for (int i = 0; i < m->n_layers; i++)
        for (int s = 0; s < m->layers[i].n_weights; s++)
            total += m->layers[i].weight_count[s];
    float *w = malloc((total ? total : 1) * sizeof *w), *p = w;
    ck_assert_ptr_nonnull(w);
    for (int i = 0; i < m->n_layers; i++)
        for (int s = 0; s < m->layers[i].n_weights; s++) {
            memcpy(p, m->params + m->layers[i].weight_offset[s],
                   m->layers[i].weight_count[s] * sizeof *p);
            p += m->layers[i].weight_count[s];
        }
    *n = total;
    return w;
}

/* ---- round trips -------------------------------------------------------------- */

static void assert_same_model(const struct cnn_model *a, const struct cnn_model *b,
                              const float *weights, size_t n_weights)
{
    ck_assert_int_eq(cnn_model_layer_count(b), cnn_model_layer_count(a));
    ck_assert_int_eq(memcmp(cnn_model_preproc(a), cnn_model_preproc(b), sizeof(struct cnn_preproc)),
                     0);
    for (int i = 0; i < cnn_model_layer_count(a); i++) {
        struct cnn_layer_info x, y;
        cnn_model_layer_info(a, i, &x);
        cnn_model_layer_info(b, i, &y);
        ck_assert_int_eq(y.kind, x.kind);
        ck_assert_str_eq(y.name, x.name);
        ck_assert_int_eq(y.n_inputs, x.n_inputs);
        for (int k = 0; k < x.n_inputs; k++)
            ck_assert_int_eq(y.inputs[k], x.inputs[k]);
        ck_assert_int_eq(y.c, x.c);
        ck_assert_int_eq(y.h, x.h);
        ck_assert_int_eq(y.w, x.w);
        ck_assert_uint_eq(y.params, x.params);
        ck_assert(y.flops == x.flops);
        /* every parameter of the kind, fused activations included */
        ck_assert_int_eq(memcmp(&a->layers[i].p, &b->layers[i].p, sizeof a->layers[i].p), 0);
        ck_assert_int_eq(b->layers[i].n_weights, a->layers[i].n_weights);
        for (int s = 0; s < a->layers[i].n_weights; s++) {
            ck_assert_uint_eq(b->layers[i].weight_count[s], a->layers[i].weight_count[s]);
            ck_assert_uint_eq(b->layers[i].weight_offset[s], a->layers[i].weight_offset[s]);
            ck_assert_uint_eq(b->layers[i].weight_offset[s] % 16, 0);
        }
    }
    size_t k = 0;
    for (int i = 0; i < b->n_layers; i++)
        for (int s = 0; s < b->layers[i].n_weights; s++)
            for (size_t j = 0; j < b->layers[i].weight_count[s]; j++, k++) {
                float v = b->params[b->layers[i].weight_offset[s] + j];
                ck_assert_msg(memcmp(&v, &weights[k], sizeof v) == 0,
                              "layer %d slot %d weight %zu: %g != %g", i, s, j, (double)v,
                              (double)weights[k]);
            }
    ck_assert_uint_eq(k, n_weights);
    ck_assert_int_eq(cnn_model_num_classes(b), 5);
    for (int i = 0; i < 5; i++)
        ck_assert_str_eq(cnn_model_label(b, i), test_labels[i]);
    ck_assert_str_eq(cnn_model_meta(b), test_meta);
}

START_TEST(test_round_trip_file_and_memory_keep_everything)
{
    char dir[64], path[96];
    make_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/model.cnn", dir);
    struct cnn_err err = {0};
    struct cnn_model *m = build_model(7);
    size_t nw;
    float *w = snapshot_weights(m, &nw);
    ck_assert_int_eq(cnn_model_save(m, path, &err), 0);
    ck_assert_int_eq(count_entries(dir), 1); /* no temp file left behind */

    struct cnn_model *a = NULL, *b = NULL;
    ck_assert_msg(cnn_model_load(path, &a, &err) == 0, "%s", err.msg);
    assert_same_model(m, a, w, nw);
    /* mapped read-only, weights 64-byte aligned inside the mapping */
    ck_assert_ptr_nonnull(a->map);
    ck_assert_ptr_null(a->owned_params);
    ck_assert((unsigned char *)a->params >= (unsigned char *)a->map &&
              (unsigned char *)(a->params + a->n_params) <= (unsigned char *)a->map + a->map_size);
    ck_assert_uint_eq((uintptr_t)a->params % 64, 0);
    ck_assert_int_eq(a->compiled, 1);
    ck_assert_ptr_null(cnn_model_weights_mut(a, L_CONV1, 0, NULL));

    size_t n;
    unsigned char *bytes = read_all(path, &n);
    ck_assert_msg(cnn_model_load_mem(bytes, n, &b, &err) == 0, "%s", err.msg);
    memset(bytes, 0xff, n); /* load_mem copied: the model must not depend on the buffer */
    assert_same_model(m, b, w, nw);
    ck_assert_ptr_null(b->map);
    ck_assert_ptr_nonnull(b->owned_params);
    ck_assert_uint_eq((uintptr_t)b->params % 64, 0);

    /* saving a loaded (mapped, compiled) model writes the same bytes again */
    char path2[128];
    snprintf(path2, sizeof path2, "%s/again.cnn", dir);
    ck_assert_int_eq(cnn_model_save(a, path2, &err), 0);
    size_t n2;
    unsigned char *again = read_all(path2, &n2), *orig = read_all(path, &n);
    ck_assert_uint_eq(n2, n);
    ck_assert_int_eq(memcmp(again, orig, n), 0);

    free(again);
    free(orig);
    free(bytes);
    free(w);
    cnn_model_destroy(a);
    cnn_model_destroy(b);
    cnn_model_destroy(m);
    rm_tree(dir);
}
END_TEST

/* Runs n random images through m; returns the (n, classes) outputs (malloc'd). */
static float *forward(const struct cnn_model *m, const float *images, int n)
{
    struct cnn_err err = {0};
    struct cnn_session *s = cnn_session_create(m, n, &err);
    ck_assert_msg(s != NULL, "%s", err.msg);
    const float *probs;
    ck_assert_msg(cnn_session_forward(s, m, images, n, &probs, &err) == 0, "%s", err.msg);
    size_t k = (size_t)n * (size_t)cnn_model_num_classes(m);
    float *out = malloc(k * sizeof *out);
    ck_assert_ptr_nonnull(out);
    memcpy(out, probs, k * sizeof *out);
    cnn_session_destroy(s);
    return out;
}

START_TEST(test_saving_compiled_model_keeps_unfolded_weights_and_outputs)
{
    char dir[64], path[96];
    make_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/m.cnn", dir);
    struct cnn_err err = {0};
    struct cnn_model *m = build_model(11);
    size_t nw;
    float *w = snapshot_weights(m, &nw); /* before compile folds BN into conv1 */
    ck_assert_int_eq(cnn_model_compile(m, &err), 0);
    ck_assert_int_eq(cnn_model_save(m, path, &err), 0);

    struct cnn_model *a = NULL;
    ck_assert_msg(cnn_model_load(path, &a, &err) == 0, "%s", err.msg);
    assert_same_model(m, a, w, nw);

    enum { N = 3 };
    float images[N * 3 * 8 * 8];
    rng_state = 99;
    for (size_t i = 0; i < sizeof images / sizeof images[0]; i++)
        images[i] = rnd_uniform(-2.0f, 2.0f);
    float *y0 = forward(m, images, N), *y1 = forward(a, images, N);
    for (int i = 0; i < N * 5; i++) {
        ck_assert(isfinite(y0[i]));
        ck_assert_msg(memcmp(&y0[i], &y1[i], sizeof(float)) == 0, "output %d: %g vs %g", i,
                      (double)y0[i], (double)y1[i]);
    }
    for (int i = 0; i < N; i++) { /* it is a softmax: each row sums to 1 */
        double sum = 0;
        for (int c = 0; c < 5; c++)
            sum += y0[i * 5 + c];
        ck_assert_double_eq_tol(sum, 1.0, 1e-5);
    }
    free(y0);
    free(y1);
    free(w);
    cnn_model_destroy(a);
    cnn_model_destroy(m);
    rm_tree(dir);
}
END_TEST

/* A flatten + dense model over a c x 4 x 3 input, saved to dir/name; the file's bytes. */
static unsigned char *save_small(const char *dir, const char *name, const struct cnn_preproc *pp,
                                 size_t *size)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    struct cnn_err err = {0};
    struct cnn_model *m = cnn_model_create(pp, &err);
    ck_assert_msg(m != NULL, "%s", err.msg);
    struct cnn_layer_desc d = desc(CNN_LAYER_FLATTEN, NULL);
    add_layer(m, &d, 1);
    d = desc(CNN_LAYER_DENSE, NULL), d.p.dense.out = 2;
    add_layer(m, &d, 2);
    ck_assert_int_eq(cnn_model_alloc_params(m, &err), 0);
    cnn_model_init_random(m, 5);
    ck_assert_msg(cnn_model_save(m, path, &err) == 0, "%s", err.msg);
    cnn_model_destroy(m);
    return read_all(path, size);
}

/* BGR is header flags bit 0 (offset 36): an RGB file keeps flags 0, i.e. the format of files
 * written before BGR existed, and loads as RGB; a BGR file differs from it in that bit only
 * and loads back as BGR; the bit on a gray model, or any other bit, is refused. */
START_TEST(test_bgr_is_header_flag_bit0_and_round_trips)
{
    char dir[64];
    make_tmpdir(dir, sizeof dir);
    struct cnn_preproc pp = {.c = 3, .h = 4, .w = 3, .mean = {0.1f, 0.2f, 0.3f}, .std = {1, 2, 3}};
    size_t n_rgb, n_bgr, n_gray;
    unsigned char *rgb = save_small(dir, "rgb.cnn", &pp, &n_rgb);
    pp.bgr = 1;
    unsigned char *bgr = save_small(dir, "bgr.cnn", &pp, &n_bgr);
    ck_assert_uint_eq(n_rgb, n_bgr);
    ck_assert_uint_eq(rgb[36] | rgb[37] | rgb[38] | rgb[39], 0);
    ck_assert_uint_eq(bgr[36], 1);
    bgr[36] = 0;
    ck_assert_int_eq(memcmp(rgb, bgr, 120), 0); /* nothing else changed but the checksum */
    ck_assert_int_eq(memcmp(rgb + 124, bgr + 124, n_rgb - 124), 0);
    bgr[36] = 1;

    struct cnn_err err = {0};
    struct cnn_model *a = NULL;
    ck_assert_msg(cnn_model_load_mem(rgb, n_rgb, &a, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(cnn_model_preproc(a)->bgr, 0);
    cnn_model_destroy(a);
    ck_assert_msg(cnn_model_load_mem(bgr, n_bgr, &a, &err) == 0, "%s", err.msg);
    const struct cnn_preproc *got = cnn_model_preproc(a);
    ck_assert_int_eq(got->bgr, 1);
    ck_assert_float_eq(got->mean[0], 0.1f);
    ck_assert_float_eq(got->std[2], 3.0f);
    cnn_model_destroy(a);
    bgr[36] = 3; /* bit 1 is unknown */
    ck_assert_int_eq(cnn_model_load_mem(bgr, n_bgr, &a, &err), CNN_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "flags"));

    struct cnn_preproc gray = {.c = 1, .h = 4, .w = 3, .std = {1}};
    unsigned char *g = save_small(dir, "gray.cnn", &gray, &n_gray);
    g[36] = 1;
    model_file_reseal(g, n_gray);
    ck_assert_int_eq(cnn_model_load_mem(g, n_gray, &a, &err), CNN_EFORMAT);
    ck_assert_msg(strstr(err.msg, "3 channels") != NULL, "%s", err.msg);
    ck_assert_ptr_null(a);
    free(rgb);
    free(bgr);
    free(g);
    rm_tree(dir);
}
END_TEST

/* A model fed tensors may take any C in 1..CNN_PREPROC_MAX_C: an 8-channel file round-trips
 * (the stored c is 8) and a c over the limit is refused. */
START_TEST(test_eight_channel_model_round_trips)
{
    char dir[64];
    make_tmpdir(dir, sizeof dir);
    size_t n = 0;
    struct cnn_preproc pp = {.c = 8, .h = 2, .w = 3, .std = {1, 1, 1}};
    unsigned char *b = save_small(dir, "c8.cnn", &pp, &n);
    struct cnn_err err = {0};
    struct cnn_model *a = NULL;
    ck_assert_msg(cnn_model_load_mem(b, n, &a, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(cnn_model_preproc(a)->c, 8);
    cnn_model_destroy(a);
    b[128] = 0x01, b[129] = 0x10; /* c = 4097 */
    model_file_reseal(b, n);
    ck_assert_int_eq(cnn_model_load_mem(b, n, &a, &err), CNN_EFORMAT);
    ck_assert_msg(strstr(err.msg, "channels") != NULL, "%s", err.msg);
    ck_assert_ptr_null(a);
    free(b);
    rm_tree(dir);
}
END_TEST

START_TEST(test_unlabelled_model_without_meta_round_trips)
{
    char dir[64], path[96];
    make_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/plain.cnn", dir);
    struct cnn_preproc pp = {.c = 1, .h = 5, .w = 5, .std = {1, 1, 1}};
    struct cnn_err err = {0};
    struct cnn_model *m = cnn_model_create(&pp, &err);
    struct cnn_layer_desc d = desc(CNN_LAYER_FLATTEN, NULL);
    add_layer(m, &d, 1);
    d = desc(CNN_LAYER_DENSE, NULL), d.p.dense.out = 3;
    add_layer(m, &d, 2);
    ck_assert_int_eq(cnn_model_alloc_params(m, &err), 0);
    cnn_model_init_random(m, 3);
    size_t nw;
    float *w = snapshot_weights(m, &nw);
    ck_assert_int_eq(cnn_model_save(m, path, &err), 0);
    struct cnn_model *a = NULL;
    ck_assert_msg(cnn_model_load(path, &a, &err) == 0, "%s", err.msg);
    ck_assert_ptr_null(cnn_model_label(a, 0));
    ck_assert_str_eq(cnn_model_meta(a), "");
    ck_assert_str_eq(a->layers[2].name, m->layers[2].name);
    ck_assert_int_eq(a->layers[2].n_weights, 1);
    ck_assert_int_eq(memcmp(a->params, w, nw * sizeof(float)), 0);
    free(w);
    cnn_model_destroy(a);
    cnn_model_destroy(m);
    rm_tree(dir);
}
END_TEST

START_TEST(test_save_replaces_existing_file)
{
    char dir[64], path[96];
    make_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/m.cnn", dir);
    struct cnn_err err = {0};
    struct cnn_model *m1 = build_model(1), *m2 = build_model(2);
    size_t nw;
    float *w2 = snapshot_weights(m2, &nw);
    ck_assert_int_eq(cnn_model_save(m1, path, &err), 0);
    ck_assert_int_eq(cnn_model_save(m2, path, &err), 0);
    ck_assert_int_eq(count_entries(dir), 1);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0644);
    struct cnn_model *a = NULL;
    ck_assert_msg(cnn_model_load(path, &a, &err) == 0, "%s", err.msg);
    assert_same_model(m2, a, w2, nw);
    free(w2);
    cnn_model_destroy(a);
    cnn_model_destroy(m1);
    cnn_model_destroy(m2);
    rm_tree(dir);
}
END_TEST

/* ---- failing saves ------------------------------------------------------------------ */

START_TEST(test_save_into_missing_folder_fails_cleanly)
{
    char dir[64], path[128];
    make_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/missing/m.cnn", dir);
    struct cnn_err err = {0};
    struct cnn_model *m = build_model(3);
    ck_assert_int_eq(cnn_model_save(m, path, &err), CNN_ENOENT);
    ck_assert_ptr_nonnull(strstr(err.msg, "temp file"));
    ck_assert_int_eq(count_entries(dir), 0);
    cnn_model_destroy(m);
    rm_tree(dir);
}
END_TEST

START_TEST(test_save_into_read_only_folder_fails_cleanly)
{
    char dir[64], path[128];
    make_tmpdir(dir, sizeof dir);
    ck_assert_int_eq(chmod(dir, 0555), 0);
    snprintf(path, sizeof path, "%s/m.cnn", dir);
    struct cnn_err err = {0};
    struct cnn_model *m = build_model(3);
    ck_assert_int_eq(cnn_model_save(m, path, &err), CNN_EIO);
    ck_assert_int_eq(count_entries(dir), 0);
    cnn_model_destroy(m);
    rm_tree(dir);
}
END_TEST

START_TEST(test_failed_write_keeps_previous_file_and_leaves_no_temp)
{
    char dir[64], path[96];
    make_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/m.cnn", dir);
    struct cnn_err err = {0};
    struct cnn_model *m1 = build_model(1), *m2 = build_model(2);
    ck_assert_int_eq(cnn_model_save(m1, path, &err), 0);
    size_t n1;
    unsigned char *before = read_all(path, &n1);

    /* A file size limit below the model's size makes write() fail with EFBIG. */
    struct rlimit old, small;
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    small = old;
    small.rlim_cur = 1000;
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &small), 0);
    int rc = cnn_model_save(m2, path, &err);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, old_handler);

    ck_assert_int_eq(rc, CNN_EIO);
    ck_assert_ptr_nonnull(strstr(err.msg, "write failed"));
    ck_assert_int_eq(count_entries(dir), 1);
    size_t n2;
    unsigned char *after = read_all(path, &n2);
    ck_assert_uint_eq(n2, n1);
    ck_assert_int_eq(memcmp(before, after, n1), 0);
    struct cnn_model *a = NULL;
    ck_assert_int_eq(cnn_model_load(path, &a, &err), 0);
    cnn_model_destroy(a);
    free(before);
    free(after);
    cnn_model_destroy(m1);
    cnn_model_destroy(m2);
    rm_tree(dir);
}
END_TEST

START_TEST(test_failed_rename_removes_temp_file)
{
    char dir[64], path[96], inner[128];
    make_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/m.cnn", dir);
    ck_assert_int_eq(mkdir(path, 0755), 0); /* the target is a folder: rename must fail */
    snprintf(inner, sizeof inner, "%s/keep", path);
    FILE *f = fopen(inner, "w");
    fclose(f);
    struct cnn_err err = {0};
    struct cnn_model *m = build_model(4);
    ck_assert_int_eq(cnn_model_save(m, path, &err), CNN_EIO);
    ck_assert_ptr_nonnull(strstr(err.msg, "rename"));
    ck_assert_int_eq(count_entries(dir), 1);
    ck_assert_int_eq(count_entries(path), 1);
    cnn_model_destroy(m);
    rm_tree(dir);
}
END_TEST

START_TEST(test_save_rejects_model_without_params_or_bad_path)
{
    char dir[64], path[96];
    make_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/m.cnn", dir);
    struct cnn_preproc pp = {.c = 1, .h = 4, .w = 4, .std = {1, 1, 1}};
    struct cnn_err err = {0};
    struct cnn_model *m = cnn_model_create(&pp, &err);
    struct cnn_layer_desc d = desc(CNN_LAYER_FLATTEN, NULL);
    add_layer(m, &d, 1);
    d = desc(CNN_LAYER_DENSE, NULL), d.p.dense.out = 2;
    add_layer(m, &d, 2);
    ck_assert_int_eq(cnn_model_save(m, path, &err), CNN_EINVAL); /* no alloc_params yet */
    ck_assert_ptr_nonnull(strstr(err.msg, "alloc"));
    ck_assert_int_eq(cnn_model_alloc_params(m, &err), 0);
    snprintf(path, sizeof path, "%s/", dir);
    ck_assert_int_eq(cnn_model_save(m, path, &err), CNN_EINVAL);
    ck_assert_int_eq(count_entries(dir), 0);
    cnn_model_destroy(m);
    rm_tree(dir);
}
END_TEST

Suite *model_io_suite(void)
{
    Suite *s = suite_create("model_io");
    TCase *tc = tcase_create("round_trip");
    tcase_add_test(tc, test_round_trip_file_and_memory_keep_everything);
    tcase_add_test(tc, test_saving_compiled_model_keeps_unfolded_weights_and_outputs);
    tcase_add_test(tc, test_unlabelled_model_without_meta_round_trips);
    tcase_add_test(tc, test_bgr_is_header_flag_bit0_and_round_trips);
    tcase_add_test(tc, test_eight_channel_model_round_trips);
    tcase_add_test(tc, test_save_replaces_existing_file);
    suite_add_tcase(s, tc);

    tc = tcase_create("save_failures");
    tcase_add_test(tc, test_save_into_missing_folder_fails_cleanly);
    if (geteuid() != 0) /* root ignores folder permissions: not run (not counted) as root;
                         * the write and rename failure tests cover the cleanup paths */
        tcase_add_test(tc, test_save_into_read_only_folder_fails_cleanly);
    tcase_add_test(tc, test_failed_write_keeps_previous_file_and_leaves_no_temp);
    tcase_add_test(tc, test_failed_rename_removes_temp_file);
    tcase_add_test(tc, test_save_rejects_model_without_params_or_bad_path);
    suite_add_tcase(s, tc);
    return s;
}
