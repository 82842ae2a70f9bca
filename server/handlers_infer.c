/* POST /v2/models/{name}[/versions/{v}]/infer (KServe v2): the body is parsed by
 * infer_parse.c; FP32 tensors go to the batcher as they are (they are the model's input
 * after preprocessing), BYTES images are decoded and preprocessed here first.  The answer
 * is built by infer_reply.c. */
#include "handlers.h"
#include "http.h"
#include "image.h"
#include "infer.h"
#include "multipart.h"

#include <stdlib.h>

static void request_free_v2(void *p)
{
    v2_request_free(p);
    free(p);
}

static void infer_finish(struct request *r)
{
    struct v2_request *q = r->state;
    struct v2_answer a = {
        .model = r->mv->name,
        .version = r->mv->version,
        .id = q->id,
        .m = r->mv->model,
        .n = q->n,
        .batched = q->batched,
        .classes = cnn_model_num_classes(r->mv->model),
        .probs = r->outputs,
        .out_binary = q->out_binary,
        .class_k = q->class_k,
    };
    char *body;
    size_t len, header_len;
    struct cnn_err err = {0};
    if (v2_build_response(&a, &body, &len, &header_len, &err) != 0) {
        http_reply_cnn_err(r, &err);
        return;
    }
    r->infer_header_len = header_len;
    http_reply(r, 200, header_len ? "application/octet-stream" : "application/json", body, len);
}

void handle_infer(struct request *r)
{
    const char *ct = http_header(r, "Content-Type");
    if (ct && (mime_type_is(ct, "multipart/form-data") || mime_type_is(ct, "image/png") ||
               mime_type_is(ct, "image/jpeg") || mime_type_is(ct, "text/plain"))) {
        http_reply_error(r, 415,
                         "Content-Type must be application/json (or "
                         "application/octet-stream with binary data)");
        return;
    }
    if (http_acquire_model(r) != 0)
        return;
    const struct config *cfg = r->app->cfg;
    const struct cnn_model *m = r->mv->model;
    const struct cnn_preproc *pp = cnn_model_preproc(m);
    struct v2_model_io io = {pp->c, pp->h, pp->w, cnn_model_num_classes(m)};
    struct v2_limits lim = {cfg->max_json_depth, (size_t)cfg->max_json_values,
                            (size_t)cfg->max_tensor_elements, cfg->max_batch_items};
    struct v2_request *q = calloc(1, sizeof *q);
    if (!q) {
        http_reply_error(r, 503, "out of memory");
        return;
    }
    r->state = q;
    r->state_free = request_free_v2;
    struct cnn_err err = {0};
    const char *hlen = http_header(r, "Inference-Header-Content-Length");
    if (v2_parse_request(r->body ? r->body : "", r->body_len, hlen, &io, &lim, q, &err) != 0) {
        http_reply_cnn_err(r, &err);
        return;
    }
    if (q->kind == V2_FP32) {
        r->inputs = q->fp32; /* the request now owns the tensor */
        q->fp32 = NULL;
    }
    if (http_alloc_items(r, q->n) != 0)
        return;
    for (int i = 0; q->kind == V2_BYTES && i < q->n; i++) {
        float *dst = r->inputs + (size_t)i * (size_t)pp->c * (size_t)pp->h * (size_t)pp->w;
        if (cnn_image_load_tensor(q->images[i].data, q->images[i].len,
                                  (size_t)cfg->max_image_pixels, pp, dst, &err) != 0) {
            int status = err.code == CNN_ENOMEM ? 503 : 400; /* over max_image_pixels too */
            http_reply_error(r, status, "image %d: %s", i, err.msg);
            return;
        }
    }
    http_submit(r, infer_finish);
}
