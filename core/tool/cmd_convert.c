/* `cnn convert IN OUT`: a model between the native format and ONNX.  OUT ending in .onnx is
 * written by the ONNX export (core/onnx_export.h), anything else by cnn_model_save; IN is any
 * model cnn_model_load reads (or arch:NAME, seeded random weights).  Flags replace the labels
 * and the preprocessing that go into OUT. */
#include "onnx_export.h"
#include "opts.h"
#include "tool.h"
#include "tool_data.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char USAGE[] =
    "usage: cnn convert IN OUT [--opset N] [--labels FILE] [--mean M[,M,M]] [--std S[,S,S]]\n"
    "                          [--resize stretch|crop] [--resize-short N] [--invert 0|1]\n"
    "                          [--channel-order rgb|bgr]\n"
    "Converts the model IN (a model file or arch:NAME) to OUT: OUT ending in .onnx is written\n"
    "as ONNX (input \"input\" N x C x H x W, output \"output\" N x K softmax probabilities,\n"
    "labels and preprocessing in metadata_props), any other name in the native format.\n"
    "The input size C x H x W is the model's; the options below set what OUT records.\n"
    "options:\n"
    "  --opset N          ONNX operator set, 7..17 (default 13; only for .onnx output)\n"
    "  --labels FILE      class labels, one per line, as many as the model has classes\n"
    "  --mean M[,M,M]     per-channel mean after scaling pixels to [0,1] (one value: all)\n"
    "  --std S[,S,S]      per-channel std (one value: all channels)\n"
    "  --resize MODE      stretch (bilinear to H x W) or crop (shorter side, then center crop)\n"
    "  --resize-short N   crop: the shorter side before the crop (default: 256/224 of H x W)\n"
    "  --invert 0|1       1: x = 1 - x before mean/std (white-on-black data)\n"
    "  --channel-order O  rgb (default) or bgr: the order of the 3 input channels; mean and\n"
    "                     std follow it (with bgr the first value is blue's)\n"
    "example: cnn convert models/repository/fashion/1/model.cnn fashion.onnx\n";

enum {
    O_OPSET,
    O_LABELS,
    O_MEAN,
    O_STD,
    O_RESIZE,
    O_RESIZE_SHORT,
    O_INVERT,
    O_CHANNEL_ORDER,
    O_COUNT
};
static const struct opt_spec SPEC[O_COUNT] = {
    [O_OPSET] = {"--opset", 1},   [O_LABELS] = {"--labels", 1},
    [O_MEAN] = {"--mean", 1},     [O_STD] = {"--std", 1},
    [O_RESIZE] = {"--resize", 1}, [O_RESIZE_SHORT] = {"--resize-short", 1},
    [O_INVERT] = {"--invert", 1}, [O_CHANNEL_ORDER] = {"--channel-order", 1}};

static int has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* 1 or c comma-separated values of option opt into v[0..c). */
static int parse_channels(const char *opt, const char *s, int c, float *v)
{
    char **items;
    int n;
    if (tool_split_list("convert", opt, s, 3, &items, &n))
        return TOOL_USAGE;
    int rc = TOOL_OK;
    if (n != 1 && n != c)
        rc = tool_usage("convert", "%s: %d values for %d channel%s", opt, n, c, c == 1 ? "" : "s");
    for (int i = 0; rc == TOOL_OK && i < c && i < 3; i++) { /* images: mean/std of 3 at most */
        double d;
        if (opts_double("convert", opt, items[n == 1 ? 0 : i], -1e6, 1e6, &d))
            rc = TOOL_USAGE;
        v[i] = (float)d;
    }
    free(items);
    return rc;
}

/* The preprocessing flags applied to *pp. */
static int parse_preproc(const char **v, struct cnn_preproc *pp)
{
    if (v[O_MEAN] && parse_channels("--mean", v[O_MEAN], pp->c, pp->mean))
        return TOOL_USAGE;
    if (v[O_STD] && parse_channels("--std", v[O_STD], pp->c, pp->std))
        return TOOL_USAGE;
    if (v[O_RESIZE]) {
        if (strcmp(v[O_RESIZE], "stretch") == 0)
            pp->resize = CNN_RESIZE_STRETCH;
        else if (strcmp(v[O_RESIZE], "crop") == 0)
            pp->resize = CNN_RESIZE_SHORTER_CROP;
        else
            return tool_usage("convert", "--resize: '%s' is not stretch or crop", v[O_RESIZE]);
    }
    long long n;
    if (v[O_RESIZE_SHORT]) {
        if (opts_int("convert", "--resize-short", v[O_RESIZE_SHORT], 1, CNN_PREPROC_MAX_DIM, &n))
            return TOOL_USAGE;
        pp->resize = CNN_RESIZE_SHORTER_CROP;
        pp->resize_short = (int)n;
    } else if (pp->resize == CNN_RESIZE_SHORTER_CROP && pp->resize_short == 0) {
        int side = pp->h > pp->w ? pp->h : pp->w;
        pp->resize_short = (side * 256 + 223) / 224;
    }
    if (v[O_INVERT]) {
        if (opts_int("convert", "--invert", v[O_INVERT], 0, 1, &n))
            return TOOL_USAGE;
        pp->invert = (int)n;
    }
    if (v[O_CHANNEL_ORDER]) {
        const char *o = v[O_CHANNEL_ORDER];
        if (strcmp(o, "rgb") != 0 && strcmp(o, "bgr") != 0)
            return tool_usage("convert", "--channel-order: '%s' is not rgb or bgr", o);
        if (o[0] == 'b' && pp->c != 3)
            return tool_usage("convert", "--channel-order bgr: the model has %d channel", pp->c);
        pp->bgr = o[0] == 'b';
    }
    return TOOL_OK;
}

/* One label per line (a final newline optional, "\r\n" accepted) from path into m. */
static int apply_labels(struct cnn_model *m, const char *path)
{
    void *data;
    size_t size;
    struct cnn_err err = {0};
    if (tool_read_file(path, &data, &size, &err) != 0)
        return tool_fail(path, "%s", err.msg);
    char *text = realloc(data, size + 1); /* room for the last line's NUL */
    int n = 0, cap = cnn_model_num_classes(m) + 1, rc = TOOL_OK;
    char **labels = text ? malloc((size_t)cap * sizeof *labels) : NULL;
    if (!labels) {
        free(text ? text : data);
        return tool_fail(path, "out of memory");
    }
    for (size_t at = 0; at < size && rc == TOOL_OK;) {
        char *line = text + at, *nl = memchr(line, '\n', size - at);
        size_t len = nl ? (size_t)(nl - line) : size - at;
        at += len + 1;
        if (len > 0 && line[len - 1] == '\r')
            len--;
        line[len] = '\0';
        if (n == cap)
            rc = tool_fail(path, "more lines than the model's %d classes", cap - 1);
        else
            labels[n++] = line;
    }
    if (rc == TOOL_OK && cnn_model_set_labels(m, (const char *const *)labels, n, &err) != 0)
        rc = tool_fail(path, "%s", err.msg);
    free(labels);
    free(text);
    return rc;
}

static int convert(const char *in, const char *out, const char **v, int opset)
{
    struct cnn_model *m = NULL;
    int rc = tool_open_model(in, TOOL_ARCH_RANDOM, &m);
    if (rc)
        return rc;
    struct cnn_err err = {0};
    struct cnn_preproc pp = *cnn_model_preproc(m);
    rc = parse_preproc(v, &pp);
    if (rc == TOOL_OK && cnn_model_set_preproc(m, &pp, &err) != 0)
        rc = tool_fail(in, "%s", err.msg);
    if (rc == TOOL_OK && v[O_LABELS])
        rc = apply_labels(m, v[O_LABELS]);
    const int onnx = has_suffix(out, ".onnx");
    if (rc == TOOL_OK &&
        (onnx ? cnn_onnx_export_save(m, out, opset, &err) : cnn_model_save(m, out, &err)) != 0)
        rc = tool_fail(out, "%s", err.msg);
    if (rc == TOOL_OK) {
        char params[48];
        tool_group_digits(cnn_model_param_count(m), params, sizeof params);
        if (onnx)
            printf("%s -> %s: onnx opset %d, %s params, %d classes\n", in, out, opset, params,
                   cnn_model_num_classes(m));
        else
            printf("%s -> %s: cnn, %s params, %d classes\n", in, out, params,
                   cnn_model_num_classes(m));
    }
    cnn_model_destroy(m);
    return rc;
}

int cmd_convert(int argc, char **argv)
{
    const char *v[O_COUNT];
    int n_pos;
    int rc = opts_parse("convert", argc, argv, SPEC, O_COUNT, v, &n_pos);
    if (rc == OPTS_HELP) {
        fputs(USAGE, stdout);
        return TOOL_OK;
    }
    if (rc)
        return TOOL_USAGE;
    if (n_pos != 2)
        return tool_usage("convert", "expected IN and OUT, got %d argument%s", n_pos,
                          n_pos == 1 ? "" : "s");
    long long opset = CNN_ONNX_OPSET_DEFAULT;
    if (v[O_OPSET]) {
        if (!has_suffix(argv[2], ".onnx"))
            return tool_usage("convert", "--opset is for .onnx output");
        if (opts_int("convert", "--opset", v[O_OPSET], CNN_ONNX_OPSET_MIN, CNN_ONNX_OPSET_MAX,
                     &opset))
            return TOOL_USAGE;
    }
    return convert(argv[1], argv[2], v, (int)opset);
}
