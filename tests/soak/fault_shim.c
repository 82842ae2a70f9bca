/* LD_PRELOAD fault injector for tests/soak/faults.sh: makes write, fsync, renameat or
 * renameat2 fail with a chosen errno when the file involved has FAULT_MATCH in its path
 * (faults.sh: ".publish-", the temp folder a fine-tune job saves its version in, so the
 * daemon's other files are untouched).  Environment:
 *   FAULT_OP     write | fsync | renameat | renameat2   (unset: no fault)
 *   FAULT_MATCH  substring of the path (fd paths via /proc/self/fd)
 *   FAULT_NTH    fail the Nth matching call and those after it (default 1)
 *   FAULT_ERRNO  EIO (default) | ENOSPC | EDQUOT | EROFS
 * Each injected fault is reported on stderr: "fault_shim: OP PATH -> ERRNO". */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static atomic_int seen;

static int fault_errno(void)
{
    const char *e = getenv("FAULT_ERRNO");
    if (e && strcmp(e, "ENOSPC") == 0)
        return ENOSPC;
    if (e && strcmp(e, "EDQUOT") == 0)
        return EDQUOT;
    if (e && strcmp(e, "EROFS") == 0)
        return EROFS;
    return EIO;
}

/* 1 when this call of op on path is to fail (and says so on stderr). */
static int inject(const char *op, const char *path)
{
    const char *want = getenv("FAULT_OP"), *match = getenv("FAULT_MATCH");
    if (!want || strcmp(want, op) != 0 || !path || !strstr(path, match ? match : ""))
        return 0;
    const char *nth = getenv("FAULT_NTH");
    int n = atomic_fetch_add(&seen, 1) + 1;
    if (n < (nth ? atoi(nth) : 1))
        return 0;
    char line[600];
    int len = snprintf(line, sizeof line, "fault_shim: %s %s -> %s\n", op, path,
                       strerrorname_np(fault_errno()));
    if (len > 0)
        fputs(line, stderr);
    return 1;
}

static const char *fd_path(int fd, char *buf, size_t cap)
{
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, buf, cap - 1);
    if (n < 0)
        return NULL;
    buf[n] = '\0';
    return buf;
}

/* dir (an fd or AT_FDCWD) + name as one path. */
static const char *at_path(int dfd, const char *name, char *buf, size_t cap)
{
    char dir[512];
    if (name[0] == '/' || dfd == AT_FDCWD || !fd_path(dfd, dir, sizeof dir))
        snprintf(buf, cap, "%s", name);
    else
        snprintf(buf, cap, "%s/%s", dir, name);
    return buf;
}

ssize_t write(int fd, const void *data, size_t n)
{
    static ssize_t (*real)(int, const void *, size_t);
    if (!real)
        real = (ssize_t(*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
    char p[600];
    if (fd > 2 && inject("write", fd_path(fd, p, sizeof p))) {
        errno = fault_errno();
        return -1;
    }
    return real(fd, data, n);
}

int fsync(int fd)
{
    static int (*real)(int);
    if (!real)
        real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    char p[600];
    if (inject("fsync", fd_path(fd, p, sizeof p))) {
        errno = fault_errno();
        return -1;
    }
    return real(fd);
}

int renameat(int olddfd, const char *oldpath, int newdfd, const char *newpath)
{
    static int (*real)(int, const char *, int, const char *);
    if (!real)
        real = (int (*)(int, const char *, int, const char *))dlsym(RTLD_NEXT, "renameat");
    char p[1200];
    if (inject("renameat", at_path(olddfd, oldpath, p, sizeof p))) {
        errno = fault_errno();
        return -1;
    }
    return real(olddfd, oldpath, newdfd, newpath);
}

int renameat2(int olddfd, const char *oldpath, int newdfd, const char *newpath, unsigned flags)
{
    static int (*real)(int, const char *, int, const char *, unsigned);
    if (!real)
        real = (int (*)(int, const char *, int, const char *, unsigned))dlsym(RTLD_NEXT,
                                                                              "renameat2");
    char p[1200];
    if (inject("renameat2", at_path(olddfd, oldpath, p, sizeof p))) {
        errno = fault_errno();
        return -1;
    }
    return real(olddfd, oldpath, newdfd, newpath, flags);
}
