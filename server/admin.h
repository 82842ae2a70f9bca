/* The admin listener: a second listener (listener.h) on admin_listen:admin_port (loopback
 * by default), apart from inference, for model management, fine-tune jobs and collected
 * examples (route table in router.c, handlers in handlers_admin.c and examples.c).
 *
 * DESIGN: its auth hook runs first on every request, with the headers only: a query string
 * -> 401 (a token must never travel, or be logged, in a URL); a missing or wrong
 * "Authorization: Bearer" token (admin_auth.c, constant time) -> 401 with
 * WWW-Authenticate: Bearer.  Every other check is the listener's, as on the inference
 * port.  Handlers answer synchronously (a model load, a job submit).  Admin requests are
 * not counted in app->in_flight (the drain waits for inference only).  Threads: admin_start
 * / listener_stop from main; handlers on the admin listener's threads. */
#ifndef ADMIN_H
#define ADMIN_H

#include "admin_auth.h"
#include "err.h"
#include "http.h"

struct jobs;
struct listener;

/* Listens on cfg->admin_listen:cfg->admin_port.  token and jobs are borrowed until
 * listener_stop.  NULL with err. */
struct listener *admin_start(struct app *app, struct jobs *jobs, const struct admin_token *token,
                             struct cnn_err *err);

/* ---- for admin handlers ------------------------------------------------------------- */
struct jobs *admin_jobs(struct request *r);
/* The {id} of a /jobs/{id} route (0 when none). */
long admin_job_id(struct request *r);

#endif
