/* `cnn onnx-test DIR...`: runs ONNX backend test folders (model.onnx plus
 * test_data_set_N/input_K.pb and output_0.pb) through the importer and a session; one line
 * per test (pass / FAIL with the max error / skip with the reason), skip reasons grouped,
 * and "run N passed P failed F skipped S".  A DIR without model.onnx is a folder of tests.
 * Exit 1 only when a test that ran failed. */
#include "onnx.h"
#include "opts.h"
#include "session.h"
#include "tool.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char USAGE[] =
    "usage: cnn onnx-test [--quiet] DIR...\n"
    "Runs ONNX backend tests: each DIR is a test folder (model.onnx, test_data_set_*/) or a\n"
    "folder of them.  Input 0 is the batch (N,C,H,W), (N,K), (N,C,L) or (N); further inputs\n"
    "are bound as constants.  Output 0 is compared with rtol 1e-3, atol 1e-4.  Prints one\n"
    "line per test (--quiet: only failures), the skip reasons with counts, and the totals.\n"
    "example: cnn onnx-test /usr/share/libonnx-testdata/data/node\n";

#define RTOL 1e-3
#define ATOL 1e-4
#define MAX_FEEDS 16
#define MAX_REASONS 256
#define PATH_LEN 4096

enum verdict { V_PASS, V_FAIL, V_SKIP };

struct tally {
    int run, passed, failed, skipped;
    int n_reasons;
    char reason[MAX_REASONS][96];
    int reason_count[MAX_REASONS];
};

/* The grouping key of a skip reason: the node name and opset dropped. */
static void note_reason(struct tally *t, const char *msg)
{
    char key[96];
    const char *p = strstr(msg, "' (");
    if (strncmp(msg, "onnx: node '", 12) == 0 && p) {
        const char *op = p + 3, *comma = strchr(op, ','), *why = strstr(op, "): ");
        snprintf(key, sizeof key, "%.*s: %s", comma ? (int)(comma - op) : 0, op,
                 why ? why + 3 : "");
    } else {
        snprintf(key, sizeof key, "%.90s", strncmp(msg, "onnx: ", 6) == 0 ? msg + 6 : msg);
    }
    for (int k = 0; k < t->n_reasons; k++)
        if (strcmp(t->reason[k], key) == 0) {
            t->reason_count[k]++;
            return;
        }
    if (t->n_reasons < MAX_REASONS) {
        snprintf(t->reason[t->n_reasons], sizeof t->reason[0], "%s", key);
        t->reason_count[t->n_reasons++] = 1;
    }
}

static int exists(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f)
        fclose(f);
    return f != NULL;
}

/* Sorted names of dir's entries starting with prefix (owned array of owned strings). */
static int list_dir(const char *dir, const char *prefix, char ***names)
{
    *names = NULL;
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || strncmp(e->d_name, prefix, strlen(prefix)) != 0)
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **nn = realloc(*names, (size_t)cap * sizeof *nn);
            if (!nn)
                break;
            *names = nn;
        }
        if (((*names)[n] = strdup(e->d_name)) != NULL)
            n++;
    }
    closedir(d);
    for (int i = 1; i < n; i++) /* insertion sort: a few hundred names */
        for (int j = i; j > 0 && strcmp((*names)[j - 1], (*names)[j]) > 0; j--) {
            char *tmp = (*names)[j];
            (*names)[j] = (*names)[j - 1];
            (*names)[j - 1] = tmp;
        }
    return n;
}

static void free_names(char **names, int n)
{
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

struct data_set {
    void *in[MAX_FEEDS];
    size_t in_size[MAX_FEEDS];
    int n_in;
    void *out;
    size_t out_size;
    int n_out;
};

static void free_set(struct data_set *ds)
{
    for (int k = 0; k < ds->n_in; k++)
        free(ds->in[k]);
    free(ds->out);
}

static int read_set(const char *dir, struct data_set *ds, char *why, size_t n)
{
    char path[PATH_LEN];
    struct cnn_err err = {0};
    memset(ds, 0, sizeof *ds);
    for (int k = 0; k < MAX_FEEDS; k++) {
        snprintf(path, sizeof path, "%.3900s/input_%d.pb", dir, k);
        if (!exists(path))
            break;
        if (tool_read_file(path, &ds->in[k], &ds->in_size[k], &err)) {
            snprintf(why, n, "input_%d.pb: %s", k, err.msg);
            return -1;
        }
        ds->n_in = k + 1;
    }
    while (ds->n_out < 8) {
        snprintf(path, sizeof path, "%.3900s/output_%d.pb", dir, ds->n_out);
        if (!exists(path))
            break;
        ds->n_out++;
    }
    if (ds->n_in == 0) {
        snprintf(why, n, "unsupported: a model without inputs");
        return 1;
    }
    snprintf(path, sizeof path, "%.3900s/output_0.pb", dir);
    if (ds->n_out == 0 || tool_read_file(path, &ds->out, &ds->out_size, &err)) {
        snprintf(why, n, "no input_0.pb or output_0.pb");
        return -1;
    }
    return 0;
}

/* input_0's dims are the model's: (N, C, H, W), or (N, K) / (N, C, L) / (N) for a model
 * taking (N, K, 1, 1) / (N, C, 1, L) / (N, 1, 1, 1). */
static int same_input_shape(const int64_t *dims, int nd, const struct cnn_preproc *pp)
{
    if (nd < 1 || dims[0] < 1 || dims[0] > 1024 || (nd > 1 && dims[1] != pp->c))
        return 0;
    if (nd == 1)
        return pp->c == 1 && pp->h == 1 && pp->w == 1;
    if (nd == 2)
        return pp->h == 1 && pp->w == 1;
    if (nd == 3)
        return pp->h == 1 && dims[2] == pp->w;
    return nd == 4 && dims[2] == pp->h && dims[3] == pp->w;
}

/* Runs one data set against the model bytes; *max_err gets the largest |got - want|. */
static enum verdict run_set(const void *model, size_t model_size, const struct data_set *ds,
                            double *max_err, char *why, size_t n)
{
    struct cnn_err err = {0};
    struct cnn_onnx_feed feeds[MAX_FEEDS];
    for (int k = 1; k < ds->n_in; k++)
        feeds[k - 1] = (struct cnn_onnx_feed){ds->in[k], ds->in_size[k]};
    if (ds->n_out > 1) {
        snprintf(why, n, "unsupported: %d outputs", ds->n_out);
        return V_SKIP;
    }
    struct cnn_model *m = NULL;
    if (cnn_onnx_load_mem(model, model_size, feeds, ds->n_in - 1, &m, &err)) {
        snprintf(why, n, "%s", err.msg);
        return strstr(err.msg, "unsupported") ? V_SKIP : V_FAIL;
    }
    float *x = NULL, *want = NULL;
    size_t nx, nw;
    int64_t dims[CNN_ONNX_MAX_DIMS], wd[CNN_ONNX_MAX_DIMS];
    int nd, nwd;
    enum verdict v = V_FAIL;
    struct cnn_session *s = NULL;
    const float *got;
    const struct cnn_preproc *pp = cnn_model_preproc(m);
    if (cnn_onnx_tensor_read(ds->in[0], ds->in_size[0], &x, &nx, dims, &nd, &err) ||
        cnn_onnx_tensor_read(ds->out, ds->out_size, &want, &nw, wd, &nwd, &err)) {
        snprintf(why, n, "unsupported: test data: %s", err.msg);
        v = V_SKIP;
    } else if (!same_input_shape(dims, nd, pp)) {
        snprintf(why, n, "unsupported: input_0 shape does not match the model's (N,C,H,W)");
        v = V_SKIP;
    } else if (!(s = cnn_session_create(m, (int)dims[0], &err)) ||
               cnn_session_forward(s, m, x, (int)dims[0], &got, &err)) {
        snprintf(why, n, "run: %s", err.msg);
    } else if (nw != (size_t)dims[0] * (size_t)cnn_model_num_classes(m)) {
        snprintf(why, n, "output has %zu values, expected %zu",
                 (size_t)dims[0] * (size_t)cnn_model_num_classes(m), nw);
    } else {
        v = V_PASS;
        *max_err = 0;
        for (size_t k = 0; k < nw; k++) {
            double d = fabs((double)got[k] - want[k]);
            if (isnan(got[k]) && isnan(want[k]))
                continue;
            if (!(d <= ATOL + RTOL * fabs(want[k])))
                v = V_FAIL;
            if (!(d <= *max_err))
                *max_err = d;
        }
        if (v == V_FAIL)
            snprintf(why, n, "max error %.3g", *max_err);
    }
    cnn_session_destroy(s);
    cnn_model_destroy(m);
    free(x);
    free(want);
    return v;
}

static enum verdict run_test(const char *dir, double *max_err, char *why, size_t n)
{
    char path[PATH_LEN];
    struct cnn_err err = {0};
    void *model;
    size_t size;
    snprintf(path, sizeof path, "%.3900s/model.onnx", dir);
    if (tool_read_file(path, &model, &size, &err)) {
        snprintf(why, n, "model.onnx: %s", err.msg);
        return V_FAIL;
    }
    char **sets;
    int n_sets = list_dir(dir, "test_data_set_", &sets);
    enum verdict v = n_sets > 0 ? V_PASS : V_SKIP;
    if (n_sets <= 0)
        snprintf(why, n, "no test_data_set_*");
    *max_err = 0;
    for (int k = 0; k < n_sets && v == V_PASS; k++) {
        struct data_set ds;
        double e = 0;
        snprintf(path, sizeof path, "%.3000s/%.900s", dir, sets[k]);
        int r = read_set(path, &ds, why, n);
        v = r == 0 ? run_set(model, size, &ds, &e, why, n) : r > 0 ? V_SKIP : V_FAIL;
        free_set(&ds);
        if (e > *max_err)
            *max_err = e;
    }
    free_names(sets, n_sets > 0 ? n_sets : 0);
    free(model);
    return v;
}

static void one_test(const char *dir, struct tally *t, int quiet)
{
    char why[256] = "";
    double e = 0;
    enum verdict v = run_test(dir, &e, why, sizeof why);
    const char *name = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
    if (v == V_SKIP) {
        t->skipped++;
        note_reason(t, why);
        if (!quiet)
            printf("skip %s: %s\n", name, why);
        return;
    }
    t->run++;
    if (v == V_PASS) {
        t->passed++;
        if (!quiet)
            printf("pass %s (max error %.3g)\n", name, e);
    } else {
        t->failed++;
        printf("FAIL %s: %s\n", name, why);
    }
}

int cmd_onnx_test(int argc, char **argv)
{
    static const struct opt_spec spec[] = {{"--quiet", 0}};
    const char *val[1];
    int n_pos;
    int r = opts_parse("onnx-test", argc, argv, spec, 1, val, &n_pos);
    if (r == OPTS_HELP) {
        fputs(USAGE, stdout);
        return TOOL_OK;
    }
    if (r != OPTS_OK)
        return TOOL_USAGE;
    if (n_pos < 1)
        return tool_usage("onnx-test", "no test folder given");
    struct tally *t = calloc(1, sizeof *t);
    if (!t)
        return tool_fail("onnx-test", "out of memory");
    char path[PATH_LEN];
    for (int i = 1; i <= n_pos; i++) {
        snprintf(path, sizeof path, "%.3900s/model.onnx", argv[i]);
        if (exists(path)) {
            one_test(argv[i], t, val[0] != NULL);
            continue;
        }
        char **names;
        int n = list_dir(argv[i], "", &names);
        if (n < 0) {
            free(t);
            return tool_fail(argv[i], "not a test folder or a folder of tests");
        }
        for (int k = 0; k < n; k++) {
            snprintf(path, sizeof path, "%.3000s/%.900s", argv[i], names[k]);
            one_test(path, t, val[0] != NULL);
        }
        free_names(names, n);
    }
    if (t->n_reasons)
        printf("skip reasons:\n");
    for (int k = 0; k < t->n_reasons; k++)
        printf("  %4d  %s\n", t->reason_count[k], t->reason[k]);
    printf("run %d passed %d failed %d skipped %d\n", t->run, t->passed, t->failed, t->skipped);
    int rc = t->failed ? TOOL_RUNTIME : TOOL_OK;
    free(t);
    return rc;
}
