/* Infer suite, unit level: KServe v2 request parsing (shapes, element-count overflow, binary
 * tensor data, BYTES images, output parameters) and response building, top-k, the
 * classification strings, the classify answer and the JSON writer.  Expected values come
 * from naive code written here. */
#include "infer.h"
#include "http.h"
#include "jsonw.h"
#include "predict.h"
#include "server_test_models.h"
#include "test_bytes.h"

#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- v2 requests --------------------------------------------------------------------- */

static const struct v2_model_io IO = {2, 3, 2, 5}; /* C=2, H=3, W=2: 12 floats; 5 classes */
static const struct v2_limits LIM = {32, 100000, 1000, 8};

static int parse(const char *json, const char *hdr, struct v2_request *r, struct cnn_err *err)
{
    return v2_parse_request(json, strlen(json), hdr, &IO, &LIM, r, err);
}

/* "[v0,v1,...]" of n values i * 0.25 - 1, flat. */
static void flat_values(struct buf *b, int n)
{
    char num[32];
    puts_(b, "[");
    for (int i = 0; i < n; i++) {
        snprintf(num, sizeof num, "%s%g", i ? "," : "", i * 0.25 - 1);
        puts_(b, num);
    }
    puts_(b, "]");
}

START_TEST(test_v2_fp32_flat_and_nested_parse_the_same)
{
    struct buf flat = {0}, nest = {0};
    puts_(&flat, "{\"id\":\"r1\",\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\","
                 "\"shape\":[2,2,3,2],\"data\":");
    flat_values(&flat, 24);
    puts_(&flat, "}]}");
    /* the same values nested as [2][2][3][2] */
    puts_(&nest, "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[2,2,3,2],"
                 "\"data\":[");
    char num[32];
    for (int i = 0; i < 24; i++) {
        if (i % 12 == 0)
            puts_(&nest, i ? "]]],[[[" : "[[[");
        else if (i % 6 == 0)
            puts_(&nest, "]],[[");
        else if (i % 2 == 0)
            puts_(&nest, "],[");
        snprintf(num, sizeof num, "%s%g", i % 2 ? "," : "", i * 0.25 - 1);
        puts_(&nest, num);
    }
    puts_(&nest, "]]]]}]}");
    struct v2_request a, b;
    struct cnn_err err = {0};
    ck_assert_msg(parse(flat.p, NULL, &a, &err) == 0, "%s", err.msg);
    ck_assert_msg(parse(nest.p, NULL, &b, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(a.kind, V2_FP32);
    ck_assert_int_eq(a.n, 2);
    ck_assert_int_eq(a.batched, 1);
    ck_assert_str_eq(a.id, "r1");
    ck_assert_ptr_null(b.id);
    for (int i = 0; i < 24; i++) {
        ck_assert(a.fp32[i] == (float)(i * 0.25 - 1));
        ck_assert(b.fp32[i] == a.fp32[i]);
    }
    ck_assert_int_eq(a.out_binary, 0);
    ck_assert_int_eq(a.class_k, 0);
    v2_request_free(&a);
    v2_request_free(&b);
    free(flat.p);
    free(nest.p);
}
END_TEST

START_TEST(test_v2_unbatched_shape_and_output_parameters)
{
    struct buf j = {0};
    puts_(&j, "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[2,3,2],"
              "\"data\":");
    flat_values(&j, 12);
    puts_(&j, "}],\"outputs\":[{\"name\":\"output\",\"parameters\":{\"classification\":9,"
              "\"binary_data\":true}}]}");
    struct v2_request r;
    struct cnn_err err = {0};
    ck_assert_msg(parse(j.p, NULL, &r, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(r.n, 1);
    ck_assert_int_eq(r.batched, 0);
    ck_assert_int_eq(r.class_k, 5); /* clamped to the classes */
    ck_assert_int_eq(r.out_binary, 1);
    v2_request_free(&r);
    free(j.p);
}
END_TEST

START_TEST(test_v2_bad_requests_are_refused_with_the_right_code)
{
    static const struct {
        const char *json;
        int code;
    } cases[] = {
        {"[]", CNN_EINVAL},
        {"{\"inputs\":[", CNN_EINVAL},
        {"{\"inputs\":[]}", CNN_EINVAL},
        {"{\"id\":7,\"inputs\":[]}", CNN_EINVAL},
        {"{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[2,3,2],\"data\":[]}]}",
         CNN_EINVAL},
        {"{\"inputs\":[{\"name\":\"input\",\"datatype\":\"INT8\",\"shape\":[2,3,2]}]}", CNN_EINVAL},
        {"{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1,3,3,2],"
         "\"data\":[]}]}",
         CNN_EINVAL}, /* wrong C */
        {"{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[0,2,3,2],"
         "\"data\":[]}]}",
         CNN_EINVAL}, /* empty batch */
        {"{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[-1,2,3,2],"
         "\"data\":[]}]}",
         CNN_EINVAL},
        {"{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1,2,3,2],"
         "\"data\":[1,2,3]}]}",
         CNN_EINVAL}, /* too few values */
        {"{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[2,3,2],"
         "\"data\":[1,2,3,4,5,6,7,8,9,10,11,12,13]}]}",
         CNN_EINVAL}, /* too many */
        {"{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[2,3,2],"
         "\"data\":[1,2,3,4,5,6,7,8,9,10,11,\"x\"]}]}",
         CNN_EINVAL},
        {"{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[2,3,2],"
         "\"data\":[1,2,3,4,5,6,7,8,9,10,11,1e300]}]}",
         CNN_EINVAL}, /* beyond FP32 */
        {"{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[9,2,3,2],"
         "\"data\":[]}]}",
         CNN_ELIMIT}, /* batch 9 > 8 */
        {"{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[2000,2,3,2],"
         "\"data\":[]}]}",
         CNN_ELIMIT}, /* 24000 elements > 1000 */
        {"{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\","
         "\"shape\":[4294967296,4294967296,4294967296,2],\"data\":[]}]}",
         CNN_ELIMIT}, /* the product overflows */
        {"{\"inputs\":[{\"name\":\"input\",\"datatype\":\"BYTES\",\"shape\":[1]}]}",
         CNN_EINVAL}, /* BYTES without binary data */
        {"{\"inputs\":[{\"name\":\"input\",\"datatype\":\"BYTES\",\"shape\":[1,2],"
         "\"parameters\":{\"binary_data_size\":0}}]}",
         CNN_EINVAL}, /* binary size without the header */
        {"{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[2,3,2],"
         "\"data\":[1,2,3,4,5,6,7,8,9,10,11,12]}],\"outputs\":[{\"name\":\"probs\"}]}",
         CNN_EINVAL},
        {"{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[2,3,2],"
         "\"data\":[1,2,3,4,5,6,7,8,9,10,11,12]}],\"outputs\":[{\"name\":\"output\","
         "\"parameters\":{\"classification\":0}}]}",
         CNN_EINVAL},
        {"{\"inputs\":[],\"inputs\":[]}", CNN_EINVAL}, /* duplicate key */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct v2_request r;
        struct cnn_err err = {0};
        int rc = parse(cases[i].json, NULL, &r, &err);
        ck_assert_msg(rc == cases[i].code, "case %zu: rc %d (%s)", i, rc, err.msg);
        ck_assert_ptr_null(r.root); /* nothing left to free */
        ck_assert_ptr_null(r.fp32);
    }
    /* nesting beyond the limit is refused before parsing */
    char *deep = nested(40);
    struct buf j = {0};
    puts_(&j, "{\"inputs\":");
    puts_(&j, deep);
    puts_(&j, "}");
    struct v2_request r;
    ck_assert_int_eq(parse(j.p, NULL, &r, NULL), CNN_ELIMIT);
    free(deep);
    free(j.p);
}
END_TEST

/* Structural limits (depth, overflowing shapes, element and batch counts) are CNN_ELIMIT,
 * which the HTTP layer answers 400 (not 413: that is only a body over its byte limit), with
 * a message naming the limit. */
START_TEST(test_v2_structural_limits_are_400_naming_the_limit)
{
    ck_assert_int_eq(http_status_of(CNN_ELIMIT), 400);
    ck_assert_int_eq(http_status_of(CNN_EINVAL), 400);
    static const struct {
        const char *shape;
        const char *words[2];
    } cases[] = {
        {"[4294967296,4294967296]", {"overflows", "max_tensor_elements (1000)"}}, /* 2^64 */
        {"[4611686018427387904,4]", {"overflows", "max_tensor_elements (1000)"}}, /* 2^64 */
        {"[2000,2,3,2]", {"24000 elements", "max_tensor_elements (1000)"}},
        {"[9,2,3,2]", {"batch of 9", "max_batch_items (8)"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char json[256];
        snprintf(json, sizeof json,
                 "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":%s,"
                 "\"data\":[]}]}",
                 cases[i].shape);
        struct v2_request r;
        struct cnn_err err = {0};
        ck_assert_int_eq(parse(json, NULL, &r, &err), CNN_ELIMIT);
        for (int k = 0; k < 2; k++)
            ck_assert_msg(strstr(err.msg, cases[i].words[k]), "%s: '%s' lacks '%s'",
                          cases[i].shape, err.msg, cases[i].words[k]);
    }
    char *deep = nested(2000); /* far past max_json_depth 32 */
    struct buf j = {0};
    puts_(&j, "{\"inputs\":");
    puts_(&j, deep);
    puts_(&j, "}");
    struct v2_request r;
    struct cnn_err err = {0};
    ck_assert_int_eq(parse(j.p, NULL, &r, &err), CNN_ELIMIT);
    ck_assert_msg(strstr(err.msg, "deeper than 32") && strstr(err.msg, "max_json_depth 32"), "%s",
                  err.msg);
    free(deep);
    free(j.p);
}
END_TEST

START_TEST(test_v2_element_count_overflow_checks)
{
    size_t count = 0;
    struct cnn_err err = {0};
    long long ok[4] = {3, 5, 7, 11};
    ck_assert_int_eq(v2_element_count(ok, 4, &count, &err), 0);
    ck_assert_uint_eq(count, 3 * 5 * 7 * 11);
    long long zero[3] = {0, 1LL << 62, 1LL << 62};
    ck_assert_int_eq(v2_element_count(zero, 3, &count, &err), 0); /* 0 x ... never overflows */
    ck_assert_uint_eq(count, 0);
    long long big[2] = {1LL << 32, 1LL << 32}; /* 2^64 */
    ck_assert_int_eq(v2_element_count(big, 2, &count, &err), CNN_ELIMIT);
    long long edge[2] = {1LL << 31, (1LL << 33) - 1}; /* just below 2^64 */
    ck_assert_int_eq(v2_element_count(edge, 2, &count, &err), 0);
    ck_assert(count == (size_t)(1ULL << 31) * (size_t)((1ULL << 33) - 1));
    long long neg[2] = {4, -2};
    ck_assert_int_eq(v2_element_count(neg, 2, &count, &err), CNN_EINVAL);
}
END_TEST

START_TEST(test_v2_binary_fp32_input)
{
    struct buf body = {0};
    const char *head = "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1,2,3,"
                       "2],\"parameters\":{\"binary_data_size\":48}}]}";
    puts_(&body, head);
    float want[12];
    for (int i = 0; i < 12; i++) {
        want[i] = (float)i / 7.0f - 0.5f;
        uint32_t u;
        memcpy(&u, &want[i], 4);
        put_le32(&body, u);
    }
    char hlen[16];
    snprintf(hlen, sizeof hlen, "%zu", strlen(head));
    struct v2_request r;
    struct cnn_err err = {0};
    ck_assert_msg(v2_parse_request(body.p, body.n, hlen, &IO, &LIM, &r, &err) == 0, "%s", err.msg);
    for (int i = 0; i < 12; i++)
        ck_assert(r.fp32[i] == want[i]);
    v2_request_free(&r);
    /* one byte short, one byte extra, wrong header values */
    ck_assert_int_eq(v2_parse_request(body.p, body.n - 1, hlen, &IO, &LIM, &r, &err), CNN_EINVAL);
    put(&body, "x", 1);
    ck_assert_int_eq(v2_parse_request(body.p, body.n, hlen, &IO, &LIM, &r, &err), CNN_EINVAL);
    ck_assert_int_eq(v2_parse_request(body.p, body.n, "12x", &IO, &LIM, &r, &err), CNN_EINVAL);
    ck_assert_int_eq(v2_parse_request(body.p, body.n, "99999", &IO, &LIM, &r, &err), CNN_EINVAL);
    ck_assert_int_eq(v2_parse_request(body.p, body.n, "", &IO, &LIM, &r, &err), CNN_EINVAL);
    ck_assert_int_eq(
        v2_parse_request(body.p, body.n, "99999999999999999999999", &IO, &LIM, &r, &err),
        CNN_EINVAL);
    free(body.p);
}
END_TEST

START_TEST(test_v2_bytes_images_in_binary)
{
    static const char *const imgs[3] = {"first image", "", "third\r\n\0x"};
    static const size_t lens[3] = {11, 0, 9};
    struct buf bin = {0};
    for (int i = 0; i < 3; i++) {
        put_le32(&bin, (uint32_t)lens[i]);
        put(&bin, imgs[i], lens[i]);
    }
    char head[256];
    snprintf(head, sizeof head,
             "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"BYTES\",\"shape\":[3],"
             "\"parameters\":{\"binary_data_size\":%zu}}],\"outputs\":[{\"name\":\"output\","
             "\"parameters\":{\"classification\":2}}]}",
             bin.n);
    struct buf body = {0};
    puts_(&body, head);
    put(&body, bin.p, bin.n);
    char hlen[16];
    snprintf(hlen, sizeof hlen, "%zu", strlen(head));
    struct v2_request r;
    struct cnn_err err = {0};
    ck_assert_msg(v2_parse_request(body.p, body.n, hlen, &IO, &LIM, &r, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(r.kind, V2_BYTES);
    ck_assert_int_eq(r.n, 3);
    ck_assert_int_eq(r.class_k, 2);
    for (int i = 0; i < 3; i++) {
        ck_assert_uint_eq(r.images[i].len, lens[i]);
        ck_assert_int_eq(memcmp(r.images[i].data, imgs[i], lens[i]), 0);
    }
    v2_request_free(&r);
    /* an element length pointing past the end */
    struct buf bad = {0};
    snprintf(head, sizeof head,
             "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"BYTES\",\"shape\":[1],"
             "\"parameters\":{\"binary_data_size\":6}}]}");
    puts_(&bad, head);
    put_le32(&bad, 0xFFFFFFF0u);
    put(&bad, "ab", 2);
    snprintf(hlen, sizeof hlen, "%zu", strlen(head));
    ck_assert_int_eq(v2_parse_request(bad.p, bad.n, hlen, &IO, &LIM, &r, &err), CNN_EINVAL);
    /* shape [2] but one element */
    bad.n = 0;
    snprintf(head, sizeof head,
             "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"BYTES\",\"shape\":[2],"
             "\"parameters\":{\"binary_data_size\":6}}]}");
    puts_(&bad, head);
    put_le32(&bad, 2);
    put(&bad, "ab", 2);
    snprintf(hlen, sizeof hlen, "%zu", strlen(head));
    ck_assert_int_eq(v2_parse_request(bad.p, bad.n, hlen, &IO, &LIM, &r, &err), CNN_EINVAL);
    free(bad.p);
    free(bin.p);
    free(body.p);
}
END_TEST

/* ---- top-k and answers --------------------------------------------------------------- */

/* Naive: k rounds of "pick the best unused" with the documented order. */
static void naive_topk(const float *s, int classes, int k, struct prediction *out)
{
    char used[256] = {0};
    for (int j = 0; j < k; j++) {
        int best = -1;
        for (int i = 0; i < classes; i++) {
            if (used[i])
                continue;
            if (best < 0) {
                best = i;
                continue;
            }
            int in = isnan(s[i]), bn = isnan(s[best]);
            if ((bn && !in) || (!in && !bn && s[i] > s[best]))
                best = i;
        }
        used[best] = 1;
        out[j] = (struct prediction){best, s[best]};
    }
}

START_TEST(test_topk_matches_naive_selection_with_ties_and_nan)
{
    rng_state = 99;
    float s[200];
    struct prediction got[200], want[200];
    for (int iter = 0; iter < 300; iter++) {
        int classes = 1 + (int)(rng() % 200);
        for (int i = 0; i < classes; i++) {
            uint32_t r = rng() % 10;
            s[i] = r == 0 ? NAN : (float)(rng() % 6) / 5.0f; /* many ties */
        }
        int k = 1 + (int)(rng() % (uint32_t)classes);
        ck_assert_int_eq(predict_topk(s, classes, k, got, NULL), 0);
        naive_topk(s, classes, k, want);
        for (int j = 0; j < k; j++) {
            ck_assert_int_eq(got[j].index, want[j].index);
        }
    }
    ck_assert_int_eq(predict_topk(s, 5, 0, got, NULL), CNN_EINVAL);
    ck_assert_int_eq(predict_topk(s, 5, 6, got, NULL), CNN_EINVAL);
}
END_TEST

START_TEST(test_classification_string_format)
{
    char buf[64];
    ck_assert_int_eq(predict_format_class(buf, sizeof buf, 0.5f, 3, "cat"), 14);
    ck_assert_str_eq(buf, "0.500000:3:cat");
    ck_assert_int_eq(predict_format_class(buf, sizeof buf, 0.0000004f, 12, "a:b"), 15);
    ck_assert_str_eq(buf, "0.000000:12:a:b");
    ck_assert_int_eq(predict_format_class(buf, 14, 0.5f, 3, "cat"), -1); /* no room for NUL */
    ck_assert_int_eq(predict_format_class(buf, 15, 0.5f, 3, "cat"), 14);
    struct cnn_model *m = stm_model(7);
    char lb[32];
    ck_assert_str_eq(predict_label(m, 2, lb, sizeof lb), "c2");
    cnn_model_destroy(m);
    /* invalid UTF-8 in a label still makes a JSON string */
    json_t *j = predict_json_string("caf\xe9");
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(json_string_value(j), "caf?");
    json_decref(j);
}
END_TEST

static const float PROBS[2 * 5] = {0.1f, 0.4f, 0.05f, 0.3f, 0.15f, 0.6f, 0.1f, 0.1f, 0.05f, 0.15f};

START_TEST(test_v2_response_fp32_json_and_binary)
{
    struct v2_answer a = {.model = "m",
                          .version = 3,
                          .id = "abc",
                          .n = 2,
                          .batched = 1,
                          .classes = 5,
                          .probs = PROBS};
    char *body;
    size_t len, hlen;
    struct cnn_err err = {0};
    ck_assert_int_eq(v2_build_response(&a, &body, &len, &hlen, &err), 0);
    ck_assert_uint_eq(hlen, 0);
    json_t *root = json_loadb(body, len, 0, NULL);
    ck_assert_ptr_nonnull(root);
    ck_assert_str_eq(json_string_value(json_object_get(root, "model_name")), "m");
    ck_assert_str_eq(json_string_value(json_object_get(root, "model_version")), "3");
    ck_assert_str_eq(json_string_value(json_object_get(root, "id")), "abc");
    json_t *out = json_array_get(json_object_get(root, "outputs"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(out, "name")), "output");
    ck_assert_str_eq(json_string_value(json_object_get(out, "datatype")), "FP32");
    json_t *shape = json_object_get(out, "shape");
    ck_assert_int_eq(json_integer_value(json_array_get(shape, 0)), 2);
    ck_assert_int_eq(json_integer_value(json_array_get(shape, 1)), 5);
    json_t *data = json_object_get(out, "data");
    ck_assert_uint_eq(json_array_size(data), 10);
    for (int i = 0; i < 10; i++)
        ck_assert((float)json_number_value(json_array_get(data, i)) == PROBS[i]);
    json_decref(root);
    free(body);

    a.out_binary = 1;
    a.id = NULL;
    ck_assert_int_eq(v2_build_response(&a, &body, &len, &hlen, &err), 0);
    ck_assert_uint_eq(len, hlen + 40);
    root = json_loadb(body, hlen, 0, NULL);
    ck_assert_ptr_nonnull(root);
    ck_assert_ptr_null(json_object_get(root, "id"));
    out = json_array_get(json_object_get(root, "outputs"), 0);
    ck_assert_ptr_null(json_object_get(out, "data"));
    ck_assert_int_eq(
        json_integer_value(json_object_get(json_object_get(out, "parameters"), "binary_data_size")),
        40);
    for (int i = 0; i < 10; i++) {
        uint32_t u = get_le32((const unsigned char *)body + hlen + 4 * i);
        float f;
        memcpy(&f, &u, 4);
        ck_assert(f == PROBS[i]);
    }
    json_decref(root);
    free(body);
}
END_TEST

START_TEST(test_v2_response_classification_json_and_binary)
{
    struct cnn_model *m = stm_model(3); /* labels c0..c3: use 4 classes of PROBS rows */
    static const float P[2 * 4] = {0.1f, 0.4f, 0.2f, 0.3f, 0.7f, 0.1f, 0.1f, 0.1f};
    struct v2_answer a = {.model = "m",
                          .version = 1,
                          .m = m,
                          .n = 2,
                          .batched = 1,
                          .classes = 4,
                          .probs = P,
                          .class_k = 2};
    /* expected, written out: row 0 -> 1 (0.4), 3 (0.3); row 1 -> 0 (0.7), then the tie
     * 1/2/3 at 0.1 goes to the lowest index, 1 */
    char want[4][48];
    snprintf(want[0], sizeof want[0], "%f:1:c1", (double)0.4f);
    snprintf(want[1], sizeof want[1], "%f:3:c3", (double)0.3f);
    snprintf(want[2], sizeof want[2], "%f:0:c0", (double)0.7f);
    snprintf(want[3], sizeof want[3], "%f:1:c1", (double)0.1f);
    char *body;
    size_t len, hlen;
    struct cnn_err err = {0};
    ck_assert_int_eq(v2_build_response(&a, &body, &len, &hlen, &err), 0);
    json_t *root = json_loadb(body, len, 0, NULL);
    json_t *out = json_array_get(json_object_get(root, "outputs"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(out, "datatype")), "BYTES");
    json_t *shape = json_object_get(out, "shape");
    ck_assert_int_eq(json_integer_value(json_array_get(shape, 0)), 2);
    ck_assert_int_eq(json_integer_value(json_array_get(shape, 1)), 2);
    json_t *data = json_object_get(out, "data");
    ck_assert_uint_eq(json_array_size(data), 4);
    for (int i = 0; i < 4; i++)
        ck_assert_str_eq(json_string_value(json_array_get(data, i)), want[i]);
    json_decref(root);
    free(body);

    a.out_binary = 1;
    ck_assert_int_eq(v2_build_response(&a, &body, &len, &hlen, &err), 0);
    const unsigned char *p = (const unsigned char *)body + hlen;
    for (int i = 0; i < 4; i++) {
        uint32_t l = get_le32(p);
        ck_assert_uint_eq(l, strlen(want[i]));
        ck_assert_int_eq(memcmp(p + 4, want[i], l), 0);
        p += 4 + l;
    }
    ck_assert(p == (const unsigned char *)body + len);
    free(body);

    /* unbatched: shape [k] */
    a.out_binary = 0;
    a.batched = 0;
    a.n = 1;
    ck_assert_int_eq(v2_build_response(&a, &body, &len, &hlen, &err), 0);
    root = json_loadb(body, len, 0, NULL);
    out = json_array_get(json_object_get(root, "outputs"), 0);
    shape = json_object_get(out, "shape");
    ck_assert_uint_eq(json_array_size(shape), 1);
    ck_assert_int_eq(json_integer_value(json_array_get(shape, 0)), 2);
    json_decref(root);
    free(body);
    cnn_model_destroy(m);
}
END_TEST

START_TEST(test_classify_predictions_json)
{
    struct cnn_model *m = stm_model(5);
    static const float P[4] = {0.25f, 0.05f, 0.5f, 0.2f};
    struct cnn_err err = {0};
    struct jsonw w = {0};
    ck_assert_int_eq(predict_write_top(&w, m, P, 3, &err), 0);
    size_t len;
    char *text = jw_finish(&w, &len);
    ck_assert_ptr_nonnull(text);
    json_t *arr = json_loadb(text, len, 0, NULL); /* jansson is the independent reader */
    ck_assert_ptr_nonnull(arr);
    static const int order[3] = {2, 0, 3};
    ck_assert_uint_eq(json_array_size(arr), 3);
    for (int i = 0; i < 3; i++) {
        json_t *o = json_array_get(arr, i);
        char label[8];
        snprintf(label, sizeof label, "c%d", order[i]);
        ck_assert_str_eq(json_string_value(json_object_get(o, "label")), label);
        ck_assert_int_eq(json_integer_value(json_object_get(o, "index")), order[i]);
        ck_assert((float)json_real_value(json_object_get(o, "score")) == P[order[i]]);
    }
    json_decref(arr);
    free(text);
    cnn_model_destroy(m);
}
END_TEST

/* Strings: escapes, control characters, valid multibyte UTF-8 kept, invalid bytes '?';
 * floats read back as the same float; all of it valid JSON for jansson. */
START_TEST(test_json_writer_strings_and_numbers)
{
    static const char *const in[] = {"plain",
                                     "q\"b\\s/",
                                     "tab\tnl\ncr\r\x01\x1f",
                                     "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
                                     "bad\xe9x\xc3",
                                     "\xed\xa0\x80surrogate",
                                     "\xc0\xafoverlong",
                                     ""};
    static const char *const want[] = {"plain",
                                       "q\"b\\s/",
                                       "tab\tnl\ncr\r\x01\x1f",
                                       "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
                                       "bad?x?",
                                       "???surrogate",
                                       "??overlong",
                                       ""};
    static const float nums[] = {
        0.0f, 1.0f, -3.0f, 0.1f, 1e-7f, 3.4e38f, 0.254097074f, -1.17549435e-38f, 123456789.0f};
    struct jsonw w = {0};
    jw_raw(&w, "{\"s\":[");
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
        if (i)
            jw_raw(&w, ",");
        jw_str(&w, in[i]);
    }
    jw_raw(&w, "],\"f\":[");
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        jw_float(&w, nums[i]);
        jw_raw(&w, ",");
    }
    jw_float(&w, NAN);
    jw_raw(&w, ",");
    jw_float(&w, INFINITY);
    jw_raw(&w, "],\"i\":");
    jw_int(&w, -9007199254740993LL);
    jw_raw(&w, "}");
    size_t len;
    char *text = jw_finish(&w, &len);
    ck_assert_ptr_nonnull(text);
    json_error_t je;
    json_t *j = json_loadb(text, len, 0, &je);
    ck_assert_msg(j != NULL, "%s: %s", text, je.text);
    json_t *s = json_object_get(j, "s");
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++)
        ck_assert_str_eq(json_string_value(json_array_get(s, i)), want[i]);
    json_t *f = json_object_get(j, "f");
    size_t nn = sizeof nums / sizeof nums[0];
    for (size_t i = 0; i < nn; i++) {
        json_t *v = json_array_get(f, i);
        ck_assert_msg(json_is_real(v), "float %zu written as an integer", i);
        ck_assert((float)json_real_value(v) == nums[i]);
    }
    ck_assert(json_is_null(json_array_get(f, nn)));
    ck_assert(json_is_null(json_array_get(f, nn + 1)));
    ck_assert(json_integer_value(json_object_get(j, "i")) == -9007199254740993LL);
    json_decref(j);
    free(text);
}
END_TEST

Suite *infer_suite(void)
{
    Suite *s = suite_create("infer");
    TCase *tc = tcase_create("infer");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_v2_fp32_flat_and_nested_parse_the_same);
    tcase_add_test(tc, test_v2_unbatched_shape_and_output_parameters);
    tcase_add_test(tc, test_v2_bad_requests_are_refused_with_the_right_code);
    tcase_add_test(tc, test_v2_element_count_overflow_checks);
    tcase_add_test(tc, test_v2_structural_limits_are_400_naming_the_limit);
    tcase_add_test(tc, test_v2_binary_fp32_input);
    tcase_add_test(tc, test_v2_bytes_images_in_binary);
    tcase_add_test(tc, test_topk_matches_naive_selection_with_ties_and_nan);
    tcase_add_test(tc, test_classification_string_format);
    tcase_add_test(tc, test_v2_response_fp32_json_and_binary);
    tcase_add_test(tc, test_v2_response_classification_json_and_binary);
    tcase_add_test(tc, test_classify_predictions_json);
    tcase_add_test(tc, test_json_writer_strings_and_numbers);
    suite_add_tcase(s, tc);
    return s;
}
