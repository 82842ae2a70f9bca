/* IDX loader (the MNIST file format: big-endian header of magic, dimension sizes, then
 * unsigned bytes), plain or gzip through zlib.  Both headers are read and checked before
 * anything is allocated; plain files must be exactly as long as their header says, gzip
 * payloads are checked for truncation and trailing bytes while reading. */
#include "dataset.h"
#include "dataset_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

struct idx_file {
    gzFile gz;
    const char *name; /* base name, for messages */
    long long size;   /* file length in bytes */
    int direct;       /* not compressed: size is the payload length */
    int ndims;
    uint32_t dims[4];
};

static const char *base_name(const char *path)
{
    const char *b = strrchr(path, '/');
    return b ? b + 1 : path;
}

/* Reads exactly n bytes; CNN_EFORMAT on a short read (truncated) or corrupt gzip data. */
static int read_exact(struct idx_file *f, void *buf, size_t n, const char *what,
                      struct cnn_err *err)
{
    size_t got = 0;
    while (got < n) {
        size_t want = n - got > (1u << 30) ? (1u << 30) : n - got;
        int r = gzread(f->gz, (char *)buf + got, (unsigned)want);
        if (r < 0) {
            int zerr;
            const char *msg = gzerror(f->gz, &zerr);
            return cnn_err_set(err, zerr == Z_ERRNO ? CNN_EIO : CNN_EFORMAT,
                               "%.60s: corrupt data in %s: %.60s", f->name, what,
                               zerr == Z_ERRNO ? strerror(errno) : msg);
        }
        if (r == 0)
            return cnn_err_set(err, CNN_EFORMAT, "%.60s: truncated in %s (%zu of %zu bytes)",
                               f->name, what, got, n);
        got += (size_t)r;
    }
    return 0;
}

static const char *type_name(int t)
{
    switch (t) {
    case 0x08:
        return "unsigned byte";
    case 0x09:
        return "signed byte";
    case 0x0B:
        return "short";
    case 0x0C:
        return "int";
    case 0x0D:
        return "float";
    case 0x0E:
        return "double";
    default:
        return NULL;
    }
}

/* Opens path and reads its header; want_dims: 1 (labels) or 3 (images; 4 allowed). */
static int idx_open(const struct cnn_fsroot *root, struct idx_file *f, const char *path,
                    int labels, struct cnn_err *err)
{
    memset(f, 0, sizeof *f);
    f->name = base_name(path);
    struct cnn_err e = {0};
    int fd = cnn_fsroot_open(root, path, O_RDONLY | O_NONBLOCK, &e);
    if (fd < 0)
        return cnn_err_set(err, fd, "%s", e.msg);
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return cnn_err_set(err, CNN_EINVAL, "%.80s: not a regular file", f->name);
    }
    f->size = (long long)st.st_size;
    f->gz = gzdopen(fd, "rb");
    if (!f->gz) {
        close(fd);
        return cnn_err_set(err, CNN_ENOMEM, "%.80s: cannot open through zlib", f->name);
    }
    uint8_t h[4];
    int rc = read_exact(f, h, 4, "the header", err);
    if (rc)
        return rc;
    f->direct = gzdirect(f->gz);
    if (h[0] != 0 || h[1] != 0)
        return cnn_err_set(err, CNN_EFORMAT, "%.80s: not an IDX file (magic %02x %02x, want 00 00)",
                           f->name, h[0], h[1]);
    if (h[2] != 0x08) {
        const char *t = type_name(h[2]);
        return cnn_err_set(err, CNN_EFORMAT,
                           "%.80s: IDX data type 0x%02x%s%s%s is not supported (unsigned bytes "
                           "only)",
                           f->name, h[2], t ? " (" : "", t ? t : "", t ? ")" : "");
    }
    f->ndims = h[3];
    if (labels ? f->ndims != 1 : (f->ndims != 3 && f->ndims != 4))
        return cnn_err_set(err, CNN_EFORMAT, "%.80s: %d dimensions (a %s file has %s)", f->name,
                           f->ndims, labels ? "labels" : "images", labels ? "1" : "3 or 4");
    uint8_t d[16];
    rc = read_exact(f, d, 4 * (size_t)f->ndims, "the header", err);
    if (rc)
        return rc;
    for (int i = 0; i < f->ndims; i++)
        f->dims[i] = (uint32_t)d[4 * i] << 24 | (uint32_t)d[4 * i + 1] << 16 |
                     (uint32_t)d[4 * i + 2] << 8 | d[4 * i + 3];
    return 0;
}

static void idx_close(struct idx_file *f)
{
    if (f->gz)
        gzclose(f->gz);
    f->gz = NULL;
}

/* Plain file: its length must be header + payload exactly.  Checked before allocating. */
static int check_length(const struct idx_file *f, size_t payload, struct cnn_err *err)
{
    if (!f->direct)
        return 0;
    long long want = 4 + 4LL * f->ndims + (long long)payload;
    if (f->size < want)
        return cnn_err_set(err, CNN_EFORMAT, "%.80s: truncated: %lld bytes, header says %lld",
                           f->name, f->size, want);
    if (f->size > want)
        return cnn_err_set(err, CNN_EFORMAT, "%.80s: %lld trailing bytes after the data", f->name,
                           f->size - want);
    return 0;
}

/* Compressed file: nothing may follow the payload. */
static int check_end(struct idx_file *f, struct cnn_err *err)
{
    uint8_t extra;
    int r = gzread(f->gz, &extra, 1);
    if (r > 0)
        return cnn_err_set(err, CNN_EFORMAT, "%.80s: trailing bytes after the data", f->name);
    if (r < 0) {
        int zerr;
        const char *msg = gzerror(f->gz, &zerr);
        return cnn_err_set(err, CNN_EFORMAT, "%.80s: corrupt data at the end: %.60s", f->name, msg);
    }
    return 0;
}

/* Checks the image header against the limits and the label count; fills the image shape. */
static int check_images(const struct idx_file *im, const struct idx_file *lb, struct cnn_image *img,
                        struct cnn_err *err)
{
    uint32_t count = im->dims[0], rows = im->dims[1], cols = im->dims[2];
    uint32_t ch = im->ndims == 4 ? im->dims[3] : 1;
    if (count != lb->dims[0])
        return cnn_err_set(err, CNN_EFORMAT, "%.60s has %u images but %.60s has %u labels",
                           im->name, count, lb->name, lb->dims[0]);
    if (count == 0)
        return cnn_err_set(err, CNN_EFORMAT, "%.80s: no images", im->name);
    if (count > CNN_DATASET_MAX_ITEMS)
        return cnn_err_set(err, CNN_ELIMIT, "%.80s: %u images (limit %d)", im->name, count,
                           CNN_DATASET_MAX_ITEMS);
    if (rows == 0 || cols == 0 || rows > CNN_DATASET_MAX_DIM || cols > CNN_DATASET_MAX_DIM)
        return cnn_err_set(err, rows && cols ? CNN_ELIMIT : CNN_EFORMAT,
                           "%.80s: image size %ux%u (1..%d each)", im->name, cols, rows,
                           CNN_DATASET_MAX_DIM);
    if ((uint64_t)rows * cols > CNN_IMAGE_DEFAULT_MAX_PIXELS)
        return cnn_err_set(err, CNN_ELIMIT, "%.80s: %ux%u images exceed %u pixels", im->name, cols,
                           rows, CNN_IMAGE_DEFAULT_MAX_PIXELS);
    if (ch != 1 && ch != 3)
        return cnn_err_set(err, CNN_EFORMAT, "%.80s: %u channels (1 or 3)", im->name, ch);
    img->w = (int)cols;
    img->h = (int)rows;
    img->c = (int)ch;
    return 0;
}

int cnn_dataset_load_idx(const char *images_path, const char *labels_path,
                         const struct cnn_preproc *pp, struct cnn_dataset **out,
                         struct cnn_err *err)
{
    return cnn_dataset_load_idx_at(NULL, images_path, labels_path, pp, out, err);
}

int cnn_dataset_load_idx_at(const struct cnn_fsroot *root, const char *images_path,
                            const char *labels_path, const struct cnn_preproc *pp,
                            struct cnn_dataset **out, struct cnn_err *err)
{
    if (!out)
        return cnn_err_set(err, CNN_EINVAL, "dataset: no output pointer");
    *out = NULL;
    if (!images_path || !labels_path)
        return cnn_err_set(err, CNN_EINVAL, "dataset: no IDX file names");
    struct idx_file im, lb;
    struct cnn_dataset *d = NULL;
    struct cnn_image img = {0};
    memset(&im, 0, sizeof im);
    int rc = idx_open(root, &lb, labels_path, 1, err);
    if (rc == 0)
        rc = idx_open(root, &im, images_path, 0, err);
    if (rc == 0)
        rc = check_images(&im, &lb, &img, err);
    size_t item = (size_t)img.w * (size_t)img.h * (size_t)img.c;
    uint32_t count = im.dims[0];
    if (rc == 0)
        rc = check_length(&lb, count, err);
    if (rc == 0)
        rc = check_length(&im, (size_t)count * item, err);
    if (rc)
        goto out;
    char source[4200];
    snprintf(source, sizeof source, "idx:%s", images_path);
    d = cnn_dataset_alloc(pp, (int)count, source, err);
    img.pix = malloc(item);
    uint8_t *lab = malloc(count);
    if (!d || !img.pix || !lab) {
        free(lab);
        rc = d     ? cnn_err_set(err, CNN_ENOMEM, "dataset: out of memory")
             : err ? err->code
                   : CNN_ENOMEM;
        goto out;
    }
    rc = read_exact(&lb, lab, count, "the labels", err);
    for (uint32_t i = 0; rc == 0 && i < count; i++)
        d->labels[i] = lab[i];
    free(lab);
    if (rc == 0 && !lb.direct)
        rc = check_end(&lb, err);
    for (uint32_t i = 0; rc == 0 && i < count; i++) {
        rc = read_exact(&im, img.pix, item, "the images", err);
        if (rc == 0)
            rc = cnn_dataset_store(d, (int)i, &img, err);
    }
    if (rc == 0 && !im.direct)
        rc = check_end(&im, err);
    if (rc == 0)
        rc = cnn_dataset_count_classes(d, 0, err);
out:
    idx_close(&lb);
    idx_close(&im);
    free(img.pix);
    if (rc) {
        cnn_dataset_destroy(d);
        return rc;
    }
    *out = d;
    return 0;
}
