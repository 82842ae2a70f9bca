/* The admin bearer token: loading, creating and constant-time checking (see admin_auth.h). */
#include "admin_auth.h"

#include "durable.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

int admin_token_set(struct admin_token *t, const char *text, size_t n, struct cnn_err *err)
{
    memset(t, 0, sizeof *t);
    if (n < ADMIN_TOKEN_MIN || n > ADMIN_TOKEN_MAX)
        return cnn_err_set(err, CNN_EINVAL, "token must have %d..%d characters (it has %zu)",
                           ADMIN_TOKEN_MIN, ADMIN_TOKEN_MAX, n);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)text[i] < 0x21 || (unsigned char)text[i] > 0x7e)
            return cnn_err_set(err, CNN_EINVAL,
                               "token must be visible ASCII characters (no spaces)");
    memcpy(t->value, text, n);
    t->len = n;
    return 0;
}

int admin_token_generate(char *hex, size_t cap, size_t nbytes, struct cnn_err *err)
{
    unsigned char raw[64];
    if (nbytes > sizeof raw || cap < 2 * nbytes + 1)
        return cnn_err_set(err, CNN_EINVAL, "token buffer too small");
    size_t got = 0;
    while (got < nbytes) {
        ssize_t k = getrandom(raw + got, nbytes - got, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return cnn_err_set(err, CNN_EIO, "getrandom failed: %s", strerror(errno));
        got += (size_t)k;
    }
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < nbytes; i++) {
        hex[2 * i] = digits[raw[i] >> 4];
        hex[2 * i + 1] = digits[raw[i] & 15];
    }
    hex[2 * nbytes] = '\0';
    memset(raw, 0, sizeof raw);
    return 0;
}

/* Creates path with a new token; CNN_EBUSY when it appeared meanwhile (read it instead). */
static int create_file(const char *path, struct admin_token *t, struct cnn_err *err)
{
    char hex[2 * 32 + 2];
    int rc = admin_token_generate(hex, sizeof hex, 32, err);
    if (rc)
        return rc;
    size_t n = strlen(hex);
    hex[n] = '\n';
    struct cnn_err e = {0};
    /* complete or absent after a crash; linked, so a file that appeared meanwhile stays */
    rc = cnn_durable_write(path, hex, n + 1, 0600, CNN_DURABLE_NOREPLACE, &e);
    if (rc) {
        memset(hex, 0, sizeof hex);
        if (rc == CNN_EBUSY)
            return CNN_EBUSY;
        return cnn_err_set(err, CNN_EIO, "admin token file %s: cannot create: %s", path, e.msg);
    }
    rc = admin_token_set(t, hex, n, err);
    memset(hex, 0, sizeof hex);
    return rc;
}

int admin_token_file_check(const char *path, const struct stat *st, int read_only_mount,
                           struct cnn_err *err)
{
    if (!S_ISREG(st->st_mode))
        return cnn_err_set(err, CNN_EINVAL, "admin token file %s: not a regular file", path);
    if ((st->st_mode & 077) == 0)
        return 0; /* mode 0600 or stricter */
    if (st->st_uid == 0 && (st->st_mode & 022) == 0 && read_only_mount)
        return 0; /* root's file on a read-only mount: a Kubernetes Secret, a :ro bind mount */
    return cnn_err_set(err, CNN_EINVAL,
                       "admin token file %s: mode %03o lets group or others read it (chmod 600 "
                       "it, or mount it read-only owned by root with no group/other write)",
                       path, (unsigned)(st->st_mode & 0777));
}

/* 1 when the file system holding fd is mounted read-only. */
static int read_only_mount(int fd)
{
    struct statvfs sv;
    return fstatvfs(fd, &sv) == 0 && (sv.f_flag & ST_RDONLY);
}

/* 1 when the folder holding path (not following a last-component link) is on a read-only
 * mount. */
static int dir_read_only(const char *path)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *(slash == dir ? slash + 1 : slash) = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    int ro = read_only_mount(fd);
    close(fd);
    return ro;
}

/* A symbolic link is followed only when it lies on a read-only mount and belongs to root:
 * a Kubernetes Secret volume holds NAME -> ..data/NAME, and nobody but root made that link.
 * *via_link = 1 when the file was opened through such a link. */
static int open_token(const char *path, int *via_link)
{
    *via_link = 0;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd >= 0 || errno != ELOOP)
        return fd;
    struct stat ls;
    if (lstat(path, &ls) != 0 || ls.st_uid != 0 || !dir_read_only(path)) {
        errno = ELOOP;
        return -1;
    }
    *via_link = 1;
    return open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
}

static int read_file(const char *path, struct admin_token *t, struct cnn_err *err)
{
    int via_link = 0;
    int fd = open_token(path, &via_link);
    if (fd < 0)
        return cnn_err_set(err, errno == ENOENT ? CNN_ENOENT : CNN_EIO,
                           "admin token file %s: cannot open: %s", path,
                           errno == ELOOP ? "it is a symlink (followed only when root's, on a "
                                            "read-only mount)"
                                          : strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return cnn_err_set(err, CNN_EIO, "admin token file %s: cannot stat: %s", path,
                           strerror(errno));
    }
    int ro = read_only_mount(fd);
    int rc = admin_token_file_check(path, &st, ro, err);
    if (rc == 0 && via_link && !(st.st_uid == 0 && ro)) /* as trusted as the link itself */
        rc = cnn_err_set(err, CNN_EINVAL,
                         "admin token file %s: a symlink to a file that is not root's on a "
                         "read-only mount",
                         path);
    if (rc) {
        close(fd);
        return rc;
    }
    char buf[ADMIN_TOKEN_MAX + 64];
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    if (n < 0)
        return cnn_err_set(err, CNN_EIO, "admin token file %s: cannot read: %s", path,
                           strerror(errno));
    size_t len = 0;
    while (len < (size_t)n && buf[len] != '\n' && buf[len] != '\r')
        len++;
    while (len > 0 && (buf[len - 1] == ' ' || buf[len - 1] == '\t'))
        len--;
    if (len == (size_t)n && (size_t)n == sizeof buf)
        len = sizeof buf; /* no line end in sight: too long */
    rc = admin_token_set(t, buf, len, err);
    memset(buf, 0, sizeof buf);
    if (rc) {
        char why[sizeof err->msg];
        snprintf(why, sizeof why, "%s", err->msg);
        return cnn_err_set(err, rc, "admin token file %s: %s", path, why);
    }
    return 0;
}

int admin_token_load(struct admin_token *t, const char *env_value, const char *path, int *created,
                     struct cnn_err *err)
{
    if (created)
        *created = 0;
    if (env_value) {
        int rc = admin_token_set(t, env_value, strlen(env_value), err);
        if (rc) {
            char why[sizeof err->msg];
            snprintf(why, sizeof why, "%s", err->msg);
            return cnn_err_set(err, rc, "CNND_ADMIN_TOKEN: %s", why);
        }
        return 0;
    }
    int rc = read_file(path, t, err);
    if (rc != CNN_ENOENT)
        return rc;
    rc = create_file(path, t, err);
    if (rc == CNN_EBUSY)
        return read_file(path, t, err);
    if (rc == 0 && created)
        *created = 1;
    return rc;
}

int admin_token_equal(const struct admin_token *t, const char *presented, size_t n)
{
    unsigned char padded[ADMIN_TOKEN_MAX] = {0};
    /* The copy's length depends only on what the client sent, not on the secret. */
    memcpy(padded, presented, n < ADMIN_TOKEN_MAX ? n : ADMIN_TOKEN_MAX);
    volatile unsigned diff = 0;
    for (size_t i = 0; i < ADMIN_TOKEN_MAX; i++)
        diff |= (unsigned)(padded[i] ^ t->value[i]);
    uint64_t dl = (uint64_t)n ^ (uint64_t)t->len; /* 0 only when the lengths match */
    diff |= (unsigned)(dl | (dl >> 32));
    diff |= (unsigned)(t->len == 0); /* an unset token matches nothing */
    return diff == 0;
}

int admin_token_check_header(const struct admin_token *t, const char *authorization)
{
    if (!authorization || strncasecmp(authorization, "Bearer", 6) != 0)
        return 0;
    const char *p = authorization + 6;
    if (*p != ' ' && *p != '\t')
        return 0;
    while (*p == ' ' || *p == '\t')
        p++;
    size_t n = strlen(p);
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    return admin_token_equal(t, p, n);
}
