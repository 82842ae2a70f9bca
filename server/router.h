/* Route table: method + path pattern ("/v2/models/{name}/versions/{v}/infer") -> handler,
 * with the route's metrics name and body limit kind.  Matching fills the {name} and {v}
 * segments; a path that matches only with another method gives 405 and the Allow list.
 * Immutable table; any thread. */
#ifndef ROUTER_H
#define ROUTER_H

#include <stddef.h>

struct request;

enum route_body { BODY_NONE = 0, BODY_CLASSIFY, BODY_INFER };

struct route {
    const char *method; /* "GET" routes also answer HEAD */
    const char *pattern;
    const char *name;     /* metrics label, e.g. "v2_infer" */
    enum route_body body; /* which configured body limit applies */
    int inference;        /* refused with 503 while draining */
    void (*handler)(struct request *r);
};

struct route_match {
    const struct route *route; /* NULL when none */
    int status;                /* 0 matched, 404, 405 */
    char allow[32];            /* 405: "GET, HEAD" or "POST" */
    char name[64];             /* {name}; "" when the route has none */
    char version[16];          /* {v}; "" when absent */
};

/* Matches method and path (no query string).  A {name} or {v} segment longer than its
 * buffer does not match (404). */
void router_match(const char *method, const char *path, struct route_match *out);

/* The table, for the docs and tests: *n entries. */
const struct route *router_routes(int *n);

#endif
