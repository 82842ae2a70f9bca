/* Model registry: loaded versions per model name, the live one, counted references, and a
 * janitor thread that frees versions nobody uses any more.
 *
 * DESIGN: r->mu guards the model list, each model's list of loaded versions (newest
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
 * Policy: a loaded version is never reloaded when its file changes (publish a new
 * version number); a version whose load failed is not retried until its model.cnn,
 * config.ini or labels file changes; a bad config.ini is logged and counted once per
 * distinct error (the model's loaded versions keep serving); a model folder or version
 * folder removed from disk leaves its loaded versions serving until newer versions push
 * them out.  registry_destroy waits until every reference has been released. */
#include "registry.h"

#include "log.h"
#include "repository.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
};

struct mentry {
    char name[REPO_NAME_MAX];
    struct ventry *versions; /* r->mu; listed versions, newest first */
    struct mentry *next;     /* r->mu; entries are only freed by registry_destroy */
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

/* ---- references and the janitor ---------------------------------------------------- */

/* Caller holds r->mu. */
static void unref_locked(struct registry *r, struct ventry *ve)
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
    cnn_model_destroy(ve->model);
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
static struct mentry *find_model(struct registry *r, const char *name)
{
    for (struct mentry *me = r->models; me; me = me->next)
        if (strcmp(me->name, name) == 0)
            return me;
    return NULL;
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
    struct mentry *me = find_model(r, name);
    struct ventry *ve = me ? me->versions : NULL;
    if (version > 0)
        while (ve && ve->pub.version != version)
            ve = ve->next;
    if (!ve) {
        pthread_mutex_unlock(&r->mu);
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
    unref_locked(r, ve);
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
        for (struct mentry *me = r->models; me; me = me->next)
            for (struct ventry *ve = me->versions; ve; ve = ve->next) {
                ve->refs++;
                list[n].ve = ve;
                list[n].is_live = ve == me->versions;
                n++;
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
        unref_locked(r, list[i].ve);
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

/* ---- scanning ---------------------------------------------------------------------- */

static struct failure *find_failure(struct mentry *me, int version)
{
    for (int i = 0; i < me->n_failed; i++)
        if (me->failed[i].version == version)
            return &me->failed[i];
    return NULL;
}

static void forget_failure(struct mentry *me, int version)
{
    struct failure *f = find_failure(me, version);
    if (f)
        *f = me->failed[--me->n_failed];
}

static void remember_failure(struct mentry *me, int version, const struct repo_file_id *model_id,
                             const struct repo_model_config *cfg)
{
    struct failure *f = find_failure(me, version);
    if (!f) {
        void *p = realloc(me->failed, (size_t)(me->n_failed + 1) * sizeof *me->failed);
        if (!p)
            return; /* it will be retried and logged again: harmless */
        me->failed = p;
        f = &me->failed[me->n_failed++];
    }
    *f = (struct failure){version, *model_id, cfg->config_id, cfg->labels_id};
}

/* Failures of versions no longer on disk are forgotten. */
static void prune_failures(struct mentry *me, const struct repo_version *disk, int n_disk)
{
    for (int i = 0; i < me->n_failed;) {
        int found = 0;
        for (int k = 0; k < n_disk && !found; k++)
            found = disk[k].version == me->failed[i].version;
        if (found)
            i++;
        else
            me->failed[i] = me->failed[--me->n_failed];
    }
}

/* Loads repo/name/version/model.cnn, applies the labels override and starts its batcher.
 * No lock held. */
static int load_version(struct registry *r, struct mentry *me, int version,
                        const struct repo_model_config *cfg, struct ventry **out,
                        struct cnn_err *err)
{
    *out = NULL;
    char path[PATH_MAX];
    int len = snprintf(path, sizeof path, "%s/%s/%d/model.cnn", r->repository, me->name, version);
    if (len < 0 || (size_t)len >= sizeof path)
        return cnn_err_set(err, CNN_ELIMIT, "path too long");
    struct cnn_model *m = NULL;
    int rc = cnn_model_load(path, &m, err);
    if (rc)
        return rc;
    if (cfg->labels) {
        if (cfg->n_labels != cnn_model_num_classes(m)) {
            rc = cnn_err_set(err, CNN_EINVAL, "labels file has %d labels, the model %d classes",
                             cfg->n_labels, cnn_model_num_classes(m));
            goto fail;
        }
        rc = cnn_model_set_labels(m, (const char *const *)cfg->labels, cfg->n_labels, err);
        if (rc)
            goto fail;
    }
    struct ventry *ve = calloc(1, sizeof *ve);
    if (!ve) {
        rc = cnn_err_set(err, CNN_ENOMEM, "out of memory");
        goto fail;
    }
    ve->pub.batcher = batcher_create(m, &cfg->batching, err);
    if (!ve->pub.batcher) {
        free(ve);
        rc = err->code ? err->code : CNN_ENOMEM;
        goto fail;
    }
    snprintf(ve->name, sizeof ve->name, "%s", me->name);
    ve->pub.name = ve->name;
    ve->pub.version = version;
    ve->pub.model = m;
    ve->model = m;
    ve->refs = 1; /* the registry's */
    ve->listed = 1;
    *out = ve;
    return 0;
fail:
    cnn_model_destroy(m);
    return rc;
}

/* Reads the model's config when first needed in a scan.  Returns 1 when usable, 0 when
 * bad; *failures counts a bad config once per distinct error. */
static int need_config(struct registry *r, struct mentry *me, struct repo_model_config *cfg,
                       int *state, int *failures)
{
    if (*state != 0)
        return *state > 0;
    struct cnn_err err = {0};
    if (repo_read_config(r->repository, me->name, &r->batching, cfg, &err) == 0) {
        me->config_error[0] = '\0';
        *state = 1;
        return 1;
    }
    *state = -1;
    if (strcmp(me->config_error, err.msg) != 0) {
        log_error("model config invalid name=%s error=\"%s\"", me->name, err.msg);
        snprintf(me->config_error, sizeof me->config_error, "%s", err.msg);
        (*failures)++;
    } else {
        log_debug("model config still invalid name=%s", me->name);
    }
    return 0;
}

/* Inserts the new versions into me's list (newest first), unlists all but the
 * max_versions newest, and logs the changes.  Takes r->mu. */
static void commit_versions(struct registry *r, struct mentry *me, struct ventry *fresh)
{
    pthread_mutex_lock(&r->mu);
    int old_live = me->versions ? me->versions->pub.version : 0;
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
    struct ventry **pp = &me->versions;
    for (int kept = 0; *pp && kept < r->max_versions; kept++)
        pp = &(*pp)->next;
    struct ventry *dropped = *pp;
    *pp = NULL;
    int new_live = me->versions ? me->versions->pub.version : 0;
    int n_dropped = 0, dropped_versions[8];
    while (dropped) {
        struct ventry *ve = dropped;
        dropped = dropped->next;
        if (n_dropped < 8)
            dropped_versions[n_dropped] = ve->pub.version;
        n_dropped++;
        ve->listed = 0;
        ve->next = NULL;
        unref_locked(r, ve);
    }
    pthread_mutex_unlock(&r->mu);
    if (new_live != old_live)
        log_info("model live name=%s version=%d previous=%d", me->name, new_live, old_live);
    for (int i = 0; i < n_dropped && i < 8; i++)
        log_info("model version unloaded name=%s version=%d", me->name, dropped_versions[i]);
}

/* Brings one model up to date.  Returns the number of new failures (each logged). */
static int scan_model(struct registry *r, struct mentry *me)
{
    struct cnn_err err = {0};
    struct repo_version *disk = NULL;
    int n_disk = 0;
    if (repo_list_versions(r->repository, me->name, &disk, &n_disk, &err) != 0) {
        log_warn("model folder unreadable name=%s error=\"%s\"", me->name, err.msg);
        return 0;
    }
    /* the loaded versions, newest first (only this thread changes the list) */
    int loaded[MAX_VERSIONS], n_loaded = 0;
    pthread_mutex_lock(&r->mu);
    for (struct ventry *ve = me->versions; ve && n_loaded < MAX_VERSIONS; ve = ve->next)
        loaded[n_loaded++] = ve->pub.version;
    pthread_mutex_unlock(&r->mu);

    struct repo_model_config cfg = {0};
    int cfg_state = 0, failures = 0, kept = 0, i = 0, j = 0;
    struct ventry *fresh = NULL, **fresh_tail = &fresh;
    while (kept < r->max_versions && (i < n_disk || j < n_loaded)) {
        if (j < n_loaded && (i >= n_disk || loaded[j] >= disk[i].version)) {
            if (i < n_disk && loaded[j] == disk[i].version)
                i++;
            j++;
            kept++;
            continue;
        }
        const struct repo_version *dv = &disk[i++];
        if (!need_config(r, me, &cfg, &cfg_state, &failures))
            continue;
        struct failure *f = find_failure(me, dv->version);
        if (f && repo_file_id_eq(&f->model_id, &dv->id) &&
            repo_file_id_eq(&f->config_id, &cfg.config_id) &&
            repo_file_id_eq(&f->labels_id, &cfg.labels_id))
            continue; /* failed before, nothing changed */
        struct ventry *ve = NULL;
        err = (struct cnn_err){0};
        if (load_version(r, me, dv->version, &cfg, &ve, &err) != 0) {
            log_error("model load failed name=%s version=%d error=\"%s\"", me->name, dv->version,
                      err.msg);
            remember_failure(me, dv->version, &dv->id, &cfg);
            failures++;
            continue;
        }
        forget_failure(me, dv->version);
        log_info("model loaded name=%s version=%d classes=%d max_batch_size=%d "
                 "max_queue_delay_us=%d max_queue_size=%d instances=%d",
                 me->name, dv->version, cnn_model_num_classes(ve->model),
                 cfg.batching.max_batch_size, cfg.batching.max_queue_delay_us,
                 cfg.batching.max_queue_size, cfg.batching.instances);
        *fresh_tail = ve;
        fresh_tail = &ve->next;
        kept++;
    }
    prune_failures(me, disk, n_disk);
    free(disk);
    repo_config_free(&cfg);
    if (fresh || n_loaded > r->max_versions)
        commit_versions(r, me, fresh);
    return failures;
}

/* The model entry for name, added when new.  NULL when out of memory. */
static struct mentry *model_entry(struct registry *r, const char *name)
{
    pthread_mutex_lock(&r->mu);
    struct mentry *me = find_model(r, name);
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

int registry_scan(struct registry *r, struct cnn_err *err)
{
    pthread_mutex_lock(&r->mu);
    while (r->scanning && !r->closing)
        pthread_cond_wait(&r->cv, &r->mu);
    if (r->closing) {
        pthread_mutex_unlock(&r->mu);
        return cnn_err_set(err, CNN_EBUSY, "registry shutting down");
    }
    r->scanning = 1;
    int verbose = r->scans == 0;
    pthread_mutex_unlock(&r->mu);

    char(*names)[REPO_NAME_MAX] = NULL;
    int n = 0;
    int rc = repo_list_models(r->repository, verbose, &names, &n, err);
    if (rc) {
        log_error("repository scan failed error=\"%s\"", err ? err->msg : cnn_strerror(rc));
    } else {
        for (int i = 0; i < n; i++) {
            struct mentry *me = model_entry(r, names[i]);
            if (!me) {
                log_error("repository scan failed name=%s error=\"out of memory\"", names[i]);
                rc++;
                continue;
            }
            rc += scan_model(r, me);
        }
        log_debug("repository scanned models=%d failures=%d", n, rc);
    }
    free(names);

    pthread_mutex_lock(&r->mu);
    r->scanning = 0;
    r->scans++;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    return rc;
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
            unref_locked(r, ve);
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
