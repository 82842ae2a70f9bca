/* `cnn`: offline command-line tool over libcnn.  Dispatches to the subcommands (init, info,
 * predict, bench, train, eval, onnx-test, convert, explain); prints the overall usage and version.  Exit status: 0 success,
 * 1 runtime error, 2 usage error. */
#include "gemm.h"
#include "tool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct subcommand {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

static const struct subcommand COMMANDS[] = {
    {"init", cmd_init, "build an architecture with random weights and save it"},
    {"info", cmd_info, "show a model's input, preprocessing, layers, params and FLOPs"},
    {"predict", cmd_predict, "classify PNG/JPEG images, top-K labels per image"},
    {"bench", cmd_bench, "time forward passes: latency, images/s, GFLOP/s"},
    {"train", cmd_train, "train an architecture or fine-tune a model on a dataset"},
    {"eval", cmd_eval, "accuracy, per-class accuracy and confusion matrix on a dataset"},
    {"onnx-test", cmd_onnx_test, "run ONNX backend test folders: pass/fail/skip per test"},
    {"convert", cmd_convert, "convert a model between the native format and ONNX"},
    {"explain", cmd_explain, "saliency heatmap of an image's class as PNG; filter pictures"},
};
#define N_COMMANDS ((int)(sizeof COMMANDS / sizeof COMMANDS[0]))

static void usage(FILE *f)
{
    fprintf(f, "usage: cnn <command> [options] [args]\n"
               "       cnn --help | --version\n\ncommands:\n");
    for (int i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-8s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
    fprintf(f, "\nMODEL arguments are a model file or arch:NAME (e.g. arch:resnet18).\n"
               "'cnn <command> --help' describes a command.\n"
               "example: cnn init lenet5 lenet5.cnn && cnn info lenet5.cnn\n");
}


int main(int argc, char **argv)
{
    cnn_gemm_reexec_if_generic(argv);
    if (argc < 2) {
        usage(stderr);
        return TOOL_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return TOOL_OK;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0) {
        printf("cnn %s\n", CNN_TOOL_VERSION);
        return TOOL_OK;
    }
    for (int i = 0; i < N_COMMANDS; i++)
        if (strcmp(cmd, COMMANDS[i].name) == 0) {
            int rc = COMMANDS[i].run(argc - 1, argv + 1);
            if (fflush(stdout) != 0 && rc == TOOL_OK)
                rc = tool_fail("stdout", "write failed");
            return rc;
        }
    fprintf(stderr, "cnn: unknown command '%s'\n", cmd);
    usage(stderr);
    return TOOL_USAGE;
}
