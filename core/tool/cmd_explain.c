/* `cnn explain MODEL IMAGE --out heat.png`: the saliency map of the class an image is given
 * (or --class K) by gradient, SmoothGrad or occlusion (core/explain.h), drawn over the model's
 * input as PNG (core/plot.h); prints the top predictions and the class explained.
 * `cnn explain MODEL --filters grid.png` draws the first conv layer's filters instead. */
#include "explain.h"
#include "image.h"
#include "json_out.h"
#include "opts.h"
#include "plot.h"
#include "tool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char USAGE[] =
    "usage: cnn explain MODEL IMAGE --out FILE.png [--class K] [--method M] [--top N]\n"
    "                   [--samples N] [--noise F] [--patch P] [--scale S] [--json]\n"
    "       cnn explain MODEL --filters FILE.png\n"
    "Explains MODEL's answer for a PNG/JPEG IMAGE: a heatmap of how much each input pixel\n"
    "matters to the class's score (its logit), over the preprocessed input, written as PNG.\n"
    "Prints the top predictions and the class explained.\n"
    "  --out FILE.png   the heatmap (required with IMAGE)\n"
    "  --class K        class index or label to explain (default: the top-1 prediction)\n"
    "  --method M       gradinput (default: gradient x (pixel - black), what blacking the\n"
    "                   pixel out would cost, to first order), grad (|d score / d pixel|),\n"
    "                   smoothgrad (the gradient averaged over noisy copies) or occlusion\n"
    "                   (score lost when a patch around the pixel is blacked out)\n"
    "  --top N          predictions printed, 1..1000 (default 3)\n"
    "  --samples N      smoothgrad: noisy copies, 1..1000 (default 25)\n"
    "  --noise F        smoothgrad: noise std / input range, 0..10 (default 0.15)\n"
    "  --patch P        occlusion: patch side in pixels (default: input side / 7)\n"
    "  --scale S        heatmap pixels per input pixel, 1..64 (default: to about 280 px)\n"
    "  --json           one JSON object: class, label, method, predictions\n"
    "  --filters FILE   draw the first conv layer's filters as a grid instead\n"
    "example: cnn explain models/repository/fashion/1/model.cnn models/samples/sneaker.png \\\n"
    "           --out heat.png --method smoothgrad\n";

enum { O_OUT, O_CLASS, O_METHOD, O_TOP, O_SAMPLES, O_NOISE, O_PATCH, O_SCALE, O_JSON,
       O_FILTERS, O_COUNT };
static const struct opt_spec SPEC[O_COUNT] = {
    [O_OUT] = {"--out", 1},         [O_CLASS] = {"--class", 1},   [O_METHOD] = {"--method", 1},
    [O_TOP] = {"--top", 1},         [O_SAMPLES] = {"--samples", 1}, [O_NOISE] = {"--noise", 1},
    [O_PATCH] = {"--patch", 1},     [O_SCALE] = {"--scale", 1},   [O_JSON] = {"--json", 0},
    [O_FILTERS] = {"--filters", 1}};

/* --class as an index or a label of m; -1 when absent; -2 after a usage error. */
static int parse_class(const struct cnn_model *m, const char *s)
{
    if (!s)
        return -1;
    int k = cnn_explain_parse_class(m, s);
    if (k < 0)
        tool_usage("explain", "--class: '%s' is not a label or an index in 0..%d", s,
                   cnn_model_num_classes(m) - 1);
    return k < 0 ? -2 : k;
}

static void print_result(const struct cnn_model *m, const float *probs, int cls, int top,
                         enum cnn_explain_method method, const char *out, int json)
{
    int K = cnn_model_num_classes(m);
    int *order = malloc((size_t)K * sizeof *order);
    for (int k = 0; order && k < K; k++)
        order[k] = k;
    for (int i = 0; order && i < top; i++) /* partial selection: top is small */
        for (int j = i + 1; j < K; j++)
            if (probs[order[j]] > probs[order[i]]) {
                int t = order[i];
                order[i] = order[j], order[j] = t;
            }
    const char *label = cnn_model_label(m, cls);
    if (json) {
        printf("{\"class\":%d,\"label\":", cls);
        json_put_string(stdout, label ? label : "");
        printf(",\"method\":\"%s\",\"out\":", cnn_explain_method_name(method));
        json_put_string(stdout, out);
        printf(",\"predictions\":[");
    } else {
        printf("explained: class %d %s (%s) -> %s\n", cls, label ? label : "",
               cnn_explain_method_name(method), out);
    }
    for (int i = 0; order && i < top; i++) {
        const char *l = cnn_model_label(m, order[i]);
        if (json) {
            printf("%s{\"label\":", i ? "," : "");
            json_put_string(stdout, l ? l : "");
            printf(",\"index\":%d,\"score\":", order[i]);
            json_put_number(stdout, probs[order[i]], 6);
            printf("}");
        } else {
            printf("  %-20s %3d %.6f\n", l ? l : "", order[i], probs[order[i]]);
        }
    }
    if (json)
        printf("]}\n");
    free(order);
}

static int filters(const struct cnn_model *m, const char *path)
{
    struct cnn_image img;
    struct cnn_err err = {0};
    if (cnn_plot_filters(m, &img, &err))
        return tool_fail("explain", "%s", err.msg);
    return tool_write_png("explain", path, &img);
}

/* The explanation of image `path` by o into the PNG `out`. */
static int explain(const struct cnn_model *m, const char *path, const char *out, int cls,
                   const struct cnn_explain_opts *o, int scale, int top, int json)
{
    const struct cnn_preproc *pp = cnn_model_preproc(m);
    size_t chw = (size_t)pp->c * pp->h * pp->w;
    void *data = NULL;
    size_t size = 0;
    struct cnn_err err = {0};
    float *x = malloc(chw * sizeof *x), *map = malloc((size_t)pp->h * pp->w * sizeof *map);
    float *probs = malloc((size_t)cnn_model_num_classes(m) * sizeof *probs);
    struct cnn_explainer *e = NULL;
    struct cnn_image img = {0};
    int rc = TOOL_RUNTIME;
    if (!x || !map || !probs) {
        rc = tool_fail("explain", "out of memory");
        goto out;
    }
    if (tool_read_file(path, &data, &size, &err) ||
        cnn_image_load_tensor(data, size, CNN_IMAGE_DEFAULT_MAX_PIXELS, pp, x, &err) ||
        !(e = cnn_explainer_create(m, 64, &err)) ||
        cnn_explain_map(e, x, &cls, o, map, probs, &err) ||
        cnn_plot_heatmap(x, pp, map, scale, &img, &err)) {
        rc = tool_fail("explain", "%s: %s", path, err.msg);
        goto out;
    }
    if ((rc = tool_write_png("explain", out, &img)) == TOOL_OK)
        print_result(m, probs, cls, top, o->method, out, json);
out:
    cnn_explainer_destroy(e);
    free(data);
    free(x);
    free(map);
    free(probs);
    return rc;
}

int cmd_explain(int argc, char **argv)
{
    const char *v[O_COUNT];
    int n_pos;
    int rc = opts_parse("explain", argc, argv, SPEC, O_COUNT, v, &n_pos);
    if (rc == OPTS_HELP) {
        fputs(USAGE, stdout);
        return TOOL_OK;
    }
    if (rc)
        return TOOL_USAGE;
    if (n_pos != (v[O_FILTERS] ? 1 : 2))
        return tool_usage("explain", "expected MODEL IMAGE (or MODEL --filters FILE)");
    if (!v[O_FILTERS] && !v[O_OUT])
        return tool_usage("explain", "--out FILE.png is required");
    struct cnn_explain_opts o;
    cnn_explain_opts_default(&o);
    long long top = 3, samples = o.samples, patch = 0, scale = 0;
    double noise = o.noise;
    struct cnn_err err = {0};
    if ((v[O_METHOD] && cnn_explain_method_parse(v[O_METHOD], &o.method, &err)))
        return tool_usage("explain", "--method: '%s' is not grad, smoothgrad, occlusion or "
                          "gradinput", v[O_METHOD]);
    if ((v[O_TOP] && opts_int("explain", "--top", v[O_TOP], 1, 1000, &top)) ||
        (v[O_SAMPLES] && opts_int("explain", "--samples", v[O_SAMPLES], 1, 1000, &samples)) ||
        (v[O_PATCH] && opts_int("explain", "--patch", v[O_PATCH], 1, 4096, &patch)) ||
        (v[O_SCALE] && opts_int("explain", "--scale", v[O_SCALE], 1, 64, &scale)) ||
        (v[O_NOISE] && opts_double("explain", "--noise", v[O_NOISE], 0.0, 10.0, &noise)))
        return TOOL_USAGE;
    o.samples = (int)samples, o.noise = (float)noise, o.patch = (int)patch;
    struct cnn_model *m;
    if ((rc = tool_open_model(argv[1], TOOL_ARCH_RANDOM, &m)) != 0)
        return rc;
    const struct cnn_preproc *pp = cnn_model_preproc(m);
    int side = pp->h > pp->w ? pp->h : pp->w;
    if (!scale)
        scale = side >= 280 ? 1 : (280 + side - 1) / side;
    if ((long long)side * scale > 8192)
        scale = 8192 / side > 0 ? 8192 / side : 1;
    int cls = parse_class(m, v[O_CLASS]);
    int K = cnn_model_num_classes(m);
    if (cls == -2)
        rc = TOOL_USAGE;
    else if (v[O_FILTERS])
        rc = filters(m, v[O_FILTERS]);
    else
        rc = explain(m, argv[2], v[O_OUT], cls, &o, (int)scale, top < K ? (int)top : K,
                     v[O_JSON] != NULL);
    cnn_model_destroy(m);
    return rc;
}
