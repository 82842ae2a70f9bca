/* Health and server endpoints: GET /v2/health/live, /v2/health/ready, /v2 (server metadata)
 * and /metrics (Prometheus text with registry gauges collected here). */
#include "config.h"
#include "handlers.h"
#include "http.h"
#include "metrics.h"

#include <stdlib.h>
#include <string.h>

/* Live while the process answers at all: 200 with an empty body (KServe v2). */
void handle_live(struct request *r)
{
    http_reply(r, 200, NULL, NULL, 0);
}

/* Ready when at least one model is live and no drain has begun. */
void handle_ready(struct request *r)
{
    if (atomic_load(&r->app->draining))
        http_reply_error(r, 503, "server is shutting down");
    else if (!registry_ready(r->app->reg))
        http_reply_error(r, 503, "no model is loaded yet");
    else
        http_reply(r, 200, NULL, NULL, 0);
}

void handle_server_metadata(struct request *r)
{
    json_t *j = json_pack("{s:s, s:s, s:[s, s]}", "name", "cnnd", "version", config_version(),
                          "extensions", "classification", "binary_tensor_data");
    http_reply_json(r, 200, j);
}

struct gauges {
    struct metrics_version *v;
    char (*names)[64];
    int n, cap, failed;
};

static void collect(const struct model_version *mv, int is_live, void *arg)
{
    struct gauges *g = arg;
    if (g->failed)
        return;
    if (g->n == g->cap) {
        int cap = g->cap ? 2 * g->cap : 16;
        struct metrics_version *v = realloc(g->v, (size_t)cap * sizeof *v);
        if (v)
            g->v = v;
        char(*names)[64] = realloc(g->names, (size_t)cap * sizeof *names);
        if (names)
            g->names = names;
        if (!v || !names) {
            g->failed = 1;
            return;
        }
        g->cap = cap;
    }
    snprintf(g->names[g->n], sizeof g->names[g->n], "%s", mv->name);
    g->v[g->n] =
        (struct metrics_version){NULL, mv->version, is_live, batcher_queue_depth(mv->batcher)};
    g->n++;
}

void handle_metrics(struct request *r)
{
    struct gauges g = {0};
    registry_foreach(r->app->reg, collect, &g);
    for (int i = 0; i < g.n; i++)
        g.v[i].model = g.names[i]; /* names may have moved while growing */
    struct metrics_gauges mg = {g.v, g.n, atomic_load(&r->app->in_flight),
                                registry_ready(r->app->reg) && !atomic_load(&r->app->draining)};
    size_t len = 0;
    char *text = g.failed ? NULL : metrics_render(r->app->metrics, &mg, &len);
    free(g.v);
    free(g.names);
    if (!text) {
        http_reply_error(r, 503, "out of memory");
        return;
    }
    http_reply(r, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
}
