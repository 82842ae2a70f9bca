/* Model registry: loaded versions per model name, the live one, counted references, and a
 * janitor thread that frees versions nobody uses any more.  Scanning and failure memory
 * live in registry_scan.c, the live_version pin in registry_pin.c (registry_internal.h).
 *
 * DESIGN: r->mu, owned by this file, is the registry's one lock: never held together with
 * another lock, nor across file I/O, a model load, a batcher start or stop, or logging.
 * It guards the model list, each model's list of loaded versions (newest
 * first; the head is live), every version's refs and listed flag, the janitor queue and
 * the counters.  A version's refs = its holders + 1 while the registry lists it.  When a
 * scan unlists a version (a newer one pushed it out of the max_versions newest) or
 * registry_destroy does, that +1 goes; whoever drops refs to 0 (release, scan, destroy)
 * only queues the version for the janitor, which destroys its batcher (draining it) and
 * its model with no lock held -- so no request or worker thread ever joins itself.
 * Scans are serialized by r->scanning (waited for on r->cv); only the scanning thread
 * changes the lists or touches a model's failure memory, and it loads models and creates
 * batchers with no lock held, then commits the new versions under r->mu.
 *
 * Live version: the newest listed version, unless the model is pinned (me->pinned, from
 * REPO/NAME/live_version, read by every scan and written by registry_activate): then the
 * pinned version stays loaded and live, and max_versions - 1 further slots hold the newest
 * others.  An unloaded model (registry_unload_model) is skipped by scans until it is
 * loaded again by name.
 *
 * Policy: a loaded version is never reloaded when its file changes (publish a new
 * version number); a version whose load failed is not retried until its model.cnn,
 * config.ini or labels file changes; a bad config.ini is logged and counted once per
 * distinct error (the model's loaded versions keep serving); a model folder or version
 * folder removed from disk leaves its loaded versions serving until newer versions push
 * them out.  registry_destroy waits until every reference has been released. */
#include "registry.h"

#include "log.h"
#include "memtrim.h"
#include "registry_internal.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- references and the janitor ---------------------------------------------------- */

void registry_unref_locked(struct registry *r, struct ventry *ve)
{
    assert(ve->refs > 0);
    if (--ve->refs > 0)
        return;
    assert(!ve->listed);
    ve->next = r->janitor_q;
    r->janitor_q = ve;
    pthread_cond_signal(&r->jcv);
}

static void free_version(struct ventry *ve)
{
    batcher_destroy(ve->pub.batcher); /* drains: every queued item gets done() */
    memtrim_begin(); /* the model's memory back, whichever thread's arena it is in */
    cnn_model_destroy(ve->model);
    memtrim_end();
    log_info("model version freed name=%s version=%d", ve->name, ve->pub.version);
    free(ve);
}

static void *janitor_main(void *arg)
{
    struct registry *r = arg;
    pthread_mutex_lock(&r->mu);
    for (;;) {
        while (!r->janitor_q && !(r->janitor_stop && r->alive == 0)) {
            if (!r->janitor_stop) {
                pthread_cond_wait(&r->jcv, &r->mu);
                continue;
            }
            /* destroy waits for holders that have not released yet */
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 5;
            if (pthread_cond_timedwait(&r->jcv, &r->mu, &ts) == ETIMEDOUT && !r->janitor_q)
                log_warn("registry shutdown waiting versions_in_use=%d", r->alive);
        }
        if (!r->janitor_q)
            break;
        struct ventry *ve = r->janitor_q;
        r->janitor_q = ve->next;
        pthread_mutex_unlock(&r->mu);
        free_version(ve);
        pthread_mutex_lock(&r->mu);
        r->alive--;
        r->freed++;
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

/* ---- lookups ----------------------------------------------------------------------- */

/* Caller holds r->mu. */
struct mentry *registry_find_model(struct registry *r, const char *name)
{
    for (struct mentry *me = r->models; me; me = me->next)
        if (strcmp(me->name, name) == 0)
            return me;
    return NULL;
}

/* The live version: the pinned one when it is listed, else the newest.  Caller holds r->mu. */
struct ventry *registry_live_of(struct mentry *me)
{
    for (struct ventry *ve = me->versions; me->pinned && ve; ve = ve->next)
        if (ve->pub.version == me->pinned)
            return ve;
    return me->versions;
}

int registry_acquire(struct registry *r, const char *name, int version, struct model_version **out,
                     struct cnn_err *err)
{
    *out = NULL;
    if (!name || version < 0)
        return cnn_err_set(err, CNN_EINVAL, "model name missing or version negative");
    /* only echo names that are safe to print (the message reaches logs and clients) */
    const char *shown = repo_valid_name(name) ? name : "(invalid name)";
    pthread_mutex_lock(&r->mu);
    if (r->closing) {
        pthread_mutex_unlock(&r->mu);
        return cnn_err_set(err, CNN_EBUSY, "server shutting down");
    }
    struct mentry *me = registry_find_model(r, name);
    struct ventry *ve = me ? me->versions : NULL;
    if (version > 0)
        while (ve && ve->pub.version != version)
            ve = ve->next;
    else if (me)
        ve = registry_live_of(me);
    if (!ve) {
        int unloaded = me && me->unloaded;
        pthread_mutex_unlock(&r->mu);
        if (unloaded)
            return cnn_err_set(err, CNN_ENOENT, "model %s is unloaded", shown);
        if (!me || !me->versions)
            return cnn_err_set(err, CNN_ENOENT, "unknown model %s", shown);
        return cnn_err_set(err, CNN_ENOENT, "model %s has no version %d loaded", shown, version);
    }
    ve->refs++;
    pthread_mutex_unlock(&r->mu);
    *out = &ve->pub;
    return 0;
}

void registry_release(struct registry *r, struct model_version *mv)
{
    if (!mv)
        return;
    struct ventry *ve = (struct ventry *)mv;
    pthread_mutex_lock(&r->mu);
    registry_unref_locked(r, ve);
    pthread_mutex_unlock(&r->mu);
}

void registry_foreach(struct registry *r,
                      void (*fn)(const struct model_version *mv, int is_live, void *arg), void *arg)
{
    struct snap {
        struct ventry *ve;
        int is_live;
    } *list = NULL;
    int n = 0;
    pthread_mutex_lock(&r->mu);
    int total = 0;
    for (struct mentry *me = r->models; me; me = me->next)
        for (struct ventry *ve = me->versions; ve; ve = ve->next)
            total++;
    if (total > 0)
        list = malloc((size_t)total * sizeof *list);
    if (list) {
        for (struct mentry *me = r->models; me; me = me->next) {
            struct ventry *live = registry_live_of(me);
            for (struct ventry *ve = me->versions; ve; ve = ve->next) {
                ve->refs++;
                list[n].ve = ve;
                list[n].is_live = ve == live;
                n++;
            }
        }
    }
    pthread_mutex_unlock(&r->mu);
    if (total > 0 && !list) {
        log_error("registry foreach failed error=\"out of memory\"");
        return;
    }
    for (int i = 0; i < n; i++)
        fn(&list[i].ve->pub, list[i].is_live, arg);
    pthread_mutex_lock(&r->mu);
    for (int i = 0; i < n; i++)
        registry_unref_locked(r, list[i].ve);
    pthread_mutex_unlock(&r->mu);
    free(list);
}

int registry_ready(struct registry *r)
{
    int ready = 0;
    pthread_mutex_lock(&r->mu);
    for (struct mentry *me = r->models; me && !ready; me = me->next)
        ready = me->versions != NULL;
    pthread_mutex_unlock(&r->mu);
    return ready;
}

int registry_freed_count(struct registry *r)
{
    pthread_mutex_lock(&r->mu);
    int n = r->freed;
    pthread_mutex_unlock(&r->mu);
    return n;
}

/* ---- the scanning turn and the version lists ---------------------------------------- */

/* The model entry for name, added when new.  NULL when out of memory. */
struct mentry *registry_model_entry(struct registry *r, const char *name)
{
    pthread_mutex_lock(&r->mu);
    struct mentry *me = registry_find_model(r, name);
    if (!me) {
        me = calloc(1, sizeof *me);
        if (me) {
            snprintf(me->name, sizeof me->name, "%s", name);
            struct mentry **pp = &r->models;
            while (*pp)
                pp = &(*pp)->next;
            *pp = me;
        }
    }
    pthread_mutex_unlock(&r->mu);
    return me;
}

/* Waits until no scan runs and makes this thread the scanning one.  *verbose (optional) = 1
 * for the first scan.  CNN_EBUSY while shutting down. */
int registry_begin_scan(struct registry *r, int *verbose, struct cnn_err *err)
{
    pthread_mutex_lock(&r->mu);
    while (r->scanning && !r->closing)
        pthread_cond_wait(&r->cv, &r->mu);
    if (r->closing) {
        pthread_mutex_unlock(&r->mu);
        return cnn_err_set(err, CNN_EBUSY, "registry shutting down");
    }
    r->scanning = 1;
    if (verbose)
        *verbose = r->scans == 0;
    pthread_mutex_unlock(&r->mu);
    return 0;
}

void registry_end_scan(struct registry *r)
{
    pthread_mutex_lock(&r->mu);
    r->scanning = 0;
    r->scans++;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/* Inserts the new versions into me's list (newest first), unlists every version not in
 * keep[0..n_keep), sets the pin and logs the changes.  Takes r->mu. */
void registry_commit_versions(struct registry *r, struct mentry *me, struct ventry *fresh,
                              const int *keep, int n_keep, int pin)
{
    pthread_mutex_lock(&r->mu);
    struct ventry *live = registry_live_of(me);
    int old_live = live ? live->pub.version : 0;
    while (fresh) {
        struct ventry *ve = fresh;
        fresh = fresh->next;
        struct ventry **pp = &me->versions;
        while (*pp && (*pp)->pub.version > ve->pub.version)
            pp = &(*pp)->next;
        ve->next = *pp;
        *pp = ve;
        r->alive++;
    }
    int n_dropped = 0, dropped_versions[8];
    for (struct ventry **pp = &me->versions; *pp;) {
        struct ventry *ve = *pp;
        int kept = 0;
        for (int i = 0; i < n_keep && !kept; i++)
            kept = keep[i] == ve->pub.version;
        if (kept) {
            pp = &ve->next;
            continue;
        }
        *pp = ve->next;
        if (n_dropped < 8)
            dropped_versions[n_dropped] = ve->pub.version;
        n_dropped++;
        ve->listed = 0;
        ve->next = NULL;
        registry_unref_locked(r, ve);
    }
    me->pinned = pin;
    live = registry_live_of(me);
    int new_live = live ? live->pub.version : 0;
    pthread_mutex_unlock(&r->mu);
    if (new_live != old_live)
        log_info("model live name=%s version=%d previous=%d pinned=%d", me->name, new_live,
                 old_live, pin != 0);
    for (int i = 0; i < n_dropped && i < 8; i++)
        log_info("model version unloaded name=%s version=%d", me->name, dropped_versions[i]);
}

/* The live version of me (0 = none).  Takes r->mu. */
int registry_live_version(struct registry *r, struct mentry *me)
{
    pthread_mutex_lock(&r->mu);
    struct ventry *live = registry_live_of(me);
    int v = live ? live->pub.version : 0;
    pthread_mutex_unlock(&r->mu);
    return v;
}

/* ---- life cycle -------------------------------------------------------------------- */

struct registry *registry_create(const struct registry_config *cfg, struct cnn_err *err)
{
    if (!cfg || !cfg->repository || !cfg->repository[0]) {
        cnn_err_set(err, CNN_EINVAL, "registry: no repository folder");
        return NULL;
    }
    if (cfg->max_versions < 1 || cfg->max_versions > MAX_VERSIONS) {
        cnn_err_set(err, CNN_EINVAL, "registry: max_versions %d outside 1..%d", cfg->max_versions,
                    MAX_VERSIONS);
        return NULL;
    }
    struct registry *r = calloc(1, sizeof *r);
    if (!r || !(r->repository = strdup(cfg->repository))) {
        free(r);
        cnn_err_set(err, CNN_ENOMEM, "registry: out of memory");
        return NULL;
    }
    r->batching = cfg->batching;
    r->max_versions = cfg->max_versions;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    pthread_cond_init(&r->jcv, NULL);
    int rc = pthread_create(&r->janitor, NULL, janitor_main, r);
    if (rc) {
        cnn_err_set(err, CNN_ENOMEM, "registry: cannot start janitor thread: %s", strerror(rc));
        pthread_cond_destroy(&r->jcv);
        pthread_cond_destroy(&r->cv);
        pthread_mutex_destroy(&r->mu);
        free(r->repository);
        free(r);
        return NULL;
    }
    return r;
}

void registry_destroy(struct registry *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    r->closing = 1;
    pthread_cond_broadcast(&r->cv); /* scans waiting to start give up */
    while (r->scanning)
        pthread_cond_wait(&r->cv, &r->mu);
    for (struct mentry *me = r->models; me; me = me->next) {
        struct ventry *ve = me->versions;
        me->versions = NULL;
        while (ve) {
            struct ventry *next = ve->next;
            ve->listed = 0;
            ve->next = NULL;
            registry_unref_locked(r, ve);
            ve = next;
        }
    }
    r->janitor_stop = 1;
    pthread_cond_signal(&r->jcv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->janitor, NULL); /* returns once every version is freed */
    struct mentry *me = r->models;
    while (me) {
        struct mentry *next = me->next;
        free(me->failed);
        free(me);
        me = next;
    }
    pthread_cond_destroy(&r->jcv);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r->repository);
    free(r);
}
