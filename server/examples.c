/* Collected examples (see examples.h): the multipart upload, checks, and the write under
 * DATA_ROOT/examples/NAME/LABELDIR/. */
#include "examples.h"

#include "config.h"
#include "durable.h"
#include "http.h"
#include "image.h"
#include "log.h"
#include "multipart.h"
#include "safepath.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_PARTS 4

/* Serializes count-then-write so max_examples holds exactly.  An exception to "no lock
 * around I/O": it only orders uploads among themselves (a rare admin operation); nothing
 * on the inference path takes it. */
static pthread_mutex_t store_mu = PTHREAD_MUTEX_INITIALIZER;

static int keep_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == ' ' ||
           c == '_' || c == '.' || c == ',' || c == '+' || c == '-';
}

int examples_label_dir(const char *label, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    if (!label[0])
        return -1;
    for (const unsigned char *p = (const unsigned char *)label; *p; p++) {
        if (n + 4 > cap)
            return -1;
        if (keep_byte(*p) && !(p == (const unsigned char *)label && *p == '.')) {
            out[n++] = (char)*p;
        } else {
            out[n++] = '%';
            out[n++] = hex[*p >> 4];
            out[n++] = hex[*p & 15];
        }
    }
    out[n] = '\0';
    return 0;
}

int examples_dir_label(const char *dir, char *out, size_t cap)
{
    size_t n = 0;
    for (const char *p = dir; *p; p++) {
        if (n + 1 >= cap)
            return -1;
        if (*p == '%') {
            int hi = safepath_hex_value((unsigned char)p[1]);
            int lo = hi >= 0 ? safepath_hex_value((unsigned char)p[2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return -1;
            out[n++] = (char)(hi * 16 + lo);
            p += 2;
        } else {
            out[n++] = *p;
        }
    }
    out[n] = '\0';
    return 0;
}

/* Image files (the names we write: digits + .png/.jpg) in the sub-folders of dfd; with
 * `highest`, the largest number among the files directly in dfd instead. */
static long count_images(int dfd, int depth, long *highest)
{
    int fd = dup(dfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return 0;
    }
    long count = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (depth > 0) {
            int sub = openat(dfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub >= 0) {
                count += count_images(sub, depth - 1, NULL);
                close(sub);
            }
            continue;
        }
        char *end;
        long v = strtol(e->d_name, &end, 10);
        if (end != e->d_name && (strcmp(end, ".png") == 0 || strcmp(end, ".jpg") == 0)) {
            count++;
            if (highest && v > *highest)
                *highest = v;
        }
    }
    closedir(d);
    return count;
}

/* Writes data as the next NNNNNN.ext in dfd through the durable-write helper (linked under
 * its number, never replacing a file).  name gets the file name. */
static int store(int dfd, const void *data, size_t len, const char *ext, char *name, size_t cap,
                 struct cnn_err *err)
{
    struct cnn_durable d;
    struct cnn_err e = {0};
    (void)cnn_durable_clean_at(dfd, CNN_DURABLE_STALE_S, NULL); /* temps a crash left here */
    int rc = cnn_durable_begin_at(&d, dfd, "upload", 0644, &e);
    if (rc == 0)
        rc = cnn_durable_put(&d, data, len, &e);
    if (rc == 0) {
        long highest = 0;
        count_images(dfd, 0, &highest);
        for (long v = highest + 1;; v++) {
            snprintf(name, cap, "%06ld.%s", v, ext);
            rc = cnn_durable_commit(&d, name, CNN_DURABLE_NOREPLACE, &e);
            if (rc != CNN_EBUSY)
                break;
            if (v > highest + 1000) {
                cnn_durable_abort(&d);
                break;
            }
        }
    }
    return rc ? cnn_err_set(err, CNN_EIO, "cannot store the example: %s", e.msg) : 0;
}

static const struct mp_part *part_named(const struct mp_part *parts, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(parts[i].name, name) == 0)
            return &parts[i];
    return NULL;
}

/* The model label equal to text[0..n), or -1. */
static int find_label(const struct cnn_model *m, const unsigned char *text, size_t n)
{
    for (int i = 0; i < cnn_model_num_classes(m); i++) {
        char buf[24];
        const char *l = cnn_model_label(m, i);
        if (!l) {
            snprintf(buf, sizeof buf, "class%d", i);
            l = buf;
        }
        if (strlen(l) == n && memcmp(l, text, n) == 0)
            return i;
    }
    return -1;
}

void handle_admin_examples(struct request *r)
{
    const struct config *cfg = r->app->cfg;
    if (http_acquire_model(r) != 0)
        return;
    const char *ct = http_header(r, "Content-Type");
    char boundary[72];
    struct cnn_err err = {0};
    if (!ct || mp_boundary(ct, boundary, sizeof boundary, &err) != 0) {
        http_reply_error(r, 400, "send multipart/form-data with an image part and a label part");
        return;
    }
    struct mp_part parts[MAX_PARTS];
    int n = 0;
    int rc = mp_parse(r->body, r->body_len, boundary, parts, MAX_PARTS, &n, &err);
    if (rc) {
        http_reply_error(r, http_status_of(rc), "%s", err.msg);
        return;
    }
    for (int i = 0; i < n; i++)
        if (strcmp(parts[i].name, "image") != 0 && strcmp(parts[i].name, "label") != 0) {
            http_reply_error(r, 400, "unknown part '%.40s' (send image and label)", parts[i].name);
            return;
        }
    const struct mp_part *img = part_named(parts, n, "image");
    const struct mp_part *lab = part_named(parts, n, "label");
    if (!img || !lab) {
        http_reply_error(r, 400, "%s: part missing", img ? "label" : "image");
        return;
    }
    const struct cnn_model *m = r->mv->model;
    int cls = find_label(m, lab->data, lab->len);
    if (cls < 0) {
        char shown[CNN_LABEL_MAX];
        size_t k = lab->len < sizeof shown - 1 ? lab->len : sizeof shown - 1;
        memcpy(shown, lab->data, k);
        shown[k] = '\0';
        http_reply_error(r, 400, "label: '%s' is not a label of model %s version %d", shown,
                         r->mv->name, r->mv->version);
        return;
    }
    if ((long long)img->len > cfg->example_max_bytes) {
        http_reply_error(r, 413, "image: %zu bytes exceed example_max_bytes (%lld)", img->len,
                         cfg->example_max_bytes);
        return;
    }
    enum cnn_image_format fmt = cnn_image_sniff(img->data, img->len);
    struct cnn_image decoded = {0};
    rc = fmt == CNN_IMAGE_UNKNOWN
             ? cnn_err_set(&err, CNN_EFORMAT, "not a PNG or JPEG image")
             : cnn_image_decode(img->data, img->len, (size_t)cfg->max_image_pixels, &decoded, &err);
    cnn_image_free(&decoded);
    if (rc) {
        http_reply_error(r, http_status_of(rc), "image: %s", err.msg);
        return;
    }
    char label[CNN_LABEL_MAX], dir[3 * CNN_LABEL_MAX + 1];
    const char *l = cnn_model_label(m, cls);
    if (l)
        snprintf(label, sizeof label, "%s", l);
    else
        snprintf(label, sizeof label, "class%d", cls);
    if (examples_label_dir(label, dir, sizeof dir) != 0) {
        http_reply_error(r, 400, "label: cannot be a folder name");
        return;
    }
    const char *model_path[] = {"examples", r->mv->name};
    const char *label_path[] = {dir};
    pthread_mutex_lock(&store_mu);
    int mfd = safepath_open_dirs(cfg->data_root, model_path, 2, &err);
    int dfd = mfd >= 0 ? safepath_open_dirs_at(mfd, label_path, 1, &err) : -1;
    long total = mfd >= 0 ? count_images(mfd, 1, NULL) : 0;
    char name[48] = "";
    if (mfd < 0 || dfd < 0)
        rc = err.code ? err.code : CNN_EIO;
    else if (total >= cfg->max_examples)
        rc = cnn_err_set(&err, CNN_ELIMIT, "model %s already has %ld examples (max_examples)",
                         r->mv->name, total);
    else
        rc = store(dfd, img->data, img->len, fmt == CNN_IMAGE_PNG ? "png" : "jpg", name,
                   sizeof name, &err);
    long in_class = rc == 0 ? count_images(dfd, 0, NULL) : 0;
    pthread_mutex_unlock(&store_mu);
    if (dfd >= 0)
        close(dfd);
    if (mfd >= 0)
        close(mfd);
    if (rc) {
        log_warn("example not stored model=%s error=\"%s\"", r->mv->name, err.msg);
        http_reply_error(r, rc == CNN_ELIMIT ? 409 : http_status_of(rc), "%s", err.msg);
        return;
    }
    char rel[3 * CNN_LABEL_MAX + 160];
    snprintf(rel, sizeof rel, "examples/%s/%s/%s", r->mv->name, dir, name);
    log_info("example stored model=%s label=\"%s\" file=%s", r->mv->name, label, rel);
    http_reply_json(r, 201,
                    json_pack("{s:s, s:s, s:i, s:s, s:I, s:I}", "model", r->mv->name, "label",
                              label, "index", cls, "path", rel, "class_examples",
                              (json_int_t)in_class, "model_examples", (json_int_t)total + 1));
}
