/* Minimal JSON writing for the `cnn` tool's --json output (no JSON library): escaped
 * strings and numbers that stay valid JSON (non-finite values become null). */
#ifndef CNN_TOOL_JSON_OUT_H
#define CNN_TOOL_JSON_OUT_H

#include <stdio.h>

/* Writes s as a quoted JSON string: ", \ and control characters escaped; other bytes
 * (UTF-8) are written as they are. */
void json_put_string(FILE *f, const char *s);

/* Writes v with `digits` significant digits ("%.*g"), or null when v is NaN or infinite. */
void json_put_number(FILE *f, double v, int digits);
/* Writes v with `decimals` digits after the point ("%.*f"), or null when not finite. */
void json_put_fixed(FILE *f, double v, int decimals);

#endif
