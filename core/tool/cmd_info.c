/* `cnn info MODEL`: the model's input and preprocessing, classes, labels and metadata, a
 * table of layers (index, name, kind, inputs, output shape, params, MFLOPs) and totals
 * (params grouped and as a plain "params=N" line, FLOPs per image).  MODEL may be
 * arch:NAME to describe a shipped architecture without a file. */
#include "layer.h"
#include "opts.h"
#include "tool.h"

#include <stdio.h>
#include <string.h>

static const char USAGE[] =
    "usage: cnn info MODEL\n"
    "Prints the input shape, preprocessing, classes, labels and metadata of MODEL, a table of\n"
    "its layers (index, name, kind, inputs, output CxHxW, params, MFLOPs) and the totals.\n"
    "MODEL is a model file or arch:NAME for a shipped architecture (no weights needed).\n"
    "example: cnn info arch:resnet18\n";

#define INPUTS_COL_MAX 40 /* longer input lists (concat) end in ",+N more" */

static void print_preproc(const struct cnn_preproc *pp)
{
    const char *order = pp->c == 1 ? "gray" : pp->c != 3 ? "tensor" : pp->bgr ? "BGR" : "RGB";
    printf("input: %dx%dx%d (%s)\n", pp->c, pp->h, pp->w, order);
    if (pp->resize == CNN_RESIZE_SHORTER_CROP)
        printf("preprocessing: shorter side to %d, center crop %dx%d", pp->resize_short, pp->h,
               pp->w);
    else
        printf("preprocessing: bilinear resize to %dx%d", pp->h, pp->w);
    printf(", scale to [0,1]%s, mean", pp->invert ? ", invert (1 - x)" : "");
    for (int c = 0; c < cnn_preproc_norm_channels(pp); c++)
        printf("%s%g", c ? "," : " ", pp->mean[c]);
    printf(", std");
    for (int c = 0; c < cnn_preproc_norm_channels(pp); c++)
        printf("%s%g", c ? "," : " ", pp->std[c]);
    printf("\n");
}

static void print_meta(const char *meta)
{
    if (!meta || !*meta) {
        printf("meta: (none)\n");
        return;
    }
    printf("meta:\n");
    for (const char *line = meta; *line;) {
        const char *end = strchr(line, '\n');
        int len = end ? (int)(end - line) : (int)strlen(line);
        printf("  %.*s\n", len, line);
        if (!end)
            break;
        line = end + 1;
    }
}

static void print_header(const char *spec, const struct cnn_model *m)
{
    int classes = cnn_model_num_classes(m), labelled = 0;
    for (int i = 0; i < classes; i++)
        labelled += cnn_model_label(m, i) != NULL;
    printf("model: %s\n", spec);
    print_preproc(cnn_model_preproc(m));
    printf("classes: %d\n", classes);
    printf("labels: %d", labelled);
    if (labelled > 0) {
        const char *first = cnn_model_label(m, 0), *last = cnn_model_label(m, classes - 1);
        printf(" (%s .. %s)", first ? first : "?", last ? last : "?");
    }
    printf("\n");
    print_meta(cnn_model_meta(m));
}

/* "a,b,c" of the input layer names, cut to fit INPUTS_COL_MAX. */
static void inputs_text(const struct cnn_model *m, const struct cnn_layer_info *li, char *buf,
                        size_t n)
{
    size_t o = 0;
    buf[0] = '\0';
    if (li->n_inputs == 0) {
        snprintf(buf, n, "-");
        return;
    }
    for (int k = 0; k < li->n_inputs; k++) {
        struct cnn_layer_info in;
        cnn_model_layer_info(m, li->inputs[k], &in);
        size_t len = strlen(in.name) + (k ? 1 : 0);
        if (k > 0 && o + len > INPUTS_COL_MAX) {
            snprintf(buf + o, n - o, ",+%d more", li->n_inputs - k);
            return;
        }
        o += (size_t)snprintf(buf + o, n - o, "%s%s", k ? "," : "", in.name);
    }
}

static void print_layers(const struct cnn_model *m)
{
    int n = cnn_model_layer_count(m), name_w = 4, kind_w = 4, in_w = 6;
    char buf[CNN_NAME_MAX + INPUTS_COL_MAX + 16];
    for (int i = 0; i < n; i++) {
        struct cnn_layer_info li;
        cnn_model_layer_info(m, i, &li);
        inputs_text(m, &li, buf, sizeof buf);
        int a = (int)strlen(li.name), b = (int)strlen(cnn_layer_kind_name(li.kind)),
            c = (int)strlen(buf);
        name_w = a > name_w ? a : name_w;
        kind_w = b > kind_w ? b : kind_w;
        in_w = c > in_w ? c : in_w;
    }
    printf("\n%5s  %-*s  %-*s  %-*s  %-14s %13s %12s\n", "#", name_w, "name", kind_w, "kind", in_w,
           "inputs", "output", "params", "MFLOPs");
    for (int i = 0; i < n; i++) {
        struct cnn_layer_info li;
        char shape[40], params[48];
        cnn_model_layer_info(m, i, &li);
        inputs_text(m, &li, buf, sizeof buf);
        snprintf(shape, sizeof shape, "%dx%dx%d", li.c, li.h, li.w);
        tool_group_digits(li.params, params, sizeof params);
        printf("%5d  %-*s  %-*s  %-*s  %-14s %13s %12.3f\n", i, name_w, li.name, kind_w,
               cnn_layer_kind_name(li.kind), in_w, buf, shape, params, li.flops / 1e6);
    }
}

static void print_totals(const struct cnn_model *m)
{
    size_t params = cnn_model_param_count(m);
    double flops = cnn_model_flops(m);
    char grouped[48];
    tool_group_digits(params, grouped, sizeof grouped);
    printf("\nlayers: %d\n", cnn_model_layer_count(m));
    printf("params: %s\n", grouped);
    printf("flops: %.4g GFLOP per image (2 x conv+dense MACs)\n", flops / 1e9);
    printf("params=%zu\n", params);
    printf("flops=%.0f\n", flops);
}

int cmd_info(int argc, char **argv)
{
    int n_pos;
    int rc = opts_parse("info", argc, argv, NULL, 0, NULL, &n_pos);
    if (rc == OPTS_HELP) {
        fputs(USAGE, stdout);
        return TOOL_OK;
    }
    if (rc)
        return TOOL_USAGE;
    if (n_pos != 1)
        return tool_usage("info", "expected one MODEL, got %d arguments", n_pos);
    struct cnn_model *m;
    rc = tool_open_model(argv[1], TOOL_ARCH_SHAPE_ONLY, &m);
    if (rc)
        return rc;
    print_header(argv[1], m);
    print_layers(m);
    print_totals(m);
    cnn_model_destroy(m);
    return TOOL_OK;
}
