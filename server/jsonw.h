/* A small JSON text writer for the hot answers (classify results, v2 infer headers): appends
 * into one growing buffer instead of building a jansson tree (about 6x cheaper for a top-5
 * answer).  Strings are escaped and made valid UTF-8 (invalid bytes become '?'); floats are
 * written with 9 significant digits (enough to read back the same float), non-finite ones as
 * null.  Not thread-safe per writer; any thread. */
#ifndef JSONW_H
#define JSONW_H

#include <stddef.h>

struct jsonw {
    char *p; /* owned until jw_finish */
    size_t n, cap;
    int failed; /* an allocation failed: jw_finish returns NULL */
};

/* Appends text as it is (JSON punctuation, keys already quoted). */
void jw_raw(struct jsonw *w, const char *s);
/* Appends a quoted, escaped string. */
void jw_str(struct jsonw *w, const char *s);
void jw_int(struct jsonw *w, long long v);
/* %.9g, with ".0" added when it reads as an integer (as jansson does); null when not finite. */
void jw_float(struct jsonw *w, float v);
/* The text (NUL-terminated, malloc'd, owned by the caller) and its length; NULL when an
 * allocation failed (the buffer is freed either way). */
char *jw_finish(struct jsonw *w, size_t *len);

#endif
