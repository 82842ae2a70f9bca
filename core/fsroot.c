/* Confined opens under a root folder (see fsroot.h): openat2 with RESOLVE_BENEATH and
 * RESOLVE_NO_SYMLINKS, or a component walk with O_NOFOLLOW where openat2 is missing. */
#include "fsroot.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define FSROOT_RESOLVE (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)

/* The CNN_E* code and message of a failed open of path with errno e. */
static int open_error(const char *path, int e, struct cnn_err *err)
{
    if (e == ELOOP || e == EXDEV)
        return cnn_err_set(err, CNN_EINVAL, "%.120s: %s", path,
                           e == ELOOP ? "a symlink on the path is refused"
                                      : "the path leaves its root folder");
    char buf[96];
    if (strerror_r(e, buf, sizeof buf) != 0)
        buf[0] = '\0';
    return cnn_err_set(err, e == ENOENT || e == ENOTDIR ? CNN_ENOENT : CNN_EIO, "%.120s: %s", path,
                       buf);
}

int cnn_fsroot_open_walk(int dirfd, const char *path, int flags, struct cnn_err *err)
{
    if (path[0] == '/')
        return open_error(path, EXDEV, err);
    int fd = dup(dirfd);
    if (fd < 0)
        return open_error(path, errno, err);
    const char *p = path;
    for (;;) {
        while (*p == '/')
            p++;
        size_t len = strcspn(p, "/");
        const char *next = p + len;
        while (*next == '/')
            next++;
        int last = *next == '\0';
        char name[256];
        if (len >= sizeof name) {
            close(fd);
            return open_error(path, ENAMETOOLONG, err);
        }
        memcpy(name, p, len);
        name[len] = '\0';
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
            close(fd);
            return open_error(path, EXDEV, err);
        }
        int f =
            last ? flags | O_NOFOLLOW | O_CLOEXEC : O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
        int nfd = openat(fd, name, f, 0644);
        int e = errno;
        struct stat st; /* O_DIRECTORY | O_NOFOLLOW on a symlink says ENOTDIR */
        if (nfd < 0 && e == ENOTDIR && fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            S_ISLNK(st.st_mode))
            e = ELOOP;
        close(fd);
        if (nfd < 0)
            return open_error(path, e, err);
        if (last)
            return nfd;
        fd = nfd;
        p = next;
    }
}

int cnn_fsroot_open(const struct cnn_fsroot *root, const char *path, int flags, struct cnn_err *err)
{
    if (!path || !path[0])
        return cnn_err_set(err, CNN_EINVAL, "no path");
    if (!root) {
        int fd = open(path, flags | O_CLOEXEC, 0644);
        return fd >= 0 ? fd : open_error(path, errno, err);
    }
#ifdef SYS_openat2
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = (uint64_t)(flags | O_CLOEXEC);
    how.mode = (flags & O_CREAT) ? 0644 : 0;
    how.resolve = FSROOT_RESOLVE;
    long fd = syscall(SYS_openat2, root->fd, path, &how, sizeof how);
    if (fd >= 0)
        return (int)fd;
    if (errno != ENOSYS && errno != EPERM)
        return open_error(path, errno, err);
#endif
    return cnn_fsroot_open_walk(root->fd, path, flags, err);
}

int cnn_fsroot_stat(const struct cnn_fsroot *root, const char *path, struct stat *st,
                    struct cnn_err *err)
{
    int fd = cnn_fsroot_open(root, path, O_RDONLY | O_NONBLOCK | O_NOCTTY, err);
    if (fd < 0)
        return fd;
    int rc = fstat(fd, st) == 0 ? 0 : open_error(path, errno, err);
    close(fd);
    return rc;
}

DIR *cnn_fsroot_opendir(const struct cnn_fsroot *root, const char *path, struct cnn_err *err)
{
    int fd = cnn_fsroot_open(root, path, O_RDONLY | O_DIRECTORY, err);
    if (fd < 0)
        return NULL;
    DIR *d = fdopendir(fd);
    if (!d) {
        open_error(path, errno, err);
        close(fd);
    }
    return d;
}
