/* Shared pieces of the `cnn` command-line tool: the subcommands, exit codes, error
 * reporting ("cnn: <what>: <why>" on stderr) and opening a model file or "arch:NAME". */
#ifndef CNN_TOOL_H
#define CNN_TOOL_H

#include "model.h"

#include <stddef.h>
#include <stdint.h>

#define CNN_TOOL_VERSION "0.1.0"

enum tool_exit { TOOL_OK = 0, TOOL_RUNTIME = 1, TOOL_USAGE = 2 };

/* Subcommands: argv[0] is the subcommand name; each returns an exit status. */
int cmd_init(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_onnx_test(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_explain(int argc, char **argv);

/* Prints "cnn: <cmd>: <message>" and "Try 'cnn <cmd> --help'." on stderr; returns TOOL_USAGE. */
int tool_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints "cnn: <what>: <message>" on stderr; returns TOOL_RUNTIME. */
int tool_fail(const char *what, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Reads a whole regular file into *data (owned, free()); CNN_E* with a message on failure. */
int tool_read_file(const char *path, void **data, size_t *size, struct cnn_err *err);

/* How tool_open_model prepares an "arch:NAME" model (files are always loaded compiled). */
enum tool_arch_mode {
    TOOL_ARCH_SHAPE_ONLY = 0, /* built, weights left zero, not compiled: for `info` */
    TOOL_ARCH_RANDOM = 1      /* random weights from seed 1, compiled: for `bench`, `predict` */
};

/* Opens `spec`: "arch:NAME" builds architecture NAME, anything else loads a model file.
 * On failure prints "cnn: <spec>: <why>" and returns TOOL_RUNTIME (TOOL_USAGE for an
 * unknown architecture); *out is then NULL.  *out is owned by the caller. */
int tool_open_model(const char *spec, enum tool_arch_mode mode, struct cnn_model **out);

/* Name for reports: the arch of "arch:NAME", else "arch=" in the metadata, else the
 * file name without folders and extension.  Written into buf (NUL-terminated). */
void tool_model_name(const char *spec, const struct cnn_model *m, char *buf, size_t n);

struct cnn_image;
/* Encodes img as PNG into path and frees img's pixels (always).  TOOL_OK, or prints
 * "cnn: <cmd>: <path>: why" and returns TOOL_RUNTIME. */
int tool_write_png(const char *cmd, const char *path, struct cnn_image *img);

/* v with thousands separators: 11689512 -> "11,689,512". */
void tool_group_digits(unsigned long long v, char *buf, size_t n);

#endif
