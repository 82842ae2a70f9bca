/* multipart/form-data parsing and header parameters (see multipart.h).  The body is fully
 * buffered (its size was checked against the route's limit first); parts point into it. */
#include "multipart.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#define BOUNDARY_MAX 70

/* First occurrence of needle (n bytes, n >= 1) in hay[0..len), or NULL (memmem is GNU).
 * hay may be NULL when len is 0 (an empty body is never buffered). */
static const void *find(const void *hay, size_t len, const char *needle, size_t n)
{
    if (len < n)
        return NULL;
    const unsigned char *h = hay, *end = h + len;
    while ((size_t)(end - h) >= n) {
        const unsigned char *p = memchr(h, needle[0], (size_t)(end - h) - n + 1);
        if (!p)
            return NULL;
        if (memcmp(p, needle, n) == 0)
            return p;
        h = p + 1;
    }
    return NULL;
}

static const char *skip_ows(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

int mime_type_is(const char *value, const char *type)
{
    if (!value)
        return 0;
    const char *p = skip_ows(value);
    size_t n = strcspn(p, ";");
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    return n == strlen(type) && strncasecmp(p, type, n) == 0;
}

int mime_param(const char *value, const char *key, char *out, size_t cap, struct cnn_err *err)
{
    const char *p = strchr(value, ';');
    size_t klen = strlen(key);
    while (p && *p == ';') {
        p = skip_ows(p + 1);
        const char *k = p;
        while (*p && *p != '=' && *p != ';' && *p != ' ' && *p != '\t')
            p++;
        size_t this_len = (size_t)(p - k);
        p = skip_ows(p);
        if (*p != '=') { /* a parameter without value: skip it */
            p = strchr(p, ';');
            continue;
        }
        p = skip_ows(p + 1);
        size_t n = 0;
        int want = this_len == klen && strncasecmp(k, key, klen) == 0;
        if (*p == '"') {
            for (p++; *p && *p != '"'; p++) {
                if (*p == '\\' && p[1])
                    p++;
                if (want && n + 1 < cap)
                    out[n] = *p;
                n++;
            }
            if (*p != '"')
                return cnn_err_set(err, CNN_EINVAL, "unterminated quoted parameter %s", key);
            p++;
        } else {
            const char *v = p;
            while (*p && *p != ';')
                p++;
            const char *e = p;
            while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
                e--;
            n = (size_t)(e - v);
            if (want && n < cap)
                memcpy(out, v, n);
        }
        if (want) {
            if (n >= cap)
                return cnn_err_set(err, CNN_EINVAL, "parameter %s longer than %zu characters", key,
                                   cap - 1);
            out[n] = '\0';
            return 0;
        }
        p = skip_ows(p);
    }
    return cnn_err_set(err, CNN_ENOENT, "no parameter %s", key);
}

static int bchar(int c)
{
    return isalnum(c) || (c && strchr("'()+_,-./:=? ", c));
}

int mp_boundary(const char *content_type, char *out, size_t cap, struct cnn_err *err)
{
    if (!mime_type_is(content_type, "multipart/form-data"))
        return cnn_err_set(err, CNN_EINVAL, "not multipart/form-data");
    char b[BOUNDARY_MAX + 2];
    int rc = mime_param(content_type, "boundary", b, sizeof b, err);
    if (rc == CNN_ENOENT)
        return cnn_err_set(err, CNN_EINVAL, "multipart/form-data without a boundary");
    if (rc)
        return cnn_err_set(err, CNN_EINVAL, "bad multipart boundary");
    size_t n = strlen(b);
    if (n == 0 || n > BOUNDARY_MAX || b[n - 1] == ' ' || n >= cap)
        return cnn_err_set(err, CNN_EINVAL, "multipart boundary must have 1..%d characters",
                           BOUNDARY_MAX);
    for (size_t i = 0; i < n; i++)
        if (!bchar((unsigned char)b[i]))
            return cnn_err_set(err, CNN_EINVAL,
                               "multipart boundary holds a character RFC 2046 "
                               "does not allow");
    memcpy(out, b, n + 1);
    return 0;
}

/* Parses the header block h[0..n) (lines separated by CRLF) of part `index` into p. */
static int parse_headers(const char *h, size_t n, int index, struct mp_part *p, struct cnn_err *err)
{
    char line[MP_MAX_HEADER_BYTES + 1];
    int have_disposition = 0;
    size_t i = 0;
    while (i < n) {
        const char *end = find(h + i, n - i, "\r\n", 2);
        size_t len = end ? (size_t)(end - (h + i)) : n - i;
        memcpy(line, h + i, len);
        line[len] = '\0';
        i += len + 2;
        char *colon = strchr(line, ':');
        if (!colon || colon == line || strlen(line) != len)
            return cnn_err_set(err, CNN_EINVAL, "part %d: malformed header line", index + 1);
        *colon = '\0';
        const char *value = skip_ows(colon + 1);
        if (strcasecmp(line, "Content-Disposition") == 0) {
            if (!mime_type_is(value, "form-data"))
                return cnn_err_set(err, CNN_EINVAL,
                                   "part %d: Content-Disposition is not "
                                   "form-data",
                                   index + 1);
            have_disposition = 1;
            int rc = mime_param(value, "name", p->name, sizeof p->name, err);
            if (rc == CNN_ENOENT)
                return cnn_err_set(err, CNN_EINVAL, "part %d: form-data without a name", index + 1);
            if (rc)
                return cnn_err_set(err, CNN_EINVAL, "part %d: bad name parameter", index + 1);
            rc = mime_param(value, "filename", p->filename, sizeof p->filename, err);
            if (rc && rc != CNN_ENOENT)
                return cnn_err_set(err, CNN_EINVAL, "part %d: bad filename parameter", index + 1);
        } else if (strcasecmp(line, "Content-Type") == 0) {
            size_t vlen = strlen(value);
            if (vlen >= sizeof p->content_type)
                return cnn_err_set(err, CNN_EINVAL, "part %d: Content-Type too long", index + 1);
            memcpy(p->content_type, value, vlen + 1);
        }
    }
    if (!have_disposition)
        return cnn_err_set(err, CNN_EINVAL, "part %d: no Content-Disposition: form-data header",
                           index + 1);
    return 0;
}

int mp_parse(const void *body, size_t len, const char *boundary, struct mp_part *parts,
             int max_parts, int *n, struct cnn_err *err)
{
    const unsigned char *b = body;
    char delim[BOUNDARY_MAX + 5]; /* "\r\n--" boundary */
    size_t blen = strlen(boundary);
    *n = 0;
    if (blen == 0 || blen > BOUNDARY_MAX)
        return cnn_err_set(err, CNN_EINVAL, "bad multipart boundary");
    memcpy(delim, "\r\n--", 4);
    memcpy(delim + 4, boundary, blen);
    size_t dlen = blen + 2; /* "--" boundary, the delimiter without its CRLF */
    size_t pos;             /* start of the current "--boundary" */
    if (len >= dlen && memcmp(b, delim + 2, dlen) == 0) {
        pos = 0;
    } else {
        const unsigned char *p = find(b, len, delim, dlen + 2);
        if (!p)
            return cnn_err_set(err, CNN_EINVAL, "multipart body without its boundary");
        pos = (size_t)(p - b) + 2;
    }
    int count = 0;
    for (;;) {
        size_t q = pos + dlen;
        if (q + 2 <= len && b[q] == '-' && b[q + 1] == '-')
            break; /* close delimiter; anything after it is epilogue */
        while (q < len && (b[q] == ' ' || b[q] == '\t'))
            q++;
        if (q + 2 > len || b[q] != '\r' || b[q + 1] != '\n')
            return cnn_err_set(err, CNN_EINVAL,
                               "multipart body truncated or malformed after "
                               "boundary %d",
                               count + 1);
        q += 2;
        if (count == max_parts)
            return cnn_err_set(err, CNN_ELIMIT, "more than %d multipart parts (limit)", max_parts);
        struct mp_part *part = &parts[count];
        memset(part, 0, sizeof *part);
        size_t data;
        if (q + 2 <= len && b[q] == '\r' && b[q + 1] == '\n') {
            data = q + 2; /* no headers at all: rejected below for lacking a disposition */
            int rc = parse_headers("", 0, count, part, err);
            if (rc)
                return rc;
        } else {
            size_t window = len - q;
            if (window > MP_MAX_HEADER_BYTES + 4)
                window = MP_MAX_HEADER_BYTES + 4;
            const unsigned char *e = find(b + q, window, "\r\n\r\n", 4);
            if (!e)
                return window == len - q
                           ? cnn_err_set(err, CNN_EINVAL, "part %d: headers truncated", count + 1)
                           : cnn_err_set(err, CNN_ELIMIT, "part %d: headers over %d bytes",
                                         count + 1, MP_MAX_HEADER_BYTES);
            size_t hlen = (size_t)(e - (b + q));
            if (hlen > MP_MAX_HEADER_BYTES)
                return cnn_err_set(err, CNN_ELIMIT, "part %d: headers over %d bytes", count + 1,
                                   MP_MAX_HEADER_BYTES);
            int rc = parse_headers((const char *)b + q, hlen, count, part, err);
            if (rc)
                return rc;
            data = q + hlen + 4;
        }
        const unsigned char *next = find(b + data, len - data, delim, dlen + 2);
        if (!next)
            return cnn_err_set(err, CNN_EINVAL,
                               "multipart body truncated: part %d has no "
                               "closing boundary",
                               count + 1);
        part->data = b + data;
        part->len = (size_t)(next - (b + data));
        count++;
        pos = (size_t)(next - b) + 2;
    }
    if (count == 0)
        return cnn_err_set(err, CNN_EINVAL, "multipart body without parts");
    *n = count;
    return 0;
}
