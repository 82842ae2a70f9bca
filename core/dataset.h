/* Training datasets: IDX files (MNIST / Fashion-MNIST, plain or gzip) and folders of class
 * subfolders of PNG/JPEG images, held in memory as 8-bit planar (C, H, W) items already
 * resized to the model's input; seeded shuffling, a stratified train/validation split,
 * class subsets, and batches with the model's normalisation and optional augmentation
 * (random crop with padding, horizontal flip). */
#ifndef CNN_DATASET_H
#define CNN_DATASET_H

#include "err.h"
#include "model.h"

#include <stddef.h>
#include <stdint.h>

#define CNN_DATASET_MAX_ITEMS (16 * 1024 * 1024)       /* images in one dataset */
#define CNN_DATASET_MAX_DIM 65535                      /* IDX rows or columns */
#define CNN_DATASET_MAX_BYTES ((size_t)4 << 30)        /* stored pixels of one dataset */
#define CNN_DATASET_MAX_FILE_BYTES ((size_t)256 << 20) /* one image file of a folder dataset */

enum cnn_dataset_format {
    CNN_DATASET_AUTO = 0, /* see cnn_dataset_open() */
    CNN_DATASET_IDX,
    CNN_DATASET_FOLDER
};

struct cnn_dataset;

/* Loads an IDX pair.  images: magic 0x00000803 (count, rows, cols) or 0x00000804 (count,
 * rows, cols, channels 1 or 3), unsigned bytes; labels: 0x00000801 (count).  Either file
 * may be gzip-compressed (read through zlib, which also reads plain files).  Every header
 * field is checked: magic and type, dimension counts, equal item counts, limits above,
 * and the payload length (truncated or trailing bytes -> CNN_EFORMAT).  Each image is
 * stored through cnn_image_to_tensor() at pp's size and channels (exact when they match
 * the file, bilinear otherwise).  num_classes = largest label + 1.  *out owned by the
 * caller (cnn_dataset_destroy); NULL on failure.  Any thread. */
int cnn_dataset_load_idx(const char *images_path, const char *labels_path,
                         const struct cnn_preproc *pp, struct cnn_dataset **out,
                         struct cnn_err *err);

/* Loads ROOT/CLASS/FILE: one subfolder per class (names sorted bytewise = labels 0..K-1),
 * image files *.png, *.jpg, *.jpeg (any case) in each, sorted; names starting with '.'
 * and other files are skipped.  Every image is decoded (max_pixels as in image.h) and
 * resized to pp's input; any size is fine.  A file that fails names itself in the error;
 * a class with no images, no classes, or over the limits are errors.  Any thread. */
int cnn_dataset_load_folder(const char *root, const struct cnn_preproc *pp, size_t max_pixels,
                            struct cnn_dataset **out, struct cnn_err *err);

/* Opens path as fmt.  CNN_DATASET_AUTO: a regular file is an IDX images file; a folder
 * holding any "*-images-idx3-ubyte*" file is IDX (CNN_ENOENT when <split>'s files are
 * missing); any other folder is a class folder.
 * IDX from a folder reads <split>-images-idx3-ubyte[.gz] and <split>-labels-idx1-ubyte[.gz]
 * (split e.g. "train" or "t10k"); from an images file, the labels file is the same name
 * with "images-idx3" replaced by "labels-idx1". */
int cnn_dataset_open(const char *path, enum cnn_dataset_format fmt, const char *split,
                     const struct cnn_preproc *pp, struct cnn_dataset **out, struct cnn_err *err);

struct cnn_fsroot;
/* cnn_dataset_open of path relative to the folder root (core/fsroot.h): every folder and
 * file of the dataset is opened under root with no symlink and no way out on any path
 * (CNN_EINVAL naming the path otherwise), so a tree swapped after a check cannot redirect
 * a read.  NULL root: the same as cnn_dataset_open. */
int cnn_dataset_open_at(const struct cnn_fsroot *root, const char *path,
                        enum cnn_dataset_format fmt, const char *split,
                        const struct cnn_preproc *pp, struct cnn_dataset **out,
                        struct cnn_err *err);

void cnn_dataset_destroy(struct cnn_dataset *d);

/* ---- read access (any thread; the dataset is not changed after loading) ---------- */

int cnn_dataset_count(const struct cnn_dataset *d);
int cnn_dataset_num_classes(const struct cnn_dataset *d);
/* Folder datasets: the class folder name; IDX: NULL.  i in 0..num_classes-1. */
const char *cnn_dataset_class_name(const struct cnn_dataset *d, int i);
int cnn_dataset_label(const struct cnn_dataset *d, int i);
/* Items of class k. */
int cnn_dataset_class_count(const struct cnn_dataset *d, int k);
/* The preprocessing the items were stored for (c, h, w: the item shape). */
const struct cnn_preproc *cnn_dataset_preproc(const struct cnn_dataset *d);
/* Stored 8-bit planar (C, H, W) pixels of item i, before invert/mean/std. */
const uint8_t *cnn_dataset_pixels(const struct cnn_dataset *d, int i);
/* "idx:<file>" or "folder:<root>", for lineage metadata. */
const char *cnn_dataset_source(const struct cnn_dataset *d);

/* Keeps only the items whose label is in classes[0..n) and renumbers them: classes[j]
 * becomes label j (class names follow).  Duplicate or out-of-range classes -> CNN_EINVAL;
 * no item left -> CNN_EINVAL.  In place; not while other threads read d. */
int cnn_dataset_keep_classes(struct cnn_dataset *d, const int *classes, int n, struct cnn_err *err);

/* ---- ordering --------------------------------------------------------------------- */

/* perm[0..n) = a permutation of idx[0..n) (idx NULL: of 0..n-1), Fisher-Yates driven by
 * seed: the same seed gives the same order on every machine. */
void cnn_dataset_shuffle(int *perm, const int *idx, int n, uint64_t seed);

/* Stratified split: of each class's items, round(count * val_fraction) chosen by seed go
 * to val_idx, the rest to train_idx; both ascending.  Arrays hold cnn_dataset_count(d)
 * ints.  val_fraction in [0, 1); CNN_EINVAL otherwise or when no training item is left. */
int cnn_dataset_split(const struct cnn_dataset *d, double val_fraction, uint64_t seed,
                      int *train_idx, int *n_train, int *val_idx, int *n_val, struct cnn_err *err);

/* ---- batches ---------------------------------------------------------------------- */

struct cnn_augment {
    int crop_pad; /* >0: shift each image by dx, dy uniform in [-crop_pad, crop_pad] with
                     black (raw 0) fill, as a random crop of the padded image; 0: off */
    int hflip;    /* 1: mirror left-right with probability 1/2 (not for digits) */
};

/* Writes items idx[0..n) into images (n, C, H, W) floats normalised as the preproc says
 * (x = p / 255, inverted when asked, then (x - mean) / std) and their labels into labels
 * (NULL: not wanted).  aug NULL or all zero: no augmentation; else item j's crop and flip
 * are drawn from (seed, j), so a batch is reproducible.  Never allocates; any thread. */
void cnn_dataset_batch(const struct cnn_dataset *d, const int *idx, int n,
                       const struct cnn_augment *aug, uint64_t seed, float *images, int *labels);

#endif
