/* `cnn eval MODEL --data PATH`: runs the compiled model (the inference path cnnd serves)
 * over every item of an IDX or class-folder dataset and prints the accuracy, the accuracy
 * per class and the confusion matrix (rows: true class, columns: prediction).  Class
 * folders are matched to the model's labels by name. */
#include "gemm.h"
#include "image.h"
#include "json_out.h"
#include "opts.h"
#include "plot.h"
#include "tool.h"
#include "tool_data.h"
#include "train_loop.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char USAGE[] =
    "usage: cnn eval MODEL --data PATH [--format F] [--split NAME] [--classes LIST]\n"
    "                [--batch N] [--threads T] [--json] [--plot FILE.png]\n"
    "Evaluates MODEL (a model file, or arch:NAME with random weights from seed 1) on a\n"
    "dataset: accuracy, per-class accuracy and the confusion matrix (rows: true class,\n"
    "columns: predicted class; printed up to 40 classes).\n"
    "  --data PATH       IDX files (a folder holding <split>-images-idx3-ubyte[.gz], or an\n"
    "                    images file) or a folder with one subfolder of images per class;\n"
    "                    subfolder names are matched to the model's labels\n"
    "  --format F        auto, idx or folder (default auto)\n"
    "  --split NAME      IDX file prefix in a folder (default t10k, the test set)\n"
    "  --classes LIST    only these dataset classes (IDX labels), e.g. 0,2,7: with fewer\n"
    "                    classes than the model they keep their numbers, else they are\n"
    "                    renumbered 0,1,2 as 'cnn train --classes' does\n"
    "  --batch N         images per forward pass, 1..4096 (default 100)\n"
    "  --threads T       BLAS threads, 1..256 (default: OpenBLAS's choice)\n"
    "  --json            one JSON object instead of the text: model, data, images, correct,\n"
    "                    accuracy, per_class [{index,label,count,correct,accuracy}],\n"
    "                    confusion (rows: true class, columns: predicted class)\n"
    "  --plot FILE.png   the confusion matrix as a picture (cells shaded by the row's\n"
    "                    fraction, counts written in them; up to 100 classes)\n"
    "example: cnn eval models/repository/fashion/1/model.cnn \\\n"
    "           --data /usr/share/datasets/fashion-mnist\n";

enum { O_DATA, O_FORMAT, O_SPLIT, O_CLASSES, O_BATCH, O_THREADS, O_JSON, O_PLOT, O_COUNT };
static const struct opt_spec SPEC[O_COUNT] = {
    [O_DATA] = {"--data", 1},       [O_FORMAT] = {"--format", 1}, [O_SPLIT] = {"--split", 1},
    [O_CLASSES] = {"--classes", 1}, [O_BATCH] = {"--batch", 1},   [O_THREADS] = {"--threads", 1},
    [O_JSON] = {"--json", 0},       [O_PLOT] = {"--plot", 1}};

#define MATRIX_MAX_CLASSES 40

/* label_map[k] = the model class of dataset class k.  Folder names go by the model's
 * labels; IDX labels (and --classes subsets) keep their numbers. */
static int map_labels(const struct cnn_model *m, const struct cnn_dataset *d,
                      const char *classes_opt, int *map)
{
    int nd = cnn_dataset_num_classes(d), K = cnn_model_num_classes(m);
    for (int k = 0; k < nd; k++)
        map[k] = k; /* the renumbered subset: a model trained with the same --classes */
    if (classes_opt) {
        char **items;
        int n, keep = 1;
        if (tool_split_list("eval", "--classes", classes_opt, CNN_MAX_CLASSES, &items, &n))
            return TOOL_USAGE;
        for (int k = 0; k < n; k++)
            keep = keep && atoi(items[k]) < K;
        for (int k = 0; keep && n < K && k < nd && k < n; k++)
            map[k] = atoi(items[k]); /* a subset of a bigger model's classes */
        free(items);
    }
    if (cnn_dataset_class_name(d, 0)) {
        int found = 0;
        for (int k = 0; k < nd; k++)
            for (int j = 0; j < K; j++) {
                const char *l = cnn_model_label(m, j);
                if (l && strcmp(l, cnn_dataset_class_name(d, k)) == 0) {
                    map[k] = j;
                    found++;
                    break;
                }
            }
        if (found != nd && nd != K)
            return tool_fail("eval", "%d of the %d class folders are not labels of the model",
                             nd - found, nd);
        if (found != nd)
            fprintf(stderr, "cnn: eval: class folder names are not the model's labels; "
                            "matching them by sorted order\n");
    }
    for (int k = 0; k < nd; k++)
        if (map[k] >= K)
            return tool_fail("eval", "dataset class %d is beyond the model's %d classes", map[k],
                             K);
    return TOOL_OK;
}

static void print_results(const struct cnn_model *m, const long *cm, int K)
{
    long total = 0, right = 0;
    for (int i = 0; i < K; i++)
        for (int j = 0; j < K; j++) {
            total += cm[(size_t)i * K + j];
            right += i == j ? cm[(size_t)i * K + j] : 0;
        }
    printf("accuracy: %.2f%% (%ld/%ld)\n", total ? 100.0 * right / total : 0.0, right, total);
    printf("per-class accuracy:\n");
    for (int i = 0; i < K; i++) {
        long n = 0;
        for (int j = 0; j < K; j++)
            n += cm[(size_t)i * K + j];
        if (!n)
            continue;
        const char *l = cnn_model_label(m, i);
        printf("  %3d %-20s %6.2f%% (%ld/%ld)\n", i, l ? l : "", 100.0 * cm[(size_t)i * K + i] / n,
               cm[(size_t)i * K + i], n);
    }
    if (K > MATRIX_MAX_CLASSES) {
        printf("confusion matrix: not printed for %d classes\n", K);
        return;
    }
    printf("confusion matrix (rows: true class, columns: predicted class):\n     ");
    for (int j = 0; j < K; j++)
        printf(" %5d", j);
    printf("\n");
    for (int i = 0; i < K; i++) {
        printf("  %3d", i);
        for (int j = 0; j < K; j++)
            printf(" %5ld", cm[(size_t)i * K + j]);
        printf("\n");
    }
}

static void print_json(const struct cnn_model *m, const char *spec, const char *data,
                       const long *cm, int K)
{
    long total = 0, right = 0;
    for (int i = 0; i < K * K; i++)
        total += cm[i], right += i % (K + 1) == 0 ? cm[i] : 0;
    printf("{\"model\":");
    json_put_string(stdout, spec);
    printf(",\"data\":");
    json_put_string(stdout, data);
    printf(",\"images\":%ld,\"correct\":%ld,\"accuracy\":", total, right);
    json_put_number(stdout, total ? (double)right / total : NAN, 6);
    printf(",\"per_class\":[");
    for (int i = 0; i < K; i++) {
        long n = 0;
        for (int j = 0; j < K; j++)
            n += cm[(size_t)i * K + j];
        const char *l = cnn_model_label(m, i);
        printf("%s{\"index\":%d,\"label\":", i ? "," : "", i);
        json_put_string(stdout, l ? l : "");
        printf(",\"count\":%ld,\"correct\":%ld,\"accuracy\":", n, cm[(size_t)i * K + i]);
        json_put_number(stdout, n ? (double)cm[(size_t)i * K + i] / n : NAN, 6);
        printf("}");
    }
    printf("],\"confusion\":[");
    for (int i = 0; i < K; i++) {
        printf("%s[", i ? "," : "");
        for (int j = 0; j < K; j++)
            printf("%s%ld", j ? "," : "", cm[(size_t)i * K + j]);
        printf("]");
    }
    printf("]}\n");
}

int cmd_eval(int argc, char **argv)
{
    const char *v[O_COUNT];
    int n_pos;
    int rc = opts_parse("eval", argc, argv, SPEC, O_COUNT, v, &n_pos);
    if (rc == OPTS_HELP) {
        fputs(USAGE, stdout);
        return TOOL_OK;
    }
    if (rc)
        return TOOL_USAGE;
    if (n_pos != 1)
        return tool_usage("eval", "expected one MODEL, got %d arguments", n_pos);
    long long batch = 100, threads = 0;
    if ((v[O_BATCH] && opts_int("eval", "--batch", v[O_BATCH], 1, 4096, &batch)) ||
        (v[O_THREADS] && opts_int("eval", "--threads", v[O_THREADS], 1, 256, &threads)))
        return TOOL_USAGE;
    if (!v[O_DATA])
        return tool_usage("eval", "--data PATH is required");
    if (threads > 0)
        cnn_gemm_set_threads((int)threads);
    struct cnn_model *m;
    rc = tool_open_model(argv[1], TOOL_ARCH_RANDOM, &m);
    if (rc)
        return rc;
    struct tool_data_opts o = {v[O_DATA], v[O_FORMAT], v[O_SPLIT] ? v[O_SPLIT] : "t10k",
                               v[O_CLASSES]};
    struct cnn_dataset *d = NULL;
    int K = cnn_model_num_classes(m);
    long *cm = NULL;
    int *map = NULL;
    rc = tool_open_dataset("eval", &o, cnn_model_preproc(m), &d);
    if (rc)
        goto out;
    cm = calloc((size_t)K * (size_t)K, sizeof *cm);
    map = malloc((size_t)cnn_dataset_num_classes(d) * sizeof *map);
    if (!cm || !map) {
        rc = tool_fail("eval", "out of memory for a %dx%d confusion matrix", K, K);
        goto out;
    }
    rc = map_labels(m, d, v[O_CLASSES], map);
    if (rc)
        goto out;
    char name[128];
    tool_model_name(argv[1], m, name, sizeof name);
    if (!v[O_JSON])
        printf("model: %s (%s), %d classes\ndata: %s, %d images\n", argv[1], name, K,
               cnn_dataset_source(d), cnn_dataset_count(d));
    struct cnn_err err = {0};
    if (cnn_train_loop_confusion(m, d, NULL, 0, map, (int)batch, NULL, cm, &err) != 0) {
        rc = tool_fail("eval", "%s", err.msg);
        goto out;
    }
    if (v[O_JSON])
        print_json(m, argv[1], cnn_dataset_source(d), cm, K);
    else
        print_results(m, cm, K);
    if (v[O_PLOT]) {
        struct cnn_image img;
        rc = cnn_plot_confusion(cm, K, &img, &err) ? tool_fail("eval", "--plot: %s", err.msg)
                                                    : tool_write_png("eval", v[O_PLOT], &img);
    }
out:
    free(cm);
    free(map);
    cnn_dataset_destroy(d);
    cnn_model_destroy(m);
    return rc;
}
