/* The admin bearer token: where it comes from (CNND_ADMIN_TOKEN, else the first line of
 * admin_token_file, which must be a regular file of mode 0600 or stricter, or root's on a
 * read-only mount such as a Kubernetes Secret volume; created with
 * 256 random bits from getrandom(2) as 64 hex digits when missing) and the check of an
 * "Authorization: Bearer <token>" header in constant time: both sides are padded to
 * ADMIN_TOKEN_MAX bytes and every byte is compared with an accumulate-xor, the lengths
 * folded into the same accumulator, so neither the content nor the length of the token
 * decides how much work is done.  The token is never logged.  Load once at start; the
 * check is pure (any thread). */
#ifndef ADMIN_AUTH_H
#define ADMIN_AUTH_H

#include "err.h"

#include <stddef.h>
#include <sys/stat.h>

#define ADMIN_TOKEN_MAX 256 /* longest token accepted, bytes */
#define ADMIN_TOKEN_MIN 16  /* shortest token accepted from a file or the environment */

struct admin_token {
    unsigned char value[ADMIN_TOKEN_MAX]; /* zero padded */
    size_t len;
};

/* Fills t from env_value when it is non-NULL, else from the file at path, creating the
 * file (mode 0600, core/durable.h: temp, fsync, linked without replacing) with a fresh
 * random token when it does not exist.
 * *created (optional) = 1 when the file was made now.  Errors (CNN_EINVAL, CNN_EIO) name
 * the file and the reason (group/other permissions, symlink, too short, bad characters)
 * but never the token. */
int admin_token_load(struct admin_token *t, const char *env_value, const char *path, int *created,
                     struct cnn_err *err);

/* Whether a token file with attributes st may be used: a regular file that group and others
 * cannot read (mode 0600 or stricter, any owner), or a file owned by root without group or
 * other write permission on a read-only mount (read_only_mount = 1: a Kubernetes Secret
 * volume, whose files are 0644 or 0440 by default, or a :ro bind mount; only root could
 * have put it there).  0, or CNN_EINVAL naming path and the mode.  A symbolic link at
 * admin_token_file is followed only when the link, too, is root's on a read-only mount. */
int admin_token_file_check(const char *path, const struct stat *st, int read_only_mount,
                           struct cnn_err *err);

/* Sets t from text[0..n): visible ASCII only, ADMIN_TOKEN_MIN..ADMIN_TOKEN_MAX bytes. */
int admin_token_set(struct admin_token *t, const char *text, size_t n, struct cnn_err *err);

/* Writes 2 * nbytes lowercase hex digits of getrandom(2) bytes and a NUL into hex
 * (cap >= 2 * nbytes + 1, nbytes <= 64). */
int admin_token_generate(char *hex, size_t cap, size_t nbytes, struct cnn_err *err);

/* 1 when presented[0..n) equals the token.  Always compares ADMIN_TOKEN_MAX bytes; no
 * branch depends on either token's bytes or on the stored length. */
int admin_token_equal(const struct admin_token *t, const char *presented, size_t n);

/* 1 when the Authorization header value is "Bearer <token>" (scheme case-insensitive,
 * spaces around the token ignored) with the right token; 0 for NULL, another scheme or a
 * wrong token. */
int admin_token_check_header(const struct admin_token *t, const char *authorization);

#endif
