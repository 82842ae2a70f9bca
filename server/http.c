/* The libmicrohttpd daemon and the life of a request (see the DESIGN note in http.h):
 * first call (framing, route, limits), body buffering, handler, suspend/resume around the
 * batcher, reply, completion (access log, metrics, release, free). */
#define _GNU_SOURCE /* POLLRDHUP */
#include "http.h"

#include "log.h"
#include "metrics.h"
#include "router.h"

#include <arpa/inet.h>
#include <assert.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct http_server {
    struct MHD_Daemon *d;
    struct app *app;
    atomic_ullong next_id;
    MHD_socket quiesced; /* the listen socket after http_quiesce, closed by http_stop */
    int port;
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static enum MHD_Result queue_reply(struct request *r)
{
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
    if (r->retry_after) {
        snprintf(num, sizeof num, "%d", r->retry_after);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, num);
    }
    if (r->allow[0])
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
    if (r->infer_header_len) {
        snprintf(num, sizeof num, "%zu", r->infer_header_len);
        MHD_add_response_header(resp, "Inference-Header-Content-Length", num);
    }
    if (r->body_discarded || atomic_load_explicit(&r->app->draining, memory_order_relaxed))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* Worker thread: one item is done.  The last one resumes the connection; after that call
 * the request belongs to the MHD thread again and is not touched here. */
static void item_done(struct batcher_item *it, int status)
{
    struct request *r = it->ctx;
    int64_t started = it->started_ns ? it->started_ns : now_ns();
    metrics_observe_queue_wait(r->app->metrics, started - it->enqueued_ns);
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
    int timeout_ms = r->app->cfg->request_timeout_ms;
    int64_t deadline = timeout_ms > 0 ? now_ns() + (int64_t)timeout_ms * 1000000 : 0;
    for (int i = 0; i < r->n_items; i++) {
        r->items[i].deadline_ns = deadline;
        r->items[i].done = item_done;
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

/* On the MHD thread after the resume: the reply from the items' outcome. */
static void complete_items(struct request *r)
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

/* ---- the access handler ---------------------------------------------------------------- */

struct framing {
    int content_length, transfer_encoding, chunked;
    const char *cl_value;
};

static enum MHD_Result count_framing(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
    struct framing *f = cls;
    (void)kind;
    if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
        f->content_length++;
        f->cl_value = value;
    } else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
        f->transfer_encoding++;
        f->chunked = value && strcasecmp(value, "chunked") == 0;
    }
    return MHD_YES;
}

/* Path for the log: bytes outside printable ASCII (and '%', ' ') percent-encoded. */
static void log_path(const char *url, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)url; *p && n + 4 < cap; p++) {
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

static int parse_version(const char *s)
{
    if (!*s || *s == '0' || strlen(s) > 9)
        return -1;
    int v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (*s - '0');
    }
    return v;
}

/* First call, headers read: everything that can be refused before reading the body. */
static enum MHD_Result begin(struct http_server *s, struct MHD_Connection *conn, const char *url,
                             const char *method, void **con_cls)
{
    struct request *r = calloc(1, sizeof *r);
    if (!r)
        return MHD_NO;
    r->id = atomic_fetch_add_explicit(&s->next_id, 1, memory_order_relaxed) + 1;
    r->app = s->app;
    r->conn = conn;
    r->start_ns = now_ns();
    snprintf(r->method, sizeof r->method, "%s", method);
    log_path(url, r->path, sizeof r->path);
    atomic_init(&r->pending, 0);
    atomic_init(&r->failure, 0);
    atomic_fetch_add_explicit(&s->app->in_flight, 1, memory_order_relaxed);
    *con_cls = r;

    struct framing f = {0};
    MHD_get_connection_values(conn, MHD_HEADER_KIND, count_framing, &f);
    if (f.content_length > 1 || f.transfer_encoding > 1 ||
        (f.content_length && f.transfer_encoding)) {
        http_reply_error(r, 400, "conflicting Content-Length / Transfer-Encoding headers");
        return queue_reply(r);
    }
    if (f.transfer_encoding && !f.chunked) {
        http_reply_error(r, 501, "only chunked Transfer-Encoding is supported");
        return queue_reply(r);
    }
    struct route_match m;
    router_match(method, url, &m);
    if (!m.route) {
        if (m.status == 405)
            snprintf(r->allow, sizeof r->allow, "%s", m.allow);
        http_reply_error(r, m.status,
                         m.status == 405 ? "method %s not allowed here" : "no such endpoint (%s)",
                         m.status == 405 ? r->method : r->path);
        return queue_reply(r);
    }
    r->route = m.route;
    snprintf(r->model, sizeof r->model, "%s", m.name);
    if (m.version[0] && (r->version = parse_version(m.version)) < 0) {
        r->version = 0;
        http_reply_error(r, 400, "version must be a positive integer");
        return queue_reply(r);
    }
    if (m.route->inference && atomic_load(&s->app->draining)) {
        http_reply_error(r, 503, "server is shutting down");
        return queue_reply(r);
    }
    if (m.route->inference) { /* tells the batchers more work is on its way */
        r->incoming = 1;
        atomic_fetch_add_explicit(&s->app->incoming, 1, memory_order_relaxed);
    }
    const struct config *cfg = s->app->cfg;
    r->body_max = m.route->body == BODY_CLASSIFY ? cfg->classify_max_body
                  : m.route->body == BODY_INFER  ? cfg->infer_max_body
                                                 : 0;
    if (f.content_length) {
        char *end;
        unsigned long long cl = strtoull(f.cl_value, &end, 10);
        if (cl > (unsigned long long)r->body_max) {
            http_reply_error(r, 413, "body of %llu bytes exceeds the limit of %lld for %s", cl,
                             r->body_max, m.route->name);
            return queue_reply(r);
        }
        r->body_hint = (size_t)cl; /* the first buffer gets this size (up to 1 MiB) */
    }
    return MHD_YES;
}

/* Body bytes: buffered up to the route's limit; past it (chunked bodies) dropped and, when
 * the drop exceeds the limit again, the connection is closed. */
enum MHD_Result http_take_body(struct request *r, const char *data, size_t n)
{
    if (r->body_discarded || (long long)(r->body_len + n) > r->body_max) {
        r->body_discarded += (long long)(r->body_len + n);
        free(r->body);
        r->body = NULL;
        r->body_len = r->body_cap = 0;
        return r->body_discarded > 2 * r->body_max + 65536 ? MHD_NO : MHD_YES;
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
    (void)version;
    if (!r)
        return begin(cls, conn, url, method, con_cls);
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        return r->status ? MHD_YES : http_take_body(r, upload_data, n);
    }
    if (r->phase == PHASE_READ) {
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
            complete_items(r);
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
    (void)cls;
    (void)conn;
    if (!r)
        return;
    *con_cls = NULL;
    /* 499 (nginx's "client closed request") when no reply was made */
    int status = r->status ? r->status : 499;
    int64_t ns = now_ns() - r->start_ns;
    struct app *app = r->app;
    const char *model = r->mv ? r->mv->name : "";
    metrics_count_request(app->metrics, model, r->route ? r->route->name : "none", status);
    metrics_observe_request(app->metrics, ns);
    log_info("request id=%llu method=%s path=%s status=%d model=%s version=%d items=%d "
             "batch=%d latency_ms=%.3f%s",
             (unsigned long long)r->id, r->method, r->path, status, model[0] ? model : "-",
             r->mv ? r->mv->version : 0, r->n_items, http_batch_size(r), (double)ns / 1e6,
             toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " aborted=1");
    request_free(r);
    atomic_fetch_sub_explicit(&app->in_flight, 1, memory_order_relaxed);
}

static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[400];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    log_warn("http_library message=\"%s\"", msg);
}

/* ---- daemon ------------------------------------------------------------------------------ */

int http_listen_address(const char *host, int port, struct sockaddr_storage *ss,
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

struct http_server *http_start(struct app *app, struct cnn_err *err)
{
    const struct config *cfg = app->cfg;
    struct http_server *s = calloc(1, sizeof *s);
    if (!s) {
        cnn_err_set(err, CNN_ENOMEM, "out of memory");
        return NULL;
    }
    s->app = app;
    s->quiesced = MHD_INVALID_SOCKET;
    atomic_init(&s->next_id, 0);
    struct sockaddr_storage ss;
    const struct sockaddr *addr = (const struct sockaddr *)&ss;
    unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC |
                         MHD_USE_ERROR_LOG | MHD_USE_TURBO;
    if (http_listen_address(cfg->listen, cfg->port, &ss, &flags) != 0) {
        free(s);
        cnn_err_set(err, CNN_EINVAL, "listen address %s is not numeric", cfg->listen);
        return NULL;
    }
    s->d = MHD_start_daemon(flags, (uint16_t)cfg->port, NULL, NULL, on_access, s,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_SOCK_ADDR, addr,
                            MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)cfg->threads,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned int)cfg->connection_limit,
                            MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int)cfg->per_ip_limit,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)cfg->connection_timeout_s,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_END);
    if (!s->d) {
        free(s);
        cnn_err_set(err, CNN_EIO, "cannot listen on %s port %d (in use, or not permitted)",
                    cfg->listen, cfg->port);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : cfg->port;
    return s;
}

int http_port(const struct http_server *s)
{
    return s->port;
}

void http_quiesce(struct http_server *s)
{
    if (!s || s->quiesced != MHD_INVALID_SOCKET)
        return;
    s->quiesced = MHD_quiesce_daemon(s->d);
    /* MHD no longer polls the socket, but the kernel would still complete handshakes into
     * its backlog and leave clients hanging: stop listening now (connects are refused,
     * queued ones reset).  The descriptor stays open until MHD is stopped. */
    if (s->quiesced != MHD_INVALID_SOCKET)
        shutdown(s->quiesced, SHUT_RDWR);
}

void http_stop(struct http_server *s)
{
    if (!s)
        return;
    MHD_stop_daemon(s->d);
    if (s->quiesced != MHD_INVALID_SOCKET)
        close(s->quiesced);
    free(s);
}
