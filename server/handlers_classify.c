/* POST /v1/models/{name}[/versions/{v}]/classify: one image as the body (image/png,
 * image/jpeg, or application/octet-stream sniffed), or multipart/form-data with one image
 * per part (one result each, submitted together); ?top_k=N (default 5, clamped to the
 * classes).  Images are decoded and preprocessed here, on the HTTP thread, straight into
 * the request's batch items. */
#include "handlers.h"
#include "http.h"
#include "image.h"
#include "jsonw.h"
#include "multipart.h"
#include "predict.h"

#include <stdlib.h>
#include <string.h>

#define DEFAULT_TOP_K 5

struct classify_state {
    int top_k;
    int n;
    char (*fields)[MP_NAME_MAX]; /* multipart field names; NULL for a single image */
};

static void state_free(void *p)
{
    struct classify_state *st = p;
    if (st)
        free(st->fields);
    free(st);
}

static void classify_finish(struct request *r)
{
    struct classify_state *st = r->state;
    const struct cnn_model *m = r->mv->model;
    size_t classes = (size_t)cnn_model_num_classes(m);
    struct jsonw w = {0};
    struct cnn_err err = {0};
    jw_raw(&w, "{\"model\":");
    jw_str(&w, r->mv->name);
    jw_raw(&w, ",\"version\":");
    jw_int(&w, r->mv->version);
    jw_raw(&w, ",\"results\":[");
    int rc = 0;
    for (int i = 0; rc == 0 && i < st->n; i++) {
        jw_raw(&w, i ? ",{" : "{");
        if (st->fields) {
            jw_raw(&w, "\"field\":");
            jw_str(&w, st->fields[i]);
            jw_raw(&w, ",");
        }
        jw_raw(&w, "\"predictions\":");
        rc = predict_write_top(&w, m, r->outputs + (size_t)i * classes, st->top_k, &err);
        jw_raw(&w, "}");
    }
    jw_raw(&w, "]}");
    size_t len;
    char *text = jw_finish(&w, &len);
    if (rc || !text) {
        free(text);
        http_reply_error(r, 503, "out of memory for the answer");
        return;
    }
    http_reply(r, 200, "application/json", text, len);
}

/* top_k from the query: 0 on success, else replies 400. */
static int parse_top_k(struct request *r, int *k)
{
    const char *s = http_query(r, "top_k");
    *k = DEFAULT_TOP_K;
    if (!s)
        return 0;
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < 1 || v > 1000000) {
        http_reply_error(r, 400, "top_k must be an integer >= 1");
        return -1;
    }
    *k = (int)v;
    return 0;
}

/* Decodes image i (data, len) into item i; 0, or replies and returns -1. */
static int decode_into(struct request *r, int i, const void *data, size_t len, const char *field)
{
    struct cnn_err err = {0};
    const struct cnn_preproc *pp = cnn_model_preproc(r->mv->model);
    float *dst = r->inputs + (size_t)i * (size_t)pp->c * (size_t)pp->h * (size_t)pp->w;
    if (cnn_image_load_tensor(data, len, (size_t)r->app->cfg->max_image_pixels, pp, dst, &err) == 0)
        return 0;
    int status = err.code == CNN_ENOMEM ? 503 : 400; /* over max_image_pixels too */
    if (field)
        http_reply_error(r, status, "part '%s': %s", field, err.msg);
    else
        http_reply_error(r, status, "%s", err.msg);
    return -1;
}

void handle_classify(struct request *r)
{
    const struct config *cfg = r->app->cfg;
    const char *ct = http_header(r, "Content-Type");
    int multipart = mime_type_is(ct, "multipart/form-data");
    if (!multipart && !mime_type_is(ct, "image/png") && !mime_type_is(ct, "image/jpeg") &&
        !mime_type_is(ct, "application/octet-stream")) {
        http_reply_error(r, 415,
                         "Content-Type must be image/png, image/jpeg, "
                         "application/octet-stream or multipart/form-data");
        return;
    }
    struct classify_state *st = calloc(1, sizeof *st);
    if (!st) {
        http_reply_error(r, 503, "out of memory");
        return;
    }
    r->state = st;
    r->state_free = state_free;
    if (parse_top_k(r, &st->top_k) != 0)
        return;
    if (r->body_len == 0) {
        http_reply_error(r, 400, "empty body: send the image");
        return;
    }
    struct mp_part *parts = NULL;
    st->n = 1;
    if (multipart) {
        struct cnn_err err = {0};
        char boundary[80];
        int max = cfg->max_multipart_parts < cfg->max_batch_items ? cfg->max_multipart_parts
                                                                  : cfg->max_batch_items;
        parts = malloc((size_t)max * sizeof *parts);
        int rc = !parts ? cnn_err_set(&err, CNN_ENOMEM, "out of memory")
                        : mp_boundary(ct, boundary, sizeof boundary, &err);
        if (rc == 0)
            rc = mp_parse(r->body, r->body_len, boundary, parts, max, &st->n, &err);
        if (rc == 0 && !(st->fields = malloc((size_t)st->n * sizeof *st->fields)))
            rc = cnn_err_set(&err, CNN_ENOMEM, "out of memory");
        if (rc) {
            free(parts);
            http_reply_cnn_err(r, &err);
            return;
        }
        for (int i = 0; i < st->n; i++)
            memcpy(st->fields[i], parts[i].name, MP_NAME_MAX);
    }
    if (http_acquire_model(r) != 0 || http_alloc_items(r, st->n) != 0) {
        free(parts);
        return;
    }
    int classes = cnn_model_num_classes(r->mv->model);
    if (st->top_k > classes)
        st->top_k = classes;
    for (int i = 0; i < st->n; i++) {
        int rc = parts ? decode_into(r, i, parts[i].data, parts[i].len, parts[i].name)
                       : decode_into(r, i, r->body, r->body_len, NULL);
        if (rc) {
            free(parts);
            return;
        }
    }
    free(parts);
    http_submit(r, classify_finish);
}
