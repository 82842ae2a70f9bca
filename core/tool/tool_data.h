/* Dataset options shared by `cnn train` and `cnn eval`: --data PATH, --format, --split and
 * --classes (a class subset), opened for a model's preprocessing; and comma lists. */
#ifndef CNN_TOOL_DATA_H
#define CNN_TOOL_DATA_H

#include "dataset.h"

struct tool_data_opts {
    const char *path;    /* --data (required) */
    const char *format;  /* --format auto|idx|folder, NULL = auto */
    const char *split;   /* --split: IDX file prefix inside a folder ("train", "t10k") */
    const char *classes; /* --classes "0,1,7": keep these, renumbered 0.. in that order */
};

/* Opens the dataset for pp, applies --classes; prints "cnn: <cmd>: ..." or
 * "cnn: <path>: ..." and returns TOOL_USAGE / TOOL_RUNTIME on failure, else TOOL_OK with
 * *out owned by the caller. */
int tool_open_dataset(const char *cmd, const struct tool_data_opts *o, const struct cnn_preproc *pp,
                      struct cnn_dataset **out);

/* Splits "a,b,c" into at most max items: *items is one malloc'd block (strings point into
 * it, free(*items) frees all); *n gets the count.  Empty items are refused.  Returns
 * TOOL_OK or prints a usage error for option `opt` and returns TOOL_USAGE. */
int tool_split_list(const char *cmd, const char *opt, const char *s, int max, char ***items,
                    int *n);

#endif
