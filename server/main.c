/* cnnd: the daemon's start and stop order.  Config (file, flags, environment; bad config ->
 * exit 2), logging, the admin token, the model registry (every model loaded before
 * listening), the HTTP server, the fine-tune job threads and the admin listener (neither
 * with admin_listen = off, and no token is read then), then main
 * waits for signals with sigwait: SIGHUP re-reads the repository (as does
 * the poll timer); SIGTERM/SIGINT drain -- readiness 503, no new connections, requests in
 * flight finish within drain_timeout_ms -- and exit 0.  A second SIGTERM/SIGINT during the
 * drain, or the drain time running out, exits 1 at once.  The only exit() calls are here. */
#include "admin.h"
#include "config.h"
#include "gemm.h"
#include "http.h"
#include "jobs.h"
#include "listener.h"
#include "log.h"
#include "memtrim.h"
#include "metrics.h"
#include "publish.h"
#include "explain_pool.h"
#include "registry.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static pthread_t main_thread;

/* Threads started before main (OpenBLAS's pool) do not block the signals main waits for;
 * if one of them receives a signal, hand it to main, where it is blocked and so waits
 * for sigwait.  (pthread_kill and pthread_self are async-signal-safe.) */
static void forward_to_main(int sig)
{
    if (!pthread_equal(pthread_self(), main_thread))
        pthread_kill(main_thread, sig);
}

static char env_warnings[512];
static void note_env(const char *name)
{
    size_t n = strlen(env_warnings);
    snprintf(env_warnings + n, sizeof env_warnings - n, "%s%s", n ? "," : "", name);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void scan(struct registry *reg, const char *why)
{
    struct cnn_err err = {0};
    int rc = registry_scan(reg, &err);
    if (rc < 0)
        log_error("repository scan failed reason=%s error=\"%s\"", why, err.msg);
    else if (rc > 0)
        log_warn("repository scan reason=%s failed_versions=%d", why, rc);
    else
        log_debug("repository scan reason=%s ok", why);
}

/* Waits for the requests in flight; 0 when all finished, 1 on timeout or a second signal. */
static int drain(struct app *app, struct listener *http, const sigset_t *set, int sig)
{
    atomic_store(&app->draining, 1);
    listener_quiesce(http);
    log_always("draining signal=%s in_flight=%d timeout_ms=%d", strsignal(sig),
               atomic_load(&app->in_flight), app->cfg->drain_timeout_ms);
    int64_t deadline = mono_ms() + app->cfg->drain_timeout_ms;
    for (;;) {
        int left = atomic_load(&app->in_flight);
        if (left == 0)
            return 0;
        if (mono_ms() >= deadline) {
            log_error("drain timed out in_flight=%d: exiting", left);
            return 1;
        }
        struct timespec tick = {0, 10 * 1000 * 1000};
        int got = sigtimedwait(set, NULL, &tick);
        if (got == SIGTERM || got == SIGINT) {
            log_warn("second signal=%s during drain in_flight=%d: exiting at once", strsignal(got),
                     left);
            return 1;
        }
    }
}

/* Config from file, environment and flags, then logging.  -1 to go on, else the exit code
 * (0 after --help / --version, 2 on a bad config). */
static int setup_config(struct config *cfg, int argc, char **argv)
{
    char errbuf[CONFIG_ERR_MAX];
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    switch (config_load(cfg, argc, argv, environ, cores > 0 ? (int)cores : 1, note_env, errbuf,
                        sizeof errbuf)) {
    case CONFIG_HELP:
        config_print_help(stdout);
        return 0;
    case CONFIG_VERSION:
        printf("cnnd %s\n", config_version());
        return 0;
    case CONFIG_ERROR:
        fprintf(stderr, "cnnd: %s\n", errbuf);
        return 2;
    default:
        break;
    }
    log_setup((enum log_level)cfg->log_level, cfg->log_format == CONFIG_LOG_JSON);
    if (env_warnings[0])
        log_warn("config unknown_environment_variables=%s", env_warnings);
    char desc[3000];
    config_describe(cfg, desc, sizeof desc);
    log_always("starting version=%s blas=%s cores=%ld %s", config_version(), cnn_gemm_backend(),
               cores, desc);
    return -1;
}

/* Blocks the signals main waits for, before any thread of ours exists, so every thread
 * inherits the mask; *set gets them. */
static void block_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, set, NULL);
    struct sigaction sa = {0};
    sa.sa_handler = forward_to_main;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* The admin token first: a bad token file stops us before anything is loaded.  A token
 * from the environment is wiped from this process's environment block afterwards. */
static int load_token(struct admin_token *token, const struct config *cfg)
{
    char *env_token = getenv("CNND_ADMIN_TOKEN");
    int token_created = 0;
    struct cnn_err terr = {0};
    if (admin_token_load(token, env_token, cfg->admin_token_file, &token_created, &terr) != 0) {
        log_error("startup failed error=\"%s\"", terr.msg);
        return -1;
    }
    if (env_token) {
        explicit_bzero(env_token, strlen(env_token));
        log_always("admin token source=environment variable=CNND_ADMIN_TOKEN");
    } else {
        log_always("admin token source=file file=%s%s", cfg->admin_token_file,
                   token_created ? " created=1 (a new random token; read it from that file)" : "");
    }
    return 0;
}

/* Metrics and the registry with every model of the repository loaded; *failed gets the
 * versions that failed to load.  -1 (logged, nothing left allocated) on failure. */
static int start_registry(struct app *app, int *failed)
{
    const struct config *cfg = app->cfg;
    int stale = publish_cleanup(cfg->model_repository);
    if (stale > 0)
        log_warn("repository removed_unfinished_publish_folders=%d", stale);
    app->metrics = metrics_create();
    struct registry_config rcfg = {
        .repository = cfg->model_repository,
        .batching = {.max_batch_size = cfg->max_batch_size,
                     .max_queue_delay_us = cfg->max_queue_delay_us,
                     .max_queue_size = cfg->max_queue_size,
                     .instances = cfg->instances,
                     .blas_threads = cfg->blas_threads,
                     .split = cfg->split == 0,
                     .split_min_flops = cfg->split_min_mflop * 1e6,
                     .on_cores = metrics_on_cores,
                     .on_batch = metrics_on_batch,
                     .on_batch_arg = app->metrics,
                     .incoming = &app->incoming},
        .max_versions = cfg->max_versions,
    };
    struct cnn_err err = {0};
    if (app->metrics)
        app->reg = registry_create(&rcfg, &err);
    if (!app->reg) {
        log_error("startup failed error=\"%s\"", app->metrics ? err.msg : "out of memory");
        return -1;
    }
    *failed = registry_scan(app->reg, &err);
    if (*failed < 0) {
        log_error("repository unreadable path=%s error=\"%s\"", cfg->model_repository, err.msg);
        registry_destroy(app->reg);
        return -1;
    }
    if (!registry_ready(app->reg))
        log_warn("no model loaded from repository=%s: not ready until one is published "
                 "(SIGHUP or poll_interval_s)",
                 cfg->model_repository);
    return 0;
}

/* The inference listener, the job threads and the admin listener, each logged.  -1 (logged,
 * those started are stopped) on failure. */
static int start_serving(struct app *app, const struct admin_token *token, int failed,
                         struct listener **http, struct jobs **jobs, struct listener **admin)
{
    const struct config *cfg = app->cfg;
    struct cnn_err err = {0};
    *http = http_start(app, &err);
    if (!*http) {
        log_error("startup failed error=\"%s\"", err.msg);
        return -1;
    }
    log_always("listening port=%d address=%s threads=%d failed_versions=%d",
               listener_port(*http), cfg->listen, cfg->threads, failed);
    if (!config_admin_enabled(cfg)) {
        log_always("admin listener off (admin_listen=off): no admin API, no fine-tune jobs");
        return 0;
    }
    struct jobs_config jcfg = {.repository = cfg->model_repository,
                               .max_jobs = cfg->max_jobs,
                               .queue_size = cfg->job_queue_size,
                               .nice = cfg->train_nice,
                               .threads_per_job = config_threads_per_job(cfg),
                               .reg = app->reg,
                               .metrics = app->metrics,
                               .version = config_version(),
                               .data_root = cfg->data_root};
    *jobs = jobs_create(&jcfg, &err);
    *admin = *jobs ? admin_start(app, *jobs, token, &err) : NULL;
    if (!*admin) {
        log_error("startup failed error=\"%s\"", err.msg);
        jobs_destroy(*jobs);
        listener_stop(*http);
        return -1;
    }
    log_always("admin listening port=%d address=%s data_root=%s max_jobs=%d job_queue_size=%d "
               "train_threads=%d threads_per_job=%d train_nice=%d",
               listener_port(*admin), cfg->admin_listen, cfg->data_root, cfg->max_jobs,
               cfg->job_queue_size, cfg->train_threads, config_threads_per_job(cfg),
               cfg->train_nice);
    return 0;
}

/* Until SIGTERM/SIGINT (returned), one-second ticks: SIGHUP and the poll timer rescan the
 * repository, and freed model memory is given back to the system (glibc keeps it
 * otherwise, and RSS would ratchet up with every swapped version). */
static int wait_for_stop(struct app *app, const sigset_t *set)
{
    int sig = 0, freed = 0;
    int poll_s = app->cfg->poll_interval_s;
    int64_t next_poll = mono_ms() + (int64_t)poll_s * 1000;
    while (sig != SIGTERM && sig != SIGINT) {
        struct timespec tick = {1, 0};
        sig = sigtimedwait(set, NULL, &tick);
        if (sig == SIGHUP)
            scan(app->reg, "sighup");
        if (poll_s > 0 && mono_ms() >= next_poll) {
            scan(app->reg, "poll");
            next_poll = mono_ms() + (int64_t)poll_s * 1000;
        }
        if (registry_freed_count(app->reg) != freed) {
            freed = registry_freed_count(app->reg);
            memtrim_all();
        }
    }
    return sig;
}

int main(int argc, char **argv)
{
    cnn_gemm_reexec_if_generic(argv);
    main_thread = pthread_self();
    memtrim_setup(); /* before any thread of ours allocates */

    static struct config cfg;
    int rc = setup_config(&cfg, argc, argv);
    if (rc >= 0)
        return rc;
    sigset_t set;
    block_signals(&set);
    static struct admin_token token;
    if (config_admin_enabled(&cfg) && load_token(&token, &cfg) != 0)
        return 1;

    struct app app = {.cfg = &cfg};
    atomic_init(&app.draining, 0);
    atomic_init(&app.in_flight, 0);
    atomic_init(&app.incoming, 0);
    int failed = 0;
    if (start_registry(&app, &failed) != 0)
        return 1;
    struct listener *http = NULL, *admin = NULL;
    struct jobs *jobs = NULL;
    struct cnn_err xerr = {0};
    app.explain = explain_pool_create(cfg.explain_threads, cfg.explain_max_concurrent, &xerr);
    if (!app.explain || start_serving(&app, &token, failed, &http, &jobs, &admin) != 0) {
        if (!app.explain)
            log_error("startup failed error=\"%s\"", xerr.msg);
        explain_pool_destroy(app.explain);
        registry_destroy(app.reg);
        return 1;
    }

    int sig = wait_for_stop(&app, &set);
    if (drain(&app, http, &set, sig) != 0)
        _exit(1); /* requests still in flight hold suspended connections: no orderly stop */
    listener_stop(admin);
    jobs_destroy(jobs); /* cancels running jobs at their next step; they use the registry */
    listener_stop(http);
    explain_pool_destroy(app.explain); /* idle: the drain waited for every explanation */
    registry_destroy(app.reg);
    metrics_destroy(app.metrics);
    log_always("stopped");
    return 0;
}
