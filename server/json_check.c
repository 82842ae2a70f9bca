/* JSON depth and value-count pre-check (see json_check.h). */
#include "json_check.h"

int json_check_limits(const char *s, size_t n, int max_depth, size_t max_values,
                      struct cnn_err *err)
{
    int depth = 0, in_string = 0;
    size_t values = 1;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_string) {
            if (c == '\\')
                i++; /* skip the escaped character (a "\u" escape's hex digits are harmless) */
            else if (c == '"')
                in_string = 0;
            continue;
        }
        switch (c) {
        case '"':
            in_string = 1;
            break;
        case '[':
        case '{':
            if (++depth > max_depth)
                return cnn_err_set(err, CNN_ELIMIT, "JSON nested deeper than %d levels", max_depth);
            values++;
            break;
        case ']':
        case '}':
            if (depth > 0)
                depth--;
            break;
        case ',':
            values++;
            break;
        default:
            continue;
        }
        if (values > max_values)
            return cnn_err_set(err, CNN_ELIMIT, "JSON has more than %zu values", max_values);
    }
    return 0;
}
