/* Metrics suite: the Prometheus text (counts, cumulative histogram buckets, gauges, each
 * family's HELP and TYPE once) and counting from many threads at once. */
#include "metrics.h"

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

Suite *metrics_suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("metrics");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_metrics_render_counts_and_histograms);
    tcase_add_test(tc, test_metrics_concurrent_counting_loses_nothing);
    suite_add_tcase(s, tc);
    return s;
}
