/* Folder loader: ROOT/CLASS/FILE.png|jpg|jpeg, one subfolder per class.  Lists the classes
 * and files (sorted, so labels and item order do not depend on the file system), then
 * decodes every image through image.h and stores it at the model's input size. */
#include "dataset.h"
#include "dataset_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

struct names {
    char **v;
    int n, cap;
};

static void names_free(struct names *s)
{
    for (int i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

static int names_push(struct names *s, const char *name)
{
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 64;
        char **v = realloc(s->v, (size_t)cap * sizeof *v);
        if (!v)
            return -1;
        s->v = v;
        s->cap = cap;
    }
    if (!(s->v[s->n] = strdup(name)))
        return -1;
    s->n++;
    return 0;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int is_image_name(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && (strcasecmp(dot, ".png") == 0 || strcasecmp(dot, ".jpg") == 0 ||
                   strcasecmp(dot, ".jpeg") == 0);
}

/* Appends the entries of dir (not starting with '.') that are folders (want_dirs) or image
 * files to out, sorted among themselves. */
static int list_dir(const struct cnn_fsroot *root, const char *dir, int want_dirs,
                    struct names *out, struct cnn_err *err)
{
    struct cnn_err why = {0};
    DIR *dp = cnn_fsroot_opendir(root, dir, &why);
    if (!dp)
        return cnn_err_set(err, why.code, "folder %s", why.msg);
    struct dirent *e;
    int rc = 0, first = out->n;
    char path[4096];
    while (rc == 0 && (e = readdir(dp)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (!want_dirs && !is_image_name(e->d_name))
            continue;
        struct stat st;
        int len = snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (len < 0 || (size_t)len >= sizeof path) {
            rc =
                cnn_err_set(err, CNN_ELIMIT, "folder: path too long: %.100s/%.40s", dir, e->d_name);
            break;
        }
        rc = cnn_fsroot_stat(root, path, &st, &why);
        if (rc == CNN_EINVAL) { /* under a root: a symlink is refused, not skipped */
            cnn_err_set(err, rc, "folder %s", why.msg);
            break;
        }
        if (rc) {
            rc = 0; /* vanished or a dangling link: not an entry we can use */
            continue;
        }
        if (want_dirs ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode))
            continue;
        if (out->n >= CNN_DATASET_MAX_ITEMS)
            rc = cnn_err_set(err, CNN_ELIMIT, "folder %.100s: over %d entries", dir,
                             CNN_DATASET_MAX_ITEMS);
        else if (names_push(out, e->d_name) != 0)
            rc = cnn_err_set(err, CNN_ENOMEM, "folder: out of memory");
    }
    closedir(dp);
    if (rc == 0 && out->n - first > 1)
        qsort(out->v + first, (size_t)(out->n - first), sizeof *out->v, cmp_name);
    return rc;
}

static int read_file(const struct cnn_fsroot *root, const char *path, uint8_t **data,
                     size_t *size, struct cnn_err *err)
{
    int fd = cnn_fsroot_open(root, path, O_RDONLY | O_NONBLOCK, err);
    if (fd < 0)
        return fd;
    struct stat st;
    if (fstat(fd, &st) != 0 || (size_t)st.st_size > CNN_DATASET_MAX_FILE_BYTES) {
        close(fd);
        return cnn_err_set(err, CNN_ELIMIT, "file over %zu MiB", CNN_DATASET_MAX_FILE_BYTES >> 20);
    }
    size_t n = (size_t)st.st_size, got = 0;
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) {
        close(fd);
        return cnn_err_set(err, CNN_ENOMEM, "out of memory for %zu bytes", n);
    }
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            free(buf);
            close(fd);
            return cnn_err_set(err, CNN_EIO, "read failed: %s", r ? strerror(errno) : "short");
        }
        got += (size_t)r;
    }
    close(fd);
    *data = buf;
    *size = n;
    return 0;
}

/* Decodes path and stores it as item i; the error names the file. */
static int load_one(const struct cnn_fsroot *root, struct cnn_dataset *d, int i,
                    const char *path, const char *shown, size_t max_pixels, struct cnn_err *err)
{
    uint8_t *data = NULL;
    size_t size = 0;
    struct cnn_err e = {0};
    struct cnn_image img = {0};
    int rc = read_file(root, path, &data, &size, &e);
    if (rc == 0)
        rc = cnn_image_decode(data, size, max_pixels, &img, &e);
    free(data);
    if (rc == 0)
        rc = cnn_dataset_store(d, i, &img, &e);
    cnn_image_free(&img);
    if (rc)
        return cnn_err_set(err, rc, "%.70s: %.80s", shown, e.msg);
    return 0;
}

int cnn_dataset_load_folder(const char *root, const struct cnn_preproc *pp, size_t max_pixels,
                            struct cnn_dataset **out, struct cnn_err *err)
{
    return cnn_dataset_load_folder_at(NULL, root, pp, max_pixels, out, err);
}

int cnn_dataset_load_folder_at(const struct cnn_fsroot *fsroot, const char *root,
                               const struct cnn_preproc *pp, size_t max_pixels,
                               struct cnn_dataset **out, struct cnn_err *err)
{
    if (!out)
        return cnn_err_set(err, CNN_EINVAL, "dataset: no output pointer");
    *out = NULL;
    if (!root || !pp)
        return cnn_err_set(err, CNN_EINVAL, "dataset: no folder or preprocessing given");
    struct names classes = {0}, files = {0};
    int *label = NULL, cap = 0, rc;
    struct cnn_dataset *d = NULL;
    char path[4096];
    rc = list_dir(fsroot, root, 1, &classes, err);
    if (rc)
        goto out;
    if (classes.n == 0) {
        rc = cnn_err_set(err, CNN_EINVAL, "folder %.100s: no class subfolders", root);
        goto out;
    }
    if (classes.n > CNN_MAX_CLASSES) {
        rc = cnn_err_set(err, CNN_ELIMIT, "folder %.100s: %d classes (limit %d)", root, classes.n,
                         CNN_MAX_CLASSES);
        goto out;
    }
    for (int k = 0; k < classes.n; k++) {
        if (strlen(classes.v[k]) >= CNN_LABEL_MAX) {
            rc = cnn_err_set(err, CNN_EINVAL, "folder: class name '%.40s...' over %d bytes",
                             classes.v[k], CNN_LABEL_MAX - 1);
            goto out;
        }
        int before = files.n;
        snprintf(path, sizeof path, "%s/%s", root, classes.v[k]);
        rc = list_dir(fsroot, path, 0, &files, err);
        if (rc)
            goto out;
        if (files.n == before) {
            rc = cnn_err_set(err, CNN_EINVAL, "folder: class '%.60s' has no .png/.jpg images",
                             classes.v[k]);
            goto out;
        }
        if (files.n > cap) {
            int *nl = realloc(label, (size_t)files.cap * sizeof *nl);
            if (!nl) {
                rc = cnn_err_set(err, CNN_ENOMEM, "folder: out of memory");
                goto out;
            }
            label = nl;
            cap = files.cap;
        }
        for (int i = before; i < files.n; i++)
            label[i] = k;
    }
    char source[4200];
    snprintf(source, sizeof source, "folder:%s", root);
    d = cnn_dataset_alloc(pp, files.n, source, err);
    if (!d) {
        rc = err ? err->code : CNN_ENOMEM;
        goto out;
    }
    d->names = calloc((size_t)classes.n, sizeof *d->names);
    if (!d->names) {
        rc = cnn_err_set(err, CNN_ENOMEM, "folder: out of memory");
        goto out;
    }
    for (int k = 0; k < classes.n; k++)
        snprintf(d->names[k], sizeof d->names[k], "%s", classes.v[k]);
    for (int i = 0; i < files.n; i++) {
        const char *cls = classes.v[label[i]];
        snprintf(path, sizeof path, "%s/%s/%s", root, cls, files.v[i]);
        char shown[200];
        snprintf(shown, sizeof shown, "%.60s/%.120s", cls, files.v[i]);
        rc = load_one(fsroot, d, i, path, shown, max_pixels, err);
        if (rc)
            goto out;
        d->labels[i] = label[i];
    }
    rc = cnn_dataset_count_classes(d, classes.n, err);
out:
    names_free(&classes);
    names_free(&files);
    free(label);
    if (rc) {
        cnn_dataset_destroy(d);
        return rc;
    }
    *out = d;
    return 0;
}
