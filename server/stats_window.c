/* Per-second ring of request and batch statistics (see stats_window.h). */
#include "stats_window.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct slot {
    int64_t sec; /* the second it holds; -1 = empty */
    long requests, batches;
    long lat[STATS_LAT_BUCKETS];
    long batch[STATS_BATCH_BUCKETS];
};

struct stats_window {
    pthread_mutex_t mu; /* guards slots */
    struct slot slots[STATS_WINDOW_S];
};

struct stats_window *stats_window_create(void)
{
    struct stats_window *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    pthread_mutex_init(&w->mu, NULL);
    for (int i = 0; i < STATS_WINDOW_S; i++)
        w->slots[i].sec = -1;
    return w;
}

void stats_window_destroy(struct stats_window *w)
{
    if (!w)
        return;
    pthread_mutex_destroy(&w->mu);
    free(w);
}

int stats_window_lat_bucket(int64_t ns)
{
    double us = (double)ns / 1000.0;
    if (!(us >= 16.0))
        return 0;
    int b = (int)floor(4.0 * log2(us / 16.0)); /* us < 16 * 2^((b + 1) / 4) */
    return b >= STATS_LAT_BUCKETS ? STATS_LAT_BUCKETS - 1 : b;
}

double stats_window_lat_upper_ms(int b)
{
    return 0.016 * pow(2.0, (b + 1) / 4.0);
}

/* The slot of second sec, reset when it held an older one.  Caller holds w->mu. */
static struct slot *slot_at(struct stats_window *w, int64_t sec)
{
    struct slot *s = &w->slots[sec % STATS_WINDOW_S];
    if (s->sec != sec) {
        memset(s, 0, sizeof *s);
        s->sec = sec;
    }
    return s;
}

void stats_window_request(struct stats_window *w, int64_t now_ns, int64_t latency_ns)
{
    int b = stats_window_lat_bucket(latency_ns);
    pthread_mutex_lock(&w->mu);
    struct slot *s = slot_at(w, now_ns / 1000000000);
    s->requests++;
    s->lat[b]++;
    pthread_mutex_unlock(&w->mu);
}

void stats_window_batch(struct stats_window *w, int64_t now_ns, int batch_size)
{
    int b = 0;
    while (b < STATS_BATCH_BUCKETS - 1 && (1L << b) < batch_size)
        b++;
    pthread_mutex_lock(&w->mu);
    struct slot *s = slot_at(w, now_ns / 1000000000);
    s->batches++;
    s->batch[b]++;
    pthread_mutex_unlock(&w->mu);
}

/* The upper bound (ms) of the bucket holding quantile q of hist, or NAN when empty. */
static double quantile_ms(const long *hist, long total, double q)
{
    if (total <= 0)
        return NAN;
    long want = (long)ceil(q * (double)total), seen = 0;
    for (int b = 0; b < STATS_LAT_BUCKETS; b++) {
        seen += hist[b];
        if (seen >= want)
            return stats_window_lat_upper_ms(b);
    }
    return stats_window_lat_upper_ms(STATS_LAT_BUCKETS - 1);
}

static json_t *num(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

json_t *stats_window_json(struct stats_window *w, int64_t now_ns, int seconds)
{
    if (seconds < 1)
        seconds = 1;
    if (seconds > STATS_WINDOW_S)
        seconds = STATS_WINDOW_S;
    struct slot *copy = malloc((size_t)seconds * sizeof *copy);
    if (!copy)
        return NULL;
    int64_t now = now_ns / 1000000000;
    pthread_mutex_lock(&w->mu);
    for (int i = 0; i < seconds; i++) { /* copy[i]: second now - seconds + 1 + i */
        int64_t sec = now - seconds + 1 + i;
        const struct slot *s = sec >= 0 ? &w->slots[sec % STATS_WINDOW_S] : NULL;
        if (s && s->sec == sec)
            copy[i] = *s;
        else
            memset(&copy[i], 0, sizeof copy[i]);
    }
    pthread_mutex_unlock(&w->mu);
    long lat[STATS_LAT_BUCKETS] = {0}, batch[STATS_BATCH_BUCKETS] = {0}, req = 0, nb = 0;
    json_t *series = json_array(), *o = json_object(), *win = json_object(), *bh = json_array();
    for (int i = 0; i < seconds; i++) {
        const struct slot *s = &copy[i];
        req += s->requests, nb += s->batches;
        for (int b = 0; b < STATS_LAT_BUCKETS; b++)
            lat[b] += s->lat[b];
        for (int b = 0; b < STATS_BATCH_BUCKETS; b++)
            batch[b] += s->batch[b];
        json_array_append_new(series,
                              json_pack("{s:i,s:I,s:o,s:o}", "t", i - seconds + 1, "requests",
                                        (json_int_t)s->requests, "p50_ms",
                                        num(quantile_ms(s->lat, s->requests, 0.5)), "p99_ms",
                                        num(quantile_ms(s->lat, s->requests, 0.99))));
    }
    for (int b = 0; b < STATS_BATCH_BUCKETS; b++)
        json_array_append_new(bh, json_pack("{s:I,s:I}", "le", (json_int_t)1 << b, "count",
                                            (json_int_t)batch[b]));
    free(copy);
    json_object_set_new(win, "requests", json_integer(req));
    json_object_set_new(win, "rps", json_real((double)req / seconds));
    json_object_set_new(win, "p50_ms", num(quantile_ms(lat, req, 0.5)));
    json_object_set_new(win, "p90_ms", num(quantile_ms(lat, req, 0.9)));
    json_object_set_new(win, "p99_ms", num(quantile_ms(lat, req, 0.99)));
    json_object_set_new(win, "batches", json_integer(nb));
    json_object_set_new(win, "batch_hist", bh);
    json_object_set_new(o, "seconds", json_integer(seconds));
    json_object_set_new(o, "series", series);
    json_object_set_new(o, "window", win);
    return o;
}
