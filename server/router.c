/* The route tables of both listeners and path matching (see router.h). */
#include "router.h"

#include "examples.h"
#include "handlers.h"

#include <stdio.h>
#include <string.h>

static const struct route ROUTES[] = {
    {"GET", "/v1/models", "v1_models", BODY_NONE, 0, handle_v1_models},
    {"POST", "/v1/models/{name}/classify", "v1_classify", BODY_CLASSIFY, 1, handle_classify},
    {"POST", "/v1/models/{name}/versions/{v}/classify", "v1_classify", BODY_CLASSIFY, 1,
     handle_classify},
    {"GET", "/v2", "v2_server", BODY_NONE, 0, handle_server_metadata},
    {"GET", "/v2/health/live", "v2_live", BODY_NONE, 0, handle_live},
    {"GET", "/v2/health/ready", "v2_ready", BODY_NONE, 0, handle_ready},
    {"GET", "/v2/models/{name}", "v2_model", BODY_NONE, 0, handle_model_metadata},
    {"GET", "/v2/models/{name}/versions/{v}", "v2_model", BODY_NONE, 0, handle_model_metadata},
    {"GET", "/v2/models/{name}/ready", "v2_model_ready", BODY_NONE, 0, handle_model_ready},
    {"GET", "/v2/models/{name}/versions/{v}/ready", "v2_model_ready", BODY_NONE, 0,
     handle_model_ready},
    {"POST", "/v2/models/{name}/infer", "v2_infer", BODY_INFER, 1, handle_infer},
    {"POST", "/v2/models/{name}/versions/{v}/infer", "v2_infer", BODY_INFER, 1, handle_infer},
    {"GET", "/metrics", "metrics", BODY_NONE, 0, handle_metrics},
    {"POST", "/v1/models/{name}/explain", "v1_explain", BODY_CLASSIFY, 1, handle_explain},
    {"POST", "/v1/models/{name}/versions/{v}/explain", "v1_explain", BODY_CLASSIFY, 1,
     handle_explain},
    {"GET", "/v1/models/{name}/filters.png", "v1_filters", BODY_NONE, 0, handle_filters},
    {"GET", "/", "dashboard", BODY_NONE, 0, handle_dashboard},
    {"GET", "/ui/{name}", "dashboard", BODY_NONE, 0, handle_dashboard_file},
    {"GET", "/v1/stats", "v1_stats", BODY_NONE, 0, handle_stats},
};
#define N_ROUTES ((int)(sizeof ROUTES / sizeof ROUTES[0]))

/* The admin listener's: its auth hook (admin.c) has run before any of these. */
static const struct route ADMIN_ROUTES[] = {
    {"GET", "/admin/v1/models", "admin_models", BODY_NONE, 0, handle_admin_models},
    {"POST", "/admin/v1/models/{name}/load", "admin_load", BODY_NONE, 0, handle_admin_model_load},
    {"POST", "/admin/v1/models/{name}/unload", "admin_unload", BODY_NONE, 0,
     handle_admin_model_unload},
    {"POST", "/admin/v1/models/{name}/versions/{v}/activate", "admin_activate", BODY_NONE, 0,
     handle_admin_model_activate},
    {"POST", "/admin/v1/models/{name}/unpin", "admin_unpin", BODY_NONE, 0,
     handle_admin_model_unpin},
    {"POST", "/admin/v1/models/{name}/finetune", "admin_finetune", BODY_JOB, 0,
     handle_admin_finetune},
    {"POST", "/admin/v1/models/{name}/examples", "admin_examples", BODY_EXAMPLES, 0,
     handle_admin_examples},
    {"GET", "/admin/v1/jobs", "admin_jobs", BODY_NONE, 0, handle_admin_jobs},
    {"GET", "/admin/v1/jobs/{id}", "admin_job", BODY_NONE, 0, handle_admin_job},
    {"DELETE", "/admin/v1/jobs/{id}", "admin_job_cancel", BODY_NONE, 0, handle_admin_job_cancel},
    {"GET", "/admin/v1/jobs/{id}/curve", "admin_job_curve", BODY_NONE, 0, handle_admin_job_curve},
    {"GET", "/admin/ui", "admin_dashboard", BODY_NONE, 0, handle_dashboard},
    {"GET", "/admin/ui/{name}", "admin_dashboard", BODY_NONE, 0, handle_dashboard_file},
};
#define N_ADMIN_ROUTES ((int)(sizeof ADMIN_ROUTES / sizeof ADMIN_ROUTES[0]))

const struct route *router_routes(int *n)
{
    *n = N_ROUTES;
    return ROUTES;
}

const struct route *router_admin_routes(int *n)
{
    *n = N_ADMIN_ROUTES;
    return ADMIN_ROUTES;
}

/* Copies segment [s, s+n) into buf; 0 when it fits and is not empty. */
static int capture(const char *s, size_t n, char *buf, size_t cap)
{
    if (n == 0 || n >= cap)
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return 0;
}

/* Path against pattern, segment by segment; fills m->name / m->version / m->id. */
static int path_matches(const char *pattern, const char *path, struct route_match *m)
{
    m->name[0] = m->version[0] = m->id[0] = '\0';
    const char *p = pattern, *u = path;
    while (*p && *u) {
        if (*p != '/' || *u != '/')
            return 0;
        p++;
        u++;
        size_t pn = strcspn(p, "/"), un = strcspn(u, "/");
        char *dst = NULL;
        size_t cap = 0;
        if (pn == 6 && strncmp(p, "{name}", 6) == 0)
            dst = m->name, cap = sizeof m->name;
        else if (pn == 3 && strncmp(p, "{v}", 3) == 0)
            dst = m->version, cap = sizeof m->version;
        else if (pn == 4 && strncmp(p, "{id}", 4) == 0)
            dst = m->id, cap = sizeof m->id;
        if (dst ? capture(u, un, dst, cap) != 0 : (pn != un || strncmp(p, u, pn) != 0))
            return 0;
        p += pn;
        u += un;
    }
    return *p == '\0' && *u == '\0';
}

/* Adds method (GET as "GET, HEAD") to the Allow list unless it is there already. */
static void allow_add(char *allow, size_t cap, const char *method)
{
    const char *item = strcmp(method, "GET") == 0 ? "GET, HEAD" : method;
    size_t mlen = strlen(method);
    for (const char *a = allow; *a; a += strcspn(a, ",") + (a[strcspn(a, ",")] ? 2 : 0))
        if (strncmp(a, method, mlen) == 0 && (a[mlen] == ',' || a[mlen] == '\0'))
            return;
    size_t n = strlen(allow);
    snprintf(allow + n, cap - n, "%s%s", n ? ", " : "", item);
}

void router_match(const struct route *table, int n, const char *method, const char *path,
                  struct route_match *out)
{
    memset(out, 0, sizeof *out);
    const char *m = strcmp(method, "HEAD") == 0 ? "GET" : method;
    for (int i = 0; i < n; i++) {
        struct route_match tmp;
        if (!path_matches(table[i].pattern, path, &tmp))
            continue;
        if (strcmp(table[i].method, m) == 0) {
            *out = tmp;
            out->route = &table[i];
            return;
        }
        allow_add(out->allow, sizeof out->allow, table[i].method);
    }
    out->status = out->allow[0] ? 405 : 404;
}
