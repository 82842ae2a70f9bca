/* Data-parallel forward passes for the tool: a batch split across W worker threads, each
 * with its own session and single-threaded BLAS -- the way cnnd's inference instances use
 * the cores, so every part of the pass (im2col, pooling, bias/act) runs in parallel, not
 * only the GEMMs.  The engine stays thread-free; the threads live here. */
#ifndef SPLIT_FORWARD_H
#define SPLIT_FORWARD_H

#include "err.h"
#include "model.h"

struct split_runner;

/* workers threads (1..batch) sharing m; owned by the caller, split_destroy() frees. */
struct split_runner *split_create(const struct cnn_model *m, int batch, int workers,
                                  struct cnn_err *err);
/* (batch, C, H, W) input buffer: fill it before split_forward(). */
float *split_input(struct split_runner *r);
/* Runs n images (1..batch) split over the workers; *out is (n, classes), owned by r. */
int split_forward(struct split_runner *r, int n, const float **out, struct cnn_err *err);
void split_destroy(struct split_runner *r);

#endif
