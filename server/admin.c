/* The admin listener (see the DESIGN note in admin.h): route table, authentication in the
 * headers phase, body buffering, reply, access log. */
#include "admin.h"

#include "examples.h"
#include "job_spec.h"
#include "log.h"
#include "metrics.h"

#include <arpa/inet.h>
#include <limits.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define ADMIN_THREADS 2
#define EXAMPLES_OVERHEAD (64 * 1024) /* multipart framing and the label part */

struct admin_route {
    const char *method;
    const char *pattern; /* segments {name}, {v}, {id} */
    const char *name;    /* metrics label */
    int body;            /* 0 none, 1 JSON (JOB_BODY_MAX), 2 example upload */
    void (*handler)(struct request *r);
};

static const struct admin_route ROUTES[] = {
    {"GET", "/admin/v1/models", "admin_models", 0, handle_admin_models},
    {"POST", "/admin/v1/models/{name}/load", "admin_load", 0, handle_admin_model_load},
    {"POST", "/admin/v1/models/{name}/unload", "admin_unload", 0, handle_admin_model_unload},
    {"POST", "/admin/v1/models/{name}/versions/{v}/activate", "admin_activate", 0,
     handle_admin_model_activate},
    {"POST", "/admin/v1/models/{name}/unpin", "admin_unpin", 0, handle_admin_model_unpin},
    {"POST", "/admin/v1/models/{name}/finetune", "admin_finetune", 1, handle_admin_finetune},
    {"POST", "/admin/v1/models/{name}/examples", "admin_examples", 2, handle_admin_examples},
    {"GET", "/admin/v1/jobs", "admin_jobs", 0, handle_admin_jobs},
    {"GET", "/admin/v1/jobs/{id}", "admin_job", 0, handle_admin_job},
    {"DELETE", "/admin/v1/jobs/{id}", "admin_job_cancel", 0, handle_admin_job_cancel},
};
#define N_ROUTES ((int)(sizeof ROUTES / sizeof ROUTES[0]))

struct admin_server {
    struct MHD_Daemon *d;
    struct app *app;
    struct jobs *jobs;
    const struct admin_token *token;
    atomic_ullong next_id;
    int port;
};

struct admin_request {
    struct request base; /* first: handlers get &base */
    struct admin_server *srv;
    const struct admin_route *route;
    long job_id;
    int unauthorized;
    char location[64];
};

struct jobs *admin_jobs(struct request *r)
{
    return ((struct admin_request *)r)->srv->jobs;
}

long admin_job_id(struct request *r)
{
    return ((struct admin_request *)r)->job_id;
}

void admin_set_location(struct request *r, const char *location)
{
    struct admin_request *ar = (struct admin_request *)r;
    snprintf(ar->location, sizeof ar->location, "%s", location);
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- routes ------------------------------------------------------------------------------ */

struct match {
    const struct admin_route *route;
    int status; /* 404 / 405 when no route */
    char allow[32];
    char name[64], version[16], id[24];
};

static int seg_capture(const char *s, size_t n, char *buf, size_t cap)
{
    if (n == 0 || n >= cap)
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return 0;
}

static int path_matches(const char *pattern, const char *path, struct match *m)
{
    const char *p = pattern, *u = path;
    while (*p && *u) {
        if (*p++ != '/' || *u++ != '/')
            return 0;
        size_t pn = strcspn(p, "/"), un = strcspn(u, "/");
        char *dst = NULL;
        size_t cap = 0;
        if (pn == 6 && strncmp(p, "{name}", 6) == 0)
            dst = m->name, cap = sizeof m->name;
        else if (pn == 3 && strncmp(p, "{v}", 3) == 0)
            dst = m->version, cap = sizeof m->version;
        else if (pn == 4 && strncmp(p, "{id}", 4) == 0)
            dst = m->id, cap = sizeof m->id;
        if (dst ? seg_capture(u, un, dst, cap) != 0 : (pn != un || strncmp(p, u, pn) != 0))
            return 0;
        p += pn;
        u += un;
    }
    return *p == '\0' && *u == '\0';
}

static void route_match(const char *method, const char *path, struct match *out)
{
    memset(out, 0, sizeof *out);
    const char *meth = strcmp(method, "HEAD") == 0 ? "GET" : method;
    size_t n = 0;
    for (int i = 0; i < N_ROUTES; i++) {
        struct match tmp = {0};
        if (!path_matches(ROUTES[i].pattern, path, &tmp))
            continue;
        if (strcmp(ROUTES[i].method, meth) == 0) {
            *out = tmp;
            out->route = &ROUTES[i];
            return;
        }
        if (!strstr(out->allow, ROUTES[i].method))
            n += (size_t)snprintf(out->allow + n, sizeof out->allow - n, "%s%s", n ? ", " : "",
                                  ROUTES[i].method);
    }
    out->status = out->allow[0] ? 405 : 404;
}

/* A decimal integer 1..INT_MAX without leading zeros, or -1. */
static int parse_positive(const char *s)
{
    if (!*s || *s == '0' || strlen(s) > 10)
        return -1;
    long long v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (*s - '0');
    }
    return v <= INT_MAX ? (int)v : -1;
}

/* ---- the request ---------------------------------------------------------------------- */

static enum MHD_Result queue_reply(struct admin_request *ar)
{
    struct request *r = &ar->base;
    if (!r->status)
        http_reply_error(r, 500, "internal error: no reply");
    struct MHD_Response *resp;
    if (r->reply_len) {
        resp = MHD_create_response_from_buffer(r->reply_len, r->reply, MHD_RESPMEM_MUST_FREE);
        if (resp)
            r->reply = NULL;
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
    if (r->status == 401)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                "Bearer realm=\"cnnd-admin\"");
    if (r->retry_after) {
        snprintf(num, sizeof num, "%d", r->retry_after);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, num);
    }
    if (r->allow[0])
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
    if (ar->location[0])
        MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, ar->location);
    if (r->body_discarded || r->status == 401)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

struct framing {
    int content_length, transfer_encoding;
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
    }
    return MHD_YES;
}

/* The path for the log: cut at any '?', bytes outside printable ASCII percent-encoded. */
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

/* First call, headers read: everything decided before any body byte is buffered. */
static enum MHD_Result begin(struct admin_server *s, struct MHD_Connection *conn, const char *url,
                             const char *method, void **con_cls)
{
    struct admin_request *ar = calloc(1, sizeof *ar);
    if (!ar)
        return MHD_NO;
    struct request *r = &ar->base;
    ar->srv = s;
    r->id = atomic_fetch_add_explicit(&s->next_id, 1, memory_order_relaxed) + 1;
    r->app = s->app;
    r->conn = conn;
    r->start_ns = now_ns();
    snprintf(r->method, sizeof r->method, "%s", method);
    log_path(url, r->path, sizeof r->path);
    atomic_init(&r->pending, 0);
    atomic_init(&r->failure, 0);
    *con_cls = ar;

    /* Credentials in a URL end up in logs and proxies: refuse any query string outright. */
    if (strchr(url, '?') ||
        MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, NULL, NULL) > 0) {
        ar->unauthorized = 1;
        http_reply_error(r, 401,
                         "admin requests take no query string; send the token as "
                         "Authorization: Bearer <token>");
        return queue_reply(ar);
    }
    const char *auth =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!admin_token_check_header(s->token, auth)) {
        ar->unauthorized = 1;
        http_reply_error(r, 401, "%s", auth ? "wrong admin token" : "admin token required");
        return queue_reply(ar);
    }
    struct framing f = {0};
    MHD_get_connection_values(conn, MHD_HEADER_KIND, count_framing, &f);
    if (f.content_length > 1 || f.transfer_encoding > 1 ||
        (f.content_length && f.transfer_encoding)) {
        http_reply_error(r, 400, "conflicting Content-Length / Transfer-Encoding headers");
        return queue_reply(ar);
    }
    struct match m;
    route_match(method, url, &m);
    if (!m.route) {
        snprintf(r->allow, sizeof r->allow, "%s", m.allow);
        http_reply_error(r, m.status, "%s",
                         m.status == 405 ? "method not allowed here" : "no such endpoint");
        return queue_reply(ar);
    }
    ar->route = m.route;
    snprintf(r->model, sizeof r->model, "%s", m.name);
    if (m.version[0] && (r->version = parse_positive(m.version)) < 0) {
        r->version = 0;
        http_reply_error(r, 400, "version must be a positive integer");
        return queue_reply(ar);
    }
    if (m.id[0] && (ar->job_id = parse_positive(m.id)) < 0) {
        ar->job_id = 0;
        http_reply_error(r, 404, "no such job");
        return queue_reply(ar);
    }
    const struct config *cfg = s->app->cfg;
    r->body_max = m.route->body == 1   ? JOB_BODY_MAX
                  : m.route->body == 2 ? cfg->example_max_bytes + EXAMPLES_OVERHEAD
                                       : 0;
    if (f.content_length) {
        unsigned long long cl = strtoull(f.cl_value, NULL, 10);
        if (cl > (unsigned long long)r->body_max) {
            http_reply_error(r, 413, "body of %llu bytes exceeds the limit of %lld for %s", cl,
                             r->body_max, m.route->name);
            return queue_reply(ar);
        }
        r->body_hint = (size_t)cl;
    }
    return MHD_YES;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_size, void **con_cls)
{
    struct admin_request *ar = *con_cls;
    (void)version;
    if (!ar)
        return begin(cls, conn, url, method, con_cls);
    struct request *r = &ar->base;
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        return r->status ? MHD_YES : http_take_body(r, upload_data, n);
    }
    if (r->status)
        return MHD_YES; /* already queued in begin() */
    if (r->body_discarded)
        http_reply_error(r, 413, "body exceeds the limit of %lld bytes for %s", r->body_max,
                         ar->route->name);
    else
        ar->route->handler(r);
    return queue_reply(ar);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct admin_request *ar = *con_cls;
    (void)cls;
    (void)conn;
    if (!ar)
        return;
    *con_cls = NULL;
    struct request *r = &ar->base;
    int status = r->status ? r->status : 499;
    int64_t ns = now_ns() - r->start_ns;
    metrics_count_request(r->app->metrics, "", ar->route ? ar->route->name : "admin_none", status);
    /* path without query; no header value is ever logged here */
    log_info("admin request id=%llu method=%s path=%s status=%d latency_ms=%.3f%s%s",
             (unsigned long long)r->id, r->method, r->path, status, (double)ns / 1e6,
             ar->unauthorized ? " auth=refused" : "",
             toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " aborted=1");
    if (r->state_free)
        r->state_free(r->state);
    if (r->mv)
        registry_release(r->app->reg, r->mv);
    free(r->body);
    free(r->reply);
    free(ar);
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
    char *q = strchr(msg, '?'); /* a URL in a library message: never log its query */
    if (q)
        *q = '\0';
    log_warn("admin http_library message=\"%s\"", msg);
}

struct admin_server *admin_start(struct app *app, struct jobs *jobs,
                                 const struct admin_token *token, struct cnn_err *err)
{
    const struct config *cfg = app->cfg;
    struct admin_server *s = calloc(1, sizeof *s);
    if (!s) {
        cnn_err_set(err, CNN_ENOMEM, "out of memory");
        return NULL;
    }
    s->app = app;
    s->jobs = jobs;
    s->token = token;
    atomic_init(&s->next_id, 0);
    struct sockaddr_storage ss;
    const struct sockaddr *addr = (const struct sockaddr *)&ss;
    unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    if (http_listen_address(cfg->admin_listen, cfg->admin_port, &ss, &flags) != 0) {
        free(s);
        cnn_err_set(err, CNN_EINVAL, "admin_listen %s is not numeric", cfg->admin_listen);
        return NULL;
    }
    s->d = MHD_start_daemon(flags, (uint16_t)cfg->admin_port, NULL, NULL, on_access, s,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_SOCK_ADDR, addr,
                            MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)ADMIN_THREADS,
                            MHD_OPTION_CONNECTION_LIMIT, 64u, MHD_OPTION_CONNECTION_TIMEOUT,
                            (unsigned int)cfg->connection_timeout_s, MHD_OPTION_NOTIFY_COMPLETED,
                            on_completed, NULL, MHD_OPTION_END);
    if (!s->d) {
        free(s);
        cnn_err_set(err, CNN_EIO, "cannot listen on %s admin port %d (in use, or not permitted)",
                    cfg->admin_listen, cfg->admin_port);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : cfg->admin_port;
    return s;
}

int admin_port(const struct admin_server *s)
{
    return s->port;
}

void admin_stop(struct admin_server *s)
{
    if (!s)
        return;
    MHD_stop_daemon(s->d);
    free(s);
}
