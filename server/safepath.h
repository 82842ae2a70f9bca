/* Paths a client names under the configured data root (fine-tune datasets, collected
 * examples): a lexical check of the text as sent (absolute, "..", percent-encoding, NUL,
 * control characters, length), then resolution with realpath(3) that must stay inside
 * realpath(root) at a component boundary, an openat2 open (core/fsroot.h: beneath the
 * root, no symlink at all), and a walk of a dataset folder that refuses any symlink.  The
 * job then opens every file with the same openat2 rule, so a check cannot be raced.  Folders
 * the server creates are made and opened one component at a time with O_NOFOLLOW.  Pure
 * functions of the file system; any thread. */
#ifndef SAFEPATH_H
#define SAFEPATH_H

#include "err.h"

#include <stddef.h>

#define SAFEPATH_MAX 1024     /* bytes of a client's relative path */
#define SAFEPATH_NAME_MAX 255 /* bytes of one component */

/* Checks rel[0..len) (len from the JSON string, so an embedded NUL is seen): not empty, no
 * NUL or control character, at most SAFEPATH_MAX bytes and SAFEPATH_NAME_MAX per
 * component, relative, no "." or ".." component and no percent-encoding (it is decoded
 * first, so "%2e%2e" is reported as ".." after decoding).  0, or CNN_EINVAL with the
 * reason in err (no "field:" prefix). */
int safepath_check(const char *rel, size_t len, struct cnn_err *err);

/* The value 0-15 of one hex digit of a percent-encoding ('0'-'9', 'a'-'f', 'A'-'F'), else -1. */
int safepath_hex_value(int c);

/* 1 when the absolute, resolved `path` is root_real itself or lies below it at a component
 * boundary ("/data" holds "/data/x", not "/data2/x"). */
int safepath_inside(const char *root_real, const char *path);

/* safepath_check, then realpath(root/rel), which must exist and be inside realpath(root),
 * then rel opened under the root by cnn_fsroot_open (no symlink on the way, even inside).
 * out (cap bytes, PATH_MAX is enough) gets the resolved absolute path.  CNN_EINVAL for a
 * refused path (any symlink), CNN_ENOENT when it does not exist, CNN_EIO when the root
 * itself cannot be resolved. */
int safepath_resolve(const char *root, const char *rel, size_t len, char *out, size_t cap,
                     struct cnn_err *err);

/* Walks the resolved folder dir down to `depth` levels (1: its entries; 2: also the
 * entries of its sub-folders) and refuses (CNN_EINVAL) any symlink, saying when its target
 * lies outside root_real; at most max_entries entries are looked at (CNN_ELIMIT beyond).
 * A regular file dir is accepted as is. */
int safepath_check_tree(const char *root_real, const char *dir, int depth, long max_entries,
                        struct cnn_err *err);

/* Opens (creating when missing, mode 0755) root/names[0]/.../names[n-1], each component
 * opened with O_DIRECTORY | O_NOFOLLOW relative to its parent, so a symlink anywhere on
 * the way is refused (CNN_EINVAL) rather than followed.  Names must be single components
 * (no '/', not "." or "..").  Returns a directory descriptor (>= 0, the caller closes
 * it) or a negative CNN_E*. */
int safepath_open_dirs(const char *root, const char *const *names, int n, struct cnn_err *err);
/* The same below an open folder descriptor dirfd (not closed). */
int safepath_open_dirs_at(int dirfd, const char *const *names, int n, struct cnn_err *err);

#endif
