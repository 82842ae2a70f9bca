/* Opening a dataset from the `cnn train` / `cnn eval` options (--data, --format, --split,
 * --classes) and splitting comma lists (--classes, --labels). */
#include "tool_data.h"

#include "opts.h"
#include "tool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int tool_split_list(const char *cmd, const char *opt, const char *s, int max, char ***items, int *n)
{
    *items = NULL;
    *n = 0;
    size_t len = strlen(s);
    int count = 1;
    for (size_t i = 0; i < len; i++)
        count += s[i] == ',';
    if (count > max)
        return tool_usage(cmd, "%s: %d items, at most %d", opt, count, max);
    /* one block: the pointer array, then a copy of the text */
    char **v = malloc((size_t)count * sizeof *v + len + 1);
    if (!v)
        return tool_fail(cmd, "out of memory");
    char *text = (char *)(v + count);
    memcpy(text, s, len + 1);
    int k = 0;
    for (char *p = text;;) {
        char *comma = strchr(p, ',');
        if (comma)
            *comma = '\0';
        if (!*p) {
            free(v);
            return tool_usage(cmd, "%s: empty item in '%s'", opt, s);
        }
        v[k++] = p;
        if (!comma)
            break;
        p = comma + 1;
    }
    *items = v;
    *n = k;
    return TOOL_OK;
}

static int parse_format(const char *cmd, const char *s, enum cnn_dataset_format *fmt)
{
    if (!s || strcmp(s, "auto") == 0)
        *fmt = CNN_DATASET_AUTO;
    else if (strcmp(s, "idx") == 0)
        *fmt = CNN_DATASET_IDX;
    else if (strcmp(s, "folder") == 0)
        *fmt = CNN_DATASET_FOLDER;
    else
        return tool_usage(cmd, "--format: '%s' is not auto, idx or folder", s);
    return TOOL_OK;
}

int tool_open_dataset(const char *cmd, const struct tool_data_opts *o, const struct cnn_preproc *pp,
                      struct cnn_dataset **out)
{
    *out = NULL;
    if (!o->path)
        return tool_usage(cmd, "--data PATH is required");
    enum cnn_dataset_format fmt = CNN_DATASET_AUTO;
    if (parse_format(cmd, o->format, &fmt))
        return TOOL_USAGE;
    int *keep = NULL, n_keep = 0;
    if (o->classes) {
        char **items;
        if (tool_split_list(cmd, "--classes", o->classes, CNN_MAX_CLASSES, &items, &n_keep))
            return TOOL_USAGE;
        keep = malloc((size_t)n_keep * sizeof *keep);
        if (!keep) {
            free(items);
            return tool_fail(cmd, "out of memory");
        }
        for (int i = 0; i < n_keep; i++) {
            long long v;
            if (opts_int(cmd, "--classes", items[i], 0, CNN_MAX_CLASSES - 1, &v)) {
                free(items);
                free(keep);
                return TOOL_USAGE;
            }
            keep[i] = (int)v;
        }
        free(items);
    }
    struct cnn_err err = {0};
    struct cnn_dataset *d = NULL;
    int rc = cnn_dataset_open(o->path, fmt, o->split, pp, &d, &err);
    if (rc == 0 && keep)
        rc = cnn_dataset_keep_classes(d, keep, n_keep, &err);
    free(keep);
    if (rc) {
        cnn_dataset_destroy(d);
        return tool_fail(o->path, "%s", err.msg);
    }
    *out = d;
    return TOOL_OK;
}
