/* Limits on a JSON text checked by one linear scan before any parser sees it: nesting depth
 * of arrays/objects and the number of values (so a hostile body cannot make the parser build
 * millions of nodes or recurse deeply).  Pure function; any thread. */
#ifndef JSON_CHECK_H
#define JSON_CHECK_H

#include "err.h"

#include <stddef.h>

/* Scans s[0..n): outside strings (escapes honoured) it tracks the depth of '[' / '{' and
 * counts values as ',' + '[' + '{' + 1 (an upper bound on array elements plus members).
 * CNN_ELIMIT with a message when depth > max_depth or values > max_values; 0 otherwise.
 * Syntax is not checked here (the parser does that). */
int json_check_limits(const char *s, size_t n, int max_depth, size_t max_values,
                      struct cnn_err *err);

#endif
