/* Writing a trained model into the repository so that a crash or kill -9 at any moment
 * never leaves a partial version the registry would load:
 *   1. REPO/NAME/.publish-<tag>-<pid>-<random>/ is made and the model saved in it as
 *      model.cnn with cnn_model_save (core/durable.h: temp file, fsync, rename, fsync of
 *      that folder);
 *   2. the whole folder is renamed to REPO/NAME/<V> with renameat2(RENAME_NOREPLACE),
 *      V = the highest version folder + 1 (the next one when another writer took V);
 *   3. REPO/NAME is fsync'd.
 * Before step 2 nothing has a version name (the registry skips dot names and version
 * folders without model.cnn); after it the folder holds a complete, synced file.  Leftover
 * .publish-* folders of a killed process are removed by publish_cleanup at start; a live
 * publisher holds flock(2) on its folder until the rename, so a replica starting on the same
 * repository (NFS included: Linux maps flock to byte-range locks there) never removes it.
 * Pure file-system functions; any thread. */
#ifndef PUBLISH_H
#define PUBLISH_H

#include "err.h"
#include "model.h"

/* Publishes m as the next version of repo/name (the folder must exist); *version gets it.
 * tag (e.g. "job7", [A-Za-z0-9_-]) names the temp folder.  On failure nothing with a
 * version name is left behind and the temp folder is removed. */
int publish_version(const char *repo, const char *name, const struct cnn_model *m, const char *tag,
                    int *version, struct cnn_err *err);

/* Saves m as repo/name/<dir>/model.cnn, dir a dot name the registry never loads (kept for
 * inspection, e.g. ".rejected-job7"); an existing one is replaced.  Stale temp files a
 * killed save left in that folder are removed first. */
int publish_hidden(const char *repo, const char *name, const char *dir, const struct cnn_model *m,
                   struct cnn_err *err);

/* Removes repo/NAME/.publish-* folders (and their files) left by a killed process: those
 * whose lock nobody holds.  Returns how many were removed. */
int publish_cleanup(const char *repo);

/* The highest version folder name under repo/name (0 when none). */
int publish_highest_version(const char *repo, const char *name);

#endif
