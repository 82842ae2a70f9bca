/* Open Inference Protocol (KServe v2) REST infer bodies for a one-input, one-output image
 * classifier: request parsing (JSON FP32 tensors flat or nested, [N,C,H,W] or [C,H,W]; the
 * binary tensor data extension for FP32 and for BYTES inputs of encoded PNG/JPEG images;
 * output parameters binary_data and classification) and response building (JSON or binary
 * FP32 probabilities, or classification strings).  No HTTP and no model state: pure
 * functions over buffers, any thread. */
#ifndef INFER_H
#define INFER_H

#include "err.h"
#include "model.h"

#include <jansson.h>
#include <stddef.h>

#define V2_INPUT_NAME "input"
#define V2_OUTPUT_NAME "output"

struct v2_model_io {
    int c, h, w; /* input per image */
    int classes; /* output per image */
};

struct v2_limits {
    int max_depth;              /* JSON nesting */
    size_t max_values;          /* JSON values */
    size_t max_tensor_elements; /* per tensor */
    int max_batch_items;        /* N */
};

struct v2_blob {
    const unsigned char *data; /* borrowed from the body */
    size_t len;
};

enum v2_input_kind { V2_FP32 = 0, V2_BYTES = 1 };

struct v2_request {
    json_t *root;   /* owned: the JSON part */
    const char *id; /* borrowed from root; NULL when absent */
    enum v2_input_kind kind;
    int n;                  /* batch size */
    int batched;            /* 1 when the shape had the batch dimension */
    float *fp32;            /* V2_FP32: n*c*h*w floats, owned (free) */
    struct v2_blob *images; /* V2_BYTES: n encoded images, owned array */
    int out_binary;         /* answer the output as binary data */
    int class_k;            /* classification extension: top k per image; 0 = off */
};

/* Parses body[0..len).  header_len is the Inference-Header-Content-Length header value
 * (NULL when absent: the whole body is JSON).  CNN_EINVAL (400) for malformed or
 * inconsistent requests, CNN_ELIMIT (413) beyond lim, CNN_ENOMEM.  On success out owns
 * what v2_request_free releases; on failure nothing is left to free. */
int v2_parse_request(const void *body, size_t len, const char *header_len,
                     const struct v2_model_io *io, const struct v2_limits *lim,
                     struct v2_request *out, struct cnn_err *err);
void v2_request_free(struct v2_request *r);

struct v2_answer {
    const char *model;
    int version;
    const char *id;            /* echoed when non-NULL */
    const struct cnn_model *m; /* labels for the classification extension */
    int n, batched, classes;
    const float *probs; /* n * classes */
    int out_binary, class_k;
};

/* Builds the response body into *body (malloc'd, owned by the caller) of *len bytes.
 * *header_len is the JSON part's length when binary data follows (the value of
 * Inference-Header-Content-Length), or 0 for a pure JSON body. */
int v2_build_response(const struct v2_answer *a, char **body, size_t *len, size_t *header_len,
                      struct cnn_err *err);

/* Product of n dims with overflow and negative checks: 0 and *count, or CNN_ELIMIT on
 * overflow, CNN_EINVAL for a negative dim. */
int v2_element_count(const long long *dims, int n, size_t *count, struct cnn_err *err);

#endif
