/* The admin listener (see the DESIGN note in admin.h): its limits, the bearer-token auth
 * hook and the data root made at start; its route table is router.c's, the request's life
 * the listener's (listener.c). */
#include "admin.h"

#include "handlers.h"
#include "job_spec.h"
#include "listener.h"
#include "log.h"

#include <errno.h>
#include <limits.h>
#include <microhttpd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define ADMIN_THREADS 2
#define ADMIN_CONNECTIONS 64
#define EXAMPLES_OVERHEAD (64 * 1024) /* multipart framing and the label part */

struct jobs *admin_jobs(struct request *r)
{
    return listener_arg(r);
}

long admin_job_id(struct request *r)
{
    return r->job_id;
}

/* The auth hook: no query string, and the right bearer token (constant-time compare). */
static int admin_auth(void *arg, struct request *r, const char *url)
{
    const struct admin_token *token = arg;
    /* Credentials in a URL end up in logs and proxies: refuse any query string outright. */
    if (strchr(url, '?') ||
        MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, NULL, NULL) > 0) {
        http_reply_error(r, 401,
                         "admin requests take no query string; send the token as "
                         "Authorization: Bearer <token>");
        return -1;
    }
    if (dashboard_is_public(url)) /* the static page: it asks for the token itself */
        return 0;
    const char *auth = http_header(r, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!admin_token_check_header(token, auth)) {
        http_reply_error(r, 401, "%s", auth ? "wrong admin token" : "admin token required");
        return -1;
    }
    return 0;
}

/* Creates the data root (and its missing parents, mode 0755) so that a fresh checkout can
 * take datasets at once; a failure is logged, and fine-tunes then answer 404 naming it. */
static void make_data_root(const char *root)
{
    char path[PATH_MAX];
    int n = snprintf(path, sizeof path, "%s", root);
    if (n <= 0 || (size_t)n >= sizeof path)
        return;
    int created = 0;
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(path, 0755) == 0)
            created = 1;
        else if (errno != EEXIST) {
            log_warn("data_root cannot be created path=%s error=\"%s\"", path, strerror(errno));
            return;
        }
        *p = c;
        if (!c)
            break;
    }
    if (created)
        log_info("data_root created path=%s", root);
}

struct listener *admin_start(struct app *app, struct jobs *jobs, const struct admin_token *token,
                             struct cnn_err *err)
{
    const struct config *cfg = app->cfg;
    make_data_root(cfg->data_root);
    struct listener_config lc = {
        .host = cfg->admin_listen,
        .port = cfg->admin_port,
        .what = "admin_listen",
        .log_event = "admin request",
        .no_route = "admin_none",
        .body_max = {[BODY_JOB] = JOB_BODY_MAX,
                     [BODY_EXAMPLES] = cfg->example_max_bytes + EXAMPLES_OVERHEAD},
        .threads = ADMIN_THREADS,
        .connection_limit = ADMIN_CONNECTIONS,
        .connection_timeout_s = cfg->connection_timeout_s,
        .auth = admin_auth,
        .auth_arg = (void *)token,
        .auth_challenge = "Bearer realm=\"cnnd-admin\"",
        .handler_arg = jobs,
    };
    lc.routes = router_admin_routes(&lc.n_routes);
    return listener_start(app, &lc, err);
}
