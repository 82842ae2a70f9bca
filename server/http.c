/* The inference listener: its route table, limits and thread pool (listener_config), and
 * the suspend/resume around the batcher (see the DESIGN note in http.h). */
#define _GNU_SOURCE /* POLLRDHUP */
#include "http.h"

#include "listener.h"
#include "metrics.h"

#include <microhttpd.h>
#include <poll.h>
#include <time.h>

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void http_observe_queue_wait(const struct batcher_item *it)
{
    const struct request *r = it->ctx;
    int64_t started = it->started_ns ? it->started_ns : now_ns();
    metrics_observe_queue_wait(r->app->metrics, started - it->enqueued_ns);
}

/* Worker thread: one item is done.  The last one resumes the connection; after that call
 * the request belongs to the MHD thread again and is not touched here. */
static void item_done(struct batcher_item *it, int status)
{
    struct request *r = it->ctx;
    http_observe_queue_wait(it);
    if (status) {
        int none = 0;
        atomic_compare_exchange_strong(&r->failure, &none, status);
    }
    if (atomic_fetch_sub_explicit(&r->pending, 1, memory_order_acq_rel) == 1)
        MHD_resume_connection(r->conn);
}

/* batcher_item.gone: the peer closed its side (FIN/RST) while the request was queued.
 * Asked on a worker while the connection is suspended, so MHD is not using it. */
static int item_gone(const struct batcher_item *it)
{
    struct request *r = it->ctx;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci)
        return 0;
    struct pollfd p = {.fd = ci->connect_fd, .events = POLLRDHUP};
    return poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

void http_uncount_incoming(struct request *r)
{
    if (r->incoming) {
        r->incoming = 0;
        atomic_fetch_sub_explicit(&r->app->incoming, 1, memory_order_relaxed);
    }
}

void http_submit(struct request *r, void (*finish)(struct request *r))
{
    http_submit_items(r, finish, item_done);
}

void http_submit_items(struct request *r, void (*finish)(struct request *r),
                       void (*done)(struct batcher_item *it, int status))
{
    int timeout_ms = r->app->cfg->request_timeout_ms;
    int64_t deadline = timeout_ms > 0 ? now_ns() + (int64_t)timeout_ms * 1000000 : 0;
    for (int i = 0; i < r->n_items; i++) {
        r->items[i].deadline_ns = deadline;
        r->items[i].done = done;
        r->items[i].gone = item_gone;
        r->items[i].ctx = r;
    }
    r->finish = finish;
    atomic_store(&r->pending, r->n_items);
    r->suspended = 1;
    http_uncount_incoming(r); /* before the submit, so the waking worker sees it */
    MHD_suspend_connection(r->conn); /* before the submit: a worker may resume at once */
    struct cnn_err err = {0};
    if (batcher_submit(r->mv->batcher, r->item_ptrs, r->n_items, &err) != 0) {
        atomic_store(&r->pending, 0);
        r->retry_after = 1;
        http_reply_error(r, 503, "server overloaded: %s", err.msg[0] ? err.msg : "queue full");
        MHD_resume_connection(r->conn);
    }
}

void http_complete_items(struct request *r)
{
    int failure = atomic_load_explicit(&r->failure, memory_order_acquire);
    if (failure == CNN_EBUSY) {
        metrics_count_expired(r->app->metrics);
        r->retry_after = 1;
        http_reply_error(r, 503, "request timed out in queue");
    } else if (failure == CNN_ECANCELED && !atomic_load(&r->app->draining)) {
        /* the client left while queued: nginx's 499, for the log and metrics only */
        http_reply_error(r, 499, "client closed the connection before the answer");
    } else if (failure == CNN_ECANCELED) {
        http_reply_error(r, 503, "server is shutting down");
    } else if (failure) {
        http_reply_error(r, 500, "inference failed: %s", cnn_strerror(failure));
    } else {
        r->finish(r);
    }
}

struct listener *http_start(struct app *app, struct cnn_err *err)
{
    const struct config *cfg = app->cfg;
    struct listener_config lc = {
        .host = cfg->listen,
        .port = cfg->port,
        .what = "listen",
        .log_event = "request",
        .no_route = "none",
        .body_max = {[BODY_CLASSIFY] = cfg->classify_max_body, [BODY_INFER] = cfg->infer_max_body},
        .threads = cfg->threads,
        .connection_limit = cfg->connection_limit,
        .per_ip_limit = cfg->per_ip_limit,
        .connection_timeout_s = cfg->connection_timeout_s,
        .in_flight = &app->in_flight,
    };
    lc.routes = router_routes(&lc.n_routes);
    return listener_start(app, &lc, err);
}
