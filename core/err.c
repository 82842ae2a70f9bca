/* Error helpers: format a message into struct cnn_err, name a status code. */
#include "err.h"

#include <stdarg.h>
#include <stdio.h>

int cnn_err_set(struct cnn_err *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

const char *cnn_strerror(int code)
{
    switch (code) {
    case CNN_OK: return "ok";
    case CNN_EINVAL: return "invalid argument";
    case CNN_EFORMAT: return "bad format";
    case CNN_ELIMIT: return "over limit";
    case CNN_ENOENT: return "not found";
    case CNN_EBUSY: return "busy";
    case CNN_ENOMEM: return "out of memory";
    case CNN_EIO: return "i/o error";
    case CNN_ECANCELED: return "cancelled";
    }
    return "unknown error";
}
