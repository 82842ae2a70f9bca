/* Argument parsing for the `cnn` subcommands: long options anywhere on the command line
 * ("--top 3" or "--top=3"), "--" ending options, positionals gathered in order, and checked
 * number conversions that report usage errors as "cnn: <cmd>: ...". */
#ifndef CNN_TOOL_OPTS_H
#define CNN_TOOL_OPTS_H

#include <stdint.h>

enum opts_result { OPTS_OK = 0, OPTS_HELP = 1, OPTS_ERROR = 2 };

struct opt_spec {
    const char *name; /* with the dashes: "--top" */
    int takes_value;  /* 0: a flag */
};

/* Parses argv[1..argc) of subcommand `cmd` (argv[0] is the subcommand name).
 * values[i] gets the value of spec[i] when given ("" for a flag; the last one wins), else
 * NULL.  Positionals are moved, in order, to argv[1..*n_pos].  "-h"/"--help" -> OPTS_HELP;
 * an unknown option or a missing value prints a usage error on stderr -> OPTS_ERROR. */
int opts_parse(const char *cmd, int argc, char **argv, const struct opt_spec *spec, int n_spec,
               const char **values, int *n_pos);

/* Converts s (the value of option `opt`) to an integer in [min, max]; on failure prints
 * "cnn: <cmd>: <opt>: ..." on stderr and returns OPTS_ERROR, else OPTS_OK. */
int opts_int(const char *cmd, const char *opt, const char *s, long long min, long long max,
             long long *out);
int opts_u64(const char *cmd, const char *opt, const char *s, uint64_t *out);
/* Finite double in [min, max]. */
int opts_double(const char *cmd, const char *opt, const char *s, double min, double max,
                double *out);

#endif
