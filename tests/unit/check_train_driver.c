/* Suite `train_driver`: the training driver shared by `cnn train` and fine-tune jobs -- the
 * same labels keep the head (outputs unchanged), other labels replace it, the split and
 * step plan, the lineage keys in their documented order (also from a parent written with
 * the old keys), cancel between steps, and the argument errors. */
#include "dataset.h"
#include "session.h"
#include "test_nets.h"
#include "train_driver.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];
static struct cnn_dataset *data; /* 1x8x8 items, labels 0..3, from setup() */

/* Big-endian u32 fields of an IDX header, then the payload. */
static void write_idx(const char *name, const unsigned *hdr, int n_hdr, const unsigned char *b,
                      size_t n)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    for (int i = 0; i < n_hdr; i++)
        for (int s = 24; s >= 0; s -= 8)
            fputc((int)((hdr[i] >> s) & 0xff), f);
    ck_assert_uint_eq(fwrite(b, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

/* 96 items of 8x8: dim noise and a bright 2x2 block in quadrant (label) i % 4. */
static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/check_driver.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    enum { N = 96, S = 8 };
    static unsigned char img[N * S * S], lab[N];
    unsigned r = 12345;
    for (int i = 0; i < N; i++) {
        unsigned char *p = img + i * S * S;
        for (int q = 0; q < S * S; q++)
            p[q] = (unsigned char)((r = r * 1103515245u + 12345u) >> 26);
        int k = i % 4, y0 = (k / 2) * 4 + (i / 4) % 3, x0 = (k % 2) * 4 + (i / 12) % 3;
        p[y0 * S + x0] = p[y0 * S + x0 + 1] = p[(y0 + 1) * S + x0] = p[(y0 + 1) * S + x0 + 1] = 250;
        lab[i] = (unsigned char)k;
    }
    write_idx("train-images-idx3-ubyte", (const unsigned[]){0x803, N, S, S}, 4, img, sizeof img);
    write_idx("train-labels-idx1-ubyte", (const unsigned[]){0x801, N}, 2, lab, sizeof lab);
    struct cnn_model *m = test_net_small(1);
    struct cnn_err err = {0};
    ck_assert_msg(
        cnn_dataset_open(dir, CNN_DATASET_IDX, "train", cnn_model_preproc(m), &data, &err) == 0,
        "%s", err.msg);
    cnn_model_destroy(m);
}

static void teardown(void)
{
    cnn_dataset_destroy(data);
    data = NULL;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "check_train_driver: cannot remove %s\n", dir);
}

/* The 4-class test net (labels zero..three), with metadata meta, compiled. */
static struct cnn_model *base_model(const char *meta)
{
    struct cnn_err err = {0};
    struct cnn_model *m = test_net_small(7);
    if (meta)
        ck_assert_int_eq(cnn_model_set_meta(m, meta, &err), 0);
    ck_assert_msg(cnn_model_compile(m, &err) == 0, "%s", err.msg);
    return m;
}

static void small_opts(struct cnn_train_driver_opts *o)
{
    cnn_train_driver_opts_default(o);
    o->epochs = 2;
    o->batch = 8;
    o->val_split = 0.25;
    o->train.seed = 3;
    o->parent = "base.cnn";
    o->trained_by = "check_train_driver";
}

static struct cnn_train_driver *driver_for(const struct cnn_model *base,
                                           const struct cnn_train_driver_opts *o)
{
    struct cnn_err err = {0};
    struct cnn_train_driver *drv = NULL;
    ck_assert_msg(cnn_train_driver_create(data, o, &drv, &err) == 0, "%s", err.msg);
    ck_assert_msg(cnn_train_driver_setup(drv, base, &err) == 0, "%s", err.msg);
    return drv;
}

/* Largest |a - b| of the two models' outputs on the same seeded inputs. */
static double output_gap(const struct cnn_model *a, const struct cnn_model *b)
{
    struct cnn_err err = {0};
    struct cnn_session *sa = cnn_session_create(a, 4, &err), *sb = cnn_session_create(b, 4, &err);
    ck_assert(sa && sb);
    float x[4 * 64];
    test_fill(x, 4 * 64, 99);
    const float *pa, *pb;
    ck_assert_int_eq(cnn_session_forward(sa, a, x, 4, &pa, &err), 0);
    ck_assert_int_eq(cnn_session_forward(sb, b, x, 4, &pb, &err), 0);
    double gap = 0;
    for (int i = 0; i < 4 * cnn_model_num_classes(a); i++)
        gap = fmax(gap, fabs((double)pa[i] - pb[i]));
    cnn_session_destroy(sa);
    cnn_session_destroy(sb);
    return gap;
}

/* Sets up a driver over base for labels[0..n) (NULL: none) and exports at once; checks
 * the head it reports, the classes and last label of the export and the lineage's
 * head / classes lines.  Returns the export (owned by the caller). */
static struct cnn_model *export_for_labels(const struct cnn_model *base, const char *const *labels,
                                           int n, enum cnn_train_head want)
{
    struct cnn_train_driver_opts o;
    small_opts(&o);
    o.labels = labels;
    o.n_labels = n;
    struct cnn_train_driver *drv = driver_for(base, &o);
    struct cnn_train_driver_info in;
    cnn_train_driver_info(drv, &in);
    int classes = labels ? n : cnn_model_num_classes(base);
    ck_assert_int_eq(in.head, want);
    ck_assert_int_eq(in.classes, classes);
    struct cnn_model *out = NULL;
    struct cnn_err err = {0};
    ck_assert_msg(cnn_train_driver_export(drv, &out, &err) == 0, "%s", err.msg);
    cnn_train_driver_destroy(drv);
    ck_assert_int_eq(cnn_model_num_classes(out), classes);
    ck_assert_str_eq(cnn_model_label(out, classes - 1),
                     labels ? labels[n - 1] : cnn_model_label(base, classes - 1));
    char line[48];
    snprintf(line, sizeof line, "\nhead=%s\nclasses=%d\n",
             want == CNN_TRAIN_HEAD_KEPT ? "kept" : "replaced", classes);
    ck_assert_msg(strstr(cnn_model_meta(out), line), "no '%s'", line);
    return out;
}

START_TEST(test_same_labels_or_none_keep_the_head_and_its_weights)
{
    struct cnn_model *base = base_model(NULL);
    const char *same[4] = {"zero", "one", "two", "three"};
    for (int with_labels = 0; with_labels < 2; with_labels++) {
        struct cnn_model *out =
            export_for_labels(base, with_labels ? same : NULL, 4, CNN_TRAIN_HEAD_KEPT);
        ck_assert_msg(output_gap(base, out) < 1e-6, "the kept head changed the outputs");
        cnn_model_destroy(out);
    }
    cnn_model_destroy(base);
}
END_TEST

START_TEST(test_other_labels_replace_the_head_with_their_class_count)
{
    struct cnn_model *base = base_model(NULL);
    const char *two[2] = {"left", "right"};
    struct cnn_model *out = export_for_labels(base, two, 2, CNN_TRAIN_HEAD_REPLACED);
    ck_assert_str_eq(cnn_model_label(out, 0), "left");
    cnn_model_destroy(out);
    const char *renamed[4] = {"zero", "one", "two", "drei"}; /* same count, another name */
    out = export_for_labels(base, renamed, 4, CNN_TRAIN_HEAD_REPLACED);
    ck_assert_msg(output_gap(base, out) > 1e-4, "a new head, yet the same outputs");
    cnn_model_destroy(out);
    cnn_model_destroy(base);
}
END_TEST

START_TEST(test_split_and_step_plan)
{
    struct cnn_model *base = base_model(NULL);
    struct cnn_train_driver_opts o;
    small_opts(&o);
    o.epochs = 3;
    o.warmup_epochs = 0.5;
    struct cnn_train_driver *drv = NULL;
    struct cnn_err err = {0};
    ck_assert_int_eq(cnn_train_driver_create(data, &o, &drv, &err), 0);
    struct cnn_train_driver_info in;
    cnn_train_driver_info(drv, &in);
    ck_assert_int_eq(in.n_train, 72); /* 96 items, a quarter of each class held out */
    ck_assert_int_eq(in.n_val, 24);
    ck_assert_int_eq(in.steps_per_epoch, 9);
    ck_assert_int_eq(in.total_steps, 27);
    ck_assert_int_eq(in.warmup_steps, 5); /* 4.5 rounded away from zero */
    ck_assert_int_eq(in.classes, 0);      /* no trainer before setup */
    cnn_train_driver_destroy(drv);
    o.max_steps = 4;
    o.warmup_epochs = 0; /* 5 warm-up steps would not fit in 4 (cosine) */
    drv = driver_for(base, &o);
    cnn_train_driver_info(drv, &in);
    ck_assert_int_eq(in.total_steps, 4);
    ck_assert_msg(cnn_train_driver_run(drv, &err) == 0, "%s", err.msg);
    cnn_train_driver_info(drv, &in);
    ck_assert_int_eq(in.steps_done, 4);
    cnn_train_driver_destroy(drv);
    cnn_model_destroy(base);
}
END_TEST

/* The keys of meta's lines, space-separated, into keys. */
static void key_list(const char *meta, char *keys, size_t cap)
{
    size_t n = 0;
    keys[0] = '\0';
    for (const char *l = meta; *l;) {
        const char *eq = strchr(l, '='), *nl = strchr(l, '\n');
        ck_assert_ptr_nonnull(eq);
        ck_assert_ptr_nonnull(nl);
        n += (size_t)snprintf(keys + n, cap - n, "%s%.*s", n ? " " : "", (int)(eq - l), l);
        l = nl + 1;
    }
}

START_TEST(test_lineage_has_the_documented_keys_in_order)
{
    struct cnn_model *base = base_model("arch=small\ntrained_at=2026-01-02T03:04:05Z\n");
    struct cnn_train_driver_opts o;
    small_opts(&o);
    o.dataset = "idx:set";
    o.dataset_split = "train";
    o.dataset_classes = "0,1,2,3";
    o.aug.crop_pad = 1;
    o.extra = "job_id=7"; /* a missing newline is added */
    struct cnn_train_driver *drv = driver_for(base, &o);
    struct cnn_err err = {0};
    ck_assert_msg(cnn_train_driver_run(drv, &err) == 0, "%s", err.msg);
    struct cnn_model *out = NULL;
    ck_assert_msg(cnn_train_driver_export(drv, &out, &err) == 0, "%s", err.msg);
    const char *meta = cnn_model_meta(out);
    char keys[1024];
    key_list(meta, keys, sizeof keys);
    ck_assert_str_eq(keys, "arch parent parent_trained_at head classes dataset dataset_split "
                           "dataset_classes train_items val_items val_split epochs augment "
                           "crop_pad lr momentum nesterov weight_decay schedule step_epochs "
                           "step_gamma warmup_steps total_steps loss seed batch bn_momentum "
                           "frozen_upto steps final_train_loss final_train_acc final_val_loss "
                           "final_val_acc train_seconds job_id trained_at trained_by");
    const char *want[] = {"arch=small\n",
                          "parent=base.cnn\n",
                          "parent_trained_at=2026-01-02T03:04:05Z\n",
                          "dataset=idx:set\n",
                          "train_items=72\nval_items=24\nval_split=0.25\nepochs=2\n",
                          "augment=crop\ncrop_pad=1\n",
                          "steps=18\n",
                          "job_id=7\n",
                          "trained_by=check_train_driver\n"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        ck_assert_msg(strstr(meta, want[i]) != NULL, "no '%s' in\n%s", want[i], meta);
    char *again = cnn_train_driver_lineage(drv);
    ck_assert_ptr_nonnull(again);
    ck_assert_int_eq(strncmp(again, meta, 200), 0);
    free(again);
    cnn_model_destroy(out);
    cnn_train_driver_destroy(drv);
    cnn_model_destroy(base);
}
END_TEST

START_TEST(test_fresh_model_lineage_says_random_init)
{
    struct cnn_model *base = base_model("arch=small\ntrained_at=2026-01-02T03:04:05Z\n");
    struct cnn_train_driver_opts o;
    small_opts(&o);
    o.parent = NULL; /* built here from an architecture */
    struct cnn_train_driver *drv = driver_for(base, &o);
    char *meta = cnn_train_driver_lineage(drv);
    ck_assert_ptr_nonnull(meta);
    ck_assert_ptr_nonnull(strstr(meta, "arch=small\nparent=none (random init)\nhead=random\n"));
    ck_assert_ptr_null(strstr(meta, "parent_trained_at"));
    ck_assert_ptr_nonnull(strstr(meta, "dataset=idx:")); /* cnn_dataset_source() */
    ck_assert_ptr_nonnull(strstr(meta, "augment=none\n"));
    ck_assert_ptr_null(strstr(meta, "final_")); /* nothing trained yet */
    free(meta);
    cnn_train_driver_destroy(drv);
    cnn_model_destroy(base);
}
END_TEST

/* Files written before the driver carry `new_head=N classes` (cnn train) or
 * `head=kept|replaced` (jobs): they load, fine-tune, and the child gets the new keys. */
START_TEST(test_parent_with_the_old_keys_loads_and_fine_tunes)
{
    struct cnn_model *old = base_model("arch=small\nparent=x.cnn\nnew_head=4 classes\n"
                                       "head=replaced\ntrained_at=2025-05-05T05:05:05Z\n");
    char path[128];
    snprintf(path, sizeof path, "%s/old.cnn", dir);
    struct cnn_err err = {0};
    ck_assert_msg(cnn_model_save(old, path, &err) == 0, "%s", err.msg);
    cnn_model_destroy(old);
    struct cnn_model *base = NULL;
    ck_assert_msg(cnn_model_load(path, &base, &err) == 0, "%s", err.msg);
    ck_assert_ptr_nonnull(strstr(cnn_model_meta(base), "new_head=4 classes\n"));
    struct cnn_train_driver_opts o;
    small_opts(&o);
    o.epochs = 1;
    struct cnn_train_driver *drv = driver_for(base, &o);
    ck_assert_msg(cnn_train_driver_run(drv, &err) == 0, "%s", err.msg);
    struct cnn_model *out = NULL;
    ck_assert_msg(cnn_train_driver_export(drv, &out, &err) == 0, "%s", err.msg);
    const char *meta = cnn_model_meta(out);
    ck_assert_ptr_nonnull(strstr(meta, "parent_trained_at=2025-05-05T05:05:05Z\nhead=kept\n"));
    ck_assert_ptr_null(strstr(meta, "new_head"));
    ck_assert_ptr_null(strstr(meta, "head=replaced"));
    cnn_model_destroy(out);
    cnn_train_driver_destroy(drv);
    cnn_model_destroy(base);
}
END_TEST

struct stopper {
    atomic_int *flag;
    long at_step, calls;
};

static void stop_at(const struct cnn_train_progress *p, void *arg)
{
    struct stopper *s = arg;
    s->calls++;
    if (p->total_step == s->at_step)
        atomic_store(s->flag, 1);
}

START_TEST(test_cancel_stops_between_steps)
{
    struct cnn_model *base = base_model(NULL);
    atomic_int flag = 0;
    struct stopper st = {.flag = &flag, .at_step = 3};
    struct cnn_train_driver_opts o;
    small_opts(&o);
    o.train.cancel = &flag;
    o.progress = stop_at;
    o.progress_arg = &st;
    struct cnn_train_driver *drv = driver_for(base, &o);
    struct cnn_err err = {0};
    ck_assert_int_eq(cnn_train_driver_run(drv, &err), CNN_ECANCELED);
    ck_assert_int_eq(err.code, CNN_ECANCELED);
    struct cnn_train_driver_info in;
    cnn_train_driver_info(drv, &in);
    ck_assert_int_eq(in.steps_done, 3);
    ck_assert_int_eq(st.calls, 3);
    ck_assert_int_eq(in.epochs_done, 0);
    ck_assert_ptr_null(in.last);
    cnn_train_driver_destroy(drv);
    cnn_model_destroy(base);
}
END_TEST

/* The base model's validation score before training, against a session forward pass over
 * the same stratified split (cnn_dataset_split with the driver's fraction and seed) with
 * argmax and -log p counted here; after the run, validate() equals the last epoch's. */
START_TEST(test_validate_scores_the_base_on_the_validation_items)
{
    struct cnn_model *base = base_model(NULL);
    struct cnn_train_driver_opts o;
    small_opts(&o);
    struct cnn_train_driver *drv = driver_for(base, &o);
    struct cnn_err err = {0};
    double acc = 0, loss = 0;
    ck_assert_msg(cnn_train_driver_validate(drv, &acc, &loss, &err) == 0, "%s", err.msg);

    int n = cnn_dataset_count(data), n_train = 0, n_val = 0;
    int *tr = malloc((size_t)n * sizeof *tr), *va = malloc((size_t)n * sizeof *va);
    ck_assert_int_eq(cnn_dataset_split(data, 0.25, 3, tr, &n_train, va, &n_val, &err), 0);
    ck_assert_int_eq(n_val, 24);
    float *x = malloc((size_t)n_val * 64 * sizeof *x);
    int *lab = malloc((size_t)n_val * sizeof *lab);
    cnn_dataset_batch(data, va, n_val, NULL, 0, x, lab);
    struct cnn_session *s = cnn_session_create(base, n_val, &err);
    ck_assert_ptr_nonnull(s);
    const float *p;
    ck_assert_int_eq(cnn_session_forward(s, base, x, n_val, &p, &err), 0);
    int right = 0;
    double sum = 0;
    for (int i = 0; i < n_val; i++) {
        const float *row = p + i * 4;
        int best = 0;
        for (int k = 1; k < 4; k++)
            best = row[k] > row[best] ? k : best;
        right += best == lab[i];
        sum -= log(fmax((double)row[lab[i]], 1e-30));
    }
    ck_assert_msg(fabs(acc - (double)right / n_val) < 1e-9, "validate %.4f, reference %.4f", acc,
                  (double)right / n_val);
    ck_assert_msg(fabs(loss - sum / n_val) < 1e-3, "loss %.5f, reference %.5f", loss, sum / n_val);

    ck_assert_msg(cnn_train_driver_run(drv, &err) == 0, "%s", err.msg);
    struct cnn_train_driver_info in;
    cnn_train_driver_info(drv, &in);
    ck_assert_int_eq(cnn_train_driver_validate(drv, &acc, &loss, &err), 0);
    ck_assert_msg(fabs(acc - in.last->val_acc) < 1e-12, "after the run %.4f vs epoch %.4f", acc,
                  in.last->val_acc);
    cnn_train_driver_destroy(drv);
    struct cnn_train_driver *none = NULL;
    ck_assert_int_eq(cnn_train_driver_create(data, &o, &none, &err), 0);
    ck_assert_int_eq(cnn_train_driver_validate(none, &acc, &loss, &err), CNN_EINVAL); /* no setup */
    ck_assert(isnan(acc) && isnan(loss));
    cnn_train_driver_destroy(none);
    cnn_session_destroy(s);
    free(x);
    free(lab);
    free(tr);
    free(va);
    cnn_model_destroy(base);
}
END_TEST

START_TEST(test_errors_are_returned_not_crashed_on)
{
    struct cnn_model *base = base_model(NULL);
    struct cnn_train_driver_opts o;
    small_opts(&o);
    struct cnn_train_driver *drv = NULL;
    struct cnn_err err = {0};
    o.val_split = 1.0;
    ck_assert_int_eq(cnn_train_driver_create(data, &o, &drv, &err), CNN_EINVAL);
    ck_assert_ptr_null(drv);
    small_opts(&o);
    o.batch = 0;
    ck_assert_int_eq(cnn_train_driver_create(data, &o, &drv, &err), CNN_EINVAL);
    small_opts(&o);
    o.train.freeze_upto = "no_such_layer";
    ck_assert_int_eq(cnn_train_driver_create(data, &o, &drv, &err), 0);
    struct cnn_model *out = NULL;
    ck_assert_int_eq(cnn_train_driver_run(drv, &err), CNN_EINVAL);
    ck_assert_int_eq(cnn_train_driver_export(drv, &out, &err), CNN_EINVAL);
    ck_assert_ptr_null(cnn_train_driver_lineage(drv));
    ck_assert_int_eq(cnn_train_driver_setup(drv, base, &err), CNN_ENOENT);
    cnn_train_driver_destroy(drv);
    small_opts(&o);
    const char *bad[2] = {"ok", ""}; /* an empty label cannot name a class */
    o.labels = bad;
    o.n_labels = 2;
    ck_assert_int_eq(cnn_train_driver_create(data, &o, &drv, &err), 0);
    ck_assert_int_eq(cnn_train_driver_setup(drv, base, &err), CNN_EINVAL);
    ck_assert_msg(strncmp(err.msg, "new head: ", 10) == 0, "%s", err.msg);
    o.labels = NULL;
    cnn_train_driver_destroy(drv);
    drv = driver_for(base, &o);
    ck_assert_int_eq(cnn_train_driver_setup(drv, base, &err), CNN_EINVAL); /* twice */
    cnn_train_driver_destroy(drv);
    cnn_train_driver_destroy(NULL);
    cnn_model_destroy(base);
}
END_TEST

Suite *train_driver_suite(void)
{
    Suite *s = suite_create("train_driver");
    TCase *tc = tcase_create("driver");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_same_labels_or_none_keep_the_head_and_its_weights);
    tcase_add_test(tc, test_other_labels_replace_the_head_with_their_class_count);
    tcase_add_test(tc, test_split_and_step_plan);
    tcase_add_test(tc, test_lineage_has_the_documented_keys_in_order);
    tcase_add_test(tc, test_fresh_model_lineage_says_random_init);
    tcase_add_test(tc, test_parent_with_the_old_keys_loads_and_fine_tunes);
    tcase_add_test(tc, test_cancel_stops_between_steps);
    tcase_add_test(tc, test_validate_scores_the_base_on_the_validation_items);
    tcase_add_test(tc, test_errors_are_returned_not_crashed_on);
    suite_add_tcase(s, tc);
    return s;
}
