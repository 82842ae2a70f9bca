/* Metrics suite: the Prometheus text (counts, cumulative histogram buckets, gauges, each
 * family's HELP and TYPE once) and counting from many threads at once. */
#include "job_curve.h"
#include "metrics.h"
#include "stats_window.h"

#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* The batcher's core tokens: batches counted by mode, cores busy = taken - given back. */
START_TEST(test_metrics_batches_by_mode_and_cores_busy)
{
    struct metrics *m = metrics_create();
    ck_assert_ptr_nonnull(m);
    metrics_on_cores(m, 2, 1); /* a split batch on both cores */
    metrics_on_cores(m, -2, 1);
    metrics_on_cores(m, 1, 0); /* two single batches, one still running */
    metrics_on_cores(m, 1, 0);
    metrics_on_cores(m, -1, 0);
    metrics_on_cores(m, 2, 1); /* and a split one running */
    struct metrics_gauges g = {NULL, 0, 0, 1};
    size_t len;
    char *text = metrics_render(m, &g, &len);
    ck_assert_ptr_nonnull(text);
    ck_assert(metric_value(text, "cnnd_batches_total{mode=\"split\"}") == 2);
    ck_assert(metric_value(text, "cnnd_batches_total{mode=\"single\"}") == 2);
    ck_assert(metric_value(text, "cnnd_cores_busy") == 3);
    ck_assert_ptr_nonnull(strstr(text, "# TYPE cnnd_batches_total counter\n"));
    ck_assert_ptr_nonnull(strstr(text, "# TYPE cnnd_cores_busy gauge\n"));
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

/* The dashboard's window: requests and batches land in their second, percentiles are the
 * upper bounds of the buckets that hold them (checked against a sorted list of the same
 * latencies), seconds that left the window are gone. */
START_TEST(test_stats_window_seconds_percentiles_and_batches)
{
    struct stats_window *w = stats_window_create();
    ck_assert_ptr_nonnull(w);
    const int64_t s0 = 1000LL * 1000000000; /* second 1000 */
    int64_t lat[100];
    for (int i = 0; i < 100; i++) { /* 0.1 ms .. 10 ms, spread */
        lat[i] = 100000 + (int64_t)i * i * 1000;
        stats_window_request(w, s0 + i * 1000000, lat[i]);
    }
    stats_window_request(w, s0 + 1000000000, 5000000); /* one in the next second */
    stats_window_batch(w, s0, 1);
    stats_window_batch(w, s0, 3);
    stats_window_batch(w, s0, 4);
    stats_window_batch(w, s0, 32);
    json_t *o = stats_window_json(w, s0 + 1000000000, 2);
    ck_assert_ptr_nonnull(o);
    json_t *series = json_object_get(o, "series");
    ck_assert_int_eq(json_array_size(series), 2);
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(series, 0), "requests")),
                     100);
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(series, 1), "requests")), 1);
    /* the p50 of second 1000 alone: the 50th smallest latency's bucket bound */
    double p50 = json_real_value(json_object_get(json_array_get(series, 0), "p50_ms"));
    double want = stats_window_lat_upper_ms(stats_window_lat_bucket(lat[49]));
    ck_assert_msg(fabs(p50 - want) < 1e-9, "p50 %g want %g", p50, want);
    ck_assert(p50 >= lat[49] / 1e6 && p50 <= lat[49] / 1e6 * 1.19); /* quarter octaves */
    json_t *win = json_object_get(o, "window");
    ck_assert_int_eq(json_integer_value(json_object_get(win, "requests")), 101);
    ck_assert_int_eq(json_integer_value(json_object_get(win, "batches")), 4);
    json_t *bh = json_object_get(win, "batch_hist");
    long want_b[6] = {1, 0, 2, 0, 0, 1}; /* <=1, <=2, <=4 (3 and 4), <=8, <=16, <=32 */
    for (int b = 0; b < 6; b++)
        ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(bh, b), "count")),
                         want_b[b]);
    json_decref(o);
    /* 700 s later: both seconds left the 600-s window (and their slots were reused) */
    stats_window_request(w, s0 + 700LL * 1000000000, 1000000);
    o = stats_window_json(w, s0 + 700LL * 1000000000, 600);
    win = json_object_get(o, "window");
    ck_assert_int_eq(json_integer_value(json_object_get(win, "requests")), 1);
    ck_assert_int_eq(json_integer_value(json_object_get(win, "batches")), 0);
    json_decref(o);
    o = stats_window_json(w, s0, 0); /* clamped to 1 second */
    ck_assert_int_eq(json_integer_value(json_object_get(o, "seconds")), 1);
    json_decref(o);
    stats_window_destroy(w);
}
END_TEST

/* A job's curve keeps every step up to JOB_CURVE_MAX, then every 2nd, 4th ... step, evenly. */
START_TEST(test_job_curve_decimates_evenly)
{
    struct job_curve *c = calloc(1, sizeof *c);
    for (long s = 1; s <= 3 * JOB_CURVE_MAX; s++)
        job_curve_add(c, s, 1.0 / (double)s, 0.5);
    ck_assert_int_eq(c->every, 4); /* full at 2048 (-> every 2) and at 4096 (-> every 4) */
    ck_assert_int_eq(c->n, 3 * JOB_CURVE_MAX / 4);
    for (int i = 0; i < c->n; i++) {
        ck_assert_int_eq((long)c->step[i], 4L * (i + 1));
        ck_assert(fabs(c->loss[i] - 1.0 / c->step[i]) < 1e-12);
    }
    long *cm = calloc(4, sizeof *cm);
    cm[0] = 3, cm[3] = 5;
    job_curve_set_confusion(c, cm, 2);
    json_t *j = job_curve_confusion_json(c);
    ck_assert_int_eq(json_integer_value(json_array_get(json_array_get(j, 1), 1)), 5);
    json_decref(j);
    job_curve_free(c);
    free(c);
}
END_TEST

Suite *metrics_suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("metrics");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_metrics_render_counts_and_histograms);
    tcase_add_test(tc, test_metrics_batches_by_mode_and_cores_busy);
    tcase_add_test(tc, test_metrics_concurrent_counting_loses_nothing);
    tcase_add_test(tc, test_stats_window_seconds_percentiles_and_batches);
    tcase_add_test(tc, test_job_curve_decimates_evenly);
    suite_add_tcase(s, tc);
    return s;
}
