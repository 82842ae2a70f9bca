/* `cnn bench --profile` (bench_profile.h): per-op medians over the timed calls, printed
 * beside what the plan says of each op (model_ops.h). */
#include "bench_profile.h"

#include "bench_stats.h"
#include "json_out.h"
#include "layer.h"
#include "model_ops.h"

#include <stdlib.h>
#include <string.h>

struct bench_profile {
    const struct cnn_model *m;
    int n_ops;
    size_t calls, cap;
    double *slot; /* n_ops: the session writes the current call here */
    double *ms;   /* calls x n_ops */
};

struct bench_profile *bench_profile_create(const struct cnn_model *m)
{
    struct bench_profile *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->m = m;
    p->n_ops = cnn_model_op_count(m);
    p->cap = 64;
    p->slot = calloc((size_t)p->n_ops + 1, sizeof(double));
    p->ms = malloc(p->cap * ((size_t)p->n_ops + 1) * sizeof(double));
    if (!p->slot || !p->ms) {
        bench_profile_destroy(p);
        return NULL;
    }
    return p;
}

void bench_profile_destroy(struct bench_profile *p)
{
    if (!p)
        return;
    free(p->slot);
    free(p->ms);
    free(p);
}

double *bench_profile_slot(struct bench_profile *p)
{
    return p->slot;
}

int bench_profile_record(struct bench_profile *p)
{
    if (p->calls == p->cap) {
        double *nm = realloc(p->ms, 2 * p->cap * ((size_t)p->n_ops + 1) * sizeof(double));
        if (!nm)
            return -1;
        p->ms = nm;
        p->cap *= 2;
    }
    memcpy(p->ms + p->calls * (size_t)p->n_ops, p->slot, (size_t)p->n_ops * sizeof(double));
    p->calls++;
    return 0;
}

/* Median of op k over the recorded calls, and its minimum in *min (tmp: calls doubles). */
static double op_median(const struct bench_profile *p, int k, double *tmp, double *min)
{
    for (size_t i = 0; i < p->calls; i++)
        tmp[i] = p->ms[i * (size_t)p->n_ops + (size_t)k];
    bench_sort(tmp, p->calls);
    *min = tmp[0];
    return bench_percentile(tmp, p->calls, 50);
}

/* The names of the layers op k covers, '+'-separated (JSON: a list of strings). */
static void put_layers(const struct cnn_model *m, int k, int json, FILE *f)
{
    int layers[64];
    int n = cnn_model_op_layers(m, k, layers, 64);
    for (int j = 0; j < n && j < 64; j++) {
        struct cnn_layer_info li;
        cnn_model_layer_info(m, layers[j], &li);
        if (j)
            fputc(json ? ',' : '+', f);
        if (json)
            json_put_string(f, li.name);
        else
            fputs(li.name, f);
    }
}

struct op_time {
    double ms, min_ms; /* median and minimum per call */
};

static void put_row(const struct bench_profile *p, int k, struct op_time t, double total,
                    long long batch, int json, FILE *f)
{
    struct cnn_op_info oi;
    cnn_model_op_info(p->m, k, &oi);
    const double mflop = oi.flops * (double)batch / 1e6;
    const double gflops = t.ms > 0 ? mflop / t.ms : 0;
    const double share = total > 0 ? 100.0 * t.ms / total : 0;
    char shape[48];
    snprintf(shape, sizeof shape, "%dx%dx%d", oi.c, oi.h, oi.w);
    if (json) {
        fprintf(f, "{\"op\":%d,\"kind\":\"%s\",\"variant\":\"%s\",\"out\":\"%s\",\"layers\":[", k,
                cnn_layer_kind_name(oi.kind), oi.variant, shape);
        put_layers(p->m, k, 1, f);
        fprintf(f, "],\"mflop\":%.3f,\"ms\":%.4f,\"min_ms\":%.4f,\"gflops\":%.3f,\"share\":%.2f}\n",
                mflop, t.ms, t.min_ms, gflops, share);
        return;
    }
    fprintf(f, "%4d  %-10s %-16s %-12s %10.3f %9.4f %9.4f %8.2f %6.2f  ", k,
            cnn_layer_kind_name(oi.kind), oi.variant, shape, mflop, t.ms, t.min_ms, gflops, share);
    put_layers(p->m, k, 0, f);
    fputc('\n', f);
}

void bench_profile_print(const struct bench_profile *p, long long batch, int json, FILE *f)
{
    if (p->calls == 0)
        return;
    struct op_time *t = malloc(((size_t)p->n_ops + 1) * sizeof *t);
    double *tmp = malloc(p->calls * sizeof(double));
    if (!t || !tmp) {
        free(t);
        free(tmp);
        return;
    }
    double total = 0, total_min = 0, flops = 0;
    for (int k = 0; k < p->n_ops; k++) {
        t[k].ms = op_median(p, k, tmp, &t[k].min_ms);
        total += t[k].ms;
        total_min += t[k].min_ms;
        struct cnn_op_info oi;
        cnn_model_op_info(p->m, k, &oi);
        flops += oi.flops * (double)batch;
    }
    if (!json)
        fprintf(f, "%4s  %-10s %-16s %-12s %10s %9s %9s %8s %6s  %s\n", "op", "kind", "variant",
                "output", "MFLOP", "ms", "min ms", "GFLOP/s", "share%", "layers");
    for (int k = 0; k < p->n_ops; k++)
        put_row(p, k, t[k], total, batch, json, f);
    if (!json)
        fprintf(f,
                "total: %d ops, %.3f MFLOP, %.4f ms (sum of op medians over %zu calls; of minima "
                "%.4f ms), %.2f GFLOP/s\n",
                p->n_ops, flops / 1e6, total, p->calls, total_min,
                total > 0 ? flops / 1e6 / total : 0);
    free(t);
    free(tmp);
}
