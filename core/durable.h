/* Durable file writes, the one place for them: the data goes to a uniquely named temp file
 * beside the target (".<base>.tmp-<pid>-<16 hex>"), is fsync'd, then renamed over the
 * target (or linked to it, never replacing) and the folder is fsync'd -- so the target only
 * ever holds a complete file, the old one or the new one.  A crash can leave a temp file
 * behind; cnn_durable_clean() removes those once they are old.  Threads: any. */
#ifndef CNN_DURABLE_H
#define CNN_DURABLE_H

#include "err.h"

#include <stddef.h>
#include <sys/types.h>

/* Commit by link(): the target is never replaced; CNN_EBUSY when it exists. */
#define CNN_DURABLE_NOREPLACE 1
/* A temp file untouched this long is a crash's leftover (a live writer keeps writing it). */
#define CNN_DURABLE_STALE_S 600

/* One write in progress.  Write the content to fd; the other fields are private. */
struct cnn_durable {
    int fd;         /* the temp file; -1 once it is fsync'd and closed */
    int dfd;        /* the target's folder */
    int own_dfd;    /* dfd was opened by cnn_durable_begin (closed at the end) */
    char tmp[256];  /* temp file name inside dfd */
    char name[256]; /* target name inside dfd (messages name it, never its folder) */
};

/* Error messages are "<target base name>: <what failed>: <strerror>" (no folder in them, so
 * callers may pass them on to clients).  Codes: CNN_ENOENT when the folder is missing (or a
 * path component is not a folder), CNN_EBUSY (NOREPLACE only) when the target exists,
 * CNN_ENOMEM, CNN_EINVAL for a path naming a folder, CNN_EIO for every other failure. */

/* Creates the temp file for path (its folder must exist) with permission bits `mode`
 * (exactly, whatever the umask).  Then write to d->fd and end with cnn_durable_commit() or
 * cnn_durable_abort().  On failure nothing is left behind and d needs no abort. */
int cnn_durable_begin(struct cnn_durable *d, const char *path, mode_t mode, struct cnn_err *err);
/* The same in the folder open as dfd (borrowed until the write ends); name has no '/'. */
int cnn_durable_begin_at(struct cnn_durable *d, int dfd, const char *name, mode_t mode,
                         struct cnn_err *err);
/* Writes all of data to the temp file; on failure the write is aborted (temp removed). */
int cnn_durable_put(struct cnn_durable *d, const void *data, size_t len, struct cnn_err *err);
/* fsyncs and closes the temp file, renames it over `name` (NULL: the target given to begin)
 * -- with CNN_DURABLE_NOREPLACE links it to `name` instead -- removes the temp name and
 * fsyncs the folder.  The write has ended (temp gone, d released) after 0 and after every
 * error except CNN_EBUSY: then d is still open for another name or cnn_durable_abort().
 * A failed folder fsync is reported although the file is already in place. */
int cnn_durable_commit(struct cnn_durable *d, const char *name, int flags, struct cnn_err *err);
/* Removes the temp file and releases d.  No-op after the write has ended. */
void cnn_durable_abort(struct cnn_durable *d);

/* begin + put + commit for a buffer (flags as for commit; on CNN_EBUSY nothing is left). */
int cnn_durable_write(const char *path, const void *data, size_t len, mode_t mode, int flags,
                      struct cnn_err *err);
/* Streams the content: fill(fd, ctx) writes it to fd and returns 0 or an errno value. */
typedef int (*cnn_durable_fill_fn)(int fd, void *ctx);
int cnn_durable_stream(const char *path, mode_t mode, cnn_durable_fill_fn fill, void *ctx,
                       struct cnn_err *err);
/* Writes all n bytes to fd (retrying short writes and EINTR); returns 0 or an errno value. */
int cnn_durable_write_all(int fd, const void *data, size_t n);

/* Removes path (already absent is fine) and fsyncs its folder. */
int cnn_durable_remove(const char *path, struct cnn_err *err);
/* fsyncs the folder dir (file systems that cannot sync a folder count as success). */
int cnn_durable_sync_dir(const char *dir, struct cnn_err *err);
/* Writes "<pid>-<16 hex random>" into buf: a name part no other thread, process or (with
 * overwhelming odds) host sharing the folder picks at the same time. */
void cnn_durable_unique(char *buf, size_t cap);

/* 1 when name has the shape of the temp files cnn_durable_begin makes. */
int cnn_durable_is_temp(const char *name);
/* Removes the temp files in folder dir (not below it) that were last modified at least
 * min_age_s seconds ago; every other file stays.  Returns how many were removed, or a
 * negative CNN_E* when dir cannot be read. */
int cnn_durable_clean(const char *dir, int min_age_s, struct cnn_err *err);
int cnn_durable_clean_at(int dfd, int min_age_s, struct cnn_err *err);

#endif
