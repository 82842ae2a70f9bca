/* Data-root path checks and resolution (see safepath.h). */
#include "safepath.h"

#include "fsroot.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int safepath_hex_value(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The lexical rules on already decoded bytes; the reason or NULL. */
static const char *lexical_problem(const unsigned char *p, size_t n)
{
    if (n == 0)
        return "empty path";
    if (p[0] == '/')
        return "absolute paths are refused (give a path relative to the data root)";
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && p[i] == '\0')
            return "contains a NUL byte";
        if (i < n && (p[i] < 0x20 || p[i] == 0x7f))
            return "contains a control character";
        if (i < n && p[i] != '/')
            continue;
        size_t len = i - start;
        if (len > SAFEPATH_NAME_MAX)
            return "a path component is longer than 255 bytes";
        if ((len == 1 && p[start] == '.') || (len == 2 && p[start] == '.' && p[start + 1] == '.'))
            return "'.' and '..' components are refused";
        start = i + 1;
    }
    return NULL;
}

int safepath_check(const char *rel, size_t len, struct cnn_err *err)
{
    if (!rel)
        return cnn_err_set(err, CNN_EINVAL, "missing");
    if (len > SAFEPATH_MAX)
        return cnn_err_set(err, CNN_EINVAL, "longer than %d bytes", SAFEPATH_MAX);
    unsigned char dec[SAFEPATH_MAX];
    size_t n = 0;
    int encoded = 0;
    for (size_t i = 0; i < len; i++) {
        const unsigned char *s = (const unsigned char *)rel;
        int hi = i + 2 < len ? safepath_hex_value(s[i + 1]) : -1;
        int lo = i + 2 < len ? safepath_hex_value(s[i + 2]) : -1;
        if (s[i] == '%' && hi >= 0 && lo >= 0) {
            dec[n++] = (unsigned char)(hi * 16 + lo);
            encoded = 1;
            i += 2;
        } else {
            dec[n++] = s[i];
        }
    }
    const char *why = lexical_problem(dec, n);
    if (why)
        return cnn_err_set(err, CNN_EINVAL, "%s%s", why,
                           encoded ? " (after percent-decoding)" : "");
    if (encoded)
        return cnn_err_set(err, CNN_EINVAL, "percent-encoded characters are refused");
    return 0;
}

int safepath_inside(const char *root_real, const char *path)
{
    size_t n = strlen(root_real);
    while (n > 1 && root_real[n - 1] == '/')
        n--;
    if (n == 1 && root_real[0] == '/')
        return path[0] == '/';
    return strncmp(path, root_real, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* The open a job will make: rel under root_real through openat2 (core/fsroot.h), which
 * follows no symlink at all, even one that stays inside.  0 or CNN_EINVAL / CNN_ENOENT. */
static int open_beneath(const char *root_real, const char *rel, size_t len,
                        struct cnn_err *err)
{
    char path[SAFEPATH_MAX + 1];
    memcpy(path, rel, len); /* len <= SAFEPATH_MAX, no NUL inside (safepath_check) */
    path[len] = '\0';
    struct cnn_fsroot root = {open(root_real, O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
    if (root.fd < 0)
        return cnn_err_set(err, CNN_EIO, "the data root cannot be opened: %s", strerror(errno));
    struct stat st;
    struct cnn_err e = {0};
    int rc = cnn_fsroot_stat(&root, path, &st, &e);
    close(root.fd);
    if (rc == CNN_EINVAL)
        return cnn_err_set(err, rc, "a symlink on the path is refused (none is followed under "
                                    "the data root)");
    if (rc)
        return cnn_err_set(err, rc == CNN_ENOENT ? rc : CNN_EIO, "cannot open: %s", e.msg);
    return 0;
}

int safepath_resolve(const char *root, const char *rel, size_t len, char *out, size_t cap,
                     struct cnn_err *err)
{
    int rc = safepath_check(rel, len, err);
    if (rc)
        return rc;
    char root_real[PATH_MAX], joined[PATH_MAX], res[PATH_MAX];
    if (!realpath(root, root_real))
        return cnn_err_set(err, CNN_EIO, "the data root cannot be resolved: %s", strerror(errno));
    int k = snprintf(joined, sizeof joined, "%s/%.*s", root_real, (int)len, rel);
    if (k < 0 || (size_t)k >= sizeof joined)
        return cnn_err_set(err, CNN_EINVAL, "longer than the system allows");
    if (!realpath(joined, res)) {
        int e = errno;
        if (e == ENOENT || e == ENOTDIR)
            return cnn_err_set(err, CNN_ENOENT, "not found under the data root");
        if (e == ELOOP)
            return cnn_err_set(err, CNN_EINVAL, "too many levels of symlinks");
        if (e == EACCES)
            return cnn_err_set(err, CNN_EINVAL, "permission denied");
        return cnn_err_set(err, e == ENAMETOOLONG ? CNN_EINVAL : CNN_EIO, "cannot resolve: %s",
                           strerror(e));
    }
    if (!safepath_inside(root_real, res))
        return cnn_err_set(err, CNN_EINVAL, "leads outside the data root (through a symlink)");
    if ((rc = open_beneath(root_real, rel, len, err)) != 0)
        return rc;
    if (strlen(res) >= cap)
        return cnn_err_set(err, CNN_EINVAL, "resolved path too long");
    strcpy(out, res);
    return 0;
}

struct walk {
    const char *root_real;
    long seen, max_entries;
};

static int walk_dir(struct walk *w, const char *dir, int depth, struct cnn_err *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return cnn_err_set(err, errno == ENOENT ? CNN_ENOENT : CNN_EIO, "cannot open a folder: %s",
                           strerror(errno));
    int rc = 0;
    struct dirent *e;
    char child[PATH_MAX], res[PATH_MAX];
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (++w->seen > w->max_entries) {
            rc = cnn_err_set(err, CNN_ELIMIT, "more than %ld entries", w->max_entries);
            break;
        }
        int k = snprintf(child, sizeof child, "%s/%s", dir, e->d_name);
        struct stat st;
        if (k < 0 || (size_t)k >= sizeof child || lstat(child, &st) != 0)
            continue; /* vanished or too long: the loader reports what it cannot read */
        const char *next = child;
        if (S_ISLNK(st.st_mode)) { /* the job's openat2 would refuse it */
            int out = !realpath(child, res) || !safepath_inside(w->root_real, res);
            rc = cnn_err_set(err, CNN_EINVAL, "holds a symlink (%.60s)%s", e->d_name,
                             out ? " leading outside the data root"
                                 : "; none is followed under the data root");
            break;
        }
        if (S_ISDIR(st.st_mode) && depth > 1)
            rc = walk_dir(w, next, depth - 1, err);
    }
    closedir(d);
    return rc;
}

int safepath_check_tree(const char *root_real, const char *dir, int depth, long max_entries,
                        struct cnn_err *err)
{
    struct stat st;
    if (stat(dir, &st) != 0)
        return cnn_err_set(err, CNN_ENOENT, "not found under the data root");
    if (!S_ISDIR(st.st_mode) || depth < 1)
        return 0;
    struct walk w = {root_real, 0, max_entries};
    return walk_dir(&w, dir, depth, err);
}

int safepath_open_dirs_at(int dirfd, const char *const *names, int n, struct cnn_err *err)
{
    int fd = dup(dirfd);
    if (fd < 0)
        return cnn_err_set(err, CNN_EIO, "cannot open a folder: %s", strerror(errno));
    for (int i = 0; i < n; i++) {
        const char *name = names[i];
        if (!name[0] || strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0 ||
            strlen(name) > SAFEPATH_NAME_MAX) {
            close(fd);
            return cnn_err_set(err, CNN_EINVAL, "bad folder name");
        }
        if (mkdirat(fd, name, 0755) != 0 && errno != EEXIST) {
            int e = errno;
            close(fd);
            return cnn_err_set(err, CNN_EIO, "cannot create a folder: %s", strerror(e));
        }
        int next = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int e = errno;
        close(fd);
        if (next < 0)
            return cnn_err_set(
                err, (e == ELOOP || e == ENOTDIR) ? CNN_EINVAL : CNN_EIO, "folder %.60s: %s", name,
                (e == ELOOP || e == ENOTDIR) ? "a symlink or not a folder" : strerror(e));
        fd = next;
    }
    return fd;
}

int safepath_open_dirs(const char *root, const char *const *names, int n, struct cnn_err *err)
{
    int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return cnn_err_set(err, CNN_EIO, "the data root cannot be opened: %s", strerror(errno));
    int rc = safepath_open_dirs_at(fd, names, n, err);
    close(fd);
    return rc;
}
