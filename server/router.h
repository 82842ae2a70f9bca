/* Route tables and path matching for every listener: method + path pattern
 * ("/v2/models/{name}/versions/{v}/infer") -> handler, with the route's metrics name and body
 * limit kind.  Matching fills the {name}, {v} and {id} segments; a path that matches only
 * with another method gives 405 and the Allow list.  Both listeners' tables live in
 * router.c, immutable.  Any thread. */
#ifndef ROUTER_H
#define ROUTER_H

#include <stddef.h>

struct request;

/* Which of the listener's body limits applies (struct listener_config.body_max). */
enum route_body { BODY_NONE = 0, BODY_CLASSIFY, BODY_INFER, BODY_JOB, BODY_EXAMPLES, BODY_KINDS };

struct route {
    const char *method; /* "GET" routes also answer HEAD */
    const char *pattern;
    const char *name;     /* metrics label, e.g. "v2_infer" */
    enum route_body body; /* which configured body limit applies */
    int inference;        /* refused with 503 while draining, counted in app->incoming */
    void (*handler)(struct request *r);
};

struct route_match {
    const struct route *route; /* NULL when none */
    int status;                /* 0 matched, 404, 405 */
    char allow[40];            /* 405: the path's methods, "GET, HEAD" for GET, e.g. "POST" */
    char name[64];             /* {name}; "" when the route has none */
    char version[16];          /* {v}; "" when absent */
    char id[24];               /* {id}; "" when absent */
};

/* Matches method and path (no query string) against the n routes of table.  A {name}, {v}
 * or {id} segment that is empty or longer than its buffer does not match (404). */
void router_match(const struct route *table, int n, const char *method, const char *path,
                  struct route_match *out);

/* The inference listener's table: *n entries. */
const struct route *router_routes(int *n);
/* The admin listener's table: *n entries. */
const struct route *router_admin_routes(int *n);

#endif
