/* The cnn.* metadata_props that `cnn convert` writes into an ONNX file (docs/onnx.md,
 * Export) read back on import: preprocessing (cnn.resize, cnn.resize_short, cnn.invert,
 * cnn.channel_order, cnn.mean, cnn.std), labels (cnn.labels) and the metadata text (cnn.meta), so
 * that .cnn -> .onnx -> .cnn keeps them.  Other keys are ignored. */
#include "onnx_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The value of metadata key, or NULL. */
static const char *prop(const Onnx__ModelProto *mp, const char *key)
{
    for (size_t k = 0; k < mp->n_metadata_props; k++) {
        const Onnx__StringStringEntryProto *e = mp->metadata_props[k];
        if (e && e->key && e->value && strcmp(e->key, key) == 0)
            return e->value;
    }
    return NULL;
}

int onnx_meta_preproc(const Onnx__ModelProto *mp, struct cnn_preproc *pp, struct cnn_err *err)
{
    const char *v;
    if ((v = prop(mp, "cnn.resize")) != NULL) {
        if (strcmp(v, "stretch") != 0 && strcmp(v, "shorter_crop") != 0)
            return cnn_err_set(err, CNN_EFORMAT, "onnx: metadata cnn.resize: unknown mode");
        pp->resize = v[0] == 's' && v[1] == 'h' ? CNN_RESIZE_SHORTER_CROP : CNN_RESIZE_STRETCH;
    }
    if ((v = prop(mp, "cnn.resize_short")) != NULL) {
        char *end;
        long n = strtol(v, &end, 10);
        if (end == v || *end || n < 1 || n > CNN_PREPROC_MAX_DIM)
            return cnn_err_set(err, CNN_EFORMAT, "onnx: metadata cnn.resize_short: not 1..%d",
                               CNN_PREPROC_MAX_DIM);
        pp->resize_short = (int)n;
    }
    if ((v = prop(mp, "cnn.invert")) != NULL) {
        if (strcmp(v, "0") != 0 && strcmp(v, "1") != 0)
            return cnn_err_set(err, CNN_EFORMAT, "onnx: metadata cnn.invert: not 0 or 1");
        pp->invert = v[0] == '1';
    }
    if ((v = prop(mp, "cnn.channel_order")) != NULL) {
        if (strcmp(v, "rgb") != 0 && strcmp(v, "bgr") != 0)
            return cnn_err_set(err, CNN_EFORMAT,
                               "onnx: metadata cnn.channel_order: not rgb or bgr");
        pp->bgr = v[0] == 'b'; /* bgr on a gray model: refused by cnn_preproc_check below */
    }
    static const char *const keys[2] = {"cnn.mean", "cnn.std"};
    for (int k = 0; k < 2; k++) {
        float f[3];
        const int n = cnn_preproc_norm_channels(pp);
        if ((v = prop(mp, keys[k])) == NULL)
            continue;
        if (cnn_parse_floats(v, f, 3) != n)
            return cnn_err_set(err, CNN_EFORMAT, "onnx: metadata %s: not %d finite numbers",
                               keys[k], n);
        memcpy(k ? pp->std : pp->mean, f, (size_t)n * sizeof *f);
    }
    struct cnn_err why = {0};
    if (cnn_preproc_check(pp, &why))
        return cnn_err_set(err, CNN_EFORMAT, "onnx: metadata preprocessing: %s", why.msg);
    return 0;
}

/* cnn.labels: one label a line, as many as the model has classes. */
static int set_labels(struct cnn_model *m, const char *text, struct cnn_err *err)
{
    int n = 1;
    for (const char *p = text; *p; p++)
        n += *p == '\n';
    if (n != cnn_model_num_classes(m))
        return cnn_err_set(err, CNN_EFORMAT, "onnx: metadata cnn.labels: %d labels for %d classes",
                           n, cnn_model_num_classes(m));
    char *copy = strdup(text);
    const char **labels = malloc((size_t)n * sizeof *labels);
    int rc = 0;
    if (!copy || !labels) {
        rc = cnn_err_set(err, CNN_ENOMEM, "onnx: out of memory");
    } else {
        char *p = copy;
        for (int i = 0; i < n; i++) {
            labels[i] = p;
            p += strcspn(p, "\n");
            if (*p)
                *p++ = '\0';
        }
        struct cnn_err why = {0};
        if ((rc = cnn_model_set_labels(m, labels, n, &why)) != 0)
            rc = cnn_err_set(err, rc == CNN_ENOMEM ? rc : CNN_EFORMAT,
                             "onnx: metadata cnn.labels: %s", why.msg);
    }
    free(copy);
    free(labels);
    return rc;
}

int onnx_meta_apply(const Onnx__ModelProto *mp, struct cnn_model *m, struct cnn_err *err)
{
    const char *v;
    int rc = 0;
    if ((v = prop(mp, "cnn.labels")) != NULL)
        rc = set_labels(m, v, err);
    if (rc == 0 && (v = prop(mp, "cnn.meta")) != NULL)
        rc = cnn_model_set_meta(m, v, err);
    return rc;
}
