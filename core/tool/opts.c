/* Argument parsing for the `cnn` subcommands: options anywhere, "--opt value" or
 * "--opt=value", "--" ends options; checked integer and float conversions. */
#include "opts.h"
#include "tool.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Index of the spec whose name equals arg up to '=' (or its end); -1 when none. */
static int find_spec(const struct opt_spec *spec, int n_spec, const char *arg, size_t len)
{
    for (int i = 0; i < n_spec; i++)
        if (strlen(spec[i].name) == len && strncmp(spec[i].name, arg, len) == 0)
            return i;
    return -1;
}

int opts_parse(const char *cmd, int argc, char **argv, const struct opt_spec *spec, int n_spec,
               const char **values, int *n_pos)
{
    int w = 1, only_pos = 0;
    for (int i = 0; i < n_spec; i++)
        values[i] = NULL;
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        if (only_pos || a[0] != '-' || a[1] == '\0') { /* "-" alone is a positional */
            argv[w++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_pos = 1;
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)
            return OPTS_HELP;
        const char *eq = strchr(a, '=');
        size_t len = eq ? (size_t)(eq - a) : strlen(a);
        int k = find_spec(spec, n_spec, a, len);
        if (k < 0)
            return tool_usage(cmd, "unknown option '%.*s'", (int)len, a);
        if (!spec[k].takes_value) {
            if (eq)
                return tool_usage(cmd, "option '%s' takes no value", spec[k].name);
            values[k] = "";
        } else if (eq) {
            values[k] = eq + 1;
        } else if (i + 1 < argc) {
            values[k] = argv[++i];
        } else {
            return tool_usage(cmd, "option '%s' needs a value", spec[k].name);
        }
    }
    *n_pos = w - 1;
    return OPTS_OK;
}

int opts_int(const char *cmd, const char *opt, const char *s, long long min, long long max,
             long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (s[0] == '\0' || *end != '\0' || errno == ERANGE || v < min || v > max)
        return tool_usage(cmd, "%s: '%s' is not an integer in %lld..%lld", opt, s, min, max);
    *out = v;
    return OPTS_OK;
}

int opts_u64(const char *cmd, const char *opt, const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno == ERANGE)
        return tool_usage(cmd, "%s: '%s' is not an unsigned 64-bit integer", opt, s);
    *out = (uint64_t)v;
    return OPTS_OK;
}

int opts_double(const char *cmd, const char *opt, const char *s, double min, double max,
                double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (s[0] == '\0' || *end != '\0' || errno == ERANGE || !isfinite(v) || v < min || v > max)
        return tool_usage(cmd, "%s: '%s' is not a number in %g..%g", opt, s, min, max);
    *out = v;
    return OPTS_OK;
}
