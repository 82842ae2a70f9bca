/* KServe v2 infer request parsing (see infer.h): limits first (JSON depth and values by a
 * scan, element counts by checked products), then the one input (FP32 data in JSON or
 * binary, or BYTES images in binary) and the output parameters. */
#include "infer.h"

#include "json_check.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RANK 8

int v2_element_count(const long long *dims, int n, size_t *count, struct cnn_err *err)
{
    size_t c = 1;
    for (int i = 0; i < n; i++) {
        if (dims[i] < 0)
            return cnn_err_set(err, CNN_EINVAL, "negative dimension %lld in shape", dims[i]);
        if ((unsigned long long)dims[i] > SIZE_MAX ||
            __builtin_mul_overflow(c, (size_t)dims[i], &c))
            return cnn_err_set(err, CNN_ELIMIT, "tensor element count overflows");
    }
    *count = c;
    return 0;
}

void v2_request_free(struct v2_request *r)
{
    if (!r)
        return;
    json_decref(r->root);
    free(r->fp32);
    free(r->images);
    memset(r, 0, sizeof *r);
}

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Strict non-negative decimal: digits only, no overflow. */
static int parse_size(const char *s, size_t *out)
{
    size_t v = 0;
    if (!*s)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || __builtin_mul_overflow(v, 10, &v) ||
            __builtin_add_overflow(v, (size_t)(*s - '0'), &v))
            return -1;
    }
    *out = v;
    return 0;
}

/* Appends the numbers of a nested array to dst[*got..cap). */
static int flatten(const json_t *v, float *dst, size_t cap, size_t *got, struct cnn_err *err)
{
    if (json_is_array(v)) {
        size_t i;
        const json_t *e;
        json_array_foreach(v, i, e)
        {
            int rc = flatten(e, dst, cap, got, err);
            if (rc)
                return rc;
        }
        return 0;
    }
    if (!json_is_number(v))
        return cnn_err_set(err, CNN_EINVAL, "FP32 data holds a non-number");
    if (*got >= cap)
        return cnn_err_set(err, CNN_EINVAL, "input data has more values than its shape");
    double d = json_number_value(v);
    float f = (float)d;
    if (!isfinite(f))
        return cnn_err_set(err, CNN_EINVAL, "FP32 data value %g out of range", d);
    dst[(*got)++] = f;
    return 0;
}

static void shape_text(const long long *dims, int rank, char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int i = 0; i < rank && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%lld", i ? "," : "", dims[i]);
}

static int parse_fp32(const json_t *in, const long long *dims, int rank, const unsigned char *bin,
                      size_t bin_len, int has_bin, const struct v2_model_io *io,
                      const struct v2_limits *lim, struct v2_request *out, struct cnn_err *err)
{
    size_t count = 0;
    int rc = v2_element_count(dims, rank, &count, err);
    if (rc == CNN_ELIMIT) {
        char s[160];
        shape_text(dims, rank, s, sizeof s);
        return cnn_err_set(err, rc, "input shape [%.100s]: element count overflows, over "
                           "max_tensor_elements (%zu)", s, lim->max_tensor_elements);
    }
    if (rc)
        return rc;
    if (count > lim->max_tensor_elements)
        return cnn_err_set(err, CNN_ELIMIT,
                           "input has %zu elements, over max_tensor_elements (%zu)", count,
                           lim->max_tensor_elements);
    const long long *chw = dims + (rank == 4);
    if ((rank != 3 && rank != 4) || chw[0] != io->c || chw[1] != io->h || chw[2] != io->w) {
        char s[160];
        shape_text(dims, rank, s, sizeof s);
        return cnn_err_set(err, CNN_EINVAL,
                           "input shape [%s] does not match the model's "
                           "[-1,%d,%d,%d] (or [%d,%d,%d])",
                           s, io->c, io->h, io->w, io->c, io->h, io->w);
    }
    long long n = rank == 4 ? dims[0] : 1;
    if (n < 1)
        return cnn_err_set(err, CNN_EINVAL, "batch size must be at least 1");
    if (n > lim->max_batch_items)
        return cnn_err_set(err, CNN_ELIMIT, "batch of %lld exceeds max_batch_items (%d)", n,
                           lim->max_batch_items);
    out->n = (int)n;
    out->batched = rank == 4;
    out->fp32 = malloc(count * sizeof(float));
    if (!out->fp32)
        return cnn_err_set(err, CNN_ENOMEM, "out of memory for the input tensor");
    if (has_bin) {
        if (json_object_get(in, "data"))
            return cnn_err_set(err, CNN_EINVAL, "input has both data and binary_data_size");
        if (bin_len != count * sizeof(float))
            return cnn_err_set(err, CNN_EINVAL, "binary_data_size %zu is not %zu elements x 4",
                               bin_len, count);
        for (size_t i = 0; i < count; i++) {
            uint32_t u = le32(bin + 4 * i);
            memcpy(&out->fp32[i], &u, sizeof u);
            if (!isfinite(out->fp32[i]))
                return cnn_err_set(err, CNN_EINVAL, "binary FP32 data holds NaN or infinity");
        }
        return 0;
    }
    const json_t *data = json_object_get(in, "data");
    if (!json_is_array(data))
        return cnn_err_set(err, CNN_EINVAL, "input needs a data array or binary_data_size");
    size_t got = 0;
    rc = flatten(data, out->fp32, count, &got, err);
    if (rc)
        return rc;
    if (got != count)
        return cnn_err_set(err, CNN_EINVAL, "input data has %zu values, its shape %zu", got, count);
    return 0;
}

static int parse_bytes(const long long *dims, int rank, const unsigned char *bin, size_t bin_len,
                       int has_bin, const struct v2_model_io *io, const struct v2_limits *lim,
                       struct v2_request *out, struct cnn_err *err)
{
    if (!(rank == 1 || (rank == 2 && dims[1] == 1)))
        return cnn_err_set(err, CNN_EINVAL, "a BYTES input has shape [N] or [N,1]");
    if (dims[0] < 1)
        return cnn_err_set(err, CNN_EINVAL, "batch size must be at least 1");
    if (dims[0] > lim->max_batch_items)
        return cnn_err_set(err, CNN_ELIMIT, "batch of %lld exceeds max_batch_items (%d)", dims[0],
                           lim->max_batch_items);
    int n = (int)dims[0];
    long long tensor[4] = {n, io->c, io->h, io->w};
    size_t count = 0;
    int rc = v2_element_count(tensor, 4, &count, err);
    if (rc)
        return rc;
    if (count > lim->max_tensor_elements)
        return cnn_err_set(err, CNN_ELIMIT,
                           "%d images make %zu input elements, over max_tensor_elements "
                           "(%zu)",
                           n, count, lim->max_tensor_elements);
    if (!has_bin)
        return cnn_err_set(err, CNN_EINVAL,
                           "a BYTES input needs the binary data extension "
                           "(parameters.binary_data_size)");
    out->images = calloc((size_t)n, sizeof *out->images);
    if (!out->images)
        return cnn_err_set(err, CNN_ENOMEM, "out of memory");
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        if (bin_len - off < 4)
            return cnn_err_set(err, CNN_EINVAL, "BYTES element %d: length truncated", i);
        size_t l = le32(bin + off);
        off += 4;
        if (l > bin_len - off)
            return cnn_err_set(err, CNN_EINVAL, "BYTES element %d: %zu bytes, only %zu left", i, l,
                               bin_len - off);
        out->images[i] = (struct v2_blob){bin + off, l};
        off += l;
    }
    if (off != bin_len)
        return cnn_err_set(err, CNN_EINVAL, "BYTES input has %zu bytes after its %d elements",
                           bin_len - off, n);
    out->n = n;
    out->batched = 1;
    return 0;
}

/* The requested outputs: names, binary_data, classification. */
static int parse_outputs(const json_t *root, const struct v2_model_io *io, struct v2_request *out,
                         struct cnn_err *err)
{
    const json_t *params = json_object_get(root, "parameters");
    if (params && !json_is_object(params))
        return cnn_err_set(err, CNN_EINVAL, "parameters must be an object");
    const json_t *bdo = json_object_get(params, "binary_data_output");
    if (bdo && !json_is_boolean(bdo))
        return cnn_err_set(err, CNN_EINVAL, "binary_data_output must be true or false");
    out->out_binary = json_is_true(bdo);
    const json_t *outs = json_object_get(root, "outputs");
    if (!outs)
        return 0;
    if (!json_is_array(outs))
        return cnn_err_set(err, CNN_EINVAL, "outputs must be an array");
    size_t i;
    const json_t *o;
    json_array_foreach(outs, i, o)
    {
        const char *name = json_string_value(json_object_get(o, "name"));
        if (!name)
            return cnn_err_set(err, CNN_EINVAL, "outputs[%zu] needs a name", i);
        if (strcmp(name, V2_OUTPUT_NAME) != 0)
            return cnn_err_set(err, CNN_EINVAL,
                               "unknown output '%.40s' (the model's output "
                               "is '" V2_OUTPUT_NAME "')",
                               name);
        const json_t *p = json_object_get(o, "parameters");
        if (p && !json_is_object(p))
            return cnn_err_set(err, CNN_EINVAL, "outputs[%zu].parameters must be an object", i);
        const json_t *bd = json_object_get(p, "binary_data");
        if (bd && !json_is_boolean(bd))
            return cnn_err_set(err, CNN_EINVAL, "binary_data must be true or false");
        if (json_is_true(bd))
            out->out_binary = 1;
        const json_t *cls = json_object_get(p, "classification");
        if (cls) {
            if (!json_is_integer(cls) || json_integer_value(cls) < 1)
                return cnn_err_set(err, CNN_EINVAL, "classification must be an integer >= 1");
            json_int_t k = json_integer_value(cls);
            out->class_k = k > io->classes ? io->classes : (int)k;
        }
    }
    return 0;
}

static int parse_input(const json_t *root, const unsigned char *bin, size_t bin_len, int has_header,
                       const struct v2_model_io *io, const struct v2_limits *lim,
                       struct v2_request *out, struct cnn_err *err)
{
    const json_t *inputs = json_object_get(root, "inputs");
    if (!json_is_array(inputs) || json_array_size(inputs) != 1)
        return cnn_err_set(err, CNN_EINVAL, "inputs must be an array of one input");
    const json_t *in = json_array_get(inputs, 0);
    const char *name = json_string_value(json_object_get(in, "name"));
    const char *type = json_string_value(json_object_get(in, "datatype"));
    const json_t *shape = json_object_get(in, "shape");
    if (!name || !type || !json_is_array(shape))
        return cnn_err_set(err, CNN_EINVAL, "an input needs name, datatype and shape");
    if (strcmp(name, V2_INPUT_NAME) != 0)
        return cnn_err_set(err, CNN_EINVAL,
                           "unknown input '%.40s' (the model's input is '" V2_INPUT_NAME "')",
                           name);
    size_t rank = json_array_size(shape);
    if (rank < 1 || rank > MAX_RANK)
        return cnn_err_set(err, CNN_EINVAL, "shape must have 1..%d dimensions", MAX_RANK);
    long long dims[MAX_RANK];
    for (size_t i = 0; i < rank; i++) {
        const json_t *d = json_array_get(shape, i);
        if (!json_is_integer(d))
            return cnn_err_set(err, CNN_EINVAL, "shape holds a non-integer");
        dims[i] = json_integer_value(d);
    }
    const json_t *params = json_object_get(in, "parameters");
    const json_t *bsize = json_object_get(params, "binary_data_size");
    size_t blen = 0;
    if (bsize) {
        if (!has_header)
            return cnn_err_set(err, CNN_EINVAL,
                               "binary_data_size without an "
                               "Inference-Header-Content-Length header");
        if (!json_is_integer(bsize) || json_integer_value(bsize) < 0 ||
            (unsigned long long)json_integer_value(bsize) > bin_len)
            return cnn_err_set(err, CNN_EINVAL,
                               "binary_data_size does not fit the %zu bytes "
                               "after the JSON header",
                               bin_len);
        blen = (size_t)json_integer_value(bsize);
    }
    if (has_header && blen != bin_len)
        return cnn_err_set(err, CNN_EINVAL,
                           "%zu bytes after the JSON header, the inputs "
                           "claim %zu",
                           bin_len, blen);
    if (strcmp(type, "FP32") == 0) {
        out->kind = V2_FP32;
        return parse_fp32(in, dims, (int)rank, bin, blen, bsize != NULL, io, lim, out, err);
    }
    if (strcmp(type, "BYTES") == 0) {
        out->kind = V2_BYTES;
        return parse_bytes(dims, (int)rank, bin, blen, bsize != NULL, io, lim, out, err);
    }
    return cnn_err_set(err, CNN_EINVAL, "input datatype %.16s not supported (FP32 or BYTES)", type);
}

int v2_parse_request(const void *body, size_t len, const char *header_len,
                     const struct v2_model_io *io, const struct v2_limits *lim,
                     struct v2_request *out, struct cnn_err *err)
{
    memset(out, 0, sizeof *out);
    size_t jlen = len;
    if (header_len) {
        if (parse_size(header_len, &jlen) != 0)
            return cnn_err_set(err, CNN_EINVAL, "bad Inference-Header-Content-Length");
        if (jlen > len)
            return cnn_err_set(err, CNN_EINVAL,
                               "Inference-Header-Content-Length %zu exceeds "
                               "the %zu-byte body",
                               jlen, len);
    }
    int rc = json_check_limits(body, jlen, lim->max_depth, lim->max_values, err);
    if (rc && err) {
        char why[sizeof err->msg];
        snprintf(why, sizeof why, "%s", err->msg);
        cnn_err_set(err, rc, "%s (max_json_depth %d, max_json_values %zu)", why, lim->max_depth,
                    lim->max_values);
    }
    if (rc)
        return rc;
    json_error_t je;
    out->root = json_loadb(body, jlen, JSON_REJECT_DUPLICATES, &je);
    if (!out->root)
        return cnn_err_set(err, CNN_EINVAL, "bad JSON at line %d column %d: %.80s", je.line,
                           je.column, je.text);
    if (!json_is_object(out->root)) {
        rc = cnn_err_set(err, CNN_EINVAL, "the request must be a JSON object");
        goto fail;
    }
    const json_t *id = json_object_get(out->root, "id");
    if (id && !json_is_string(id)) {
        rc = cnn_err_set(err, CNN_EINVAL, "id must be a string");
        goto fail;
    }
    out->id = json_string_value(id);
    rc = parse_input(out->root, (const unsigned char *)body + jlen, len - jlen, header_len != NULL,
                     io, lim, out, err);
    if (rc == 0)
        rc = parse_outputs(out->root, io, out, err);
    if (rc == 0) {
        size_t oc = 0; /* the output tensor is bounded too */
        long long odims[2] = {out->n, io->classes};
        rc = v2_element_count(odims, 2, &oc, err);
        if (rc == 0 && oc > lim->max_tensor_elements)
            rc = cnn_err_set(err, CNN_ELIMIT,
                             "output of %zu elements exceeds max_tensor_elements (%zu)", oc,
                             lim->max_tensor_elements);
    }
    if (rc == 0)
        return 0;
fail:
    v2_request_free(out);
    return rc;
}
