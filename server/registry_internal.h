/* Registry internals shared by its three files: registry.c (versions, reference counts,
 * lifetime, the janitor), registry_scan.c (scanning the repository, failure memory) and
 * registry_pin.c (the live_version pin).  One lock, r->mu, owned by registry.c (see its
 * DESIGN note); the fields below say what it guards. */
#ifndef REGISTRY_INTERNAL_H
#define REGISTRY_INTERNAL_H

#include "registry.h"
#include "repository.h"

#include <pthread.h>

#define MAX_VERSIONS 100 /* loaded versions kept per model (config.c allows 1..100) */

struct ventry {
    struct model_version pub; /* first: registry_release casts back */
    char name[REPO_NAME_MAX];
    struct cnn_model *model; /* owned */
    int refs;                /* r->mu */
    int listed;              /* r->mu */
    struct ventry *next;     /* in its model's list, or in the janitor queue */
};

struct failure {
    int version;
    struct repo_file_id model_id, config_id, labels_id;
    char msg[160]; /* the load error */
};

struct mentry {
    char name[REPO_NAME_MAX];
    struct ventry *versions; /* r->mu; listed versions, newest first */
    struct mentry *next;     /* r->mu; entries are only freed by registry_destroy */
    int pinned;              /* r->mu (written by the scanning thread); 0 = newest is live */
    int unloaded;            /* r->mu (written by the scanning thread); scans skip it */
    int pin_warned;          /* scanning thread: pin value last warned about */
    /* scanning thread only */
    struct failure *failed;
    int n_failed;
    char config_error[160]; /* last config error logged; "" = none */
};

struct registry {
    char *repository;
    struct batcher_config batching;
    int max_versions;
    pthread_mutex_t mu;
    pthread_cond_t cv;  /* scanning finished */
    pthread_cond_t jcv; /* janitor: queue non-empty or stop */
    struct mentry *models;
    int scanning, closing, scans;
    struct ventry *janitor_q;
    int janitor_stop;
    int alive; /* versions committed and not yet freed */
    int freed;
    pthread_t janitor;
};

/* ---- registry.c -------------------------------------------------------------------- */

/* Drops one reference; at 0 the version goes to the janitor.  Caller holds r->mu. */
void registry_unref_locked(struct registry *r, struct ventry *ve);
/* The entry named name, or NULL.  Caller holds r->mu. */
struct mentry *registry_find_model(struct registry *r, const char *name);
/* The live version: the pinned one when it is listed, else the newest.  Caller holds r->mu. */
struct ventry *registry_live_of(struct mentry *me);
/* The live version number of me (0 = none).  Takes r->mu. */
int registry_live_version(struct registry *r, struct mentry *me);
/* The model entry for name, added when new.  NULL when out of memory.  Takes r->mu. */
struct mentry *registry_model_entry(struct registry *r, const char *name);
/* Waits until no scan runs and makes this thread the scanning one.  *verbose (optional) = 1
 * for the first scan.  CNN_EBUSY while shutting down.  Takes r->mu. */
int registry_begin_scan(struct registry *r, int *verbose, struct cnn_err *err);
/* Ends this thread's turn as the scanning one.  Takes r->mu. */
void registry_end_scan(struct registry *r);
/* Inserts the new versions into me's list (newest first), unlists every version not in
 * keep[0..n_keep), sets the pin and logs the changes.  Takes r->mu. */
void registry_commit_versions(struct registry *r, struct mentry *me, struct ventry *fresh,
                              const int *keep, int n_keep, int pin);

/* ---- registry_scan.c (scanning thread, no lock held on entry) ----------------------- */

/* Brings one model up to date.  Returns the number of new failures (each logged). */
int registry_scan_model(struct registry *r, struct mentry *me);
/* The remembered load failure of version, or NULL. */
struct failure *registry_find_failure(struct mentry *me, int version);
/* The model entry for an existing model folder; CNN_ENOENT when the folder or (when
 * version > 0) that version is on neither disk nor loaded. */
int registry_model_for(struct registry *r, const char *name, int version, struct mentry **out,
                       struct cnn_err *err);

/* ---- registry_pin.c ---------------------------------------------------------------- */

/* REPO/NAME/live_version: the pinned version, 0 when the file is absent, -1 when it does
 * not hold a version number.  File I/O only, no lock. */
int registry_read_pin(const char *repo, const char *name);

#endif
