/* Shared by dataset*.c only: the dataset struct, its allocation and storing one decoded
 * image as an item, so the IDX and folder loaders fill the same in-memory form. */
#ifndef CNN_DATASET_INTERNAL_H
#define CNN_DATASET_INTERNAL_H

#include "dataset.h"
#include "fsroot.h"
#include "image.h"

struct cnn_dataset {
    struct cnn_preproc pp;  /* the model's; items are stored at (pp.c, pp.h, pp.w) */
    struct cnn_preproc raw; /* pp without invert and mean/std: what items hold, x 255 */
    int n, classes;
    size_t item_bytes;            /* pp.c * pp.h * pp.w */
    uint8_t *pix;                 /* owned: n * item_bytes */
    int *labels;                  /* owned: n */
    int *class_count;             /* owned: classes */
    char (*names)[CNN_LABEL_MAX]; /* owned, folder datasets only; else NULL */
    char *source;                 /* owned: "idx:..." or "folder:..." */
    float *scratch;               /* owned: item_bytes floats for storing one image */
};

/* Checks pp and creates a dataset for n items (pixels and labels allocated, zeroed).
 * source is copied.  NULL with err set on failure. */
struct cnn_dataset *cnn_dataset_alloc(const struct cnn_preproc *pp, int n, const char *source,
                                      struct cnn_err *err);

/* Resizes/converts img to the item shape and stores it as item i (rounded to 8 bits). */
int cnn_dataset_store(struct cnn_dataset *d, int i, const struct cnn_image *img,
                      struct cnn_err *err);

/* cnn_dataset_load_idx / _load_folder with every path opened through cnn_fsroot_open under
 * root (NULL: as given). */
int cnn_dataset_load_idx_at(const struct cnn_fsroot *root, const char *images_path,
                            const char *labels_path, const struct cnn_preproc *pp,
                            struct cnn_dataset **out, struct cnn_err *err);
int cnn_dataset_load_folder_at(const struct cnn_fsroot *root, const char *dir,
                               const struct cnn_preproc *pp, size_t max_pixels,
                               struct cnn_dataset **out, struct cnn_err *err);

/* Counts items per class once labels are set; classes = largest label + 1 when 0. */
int cnn_dataset_count_classes(struct cnn_dataset *d, int classes, struct cnn_err *err);

#endif
