/* HTTP suite, unit level: the JSON depth/value pre-check, the multipart parser on valid,
 * truncated and hostile bodies, KServe v2 request parsing (shapes, element-count overflow,
 * binary tensor data, BYTES images, output parameters) and response building, top-k and the
 * classification strings.  Expected values come from naive code written here. */
#include "infer.h"
#include "json_check.h"
#include "jsonw.h"
#include "metrics.h"
#include "multipart.h"
#include "predict.h"
#include "router.h"
#include "server_test_models.h"

#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ------------------------------------------------------------------------- */

struct buf {
    char *p;
    size_t n, cap;
};

static void put(struct buf *b, const void *d, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        ck_assert_ptr_nonnull(b->p);
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void puts_(struct buf *b, const char *s)
{
    put(b, s, strlen(s));
}

static void put_le32(struct buf *b, uint32_t v)
{
    unsigned char le[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                           (unsigned char)(v >> 24)};
    put(b, le, 4);
}

static uint32_t get_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rng_state;
static uint32_t rng(void)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(rng_state >> 33);
}

/* ---- JSON pre-check ------------------------------------------------------------------ */

static char *nested(int depth)
{
    char *s = malloc((size_t)depth * 2 + 2);
    for (int i = 0; i < depth; i++) {
        s[i] = '[';
        s[2 * depth - 1 - i] = ']';
    }
    s[2 * depth] = '\0';
    return s;
}

START_TEST(test_json_depth_limit_is_exact)
{
    struct cnn_err err = {0};
    char *s = nested(32);
    ck_assert_int_eq(json_check_limits(s, strlen(s), 32, 1000, &err), 0);
    free(s);
    s = nested(33);
    ck_assert_int_eq(json_check_limits(s, strlen(s), 32, 1000, &err), CNN_ELIMIT);
    ck_assert_ptr_nonnull(strstr(err.msg, "deeper than 32"));
    free(s);
    /* objects count too, mixed with arrays */
    const char *mix = "{\"a\":[{\"b\":[{\"c\":1}]}]}"; /* depth 5 */
    ck_assert_int_eq(json_check_limits(mix, strlen(mix), 5, 100, &err), 0);
    ck_assert_int_eq(json_check_limits(mix, strlen(mix), 4, 100, &err), CNN_ELIMIT);
}
END_TEST

START_TEST(test_json_brackets_inside_strings_do_not_count)
{
    struct cnn_err err = {0};
    const char *s = "{\"k\":\"[[[[[[[[[[{{{{,,,,,\\\"[[[[[\\\\\",\"x\":[1]}";
    ck_assert_int_eq(json_check_limits(s, strlen(s), 2, 5, &err), 0);
    /* an escaped backslash ends the string normally: the '[' after it counts */
    const char *t = "[\"\\\\\",[[1]]]";
    ck_assert_int_eq(json_check_limits(t, strlen(t), 3, 100, &err), 0);
    ck_assert_int_eq(json_check_limits(t, strlen(t), 2, 100, &err), CNN_ELIMIT);
}
END_TEST

START_TEST(test_json_value_count_limit)
{
    struct cnn_err err = {0};
    struct buf b = {0};
    puts_(&b, "[");
    for (int i = 0; i < 1000; i++)
        puts_(&b, i ? ",1.5" : "1.5");
    puts_(&b, "]");
    ck_assert_int_eq(json_check_limits(b.p, b.n, 4, 1100, &err), 0);
    ck_assert_int_eq(json_check_limits(b.p, b.n, 4, 500, &err), CNN_ELIMIT);
    ck_assert_ptr_nonnull(strstr(err.msg, "more than 500 values"));
    free(b.p);
}
END_TEST

/* ---- multipart ----------------------------------------------------------------------- */

static const char BOUNDARY[] = "xYz-42'(+_,./:=?";

/* Two parts; the first holds bytes that look like CRLF, dashes and a near-boundary. */
static size_t make_multipart(struct buf *b, const unsigned char *img, size_t img_len)
{
    puts_(b, "preamble to ignore\r\n");
    puts_(b, "--");
    puts_(b, BOUNDARY);
    puts_(b, "\r\nContent-Disposition: form-data; name=\"first\"; filename=\"a \\\"q\\\".png\""
             "\r\nContent-Type: image/png\r\n\r\n");
    put(b, img, img_len);
    puts_(b, "\r\n--");
    puts_(b, BOUNDARY);
    puts_(b, "  \r\ncontent-disposition: FORM-DATA;name=second\r\nX-Other: 1\r\n\r\n");
    puts_(b, "\r\n--");
    puts_(b, BOUNDARY);
    puts_(b, "--");
    size_t end = b->n;
    puts_(b, "\r\nepilogue");
    return end;
}

static const unsigned char IMG[] = {0x89, 'P',  'N',  'G', '\r', '\n', '-', '-',  'x',  'Y',
                                    'z',  '\r', '\n', 0,   255,  '-',  '-', '\r', '\n', 7};

START_TEST(test_multipart_valid_body_splits_into_parts)
{
    struct buf b = {0};
    make_multipart(&b, IMG, sizeof IMG);
    struct mp_part parts[4];
    int n = -1;
    struct cnn_err err = {0};
    ck_assert_msg(mp_parse(b.p, b.n, BOUNDARY, parts, 4, &n, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(n, 2);
    ck_assert_str_eq(parts[0].name, "first");
    ck_assert_str_eq(parts[0].filename, "a \"q\".png");
    ck_assert_str_eq(parts[0].content_type, "image/png");
    ck_assert_uint_eq(parts[0].len, sizeof IMG);
    ck_assert_int_eq(memcmp(parts[0].data, IMG, sizeof IMG), 0);
    ck_assert_str_eq(parts[1].name, "second");
    ck_assert_str_eq(parts[1].filename, "");
    ck_assert_str_eq(parts[1].content_type, "");
    ck_assert_uint_eq(parts[1].len, 0);
    free(b.p);
}
END_TEST

START_TEST(test_multipart_every_truncation_is_refused)
{
    struct buf b = {0};
    size_t end = make_multipart(&b, IMG, sizeof IMG);
    struct mp_part parts[4];
    for (size_t cut = 0; cut < end; cut++) {
        int n;
        struct cnn_err err = {0};
        int rc = mp_parse(b.p, cut, BOUNDARY, parts, 4, &n, &err);
        ck_assert_msg(rc == CNN_EINVAL, "cut at %zu of %zu: rc %d (%s)", cut, end, rc, err.msg);
    }
    /* the epilogue is optional */
    int n;
    ck_assert_int_eq(mp_parse(b.p, end, BOUNDARY, parts, 4, &n, NULL), 0);
    ck_assert_int_eq(n, 2);
    free(b.p);
}
END_TEST

START_TEST(test_multipart_limits_and_hostile_headers)
{
    struct mp_part parts[3];
    int n;
    struct cnn_err err = {0};
    struct buf b = {0};
    for (int i = 0; i < 4; i++) {
        puts_(&b, "--B\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nx\r\n");
    }
    puts_(&b, "--B--\r\n");
    ck_assert_int_eq(mp_parse(b.p, b.n, "B", parts, 3, &n, &err), CNN_ELIMIT);
    ck_assert_ptr_nonnull(strstr(err.msg, "more than 3"));
    free(b.p);

    /* a header block over the limit */
    b = (struct buf){0};
    puts_(&b, "--B\r\nContent-Disposition: form-data; name=\"f\"\r\nX-Pad: ");
    for (int i = 0; i < MP_MAX_HEADER_BYTES; i++)
        puts_(&b, "a");
    puts_(&b, "\r\n\r\nx\r\n--B--");
    ck_assert_int_eq(mp_parse(b.p, b.n, "B", parts, 3, &n, &err), CNN_ELIMIT);
    free(b.p);

    static const char *const bad[] = {
        "--B\r\nContent-Type: image/png\r\n\r\nx\r\n--B--",                  /* no disposition */
        "--B\r\nContent-Disposition: attachment; name=f\r\n\r\nx\r\n--B--",  /* not form-data */
        "--B\r\nContent-Disposition: form-data\r\n\r\nx\r\n--B--",           /* no name */
        "--B\r\nContent-Disposition: form-data; name=\"f\r\n\r\nx\r\n--B--", /* open quote */
        "--B\r\nno colon here\r\n\r\nx\r\n--B--",                            /* malformed line */
        "--B\r\n\r\nx\r\n--B--",                                             /* no headers */
        "--B--",                                                             /* no parts */
        "--Bjunk\r\nContent-Disposition: form-data; name=f\r\n\r\nx\r\n--B--",
        "no boundary anywhere",
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = mp_parse(bad[i], strlen(bad[i]), "B", parts, 3, &n, &err);
        ck_assert_msg(rc == CNN_EINVAL, "case %zu: rc %d", i, rc);
    }
}
END_TEST

START_TEST(test_multipart_random_garbage_never_crashes)
{
    rng_state = 12345;
    struct mp_part parts[8];
    char body[600];
    static const char alphabet[] = "-\r\nB:;=\" form-dataContent-Disposition name x";
    for (int iter = 0; iter < 20000; iter++) {
        size_t len = rng() % sizeof body;
        for (size_t i = 0; i < len; i++)
            body[i] = (rng() % 4) ? alphabet[rng() % (sizeof alphabet - 1)] : (char)rng();
        int n = -1;
        int rc = mp_parse(body, len, "B", parts, 8, &n, NULL);
        ck_assert(rc == 0 || rc == CNN_EINVAL || rc == CNN_ELIMIT);
        if (rc == 0) {
            ck_assert(n >= 1 && n <= 8);
            for (int i = 0; i < n; i++) /* every part lies inside the body */
                ck_assert(parts[i].data >= (const unsigned char *)body &&
                          parts[i].data + parts[i].len <= (const unsigned char *)body + len);
        }
    }
}
END_TEST

START_TEST(test_mime_params_and_boundary)
{
    char out[80];
    struct cnn_err err = {0};
    ck_assert(mime_type_is("  Image/PNG ; q=1", "image/png"));
    ck_assert(!mime_type_is("image/pngx", "image/png"));
    ck_assert(!mime_type_is(NULL, "image/png"));
    ck_assert_int_eq(
        mime_param("form-data; NAME = \"a\\\\b\\\"c\" ; x=1", "name", out, sizeof out, &err), 0);
    ck_assert_str_eq(out, "a\\b\"c");
    ck_assert_int_eq(mime_param("t; flag; x= 7 ", "x", out, sizeof out, &err), 0);
    ck_assert_str_eq(out, "7");
    ck_assert_int_eq(mime_param("t; filename*=utf-8''a", "filename", out, sizeof out, &err),
                     CNN_ENOENT);
    ck_assert_int_eq(mime_param("t; x=\"open", "x", out, sizeof out, &err), CNN_EINVAL);
    ck_assert_int_eq(mime_param("t; x=0123456789", "x", out, 5, &err), CNN_EINVAL);

    ck_assert_int_eq(mp_boundary("multipart/form-data; boundary=abc", out, sizeof out, &err), 0);
    ck_assert_str_eq(out, "abc");
    ck_assert_int_eq(mp_boundary("multipart/form-data; boundary=\"a b:c\"", out, sizeof out, &err),
                     0);
    ck_assert_str_eq(out, "a b:c");
    char long_b[120];
    snprintf(long_b, sizeof long_b, "multipart/form-data; boundary=%071d", 0);
    ck_assert_int_eq(mp_boundary(long_b, out, sizeof out, &err), CNN_EINVAL);
    snprintf(long_b, sizeof long_b, "multipart/form-data; boundary=%070d", 0);
    ck_assert_int_eq(mp_boundary(long_b, out, sizeof out, &err), 0);
    ck_assert_int_eq(mp_boundary("multipart/form-data", out, sizeof out, &err), CNN_EINVAL);
    ck_assert_int_eq(mp_boundary("multipart/form-data; boundary=", out, sizeof out, &err),
                     CNN_EINVAL);
    ck_assert_int_eq(mp_boundary("multipart/form-data; boundary=a\x01", out, sizeof out, &err),
                     CNN_EINVAL);
    ck_assert_int_eq(mp_boundary("multipart/mixed; boundary=abc", out, sizeof out, &err),
                     CNN_EINVAL);
}
END_TEST

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

/* ---- router -------------------------------------------------------------------------- */

START_TEST(test_router_matches_captures_and_refuses)
{
    int nr;
    const struct route *tbl = router_routes(&nr);
    struct route_match m;
    router_match(tbl, nr, "POST", "/v1/models/fashion/classify", &m);
    ck_assert_ptr_nonnull(m.route);
    ck_assert_str_eq(m.route->name, "v1_classify");
    ck_assert_str_eq(m.name, "fashion");
    ck_assert_str_eq(m.version, "");
    router_match(tbl, nr, "POST", "/v2/models/a.b-c_d/versions/12/infer", &m);
    ck_assert_ptr_nonnull(m.route);
    ck_assert_str_eq(m.route->name, "v2_infer");
    ck_assert_str_eq(m.name, "a.b-c_d");
    ck_assert_str_eq(m.version, "12");
    router_match(tbl, nr, "HEAD", "/v2/models/x/ready", &m); /* HEAD answers like GET */
    ck_assert_ptr_nonnull(m.route);
    ck_assert_str_eq(m.route->name, "v2_model_ready");
    router_match(tbl, nr, "GET", "/v2", &m);
    ck_assert_ptr_nonnull(m.route);
    ck_assert_str_eq(m.route->name, "v2_server");

    router_match(tbl, nr, "GET", "/v1/models/fashion/classify", &m);
    ck_assert_ptr_null(m.route);
    ck_assert_int_eq(m.status, 405);
    ck_assert_str_eq(m.allow, "POST");
    router_match(tbl, nr, "DELETE", "/v2/models/fashion", &m);
    ck_assert_int_eq(m.status, 405);
    ck_assert_str_eq(m.allow, "GET, HEAD");
    static const char *const missing[] = {"/",
                                          "/v2/",
                                          "/v1/models/",
                                          "/v1/models//classify",
                                          "/v2/models/x/versions//infer",
                                          "/v2/models/x/infer/",
                                          "//v2",
                                          "/v2/health",
                                          "/v2/health/live/x",
                                          "/metricsx",
                                          ""};
    for (size_t i = 0; i < sizeof missing / sizeof missing[0]; i++) {
        router_match(tbl, nr, "GET", missing[i], &m);
        ck_assert_msg(m.route == NULL && m.status == 404, "'%s' matched", missing[i]);
        router_match(tbl, nr, "POST", missing[i], &m);
        ck_assert_msg(m.route == NULL && m.status == 404, "'%s' matched (POST)", missing[i]);
    }
    /* a name longer than its buffer does not match */
    char path[200];
    snprintf(path, sizeof path, "/v2/models/%070d", 1);
    router_match(tbl, nr, "GET", path, &m);
    ck_assert_int_eq(m.status, 404);
    /* every route in the table matches its own pattern with sample segments */
    int n;
    const struct route *routes = router_routes(&n);
    for (int i = 0; i < n; i++) {
        char p[128] = "";
        const char *src = routes[i].pattern;
        while (*src) {
            if (strncmp(src, "{name}", 6) == 0) {
                strcat(p, "m1");
                src += 6;
            } else if (strncmp(src, "{v}", 3) == 0) {
                strcat(p, "3");
                src += 3;
            } else {
                strncat(p, src++, 1);
            }
        }
        router_match(routes, n, routes[i].method, p, &m);
        ck_assert_msg(m.route == &routes[i], "%s %s", routes[i].method, p);
    }
}
END_TEST

/* ---- metrics ------------------------------------------------------------------------- */

/* Value of the first line starting with prefix (a full series name with labels). */
static double metric_value(const char *text, const char *prefix)
{
    size_t n = strlen(prefix);
    for (const char *line = text; *line; line = strchr(line, '\n') + 1) {
        if (strncmp(line, prefix, n) == 0 && line[n] == ' ')
            return strtod(line + n + 1, NULL);
        if (!strchr(line, '\n'))
            break;
    }
    return -1;
}

START_TEST(test_metrics_render_counts_and_histograms)
{
    struct metrics *m = metrics_create();
    ck_assert_ptr_nonnull(m);
    for (int i = 0; i < 3; i++)
        metrics_count_request(m, "fashion", "v1_classify", 200);
    metrics_count_request(m, "", "none", 404);
    metrics_count_request(m, "we\"ird\\", "v2_infer", 503);
    metrics_count_expired(m);
    /* queue waits: 0.2 ms, 3 ms, 3 ms, 40 s (beyond the last bound) */
    metrics_observe_queue_wait(m, 200000);
    metrics_observe_queue_wait(m, 3000000);
    metrics_observe_queue_wait(m, 3000000);
    metrics_observe_queue_wait(m, 40000000000LL);
    metrics_on_batch(m, 5, 1000000, 0);
    metrics_on_batch(m, 32, 2000000, 0);
    metrics_on_batch(m, 0, 0, 3); /* nothing computed: not a batch */
    struct metrics_version v[3] = {{"fashion", 2, 1, 7}, {"fashion", 1, 0, 0}, {"other", 5, 1, 1}};
    struct metrics_gauges g = {v, 3, 4, 1};
    size_t len;
    char *text = metrics_render(m, &g, &len);
    ck_assert_ptr_nonnull(text);
    ck_assert_uint_eq(strlen(text), len);
    ck_assert(metric_value(text, "cnnd_requests_total{model=\"fashion\",route=\"v1_classify\","
                                 "status=\"200\"}") == 3);
    ck_assert(metric_value(text, "cnnd_requests_total{model=\"\",route=\"none\",status=\"404\"}") ==
              1);
    ck_assert(metric_value(text, "cnnd_requests_total{model=\"we\\\"ird\\\\\",route=\"v2_infer\","
                                 "status=\"503\"}") == 1);
    ck_assert(metric_value(text, "cnnd_expired_requests_total") == 1);
    /* cumulative buckets */
    ck_assert(metric_value(text, "cnnd_queue_wait_seconds_bucket{le=\"0.0001\"}") < 0);
    ck_assert(metric_value(text, "cnnd_queue_wait_seconds_bucket{le=\"0.0005\"}") == 1);
    ck_assert(metric_value(text, "cnnd_queue_wait_seconds_bucket{le=\"0.0025\"}") == 1);
    ck_assert(metric_value(text, "cnnd_queue_wait_seconds_bucket{le=\"0.005\"}") == 3);
    ck_assert(metric_value(text, "cnnd_queue_wait_seconds_bucket{le=\"30\"}") == 3);
    ck_assert(metric_value(text, "cnnd_queue_wait_seconds_bucket{le=\"+Inf\"}") == 4);
    ck_assert(metric_value(text, "cnnd_queue_wait_seconds_count") == 4);
    ck_assert(fabs(metric_value(text, "cnnd_queue_wait_seconds_sum") - 40.0062) < 1e-9);
    ck_assert(metric_value(text, "cnnd_batch_size_bucket{le=\"4\"}") == 0);
    ck_assert(metric_value(text, "cnnd_batch_size_bucket{le=\"8\"}") == 1);
    ck_assert(metric_value(text, "cnnd_batch_size_bucket{le=\"32\"}") == 2);
    ck_assert(metric_value(text, "cnnd_batch_size_sum") == 37);
    ck_assert(metric_value(text, "cnnd_batch_size_count") == 2);
    ck_assert(fabs(metric_value(text, "cnnd_compute_seconds_sum") - 0.003) < 1e-12);
    ck_assert(metric_value(text, "cnnd_queue_depth{model=\"fashion\",version=\"2\"}") == 7);
    ck_assert(metric_value(text, "cnnd_loaded_versions{model=\"fashion\"}") == 2);
    ck_assert(metric_value(text, "cnnd_loaded_versions{model=\"other\"}") == 1);
    ck_assert(metric_value(text, "cnnd_live_version{model=\"fashion\"}") == 2);
    ck_assert(metric_value(text, "cnnd_requests_in_flight") == 4);
    ck_assert(metric_value(text, "cnnd_ready") == 1);
    /* each family once, HELP before TYPE before samples */
    static const char *const families[] = {"cnnd_requests_total", "cnnd_queue_wait_seconds",
                                           "cnnd_batch_size", "cnnd_loaded_versions"};
    for (size_t i = 0; i < 4; i++) {
        char help[80], type[80];
        snprintf(help, sizeof help, "# HELP %s ", families[i]);
        snprintf(type, sizeof type, "# TYPE %s ", families[i]);
        const char *h = strstr(text, help), *t = strstr(text, type);
        ck_assert(h && t && h < t);
        ck_assert_ptr_null(strstr(h + 1, help));
    }
    free(text);
    metrics_destroy(m);
}
END_TEST

/* Many threads count into the same and new rows at once: no count is lost. */
struct count_arg {
    struct metrics *m;
    int id;
};

static void *count_many(void *p)
{
    struct count_arg *a = p;
    static const char *const routes[] = {"r0", "r1", "r2", "r3"};
    for (int i = 0; i < 20000; i++)
        metrics_count_request(a->m, "m", routes[i % 4], 200 + (i + a->id) % 5);
    return NULL;
}

START_TEST(test_metrics_concurrent_counting_loses_nothing)
{
    struct metrics *m = metrics_create();
    pthread_t t[4];
    struct count_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (struct count_arg){m, i};
        pthread_create(&t[i], NULL, count_many, &args[i]);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    struct metrics_gauges g = {NULL, 0, 0, 0};
    size_t len;
    char *text = metrics_render(m, &g, &len);
    double total = 0;
    for (const char *p = text; (p = strstr(p, "cnnd_requests_total{")) != NULL; p++)
        total += strtod(strchr(p, '}') + 2, NULL);
    ck_assert(total == 4 * 20000);
    free(text);
    metrics_destroy(m);
}
END_TEST

Suite *http_suite(void)
{
    Suite *s = suite_create("http");
    TCase *tc = tcase_create("http");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_json_depth_limit_is_exact);
    tcase_add_test(tc, test_json_brackets_inside_strings_do_not_count);
    tcase_add_test(tc, test_json_value_count_limit);
    tcase_add_test(tc, test_multipart_valid_body_splits_into_parts);
    tcase_add_test(tc, test_multipart_every_truncation_is_refused);
    tcase_add_test(tc, test_multipart_limits_and_hostile_headers);
    tcase_add_test(tc, test_multipart_random_garbage_never_crashes);
    tcase_add_test(tc, test_mime_params_and_boundary);
    tcase_add_test(tc, test_v2_fp32_flat_and_nested_parse_the_same);
    tcase_add_test(tc, test_v2_unbatched_shape_and_output_parameters);
    tcase_add_test(tc, test_v2_bad_requests_are_refused_with_the_right_code);
    tcase_add_test(tc, test_v2_element_count_overflow_checks);
    tcase_add_test(tc, test_v2_binary_fp32_input);
    tcase_add_test(tc, test_v2_bytes_images_in_binary);
    tcase_add_test(tc, test_topk_matches_naive_selection_with_ties_and_nan);
    tcase_add_test(tc, test_classification_string_format);
    tcase_add_test(tc, test_v2_response_fp32_json_and_binary);
    tcase_add_test(tc, test_v2_response_classification_json_and_binary);
    tcase_add_test(tc, test_classify_predictions_json);
    tcase_add_test(tc, test_json_writer_strings_and_numbers);
    tcase_add_test(tc, test_router_matches_captures_and_refuses);
    tcase_add_test(tc, test_metrics_render_counts_and_histograms);
    tcase_add_test(tc, test_metrics_concurrent_counting_loses_nothing);
    suite_add_tcase(s, tc);
    return s;
}
