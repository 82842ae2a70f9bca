/* Shared helpers of the `cnn` tool: error messages and exit codes, whole-file reads,
 * opening a model file or an "arch:NAME" architecture, names and digit grouping. */
#include "arch.h"
#include "tool.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TOOL_MAX_FILE_BYTES ((size_t)1 << 31) /* images and models above 2 GiB are refused */

int tool_usage(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "cnn: %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'cnn %s --help'.\n", cmd);
    return TOOL_USAGE;
}

int tool_fail(const char *what, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "cnn: %s: ", what);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return TOOL_RUNTIME;
}

static int errno_err(struct cnn_err *err, int e, const char *what)
{
    return cnn_err_set(err, e == ENOENT || e == ENOTDIR ? CNN_ENOENT : CNN_EIO, "%s: %s", what,
                       strerror(e));
}

int tool_read_file(const char *path, void **data, size_t *size, struct cnn_err *err)
{
    *data = NULL;
    *size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno_err(err, errno, "cannot open");
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return cnn_err_set(err, CNN_EINVAL, "not a regular file");
    }
    if ((unsigned long long)st.st_size > TOOL_MAX_FILE_BYTES) {
        close(fd);
        return cnn_err_set(err, CNN_ELIMIT, "file of %lld bytes is too large",
                           (long long)st.st_size);
    }
    size_t n = (size_t)st.st_size;
    unsigned char *buf = malloc(n ? n : 1);
    if (!buf) {
        close(fd);
        return cnn_err_set(err, CNN_ENOMEM, "out of memory for %zu bytes", n);
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            int e = r < 0 ? errno : EIO;
            free(buf);
            close(fd);
            return errno_err(err, e, "read failed");
        }
        got += (size_t)r;
    }
    close(fd);
    *data = buf;
    *size = n;
    return 0;
}

static int open_arch(const char *spec, const char *name, enum tool_arch_mode mode,
                     struct cnn_model **out)
{
    struct cnn_err err = {0};
    struct cnn_model *m = NULL;
    int rc = cnn_arch_build(name, 0, &m, &err);
    if (rc == CNN_ENOENT) {
        fprintf(stderr, "cnn: %s: unknown architecture '%s' (see 'cnn init --list')\n", spec, name);
        return TOOL_USAGE;
    }
    if (rc)
        return tool_fail(spec, "%s", err.msg);
    if (mode == TOOL_ARCH_RANDOM) {
        cnn_model_init_random(m, 1);
        rc = cnn_model_compile(m, &err);
        if (rc) {
            cnn_model_destroy(m);
            return tool_fail(spec, "%s", err.msg);
        }
    }
    *out = m;
    return TOOL_OK;
}

int tool_open_model(const char *spec, enum tool_arch_mode mode, struct cnn_model **out)
{
    *out = NULL;
    if (strncmp(spec, "arch:", 5) == 0)
        return open_arch(spec, spec + 5, mode, out);
    struct cnn_err err = {0};
    if (cnn_model_load(spec, out, &err) != 0) {
        *out = NULL;
        return tool_fail(spec, "%s", err.msg);
    }
    return TOOL_OK;
}

void tool_model_name(const char *spec, const struct cnn_model *m, char *buf, size_t n)
{
    if (strncmp(spec, "arch:", 5) == 0) {
        snprintf(buf, n, "%s", spec + 5);
        return;
    }
    if (m) {
        cnn_model_meta_value(m, "arch", buf, n);
        if (buf[0])
            return;
    }
    const char *base = strrchr(spec, '/');
    base = base ? base + 1 : spec;
    const char *dot = strrchr(base, '.');
    int len = dot && dot != base ? (int)(dot - base) : (int)strlen(base);
    snprintf(buf, n, "%.*s", len, base);
}

void tool_group_digits(unsigned long long v, char *buf, size_t n)
{
    char digits[32];
    int nd = snprintf(digits, sizeof digits, "%llu", v);
    char out[48];
    int o = 0;
    for (int i = 0; i < nd; i++) {
        if (i > 0 && (nd - i) % 3 == 0)
            out[o++] = ',';
        out[o++] = digits[i];
    }
    out[o] = '\0';
    snprintf(buf, n, "%s", out);
}
