/* Opens confined to a root folder (the data root): no path can leave the root or pass a
 * symlink, even if the tree changes between a check and the open.  Linux openat2(
 * RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS); without openat2 (ENOSYS,
 * or EPERM from a seccomp filter) a walk one component at a time with O_NOFOLLOW, which
 * refuses the same paths (and any '..').  No state; any thread. */
#ifndef CNN_FSROOT_H
#define CNN_FSROOT_H

#include "err.h"

#include <dirent.h>
#include <sys/stat.h>

/* A root folder: fd is an open descriptor of it (owned by whoever set it, not closed here).
 * A NULL root means no confinement: paths are opened as given (the cnn tool). */
struct cnn_fsroot {
    int fd;
};

/* Opens path (relative to root; absolute or any path when root is NULL) with open(2) flags
 * (O_CLOEXEC is added).  Returns a descriptor the caller closes, or a negative CNN_E*:
 * CNN_EINVAL for a path that is absolute, leaves the root ("..", EXDEV) or has a symlink in
 * any component (ELOOP), naming the path; CNN_ENOENT when missing; CNN_EIO otherwise. */
int cnn_fsroot_open(const struct cnn_fsroot *root, const char *path, int flags,
                    struct cnn_err *err);

/* The same walk as the openat2 fallback, always (for tests: both ways must agree). */
int cnn_fsroot_open_walk(int dirfd, const char *path, int flags, struct cnn_err *err);

/* stat(2) of path through cnn_fsroot_open (a FIFO is not waited on).  0 or as above. */
int cnn_fsroot_stat(const struct cnn_fsroot *root, const char *path, struct stat *st,
                    struct cnn_err *err);

/* opendir(3) of path through cnn_fsroot_open; NULL with err set. */
DIR *cnn_fsroot_opendir(const struct cnn_fsroot *root, const char *path, struct cnn_err *err);

#endif
