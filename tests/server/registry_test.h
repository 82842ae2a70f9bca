/* Helpers shared by the registry suites (check_registry.c, check_registry_scan.c). */
#ifndef REGISTRY_TEST_H
#define REGISTRY_TEST_H

#include "registry.h"
#include "server_test_models.h"

#include <pthread.h>
#include <stdint.h>

struct batch_log {
    pthread_mutex_t mu;
    int n, sizes[64];
};

/* Registry settings for repo with small batching; bl (optional) records batch sizes. */
struct registry_config reg_config(const char *repo, int max_versions, struct batch_log *bl);
struct registry *make_registry(const struct registry_config *c);
/* registry_scan's result. */
int scan(struct registry *r);
/* Acquires name/version, asserting success. */
struct model_version *acquire(struct registry *r, const char *name, int version);
/* registry_acquire's code (a success is released at once). */
int acquire_rc(struct registry *r, const char *name, int version, struct cnn_err *err);

/* One item's completion, waited for by the submitting thread. */
struct waiter {
    struct batcher_item it;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, status;
    float out[STM_CLASSES];
};

void waiter_done(struct batcher_item *item, int status);
/* Runs one input through mv's batcher; returns the item's status (or the submit error). */
int run_one(struct model_version *mv, const float *in, float *out);
/* Saves a model with this seed as repo/name/version and returns its output for in. */
void publish(const char *repo, const char *name, int version, uint64_t seed, const float *in,
             float *ref);
/* Output of mv for in equals ref within 1e-5. */
void check_serves(struct model_version *mv, const float *in, const float *ref);
/* Waits (up to 30 s) until the janitor has freed n versions. */
void wait_freed(struct registry *r, int n);

/* registry_foreach collector: "name/version[ live]" of the first 8 versions. */
struct seen {
    int n;
    char what[8][80];
};

void collect(const struct model_version *mv, int is_live, void *arg);
int seen_has(const struct seen *s, const char *what);

#endif
