/* HTTP suite, unit level: the JSON depth/value pre-check, the multipart parser on valid,
 * truncated and hostile bodies, and the router (both listeners' tables).  The KServe v2
 * requests and answers are check_infer.c, the metrics check_metrics.c. */
#include "json_check.h"
#include "multipart.h"
#include "router.h"
#include "test_bytes.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- JSON pre-check ------------------------------------------------------------------ */

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
    /* issue 14: "/" is the dashboard page (GET only) */
    router_match(tbl, nr, "GET", "/", &m);
    ck_assert_ptr_nonnull(m.route);
    ck_assert_str_eq(m.route->name, "dashboard");
    router_match(tbl, nr, "POST", "/", &m);
    ck_assert_int_eq(m.status, 405);
    static const char *const missing[] = {"/ui",
                                          "/ui/",
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

/* The admin table through the same matcher: {id} captured, HEAD answers like GET, the
 * Allow list names every method of the path, and every row matches its own pattern. */
START_TEST(test_router_admin_table)
{
    int n;
    const struct route *routes = router_admin_routes(&n);
    struct route_match m;
    router_match(routes, n, "DELETE", "/admin/v1/jobs/17", &m);
    ck_assert_ptr_nonnull(m.route);
    ck_assert_str_eq(m.route->name, "admin_job_cancel");
    ck_assert_str_eq(m.id, "17");
    router_match(routes, n, "HEAD", "/admin/v1/jobs/17", &m);
    ck_assert_ptr_nonnull(m.route);
    ck_assert_str_eq(m.route->name, "admin_job");
    router_match(routes, n, "POST", "/admin/v1/models/m/versions/3/activate", &m);
    ck_assert_ptr_nonnull(m.route);
    ck_assert_str_eq(m.name, "m");
    ck_assert_str_eq(m.version, "3");
    router_match(routes, n, "PUT", "/admin/v1/jobs/17", &m);
    ck_assert_ptr_null(m.route);
    ck_assert_int_eq(m.status, 405);
    ck_assert_str_eq(m.allow, "GET, HEAD, DELETE");
    router_match(routes, n, "GET", "/admin/v1/jobs/", &m); /* an empty {id} */
    ck_assert_int_eq(m.status, 404);
    router_match(routes, n, "GET", "/admin/v1/jobs/1234567890123456789012345", &m); /* long */
    ck_assert_int_eq(m.status, 404);
    router_match(routes, n, "GET", "/v2/health/live", &m); /* another listener's path */
    ck_assert_int_eq(m.status, 404);
    for (int i = 0; i < n; i++) {
        char p[128] = "";
        const char *src = routes[i].pattern;
        while (*src) {
            const char *sub = strncmp(src, "{name}", 6) == 0 ? "m1"
                              : strncmp(src, "{v}", 3) == 0  ? "3"
                              : strncmp(src, "{id}", 4) == 0 ? "42"
                                                             : NULL;
            if (sub) {
                strcat(p, sub);
                src = strchr(src, '}') + 1;
            } else {
                strncat(p, src++, 1);
            }
        }
        router_match(routes, n, routes[i].method, p, &m);
        ck_assert_msg(m.route == &routes[i], "%s %s", routes[i].method, p);
    }
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
    tcase_add_test(tc, test_router_matches_captures_and_refuses);
    tcase_add_test(tc, test_router_admin_table);
    suite_add_tcase(s, tc);
    return s;
}
