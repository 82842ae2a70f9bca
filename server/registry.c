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
#include "repository.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

/* The live version: the pinned one when it is listed, else the newest.  Caller holds r->mu. */
static struct ventry *live_of(struct mentry *me)
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
    struct mentry *me = find_model(r, name);
    struct ventry *ve = me ? me->versions : NULL;
    if (version > 0)
        while (ve && ve->pub.version != version)
            ve = ve->next;
    else if (me)
        ve = live_of(me);
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
        for (struct mentry *me = r->models; me; me = me->next) {
            struct ventry *live = live_of(me);
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
                             const struct repo_model_config *cfg, const char *msg)
{
    struct failure *f = find_failure(me, version);
    if (!f) {
        void *p = realloc(me->failed, (size_t)(me->n_failed + 1) * sizeof *me->failed);
        if (!p)
            return; /* it will be retried and logged again: harmless */
        me->failed = p;
        f = &me->failed[me->n_failed++];
    }
    *f = (struct failure){version, *model_id, cfg->config_id, cfg->labels_id, ""};
    snprintf(f->msg, sizeof f->msg, "%s", msg);
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

/* Inserts the new versions into me's list (newest first), unlists every version not in
 * keep[0..n_keep), sets the pin and logs the changes.  Takes r->mu. */
static void commit_versions(struct registry *r, struct mentry *me, struct ventry *fresh,
                            const int *keep, int n_keep, int pin)
{
    pthread_mutex_lock(&r->mu);
    struct ventry *live = live_of(me);
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
        unref_locked(r, ve);
    }
    me->pinned = pin;
    live = live_of(me);
    int new_live = live ? live->pub.version : 0;
    pthread_mutex_unlock(&r->mu);
    if (new_live != old_live)
        log_info("model live name=%s version=%d previous=%d pinned=%d", me->name, new_live,
                 old_live, pin != 0);
    for (int i = 0; i < n_dropped && i < 8; i++)
        log_info("model version unloaded name=%s version=%d", me->name, dropped_versions[i]);
}

/* REPO/NAME/live_version: the pinned version, 0 when the file is absent, -1 when it does
 * not hold a version number. */
static int read_pin(const char *repo, const char *name)
{
    char path[PATH_MAX], buf[32];
    int len = snprintf(path, sizeof path, "%s/%s/live_version", repo, name);
    if (len < 0 || (size_t)len >= sizeof path)
        return -1;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n \t")] = '\0';
    int v = repo_parse_version(buf);
    return v > 0 ? v : -1;
}

/* Writes (version > 0) or removes (0) REPO/NAME/live_version: temp file, fsync, rename,
 * fsync of the folder. */
static int write_pin(const char *repo, const char *name, int version, struct cnn_err *err)
{
    char dir[PATH_MAX], path[PATH_MAX + 16], tmp[PATH_MAX + 48];
    int len = snprintf(dir, sizeof dir, "%s/%s", repo, name);
    if (len < 0 || (size_t)len >= sizeof dir)
        return cnn_err_set(err, CNN_ELIMIT, "repository path too long");
    snprintf(path, sizeof path, "%s/live_version", dir);
    int rc = 0;
    if (version > 0) {
        static atomic_int seq;
        snprintf(tmp, sizeof tmp, "%s/.live_version.%d.%d", dir, (int)getpid(),
                 atomic_fetch_add(&seq, 1));
        char text[24];
        int n = snprintf(text, sizeof text, "%d\n", version);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        int ok = fd >= 0 && write(fd, text, (size_t)n) == n && fsync(fd) == 0;
        if (fd >= 0)
            close(fd);
        if (!ok || rename(tmp, path) != 0) {
            rc = cnn_err_set(err, CNN_EIO, "cannot write %s/live_version: %s", name,
                             strerror(errno));
            unlink(tmp);
            return rc;
        }
    } else if (unlink(path) != 0 && errno != ENOENT) {
        return cnn_err_set(err, CNN_EIO, "cannot remove %s/live_version: %s", name,
                           strerror(errno));
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

struct scan_state {
    struct repo_model_config cfg;
    int cfg_state, failures;
    struct ventry *fresh, **fresh_tail;
};

/* Loads disk version dv into the scan's fresh list unless it failed before and nothing
 * changed.  1 when loaded. */
static int try_load(struct registry *r, struct mentry *me, const struct repo_version *dv,
                    struct scan_state *st)
{
    if (!need_config(r, me, &st->cfg, &st->cfg_state, &st->failures))
        return 0;
    struct failure *f = find_failure(me, dv->version);
    if (f && repo_file_id_eq(&f->model_id, &dv->id) &&
        repo_file_id_eq(&f->config_id, &st->cfg.config_id) &&
        repo_file_id_eq(&f->labels_id, &st->cfg.labels_id))
        return 0; /* failed before, nothing changed */
    struct ventry *ve = NULL;
    struct cnn_err err = {0};
    if (load_version(r, me, dv->version, &st->cfg, &ve, &err) != 0) {
        log_error("model load failed name=%s version=%d error=\"%s\"", me->name, dv->version,
                  err.msg);
        remember_failure(me, dv->version, &dv->id, &st->cfg, err.msg);
        st->failures++;
        return 0;
    }
    forget_failure(me, dv->version);
    log_info("model loaded name=%s version=%d classes=%d max_batch_size=%d "
             "max_queue_delay_us=%d max_queue_size=%d instances=%d",
             me->name, dv->version, cnn_model_num_classes(ve->model),
             st->cfg.batching.max_batch_size, st->cfg.batching.max_queue_delay_us,
             st->cfg.batching.max_queue_size, st->cfg.batching.instances);
    *st->fresh_tail = ve;
    st->fresh_tail = &ve->next;
    return 1;
}

/* Brings one model up to date.  Returns the number of new failures (each logged). */
static int scan_model(struct registry *r, struct mentry *me)
{
    if (me->unloaded)
        return 0;
    struct cnn_err err = {0};
    struct repo_version *disk = NULL;
    int n_disk = 0;
    if (repo_list_versions(r->repository, me->name, &disk, &n_disk, &err) != 0) {
        log_warn("model folder unreadable name=%s error=\"%s\"", me->name, err.msg);
        return 0;
    }
    /* the loaded versions, newest first (only this thread changes the list) */
    int loaded[MAX_VERSIONS + 1], n_loaded = 0;
    pthread_mutex_lock(&r->mu);
    for (struct ventry *ve = me->versions; ve && n_loaded <= MAX_VERSIONS; ve = ve->next)
        loaded[n_loaded++] = ve->pub.version;
    pthread_mutex_unlock(&r->mu);

    struct scan_state st = {0};
    st.fresh_tail = &st.fresh;
    int keep[MAX_VERSIONS + 2], n_keep = 0;
    int pin = read_pin(r->repository, me->name);
    if (pin != 0) {
        int is_loaded = 0, disk_at = -1;
        for (int k = 0; k < n_loaded; k++)
            is_loaded |= loaded[k] == pin;
        for (int k = 0; k < n_disk && pin > 0; k++)
            if (disk[k].version == pin)
                disk_at = k;
        if (pin > 0 && (is_loaded || (disk_at >= 0 && try_load(r, me, &disk[disk_at], &st)))) {
            keep[n_keep++] = pin;
            me->pin_warned = 0;
        } else {
            if (me->pin_warned != pin)
                log_warn("model pin ignored name=%s pinned=%d reason=\"%s\"", me->name, pin,
                         pin < 0 ? "live_version does not hold a version number"
                                 : "that version is not loaded and cannot be loaded");
            me->pin_warned = pin;
            pin = 0;
        }
    }
    int budget = r->max_versions - (pin ? 1 : 0), kept = 0, i = 0, j = 0;
    while (kept < budget && (i < n_disk || j < n_loaded)) {
        if (i < n_disk && disk[i].version == pin) {
            i++;
            continue;
        }
        if (j < n_loaded && loaded[j] == pin) {
            j++;
            continue;
        }
        if (j < n_loaded && (i >= n_disk || loaded[j] >= disk[i].version)) {
            if (i < n_disk && loaded[j] == disk[i].version)
                i++;
            keep[n_keep++] = loaded[j++];
            kept++;
            continue;
        }
        const struct repo_version *dv = &disk[i++];
        if (try_load(r, me, dv, &st)) {
            keep[n_keep++] = dv->version;
            kept++;
        }
    }
    prune_failures(me, disk, n_disk);
    free(disk);
    repo_config_free(&st.cfg);
    commit_versions(r, me, st.fresh, keep, n_keep, pin);
    return st.failures;
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

/* Waits until no scan runs and makes this thread the scanning one.  *verbose (optional) = 1
 * for the first scan.  CNN_EBUSY while shutting down. */
static int begin_scan(struct registry *r, int *verbose, struct cnn_err *err)
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

static void end_scan(struct registry *r)
{
    pthread_mutex_lock(&r->mu);
    r->scanning = 0;
    r->scans++;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

int registry_scan(struct registry *r, struct cnn_err *err)
{
    int verbose = 0;
    int rc = begin_scan(r, &verbose, err);
    if (rc)
        return rc;

    char(*names)[REPO_NAME_MAX] = NULL;
    int n = 0;
    rc = repo_list_models(r->repository, verbose, &names, &n, err);
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
    end_scan(r);
    return rc;
}

/* ---- live version by hand, load and unload (admin API) ------------------------------ */

/* The live version of me (0 = none).  Takes r->mu. */
static int live_version(struct registry *r, struct mentry *me)
{
    pthread_mutex_lock(&r->mu);
    struct ventry *live = live_of(me);
    int v = live ? live->pub.version : 0;
    pthread_mutex_unlock(&r->mu);
    return v;
}

/* Scanning thread: sets the pin file to `pin` (0 removes it), rescans me and checks that
 * `want` (> 0) is then live; if not, restores the previous pin and rescans. */
static int set_pin(struct registry *r, struct mentry *me, int pin, int want, struct cnn_err *err)
{
    int old = read_pin(r->repository, me->name);
    int rc = write_pin(r->repository, me->name, pin, err);
    if (rc)
        return rc;
    pthread_mutex_lock(&r->mu);
    me->unloaded = 0;
    pthread_mutex_unlock(&r->mu);
    scan_model(r, me);
    if (want <= 0 || live_version(r, me) == want)
        return 0;
    struct failure *f = find_failure(me, want);
    rc = cnn_err_set(err, f ? CNN_EFORMAT : CNN_EIO, "version %d of %s did not go live: %s", want,
                     me->name, f ? f->msg : "it could not be loaded (see the log)");
    struct cnn_err ignored = {0};
    write_pin(r->repository, me->name, old > 0 ? old : 0, &ignored);
    scan_model(r, me);
    return rc;
}

/* The model entry for an existing model folder; CNN_ENOENT when the folder or (when
 * version > 0) that version is on neither disk nor loaded. */
static int model_for(struct registry *r, const char *name, int version, struct mentry **out,
                     struct cnn_err *err)
{
    if (!repo_valid_name(name))
        return cnn_err_set(err, CNN_EINVAL, "invalid model name");
    struct repo_version *disk = NULL;
    int n_disk = 0, found = version <= 0;
    struct cnn_err lerr = {0};
    int listed = repo_list_versions(r->repository, name, &disk, &n_disk, &lerr) == 0;
    for (int i = 0; i < n_disk && !found; i++)
        found = disk[i].version == version;
    free(disk);
    pthread_mutex_lock(&r->mu);
    struct mentry *me = find_model(r, name);
    for (struct ventry *ve = me ? me->versions : NULL; ve && !found; ve = ve->next)
        found = ve->pub.version == version;
    pthread_mutex_unlock(&r->mu);
    if (!listed && !me)
        return cnn_err_set(err, CNN_ENOENT, "unknown model %s", name);
    if (!found)
        return cnn_err_set(err, CNN_ENOENT, "model %s has no version %d", name, version);
    *out = me ? me : model_entry(r, name);
    return *out ? 0 : cnn_err_set(err, CNN_ENOMEM, "out of memory");
}

int registry_activate(struct registry *r, const char *name, int version, struct cnn_err *err)
{
    struct mentry *me = NULL;
    int rc = begin_scan(r, NULL, err);
    if (rc)
        return rc;
    rc = model_for(r, name, version, &me, err);
    if (rc == 0)
        rc = set_pin(r, me, version > 0 ? version : 0, version, err);
    end_scan(r);
    if (rc == 0)
        log_info("model activated name=%s version=%d pinned=%d", name,
                 version > 0 ? version : live_version(r, me), version > 0);
    return rc;
}

int registry_publish(struct registry *r, const char *name, int version, struct cnn_err *err)
{
    struct mentry *me = NULL;
    int rc = begin_scan(r, NULL, err);
    if (rc)
        return rc;
    rc = model_for(r, name, version, &me, err);
    if (rc == 0)
        rc = set_pin(r, me, 0, version, err);
    end_scan(r);
    return rc;
}

int registry_load_model(struct registry *r, const char *name, struct cnn_err *err)
{
    struct mentry *me = NULL;
    int rc = begin_scan(r, NULL, err);
    if (rc)
        return rc;
    rc = model_for(r, name, 0, &me, err);
    if (rc == 0) {
        pthread_mutex_lock(&r->mu);
        me->unloaded = 0;
        pthread_mutex_unlock(&r->mu);
        scan_model(r, me);
        if (live_version(r, me) == 0)
            rc = cnn_err_set(err, CNN_EIO, "no version of %s could be loaded (see the log)", name);
    }
    end_scan(r);
    return rc;
}

int registry_unload_model(struct registry *r, const char *name, struct cnn_err *err)
{
    int rc = begin_scan(r, NULL, err);
    if (rc)
        return rc;
    pthread_mutex_lock(&r->mu);
    struct mentry *me = repo_valid_name(name) ? find_model(r, name) : NULL;
    if (me)
        me->unloaded = 1;
    pthread_mutex_unlock(&r->mu);
    if (me) {
        commit_versions(r, me, NULL, NULL, 0, 0);
        log_info("model unloaded name=%s", name);
    } else {
        rc = cnn_err_set(err, CNN_ENOENT, "unknown model %s",
                         repo_valid_name(name) ? name : "(invalid name)");
    }
    end_scan(r);
    return rc;
}

int registry_pinned(struct registry *r, const char *name)
{
    pthread_mutex_lock(&r->mu);
    struct mentry *me = find_model(r, name);
    int v = me ? me->pinned : 0;
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
