/* Registry, scanning (see registry.c for the DESIGN note): brings each model's loaded
 * versions in line with the repository -- loads new versions, drops the ones pushed out --
 * and remembers failed loads and bad configs so they are logged once and retried only when
 * their files change; also loading and unloading a model by name.
 * Lock: only r->mu (owned by registry.c), taken briefly through its helpers and never held
 * across a model load, a batcher start, file I/O or logging; never two locks.  Runs only on
 * the scanning thread (registry_begin_scan), which alone touches failure memory. */
#include "registry.h"

#include "durable.h"
#include "log.h"
#include "registry_internal.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- scanning ---------------------------------------------------------------------- */

struct failure *registry_find_failure(struct mentry *me, int version)
{
    for (int i = 0; i < me->n_failed; i++)
        if (me->failed[i].version == version)
            return &me->failed[i];
    return NULL;
}

static void forget_failure(struct mentry *me, int version)
{
    struct failure *f = registry_find_failure(me, version);
    if (f)
        *f = me->failed[--me->n_failed];
}

static void remember_failure(struct mentry *me, int version, const struct repo_file_id *model_id,
                             const struct repo_model_config *cfg, const char *msg)
{
    struct failure *f = registry_find_failure(me, version);
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

/* Loads repo/name/version/model.cnn (or model.onnx), applies the labels and preprocessing
 * overrides of config.ini and starts its batcher.
 * No lock held. */
static int load_version(struct registry *r, struct mentry *me, int version,
                        const struct repo_model_config *cfg, struct ventry **out,
                        struct cnn_err *err)
{
    *out = NULL;
    char path[PATH_MAX], vname[16];
    struct stat st;
    snprintf(vname, sizeof vname, "%d", version);
    if (repo_model_file(path, sizeof path, r->repository, me->name, vname, &st))
        return cnn_err_set(err, CNN_ENOENT, "no model.cnn or model.onnx");
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
    if (cfg->pp.set) {
        struct cnn_preproc pp;
        if ((rc = repo_apply_preproc(&cfg->pp, cnn_model_preproc(m), &pp, err)) != 0 ||
            (rc = cnn_model_set_preproc(m, &pp, err)) != 0)
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
    struct failure *f = registry_find_failure(me, dv->version);
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

/* Removes the temp files a crash left in REPO/NAME (e.g. of live_version) once they are
 * CNN_DURABLE_STALE_S old: a live writer, here or in a replica, keeps its temp fresh. */
static void clean_temps(struct registry *r, const struct mentry *me)
{
    char dir[PATH_MAX];
    int len = snprintf(dir, sizeof dir, "%s/%s", r->repository, me->name);
    if (len < 0 || (size_t)len >= sizeof dir)
        return;
    int n = cnn_durable_clean(dir, CNN_DURABLE_STALE_S, NULL);
    if (n > 0)
        log_warn("model folder stale temp files removed name=%s count=%d", me->name, n);
}

int registry_scan_model(struct registry *r, struct mentry *me)
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
    clean_temps(r, me);
    /* the loaded versions, newest first (only this thread changes the list) */
    int loaded[MAX_VERSIONS + 1], n_loaded = 0;
    pthread_mutex_lock(&r->mu);
    for (struct ventry *ve = me->versions; ve && n_loaded <= MAX_VERSIONS; ve = ve->next)
        loaded[n_loaded++] = ve->pub.version;
    pthread_mutex_unlock(&r->mu);

    struct scan_state st = {0};
    st.fresh_tail = &st.fresh;
    int keep[MAX_VERSIONS + 2], n_keep = 0;
    int pin = registry_read_pin(r->repository, me->name);
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
    registry_commit_versions(r, me, st.fresh, keep, n_keep, pin);
    return st.failures;
}

int registry_scan(struct registry *r, struct cnn_err *err)
{
    int verbose = 0;
    int rc = registry_begin_scan(r, &verbose, err);
    if (rc)
        return rc;

    char(*names)[REPO_NAME_MAX] = NULL;
    int n = 0;
    rc = repo_list_models(r->repository, verbose, &names, &n, err);
    if (rc) {
        log_error("repository scan failed error=\"%s\"", err ? err->msg : cnn_strerror(rc));
    } else {
        for (int i = 0; i < n; i++) {
            struct mentry *me = registry_model_entry(r, names[i]);
            if (!me) {
                log_error("repository scan failed name=%s error=\"out of memory\"", names[i]);
                rc++;
                continue;
            }
            rc += registry_scan_model(r, me);
        }
        log_debug("repository scanned models=%d failures=%d", n, rc);
    }
    free(names);
    registry_end_scan(r);
    return rc;
}

/* ---- a model by name (admin API) ------------------------------------------------------ */

/* The model entry for an existing model folder; CNN_ENOENT when the folder or (when
 * version > 0) that version is on neither disk nor loaded. */
int registry_model_for(struct registry *r, const char *name, int version, struct mentry **out,
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
    struct mentry *me = registry_find_model(r, name);
    for (struct ventry *ve = me ? me->versions : NULL; ve && !found; ve = ve->next)
        found = ve->pub.version == version;
    pthread_mutex_unlock(&r->mu);
    if (!listed && !me)
        return cnn_err_set(err, CNN_ENOENT, "unknown model %s", name);
    if (!found)
        return cnn_err_set(err, CNN_ENOENT, "model %s has no version %d", name, version);
    *out = me ? me : registry_model_entry(r, name);
    return *out ? 0 : cnn_err_set(err, CNN_ENOMEM, "out of memory");
}

int registry_load_model(struct registry *r, const char *name, struct cnn_err *err)
{
    struct mentry *me = NULL;
    int rc = registry_begin_scan(r, NULL, err);
    if (rc)
        return rc;
    rc = registry_model_for(r, name, 0, &me, err);
    if (rc == 0) {
        pthread_mutex_lock(&r->mu);
        me->unloaded = 0;
        pthread_mutex_unlock(&r->mu);
        registry_scan_model(r, me);
        if (registry_live_version(r, me) == 0)
            rc = cnn_err_set(err, CNN_EIO, "no version of %s could be loaded (see the log)", name);
    }
    registry_end_scan(r);
    return rc;
}

int registry_unload_model(struct registry *r, const char *name, struct cnn_err *err)
{
    int rc = registry_begin_scan(r, NULL, err);
    if (rc)
        return rc;
    pthread_mutex_lock(&r->mu);
    struct mentry *me = repo_valid_name(name) ? registry_find_model(r, name) : NULL;
    if (me)
        me->unloaded = 1;
    pthread_mutex_unlock(&r->mu);
    if (me) {
        registry_commit_versions(r, me, NULL, NULL, 0, 0);
        log_info("model unloaded name=%s", name);
    } else {
        rc = cnn_err_set(err, CNN_ENOENT, "unknown model %s",
                         repo_valid_name(name) ? name : "(invalid name)");
    }
    registry_end_scan(r);
    return rc;
}
