/* One HTTP listener: a libmicrohttpd daemon (internal thread pool, suspend/resume) on an
 * address and port, with a route table, an auth hook and limits, and the life of one
 * request on it.  The inference port (http.c) and the admin port (admin.c) are two
 * listeners built from this, so every check below holds on both.
 *
 * DESIGN: every callback here runs on one of the listener's MHD pool threads.  A request
 * is made on the first access-handler call (headers read), and before any body byte is
 * buffered: the header block's size (over 32 KiB -> 431, closes the connection), the auth
 * hook (401 + WWW-Authenticate), field syntax (whitespace in a name or
 * before its colon, obs-fold -> 400), Host (exactly one in HTTP/1.1, else 400), framing
 * (Transfer-Encoding with Content-Length, two Content-Lengths or a bad one -> 400, a
 * Transfer-Encoding other than chunked -> 501; every one of these closes the connection),
 * route (404 / 405 + Allow), {v} and {id} segments (400 / 404), draining (503 on inference
 * routes), Content-Length against the route's body limit (413).  The body is then buffered
 * (a chunked body past the limit is read and dropped -> 413, connection closed) and on the
 * final call the route's handler runs: it replies at once, or
 * fills batch items and calls http_submit (http.c), which suspends the connection *before*
 * batcher_submit; the last item's done callback resumes it, and the access handler then
 * builds and queues the reply.  The completion callback writes the access-log line (path
 * without its query, never a header value), counts the request in the metrics, releases
 * the model version and frees the request.  Nothing is locked here: a request belongs to
 * one MHD thread except for the atomic countdown.  Start/quiesce/stop: main only. */
#ifndef LISTENER_H
#define LISTENER_H

#include "err.h"
#include "http.h"
#include "router.h"

#include <stdatomic.h>

struct listener_config {
    const char *host; /* numeric IPv4/IPv6 address */
    int port;         /* 0 = ephemeral */
    const char *what; /* for messages: "listen", "admin_listen" */
    const char *log_event; /* access-log event name: "request", "admin request" */
    const char *no_route;  /* metrics route label of an unmatched request */
    const struct route *routes;
    int n_routes;
    long long body_max[BODY_KINDS]; /* bytes, per route body kind; BODY_NONE -> 0 */
    int threads, connection_limit, per_ip_limit, connection_timeout_s; /* 0 = no limit */
    /* Runs first on every request (headers only, no body read); 0 lets it through, else it
     * has replied (401) and the request is refused.  NULL = no authentication. */
    int (*auth)(void *auth_arg, struct request *r, const char *url);
    void *auth_arg;
    const char *auth_challenge; /* WWW-Authenticate value on a 401; NULL = none */
    void *handler_arg;          /* handlers reach it with listener_arg(r) */
    /* The serving port's: requests made and not completed (the drain waits for them), each
     * timed in cnnd_request_duration_seconds.  NULL (admin): neither. */
    atomic_int *in_flight;
};

struct listener;

/* Starts listening.  cfg is copied; what it points to is borrowed until listener_stop.
 * NULL with err (CNN_EINVAL: host not numeric, CNN_EIO: cannot listen, CNN_ENOMEM). */
struct listener *listener_start(struct app *app, const struct listener_config *cfg,
                                struct cnn_err *err);
/* The bound port (useful with port 0). */
int listener_port(const struct listener *l);
/* Stops accepting new connections (existing ones keep being served).  NULL is a no-op. */
void listener_quiesce(struct listener *l);
/* Closes every connection and joins the MHD threads.  Call only when no request is
 * suspended (in_flight == 0 after a drain).  NULL is a no-op. */
void listener_stop(struct listener *l);

/* The handler_arg of the listener r arrived on (MHD threads). */
void *listener_arg(const struct request *r);

#endif
