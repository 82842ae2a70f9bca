/* POST /v1/models/{name}[/versions/{v}]/explain: one image as the body (as for classify);
 * the image goes through the model's batch queue like a classify request (its top-k come from
 * there), then an explanation thread (explain_pool.c) computes the saliency map
 * (core/explain.h) and draws it over the input as PNG (core/plot.h).  Reply: JSON with the
 * top-k, the class explained and the PNG in base64, or the PNG itself with ?format=png or
 * an Accept that prefers image/png.  Query: method=grad|smoothgrad|occlusion|gradinput,
 * class=INDEX|LABEL (default: the top-1), top_k, samples (smoothgrad, 1..100), patch
 * (occlusion).  At most explain_max_concurrent in flight: beyond, 429 + Retry-After.
 * GET /v1/models/{name}/filters.png: the first conv layer's filters as a PNG grid. */
#include "explain_pool.h"
#include "handlers.h"
#include "http.h"
#include "image.h"
#include "jsonw.h"
#include "metrics.h"
#include "multipart.h"
#include "plot.h"
#include "predict.h"

#include "explain.h"

#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EXPLAIN_MAX_SAMPLES 100
#define EXPLAIN_BATCH 8 /* images per pass of SmoothGrad / occlusion */

struct explain_state {
    struct explain_job job; /* first: the pool hands it back */
    struct request *r;
    struct explain_pool *pool; /* the slot to give back; NULL when none was taken */
    struct cnn_explain_opts opts;
    int cls;    /* asked, or -1: the top-1 */
    int top_k;
    int as_png; /* reply image/png */
    struct cnn_err err; /* the explanation's failure, 0 when none */
    void *png;          /* owned */
    size_t png_len;
    int png_w, png_h;
};

static void state_free(void *p)
{
    struct explain_state *st = p;
    if (!st)
        return;
    if (st->pool)
        explain_pool_release(st->pool);
    free(st->png);
    free(st);
}

/* Gives the slot back and hands the request back to its MHD thread (from the pool's thread
 * or a batcher worker): the slot is free before the client can see the answer. */
static void resume(struct request *r)
{
    struct explain_state *st = r->state;
    if (st->pool)
        explain_pool_release(st->pool);
    st->pool = NULL;
    atomic_store_explicit(&r->pending, 0, memory_order_release);
    MHD_resume_connection(r->conn);
}

/* Explanation thread: map, picture, PNG; then resume. */
static void explain_run(struct explain_job *job)
{
    struct explain_state *st = (struct explain_state *)job;
    struct request *r = st->r;
    const struct cnn_model *m = r->mv->model;
    const struct cnn_preproc *pp = cnn_model_preproc(m);
    struct cnn_image img = {0};
    float *map = malloc((size_t)pp->h * (size_t)pp->w * sizeof *map);
    struct cnn_explainer *e = map ? cnn_explainer_create(m, EXPLAIN_BATCH, &st->err) : NULL;
    int side = pp->h > pp->w ? pp->h : pp->w;
    int scale = side >= 280 ? 1 : (280 + side - 1) / side;
    if (!map)
        cnn_err_set(&st->err, CNN_ENOMEM, "out of memory");
    else if (e && cnn_explain_map(e, r->inputs, &st->cls, &st->opts, map, NULL, &st->err) == 0 &&
             cnn_plot_heatmap(r->inputs, pp, map, scale, &img, &st->err) == 0 &&
             cnn_image_encode_png(&img, &st->png, &st->png_len, &st->err) == 0)
        st->png_w = img.w, st->png_h = img.h;
    cnn_image_free(&img);
    cnn_explainer_destroy(e);
    free(map);
    resume(r);
}

/* Batcher worker: the classify item is done; queue the explanation (never blocks). */
static void item_done(struct batcher_item *it, int status)
{
    struct request *r = it->ctx;
    struct explain_state *st = r->state;
    http_observe_queue_wait(it);
    if (status) {
        atomic_store(&r->failure, status);
        resume(r);
        return;
    }
    if (st->cls < 0) { /* the top-1 of the batch's answer, as classify would say */
        int classes = cnn_model_num_classes(r->mv->model);
        st->cls = 0;
        for (int k = 1; k < classes; k++)
            st->cls = r->outputs[k] > r->outputs[st->cls] ? k : st->cls;
    }
    explain_pool_run(r->app->explain, &st->job);
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Standard base64 of data into a malloc'd NUL-terminated string; NULL when out of memory. */
static char *base64(const unsigned char *data, size_t n)
{
    char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;
    for (size_t i = 0; out && i < n; i += 3) {
        unsigned v = (unsigned)data[i] << 16 | (i + 1 < n ? (unsigned)data[i + 1] << 8 : 0) |
                     (i + 2 < n ? data[i + 2] : 0);
        *o++ = B64[v >> 18 & 63];
        *o++ = B64[v >> 12 & 63];
        *o++ = i + 1 < n ? B64[v >> 6 & 63] : '=';
        *o++ = i + 2 < n ? B64[v & 63] : '=';
    }
    if (out)
        *o = '\0';
    return out;
}

/* MHD thread after the resume: the reply. */
static void explain_finish(struct request *r)
{
    struct explain_state *st = r->state;
    const struct cnn_model *m = r->mv->model;
    if (st->err.code) {
        http_reply_cnn_err(r, &st->err);
        return;
    }
    if (st->as_png) {
        http_reply(r, 200, "image/png", st->png, st->png_len);
        st->png = NULL; /* the reply took it */
        return;
    }
    char lbuf[64];
    struct jsonw w = {0};
    struct cnn_err err = {0};
    char *b64 = base64(st->png, st->png_len);
    jw_raw(&w, "{\"model\":");
    jw_str(&w, r->mv->name);
    jw_raw(&w, ",\"version\":");
    jw_int(&w, r->mv->version);
    jw_raw(&w, ",\"class\":");
    jw_int(&w, st->cls);
    jw_raw(&w, ",\"label\":");
    jw_str(&w, predict_label(m, st->cls, lbuf, sizeof lbuf));
    jw_raw(&w, ",\"method\":");
    jw_str(&w, cnn_explain_method_name(st->opts.method));
    jw_raw(&w, ",\"predictions\":");
    int rc = predict_write_top(&w, m, r->outputs, st->top_k, &err);
    jw_raw(&w, ",\"heatmap\":{\"content_type\":\"image/png\",\"width\":");
    jw_int(&w, st->png_w);
    jw_raw(&w, ",\"height\":");
    jw_int(&w, st->png_h);
    jw_raw(&w, ",\"base64\":");
    jw_str(&w, b64 ? b64 : "");
    jw_raw(&w, "}}");
    free(b64);
    size_t len;
    char *text = jw_finish(&w, &len);
    if (rc || !b64 || !text) {
        free(text);
        http_reply_error(r, 503, "out of memory for the answer");
        return;
    }
    http_reply(r, 200, "application/json", text, len);
}

/* Integer query argument in [lo, hi] into *v (unchanged when absent); -1 after a 400. */
static int query_int(struct request *r, const char *name, long lo, long hi, int *v)
{
    const char *s = http_query(r, name);
    if (!s)
        return 0;
    char *end;
    long x = strtol(s, &end, 10);
    if (!*s || *end || x < lo || x > hi) {
        http_reply_error(r, 400, "%s must be an integer in %ld..%ld", name, lo, hi);
        return -1;
    }
    *v = (int)x;
    return 0;
}

/* method, format / Accept, top_k, samples, patch; -1 after a 400. */
static int parse_options(struct request *r, struct explain_state *st)
{
    struct cnn_err err = {0};
    const char *method = http_query(r, "method"), *format = http_query(r, "format");
    if (method && cnn_explain_method_parse(method, &st->opts.method, &err)) {
        http_reply_error(r, 400, "%s", err.msg);
        return -1;
    }
    if (format && strcmp(format, "png") != 0 && strcmp(format, "json") != 0) {
        http_reply_error(r, 400, "format must be png or json");
        return -1;
    }
    const char *accept = http_header(r, "Accept");
    st->as_png = format ? strcmp(format, "png") == 0
                        : accept && strstr(accept, "image/png") &&
                              !strstr(accept, "application/json");
    st->top_k = 5;
    return query_int(r, "top_k", 1, 1000000, &st->top_k) ||
                   query_int(r, "samples", 1, EXPLAIN_MAX_SAMPLES, &st->opts.samples) ||
                   query_int(r, "patch", 1, 4096, &st->opts.patch)
               ? -1
               : 0;
}

/* class=INDEX|LABEL against r->mv's model into st->cls; -1 after a 400. */
static int parse_class(struct request *r, struct explain_state *st)
{
    const char *s = http_query(r, "class");
    st->cls = s ? cnn_explain_parse_class(r->mv->model, s) : -1;
    if (s && st->cls < 0) {
        http_reply_error(r, 400, "class must be a label of the model or an index in 0..%d",
                         cnn_model_num_classes(r->mv->model) - 1);
        return -1;
    }
    return 0;
}

void handle_explain(struct request *r)
{
    const char *ct = http_header(r, "Content-Type");
    if (!mime_type_is(ct, "image/png") && !mime_type_is(ct, "image/jpeg") &&
        !mime_type_is(ct, "application/octet-stream")) {
        http_reply_error(r, 415,
                         "Content-Type must be image/png, image/jpeg or application/octet-stream");
        return;
    }
    struct explain_state *st = calloc(1, sizeof *st);
    if (!st) {
        http_reply_error(r, 503, "out of memory");
        return;
    }
    r->state = st;
    r->state_free = state_free;
    st->r = r;
    st->job.run = explain_run;
    cnn_explain_opts_default(&st->opts);
    st->opts.samples = 20;
    if (parse_options(r, st) != 0)
        return;
    if (r->body_len == 0) {
        http_reply_error(r, 400, "empty body: send the image");
        return;
    }
    if (http_acquire_model(r) != 0 || parse_class(r, st) != 0 || http_alloc_items(r, 1) != 0)
        return;
    const struct cnn_preproc *pp = cnn_model_preproc(r->mv->model);
    int classes = cnn_model_num_classes(r->mv->model);
    st->top_k = st->top_k > classes ? classes : st->top_k;
    struct cnn_err err = {0};
    if (cnn_preproc_check_image(pp, &err) != 0) {
        http_reply_error(r, 400, "this model takes tensors, not images: %s", err.msg);
        return;
    }
    if (cnn_image_load_tensor(r->body, r->body_len, (size_t)r->app->cfg->max_image_pixels, pp,
                              r->inputs, &err) != 0) {
        http_reply_error(r, err.code == CNN_ELIMIT ? 413 : err.code == CNN_ENOMEM ? 503 : 400,
                         "%s", err.msg);
        return;
    }
    if (!r->app->explain || explain_pool_reserve(r->app->explain) != 0) {
        r->retry_after = 1;
        http_reply_error(r, 429, "too many explanations in flight (explain_max_concurrent %d)",
                         r->app->cfg->explain_max_concurrent);
        return;
    }
    st->pool = r->app->explain; /* given back by resume(), or by state_free */
    http_submit_items(r, explain_finish, item_done); /* slot given back by state_free on a 503 */
}

void handle_filters(struct request *r)
{
    if (http_acquire_model(r) != 0)
        return;
    struct cnn_image img;
    struct cnn_err err = {0};
    void *png = NULL;
    size_t len = 0;
    int rc = cnn_plot_filters(r->mv->model, &img, &err);
    if (rc == 0) {
        rc = cnn_image_encode_png(&img, &png, &len, &err);
        cnn_image_free(&img);
    }
    if (rc == CNN_ENOENT)
        http_reply_error(r, 404, "model %s has no conv layer to draw", r->mv->name);
    else if (rc)
        http_reply_cnn_err(r, &err);
    else
        http_reply(r, 200, "image/png", png, len);
}
