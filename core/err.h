/* Status codes and error messages shared by every core function.
 * A fallible function returns 0 or a negative CNN_E* code and fills the optional
 * struct cnn_err (last argument) with a one-line message naming what is wrong. */
#ifndef CNN_ERR_H
#define CNN_ERR_H

enum cnn_status {
    CNN_OK = 0,
    CNN_EINVAL = -1,    /* bad argument or request: 400 */
    CNN_EFORMAT = -2,   /* bad image or model file: 400 */
    CNN_ELIMIT = -3,    /* over a configured limit: 413 */
    CNN_ENOENT = -4,    /* unknown model, layer or file: 404 */
    CNN_EBUSY = -5,     /* queue full: 503 */
    CNN_ENOMEM = -6,    /* out of memory: 503 */
    CNN_EIO = -7,       /* read or write failed: 500 */
    CNN_ECANCELED = -8, /* job cancelled */
};

struct cnn_err {
    int code;
    char msg[160];
};

/* Stores code and a formatted message in err (when non-NULL); returns code. */
int cnn_err_set(struct cnn_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Short constant name of a status code ("format error", ...). */
const char *cnn_strerror(int code);

#endif
