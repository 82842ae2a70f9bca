/* Model repository and registry: model name -> loaded versions, one of them live.
 *
 * DESIGN: the repository is a folder NAME/VERSION/model.cnn (+ optional NAME/config.ini
 * with batching, instances, labels, preprocessing overrides).  registry_scan() loads every
 * version not loaded yet, checks it, and makes the highest version live; a version that
 * fails to load is logged and skipped, the old one keeps serving.  Each loaded version owns
 * its model and its batcher (workers).  Lookups hand out counted references: requests in
 * flight keep the version they started with; a version that is no longer live is freed
 * (its batcher drained and joined) when its last reference is dropped -- on a janitor
 * thread, never on the caller's.  One mutex guards the tables; no lock is held while
 * loading a model or joining threads.  Threads: any. */
#ifndef REGISTRY_H
#define REGISTRY_H

#include "batcher.h"
#include "err.h"
#include "model.h"

struct model_version {           /* read-only for users while they hold a reference */
    const char *name;
    int version;
    const struct cnn_model *model;
    struct batcher *batcher;
};

struct registry_config {
    const char *repository;          /* folder */
    struct batcher_config batching;  /* defaults; NAME/config.ini may override */
    int max_versions;                /* loaded versions kept per model (live + older) */
};

struct registry;

struct registry *registry_create(const struct registry_config *cfg, struct cnn_err *err);
/* (Re)reads the repository: loads new versions, swaps the live one.  Returns the number of
 * versions that failed to load (each logged), or a negative CNN_E* if the folder is
 * unreadable. Called at start, on SIGHUP and by the poller. */
int registry_scan(struct registry *r, struct cnn_err *err);
/* version 0 = the live one.  CNN_ENOENT for an unknown name or version.  The reference
 * must be given back with registry_release(). */
int registry_acquire(struct registry *r, const char *name, int version,
                     struct model_version **out, struct cnn_err *err);
void registry_release(struct registry *r, struct model_version *mv);
/* Calls fn for every loaded version (under no lock: a snapshot with references). */
void registry_foreach(struct registry *r,
                      void (*fn)(const struct model_version *mv, int is_live, void *arg),
                      void *arg);
/* 1 when at least one model is live. */
int registry_ready(struct registry *r);
/* Drains every batcher, frees every version.  No acquire after this starts. */
void registry_destroy(struct registry *r);
/* Diagnostic (tests, metrics): how many versions the janitor has freed so far. */
int registry_freed_count(struct registry *r);

#endif
