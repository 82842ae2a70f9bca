/* The inference listener (http.c: its settings, and the batch submit / resume around the
 * batcher), the request every listener makes (struct request), and the reply/request
 * helpers handlers use (http_request.c).  The request's life on a port is listener.c.
 *
 * DESIGN: handlers run on an MHD pool thread with the body read.  An inference handler
 * fills the request's batch items and calls http_submit, which suspends the connection
 * *before* batcher_submit (a refused submit stores 503 + Retry-After and resumes at once).
 * Each item's done callback (a batcher worker) counts the request's pending items down;
 * the last one resumes the connection and never touches the request again.  The access
 * handler then calls http_complete_items on the MHD thread, which runs the handler's
 * finish step.  Nothing is locked here: a request belongs to one MHD thread except for
 * the atomic countdown. */
#ifndef HTTP_H
#define HTTP_H

#include "config.h"
#include "err.h"
#include "registry.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdint.h>

struct explain_pool;
struct listener;
struct metrics;
struct route;
struct MHD_Connection;

/* What every thread shares; built by main, immutable but for the atomics. */
struct app {
    const struct config *cfg;
    struct registry *reg;
    struct metrics *metrics;
    atomic_int draining;  /* 1 after SIGTERM: readiness 503, inference refused */
    atomic_int in_flight; /* requests made and not yet completed */
    atomic_int incoming;  /* inference requests being received/decoded, not yet submitted */
    struct explain_pool *explain; /* explanation threads (explain_pool.h); NULL: none */
};

enum request_phase { PHASE_READ = 0, PHASE_HANDLED };

struct request {
    uint64_t id; /* per listener, from 1 */
    struct app *app;
    const struct listener *listener; /* the port it arrived on */
    struct MHD_Connection *conn;
    const struct route *route;
    char method[16];
    char path[256];   /* for the log, truncated */
    char model[64];   /* {name} from the path, "" when none */
    int version;      /* {v} from the path; 0 = the live version */
    long job_id;      /* {id} from the path; 0 = none */
    int64_t start_ns; /* CLOCK_MONOTONIC */
    enum request_phase phase;
    int suspended; /* between http_submit and the resumed access-handler call */
    int incoming;  /* counted in app->incoming (an inference route, not submitted yet) */
    int auth_refused; /* the listener's auth hook refused it (logged as auth=refused) */
    int close;        /* refused for its framing: the reply closes the connection */

    char *body; /* owned, body_len bytes (+ a NUL) */
    size_t body_len, body_cap;
    size_t body_hint; /* Content-Length, when given */
    long long body_max;
    long long body_discarded; /* bytes dropped after an oversized chunked body */

    int status;  /* reply; 0 = none yet */
    char *reply; /* owned, malloc'd */
    size_t reply_len;
    const char *reply_type;
    int retry_after;         /* seconds, 0 = no header */
    char allow[40];          /* Allow header for 405; "" = none */
    char location[64];       /* Location header; "" = none */
    size_t infer_header_len; /* Inference-Header-Content-Length; 0 = no header */

    struct model_version *mv; /* acquired, released on completion */
    int n_items;
    float *inputs;  /* n_items x C x H x W, owned */
    float *outputs; /* n_items x classes, owned */
    struct batcher_item *items;
    struct batcher_item **item_ptrs;
    atomic_int pending;                /* items not yet done */
    atomic_int failure;                /* first nonzero done status */
    void (*finish)(struct request *r); /* builds the reply once the items are done */
    void *state;                       /* the handler's, freed with state_free */
    void (*state_free)(void *state);
};

/* Starts the inference listener on cfg->listen:cfg->port with the MHD thread pool, its
 * requests counted in app->in_flight.  NULL with err.  Stop it with listener_stop. */
struct listener *http_start(struct app *app, struct cnn_err *err);

/* ---- for handlers (MHD threads) ---------------------------------------------------- */

/* HTTP status for a CNN_E* code: 400, 413, 404, 503, 500. */
int http_status_of(int code);
/* Stores the reply; body (malloc'd, may be NULL when len is 0) is taken over. */
void http_reply(struct request *r, int status, const char *type, char *body, size_t len);
/* Stores the JSON reply (the reference is stolen; NULL -> 503 out of memory). */
void http_reply_json(struct request *r, int status, json_t *j);
/* {"error": "..."} with status. */
void http_reply_error(struct request *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* {"error": err->msg} with the status for err->code. */
void http_reply_cnn_err(struct request *r, const struct cnn_err *err);

/* A request header or query argument; NULL when absent. */
const char *http_header(struct request *r, const char *name);
const char *http_query(struct request *r, const char *name);

/* Acquires r->model / r->version into r->mv.  On failure replies (404 unknown model or
 * version, 503) and returns -1. */
int http_acquire_model(struct request *r);
/* Allocates n items with their input and output buffers for r->mv's model (checked against
 * max_batch_items and max_tensor_elements).  On failure replies and returns -1. */
int http_alloc_items(struct request *r, int n);
/* Suspends the connection and queues r's items; finish(r) runs on the MHD thread once all
 * are done.  On refusal the reply is 503 with Retry-After: 1. */
void http_submit(struct request *r, void (*finish)(struct request *r));
/* The same with each item's own done callback (on a worker thread), for a request whose
 * items lead to more work before the resume (POST .../explain).  done must end with the
 * connection resumed, and should call http_observe_queue_wait(it). */
void http_submit_items(struct request *r, void (*finish)(struct request *r),
                       void (*done)(struct batcher_item *it, int status));
/* Records how long it waited in its queue (cnnd_queue_wait_seconds). */
void http_observe_queue_wait(const struct batcher_item *it);
/* Drops r from app->incoming (idempotent): at submit, or when r ends without one. */
void http_uncount_incoming(struct request *r);
/* On the MHD thread after the resume: r's reply from its items' outcome (a failure, or
 * the finish step given to http_submit). */
void http_complete_items(struct request *r);
/* Adds a Location header to the reply. */
void http_set_location(struct request *r, const char *location);
/* Largest batch any of r's items ran in. */
int http_batch_size(const struct request *r);

#endif
