/* Counters and histograms behind GET /metrics, rendered in the Prometheus text format 0.0.4
 * (HELP and TYPE lines; passes `promtool check metrics`).
 *
 * DESIGN: updates come from HTTP threads (requests, latencies) and batcher workers
 * (on_batch: batch size, compute time) and are relaxed atomic adds; the only lock guards
 * adding a new (model, route, status) row to the request counter table, which readers scan
 * without locking (rows are published with a release store of the row count).  Gauges that
 * describe the registry (queue depth, loaded versions) are collected by the caller at scrape
 * time and passed in. */
#ifndef METRICS_H
#define METRICS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct metrics;

/* Owned by the caller; NULL when out of memory. */
struct metrics *metrics_create(void);
void metrics_destroy(struct metrics *m);

/* One answered request.  model "" when the request named no loaded model (so unknown names
 * sent by clients cannot grow the table); route is a static route name. */
void metrics_count_request(struct metrics *m, const char *model, const char *route, int status);
/* Request latency from the first byte handled to the response queued. */
void metrics_observe_request(struct metrics *m, int64_t ns);
/* Time one image waited in a batch queue. */
void metrics_observe_queue_wait(struct metrics *m, int64_t ns);
/* Requests answered 503 because their deadline passed in the queue. */
void metrics_count_expired(struct metrics *m);
/* Batcher hook (batcher_config.on_batch, arg = the metrics): one forward pass. */
void metrics_on_batch(void *arg, int batch_size, int64_t compute_ns, int expired);
/* Batcher hook (batcher_config.on_cores, arg = the metrics): a batch took `cores` cores, split
 * over a team or not, or gave them back (cores < 0): cnnd_batches_total{mode} and
 * cnnd_cores_busy. */
void metrics_on_cores(void *arg, int cores, int split);

/* Per model version, collected by the caller at scrape time. */
struct metrics_version {
    const char *model;
    int version;
    int live;
    int queue_depth;
};

struct metrics_gauges {
    const struct metrics_version *versions;
    int n_versions;
    int in_flight; /* requests being handled */
    int ready;     /* 1 when /v2/health/ready answers 200 */
};

/* ---- fine-tune jobs (jobs.c; any thread) ---- */
/* One training step of a job: counts it; loss and accuracy (running means over the epoch
 * so far) become the cnnd_train_loss / cnnd_train_accuracy gauges. */
void metrics_train_step(struct metrics *m, double loss, double accuracy);
/* An epoch's validation accuracy (cnnd_train_validation_accuracy). */
void metrics_train_validation(struct metrics *m, double accuracy);
/* A job entered state `to` from `from` (NULL: a new job / a job forgotten); states are
 * queued, running, succeeded, failed, cancelled, rejected (cnnd_jobs{state=...}). */
void metrics_job_state(struct metrics *m, const char *from, const char *to);
/* A version a job published (cnnd_publish_total). */
void metrics_count_publish(struct metrics *m);

/* The last `seconds` (1..600) of the inference port for the dashboard (stats_window.h):
 * per-second requests and latency percentiles, the batch-size histogram.  New reference;
 * NULL when out of memory.  Any thread. */
json_t *metrics_window_json(struct metrics *m, int seconds);

/* The exposition text, malloc'd (free it), *len bytes; NULL when out of memory. */
char *metrics_render(struct metrics *m, const struct metrics_gauges *g, size_t *len);

#endif
