/* KServe v2 infer response (see infer.h): one output, FP32 probabilities [N,K] or, with the
 * classification extension, BYTES strings "score:index:label" [N,k]; in the JSON "data" or,
 * with binary_data, as binary data after the JSON (4-byte little-endian floats, or per
 * string a 4-byte little-endian length and its bytes). */
#include "infer.h"

#include "predict.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct growbuf {
    unsigned char *p;
    size_t n, cap;
};

static int gb_put(struct growbuf *b, const void *d, size_t n)
{
    if (b->cap - b->n < n) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->n < n)
            cap *= 2;
        unsigned char *p = realloc(b->p, cap);
        if (!p)
            return -1;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
    return 0;
}

static void put_le32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

/* Output values: JSON data (into arr) or binary (into bin). */
static int fill_fp32(const struct v2_answer *a, json_t *arr, struct growbuf *bin)
{
    size_t total = (size_t)a->n * (size_t)a->classes;
    for (size_t i = 0; i < total; i++) {
        float f = a->probs[i];
        if (bin) {
            uint32_t u;
            unsigned char le[4];
            memcpy(&u, &f, sizeof u);
            put_le32(le, u);
            if (gb_put(bin, le, 4) != 0)
                return -1;
        } else if (json_array_append_new(arr, isfinite(f) ? json_real(f) : json_null()) != 0) {
            return -1;
        }
    }
    return 0;
}

static int fill_classes(const struct v2_answer *a, json_t *arr, struct growbuf *bin,
                        struct cnn_err *err)
{
    int k = a->class_k;
    struct prediction small[16], *top = k <= 16 ? small : malloc((size_t)k * sizeof *top);
    if (!top)
        return cnn_err_set(err, CNN_ENOMEM, "out of memory");
    int rc = 0;
    for (int i = 0; i < a->n && rc == 0; i++) {
        rc = predict_topk(a->probs + (size_t)i * (size_t)a->classes, a->classes, k, top, err);
        for (int j = 0; j < k && rc == 0; j++) {
            char lbuf[32], s[CNN_LABEL_MAX + 64];
            const char *label = predict_label(a->m, top[j].index, lbuf, sizeof lbuf);
            int len = predict_format_class(s, sizeof s, top[j].score, top[j].index, label);
            if (len < 0) {
                rc = cnn_err_set(err, CNN_EINVAL, "label too long");
            } else if (bin) {
                unsigned char le[4];
                put_le32(le, (uint32_t)len);
                if (gb_put(bin, le, 4) != 0 || gb_put(bin, s, (size_t)len) != 0)
                    rc = cnn_err_set(err, CNN_ENOMEM, "out of memory");
            } else if (json_array_append_new(arr, predict_json_string(s)) != 0) {
                rc = cnn_err_set(err, CNN_ENOMEM, "out of memory");
            }
        }
    }
    if (top != small)
        free(top);
    return rc;
}

int v2_build_response(const struct v2_answer *a, char **body, size_t *len, size_t *header_len,
                      struct cnn_err *err)
{
    *body = NULL;
    *len = *header_len = 0;
    struct growbuf bin = {0};
    char version[24];
    snprintf(version, sizeof version, "%d", a->version);
    int k = a->class_k ? a->class_k : a->classes;
    json_t *root = json_object(), *out = json_object(), *outs = json_array();
    json_t *shape = json_array(), *data = json_array();
    int rc = CNN_ENOMEM;
    if (!root || !out || !outs || !shape || !data)
        goto fail;
    if (json_object_set_new(root, "model_name", predict_json_string(a->model)) ||
        json_object_set_new(root, "model_version", json_string(version)) ||
        (a->id && json_object_set_new(root, "id", predict_json_string(a->id))) ||
        json_array_append(outs, out) || json_object_set(root, "outputs", outs) ||
        json_object_set_new(out, "name", json_string(V2_OUTPUT_NAME)) ||
        json_object_set_new(out, "datatype", json_string(a->class_k ? "BYTES" : "FP32")) ||
        (a->batched && json_array_append_new(shape, json_integer(a->n))) ||
        json_array_append_new(shape, json_integer(k)) || json_object_set(out, "shape", shape))
        goto fail;
    rc = a->class_k ? fill_classes(a, data, a->out_binary ? &bin : NULL, err)
                    : (fill_fp32(a, data, a->out_binary ? &bin : NULL) ? CNN_ENOMEM : 0);
    if (rc)
        goto fail;
    rc = CNN_ENOMEM;
    if (a->out_binary) {
        json_t *p = json_object();
        if (!p || json_object_set_new(out, "parameters", p) ||
            json_object_set_new(p, "binary_data_size", json_integer((json_int_t)bin.n)))
            goto fail;
    } else if (json_object_set(out, "data", data)) {
        goto fail;
    }
    char *head = json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(9));
    if (!head)
        goto fail;
    size_t hlen = strlen(head);
    if (!a->out_binary) {
        *body = head;
        *len = hlen;
    } else {
        char *all = malloc(hlen + bin.n + 1);
        if (!all) {
            free(head);
            goto fail;
        }
        memcpy(all, head, hlen);
        if (bin.n)
            memcpy(all + hlen, bin.p, bin.n);
        free(head);
        *body = all;
        *len = hlen + bin.n;
        *header_len = hlen;
    }
    rc = 0;
fail:
    if (rc == CNN_ENOMEM)
        cnn_err_set(err, CNN_ENOMEM, "out of memory for the answer");
    free(bin.p);
    json_decref(root);
    json_decref(out);
    json_decref(outs);
    json_decref(shape);
    json_decref(data);
    return rc;
}
