/* Fuzz target: Open Inference Protocol infer bodies (server/infer_parse.c, infer_reply.c)
 * for a model taking (3, 2, 2) and giving 5 labelled classes.  The first input byte picks
 * the framing: 'B' = binary extension (JSON, one NUL, binary data; the NUL's offset is the
 * Inference-Header-Content-Length), 'H' = the header value is the first line as given,
 * anything else = the rest is a pure JSON body.  An accepted request is answered with
 * v2_build_response from made-up probabilities.  An empty body is NULL (as r->body). */
#include "fuzz.h"
#include "infer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct cnn_model *labelled_model(void)
{
    static struct cnn_model *m;
    if (m)
        return m;
    struct cnn_err err = {0};
    struct cnn_preproc pp = {.c = 3, .h = 2, .w = 2, .mean = {0, 0, 0}, .std = {1, 1, 1}};
    static const char *const labels[] = {"a", "b \"quoted\"", "c\\d", "\xc3\xa9t\xc3\xa9", "e"};
    struct cnn_layer_desc flat = {.kind = CNN_LAYER_FLATTEN};
    struct cnn_layer_desc fc = {.kind = CNN_LAYER_DENSE, .p.dense = {.out = 5, .has_bias = 1}};
    m = cnn_model_create(&pp, &err);
    if (!m || cnn_model_add(m, &flat, &err) < 0 || cnn_model_add(m, &fc, &err) < 0 ||
        cnn_model_set_labels(m, labels, 5, &err) || cnn_model_alloc_params(m, &err) ||
        cnn_model_compile(m, &err)) {
        fprintf(stderr, "fuzz_infer: model: %s\n", err.msg);
        abort();
    }
    return m;
}

static void answer(const struct v2_request *q, const struct v2_model_io *io)
{
    float *probs = calloc((size_t)q->n * io->classes, sizeof *probs);
    if (!probs)
        return;
    for (int i = 0; i < q->n * io->classes; i++)
        probs[i] = (float)((i * 7) % 5) / 10.0f;
    struct v2_answer a = {.model = "fuzz", .version = 1, .id = q->id, .m = labelled_model(),
                          .n = q->n, .batched = q->batched, .classes = io->classes,
                          .probs = probs, .out_binary = q->out_binary, .class_k = q->class_k};
    char *body = NULL;
    size_t len = 0, header_len = 0;
    struct cnn_err err = {0};
    if (v2_build_response(&a, &body, &len, &header_len, &err) == 0) {
        json_error_t jerr;
        json_t *j = json_loadb(body, header_len ? header_len : len, 0, &jerr);
        if (!j || header_len > len)
            abort(); /* our own reply is valid JSON */
        json_decref(j);
    }
    free(body);
    free(probs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const struct v2_model_io io = {.c = 3, .h = 2, .w = 2, .classes = 5};
    static const struct v2_limits lim = {.max_depth = 16, .max_values = 4096,
                                         .max_tensor_elements = 4096, .max_batch_items = 8};
    char header[32];
    const char *hdr = NULL;
    uint8_t *body = malloc(size);
    if (!body)
        return 0;
    size_t len = size - 1;
    memcpy(body, data + 1, len);
    if (data[0] == 'B') {
        uint8_t *nul = memchr(body, '\0', len);
        if (nul) {
            size_t k = (size_t)(nul - body);
            memmove(nul, nul + 1, len - k - 1);
            len--;
            snprintf(header, sizeof header, "%zu", k);
            hdr = header;
        }
    } else if (data[0] == 'H') {
        uint8_t *nl = memchr(body, '\n', len);
        size_t k = nl ? (size_t)(nl - body) : 0;
        if (nl && k < sizeof header) {
            memcpy(header, body, k);
            header[k] = '\0';
            hdr = header;
            memmove(body, nl + 1, len - k - 1);
            len -= k + 1;
        }
    }
    uint8_t *exact = malloc(len ? len : 1); /* so ASan sees a read past the body */
    if (exact) {
        memcpy(exact, body, len);
        struct v2_request q;
        struct cnn_err err = {0};
        if (v2_parse_request(len ? exact : NULL, len, hdr, &io, &lim, &q, &err) == 0) {
            if (q.n < 1 || q.n > lim.max_batch_items)
                abort();
            answer(&q, &io);
            v2_request_free(&q);
        }
        free(exact);
    }
    free(body);
    return 0;
}
