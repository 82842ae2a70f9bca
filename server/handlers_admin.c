/* Admin handlers (admin listener threads, authenticated already): model listing, load,
 * unload, activate (pin) and unpin; fine-tune jobs: start (body checked field by field,
 * dataset resolved under the data root), list, show, cancel.  Examples are examples.c. */
#include "admin.h"
#include "handlers.h"
#include "jobs.h"
#include "multipart.h"
#include "repository.h"
#include "safepath.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define MAX_TREE_ENTRIES 2000000L /* entries a dataset folder walk looks at */

/* ---- models ------------------------------------------------------------------------------ */

static json_t *model_obj(json_t *models, const char *name)
{
    json_t *m = json_object_get(models, name);
    if (!m) {
        m = json_pack("{s:s, s:n, s:b, s:[], s:[]}", "name", name, "live_version", "pinned", 0,
                      "loaded", "available");
        if (json_object_set_new(models, name, m) != 0)
            return NULL;
    }
    return m;
}

static void list_loaded(const struct model_version *mv, int is_live, void *arg)
{
    json_t *m = model_obj(arg, mv->name);
    if (!m)
        return;
    json_array_append_new(json_object_get(m, "loaded"),
                          json_pack("{s:i, s:b, s:i}", "version", mv->version, "live", is_live,
                                    "classes", cnn_model_num_classes(mv->model)));
    if (is_live)
        json_object_set_new(m, "live_version", json_integer(mv->version));
}

void handle_admin_models(struct request *r)
{
    json_t *by_name = json_object();
    if (by_name)
        registry_foreach(r->app->reg, list_loaded, by_name);
    char(*names)[REPO_NAME_MAX] = NULL;
    int n = 0;
    struct cnn_err err = {0};
    if (by_name && repo_list_models(r->app->cfg->model_repository, 0, &names, &n, &err) == 0) {
        for (int i = 0; i < n; i++) {
            json_t *m = model_obj(by_name, names[i]);
            struct repo_version *v = NULL;
            int nv = 0;
            if (!m ||
                repo_list_versions(r->app->cfg->model_repository, names[i], &v, &nv, &err) != 0)
                continue;
            for (int k = 0; k < nv; k++)
                json_array_append_new(json_object_get(m, "available"), json_integer(v[k].version));
            free(v);
        }
    }
    free(names);
    json_t *list = json_array();
    const char *key;
    json_t *m;
    json_object_foreach(by_name, key, m)
    {
        int pinned = registry_pinned(r->app->reg, key);
        json_object_set_new(m, "pinned", json_boolean(pinned > 0));
        json_object_set_new(m, "state",
                            json_string(json_is_integer(json_object_get(m, "live_version"))
                                            ? "live"
                                            : "not loaded"));
        json_array_append(list, m);
    }
    json_decref(by_name);
    http_reply_json(r, 200, json_pack("{s:o}", "models", list));
}

/* {"name":..,"live_version":..,"pinned":..} after a change. */
static void reply_model_state(struct request *r, int status)
{
    struct model_version *mv = NULL;
    struct cnn_err err = {0};
    int live = registry_acquire(r->app->reg, r->model, 0, &mv, &err) == 0 ? mv->version : 0;
    if (mv)
        registry_release(r->app->reg, mv);
    int pinned = registry_pinned(r->app->reg, r->model);
    json_t *j = json_pack("{s:s, s:o, s:b}", "name", r->model, "live_version",
                          live ? json_integer(live) : json_null(), "pinned", pinned > 0);
    http_reply_json(r, status, j);
}

static void reply_registry_error(struct request *r, const struct cnn_err *err)
{
    http_reply_error(r, err->code == CNN_EIO ? 500 : http_status_of(err->code), "%s", err->msg);
}

void handle_admin_model_load(struct request *r)
{
    struct cnn_err err = {0};
    if (registry_load_model(r->app->reg, r->model, &err) != 0)
        reply_registry_error(r, &err);
    else
        reply_model_state(r, 200);
}

void handle_admin_model_unload(struct request *r)
{
    struct cnn_err err = {0};
    if (registry_unload_model(r->app->reg, r->model, &err) != 0)
        reply_registry_error(r, &err);
    else
        reply_model_state(r, 200);
}

void handle_admin_model_activate(struct request *r)
{
    struct cnn_err err = {0};
    if (registry_activate(r->app->reg, r->model, r->version, &err) != 0)
        reply_registry_error(r, &err);
    else
        reply_model_state(r, 200);
}

void handle_admin_model_unpin(struct request *r)
{
    struct cnn_err err = {0};
    if (registry_activate(r->app->reg, r->model, 0, &err) != 0)
        reply_registry_error(r, &err);
    else
        reply_model_state(r, 200);
}

/* ---- jobs -------------------------------------------------------------------------------- */

/* Resolves spec->path under the data root and checks it suits the format.  0, or replies. */
static int resolve_dataset(struct request *r, const struct job_spec *spec, char *real, size_t cap)
{
    const char *root = r->app->cfg->data_root;
    struct cnn_err err = {0};
    struct stat st;
    if (stat(root, &st) != 0 || !S_ISDIR(st.st_mode)) {
        http_reply_error(r, 404,
                         "dataset.path: '%.200s' not found: the data root (option data_root) "
                         "does not exist",
                         spec->path);
        return -1;
    }
    int rc = safepath_resolve(root, spec->path, strlen(spec->path), real, cap, &err);
    if (rc == CNN_ENOENT) {
        http_reply_error(r, 404,
                         "dataset.path: '%.200s' not found under the data root (option "
                         "data_root; `make demo-data` puts Fashion-MNIST at fashion-mnist)",
                         spec->path);
        return -1;
    }
    if (rc) {
        http_reply_error(r, rc == CNN_EIO ? 500 : 400, "dataset.path: %s", err.msg);
        return -1;
    }
    if (stat(real, &st) != 0 || (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) ||
        (spec->format == CNN_DATASET_FOLDER && !S_ISDIR(st.st_mode))) {
        http_reply_error(r, 400, "dataset.path: %s",
                         spec->format == CNN_DATASET_FOLDER
                             ? "a folder dataset needs a folder of class folders"
                             : "an idx dataset needs a folder of IDX files or an images file");
        return -1;
    }
    char root_real[PATH_MAX];
    if (!realpath(root, root_real)) {
        http_reply_error(r, 500, "dataset.path: the data root cannot be resolved");
        return -1;
    }
    rc = safepath_check_tree(root_real, real, spec->format == CNN_DATASET_FOLDER ? 2 : 1,
                             MAX_TREE_ENTRIES, &err);
    if (rc) {
        http_reply_error(r, rc == CNN_EIO ? 500 : 400, "dataset.path: %s", err.msg);
        return -1;
    }
    return 0;
}

/* The body is JSON: no Content-Type, application/json (or +json), or curl -d's default
 * application/x-www-form-urlencoded pass; anything else is 415. */
static int json_content_type(struct request *r)
{
    const char *ct = http_header(r, "Content-Type");
    if (!ct || mime_type_is(ct, "application/json") ||
        mime_type_is(ct, "application/x-www-form-urlencoded"))
        return 1;
    size_t n = strcspn(ct, ";");
    while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
        n--;
    return n > 5 && strncasecmp(ct + n - 5, "+json", 5) == 0;
}

void handle_admin_finetune(struct request *r)
{
    struct job_spec spec;
    struct cnn_err err = {0};
    if (!json_content_type(r)) {
        http_reply_error(r, 415, "Content-Type must be application/json (the fine-tune body is a "
                                 "JSON object)");
        return;
    }
    int rc = job_spec_parse(r->body ? r->body : "", r->body_len, &spec, &err);
    if (rc) {
        http_reply_error(r, http_status_of(rc), "%s", err.msg);
        return;
    }
    if (http_acquire_model(r) != 0) {
        job_spec_free(&spec);
        return;
    }
    const struct cnn_model *m = r->mv->model;
    if (spec.freeze[0] && cnn_model_find_layer(m, spec.freeze) < 0) {
        http_reply_error(r, 400, "freeze: model %s has no layer named '%s'", r->mv->name,
                         spec.freeze);
        job_spec_free(&spec);
        return;
    }
    char real[PATH_MAX];
    if (resolve_dataset(r, &spec, real, sizeof real) != 0) {
        job_spec_free(&spec);
        return;
    }
    long id = 0;
    rc = jobs_submit(admin_jobs(r), r->mv->name, &spec, real, &id, &err);
    job_spec_free(&spec); /* emptied when taken over */
    if (rc) {
        if (rc == CNN_EBUSY)
            r->retry_after = 5;
        http_reply_error(r, rc == CNN_EBUSY ? 409 : http_status_of(rc), "%s", err.msg);
        return;
    }
    char loc[64];
    snprintf(loc, sizeof loc, "/admin/v1/jobs/%ld", id);
    http_set_location(r, loc);
    http_reply_json(r, 202,
                    json_pack("{s:I, s:s, s:s, s:s}", "id", (json_int_t)id, "state", "queued",
                              "model", r->mv->name, "location", loc));
}

void handle_admin_jobs(struct request *r)
{
    http_reply_json(r, 200, jobs_list_json(admin_jobs(r)));
}

void handle_admin_job(struct request *r)
{
    json_t *j = jobs_status_json(admin_jobs(r), admin_job_id(r));
    if (!j)
        http_reply_error(r, 404, "no job %ld", admin_job_id(r));
    else
        http_reply_json(r, 200, j);
}

void handle_admin_job_cancel(struct request *r)
{
    enum job_state state;
    struct cnn_err err = {0};
    int rc = jobs_cancel(admin_jobs(r), admin_job_id(r), &state, &err);
    if (rc == CNN_ENOENT) {
        http_reply_error(r, 404, "%s", err.msg);
        return;
    }
    if (rc) {
        http_reply_error(r, 409, "%s", err.msg);
        return;
    }
    json_t *j = jobs_status_json(admin_jobs(r), admin_job_id(r));
    http_reply_json(r, 202, j);
}
