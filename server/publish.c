/* Crash-safe publishing of a new model version (see publish.h). */
#define _GNU_SOURCE /* renameat2, RENAME_NOREPLACE */
#include "publish.h"

#include "durable.h"
#include "repository.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define TMP_PREFIX ".publish-"

/* Removes dir and the plain files in it (best effort). */
static void remove_flat_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char p[PATH_MAX + 256];
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

int publish_highest_version(const char *repo, const char *name)
{
    char dir[PATH_MAX];
    if (snprintf(dir, sizeof dir, "%s/%s", repo, name) >= (int)sizeof dir)
        return 0;
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int best = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int v = repo_parse_version(e->d_name);
        if (v > best)
            best = v;
    }
    closedir(d);
    return best;
}

int publish_version(const char *repo, const char *name, const struct cnn_model *m, const char *tag,
                    int *version, struct cnn_err *err)
{
    char dir[PATH_MAX], tmp[PATH_MAX + 96], uniq[48], file[PATH_MAX + 128], dst[PATH_MAX + 32];
    int rc_errno;
    *version = 0;
    if (snprintf(dir, sizeof dir, "%s/%s", repo, name) >= (int)sizeof dir)
        return cnn_err_set(err, CNN_ELIMIT, "repository path too long");
    cnn_durable_unique(uniq, sizeof uniq);
    snprintf(tmp, sizeof tmp, "%s/" TMP_PREFIX "%.32s-%s", dir, tag, uniq);
    if (mkdir(tmp, 0755) != 0)
        return cnn_err_set(err, CNN_EIO, "cannot make a temp version folder in %s: %s", name,
                           strerror(errno));
    /* Held until the folder has its version name: another replica starting on this
     * repository meanwhile sees the lock and leaves the folder alone (publish_cleanup). */
    int lock = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (lock < 0 || flock(lock, LOCK_EX) != 0) {
        rc_errno = errno;
        if (lock >= 0)
            close(lock);
        remove_flat_dir(tmp);
        return cnn_err_set(err, CNN_EIO, "cannot lock the temp version folder in %s: %s", name,
                           strerror(rc_errno));
    }
    snprintf(file, sizeof file, "%s/model.cnn", tmp);
    int rc = cnn_model_save(m, file, err);
    if (rc) {
        remove_flat_dir(tmp);
        close(lock);
        return rc;
    }
    int v = publish_highest_version(repo, name) + 1;
    for (int attempt = 0;; attempt++, v++) {
        snprintf(dst, sizeof dst, "%s/%d", dir, v);
        if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dst, RENAME_NOREPLACE) == 0)
            break;
        if ((errno == EEXIST || errno == ENOTEMPTY) && attempt < 1000)
            continue; /* another writer took v */
        rc = cnn_err_set(err, CNN_EIO, "cannot rename the new version into %s/%d: %s", name, v,
                         strerror(errno));
        remove_flat_dir(tmp);
        close(lock);
        return rc;
    }
    close(lock); /* the folder is a version now; cleanups never look at it */
    /* the version is in place and visible; a failed fsync of REPO/NAME is not a failed
     * publish (the registry may already serve it) */
    (void)cnn_durable_sync_dir(dir, NULL);
    *version = v;
    return 0;
}

int publish_hidden(const char *repo, const char *name, const char *dir_name,
                   const struct cnn_model *m, struct cnn_err *err)
{
    char dir[PATH_MAX + 96], file[PATH_MAX + 128];
    if (dir_name[0] != '.' || strchr(dir_name, '/'))
        return cnn_err_set(err, CNN_EINVAL, "hidden folder name must start with '.'");
    if (snprintf(dir, sizeof dir, "%s/%s/%s", repo, name, dir_name) >= (int)sizeof dir)
        return cnn_err_set(err, CNN_ELIMIT, "repository path too long");
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return cnn_err_set(err, CNN_EIO, "cannot make %s/%s: %s", name, dir_name, strerror(errno));
    /* a kill during an earlier save of this folder may have left a temp file */
    (void)cnn_durable_clean(dir, CNN_DURABLE_STALE_S, NULL);
    snprintf(file, sizeof file, "%s/model.cnn", dir);
    return cnn_model_save(m, file, err);
}

int publish_cleanup(const char *repo)
{
    DIR *d = opendir(repo);
    if (!d)
        return 0;
    int removed = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!repo_valid_name(e->d_name))
            continue;
        char mdir[PATH_MAX];
        if (snprintf(mdir, sizeof mdir, "%s/%s", repo, e->d_name) >= (int)sizeof mdir)
            continue;
        DIR *md = opendir(mdir);
        if (!md)
            continue;
        struct dirent *v;
        while ((v = readdir(md)) != NULL) {
            if (strncmp(v->d_name, TMP_PREFIX, strlen(TMP_PREFIX)) != 0)
                continue;
            char p[PATH_MAX + 256];
            snprintf(p, sizeof p, "%s/%s", mdir, v->d_name);
            /* a live publisher (this host or another replica's) holds its folder's lock */
            int lock = open(p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (lock < 0)
                continue;
            if (flock(lock, LOCK_EX | LOCK_NB) == 0) {
                remove_flat_dir(p);
                removed++;
            }
            close(lock);
        }
        closedir(md);
    }
    closedir(d);
    return removed;
}
