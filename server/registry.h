/* Model repository and registry: model name -> loaded versions, one of them live.
 *
 * DESIGN: the repository is a folder NAME/VERSION/model.cnn (+ optional NAME/config.ini
 * with batching, instances, labels, preprocessing overrides).  registry_scan() loads every
 * version not loaded yet, checks it, and makes the highest version live (unless a version
 * is pinned live by hand, see registry_activate); a version that
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

/* ---- the live version by hand, load and unload (admin API) ----------------------------
 * A pin makes a chosen version live although higher versions exist.  It is kept in
 * REPO/NAME/live_version (one decimal number, replaced atomically: temp file, fsync,
 * rename, fsync of the folder) and read by every scan, so it survives a restart and is
 * followed by replicas sharing the repository.  While pinned, the pinned version stays
 * loaded and live and the other max_versions - 1 slots hold the newest other versions
 * (not live).  A pin naming a version that is neither loaded nor loadable, or a file that
 * is not a number, is logged once and ignored: the newest version is live.  These calls
 * take their turn with scans (serialized); any thread. */

/* version > 0: pins it (loading it when needed) -- a promotion or a rollback; 0: removes
 * the pin, so the newest version is live again.  Also undoes an unload.  CNN_ENOENT for an
 * unknown model or a version neither on disk nor loaded; when the version cannot be
 * loaded, the previous pin is restored and its load error returned. */
int registry_activate(struct registry *r, const char *name, int version, struct cnn_err *err);
/* A version just written to the repository (normally the newest) goes live now: the pin is
 * removed and the model rescanned; an error (the previous pin restored) when `version` is
 * not live afterwards (e.g. its load failed). */
int registry_publish(struct registry *r, const char *name, int version, struct cnn_err *err);
/* Loads model `name` from the repository (after an unload, or a folder added since the
 * last scan).  CNN_ENOENT for no such folder; CNN_EIO when no version could be loaded. */
int registry_load_model(struct registry *r, const char *name, struct cnn_err *err);
/* Stops serving `name`: every version is unlisted (requests in flight finish on it) and
 * scans skip the model until registry_load_model or registry_activate.  In memory only:
 * a restart loads it again.  CNN_ENOENT for an unknown model. */
int registry_unload_model(struct registry *r, const char *name, struct cnn_err *err);
/* The pinned version of `name`, 0 when none (or unknown). */
int registry_pinned(struct registry *r, const char *name);

#endif
