/* `cnn bench MODEL --batch N --threads T ...`: times single forward passes of one session
 * on a fixed pseudo-random input after warm-up calls, until at least --runs calls and
 * --min-time seconds, and reports latency percentiles, images/s, GFLOP/s and CPU use, as
 * one human line or one JSON line in the peers' format (/work/shared/peers/README.md). */
#include "bench_profile.h"
#include "bench_stats.h"
#include "gemm.h"
#include "json_out.h"
#include "opts.h"
#include "session.h"
#include "split_forward.h"
#include "tool.h"
#include "workers.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char USAGE[] =
    "usage: cnn bench MODEL [--batch N] [--threads T] [--mode split|team|blas] [--warmup W]\n"
    "                 [--runs R] [--min-time S] [--json] [--round R] [--name NAME]\n"
    "                 [--profile | --profile-cpu]\n"
    "Times forward passes of MODEL (a model file, or arch:NAME with random weights from\n"
    "seed 1) on a fixed pseudo-random input: W warm-up calls, then single timed calls of the\n"
    "whole batch until at least R calls and S seconds.  Reports the median, p10, p90 and min\n"
    "latency per batch, images/s (N * 1000 / median ms), GFLOP/s and CPU use.\n"
    "With T threads, mode split (the default when N >= T > 1) divides each batch over\n"
    "min(T, N) threads, each with its own session and single-threaded BLAS, as cnnd's\n"
    "instances use the cores; mode team runs one session whose layers are split over a\n"
    "team of T threads, each with single-threaded BLAS (cnnd's short-queue mode); mode blas\n"
    "runs one session with T BLAS threads.\n"
    "options:\n"
    "  --batch N      images per forward call, 1..4096 (default 1)\n"
    "  --threads T    threads, 1..256 (default 1)\n"
    "  --mode M       split, team or blas (default: split when N >= T > 1, team when T > N\n"
    "                 and the batch has >= 4 MFLOP as in cnnd, else blas)\n"
    "  --warmup W     untimed calls first, 0..100000 (default 3)\n"
    "  --runs R       at least R timed calls, 1..10000000 (default 7)\n"
    "  --min-time S   at least S seconds of timed calls, 0..86400 (default 1.0)\n"
    "  --json         one JSON line in the peer benchmark format (peer \"product\")\n"
    "  --round R      the \"round\" field of the JSON line, 0..1000000000 (default 1)\n"
    "  --name NAME    the \"model\" field (default: the architecture name)\n"
    "  --profile      also time each op of the compiled plan and print, per op, the layers\n"
    "                 it covers, kind, kernel variant, output, MFLOP, median ms per call,\n"
    "                 GFLOP/s and share (with --json one JSON line per op); modes blas and\n"
    "                 team only\n"
    "  --profile-cpu  --profile timing each op's CPU time instead of wall time (one thread\n"
    "                 only): on a loaded machine, preempted time is left out\n"
    "example: cnn bench arch:resnet18 --batch 8 --threads 2 --json\n";

enum {
    O_BATCH,
    O_THREADS,
    O_WARMUP,
    O_RUNS,
    O_MIN_TIME,
    O_JSON,
    O_ROUND,
    O_NAME,
    O_MODE,
    O_PROFILE,
    O_PROFILE_CPU,
    O_COUNT
};
static const struct opt_spec SPEC[O_COUNT] = {
    [O_BATCH] = {"--batch", 1}, [O_THREADS] = {"--threads", 1},   [O_WARMUP] = {"--warmup", 1},
    [O_RUNS] = {"--runs", 1},   [O_MIN_TIME] = {"--min-time", 1}, [O_JSON] = {"--json", 0},
    [O_ROUND] = {"--round", 1}, [O_NAME] = {"--name", 1},         [O_MODE] = {"--mode", 1},
    [O_PROFILE] = {"--profile", 0},
    [O_PROFILE_CPU] = {"--profile-cpu", 0}};

struct bench_cfg {
    long long batch, threads, warmup, runs, round;
    double min_time_s;
    int json;
    int split; /* workers > 1, each a session with 1 BLAS thread */
    int team;  /* one session, its layers split over a team of `threads` */
    int mode_given;
    int profile, profile_cpu;
    const char *name;
};

/* What one timed call runs: a single session, or the split runner. */
struct runner {
    const struct cnn_model *m;
    struct cnn_session *s;
    struct split_runner *split;
    struct cnn_workers *team;
    struct bench_profile *prof; /* --profile: records each timed call, or NULL */
};

static int run_once(const struct runner *u, int n, struct cnn_err *err)
{
    const float *out;
    if (u->split)
        return split_forward(u->split, n, &out, err);
    return cnn_session_forward_team(u->s, u->m, u->team, cnn_session_input(u->s), n, &out, err);
}

struct bench_result {
    size_t iters;
    double median_ms, p10_ms, p90_ms, min_ms;
    double own_cpu, foreign_cpu, steal;
};

static int parse(int argc, char **argv, struct bench_cfg *c, const char **model)
{
    const char *v[O_COUNT];
    int n_pos;
    int rc = opts_parse("bench", argc, argv, SPEC, O_COUNT, v, &n_pos);
    if (rc)
        return rc;
    if (n_pos != 1)
        return tool_usage("bench", "expected one MODEL, got %d arguments", n_pos);
    *model = argv[1];
    *c = (struct bench_cfg){.batch = 1,
                            .threads = 1,
                            .warmup = 3,
                            .runs = 7,
                            .round = 1,
                            .min_time_s = 1.0,
                            .json = v[O_JSON] != NULL,
                            .profile = v[O_PROFILE] != NULL || v[O_PROFILE_CPU] != NULL,
                            .profile_cpu = v[O_PROFILE_CPU] != NULL,
                            .name = v[O_NAME]};
    if ((v[O_BATCH] && opts_int("bench", "--batch", v[O_BATCH], 1, 4096, &c->batch)) ||
        (v[O_THREADS] && opts_int("bench", "--threads", v[O_THREADS], 1, 256, &c->threads)) ||
        (v[O_WARMUP] && opts_int("bench", "--warmup", v[O_WARMUP], 0, 100000, &c->warmup)) ||
        (v[O_RUNS] && opts_int("bench", "--runs", v[O_RUNS], 1, 10000000, &c->runs)) ||
        (v[O_ROUND] && opts_int("bench", "--round", v[O_ROUND], 0, 1000000000, &c->round)) ||
        (v[O_MIN_TIME] &&
         opts_double("bench", "--min-time", v[O_MIN_TIME], 0, 86400, &c->min_time_s)))
        return OPTS_ERROR;
    if (c->name && !c->name[0])
        return tool_usage("bench", "--name: empty name");
    c->split = c->threads > 1 && c->batch >= c->threads;
    c->team = c->threads > c->batch; /* what cnnd runs for a batch that finds the queue short */
    if (v[O_MODE]) {
        c->team = 0;
        c->mode_given = 1;
        if (strcmp(v[O_MODE], "split") == 0)
            c->split = c->threads > 1;
        else if (strcmp(v[O_MODE], "blas") == 0)
            c->split = 0;
        else if (strcmp(v[O_MODE], "team") == 0)
            c->split = 0, c->team = c->threads > 1;
        else
            return tool_usage("bench", "--mode: '%s' is not split, team or blas", v[O_MODE]);
    }
    if (c->profile && c->split)
        return tool_usage("bench", "--profile: times one session's ops: use --mode blas or team");
    if (c->profile_cpu && c->threads != 1)
        return tool_usage("bench", "--profile-cpu: one thread only (other threads' CPU time "
                                   "would be missed)");
    return OPTS_OK;
}

/* Deterministic input in [-1, 1): a 32-bit LCG (Numerical Recipes constants). */
static void fill_input(float *x, size_t n)
{
    uint32_t s = 12345u;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)(s >> 8) * (2.0f / 16777216.0f) - 1.0f;
    }
}

/* Runs the warm-up and the timed calls and fills r with their statistics. */
static int time_calls(const struct runner *u, const struct bench_cfg *c, struct bench_result *r,
                      const char *spec)
{
    struct cnn_err err = {0};
    int n = (int)c->batch;
    for (long long i = 0; i < c->warmup; i++)
        if (run_once(u, n, &err) != 0)
            return tool_fail(spec, "forward: %s", err.msg);
    size_t cap = 1024, iters = 0;
    double *lat = malloc(cap * sizeof *lat);
    if (!lat)
        return tool_fail(spec, "out of memory");
    struct bench_clock c0, c1;
    bench_clock_read(&c0);
    for (;;) {
        double t0 = bench_now_s();
        if (run_once(u, n, &err) != 0) {
            free(lat);
            return tool_fail(spec, "forward: %s", err.msg);
        }
        double t1 = bench_now_s();
        if (u->prof && bench_profile_record(u->prof) != 0) {
            free(lat);
            return tool_fail(spec, "out of memory");
        }
        if (iters == cap) {
            double *nl = realloc(lat, 2 * cap * sizeof *lat);
            if (!nl) {
                free(lat);
                return tool_fail(spec, "out of memory");
            }
            lat = nl;
            cap *= 2;
        }
        lat[iters++] = (t1 - t0) * 1e3;
        if ((long long)iters >= c->runs && t1 - c0.wall_s >= c->min_time_s)
            break;
    }
    bench_clock_read(&c1);
    double wall = c1.wall_s - c0.wall_s;
    bench_sort(lat, iters);
    r->iters = iters;
    r->median_ms = bench_percentile(lat, iters, 50);
    r->p10_ms = bench_percentile(lat, iters, 10);
    r->p90_ms = bench_percentile(lat, iters, 90);
    r->min_ms = lat[0];
    r->own_cpu = wall > 0 ? (c1.own_s - c0.own_s) / wall : 0;
    double foreign = wall > 0 ? (c1.busy_s - c0.busy_s) / wall - r->own_cpu : 0;
    /* /proc/stat counts in clock ticks (10 ms): over short runs the quotient is noise, so
     * it is clamped to what the machine could give. */
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    double max_foreign = ncpu > 0 ? (double)ncpu : 1.0;
    r->foreign_cpu = foreign < 0 ? 0 : foreign > max_foreign ? max_foreign : foreign;
    r->steal = wall > 0 ? (c1.steal_s - c0.steal_s) / wall : 0;
    free(lat);
    return TOOL_OK;
}

static const char *mode_name(const struct bench_cfg *c)
{
    return c->split ? "split" : c->team ? "team" : "blas";
}

static void report(const struct bench_cfg *c, const char *name, const struct bench_result *r,
                   double flops)
{
    double ips = r->median_ms > 0 ? (double)c->batch * 1000.0 / r->median_ms : 0;
    double gflops = ips * flops / 1e9;
    if (!c->json) {
        printf("%s batch=%lld threads=%lld mode=%s iters=%zu: median %.4f ms, p10 %.4f ms, p90 %.4f ms, "
               "min %.4f ms, %.2f images/s, %.3f GFLOP/s, own_cpu %.2f, foreign_cpu %.2f, "
               "steal %.2f\n",
               name, c->batch, c->threads, mode_name(c), r->iters, r->median_ms, r->p10_ms, r->p90_ms, r->min_ms,
               ips, gflops, r->own_cpu, r->foreign_cpu, r->steal);
        return;
    }
    printf("{\"peer\":\"product\",\"model\":");
    json_put_string(stdout, name);
    printf(",\"batch\":%lld,\"threads\":%lld,\"mode\":\"%s\",\"round\":%lld,\"iters\":%zu",
           c->batch, c->threads, mode_name(c), c->round, r->iters);
    const char *keys[] = {"lat_ms_median", "lat_ms_p10", "lat_ms_p90",  "lat_ms_min", "ips",
                          "gflops",        "own_cpu",    "foreign_cpu", "steal"};
    double vals[] = {r->median_ms, r->p10_ms,  r->p90_ms,      r->min_ms, ips,
                     gflops,       r->own_cpu, r->foreign_cpu, r->steal};
    int decimals[] = {4, 4, 4, 4, 2, 3, 2, 2, 2};
    for (int i = 0; i < 9; i++) {
        printf(",\"%s\":", keys[i]);
        json_put_fixed(stdout, vals[i], decimals[i]);
    }
    printf("}\n");
}

int cmd_bench(int argc, char **argv)
{
    struct bench_cfg c;
    const char *spec = NULL;
    int rc = parse(argc, argv, &c, &spec);
    if (rc == OPTS_HELP) {
        fputs(USAGE, stdout);
        return TOOL_OK;
    }
    if (rc)
        return TOOL_USAGE;
    struct cnn_model *m;
    rc = tool_open_model(spec, TOOL_ARCH_RANDOM, &m);
    if (rc)
        return rc;
    char name[128];
    if (c.name)
        snprintf(name, sizeof name, "%s", c.name);
    else
        tool_model_name(spec, m, name, sizeof name);
    /* cnnd keeps a batch below batching.split_min_mflop on one core: so does the default */
    if (c.team && !c.mode_given && cnn_model_flops(m) * (double)c.batch < CNN_SPLIT_MIN_FLOPS)
        c.team = 0;
    struct cnn_err err = {0};
    struct runner u = {.m = m};
    const struct cnn_preproc *pp = cnn_model_preproc(m);
    const size_t in_floats = (size_t)c.batch * (size_t)pp->c * (size_t)pp->h * (size_t)pp->w;
    if (c.split) {
        int workers = c.threads < c.batch ? (int)c.threads : (int)c.batch;
        cnn_gemm_set_threads((int)c.threads / workers);
        u.split = split_create(m, (int)c.batch, workers, &err);
        if (u.split)
            fill_input(split_input(u.split), in_floats);
    } else if (c.team) {
        cnn_gemm_set_threads(1);
        u.team = cnn_workers_create((int)c.threads, &err);
        u.s = u.team ? cnn_session_create_parts(m, (int)c.batch, (int)c.threads, &err) : NULL;
        if (u.s)
            fill_input(cnn_session_input(u.s), in_floats);
    } else {
        cnn_gemm_set_threads((int)c.threads);
        u.s = cnn_session_create(m, (int)c.batch, &err);
        if (u.s)
            fill_input(cnn_session_input(u.s), in_floats);
    }
    if (!u.s && !u.split) {
        cnn_workers_destroy(u.team);
        cnn_model_destroy(m);
        return tool_fail(spec, "session for batch %lld: %s", c.batch, err.msg);
    }
    if (c.profile && (u.prof = bench_profile_create(m)) != NULL)
        cnn_session_profile(u.s, bench_profile_slot(u.prof), c.profile_cpu);
    struct bench_result r = {0};
    rc = c.profile && !u.prof ? tool_fail(spec, "out of memory") : time_calls(&u, &c, &r, spec);
    if (rc == TOOL_OK)
        report(&c, name, &r, cnn_model_flops(m));
    if (rc == TOOL_OK && u.prof)
        bench_profile_print(u.prof, c.batch, c.json, stdout);
    bench_profile_destroy(u.prof);
    cnn_session_destroy(u.s);
    split_destroy(u.split);
    cnn_workers_destroy(u.team);
    cnn_model_destroy(m);
    return rc;
}
