/* KServe v2 infer response (see infer.h): one output, FP32 probabilities [N,K] or, with the
 * classification extension, BYTES strings "score:index:label" [N,k]; in the JSON "data" or,
 * with binary_data, as binary data after the JSON (4-byte little-endian floats, or per
 * string a 4-byte little-endian length and its bytes). */
#include "infer.h"

#include "jsonw.h"
#include "predict.h"

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

/* Output values: into the JSON text (w) or as binary data (bin). */
static int fill_fp32(const struct v2_answer *a, struct jsonw *w, struct growbuf *bin)
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
        } else {
            if (i)
                jw_raw(w, ",");
            jw_float(w, f);
        }
    }
    return 0;
}

static int fill_classes(const struct v2_answer *a, struct jsonw *w, struct growbuf *bin,
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
            } else {
                if (i || j)
                    jw_raw(w, ",");
                jw_str(w, s);
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
    struct jsonw w = {0};
    int k = a->class_k ? a->class_k : a->classes;
    jw_raw(&w, "{\"model_name\":");
    jw_str(&w, a->model);
    jw_raw(&w, ",\"model_version\":\"");
    jw_int(&w, a->version);
    jw_raw(&w, "\"");
    if (a->id) {
        jw_raw(&w, ",\"id\":");
        jw_str(&w, a->id);
    }
    jw_raw(&w, ",\"outputs\":[{\"name\":\"" V2_OUTPUT_NAME "\",\"datatype\":\"");
    jw_raw(&w, a->class_k ? "BYTES" : "FP32");
    jw_raw(&w, "\",\"shape\":[");
    if (a->batched) {
        jw_int(&w, a->n);
        jw_raw(&w, ",");
    }
    jw_int(&w, k);
    jw_raw(&w, "]");
    struct growbuf *b = a->out_binary ? &bin : NULL;
    if (!b)
        jw_raw(&w, ",\"data\":[");
    int rc = a->class_k ? fill_classes(a, &w, b, err)
                        : (fill_fp32(a, &w, b) ? cnn_err_set(err, CNN_ENOMEM, "out of memory") : 0);
    if (b) {
        jw_raw(&w, ",\"parameters\":{\"binary_data_size\":");
        jw_int(&w, (long long)bin.n);
        jw_raw(&w, "}");
    } else {
        jw_raw(&w, "]");
    }
    jw_raw(&w, "}]}");
    size_t hlen;
    char *head = jw_finish(&w, &hlen);
    if (rc == 0 && !head)
        rc = cnn_err_set(err, CNN_ENOMEM, "out of memory for the answer");
    if (rc == 0 && b) {
        char *all = realloc(head, hlen + bin.n + 1);
        if (!all) {
            rc = cnn_err_set(err, CNN_ENOMEM, "out of memory for the answer");
        } else {
            head = all;
            if (bin.n)
                memcpy(head + hlen, bin.p, bin.n);
            *header_len = hlen;
            hlen += bin.n;
        }
    }
    free(bin.p);
    if (rc) {
        free(head);
        return rc;
    }
    *body = head;
    *len = hlen;
    return 0;
}
