/* Fuzz target: the HTTP request handling of both listeners (server/listener.c, router.c,
 * handlers_*.c, admin, multipart, v2 bodies, image decoding, the batcher) with raw request
 * bytes and no network: LLVMFuzzerInitialize starts the real inference and admin listeners
 * in-process over a temp repository holding one tiny model ("fashion", fuzz_nets.h), and
 * each input is handed to libmicrohttpd over a socketpair (MHD_add_connection).  The daemon
 * handles come from a link-time wrapper of MHD_start_daemon (-Wl,--wrap), so listener.c is
 * used unchanged.  Input: byte 0 picks the port (even: inference, odd: admin, whose token is
 * "fuzz-admin-token-0123456789"), the rest is written as sent by a client.  The reply is
 * read until a whole response arrived (then the client half-closes) or 25 ms pass idle; a
 * connection still open 10 s after the half-close, or a 500 reply, aborts.  After an admin
 * input the model is activated again (no pin, not unloaded). */
#define _GNU_SOURCE /* memmem */
#include "fuzz.h"
#include "fuzz_nets.h"

#include "admin.h"
#include "config.h"
#include "http.h"
#include "jobs.h"
#include "listener.h"
#include "log.h"
#include "metrics.h"
#include "registry.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <ftw.h>
#include <time.h>
#include <unistd.h>

#define FUZZ_TOKEN "fuzz-admin-token-0123456789"

/* ---- capture the daemons listener.c starts (inference first, then admin) ------------- */

struct MHD_Daemon *__real_MHD_start_daemon(unsigned int flags, uint16_t port,
                                           MHD_AcceptPolicyCallback apc, void *apc_cls,
                                           MHD_AccessHandlerCallback dh, void *dh_cls, ...);
struct MHD_Daemon *__wrap_MHD_start_daemon(unsigned int flags, uint16_t port,
                                           MHD_AcceptPolicyCallback apc, void *apc_cls,
                                           MHD_AccessHandlerCallback dh, void *dh_cls, ...);
static struct MHD_Daemon *daemons[2];
static int n_daemons;

struct MHD_Daemon *__wrap_MHD_start_daemon(unsigned int flags, uint16_t port,
                                           MHD_AcceptPolicyCallback apc, void *apc_cls,
                                           MHD_AccessHandlerCallback dh, void *dh_cls, ...)
{
    va_list ap;
    va_start(ap, dh_cls);
    struct MHD_Daemon *d = MHD_start_daemon_va(flags, port, apc, apc_cls, dh, dh_cls, ap);
    va_end(ap);
    if (d && n_daemons < 2)
        daemons[n_daemons++] = d;
    return d;
}

/* ---- the server, once ------------------------------------------------------------------ */

static struct config cfg;
static struct app app;

static void die(const char *what, const char *msg)
{
    fprintf(stderr, "fuzz_http: %s: %s\n", what, msg);
    exit(1);
}

static void set(const char *name, const char *value)
{
    char errbuf[CONFIG_ERR_MAX];
    if (config_set(&cfg, name, value, "fuzz_http", errbuf, sizeof errbuf) != 0)
        die("config", errbuf);
}

static char tree[512];

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* At exit: the temp folder and what the admin inputs wrote in it (examples, pins). */
static void remove_tree(void)
{
    nftw(tree, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A temp folder with repo/fashion/1/model.cnn and an empty data root. */
static void make_tree(char *dir, size_t cap)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, cap, "%s/fuzz-http-XXXXXX", tmp ? tmp : "/tmp");
    if (!mkdtemp(dir))
        die("mkdtemp", strerror(errno));
    char path[600];
    static const char *const sub[] = {"repo", "repo/fashion", "repo/fashion/1", "data"};
    for (size_t i = 0; i < sizeof sub / sizeof sub[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, sub[i]);
        if (mkdir(path, 0700) != 0)
            die("mkdir", strerror(errno));
    }
    struct cnn_err err = {0};
    struct cnn_model *m = fuzz_net_gray(3, &err);
    snprintf(path, sizeof path, "%s/repo/fashion/1/model.cnn", dir);
    if (!m || cnn_model_compile(m, &err) != 0 || cnn_model_save(m, path, &err) != 0)
        die("model", err.msg);
    cnn_model_destroy(m);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char path[600];
    make_tree(tree, sizeof tree);
    atexit(remove_tree);
    config_defaults(&cfg);
    set("listen", "127.0.0.1");
    set("port", "0");
    set("admin_listen", "127.0.0.1");
    set("admin_port", "0");
    set("threads", "2");
    set("instances", "1");
    set("max_queue_delay_us", "0");
    set("classify_max_body", "256k");
    set("infer_max_body", "256k");
    set("max_image_pixels", "1M");
    set("train_threads", "1");
    snprintf(path, sizeof path, "%s/repo", tree);
    set("model_repository", path);
    snprintf(path, sizeof path, "%s/data", tree);
    set("data_root", path);
    char errbuf[CONFIG_ERR_MAX];
    if (config_finish(&cfg, 2, errbuf, sizeof errbuf) != 0)
        die("config", errbuf);
    log_setup(getenv("FUZZ_HTTP_LOG") ? LOG_DEBUG : LOG_ERROR, 0);

    app.cfg = &cfg;
    struct cnn_err err = {0};
    app.metrics = metrics_create();
    struct registry_config rcfg = {
        .repository = cfg.model_repository,
        .batching = {.max_batch_size = cfg.max_batch_size, .max_queue_delay_us = 0,
                     .max_queue_size = cfg.max_queue_size, .instances = 1, .blas_threads = 1,
                     .on_batch = metrics_on_batch, .on_batch_arg = app.metrics,
                     .incoming = &app.incoming},
        .max_versions = cfg.max_versions};
    if (!app.metrics || !(app.reg = registry_create(&rcfg, &err)) ||
        registry_scan(app.reg, &err) != 0 || !registry_ready(app.reg))
        die("registry", err.msg[0] ? err.msg : "no model loaded");
    static struct admin_token token;
    if (admin_token_set(&token, FUZZ_TOKEN, strlen(FUZZ_TOKEN), &err) != 0)
        die("token", err.msg);
    struct jobs_config jcfg = {.repository = cfg.model_repository, .max_jobs = 1,
                               .queue_size = 2, .nice = 0, .threads_per_job = 1,
                               .reg = app.reg, .metrics = app.metrics, .version = "fuzz"};
    struct jobs *jobs = jobs_create(&jcfg, &err);
    if (!jobs || !http_start(&app, &err) || !admin_start(&app, jobs, &token, &err))
        die("start", err.msg);
    if (n_daemons != 2)
        die("start", "the MHD_start_daemon wrapper did not see both listeners");
    return 0; /* the listeners run until the process exits */
}

/* ---- one input ------------------------------------------------------------------------- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* 1 when buf holds a whole response (headers and Content-Length bytes of body). */
static int response_complete(const char *buf, size_t n)
{
    const char *end = memmem(buf, n, "\r\n\r\n", 4);
    if (!end)
        return 0;
    size_t head = (size_t)(end - buf) + 4;
    const char *cl = memmem(buf, head, "Content-Length:", 15);
    if (!cl)
        cl = memmem(buf, head, "content-length:", 15);
    size_t body = cl ? strtoul(cl + 15, NULL, 10) : 0;
    return n >= head + body;
}

/* Every status line in the replies read so far: a 500 is a bug. */
static void check_statuses(const char *buf, size_t n)
{
    for (const char *p = buf; (p = memmem(p, n - (size_t)(p - buf), "HTTP/1.", 7)) != NULL; p++) {
        if ((size_t)(p - buf) + 12 <= n && memcmp(p + 8, " 500", 4) == 0 &&
            !getenv("FUZZ_HTTP_ALLOW_500")) {
            fprintf(stderr, "fuzz_http: a 500 reply:\n%.*s\n", (int)(n < 2000 ? n : 2000), buf);
            abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    struct MHD_Daemon *d = daemons[data[0] & 1];
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
        return 0;
    struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons(40000)};
    peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (MHD_add_connection(d, sv[1], (const struct sockaddr *)&peer, sizeof peer) != MHD_YES) {
        close(sv[0]);
        close(sv[1]);
        return 0;
    }
    static char buf[1 << 20];
    size_t got = 0, off = 1;
    int half_closed = 0;
    int64_t last = now_ms(), closed_at = 0;
    for (;;) {
        struct pollfd p = {.fd = sv[0], .events = POLLIN | (off < size ? POLLOUT : 0)};
        int rc = poll(&p, 1, 5);
        if (rc > 0 && (p.revents & POLLOUT) && off < size) {
            ssize_t w = write(sv[0], data + off, size - off);
            if (w > 0) {
                off += (size_t)w;
                last = now_ms();
            } else if (w < 0 && errno != EAGAIN) {
                off = size; /* the server closed: read what it said */
            }
        }
        if (rc > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR))) {
            ssize_t r = read(sv[0], buf + got, sizeof buf - got - 1);
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
                break; /* the server closed the connection */
            if (r > 0) {
                got += (size_t)r;
                last = now_ms();
                if (got == sizeof buf - 1)
                    got = 0; /* keep reading; the statuses were long enough ago */
            }
        }
        int64_t t = now_ms();
        if (!half_closed && off >= size &&
            (response_complete(buf, got) || t - last >= 25)) {
            shutdown(sv[0], SHUT_WR);
            half_closed = 1;
            closed_at = t;
        }
        if (half_closed && t - closed_at > 10000) {
            fprintf(stderr, "fuzz_http: the connection stayed open 10 s after the client "
                            "half-closed it\n");
            abort();
        }
    }
    check_statuses(buf, got);
    if (getenv("FUZZ_HTTP_ECHO")) /* the replies, for a person checking the seeds */
        fprintf(stderr, "---- %zu bytes in, reply:\n%.*s\n", size, (int)(got < 600 ? got : 600), buf);
    close(sv[0]);
    if (data[0] & 1) { /* undo an admin unload or pin, so every input meets the same server */
        struct cnn_err err = {0};
        registry_activate(app.reg, "fashion", 0, &err);
    }
    return 0;
}
