/* Model listing and metadata: GET /v1/models (every loaded version with its state, input
 * shape and labels), GET /v2/models/{name}[/versions/{v}] (KServe v2 model metadata) and
 * .../ready. */
#include "handlers.h"
#include "http.h"
#include "infer.h"
#include "predict.h"

#include <stdio.h>
#include <string.h>

/* {"name":..,"live_version":..,"versions":[..],"input":{..},"num_classes":..,"labels":[..]} */
static json_t *model_entry(json_t *models, const char *name)
{
    size_t i;
    json_t *m;
    json_array_foreach(models, i, m)
    {
        if (strcmp(json_string_value(json_object_get(m, "name")), name) == 0)
            return m;
    }
    m = json_pack("{s:s, s:[]}", "name", name, "versions");
    if (m && json_array_append_new(models, m) != 0)
        return NULL;
    return m;
}

/* How images become the model's input (its own preprocessing, or config.ini's). */
static json_t *preproc_json(const struct cnn_preproc *pp)
{
    json_t *mean = json_array(), *std = json_array();
    for (int c = 0; c < cnn_preproc_norm_channels(pp) && mean && std; c++) {
        json_array_append_new(mean, json_real(pp->mean[c]));
        json_array_append_new(std, json_real(pp->std[c]));
    }
    return json_pack("{s:s, s:i, s:b, s:s, s:o, s:o}", "resize",
                     pp->resize == CNN_RESIZE_SHORTER_CROP ? "shorter_crop" : "stretch",
                     "resize_short", pp->resize_short, "invert", pp->invert, "channel_order",
                     pp->bgr ? "bgr" : "rgb", "mean", mean, "std", std);
}

static json_t *shape_json(const struct cnn_model *model)
{
    const struct cnn_preproc *pp = cnn_model_preproc(model);
    return json_pack("{s:[i, i, i], s:s}", "shape", pp->c, pp->h, pp->w, "datatype", "FP32");
}

static void list_one(const struct model_version *mv, int is_live, void *arg)
{
    json_t *m = model_entry(arg, mv->name);
    if (!m)
        return;
    json_array_append_new(
        json_object_get(m, "versions"),
        json_pack("{s:i, s:s}", "version", mv->version, "state", is_live ? "live" : "retiring"));
    if (!is_live)
        return;
    int classes = cnn_model_num_classes(mv->model);
    json_t *labels = json_array();
    for (int i = 0; labels && i < classes; i++) {
        char buf[32];
        json_array_append_new(labels,
                              predict_json_string(predict_label(mv->model, i, buf, sizeof buf)));
    }
    json_object_set_new(m, "live_version", json_integer(mv->version));
    json_object_set_new(m, "input", shape_json(mv->model));
    json_object_set_new(m, "num_classes", json_integer(classes));
    json_object_set_new(m, "labels", labels);
}

void handle_v1_models(struct request *r)
{
    json_t *models = json_array();
    if (models)
        registry_foreach(r->app->reg, list_one, models);
    http_reply_json(r, 200, json_pack("{s:o}", "models", models));
}

static void version_of(const struct model_version *mv, int is_live, void *arg)
{
    json_t *a = arg;
    (void)is_live;
    const char *name = json_string_value(json_array_get(a, 0));
    char v[16];
    snprintf(v, sizeof v, "%d", mv->version);
    if (strcmp(mv->name, name) == 0)
        json_array_append_new(a, json_string(v));
}

void handle_model_metadata(struct request *r)
{
    if (http_acquire_model(r) != 0)
        return;
    const struct cnn_model *m = r->mv->model;
    const struct cnn_preproc *pp = cnn_model_preproc(m);
    /* versions: collected behind a first element holding the name, then removed */
    json_t *versions = json_pack("[s]", r->mv->name);
    if (versions) {
        registry_foreach(r->app->reg, version_of, versions);
        json_array_remove(versions, 0);
    }
    json_t *j = json_pack("{s:s, s:o, s:s, s:[{s:s, s:s, s:[i, i, i, i]}], "
                          "s:[{s:s, s:s, s:[i, i]}], s:{s:o, s:b}}",
                          "name", r->mv->name, "versions", versions, "platform", "cnnd", "inputs",
                          "name", V2_INPUT_NAME, "datatype", "FP32", "shape", -1, pp->c, pp->h,
                          pp->w, "outputs", "name", V2_OUTPUT_NAME, "datatype", "FP32", "shape", -1,
                          cnn_model_num_classes(m), "parameters", "preprocessing",
                          preproc_json(pp), "labelled", cnn_model_label(m, 0) != NULL);
    http_reply_json(r, 200, j);
}

void handle_model_ready(struct request *r)
{
    if (atomic_load(&r->app->draining)) {
        http_reply_error(r, 503, "server is shutting down");
        return;
    }
    if (http_acquire_model(r) != 0)
        return;
    http_reply(r, 200, NULL, NULL, 0);
}
