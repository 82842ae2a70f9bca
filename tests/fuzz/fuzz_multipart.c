/* Fuzz target: multipart/form-data (server/multipart.c).  The input's first line is the
 * Content-Type header value, the rest the body: mp_boundary, mime_param and mp_parse, whose
 * parts must lie inside the body.  An empty body is NULL, as the server buffers it. */
#include "fuzz.h"
#include "multipart.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    size_t hlen = nl ? (size_t)(nl - data) : size;
    if (hlen > 4096)
        return 0;
    char ct[4097];
    memcpy(ct, data, hlen);
    ct[hlen] = '\0';
    const uint8_t *body = nl ? nl + 1 : data + size;
    size_t len = (size_t)(data + size - body);

    struct cnn_err err = {0};
    char val[64];
    mime_param(ct, "name", val, sizeof val, &err);
    (void)mime_type_is(ct, "multipart/form-data");
    char boundary[71];
    if (mp_boundary(ct, boundary, sizeof boundary, &err) != 0)
        return 0;
    struct mp_part parts[8];
    int n = 0;
    if (mp_parse(len ? body : NULL, len, boundary, parts, 8, &n, &err) != 0) /* as r->body */
        return 0;
    if (n < 1 || n > 8)
        abort();
    for (int i = 0; i < n; i++) {
        if (parts[i].data < body || parts[i].len > len ||
            parts[i].data + parts[i].len > body + len)
            abort(); /* a part outside the body */
        if (strnlen(parts[i].name, MP_NAME_MAX) == MP_NAME_MAX ||
            strnlen(parts[i].content_type, MP_NAME_MAX) == MP_NAME_MAX)
            abort();
        mime_param(parts[i].content_type, "charset", val, sizeof val, &err);
    }
    return 0;
}
