/* Model repository on disk: names and versions found in the folder, identity of files
 * (to notice changes), and NAME/config.ini plus the labels file it names.
 * Pure functions of the file system; no state, no threads.  Used by registry.c.
 *
 * Layout: REPO/NAME/VERSION/model.cnn with NAME = [A-Za-z0-9_.-]{1,63} not starting with
 * '.', VERSION = a positive decimal integer without leading zeros; optional
 * REPO/NAME/config.ini:
 *     [batching]
 *     max_batch_size = 8          ; 1..4096
 *     max_queue_delay_us = 1000   ; 0..60000000
 *     max_queue_size = 256        ; 1..1000000
 *     instances = 1               ; 1..64
 *     [model]
 *     labels = labels.txt         ; one label per line, path relative to NAME/
 * Unknown sections or keys are errors.  Preprocessing overrides are not supported (the
 * model file carries its preprocessing). */
#ifndef REPOSITORY_H
#define REPOSITORY_H

#include "batcher.h"

#include <sys/stat.h>
#include "err.h"

#include <stdint.h>

#define REPO_NAME_MAX 64 /* model name incl. NUL */

/* 1 when s is a valid model name. */
int repo_valid_name(const char *s);
/* The version a folder name stands for, or 0 when it is not a valid version name. */
int repo_parse_version(const char *s);

/* Identity of a file: a rewrite or a rename over it changes it. All zero = absent. */
struct repo_file_id {
    int64_t mtime_ns, size;
    uint64_t ino, dev;
};
int repo_file_id_eq(const struct repo_file_id *a, const struct repo_file_id *b);

/* Model names in repo (sub-folders with valid names), sorted.  *names is malloc'd (free
 * it), *n its count.  Entries skipped as invalid are logged at warn when verbose, else at
 * debug.  CNN_EIO/CNN_ENOENT when repo cannot be read. */
int repo_list_models(const char *repo, int verbose, char (**names)[REPO_NAME_MAX], int *n,
                     struct cnn_err *err);

struct repo_version {
    int version;
    struct repo_file_id id; /* of model.cnn (or model.onnx) */
};
/* The model file of repo/name/version into path (cap bytes): model.cnn, else model.onnx
 * when only that one is a regular file (then *st is its stat).  0, or -1 when neither is. */
int repo_model_file(char *path, size_t cap, const char *repo, const char *name,
                    const char *version, struct stat *st);
/* Versions of repo/name that hold a regular file model.cnn or model.onnx (a version folder without it
 * is being published and is skipped), newest first.  *out malloc'd (free it). */
int repo_list_versions(const char *repo, const char *name, struct repo_version **out, int *n,
                       struct cnn_err *err);

/* [preprocessing] of config.ini: overrides of the model's own preprocessing, one bit of
 * set per key given (an imported ONNX model carries none; docs/onnx.md). */
enum {
    REPO_PP_RESIZE = 1 << 0,        /* resize = stretch | shorter_crop */
    REPO_PP_RESIZE_SHORT = 1 << 1,  /* resize_short = N */
    REPO_PP_INVERT = 1 << 2,        /* invert = 0 | 1 */
    REPO_PP_MEAN = 1 << 3,          /* mean = M or M0,M1,M2 (in the units of scale) */
    REPO_PP_STD = 1 << 4,           /* std = S or S0,S1,S2 */
    REPO_PP_SCALE = 1 << 5,         /* scale = F: the model wants pixels in [0, F] (e.g. 255) */
    REPO_PP_INPUT_SIZE = 1 << 6,    /* input_size = HxW: must be the model's */
    REPO_PP_CHANNEL_ORDER = 1 << 7, /* channel_order = rgb | bgr (bgr: 3-channel models) */
};
struct repo_preproc {
    unsigned set;
    int resize; /* enum cnn_resize */
    int resize_short, invert;
    int bgr;           /* channel_order: 0 rgb, 1 bgr */
    int n_mean, n_std; /* 1 (every channel) or 3 */
    float mean[3], std[3], scale;
    int h, w;
};
/* The model's preprocessing pp with the overrides o applied (scale folded into mean and
 * std: (x * scale - mean) / std = (x - mean / scale) / (std / scale)) into *out.
 * CNN_EINVAL when they do not fit the model (input size, 3 values for a gray model, a
 * crop larger than resize_short, ...). */
int repo_apply_preproc(const struct repo_preproc *o, const struct cnn_preproc *pp,
                       struct cnn_preproc *out, struct cnn_err *err);

struct repo_model_config {
    struct repo_preproc pp;         /* [preprocessing]; pp.set 0 when absent */
    struct batcher_config batching; /* the defaults given, overridden by [batching] */
    char **labels;                  /* from [model] labels; NULL when not set */
    int n_labels;
    struct repo_file_id config_id, labels_id; /* all zero when absent */
};
/* Reads repo/name/config.ini (absent = defaults) and the labels file it names.  Errors
 * name the file, line and key relative to the repository ("m/config.ini:3: key
 * max_batch_size: ..."); CNN_EINVAL for bad content, CNN_EIO for unreadable files.
 * Free with repo_config_free() (also after a failure, when config_id and labels_id are
 * still filled as far as the files were read). */
int repo_read_config(const char *repo, const char *name, const struct batcher_config *defaults,
                     struct repo_model_config *out, struct cnn_err *err);
void repo_config_free(struct repo_model_config *cfg);

#endif
