/* Dataset core: allocation and storing items, read access, opening a path by format,
 * class subsets, seeded shuffling and stratified splits, and normalised (optionally
 * augmented) batches.  The loaders are dataset_idx.c and dataset_folder.c. */
#include "dataset.h"
#include "dataset_internal.h"
#include "tensor.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- seeded generator: splitmix64 (Steele, Lea, Flood 2014) ----------------------- */

static uint64_t next_u64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [0, n) for n < 2^31 (multiply-shift; bias below n / 2^32). */
static uint32_t below(uint64_t *s, uint32_t n)
{
    return (uint32_t)(((next_u64(s) >> 32) * n) >> 32);
}

/* ---- allocation and storing ------------------------------------------------------- */

struct cnn_dataset *cnn_dataset_alloc(const struct cnn_preproc *pp, int n, const char *source,
                                      struct cnn_err *err)
{
    if (cnn_preproc_check_image(pp, err))
        return NULL;
    if (n < 0 || n > CNN_DATASET_MAX_ITEMS) {
        cnn_err_set(err, CNN_ELIMIT, "dataset: %d items (limit %d)", n, CNN_DATASET_MAX_ITEMS);
        return NULL;
    }
    size_t item = (size_t)pp->c * (size_t)pp->h * (size_t)pp->w, total;
    if (cnn_mul_size(item, (size_t)n, &total) || total > CNN_DATASET_MAX_BYTES) {
        cnn_err_set(err, CNN_ELIMIT, "dataset: %d items of %zu bytes exceed %zu MiB", n, item,
                    CNN_DATASET_MAX_BYTES >> 20);
        return NULL;
    }
    struct cnn_dataset *d = calloc(1, sizeof *d);
    if (!d)
        goto oom;
    d->pp = *pp;
    d->raw = *pp;
    d->raw.invert = 0;
    for (int k = 0; k < 3; k++) {
        d->raw.mean[k] = 0.0f;
        d->raw.std[k] = 1.0f;
    }
    d->n = n;
    d->item_bytes = item;
    d->pix = calloc(total ? total : 1, 1);
    d->labels = calloc(n ? (size_t)n : 1, sizeof *d->labels);
    d->scratch = malloc(item * sizeof *d->scratch);
    d->source = strdup(source ? source : "");
    if (!d->pix || !d->labels || !d->scratch || !d->source)
        goto oom;
    return d;
oom:
    cnn_dataset_destroy(d);
    cnn_err_set(err, CNN_ENOMEM, "dataset: out of memory for %d items", n);
    return NULL;
}

int cnn_dataset_store(struct cnn_dataset *d, int i, const struct cnn_image *img,
                      struct cnn_err *err)
{
    int rc = cnn_image_to_tensor(img, &d->raw, d->scratch, err);
    if (rc)
        return rc;
    uint8_t *dst = d->pix + (size_t)i * d->item_bytes;
    for (size_t k = 0; k < d->item_bytes; k++) {
        float v = d->scratch[k] * 255.0f + 0.5f;
        dst[k] = v <= 0.0f ? 0 : v >= 255.0f ? 255 : (uint8_t)v;
    }
    return 0;
}

int cnn_dataset_count_classes(struct cnn_dataset *d, int classes, struct cnn_err *err)
{
    if (classes == 0)
        for (int i = 0; i < d->n; i++)
            classes = d->labels[i] + 1 > classes ? d->labels[i] + 1 : classes;
    if (classes <= 0)
        return cnn_err_set(err, CNN_EINVAL, "dataset: no classes");
    free(d->class_count);
    d->class_count = calloc((size_t)classes, sizeof *d->class_count);
    if (!d->class_count)
        return cnn_err_set(err, CNN_ENOMEM, "dataset: out of memory");
    d->classes = classes;
    for (int i = 0; i < d->n; i++)
        d->class_count[d->labels[i]]++;
    return 0;
}

void cnn_dataset_destroy(struct cnn_dataset *d)
{
    if (!d)
        return;
    free(d->pix);
    free(d->labels);
    free(d->class_count);
    free(d->names);
    free(d->source);
    free(d->scratch);
    free(d);
}

/* ---- opening by path -------------------------------------------------------------- */

static int exists_file(const struct cnn_fsroot *root, const char *path)
{
    struct stat st;
    return cnn_fsroot_stat(root, path, &st, NULL) == 0 && S_ISREG(st.st_mode);
}

/* buf = dir/<split>-<kind>-ubyte[.gz], whichever exists (plain first); 0 when neither. */
static int find_idx(const struct cnn_fsroot *root, const char *dir, const char *split,
                    const char *kind, char *buf, size_t n)
{
    static const char *const ext[2] = {"", ".gz"};
    for (int i = 0; i < 2; i++) {
        int len = snprintf(buf, n, "%s/%s-%s-ubyte%s", dir, split, kind, ext[i]);
        if (len > 0 && (size_t)len < n && exists_file(root, buf))
            return 1;
    }
    return 0;
}

/* 1 when dir holds a regular file named like "*-images-idx3-ubyte*" (an IDX folder). */
static int has_idx_files(const struct cnn_fsroot *root, const char *dir)
{
    DIR *dp = cnn_fsroot_opendir(root, dir, NULL);
    if (!dp)
        return 0;
    struct dirent *e;
    int found = 0;
    char path[4096];
    while (!found && (e = readdir(dp)) != NULL) {
        if (!strstr(e->d_name, "-images-idx3-ubyte") && !strstr(e->d_name, "-images-idx4-ubyte"))
            continue;
        int len = snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        found = len > 0 && (size_t)len < sizeof path && exists_file(root, path);
    }
    closedir(dp);
    return found;
}

static int open_idx_dir(const struct cnn_fsroot *root, const char *dir, const char *split,
                        const struct cnn_preproc *pp, struct cnn_dataset **out,
                        struct cnn_err *err)
{
    char img[4096], lab[4096];
    if (!find_idx(root, dir, split, "images-idx3", img, sizeof img) &&
        !find_idx(root, dir, split, "images-idx4", img, sizeof img))
        return cnn_err_set(err, CNN_ENOENT, "dataset: no %s-images-idx3-ubyte[.gz] in %.100s",
                           split, dir);
    if (!find_idx(root, dir, split, "labels-idx1", lab, sizeof lab))
        return cnn_err_set(err, CNN_ENOENT, "dataset: no %s-labels-idx1-ubyte[.gz] in %.100s",
                           split, dir);
    return cnn_dataset_load_idx_at(root, img, lab, pp, out, err);
}

static int open_idx_file(const struct cnn_fsroot *root, const char *path,
                         const struct cnn_preproc *pp, struct cnn_dataset **out,
                         struct cnn_err *err)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *at = strstr(base, "images-idx");
    if (!at || (at[10] != '3' && at[10] != '4'))
        return cnn_err_set(err, CNN_EINVAL,
                           "dataset: %.100s: IDX images file name lacks 'images-idx3', so the "
                           "labels file cannot be found",
                           base);
    size_t len = strlen(path);
    char *lab = malloc(len + 1);
    if (!lab)
        return cnn_err_set(err, CNN_ENOMEM, "dataset: out of memory");
    memcpy(lab, path, len + 1);
    memcpy(lab + (at - path), "labels-idx1", 11);
    int rc = cnn_dataset_load_idx_at(root, path, lab, pp, out, err);
    free(lab);
    return rc;
}

int cnn_dataset_open(const char *path, enum cnn_dataset_format fmt, const char *split,
                     const struct cnn_preproc *pp, struct cnn_dataset **out, struct cnn_err *err)
{
    return cnn_dataset_open_at(NULL, path, fmt, split, pp, out, err);
}

int cnn_dataset_open_at(const struct cnn_fsroot *root, const char *path,
                        enum cnn_dataset_format fmt, const char *split,
                        const struct cnn_preproc *pp, struct cnn_dataset **out,
                        struct cnn_err *err)
{
    if (!out)
        return cnn_err_set(err, CNN_EINVAL, "dataset: no output pointer");
    *out = NULL;
    if (!path || !path[0])
        return cnn_err_set(err, CNN_EINVAL, "dataset: no path given");
    if (!split || !split[0])
        split = "train";
    struct stat st;
    struct cnn_err e = {0};
    int rc = cnn_fsroot_stat(root, path, &st, &e);
    if (rc == CNN_EINVAL)
        return cnn_err_set(err, rc, "dataset: %s", e.msg);
    if (rc)
        return cnn_err_set(err, CNN_ENOENT, "dataset: %.120s: no such file or folder", path);
    int is_dir = S_ISDIR(st.st_mode);
    if (!is_dir && !S_ISREG(st.st_mode))
        return cnn_err_set(err, CNN_EINVAL, "dataset: %.120s: not a file or folder", path);
    if (fmt == CNN_DATASET_FOLDER) {
        if (!is_dir)
            return cnn_err_set(err, CNN_EINVAL,
                               "dataset: %.120s: a folder dataset must be a "
                               "folder",
                               path);
        return cnn_dataset_load_folder_at(root, path, pp, CNN_IMAGE_DEFAULT_MAX_PIXELS, out, err);
    }
    if (!is_dir)
        return open_idx_file(root, path, pp, out, err);
    if (fmt == CNN_DATASET_IDX)
        return open_idx_dir(root, path, split, pp, out, err);
    if (has_idx_files(root, path)) /* also when the split is missing: say so */
        return open_idx_dir(root, path, split, pp, out, err);
    return cnn_dataset_load_folder_at(root, path, pp, CNN_IMAGE_DEFAULT_MAX_PIXELS, out, err);
}

/* ---- read access ------------------------------------------------------------------ */

int cnn_dataset_count(const struct cnn_dataset *d)
{
    return d->n;
}
int cnn_dataset_num_classes(const struct cnn_dataset *d)
{
    return d->classes;
}
const char *cnn_dataset_class_name(const struct cnn_dataset *d, int i)
{
    return d->names && i >= 0 && i < d->classes ? d->names[i] : NULL;
}
int cnn_dataset_label(const struct cnn_dataset *d, int i)
{
    return d->labels[i];
}
int cnn_dataset_class_count(const struct cnn_dataset *d, int k)
{
    return k >= 0 && k < d->classes ? d->class_count[k] : 0;
}
const struct cnn_preproc *cnn_dataset_preproc(const struct cnn_dataset *d)
{
    return &d->pp;
}
const uint8_t *cnn_dataset_pixels(const struct cnn_dataset *d, int i)
{
    return d->pix + (size_t)i * d->item_bytes;
}
const char *cnn_dataset_source(const struct cnn_dataset *d)
{
    return d->source;
}

/* ---- class subsets ---------------------------------------------------------------- */

int cnn_dataset_keep_classes(struct cnn_dataset *d, const int *classes, int n, struct cnn_err *err)
{
    if (!d || !classes || n <= 0)
        return cnn_err_set(err, CNN_EINVAL, "dataset: no classes to keep");
    int *map = malloc((size_t)d->classes * sizeof *map);
    if (!map)
        return cnn_err_set(err, CNN_ENOMEM, "dataset: out of memory");
    for (int k = 0; k < d->classes; k++)
        map[k] = -1;
    int kept = 0, rc = 0;
    for (int j = 0; j < n; j++) {
        if (classes[j] < 0 || classes[j] >= d->classes) {
            rc = cnn_err_set(err, CNN_EINVAL, "dataset: class %d not in 0..%d", classes[j],
                             d->classes - 1);
            goto out;
        }
        if (map[classes[j]] >= 0) {
            rc = cnn_err_set(err, CNN_EINVAL, "dataset: class %d listed twice", classes[j]);
            goto out;
        }
        map[classes[j]] = j;
        kept += d->class_count[classes[j]];
    }
    if (kept == 0) {
        rc = cnn_err_set(err, CNN_EINVAL, "dataset: the chosen classes have no items");
        goto out;
    }
    int w = 0;
    for (int i = 0; i < d->n; i++) {
        if (map[d->labels[i]] < 0)
            continue;
        if (w != i)
            memcpy(d->pix + (size_t)w * d->item_bytes, d->pix + (size_t)i * d->item_bytes,
                   d->item_bytes);
        d->labels[w++] = map[d->labels[i]];
    }
    d->n = w;
    if (d->names) {
        char(*names)[CNN_LABEL_MAX] = malloc((size_t)n * sizeof *names);
        if (!names) { /* the items are already renumbered: keep going without names */
            free(d->names);
            d->names = NULL;
        } else {
            for (int j = 0; j < n; j++)
                memcpy(names[j], d->names[classes[j]], sizeof names[j]);
            free(d->names);
            d->names = names;
        }
    }
    rc = cnn_dataset_count_classes(d, n, err);
out:
    free(map);
    return rc;
}

/* ---- ordering --------------------------------------------------------------------- */

void cnn_dataset_shuffle(int *perm, const int *idx, int n, uint64_t seed)
{
    for (int i = 0; i < n; i++)
        perm[i] = idx ? idx[i] : i;
    uint64_t s = seed;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)below(&s, (uint32_t)i + 1);
        int t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

int cnn_dataset_split(const struct cnn_dataset *d, double val_fraction, uint64_t seed,
                      int *train_idx, int *n_train, int *val_idx, int *n_val, struct cnn_err *err)
{
    if (!(val_fraction >= 0.0 && val_fraction < 1.0))
        return cnn_err_set(err, CNN_EINVAL, "dataset: validation fraction %g not in [0, 1)",
                           val_fraction);
    int *perm = malloc((d->n ? (size_t)d->n : 1) * sizeof *perm);
    int *taken = calloc((size_t)d->classes, sizeof *taken);
    if (!perm || !taken) {
        free(perm);
        free(taken);
        return cnn_err_set(err, CNN_ENOMEM, "dataset: out of memory");
    }
    cnn_dataset_shuffle(perm, NULL, d->n, seed);
    int nt = 0, nv = 0;
    for (int i = 0; i < d->n; i++) {
        int k = d->labels[perm[i]];
        int want = (int)floor(d->class_count[k] * val_fraction + 0.5);
        if (taken[k] < want) {
            taken[k]++;
            val_idx[nv++] = perm[i];
        } else {
            train_idx[nt++] = perm[i];
        }
    }
    free(perm);
    free(taken);
    qsort(train_idx, (size_t)nt, sizeof *train_idx, cmp_int);
    qsort(val_idx, (size_t)nv, sizeof *val_idx, cmp_int);
    *n_train = nt;
    *n_val = nv;
    if (nt == 0)
        return cnn_err_set(err, CNN_EINVAL,
                           "dataset: validation fraction %g leaves no training "
                           "items of %d",
                           val_fraction, d->n);
    return 0;
}

/* ---- batches ---------------------------------------------------------------------- */

void cnn_dataset_batch(const struct cnn_dataset *d, const int *idx, int n,
                       const struct cnn_augment *aug, uint64_t seed, float *images, int *labels)
{
    const struct cnn_preproc *pp = &d->pp;
    float lut[3][256]; /* the same float steps as cnn_image_to_tensor() */
    cnn_preproc_lut(pp, lut);
    const int H = pp->h, W = pp->w;
    const size_t plane = (size_t)H * (size_t)W;
    int pad = aug && aug->crop_pad > 0 ? aug->crop_pad : 0, flip = aug && aug->hflip;
    for (int j = 0; j < n; j++) {
        const uint8_t *src = d->pix + (size_t)idx[j] * d->item_bytes;
        float *dst = images + (size_t)j * d->item_bytes;
        if (labels)
            labels[j] = d->labels[idx[j]];
        int dx = 0, dy = 0, fl = 0;
        if (pad || flip) {
            uint64_t s = seed ^ (0xD1B54A32D192ED03ull * ((uint64_t)j + 1));
            if (pad) {
                dx = (int)below(&s, 2u * (uint32_t)pad + 1) - pad;
                dy = (int)below(&s, 2u * (uint32_t)pad + 1) - pad;
            }
            if (flip)
                fl = (int)below(&s, 2);
        }
        if (!dx && !dy && !fl) {
            for (int k = 0; k < pp->c; k++)
                for (size_t q = 0; q < plane; q++)
                    dst[k * plane + q] = lut[k][src[k * plane + q]];
            continue;
        }
        /* out(y, x) = in(y + dy, x' + dx) with x' = W-1-x when flipped; outside -> 0 */
        for (int k = 0; k < pp->c; k++)
            for (int y = 0; y < H; y++) {
                int sy = y + dy;
                float *row = dst + k * plane + (size_t)y * W;
                if (sy < 0 || sy >= H) {
                    for (int x = 0; x < W; x++)
                        row[x] = lut[k][0];
                    continue;
                }
                const uint8_t *srow = src + k * plane + (size_t)sy * W;
                for (int x = 0; x < W; x++) {
                    int sx = (fl ? W - 1 - x : x) + dx;
                    row[x] = lut[k][sx >= 0 && sx < W ? srow[sx] : 0];
                }
            }
    }
}
