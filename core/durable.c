/* Durable file writes (see durable.h): temp file beside the target, fsync, rename or link,
 * fsync of the folder; and the removal of the temp files a crash left behind. */
#include "durable.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TMP_MARK ".tmp-"
#define BASE_MAX 200 /* of the target's name kept in the temp name (NAME_MAX is 255) */

static int fail_errno(struct cnn_err *err, const char *name, const char *what, int e)
{
    char buf[96];
    if (strerror_r(e, buf, sizeof buf) != 0)
        buf[0] = '\0';
    return cnn_err_set(err, (e == ENOENT || e == ENOTDIR) ? CNN_ENOENT : CNN_EIO, "%s: %s: %s",
                       name, what, buf);
}

static uint64_t random64(void)
{
    uint64_t v = 0;
    if (getrandom(&v, sizeof v, GRND_NONBLOCK) == (ssize_t)sizeof v)
        return v;
    struct timespec ts; /* no entropy yet: the clock, mixed; O_EXCL still guards the name */
    clock_gettime(CLOCK_REALTIME, &ts);
    v = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15u ^ (uint64_t)ts.tv_sec ^ (uintptr_t)&ts;
    return v;
}

void cnn_durable_unique(char *buf, size_t cap)
{
    snprintf(buf, cap, "%d-%016llx", (int)getpid(), (unsigned long long)random64());
}

static int sync_fd_dir(int dfd)
{
    int e = fsync(dfd) ? errno : 0;
    return e == EINVAL ? 0 : e; /* some file systems cannot sync a folder */
}

int cnn_durable_sync_dir(const char *dir, struct cnn_err *err)
{
    const char *slash = strrchr(dir, '/');
    const char *shown = slash && slash[1] ? slash + 1 : dir; /* no server path in messages */
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return fail_errno(err, shown, "cannot open the folder", errno);
    int e = sync_fd_dir(dfd);
    close(dfd);
    return e ? fail_errno(err, shown, "fsync of the folder failed", e) : 0;
}

static void release(struct cnn_durable *d)
{
    if (d->fd >= 0)
        close(d->fd);
    if (d->own_dfd && d->dfd >= 0)
        close(d->dfd);
    d->fd = -1;
    d->dfd = -1;
    d->own_dfd = 0;
}

int cnn_durable_begin_at(struct cnn_durable *d, int dfd, const char *name, mode_t mode,
                         struct cnn_err *err)
{
    *d = (struct cnn_durable){.fd = -1, .dfd = dfd};
    if (!name || !*name || strchr(name, '/') || strlen(name) >= sizeof d->name)
        return cnn_err_set(err, CNN_EINVAL, "durable write: bad file name");
    snprintf(d->name, sizeof d->name, "%s", name);
    for (int attempt = 0; attempt < 100; attempt++) {
        char uniq[48];
        cnn_durable_unique(uniq, sizeof uniq);
        snprintf(d->tmp, sizeof d->tmp, ".%.*s" TMP_MARK "%s", BASE_MAX, name, uniq);
        d->fd = openat(dfd, d->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (d->fd >= 0 || errno != EEXIST)
            break;
    }
    if (d->fd < 0) {
        d->tmp[0] = '\0'; /* not ours: a later abort must not remove it */
        return fail_errno(err, d->name, "cannot create temp file in its folder", errno);
    }
    if (fchmod(d->fd, mode) != 0) {
        int e = errno;
        cnn_durable_abort(d);
        return fail_errno(err, name, "cannot set file mode", e);
    }
    return 0;
}

/* Splits path into its folder (into dir) and *base.  CNN_EINVAL for a path naming a folder. */
static int split_path(const char *path, char *dir, size_t cap, const char **base,
                      struct cnn_err *err)
{
    const char *slash = path ? strrchr(path, '/') : NULL;
    *base = slash ? slash + 1 : path;
    if (!*base || !**base)
        return cnn_err_set(err, CNN_EINVAL, "durable write: path names a folder");
    size_t dlen = slash ? (size_t)(slash - path) : 0;
    if (dlen >= cap)
        return cnn_err_set(err, CNN_ELIMIT, "durable write: path too long");
    if (!slash)
        snprintf(dir, cap, ".");
    else if (dlen == 0)
        snprintf(dir, cap, "/");
    else
        snprintf(dir, cap, "%.*s", (int)dlen, path);
    return 0;
}

int cnn_durable_begin(struct cnn_durable *d, const char *path, mode_t mode, struct cnn_err *err)
{
    *d = (struct cnn_durable){.fd = -1, .dfd = -1};
    char dir[4096];
    const char *base;
    int rc = split_path(path, dir, sizeof dir, &base, err);
    if (rc)
        return rc;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return fail_errno(err, base, "cannot create temp file in its folder", errno);
    rc = cnn_durable_begin_at(d, dfd, base, mode, err);
    if (rc) {
        close(dfd);
        return rc;
    }
    d->own_dfd = 1;
    return 0;
}

int cnn_durable_write_all(int fd, const void *data, size_t n)
{
    const unsigned char *p = data;
    while (n > 0) {
        ssize_t k = write(fd, p, n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return k < 0 ? errno : EIO;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

int cnn_durable_put(struct cnn_durable *d, const void *data, size_t len, struct cnn_err *err)
{
    int e = d->fd >= 0 ? cnn_durable_write_all(d->fd, data, len) : EBADF;
    if (!e)
        return 0;
    cnn_durable_abort(d);
    return fail_errno(err, d->name, "write failed", e);
}

/* fsync + close of the temp file (once). */
static int finish_temp(struct cnn_durable *d, struct cnn_err *err)
{
    if (d->fd < 0)
        return 0;
    int e = fsync(d->fd) ? errno : 0;
    int ce = close(d->fd) ? errno : 0;
    d->fd = -1;
    if (e)
        return fail_errno(err, d->name, "fsync failed", e);
    return ce ? fail_errno(err, d->name, "close failed", ce) : 0;
}

int cnn_durable_commit(struct cnn_durable *d, const char *name, int flags, struct cnn_err *err)
{
    const char *target = name ? name : d->name;
    int rc = finish_temp(d, err);
    if (rc) {
        cnn_durable_abort(d);
        return rc;
    }
    if (flags & CNN_DURABLE_NOREPLACE) {
        if (linkat(d->dfd, d->tmp, d->dfd, target, 0) != 0) {
            if (errno == EEXIST)
                return cnn_err_set(err, CNN_EBUSY, "%s: already exists", target);
            rc = fail_errno(err, target, "cannot link temp file to the target", errno);
            cnn_durable_abort(d);
            return rc;
        }
        unlinkat(d->dfd, d->tmp, 0);
    } else if (renameat(d->dfd, d->tmp, d->dfd, target) != 0) {
        rc = fail_errno(err, target, "cannot rename temp file over the target", errno);
        cnn_durable_abort(d);
        return rc;
    }
    d->tmp[0] = '\0';
    int e = sync_fd_dir(d->dfd);
    release(d);
    return e ? fail_errno(err, target, "fsync of the folder failed", e) : 0;
}

void cnn_durable_abort(struct cnn_durable *d)
{
    if (d->dfd >= 0 && d->tmp[0])
        unlinkat(d->dfd, d->tmp, 0);
    d->tmp[0] = '\0';
    release(d);
}

int cnn_durable_write(const char *path, const void *data, size_t len, mode_t mode, int flags,
                      struct cnn_err *err)
{
    struct cnn_durable d;
    int rc = cnn_durable_begin(&d, path, mode, err);
    if (rc == 0)
        rc = cnn_durable_put(&d, data, len, err);
    if (rc == 0)
        rc = cnn_durable_commit(&d, NULL, flags, err);
    if (rc == CNN_EBUSY)
        cnn_durable_abort(&d);
    return rc;
}

int cnn_durable_stream(const char *path, mode_t mode, cnn_durable_fill_fn fill, void *ctx,
                       struct cnn_err *err)
{
    struct cnn_durable d;
    int rc = cnn_durable_begin(&d, path, mode, err);
    if (rc)
        return rc;
    int e = fill(d.fd, ctx);
    if (e) {
        cnn_durable_abort(&d);
        return fail_errno(err, d.name, "write failed", e);
    }
    return cnn_durable_commit(&d, NULL, 0, err);
}

int cnn_durable_remove(const char *path, struct cnn_err *err)
{
    char dir[4096];
    const char *base;
    int rc = split_path(path, dir, sizeof dir, &base, err);
    if (rc)
        return rc;
    if (unlink(path) != 0 && errno != ENOENT)
        return fail_errno(err, base, "cannot remove", errno);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int e = dfd < 0 ? errno : sync_fd_dir(dfd);
    if (dfd >= 0)
        close(dfd);
    return e ? fail_errno(err, base, "fsync of the folder failed", e) : 0;
}

int cnn_durable_is_temp(const char *name)
{
    if (name[0] != '.')
        return 0;
    const char *mark = NULL;
    for (const char *p = strstr(name + 1, TMP_MARK); p; p = strstr(p + 1, TMP_MARK))
        mark = p;
    if (!mark || mark == name + 1)
        return 0; /* ".<base>.tmp-": the base is not empty */
    const char *p = mark + strlen(TMP_MARK);
    const char *digits = p;
    while (*p >= '0' && *p <= '9')
        p++;
    if (p == digits || *p++ != '-')
        return 0;
    int hex = 0;
    for (; (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'); p++)
        hex++;
    return hex == 16 && *p == '\0';
}

int cnn_durable_clean_at(int dfd, int min_age_s, struct cnn_err *err)
{
    int fd = dup(dfd);
    DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
    if (!dir) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return fail_errno(err, "temp file cleanup", "cannot read the folder", e);
    }
    time_t now = time(NULL);
    int removed = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        struct stat st;
        if (!cnn_durable_is_temp(e->d_name) ||
            fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode) ||
            now - st.st_mtime < min_age_s)
            continue;
        if (unlinkat(dfd, e->d_name, 0) == 0)
            removed++;
    }
    closedir(dir);
    return removed;
}

int cnn_durable_clean(const char *dir, int min_age_s, struct cnn_err *err)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return fail_errno(err, "temp file cleanup", "cannot open the folder", errno);
    int n = cnn_durable_clean_at(dfd, min_age_s, err);
    close(dfd);
    return n;
}
