/* multipart/form-data bodies (RFC 7578 / RFC 2046) and header parameters (RFC 9110):
 * the parser splits a fully buffered body into parts without copying their data.  Limits:
 * part count (caller's), header block size per part (MP_MAX_HEADER_BYTES), boundary length
 * (1..70 characters).  Pure functions; any thread. */
#ifndef MULTIPART_H
#define MULTIPART_H

#include "err.h"

#include <stddef.h>

#define MP_MAX_HEADER_BYTES 8192 /* header block of one part */
#define MP_NAME_MAX 128          /* part name / filename / content type kept, incl. NUL */

struct mp_part {
    char name[MP_NAME_MAX];         /* Content-Disposition name=; "" when absent */
    char filename[MP_NAME_MAX];     /* filename=; "" when absent */
    char content_type[MP_NAME_MAX]; /* "" when absent */
    const unsigned char *data;      /* borrowed from the body */
    size_t len;
};

/* 1 when the media type of a Content-Type value (before any ';', case-insensitive,
 * whitespace-trimmed) equals type, e.g. mime_type_is("Image/PNG; x=y", "image/png"). */
int mime_type_is(const char *value, const char *type);

/* Finds parameter `key` (case-insensitive) in a header value "type; k=v; k2=\"q v\"" and
 * copies its (unquoted, unescaped) value into out.  0 when found; CNN_ENOENT when absent;
 * CNN_EINVAL when malformed (unterminated quote) or longer than cap - 1. */
int mime_param(const char *value, const char *key, char *out, size_t cap, struct cnn_err *err);

/* The boundary of a "multipart/form-data; boundary=..." value: CNN_EINVAL when the type is
 * not multipart/form-data or the boundary is missing, empty, over 70 characters or holds
 * characters RFC 2046 does not allow.  out needs 71 bytes. */
int mp_boundary(const char *content_type, char *out, size_t cap, struct cnn_err *err);

/* Splits body into at most max_parts parts (stored in parts[0..*n)).  Each part needs a
 * Content-Disposition: form-data header.  CNN_ELIMIT for more parts than max_parts or a
 * header block over MP_MAX_HEADER_BYTES; CNN_EINVAL for no parts, a missing or malformed
 * delimiter, header or closing boundary (a truncated body). */
int mp_parse(const void *body, size_t len, const char *boundary, struct mp_part *parts,
             int max_parts, int *n, struct cnn_err *err);

#endif
