/* The dashboard (server/www/, compiled in by the Makefile: www.h).  Inference port, read-only:
 * GET / (the page), GET /ui/{name} (its files), GET /v1/stats?seconds=N (the last minutes of
 * this port from metrics_window_json: requests/s, latency percentiles, batch sizes).  Admin
 * port: GET /admin/ui and /admin/ui/{name} (the same page in admin mode: it asks for the
 * token and sends it with every call; these two static routes are the only ones the auth
 * hook lets through without it, see admin.c) and GET /admin/v1/jobs/{id}/curve (a job's
 * step curve, epochs and confusion matrix, linked from the job resource). */
#include "admin.h"
#include "explain_pool.h"
#include "handlers.h"
#include "http.h"
#include "jobs.h"
#include "metrics.h"
#include "www.h"

#include <stdlib.h>
#include <string.h>

static const char *type_of(const char *name)
{
    static const char *const types[][2] = {
        {".html", "text/html; charset=utf-8"}, {".js", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},   {".svg", "image/svg+xml"},
        {".png", "image/png"},                 {".txt", "text/plain; charset=utf-8"}};
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        size_t k = strlen(types[i][0]);
        if (n > k && strcmp(name + n - k, types[i][0]) == 0)
            return types[i][1];
    }
    return "application/octet-stream";
}

/* Replies with the compiled-in file `name`, or 404. */
static void serve(struct request *r, const char *name)
{
    for (const struct www_file *f = www_files; f->name; f++) {
        if (strcmp(f->name, name) != 0)
            continue;
        char *copy = malloc(f->len ? f->len : 1);
        if (!copy) {
            http_reply_error(r, 503, "out of memory");
            return;
        }
        memcpy(copy, f->data, f->len);
        http_reply(r, 200, type_of(name), copy, f->len);
        return;
    }
    http_reply_error(r, 404, "no dashboard file named '%s'", name);
}

void handle_dashboard(struct request *r)
{
    serve(r, "index.html");
}

/* {name} of /ui/{name}: the request's model field holds the captured segment. */
void handle_dashboard_file(struct request *r)
{
    serve(r, r->model);
}

void handle_stats(struct request *r)
{
    const char *s = http_query(r, "seconds");
    long seconds = 300;
    if (s) {
        char *end;
        seconds = strtol(s, &end, 10);
        if (!*s || *end || seconds < 1 || seconds > 600) {
            http_reply_error(r, 400, "seconds must be an integer in 1..600");
            return;
        }
    }
    json_t *o = metrics_window_json(r->app->metrics, (int)seconds);
    if (o && r->app->explain)
        json_object_set_new(o, "explanations_in_flight",
                            json_integer(explain_pool_busy(r->app->explain)));
    http_reply_json(r, 200, o);
}

void handle_admin_job_curve(struct request *r)
{
    json_t *o = jobs_curve_json(admin_jobs(r), admin_job_id(r));
    if (!o) {
        http_reply_error(r, 404, "no job %ld", admin_job_id(r));
        return;
    }
    http_reply_json(r, 200, o);
}

int dashboard_is_public(const char *url)
{
    return strcmp(url, "/admin/ui") == 0 ||
           (strncmp(url, "/admin/ui/", 10) == 0 && url[10] && !strchr(url + 10, '/') &&
            !strchr(url + 10, '?'));
}
