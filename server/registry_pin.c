/* Registry, the live_version pin (see registry.c for the DESIGN note): reading and
 * persisting REPO/NAME/live_version, and the admin calls that set it (activate, publish).
 * Lock: only r->mu (owned by registry.c), taken briefly and never held while the pin file
 * is read or written (durable write, core/durable.h), while a model is scanned or while
 * logging; never two locks.  Writers run as the scanning thread (registry_begin_scan). */
#include "registry.h"

#include "durable.h"
#include "log.h"
#include "registry_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int registry_read_pin(const char *repo, const char *name)
{
    char path[PATH_MAX], buf[32];
    int len = snprintf(path, sizeof path, "%s/%s/live_version", repo, name);
    if (len < 0 || (size_t)len >= sizeof path)
        return -1;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n \t")] = '\0';
    int v = repo_parse_version(buf);
    return v > 0 ? v : -1;
}

/* Writes (version > 0) or removes (0) REPO/NAME/live_version, durably (core/durable.h). */
static int write_pin(const char *repo, const char *name, int version, struct cnn_err *err)
{
    char path[PATH_MAX], text[24];
    int len = snprintf(path, sizeof path, "%s/%s/live_version", repo, name);
    if (len < 0 || (size_t)len >= sizeof path)
        return cnn_err_set(err, CNN_ELIMIT, "repository path too long");
    int n = snprintf(text, sizeof text, "%d\n", version);
    struct cnn_err e = {0};
    int rc = version > 0 ? cnn_durable_write(path, text, (size_t)n, 0644, 0, &e)
                         : cnn_durable_remove(path, &e);
    /* e.msg starts with the file name, never with the repository path */
    return rc ? cnn_err_set(err, CNN_EIO, "cannot %s %s/%s", version > 0 ? "write" : "remove", name,
                            e.msg)
              : 0;
}

/* Scanning thread: sets the pin file to `pin` (0 removes it), rescans me and checks that
 * `want` (> 0) is then live; if not, restores the previous pin and rescans. */
static int set_pin(struct registry *r, struct mentry *me, int pin, int want, struct cnn_err *err)
{
    int old = registry_read_pin(r->repository, me->name);
    int rc = write_pin(r->repository, me->name, pin, err);
    if (rc)
        return rc;
    pthread_mutex_lock(&r->mu);
    me->unloaded = 0;
    pthread_mutex_unlock(&r->mu);
    registry_scan_model(r, me);
    if (want <= 0 || registry_live_version(r, me) == want)
        return 0;
    struct failure *f = registry_find_failure(me, want);
    rc = cnn_err_set(err, f ? CNN_EFORMAT : CNN_EIO, "version %d of %s did not go live: %s", want,
                     me->name, f ? f->msg : "it could not be loaded (see the log)");
    struct cnn_err ignored = {0};
    write_pin(r->repository, me->name, old > 0 ? old : 0, &ignored);
    registry_scan_model(r, me);
    return rc;
}

/* One admin turn: model_for + set_pin as the scanning thread.  *me gets the entry. */
static int pin_turn(struct registry *r, const char *name, int version, int pin, struct mentry **me,
                    struct cnn_err *err)
{
    int rc = registry_begin_scan(r, NULL, err);
    if (rc)
        return rc;
    rc = registry_model_for(r, name, version, me, err);
    if (rc == 0)
        rc = set_pin(r, *me, pin, version, err);
    registry_end_scan(r);
    return rc;
}

int registry_activate(struct registry *r, const char *name, int version, struct cnn_err *err)
{
    struct mentry *me = NULL;
    int rc = pin_turn(r, name, version, version > 0 ? version : 0, &me, err);
    if (rc == 0)
        log_info("model activated name=%s version=%d pinned=%d", name,
                 version > 0 ? version : registry_live_version(r, me), version > 0);
    return rc;
}

int registry_publish(struct registry *r, const char *name, int version, struct cnn_err *err)
{
    struct mentry *me = NULL;
    return pin_turn(r, name, version, 0, &me, err);
}

int registry_pinned(struct registry *r, const char *name)
{
    pthread_mutex_lock(&r->mu);
    struct mentry *me = registry_find_model(r, name);
    int v = me ? me->pinned : 0;
    pthread_mutex_unlock(&r->mu);
    return v;
}
