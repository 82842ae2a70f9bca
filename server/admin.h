/* The admin listener: a second libmicrohttpd daemon on admin_listen:admin_port (loopback by
 * default), apart from inference, for model management, fine-tune jobs and collected
 * examples (routes in admin.c, handlers in handlers_admin.c and examples.c).
 *
 * DESIGN: every callback runs on one of the admin daemon's own threads.  The first
 * access-handler call (headers read, no body byte buffered yet) decides: a query string ->
 * 401 (a token must never travel, or be logged, in a URL); a missing or wrong
 * "Authorization: Bearer" token (admin_auth.c, constant time) -> 401 with
 * WWW-Authenticate: Bearer; then route (404 / 405), Content-Length against the route's
 * body limit (413).  Only then is the body buffered and the handler run; handlers answer
 * synchronously (a model load, a job submit).  The access-log line of an admin request
 * has the path without any query and never a header value.  Requests reuse struct request
 * (http.h) for the reply helpers; they are not counted in app->in_flight (the drain waits
 * for inference only).  Threads: admin_start / admin_stop from main. */
#ifndef ADMIN_H
#define ADMIN_H

#include "admin_auth.h"
#include "err.h"
#include "http.h"

struct jobs;
struct admin_server;

/* Listens on cfg->admin_listen:cfg->admin_port.  token and jobs are borrowed until
 * admin_stop.  NULL with err. */
struct admin_server *admin_start(struct app *app, struct jobs *jobs,
                                 const struct admin_token *token, struct cnn_err *err);
int admin_port(const struct admin_server *s);
/* Closes every admin connection and joins the admin threads. */
void admin_stop(struct admin_server *s);

/* ---- for admin handlers ------------------------------------------------------------- */
struct jobs *admin_jobs(struct request *r);
/* The {id} of a /jobs/{id} route (0 when none). */
long admin_job_id(struct request *r);
/* Adds a Location header to the reply. */
void admin_set_location(struct request *r, const char *location);

/* handlers_admin.c */
void handle_admin_models(struct request *r);
void handle_admin_model_load(struct request *r);
void handle_admin_model_unload(struct request *r);
void handle_admin_model_activate(struct request *r);
void handle_admin_model_unpin(struct request *r);
void handle_admin_finetune(struct request *r);
void handle_admin_jobs(struct request *r);
void handle_admin_job(struct request *r);
void handle_admin_job_cancel(struct request *r);

#endif
