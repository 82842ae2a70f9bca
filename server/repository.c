/* Model repository on disk (see repository.h): listing names and versions, file identity,
 * and parsing NAME/config.ini with inih ([batching], [model] labels, [preprocessing]) plus
 * the labels file it names. */
#include "repository.h"

#include "log.h"
#include "model.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONFIG_MAX_BYTES (64 * 1024)
#define LABELS_MAX_BYTES ((size_t)CNN_MAX_CLASSES * CNN_LABEL_MAX + 4096)

int repo_valid_name(const char *s)
{
    size_t n = 0;
    if (!s || s[0] == '.' || s[0] == '\0')
        return 0;
    for (; s[n]; n++) {
        char c = s[n];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '.' || c == '-';
        if (!ok || n >= REPO_NAME_MAX - 1)
            return 0;
    }
    return 1;
}

int repo_parse_version(const char *s)
{
    if (!s || s[0] < '1' || s[0] > '9')
        return 0; /* empty, leading zero, sign or other */
    long long v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return 0;
        v = v * 10 + (*p - '0');
        if (v > INT_MAX)
            return 0;
    }
    return (int)v;
}

static void file_id(const struct stat *st, struct repo_file_id *id)
{
    id->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
    id->size = (int64_t)st->st_size;
    id->ino = (uint64_t)st->st_ino;
    id->dev = (uint64_t)st->st_dev;
}

int repo_file_id_eq(const struct repo_file_id *a, const struct repo_file_id *b)
{
    return a->mtime_ns == b->mtime_ns && a->size == b->size && a->ino == b->ino && a->dev == b->dev;
}

static int path_join(char *buf, size_t cap, struct cnn_err *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int path_join(char *buf, size_t cap, struct cnn_err *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
    if (len < 0 || (size_t)len >= cap)
        return cnn_err_set(err, CNN_ELIMIT, "repository: path too long");
    return 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

int repo_list_models(const char *repo, int verbose, char (**names)[REPO_NAME_MAX], int *n,
                     struct cnn_err *err)
{
    *names = NULL;
    *n = 0;
    DIR *d = opendir(repo);
    if (!d)
        return cnn_err_set(err, errno == ENOENT ? CNN_ENOENT : CNN_EIO,
                           "repository: cannot open folder: %s", strerror(errno));
    char(*list)[REPO_NAME_MAX] = NULL;
    int count = 0, cap = 0, rc = 0;
    struct dirent *e;
    char path[PATH_MAX];
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue; /* ".", "..", hidden and temporary entries */
        if (!repo_valid_name(e->d_name)) {
            if (verbose)
                log_warn("repository entry skipped entry=\"%.80s\" reason=\"invalid model name\"",
                         e->d_name);
            else
                log_debug("repository entry skipped entry=\"%.80s\"", e->d_name);
            continue;
        }
        struct stat st;
        if (path_join(path, sizeof path, NULL, "%s/%s", repo, e->d_name) || stat(path, &st) != 0 ||
            !S_ISDIR(st.st_mode))
            continue;
        if (count == cap) {
            int ncap = cap ? 2 * cap : 16;
            void *p = realloc(list, (size_t)ncap * sizeof *list);
            if (!p) {
                rc = cnn_err_set(err, CNN_ENOMEM, "repository: out of memory");
                break;
            }
            list = p;
            cap = ncap;
        }
        memcpy(list[count++], e->d_name, strlen(e->d_name) + 1); /* valid: < REPO_NAME_MAX */
    }
    closedir(d);
    if (rc) {
        free(list);
        return rc;
    }
    if (count > 1)
        qsort(list, (size_t)count, sizeof *list, cmp_names);
    *names = list;
    *n = count;
    return 0;
}

int repo_model_file(char *path, size_t cap, const char *repo, const char *name,
                    const char *version, struct stat *st)
{
    static const char *const files[] = {"model.cnn", "model.onnx"}; /* cnn_model_load reads both */
    for (int k = 0; k < 2; k++)
        if (!path_join(path, cap, NULL, "%s/%s/%s/%s", repo, name, version, files[k]) &&
            stat(path, st) == 0 && S_ISREG(st->st_mode))
            return 0;
    return -1;
}

static int cmp_versions_desc(const void *a, const void *b)
{
    int x = ((const struct repo_version *)a)->version;
    int y = ((const struct repo_version *)b)->version;
    return (x < y) - (x > y);
}

int repo_list_versions(const char *repo, const char *name, struct repo_version **out, int *n,
                       struct cnn_err *err)
{
    *out = NULL;
    *n = 0;
    char path[PATH_MAX];
    int rc = path_join(path, sizeof path, err, "%s/%s", repo, name);
    if (rc)
        return rc;
    DIR *d = opendir(path);
    if (!d)
        return cnn_err_set(err, errno == ENOENT ? CNN_ENOENT : CNN_EIO,
                           "repository: cannot open %s: %s", name, strerror(errno));
    struct repo_version *list = NULL;
    int count = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int v = repo_parse_version(e->d_name);
        if (v == 0)
            continue; /* config.ini, labels, hidden or stray entries */
        struct stat st;
        if (repo_model_file(path, sizeof path, repo, name, e->d_name, &st))
            continue;
        if (count == cap) {
            int ncap = cap ? 2 * cap : 8;
            void *p = realloc(list, (size_t)ncap * sizeof *list);
            if (!p) {
                rc = cnn_err_set(err, CNN_ENOMEM, "repository: out of memory");
                break;
            }
            list = p;
            cap = ncap;
        }
        list[count].version = v;
        file_id(&st, &list[count].id);
        count++;
    }
    closedir(d);
    if (rc) {
        free(list);
        return rc;
    }
    if (count > 1)
        qsort(list, (size_t)count, sizeof *list, cmp_versions_desc);
    *out = list;
    *n = count;
    return 0;
}

/* ---- config.ini ------------------------------------------------------------------- */

/* fgets for inih that also counts lines, so the handler knows the line of its key (the
 * Debian build of inih does not pass line numbers to handlers). */
struct line_reader {
    FILE *f;
    int line;
    int at_start;
};

static char *read_line(char *str, int num, void *stream)
{
    struct line_reader *lr = stream;
    char *s = fgets(str, num, lr->f);
    if (!s)
        return NULL;
    if (lr->at_start)
        lr->line++;
    size_t len = strlen(s);
    lr->at_start = len > 0 && s[len - 1] == '\n';
    return s;
}

struct parse_state {
    struct repo_model_config *cfg;
    struct line_reader *lr;
    char labels_rel[256]; /* [model] labels, as written */
    int err_line;         /* first handler error; 0 = none */
    char err_key[48];
    char err_why[80];
};

static int fail_key(struct parse_state *ps, const char *key, const char *why)
{
    if (ps->err_line == 0) {
        ps->err_line = ps->lr->line;
        snprintf(ps->err_key, sizeof ps->err_key, "%s", key);
        snprintf(ps->err_why, sizeof ps->err_why, "%s", why);
    }
    return 0;
}

/* Strict decimal integer in [lo, hi]. */
static int parse_int(const char *s, long lo, long hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

/* A key of [preprocessing] (see struct repo_preproc). */
static int on_preproc(struct parse_state *ps, const char *key, const char *value)
{
    struct repo_preproc *o = &ps->cfg->pp;
    int n = 0;
    char tail;
    if (strcmp(key, "resize") == 0) {
        if (strcmp(value, "stretch") != 0 && strcmp(value, "shorter_crop") != 0)
            return fail_key(ps, key, "not stretch or shorter_crop");
        o->resize = value[1] == 'h' ? CNN_RESIZE_SHORTER_CROP : CNN_RESIZE_STRETCH;
        o->set |= REPO_PP_RESIZE;
    } else if (strcmp(key, "resize_short") == 0) {
        if (parse_int(value, 1, CNN_PREPROC_MAX_DIM, &o->resize_short) != 0)
            return fail_key(ps, key, "not an integer in 1..16384");
        o->set |= REPO_PP_RESIZE_SHORT;
    } else if (strcmp(key, "invert") == 0) {
        if (parse_int(value, 0, 1, &o->invert) != 0)
            return fail_key(ps, key, "not 0 or 1");
        o->set |= REPO_PP_INVERT;
    } else if (strcmp(key, "channel_order") == 0) {
        if (strcmp(value, "rgb") != 0 && strcmp(value, "bgr") != 0)
            return fail_key(ps, key, "not rgb or bgr");
        o->bgr = value[0] == 'b';
        o->set |= REPO_PP_CHANNEL_ORDER;
    } else if (strcmp(key, "mean") == 0 || strcmp(key, "std") == 0) {
        int is_std = key[0] == 's';
        float *v = is_std ? o->std : o->mean;
        if ((n = cnn_parse_floats(value, v, 3)) != 1 && n != 3)
            return fail_key(ps, key, "not 1 or 3 comma-separated numbers");
        for (int k = 0; is_std && k < n; k++)
            if (!(v[k] > 0))
                return fail_key(ps, key, "a std must be > 0");
        *(is_std ? &o->n_std : &o->n_mean) = n;
        o->set |= is_std ? REPO_PP_STD : REPO_PP_MEAN;
    } else if (strcmp(key, "scale") == 0) {
        if (cnn_parse_floats(value, &o->scale, 1) != 1 || !(o->scale > 0))
            return fail_key(ps, key, "not a number > 0");
        o->set |= REPO_PP_SCALE;
    } else if (strcmp(key, "input_size") == 0) {
        if (sscanf(value, "%dx%d%c", &o->h, &o->w, &tail) != 2 || o->h < 1 || o->w < 1)
            return fail_key(ps, key, "not HEIGHTxWIDTH");
        o->set |= REPO_PP_INPUT_SIZE;
    } else {
        return fail_key(ps, key, "unknown key in [preprocessing]");
    }
    return 1;
}

int repo_apply_preproc(const struct repo_preproc *o, const struct cnn_preproc *pp,
                       struct cnn_preproc *out, struct cnn_err *err)
{
    *out = *pp;
    if ((o->set & REPO_PP_INPUT_SIZE) && (o->h != pp->h || o->w != pp->w))
        return cnn_err_set(err, CNN_EINVAL,
                           "config.ini input_size %dx%d: the model takes %dx%d (fixed by its file)",
                           o->h, o->w, pp->h, pp->w);
    if (((o->set & REPO_PP_MEAN) && o->n_mean > pp->c) ||
        ((o->set & REPO_PP_STD) && o->n_std > pp->c))
        return cnn_err_set(err, CNN_EINVAL, "config.ini mean/std: 3 values for a gray model");
    if (o->set & REPO_PP_RESIZE)
        out->resize = o->resize;
    if (o->set & REPO_PP_RESIZE_SHORT)
        out->resize_short = o->resize_short;
    if (o->set & REPO_PP_INVERT)
        out->invert = o->invert;
    if (o->set & REPO_PP_CHANNEL_ORDER)
        out->bgr = o->bgr; /* on a gray model: refused by cnn_preproc_check below */
    float scale = o->set & REPO_PP_SCALE ? o->scale : 1.0f;
    for (int c = 0; c < 3; c++) {
        if (o->set & REPO_PP_MEAN)
            out->mean[c] = o->mean[o->n_mean == 1 ? 0 : c];
        if (o->set & REPO_PP_STD)
            out->std[c] = o->std[o->n_std == 1 ? 0 : c];
        out->mean[c] /= scale;
        out->std[c] /= scale;
    }
    struct cnn_err why = {0};
    if (cnn_preproc_check(out, &why))
        return cnn_err_set(err, CNN_EINVAL, "config.ini [preprocessing]: %s", why.msg);
    return 0;
}

static int on_ini(void *user, const char *section, const char *key, const char *value)
{
    struct parse_state *ps = user;
    struct batcher_config *b = &ps->cfg->batching;
    static const struct {
        const char *key;
        long lo, hi;
        size_t offset;
    } ints[] = {
        {"max_batch_size", 1, 4096, offsetof(struct batcher_config, max_batch_size)},
        {"max_queue_delay_us", 0, 60000000, offsetof(struct batcher_config, max_queue_delay_us)},
        {"max_queue_size", 1, 1000000, offsetof(struct batcher_config, max_queue_size)},
        {"instances", 1, 64, offsetof(struct batcher_config, instances)},
    };
    if (strcmp(section, "batching") == 0) {
        for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
            if (strcmp(key, ints[i].key) != 0)
                continue;
            int *field = (int *)((char *)b + ints[i].offset);
            if (parse_int(value, ints[i].lo, ints[i].hi, field) != 0) {
                char why[80];
                snprintf(why, sizeof why, "not an integer in %ld..%ld", ints[i].lo, ints[i].hi);
                return fail_key(ps, key, why);
            }
            return 1;
        }
        return fail_key(ps, key, "unknown key in [batching]");
    }
    if (strcmp(section, "model") == 0) {
        if (strcmp(key, "labels") == 0) {
            if (value[0] == '\0' || value[0] == '/' || strlen(value) >= sizeof ps->labels_rel)
                return fail_key(ps, key, "must be a relative path under the model folder");
            for (const char *p = value; (p = strstr(p, "..")) != NULL; p += 2)
                if ((p == value || p[-1] == '/') && (p[2] == '\0' || p[2] == '/'))
                    return fail_key(ps, key, "must not contain '..'");
            snprintf(ps->labels_rel, sizeof ps->labels_rel, "%s", value);
            return 1;
        }
        return fail_key(ps, key, "unknown key in [model]");
    }
    if (strcmp(section, "preprocessing") == 0)
        return on_preproc(ps, key, value);
    return fail_key(ps, key, section[0] ? "unknown section" : "key outside a section");
}

/* fopen(path, "r") that never blocks on a FIFO or device: opened non-blocking, then
 * refused unless it is a regular file.  NULL with errno set (EINVAL: not regular). */
static FILE *open_regular(const char *path, struct stat *st)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
        close(fd);
        errno = EINVAL;
        return NULL;
    }
    FILE *f = fdopen(fd, "r");
    if (!f) {
        int e = errno;
        close(fd);
        errno = e;
    }
    return f;
}

/* Reads a whole small file into a NUL-terminated malloc'd buffer. */
static int slurp(const char *path, const char *shown, size_t max_bytes, char **out,
                 struct repo_file_id *id, struct cnn_err *err)
{
    *out = NULL;
    struct stat st;
    FILE *f = open_regular(path, &st);
    if (!f)
        return cnn_err_set(err, CNN_EIO, "%s: cannot open: %s", shown,
                           errno == EINVAL ? "not a regular file" : strerror(errno));
    if ((size_t)st.st_size > max_bytes) {
        fclose(f);
        return cnn_err_set(err, CNN_ELIMIT, "%s: larger than %zu bytes", shown, max_bytes);
    }
    file_id(&st, id);
    char *buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        fclose(f);
        return cnn_err_set(err, CNN_ENOMEM, "%s: out of memory", shown);
    }
    size_t got = fread(buf, 1, (size_t)st.st_size, f);
    fclose(f);
    if (got != (size_t)st.st_size) {
        free(buf);
        return cnn_err_set(err, CNN_EIO, "%s: short read", shown);
    }
    buf[got] = '\0';
    *out = buf;
    return 0;
}

static void free_labels(char **labels, int n)
{
    for (int i = 0; i < n; i++)
        free(labels[i]);
    free(labels);
}

/* One label per line; a final newline is optional; "\r\n" accepted. */
static int read_labels(const char *path, const char *shown, struct repo_model_config *cfg,
                       struct cnn_err *err)
{
    char *text;
    int rc = slurp(path, shown, LABELS_MAX_BYTES, &text, &cfg->labels_id, err);
    if (rc)
        return rc;
    int lines = 0;
    for (const char *p = text; *p; p++)
        if (*p == '\n' && (p[1] != '\0'))
            lines++;
    lines += text[0] != '\0';
    if (lines > CNN_MAX_CLASSES) {
        free(text);
        return cnn_err_set(err, CNN_ELIMIT, "%s: more than %d labels", shown, CNN_MAX_CLASSES);
    }
    char **labels = calloc((size_t)(lines ? lines : 1), sizeof *labels);
    if (!labels) {
        free(text);
        return cnn_err_set(err, CNN_ENOMEM, "%s: out of memory", shown);
    }
    char *p = text;
    for (int i = 0; i < lines; i++) {
        char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (len > 0 && p[len - 1] == '\r')
            len--;
        if (len == 0 || len >= CNN_LABEL_MAX) {
            free_labels(labels, i);
            free(text);
            return cnn_err_set(err, CNN_EINVAL, "%s:%d: label empty or longer than %d bytes", shown,
                               i + 1, CNN_LABEL_MAX - 1);
        }
        labels[i] = strndup(p, len);
        if (!labels[i]) {
            free_labels(labels, i);
            free(text);
            return cnn_err_set(err, CNN_ENOMEM, "%s: out of memory", shown);
        }
        p = nl ? nl + 1 : p + len;
    }
    free(text);
    cfg->labels = labels;
    cfg->n_labels = lines;
    return 0;
}

int repo_read_config(const char *repo, const char *name, const struct batcher_config *defaults,
                     struct repo_model_config *out, struct cnn_err *err)
{
    memset(out, 0, sizeof *out);
    out->batching = *defaults;
    char path[PATH_MAX], shown[REPO_NAME_MAX + 16];
    snprintf(shown, sizeof shown, "%s/config.ini", name);
    int rc = path_join(path, sizeof path, err, "%s/%s/config.ini", repo, name);
    if (rc)
        return rc;
    struct stat st;
    FILE *f = open_regular(path, &st);
    if (!f) {
        if (errno == ENOENT)
            return 0; /* no config: defaults */
        return cnn_err_set(err, CNN_EIO, "%s: cannot open: %s", shown,
                           errno == EINVAL ? "not a regular file" : strerror(errno));
    }
    if (st.st_size > CONFIG_MAX_BYTES) {
        fclose(f);
        return cnn_err_set(err, CNN_ELIMIT, "%s: larger than %d bytes", shown, CONFIG_MAX_BYTES);
    }
    file_id(&st, &out->config_id);
    struct line_reader lr = {.f = f, .line = 0, .at_start = 1};
    struct parse_state ps = {.cfg = out, .lr = &lr};
    int line = ini_parse_stream(read_line, &lr, on_ini, &ps);
    fclose(f);
    if (ps.err_line > 0 && (line <= 0 || line >= ps.err_line))
        return cnn_err_set(err, CNN_EINVAL, "%s:%d: key %s: %s", shown, ps.err_line, ps.err_key,
                           ps.err_why);
    if (line > 0)
        return cnn_err_set(err, CNN_EINVAL, "%s:%d: syntax error", shown, line);
    if (line < 0)
        return cnn_err_set(err, CNN_ENOMEM, "%s: cannot parse (out of memory)", shown);
    if (ps.labels_rel[0]) {
        char lshown[REPO_NAME_MAX + 260];
        snprintf(lshown, sizeof lshown, "%s/%s", name, ps.labels_rel);
        rc = path_join(path, sizeof path, err, "%s/%s/%s", repo, name, ps.labels_rel);
        if (!rc)
            rc = read_labels(path, lshown, out, err);
        if (rc)
            return rc;
    }
    return 0;
}

void repo_config_free(struct repo_model_config *cfg)
{
    if (!cfg)
        return;
    free_labels(cfg->labels, cfg->n_labels);
    cfg->labels = NULL;
    cfg->n_labels = 0;
}
