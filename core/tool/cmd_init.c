/* `cnn init ARCH OUT [--seed N] [--classes K]`: builds a shipped architecture, fills it with
 * seeded random weights, compiles it (which checks every weight) and saves the model file.
 * `cnn init --list` lists the architectures with their one-line descriptions. */
#include "arch.h"
#include "opts.h"
#include "tool.h"

#include <inttypes.h>
#include <stdio.h>

static const char USAGE[] =
    "usage: cnn init ARCH OUT [--seed N] [--classes K]\n"
    "       cnn init --list\n"
    "Builds architecture ARCH with random weights (He/Xavier, deterministic for a seed),\n"
    "compiles it and writes the model file OUT atomically.\n"
    "options:\n"
    "  --seed N      random seed, 0..2^64-1 (default 1)\n"
    "  --classes K   output classes, 1..100000 (default: the architecture's, 10 or 1000)\n"
    "  --list        list the architectures and exit\n"
    "example: cnn init lenet5 lenet5.cnn --seed 7\n";

enum { O_SEED, O_CLASSES, O_LIST, O_COUNT };
static const struct opt_spec SPEC[O_COUNT] = {
    [O_SEED] = {"--seed", 1}, [O_CLASSES] = {"--classes", 1}, [O_LIST] = {"--list", 0}};

static int list_archs(void)
{
    int n;
    const char *const *names = cnn_arch_names(&n);
    for (int i = 0; i < n; i++) {
        const char *d = cnn_arch_describe(names[i]);
        printf("%-12s %s\n", names[i], d ? d : "");
    }
    return TOOL_OK;
}

int cmd_init(int argc, char **argv)
{
    const char *v[O_COUNT];
    int n_pos;
    int rc = opts_parse("init", argc, argv, SPEC, O_COUNT, v, &n_pos);
    if (rc == OPTS_HELP) {
        fputs(USAGE, stdout);
        return TOOL_OK;
    }
    if (rc)
        return TOOL_USAGE;
    if (v[O_LIST]) {
        if (n_pos != 0)
            return tool_usage("init", "--list takes no arguments");
        return list_archs();
    }
    if (n_pos != 2)
        return tool_usage("init", "expected ARCH and OUT, got %d argument%s", n_pos,
                          n_pos == 1 ? "" : "s");
    uint64_t seed = 1;
    long long classes = 0;
    if (v[O_SEED] && opts_u64("init", "--seed", v[O_SEED], &seed))
        return TOOL_USAGE;
    if (v[O_CLASSES] && opts_int("init", "--classes", v[O_CLASSES], 1, CNN_MAX_CLASSES, &classes))
        return TOOL_USAGE;
    const char *arch = argv[1], *out = argv[2];

    struct cnn_err err = {0};
    struct cnn_model *m = NULL;
    rc = cnn_arch_build(arch, (int)classes, &m, &err);
    if (rc == CNN_ENOENT)
        return tool_usage("init", "unknown architecture '%s' (see 'cnn init --list')", arch);
    if (rc)
        return tool_fail(arch, "%s", err.msg);
    cnn_model_init_random(m, seed);
    if (cnn_model_compile(m, &err) != 0) {
        cnn_model_destroy(m);
        return tool_fail(arch, "%s", err.msg);
    }
    if (cnn_model_save(m, out, &err) != 0) {
        cnn_model_destroy(m);
        return tool_fail(out, "%s", err.msg);
    }
    char params[48];
    tool_group_digits(cnn_model_param_count(m), params, sizeof params);
    printf("%s: %s params, %d classes, seed %" PRIu64 " -> %s\n", arch, params,
           cnn_model_num_classes(m), seed, out);
    cnn_model_destroy(m);
    return TOOL_OK;
}
