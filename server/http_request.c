/* Reply and request helpers for handlers (see http.h): statuses for CNN_E* codes, JSON and
 * error replies, headers and query arguments, acquiring the model version, and the batch
 * items with their input and output buffers.  MHD threads only. */
#include "http.h"

#include "tensor.h"

#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int http_status_of(int code)
{
    switch (code) {
    case CNN_EINVAL:
    case CNN_EFORMAT:
        return 400;
    case CNN_ELIMIT: /* a structural limit (depth, count, shape): 400 naming it; 413 is only
                      * the listener's body byte limit (and example_max_bytes) */
        return 400;
    case CNN_ENOENT:
        return 404;
    case CNN_EBUSY:
    case CNN_ENOMEM:
    case CNN_ECANCELED:
        return 503;
    default:
        return 500;
    }
}

void http_reply(struct request *r, int status, const char *type, char *body, size_t len)
{
    free(r->reply);
    r->status = status;
    r->reply_type = type;
    r->reply = body;
    r->reply_len = body ? len : 0;
}

void http_reply_json(struct request *r, int status, json_t *j)
{
    char *text = j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(9)) : NULL;
    json_decref(j);
    if (!text) {
        static const char oom[] = "{\"error\":\"out of memory\"}";
        char *copy = malloc(sizeof oom);
        if (copy)
            memcpy(copy, oom, sizeof oom);
        http_reply(r, 503, "application/json", copy, copy ? sizeof oom - 1 : 0);
        return;
    }
    http_reply(r, status, "application/json", text, strlen(text));
}

void http_reply_error(struct request *r, int status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *j = json_object();
    json_t *s = json_string(msg);
    if (!s) /* not UTF-8 (a client's bytes in the message): keep it ASCII */
        for (char *p = msg; *p; p++)
            if ((unsigned char)*p >= 0x80)
                *p = '?';
    if (!s)
        s = json_string(msg);
    if (j && s && json_object_set_new(j, "error", s) == 0) {
        http_reply_json(r, status, j);
        return;
    }
    json_decref(j);
    http_reply_json(r, status, NULL);
}

void http_reply_cnn_err(struct request *r, const struct cnn_err *err)
{
    int status = http_status_of(err->code);
    if (err->code == CNN_EBUSY)
        r->retry_after = 1;
    http_reply_error(r, status, "%s", err->msg[0] ? err->msg : cnn_strerror(err->code));
}

const char *http_header(struct request *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *http_query(struct request *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

int http_acquire_model(struct request *r)
{
    struct cnn_err err = {0};
    int rc = registry_acquire(r->app->reg, r->model, r->version, &r->mv, &err);
    if (rc == 0)
        return 0;
    r->mv = NULL;
    if (rc == CNN_ENOENT)
        http_reply_error(r, 404, "%s", err.msg[0] ? err.msg : "unknown model");
    else
        http_reply_error(r, 503, "model not available: %s", err.msg);
    return -1;
}

int http_alloc_items(struct request *r, int n)
{
    const struct config *cfg = r->app->cfg;
    const struct cnn_preproc *pp = cnn_model_preproc(r->mv->model);
    size_t per = (size_t)pp->c * (size_t)pp->h * (size_t)pp->w;
    size_t classes = (size_t)cnn_model_num_classes(r->mv->model);
    size_t n_in, n_out;
    if (n < 1 || n > cfg->max_batch_items) {
        http_reply_error(r, 400, "%d images; a request holds 1..%d (max_batch_items)", n,
                         cfg->max_batch_items);
        return -1;
    }
    if (cnn_mul_size(per, (size_t)n, &n_in) || cnn_mul_size(classes, (size_t)n, &n_out) ||
        n_in > (size_t)cfg->max_tensor_elements || n_out > (size_t)cfg->max_tensor_elements) {
        http_reply_error(r, 400, "%d images exceed max_tensor_elements (%lld)", n,
                         cfg->max_tensor_elements);
        return -1;
    }
    if (!r->inputs)
        r->inputs = malloc(n_in * sizeof(float));
    r->outputs = malloc(n_out * sizeof(float));
    r->items = calloc((size_t)n, sizeof *r->items);
    r->item_ptrs = malloc((size_t)n * sizeof *r->item_ptrs);
    if (!r->inputs || !r->outputs || !r->items || !r->item_ptrs) {
        http_reply_error(r, 503, "out of memory");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        r->items[i].input = r->inputs + (size_t)i * per;
        r->items[i].output = r->outputs + (size_t)i * classes;
        r->item_ptrs[i] = &r->items[i];
    }
    r->n_items = n;
    return 0;
}

int http_batch_size(const struct request *r)
{
    int b = 0;
    for (int i = 0; i < r->n_items; i++)
        if (r->items[i].batch_size > b)
            b = r->items[i].batch_size;
    return b;
}

void http_set_location(struct request *r, const char *location)
{
    snprintf(r->location, sizeof r->location, "%s", location);
}
