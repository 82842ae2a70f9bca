/* Route handlers.  Each runs on an MHD thread with the request's body fully read; it either
 * replies (http_reply*) or fills the request's batch items and calls http_submit with the
 * step that builds the reply once they are computed.
 *   handlers_health.c   /v2/health/live, /v2/health/ready, /v2, /metrics
 *   handlers_models.c   /v1/models, /v2/models/{name}[/versions/{v}][/ready]
 *   handlers_classify.c POST /v1/models/{name}[/versions/{v}]/classify
 *   handlers_infer.c    POST /v2/models/{name}[/versions/{v}]/infer
 *   handlers_admin.c    the admin listener's /admin/v1/models... and /admin/v1/jobs...
 *                       (examples.c: POST /admin/v1/models/{name}/examples) */
#ifndef HANDLERS_H
#define HANDLERS_H

struct request;

void handle_live(struct request *r);
void handle_ready(struct request *r);
void handle_server_metadata(struct request *r);
void handle_metrics(struct request *r);
void handle_v1_models(struct request *r);
void handle_model_metadata(struct request *r);
void handle_model_ready(struct request *r);
void handle_classify(struct request *r);
void handle_infer(struct request *r);
void handle_explain(struct request *r); /* handlers_explain.c, also GET .../filters.png */
void handle_filters(struct request *r);
void handle_dashboard(struct request *r); /* handlers_dashboard.c: the page, files, stats */
void handle_dashboard_file(struct request *r);
void handle_stats(struct request *r);
void handle_admin_job_curve(struct request *r);
/* 1 for the admin listener's static dashboard URLs (no token needed for them). */
int dashboard_is_public(const char *url);

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
