/* Metrics (see metrics.h): a request counter table, four histograms, training counters
 * and gauges, and the rendering. */
#include "metrics.h"

#include "config.h"
#include "stats_window.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_ROWS 1024
#define MODEL_MAX 64
#define MAX_BUCKETS 20

struct row {
    char model[MODEL_MAX];
    const char *route;
    int status;
    atomic_ullong count;
};

struct hist {
    const char *name, *help;
    int n;                                 /* finite buckets */
    unsigned long long bound[MAX_BUCKETS]; /* upper bounds in units (ns or items) */
    double scale;                          /* unit -> exported value */
    atomic_ullong bucket[MAX_BUCKETS + 1]; /* per bucket (not cumulative); last = +Inf */
    atomic_ullong sum;                     /* in units */
};

struct metrics {
    struct row rows[MAX_ROWS];
    atomic_int n_rows;
    pthread_mutex_t add_lock; /* adding rows only */
    struct hist request, queue_wait, compute, batch;
    atomic_ullong expired;
    atomic_ullong batches_split, batches_single; /* by batcher mode (on_cores) */
    atomic_int cores_busy;
    atomic_ullong train_steps, publishes;
    atomic_ullong train_loss, train_acc, val_acc; /* bits of doubles */
    atomic_int jobs[6];                           /* per JOB_STATES entry */
    struct stats_window *window;                  /* owned: the dashboard's last minutes */
};

static const char *const JOB_STATES[6] = {"queued", "running",   "succeeded",
                                          "failed", "cancelled", "rejected"};

static unsigned long long bits_of(double x)
{
    unsigned long long u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static double double_of(unsigned long long u)
{
    double x;
    memcpy(&x, &u, sizeof x);
    return x;
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static const double LATENCY_S[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                   0.25,   0.5,   1,      2.5,   5,    10,    30};
static const double BATCH[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096};

static void hist_init(struct hist *h, const char *name, const char *help, const double *bounds,
                      int n, double scale)
{
    h->name = name;
    h->help = help;
    h->n = n;
    h->scale = scale;
    for (int i = 0; i < n; i++)
        h->bound[i] = (unsigned long long)(bounds[i] / scale + 0.5);
    for (int i = 0; i <= n; i++)
        atomic_init(&h->bucket[i], 0);
    atomic_init(&h->sum, 0);
}

static void hist_observe(struct hist *h, long long v)
{
    unsigned long long u = v < 0 ? 0 : (unsigned long long)v;
    int i = 0;
    while (i < h->n && u > h->bound[i])
        i++;
    atomic_fetch_add_explicit(&h->bucket[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum, u, memory_order_relaxed);
}

struct metrics *metrics_create(void)
{
    struct metrics *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    if (!(m->window = stats_window_create())) {
        free(m);
        return NULL;
    }
    pthread_mutex_init(&m->add_lock, NULL);
    atomic_init(&m->n_rows, 0);
    atomic_init(&m->expired, 0);
    atomic_init(&m->batches_split, 0);
    atomic_init(&m->batches_single, 0);
    atomic_init(&m->cores_busy, 0);
    atomic_init(&m->train_steps, 0);
    atomic_init(&m->publishes, 0);
    atomic_init(&m->train_loss, bits_of(NAN));
    atomic_init(&m->train_acc, bits_of(NAN));
    atomic_init(&m->val_acc, bits_of(NAN));
    for (int i = 0; i < 6; i++)
        atomic_init(&m->jobs[i], 0);
    for (int i = 0; i < MAX_ROWS; i++)
        atomic_init(&m->rows[i].count, 0);
    struct row *other = &m->rows[MAX_ROWS - 1]; /* catch-all, set before any thread runs */
    snprintf(other->model, sizeof other->model, "_other");
    other->route = "_other";
    int nl = (int)(sizeof LATENCY_S / sizeof LATENCY_S[0]);
    hist_init(&m->request, "cnnd_request_duration_seconds",
              "Time from a request's headers being read to its response being sent.", LATENCY_S, nl,
              1e-9);
    hist_init(&m->queue_wait, "cnnd_queue_wait_seconds",
              "Time an image waited in a batch queue before its forward pass (or expiry).",
              LATENCY_S, nl, 1e-9);
    hist_init(&m->compute, "cnnd_compute_seconds", "Duration of one batched forward pass.",
              LATENCY_S, nl, 1e-9);
    hist_init(&m->batch, "cnnd_batch_size", "Images per batched forward pass.", BATCH,
              (int)(sizeof BATCH / sizeof BATCH[0]), 1);
    return m;
}

void metrics_destroy(struct metrics *m)
{
    if (!m)
        return;
    pthread_mutex_destroy(&m->add_lock);
    stats_window_destroy(m->window);
    free(m);
}

static struct row *find_row(struct metrics *m, int n, const char *model, const char *route,
                            int status)
{
    for (int i = 0; i < n; i++) {
        struct row *r = &m->rows[i];
        if (r->status == status && r->route == route && strcmp(r->model, model) == 0)
            return r;
    }
    return NULL;
}

void metrics_count_request(struct metrics *m, const char *model, const char *route, int status)
{
    if (strlen(model) >= MODEL_MAX)
        model = "_other";
    int n = atomic_load_explicit(&m->n_rows, memory_order_acquire);
    struct row *r = find_row(m, n, model, route, status);
    if (!r) {
        pthread_mutex_lock(&m->add_lock);
        n = atomic_load_explicit(&m->n_rows, memory_order_relaxed);
        r = find_row(m, n, model, route, status);
        if (!r && n < MAX_ROWS - 1) {
            r = &m->rows[n];
            snprintf(r->model, sizeof r->model, "%s", model);
            r->route = route;
            r->status = status;
            atomic_store_explicit(&m->n_rows, n + 1, memory_order_release);
        } else if (!r) {
            r = &m->rows[MAX_ROWS - 1]; /* table full: the catch-all row */
        }
        pthread_mutex_unlock(&m->add_lock);
    }
    atomic_fetch_add_explicit(&r->count, 1, memory_order_relaxed);
}

void metrics_observe_request(struct metrics *m, int64_t ns)
{
    hist_observe(&m->request, ns);
    stats_window_request(m->window, mono_ns(), ns);
}

json_t *metrics_window_json(struct metrics *m, int seconds)
{
    return stats_window_json(m->window, mono_ns(), seconds);
}

void metrics_observe_queue_wait(struct metrics *m, int64_t ns)
{
    hist_observe(&m->queue_wait, ns);
}

void metrics_count_expired(struct metrics *m)
{
    atomic_fetch_add_explicit(&m->expired, 1, memory_order_relaxed);
}

void metrics_on_batch(void *arg, int batch_size, int64_t compute_ns, int expired)
{
    struct metrics *m = arg;
    (void)expired; /* counted per request by the HTTP side */
    if (batch_size <= 0)
        return;
    hist_observe(&m->batch, batch_size);
    hist_observe(&m->compute, compute_ns);
    stats_window_batch(m->window, mono_ns(), batch_size);
}

void metrics_on_cores(void *arg, int cores, int split)
{
    struct metrics *m = arg;
    atomic_fetch_add_explicit(&m->cores_busy, cores, memory_order_relaxed);
    if (cores > 0)
        atomic_fetch_add_explicit(split ? &m->batches_split : &m->batches_single, 1,
                                  memory_order_relaxed);
}

void metrics_train_step(struct metrics *m, double loss, double accuracy)
{
    atomic_fetch_add_explicit(&m->train_steps, 1, memory_order_relaxed);
    atomic_store_explicit(&m->train_loss, bits_of(loss), memory_order_relaxed);
    atomic_store_explicit(&m->train_acc, bits_of(accuracy), memory_order_relaxed);
}

void metrics_train_validation(struct metrics *m, double accuracy)
{
    atomic_store_explicit(&m->val_acc, bits_of(accuracy), memory_order_relaxed);
}

static int job_state_index(const char *state)
{
    for (int i = 0; state && i < 6; i++)
        if (strcmp(state, JOB_STATES[i]) == 0)
            return i;
    return -1;
}

void metrics_job_state(struct metrics *m, const char *from, const char *to)
{
    int f = job_state_index(from), t = job_state_index(to);
    if (f >= 0)
        atomic_fetch_sub_explicit(&m->jobs[f], 1, memory_order_relaxed);
    if (t >= 0)
        atomic_fetch_add_explicit(&m->jobs[t], 1, memory_order_relaxed);
}

void metrics_count_publish(struct metrics *m)
{
    atomic_fetch_add_explicit(&m->publishes, 1, memory_order_relaxed);
}

/* ---- rendering --------------------------------------------------------------------------- */

struct out {
    char *p;
    size_t n, cap;
    int failed;
};

static void emit(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void emit(struct out *o, const char *fmt, ...)
{
    for (int attempt = 0; attempt < 2 && !o->failed; attempt++) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(o->p + o->n, o->cap - o->n, fmt, ap);
        va_end(ap);
        if (k < 0) {
            o->failed = 1;
        } else if ((size_t)k < o->cap - o->n) {
            o->n += (size_t)k;
            return;
        } else {
            size_t cap = (o->cap + (size_t)k) * 2;
            char *p = realloc(o->p, cap);
            if (!p)
                o->failed = 1;
            else {
                o->p = p;
                o->cap = cap;
            }
        }
    }
}

/* Label value with \\, \" and \n escaped (model names are restricted anyway). */
static const char *esc(const char *s, char *buf, size_t cap)
{
    size_t n = 0;
    for (; *s && n + 3 < cap; s++) {
        if (*s == '\\' || *s == '"' || *s == '\n') {
            buf[n++] = '\\';
            buf[n++] = *s == '\n' ? 'n' : *s;
        } else {
            buf[n++] = *s;
        }
    }
    buf[n] = '\0';
    return buf;
}

static void emit_hist(struct out *o, struct hist *h)
{
    emit(o, "# HELP %s %s\n# TYPE %s histogram\n", h->name, h->help, h->name);
    unsigned long long cum = 0;
    for (int i = 0; i <= h->n; i++) {
        cum += atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
        if (i < h->n)
            emit(o, "%s_bucket{le=\"%.9g\"} %llu\n", h->name, (double)h->bound[i] * h->scale, cum);
        else
            emit(o, "%s_bucket{le=\"+Inf\"} %llu\n", h->name, cum);
    }
    unsigned long long sum = atomic_load_explicit(&h->sum, memory_order_relaxed);
    emit(o, "%s_sum %.9g\n%s_count %llu\n", h->name, (double)sum * h->scale, h->name, cum);
}

/* cnnd_requests_total: one sample per (model, route, status) row, then the overflow row. */
static void emit_requests(struct out *o, struct metrics *m)
{
    char e1[2 * MODEL_MAX], e2[2 * MODEL_MAX];
    emit(o, "# HELP cnnd_requests_total HTTP requests answered, by model, route and status.\n"
            "# TYPE cnnd_requests_total counter\n");
    int n = atomic_load_explicit(&m->n_rows, memory_order_acquire);
    for (int i = 0; i < n; i++) {
        struct row *r = &m->rows[i];
        emit(o, "cnnd_requests_total{model=\"%s\",route=\"%s\",status=\"%d\"} %llu\n",
             esc(r->model, e1, sizeof e1), esc(r->route, e2, sizeof e2), r->status,
             atomic_load_explicit(&r->count, memory_order_relaxed));
    }
    unsigned long long other =
        atomic_load_explicit(&m->rows[MAX_ROWS - 1].count, memory_order_relaxed);
    if (other)
        emit(o, "cnnd_requests_total{model=\"_other\",route=\"_other\",status=\"0\"} %llu\n",
             other);
}

/* Per model version: queue depth, versions loaded per model, the live version. */
static void emit_versions(struct out *o, const struct metrics_gauges *g)
{
    char e1[2 * MODEL_MAX];
    emit(o, "# HELP cnnd_queue_depth Images waiting in a model version's batch queue.\n"
            "# TYPE cnnd_queue_depth gauge\n");
    for (int i = 0; i < g->n_versions; i++)
        emit(o, "cnnd_queue_depth{model=\"%s\",version=\"%d\"} %d\n",
             esc(g->versions[i].model, e1, sizeof e1), g->versions[i].version,
             g->versions[i].queue_depth);
    emit(o, "# HELP cnnd_loaded_versions Versions of a model loaded (live or finishing "
            "requests).\n# TYPE cnnd_loaded_versions gauge\n");
    for (int i = 0; i < g->n_versions; i++) {
        int first = 1, count = 0;
        for (int j = 0; j < g->n_versions; j++) {
            if (strcmp(g->versions[j].model, g->versions[i].model) != 0)
                continue;
            first &= j >= i;
            count++;
        }
        if (first)
            emit(o, "cnnd_loaded_versions{model=\"%s\"} %d\n",
                 esc(g->versions[i].model, e1, sizeof e1), count);
    }
    emit(o, "# HELP cnnd_live_version The version of a model new requests go to.\n"
            "# TYPE cnnd_live_version gauge\n");
    for (int i = 0; i < g->n_versions; i++)
        if (g->versions[i].live)
            emit(o, "cnnd_live_version{model=\"%s\"} %d\n",
                 esc(g->versions[i].model, e1, sizeof e1), g->versions[i].version);
}

/* Fine-tune jobs: steps, the last step's loss and accuracies, jobs by state, publishes. */
static void emit_training(struct out *o, struct metrics *m)
{
    emit(o,
         "# HELP cnnd_train_steps_total Training steps (mini-batches) run by fine-tune jobs.\n"
         "# TYPE cnnd_train_steps_total counter\ncnnd_train_steps_total %llu\n",
         atomic_load_explicit(&m->train_steps, memory_order_relaxed));
    const struct {
        const char *name, *help;
        atomic_ullong *v;
    } gauges[] = {
        {"cnnd_train_loss",
         "Training loss of the last step of a fine-tune job (mean over its "
         "epoch so far; NaN before any step).",
         &m->train_loss},
        {"cnnd_train_accuracy",
         "Training accuracy of the last step of a fine-tune job (mean "
         "over its epoch so far; NaN before any step).",
         &m->train_acc},
        {"cnnd_train_validation_accuracy",
         "Validation accuracy after the last epoch of a fine-tune job (NaN before any).",
         &m->val_acc},
    };
    for (size_t i = 0; i < sizeof gauges / sizeof gauges[0]; i++) {
        double x = double_of(atomic_load_explicit(gauges[i].v, memory_order_relaxed));
        emit(o, "# HELP %s %s\n# TYPE %s gauge\n", gauges[i].name, gauges[i].help, gauges[i].name);
        if (isnan(x))
            emit(o, "%s NaN\n", gauges[i].name);
        else
            emit(o, "%s %.9g\n", gauges[i].name, x);
    }
    emit(o, "# HELP cnnd_jobs Fine-tune jobs known, by state.\n# TYPE cnnd_jobs gauge\n");
    for (int i = 0; i < 6; i++)
        emit(o, "cnnd_jobs{state=\"%s\"} %d\n", JOB_STATES[i],
             atomic_load_explicit(&m->jobs[i], memory_order_relaxed));
    emit(o,
         "# HELP cnnd_publish_total Model versions published by fine-tune jobs.\n"
         "# TYPE cnnd_publish_total counter\ncnnd_publish_total %llu\n",
         atomic_load_explicit(&m->publishes, memory_order_relaxed));
}

char *metrics_render(struct metrics *m, const struct metrics_gauges *g, size_t *len)
{
    struct out o = {.cap = 8192};
    o.p = malloc(o.cap);
    if (!o.p)
        return NULL;
    emit(&o,
         "# HELP cnnd_build_info cnnd version.\n# TYPE cnnd_build_info gauge\n"
         "cnnd_build_info{version=\"%s\"} 1\n",
         config_version());
    emit_requests(&o, m);
    emit(&o,
         "# HELP cnnd_expired_requests_total Requests answered 503 because they waited "
         "in a queue past request_timeout_ms (not computed).\n"
         "# TYPE cnnd_expired_requests_total counter\ncnnd_expired_requests_total %llu\n",
         atomic_load_explicit(&m->expired, memory_order_relaxed));
    emit(&o,
         "# HELP cnnd_batches_total Forward passes by mode: split (one batch on a team of every "
         "core of its model version, the queue being short) or single (one core).\n"
         "# TYPE cnnd_batches_total counter\ncnnd_batches_total{mode=\"split\"} %llu\n"
         "cnnd_batches_total{mode=\"single\"} %llu\n"
         "# HELP cnnd_cores_busy Cores held by running forward passes.\n"
         "# TYPE cnnd_cores_busy gauge\ncnnd_cores_busy %d\n",
         atomic_load_explicit(&m->batches_split, memory_order_relaxed),
         atomic_load_explicit(&m->batches_single, memory_order_relaxed),
         atomic_load_explicit(&m->cores_busy, memory_order_relaxed));
    emit_hist(&o, &m->request);
    emit_hist(&o, &m->queue_wait);
    emit_hist(&o, &m->compute);
    emit_hist(&o, &m->batch);
    emit_versions(&o, g);
    emit(&o,
         "# HELP cnnd_requests_in_flight Requests being handled.\n"
         "# TYPE cnnd_requests_in_flight gauge\ncnnd_requests_in_flight %d\n"
         "# HELP cnnd_ready 1 when the server is ready for inference.\n"
         "# TYPE cnnd_ready gauge\ncnnd_ready %d\n",
         g->in_flight, g->ready);
    emit_training(&o, m);
    if (o.failed) {
        free(o.p);
        return NULL;
    }
    *len = o.n;
    return o.p;
}
