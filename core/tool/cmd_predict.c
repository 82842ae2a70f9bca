/* `cnn predict MODEL IMAGE... [--top K] [--json] [--batch N]`: decodes every PNG/JPEG
 * image through cnn_image_load_tensor straight into the session's input buffer, runs one
 * forward pass per batch (all images when they fit in --batch) and prints the top-K
 * "label index score" lines per image, or one JSON object per image. */
#include "image.h"
#include "json_out.h"
#include "opts.h"
#include "session.h"
#include "tool.h"

#include <stdio.h>
#include <stdlib.h>

static const char USAGE[] =
    "usage: cnn predict MODEL IMAGE... [--top K] [--json] [--batch N]\n"
    "Classifies PNG/JPEG images with MODEL (a model file, or arch:NAME with random weights\n"
    "from seed 1).  Per image: the image path, then K lines \"label index score\", best\n"
    "first; score is the model output (a probability when it ends in softmax).\n"
    "options:\n"
    "  --top K     predictions per image, 1..100000 (default 5; at most the class count)\n"
    "  --json      one JSON object per line and image:\n"
    "              {\"image\":..,\"predictions\":[{\"label\":..,\"index\":..,\"score\":..},..]}\n"
    "  --batch N   images per forward pass, 1..1024 (default 32)\n"
    "example: cnn predict lenet5.cnn digit0.png digit1.png --top 3\n";

enum { O_TOP, O_JSON, O_BATCH, O_COUNT };
static const struct opt_spec SPEC[O_COUNT] = {
    [O_TOP] = {"--top", 1}, [O_JSON] = {"--json", 0}, [O_BATCH] = {"--batch", 1}};

struct scored {
    int index;
    float score;
};

/* Descending score; ties keep the lower index first.  NaN sorts last. */
static int by_score(const void *pa, const void *pb)
{
    const struct scored *a = pa, *b = pb;
    int a_nan = a->score != a->score, b_nan = b->score != b->score;
    if (a_nan != b_nan)
        return a_nan - b_nan;
    if (!a_nan && a->score != b->score)
        return a->score > b->score ? -1 : 1;
    return (a->index > b->index) - (a->index < b->index);
}

static void print_image(const struct cnn_model *m, const char *path, const float *out,
                        struct scored *sc, int top, int json)
{
    int classes = cnn_model_num_classes(m);
    for (int k = 0; k < classes; k++)
        sc[k] = (struct scored){k, out[k]};
    qsort(sc, (size_t)classes, sizeof *sc, by_score);
    if (json) {
        printf("{\"image\":");
        json_put_string(stdout, path);
        printf(",\"predictions\":[");
    } else {
        printf("%s\n", path);
    }
    for (int k = 0; k < top; k++) {
        const char *label = cnn_model_label(m, sc[k].index);
        char fallback[32];
        if (!label) {
            snprintf(fallback, sizeof fallback, "class%d", sc[k].index);
            label = fallback;
        }
        if (json) {
            printf("%s{\"label\":", k ? "," : "");
            json_put_string(stdout, label);
            printf(",\"index\":%d,\"score\":", sc[k].index);
            json_put_number(stdout, sc[k].score, 9);
            printf("}");
        } else {
            printf("  %s %d %.6g\n", label, sc[k].index, (double)sc[k].score);
        }
    }
    if (json)
        printf("]}\n");
}

/* Decodes images[0..n) into the session input; prints "cnn: <file>: <why>" on failure. */
static int load_batch(const struct cnn_model *m, struct cnn_session *s, char **images, int n)
{
    const struct cnn_preproc *pp = cnn_model_preproc(m);
    size_t per = (size_t)pp->c * (size_t)pp->h * (size_t)pp->w;
    float *in = cnn_session_input(s);
    for (int i = 0; i < n; i++) {
        struct cnn_err err = {0};
        void *data;
        size_t size;
        if (tool_read_file(images[i], &data, &size, &err) != 0)
            return tool_fail(images[i], "%s", err.msg);
        int rc = cnn_image_load_tensor(data, size, CNN_IMAGE_DEFAULT_MAX_PIXELS, pp,
                                       in + (size_t)i * per, &err);
        free(data);
        if (rc)
            return tool_fail(images[i], "%s", err.msg);
    }
    return TOOL_OK;
}

static int run(const char *spec, char **images, int n_images, int top, int json, int batch)
{
    struct cnn_model *m;
    int rc = tool_open_model(spec, TOOL_ARCH_RANDOM, &m);
    if (rc)
        return rc;
    int classes = cnn_model_num_classes(m);
    top = top < classes ? top : classes;
    batch = batch < n_images ? batch : n_images;
    struct cnn_err err = {0};
    struct cnn_session *s = cnn_session_create(m, batch, &err);
    struct scored *sc = malloc((size_t)classes * sizeof *sc);
    if (!s || !sc) {
        rc = tool_fail(spec, "%s", s ? "out of memory" : err.msg);
        goto done;
    }
    for (int first = 0; first < n_images; first += batch) {
        int n = n_images - first < batch ? n_images - first : batch;
        rc = load_batch(m, s, images + first, n);
        if (rc)
            goto done;
        const float *out;
        if (cnn_session_forward(s, m, cnn_session_input(s), n, &out, &err) != 0) {
            rc = tool_fail(spec, "forward: %s", err.msg);
            goto done;
        }
        for (int i = 0; i < n; i++)
            print_image(m, images[first + i], out + (size_t)i * (size_t)classes, sc, top, json);
    }
done:
    free(sc);
    cnn_session_destroy(s);
    cnn_model_destroy(m);
    return rc;
}

int cmd_predict(int argc, char **argv)
{
    const char *v[O_COUNT];
    int n_pos;
    int rc = opts_parse("predict", argc, argv, SPEC, O_COUNT, v, &n_pos);
    if (rc == OPTS_HELP) {
        fputs(USAGE, stdout);
        return TOOL_OK;
    }
    if (rc)
        return TOOL_USAGE;
    if (n_pos < 2)
        return tool_usage("predict", "expected MODEL and at least one IMAGE");
    long long top = 5, batch = 32;
    if (v[O_TOP] && opts_int("predict", "--top", v[O_TOP], 1, CNN_MAX_CLASSES, &top))
        return TOOL_USAGE;
    if (v[O_BATCH] && opts_int("predict", "--batch", v[O_BATCH], 1, 1024, &batch))
        return TOOL_USAGE;
    return run(argv[1], argv + 2, n_pos - 1, (int)top, v[O_JSON] != NULL, (int)batch);
}
