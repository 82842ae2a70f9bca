/* The daemon's own recent history for the dashboard: per second of the last STATS_WINDOW_S
 * seconds, requests served on the inference port, their latency histogram (quarter-octave
 * buckets from 16 us) and the sizes of the batches the workers ran (power-of-two buckets).
 * Read back as JSON: a per-second series (requests/s, p50/p99 latency) and percentiles and
 * the batch-size histogram over the last N seconds.
 *
 * DESIGN: one mutex (w->mu, owned here) guards the ring; writers (MHD threads at request
 * completion, batcher workers after a forward pass) hold it for a few increments, the
 * reader (GET /v1/stats on an MHD thread) for one copy of the slots it reads; nothing else is
 * done under it.  A slot is reset when a write lands in a new second. */
#ifndef STATS_WINDOW_H
#define STATS_WINDOW_H

#include <jansson.h>
#include <stdint.h>

#define STATS_WINDOW_S 600
#define STATS_LAT_BUCKETS 64 /* bucket b: latency < 16 us * 2^((b + 1) / 4) */
#define STATS_BATCH_BUCKETS 14 /* bucket b: batch size in (2^(b-1), 2^b] */

struct stats_window;

/* NULL when out of memory. */
struct stats_window *stats_window_create(void);
void stats_window_destroy(struct stats_window *w);

/* One request answered at now_ns (CLOCK_MONOTONIC) after latency_ns. */
void stats_window_request(struct stats_window *w, int64_t now_ns, int64_t latency_ns);
/* One forward pass of batch_size items at now_ns. */
void stats_window_batch(struct stats_window *w, int64_t now_ns, int batch_size);

/* {"seconds": N, "series": [{"t": -N+1 .. 0, "requests": .., "p50_ms": .., "p99_ms": ..}],
 *  "window": {"requests": .., "rps": .., "p50_ms": .., "p90_ms": .., "p99_ms": ..,
 *             "batches": .., "batch_hist": [{"le": 1, "count": ..}, ...]}}
 * over the last `seconds` (1..STATS_WINDOW_S) ending at now_ns; percentiles are the upper
 * bounds of their buckets, null without requests.  New reference; NULL when out of memory. */
json_t *stats_window_json(struct stats_window *w, int64_t now_ns, int seconds);

/* The latency bucket of ns (exposed for the unit test). */
int stats_window_lat_bucket(int64_t ns);
/* The upper bound of latency bucket b, in milliseconds. */
double stats_window_lat_upper_ms(int b);

#endif
