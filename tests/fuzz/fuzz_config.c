/* Fuzz target: configuration (server/config.c): the INI file, command-line flags and
 * CNND_* variables.  Input: the file's text, then optionally a NUL and one argument per
 * line; lines starting "CNND_" go to the environment, the others to argv after
 * "--config FILE".  Arguments naming another config file are dropped (the target must not
 * read whatever path the fuzzer invents, e.g. /dev/stdin).  An accepted configuration is
 * described (config_describe); a refusal always has a message. */
#define _GNU_SOURCE /* memfd_create */
#include "fuzz.h"
#include "config.h"

#include <sys/mman.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_ARGS 32

static char path[64];
static int fd = -1;

/* The file's text in a memfd (tmpfs I/O on an overlay /tmp made each input take ms),
 * opened by config_load_file as /proc/self/fd/N. */
static int write_file(const uint8_t *data, size_t n)
{
    if (fd < 0) {
        fd = memfd_create("fuzz-config", MFD_CLOEXEC);
        if (fd < 0)
            return -1;
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0 || pwrite(fd, data, n, 0) != (ssize_t)n)
        return -1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, '\0', size);
    size_t flen = nul ? (size_t)(nul - data) : size;
    if (write_file(data, flen) != 0)
        return 0;
    char *args = NULL;
    char *argv[MAX_ARGS + 4] = {"cnnd", "--config", path};
    char *envp[MAX_ARGS + 1];
    int argc = 3, envc = 0;
    if (nul) {
        size_t alen = size - flen - 1;
        args = malloc(alen + 1);
        if (!args)
            return 0;
        memcpy(args, nul + 1, alen);
        args[alen] = '\0';
        for (char *save = NULL, *tok = strtok_r(args, "\n", &save);
             tok && argc < MAX_ARGS + 3 && envc < MAX_ARGS; tok = strtok_r(NULL, "\n", &save)) {
            if (strncmp(tok, "CNND_", 5) == 0)
                envp[envc++] = tok;
            else if (!strstr(tok, "config"))
                argv[argc++] = tok;
        }
    }
    argv[argc] = NULL;
    envp[envc] = NULL;
    static struct config c;
    char errbuf[CONFIG_ERR_MAX];
    errbuf[0] = '\0';
    int rc = config_load(&c, argc, argv, envp, 2, NULL, errbuf, sizeof errbuf);
    if (rc == CONFIG_ERROR && !errbuf[0])
        abort(); /* a refusal always says why */
    if (rc == CONFIG_OK) {
        static char desc[4096];
        config_describe(&c, desc, sizeof desc);
        if (c.instances < 1 || c.threads < 1 || c.train_threads < 1)
            abort(); /* config_finish resolves every auto value */
    }
    free(args);
    return 0;
}
