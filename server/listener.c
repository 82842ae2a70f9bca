/* One listener's daemon and the life of a request on it (see the DESIGN note in
 * listener.h): first call (header size, auth, Host, framing, route, limits), body buffering,
 * handler, resume after the batcher, reply, completion (access log, metrics, release, free). */
#include "listener.h"

#include "log.h"
#include "metrics.h"
#include "repository.h"

#include <arpa/inet.h>
#include <assert.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct listener {
    struct listener_config cfg;
    struct MHD_Daemon *d;
    struct app *app;
    atomic_ullong next_id;
    MHD_socket quiesced; /* the listen socket after listener_quiesce, closed by listener_stop */
    int port;
};

/* Request headers (request line included) past HEADER_MAX_BYTES are answered 431 with JSON
 * here: 32 KiB, about what libmicrohttpd's default 32 KiB pool let through, so nothing
 * accepted before is refused.  libmicrohttpd keeps a connection's headers in its
 * per-connection pool and answers 431 itself, with HTML, when they do not fit: the pool is
 * POOL_BYTES, so that happens only past about 62 KiB.  Each kept-alive connection holds its
 * whole pool (libmicrohttpd zeroes it between requests; 64.6 kB of RSS measured): 64 KiB x
 * connection_limit (default 1024) = 64 MiB at most. */
#define HEADER_MAX_BYTES (32 * 1024)
#define POOL_BYTES (64 * 1024)

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void *listener_arg(const struct request *r)
{
    return r->listener->cfg.handler_arg;
}

static enum MHD_Result queue_reply(struct request *r)
{
    const struct listener_config *cfg = &r->listener->cfg;
    if (!r->status)
        http_reply_error(r, 500, "internal error: no reply");
    struct MHD_Response *resp;
    if (r->reply_len) {
        resp = MHD_create_response_from_buffer(r->reply_len, r->reply, MHD_RESPMEM_MUST_FREE);
        if (resp)
            r->reply = NULL; /* MHD frees it now */
    } else {
        resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    }
    if (!resp)
        return MHD_NO;
    char num[32];
    if (r->reply_type)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->reply_type);
    snprintf(num, sizeof num, "%llu", (unsigned long long)r->id);
    MHD_add_response_header(resp, "X-Request-Id", num);
    if (r->status == 401 && cfg->auth_challenge)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, cfg->auth_challenge);
    if (r->retry_after) {
        snprintf(num, sizeof num, "%d", r->retry_after);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, num);
    }
    if (r->allow[0])
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
    if (r->location[0])
        MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, r->location);
    if (r->infer_header_len) {
        snprintf(num, sizeof num, "%zu", r->infer_header_len);
        MHD_add_response_header(resp, "Inference-Header-Content-Length", num);
    }
    if (r->body_discarded || r->close || r->status == 401 ||
        atomic_load_explicit(&r->app->draining, memory_order_relaxed))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* ---- the first call: everything refused before a body byte is read --------------------- */

struct framing {
    int content_length, transfer_encoding, chunked, host;
    int bad_name; /* a field name that is empty or holds SP/HTAB (" Host", "Host :") */
    int folded;   /* fields whose name lies outside the raw header bytes (obs-fold) */
    int in_place; /* fields whose name lies inside them */
    const char *cl_value;
    uintptr_t raw_lo, raw_hi; /* the request's header bytes as received; 0, 0 = unknown */
};

static enum MHD_Result count_framing(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
    struct framing *f = cls;
    (void)kind;
    if (!key[0] || strpbrk(key, " \t"))
        f->bad_name++;
    /* libmicrohttpd 0.9.75 parses the header in place, except a line followed by an
     * obs-fold line (" continued"): that field name is rebuilt elsewhere in the connection's
     * pool (with the continuation glued to the name).  A name outside the raw header bytes
     * is such a fold. */
    if (f->raw_hi && ((uintptr_t)key < f->raw_lo || (uintptr_t)key >= f->raw_hi))
        f->folded++;
    else
        f->in_place++;
    if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
        f->content_length++;
        f->cl_value = value;
    } else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
        f->transfer_encoding++;
        f->chunked = value && strcasecmp(value, "chunked") == 0;
    } else if (strcasecmp(key, MHD_HTTP_HEADER_HOST) == 0) {
        f->host++;
    }
    return MHD_YES;
}

/* Path for the log: cut at any '?' (a query may hold credentials), bytes outside printable
 * ASCII (and '%', '"', '\') percent-encoded. */
static void log_path(const char *url, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)url; *p && *p != '?' && n + 4 < cap; p++) {
        if (*p <= 0x20 || *p >= 0x7f || *p == '%' || *p == '"' || *p == '\\') {
            out[n++] = '%';
            out[n++] = hex[*p >> 4];
            out[n++] = hex[*p & 15];
        } else {
            out[n++] = (char)*p;
        }
    }
    out[n] = '\0';
}

/* Field syntax, Host and message framing (RFC 9112 5.1, 5.2, 3.2, 6.1, 6.3): 0 when
 * acceptable, else replies and marks the connection to be closed (its framing is in doubt).
 * method: libmicrohttpd's method string, the first of the request's header bytes. */
static int check_framing(struct request *r, const char *method, const char *version,
                         struct framing *f)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
    if (ci && ci->header_size) {
        f->raw_lo = (uintptr_t)method;
        f->raw_hi = f->raw_lo + ci->header_size;
    }
    MHD_get_connection_values(r->conn, MHD_HEADER_KIND, count_framing, f);
    r->close = 1;
    if (f->bad_name) {
        http_reply_error(r, 400, "a header field name is empty or has whitespace before its colon");
        return -1;
    }
    if (f->folded && f->in_place) { /* none in place: a library that parses elsewhere */
        http_reply_error(r, 400, "a header field is folded over lines (obs-fold)");
        return -1;
    }
    if (f->host > 1 || (f->host == 0 && strcmp(version, MHD_HTTP_VERSION_1_1) == 0)) {
        http_reply_error(r, 400, "an HTTP/1.1 request needs exactly one Host header");
        return -1;
    }
    if (f->content_length > 1 || f->transfer_encoding > 1 ||
        (f->content_length && f->transfer_encoding)) {
        http_reply_error(r, 400, "conflicting Content-Length / Transfer-Encoding headers");
        return -1;
    }
    if (f->transfer_encoding && !f->chunked) {
        http_reply_error(r, 501, "only chunked Transfer-Encoding is supported");
        return -1;
    }
    if (f->content_length && (!f->cl_value[0] || strspn(f->cl_value, "0123456789") !=
                                                         strlen(f->cl_value))) {
        http_reply_error(r, 400, "Content-Length is not a decimal number");
        return -1;
    }
    r->close = 0;
    return 0;
}

/* Route and path segments: 0 when r has a route, else replies. */
static int route_request(struct request *r, const char *url)
{
    const struct listener_config *cfg = &r->listener->cfg;
    struct route_match m;
    router_match(cfg->routes, cfg->n_routes, r->method, url, &m);
    if (!m.route) {
        if (m.status == 405)
            snprintf(r->allow, sizeof r->allow, "%s", m.allow);
        http_reply_error(r, m.status,
                         m.status == 405 ? "method %s not allowed here" : "no such endpoint (%s)",
                         m.status == 405 ? r->method : r->path);
        return -1;
    }
    r->route = m.route;
    snprintf(r->model, sizeof r->model, "%s", m.name);
    if (m.version[0] && (r->version = repo_parse_version(m.version)) == 0) {
        http_reply_error(r, 400, "version must be a positive integer");
        return -1;
    }
    if (m.id[0] && (r->job_id = repo_parse_version(m.id)) == 0) { /* ids: the same rule */
        http_reply_error(r, 404, "no such job");
        return -1;
    }
    return 0;
}

static enum MHD_Result begin(struct listener *l, struct MHD_Connection *conn, const char *url,
                             const char *method, const char *version, void **con_cls)
{
    struct request *r = calloc(1, sizeof *r);
    if (!r)
        return MHD_NO;
    r->id = atomic_fetch_add_explicit(&l->next_id, 1, memory_order_relaxed) + 1;
    r->app = l->app;
    r->listener = l;
    r->conn = conn;
    r->start_ns = now_ns();
    snprintf(r->method, sizeof r->method, "%s", method);
    log_path(url, r->path, sizeof r->path);
    atomic_init(&r->pending, 0);
    atomic_init(&r->failure, 0);
    if (l->cfg.in_flight)
        atomic_fetch_add_explicit(l->cfg.in_flight, 1, memory_order_relaxed);
    *con_cls = r;

    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
    if (ci && ci->header_size > HEADER_MAX_BYTES) {
        r->close = 1;
        http_reply_error(r, 431, "request headers of %zu bytes exceed the limit of %d",
                         ci->header_size, HEADER_MAX_BYTES);
        return queue_reply(r);
    }
    if (l->cfg.auth && l->cfg.auth(l->cfg.auth_arg, r, url) != 0) {
        r->auth_refused = 1;
        return queue_reply(r);
    }
    struct framing f = {0};
    if (check_framing(r, method, version, &f) != 0 || route_request(r, url) != 0)
        return queue_reply(r);
    const struct route *route = r->route;
    if (route->inference && atomic_load(&l->app->draining)) {
        http_reply_error(r, 503, "server is shutting down");
        return queue_reply(r);
    }
    if (route->inference) { /* tells the batchers more work is on its way */
        r->incoming = 1;
        atomic_fetch_add_explicit(&l->app->incoming, 1, memory_order_relaxed);
    }
    r->body_max = l->cfg.body_max[route->body];
    if (f.content_length) {
        unsigned long long cl = strtoull(f.cl_value, NULL, 10);
        if (cl > (unsigned long long)r->body_max) {
            http_reply_error(r, 413, "body of %llu bytes exceeds the limit of %lld for %s", cl,
                             r->body_max, route->name);
            return queue_reply(r);
        }
        r->body_hint = (size_t)cl; /* the first buffer gets this size (up to 1 MiB) */
    }
    return MHD_YES;
}

/* ---- body, handler, reply ------------------------------------------------------------- */

/* A chunked body past its limit is read and dropped so the client gets its 413 (libmicrohttpd
 * cannot answer before the body ends); past this many more bytes the connection is reset. */
#define DISCARD_MAX_BYTES (1LL << 30)

/* Body bytes: buffered up to the route's limit; past it (chunked bodies) dropped, answered
 * 413 at the end, and past DISCARD_MAX_BYTES more the connection is closed at once. */
static enum MHD_Result take_body(struct request *r, const char *data, size_t n)
{
    if (r->body_discarded || (long long)(r->body_len + n) > r->body_max) {
        r->body_discarded += (long long)(r->body_len + n);
        free(r->body);
        r->body = NULL;
        r->body_len = r->body_cap = 0;
        return r->body_discarded > r->body_max + DISCARD_MAX_BYTES ? MHD_NO : MHD_YES;
    }
    if (r->body_len + n > r->body_cap) {
        size_t cap = r->body_cap    ? r->body_cap * 2
                     : r->body_hint ? (r->body_hint < (1u << 20) ? r->body_hint : 1u << 20)
                                    : 16384;
        while (cap < r->body_len + n)
            cap *= 2;
        if ((long long)cap > r->body_max)
            cap = (size_t)r->body_max;
        char *p = realloc(r->body, cap + 1);
        if (!p)
            return MHD_NO;
        r->body = p;
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, data, n);
    r->body_len += n;
    r->body[r->body_len] = '\0';
    return MHD_YES;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_size, void **con_cls)
{
    struct request *r = *con_cls;
    if (!r)
        return begin(cls, conn, url, method, version, con_cls);
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        return r->status ? MHD_YES : take_body(r, upload_data, n);
    }
    if (r->phase == PHASE_READ) {
        if (r->status)
            return MHD_YES; /* refused and queued in begin() */
        r->phase = PHASE_HANDLED;
        if (r->body_discarded)
            http_reply_error(r, 413, "body exceeds the limit of %lld bytes for %s", r->body_max,
                             r->route->name);
        else
            r->route->handler(r);
        if (r->suspended)
            return MHD_YES; /* the last item's done() (or a refused submit) resumes */
    } else if (r->suspended) {
        r->suspended = 0; /* resumed */
        if (!r->status)
            http_complete_items(r);
    }
    return queue_reply(r);
}

/* ---- completion ------------------------------------------------------------------------ */

static void request_free(struct request *r)
{
    assert(atomic_load(&r->pending) == 0);
    http_uncount_incoming(r);
    if (r->state_free)
        r->state_free(r->state);
    if (r->mv)
        registry_release(r->app->reg, r->mv);
    free(r->body);
    free(r->reply);
    free(r->inputs);
    free(r->outputs);
    free(r->items);
    free(r->item_ptrs);
    free(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct request *r = *con_cls;
    struct listener *l = cls;
    (void)conn;
    if (!r)
        return;
    *con_cls = NULL;
    /* 499 (nginx's "client closed request") when no reply was made */
    int status = r->status ? r->status : 499;
    int64_t ns = now_ns() - r->start_ns;
    const char *model = r->mv ? r->mv->name : "";
    metrics_count_request(l->app->metrics, model, r->route ? r->route->name : l->cfg.no_route,
                          status);
    if (l->cfg.in_flight)
        metrics_observe_request(l->app->metrics, ns);
    /* the path without its query; no header value is ever logged */
    log_info("%s id=%llu method=%s path=%s status=%d model=%s version=%d items=%d "
             "batch=%d latency_ms=%.3f%s%s",
             l->cfg.log_event, (unsigned long long)r->id, r->method, r->path, status,
             model[0] ? model : "-", r->mv ? r->mv->version : 0, r->n_items, http_batch_size(r),
             (double)ns / 1e6, r->auth_refused ? " auth=refused" : "",
             toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " aborted=1");
    atomic_int *in_flight = l->cfg.in_flight;
    request_free(r);
    if (in_flight)
        atomic_fetch_sub_explicit(in_flight, 1, memory_order_relaxed);
}

static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    const struct listener *l = cls;
    char msg[400];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    char *q = strchr(msg, '?'); /* a URL in a library message: never log its query */
    if (q)
        *q = '\0';
    log_warn("http_library listener=%s message=\"%s\"", l->cfg.what, msg);
}

/* ---- daemon ------------------------------------------------------------------------------ */

/* Fills *ss from a numeric IPv4/IPv6 host and port and adds the matching MHD flags (IPv6 or
 * dual stack for "::", epoll where available) to *flags; -1 when host is not numeric. */
static int listen_address(const char *host, int port, struct sockaddr_storage *ss,
                          unsigned int *flags)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
    } else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        *flags |= strcmp(host, "::") == 0 ? MHD_USE_DUAL_STACK : MHD_USE_IPv6;
    } else {
        return -1;
    }
    if (MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES)
        *flags |= MHD_USE_EPOLL;
    return 0;
}

struct listener *listener_start(struct app *app, const struct listener_config *cfg,
                                struct cnn_err *err)
{
    struct listener *l = calloc(1, sizeof *l);
    if (!l) {
        cnn_err_set(err, CNN_ENOMEM, "out of memory");
        return NULL;
    }
    l->cfg = *cfg;
    l->app = app;
    l->quiesced = MHD_INVALID_SOCKET;
    atomic_init(&l->next_id, 0);
    struct sockaddr_storage ss;
    const struct sockaddr *addr = (const struct sockaddr *)&ss;
    unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC |
                         MHD_USE_ERROR_LOG | MHD_USE_TURBO;
    if (listen_address(cfg->host, cfg->port, &ss, &flags) != 0) {
        free(l);
        cnn_err_set(err, CNN_EINVAL, "%s %s is not numeric", cfg->what, cfg->host);
        return NULL;
    }
    l->d = MHD_start_daemon(flags, (uint16_t)cfg->port, NULL, NULL, on_access, l,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, l, MHD_OPTION_SOCK_ADDR, addr,
                            MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)cfg->threads,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned int)cfg->connection_limit,
                            MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int)cfg->per_ip_limit,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)cfg->connection_timeout_s,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)POOL_BYTES,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, l, MHD_OPTION_END);
    if (!l->d) {
        free(l);
        cnn_err_set(err, CNN_EIO, "cannot listen on %s port %d (%s; in use, or not permitted)",
                    cfg->host, cfg->port, cfg->what);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(l->d, MHD_DAEMON_INFO_BIND_PORT);
    l->port = info ? info->port : cfg->port;
    return l;
}

int listener_port(const struct listener *l)
{
    return l->port;
}

void listener_quiesce(struct listener *l)
{
    if (!l || l->quiesced != MHD_INVALID_SOCKET)
        return;
    l->quiesced = MHD_quiesce_daemon(l->d);
    /* MHD no longer polls the socket, but the kernel would still complete handshakes into
     * its backlog and leave clients hanging: stop listening now (connects are refused,
     * queued ones reset).  The descriptor stays open until MHD is stopped. */
    if (l->quiesced != MHD_INVALID_SOCKET)
        shutdown(l->quiesced, SHUT_RDWR);
}

void listener_stop(struct listener *l)
{
    if (!l)
        return;
    MHD_stop_daemon(l->d);
    if (l->quiesced != MHD_INVALID_SOCKET)
        close(l->quiesced);
    free(l);
}
