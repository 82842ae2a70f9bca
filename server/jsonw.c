/* JSON text writer (see jsonw.h). */
#include "jsonw.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int reserve(struct jsonw *w, size_t extra)
{
    if (w->failed)
        return -1;
    if (w->cap - w->n > extra)
        return 0;
    size_t cap = w->cap ? w->cap : 256;
    while (cap - w->n <= extra)
        cap *= 2;
    char *p = realloc(w->p, cap);
    if (!p) {
        w->failed = 1;
        return -1;
    }
    w->p = p;
    w->cap = cap;
    return 0;
}

static void put(struct jsonw *w, const char *s, size_t n)
{
    if (reserve(w, n) == 0) {
        memcpy(w->p + w->n, s, n);
        w->n += n;
    }
}

void jw_raw(struct jsonw *w, const char *s)
{
    put(w, s, strlen(s));
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when s starts an invalid one. */
static int utf8_len(const unsigned char *s)
{
    unsigned c = s[0];
    int n;
    unsigned min;
    if (c < 0x80)
        return 1;
    if ((c & 0xE0) == 0xC0) {
        n = 2;
        min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        n = 3;
        min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        n = 4;
        min = 0x10000;
    } else {
        return 0;
    }
    unsigned cp = c & (0x7F >> n);
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

void jw_str(struct jsonw *w, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    if (reserve(w, strlen(s) * 6 + 2) != 0)
        return;
    char *o = w->p + w->n;
    *o++ = '"';
    while (*p) {
        int n = utf8_len(p);
        if (n == 0) {
            *o++ = '?';
            p++;
        } else if (n > 1) {
            memcpy(o, p, (size_t)n);
            o += n;
            p += n;
        } else if (*p == '"' || *p == '\\') {
            *o++ = '\\';
            *o++ = (char)*p++;
        } else if (*p < 0x20) {
            memcpy(o, "\\u00", 4);
            o[4] = hex[*p >> 4];
            o[5] = hex[*p & 15];
            o += 6;
            p++;
        } else {
            *o++ = (char)*p++;
        }
    }
    *o++ = '"';
    w->n = (size_t)(o - w->p);
}

void jw_int(struct jsonw *w, long long v)
{
    char buf[24];
    int n = snprintf(buf, sizeof buf, "%lld", v);
    put(w, buf, (size_t)n);
}

void jw_float(struct jsonw *w, float v)
{
    if (!isfinite(v)) {
        put(w, "null", 4);
        return;
    }
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%.9g", (double)v);
    if (!strpbrk(buf, ".e")) {
        memcpy(buf + n, ".0", 3);
        n += 2;
    }
    put(w, buf, (size_t)n);
}

char *jw_finish(struct jsonw *w, size_t *len)
{
    if (reserve(w, 1) != 0) {
        free(w->p);
        w->p = NULL;
        return NULL;
    }
    w->p[w->n] = '\0';
    *len = w->n;
    char *p = w->p;
    w->p = NULL;
    w->n = w->cap = 0;
    return p;
}
