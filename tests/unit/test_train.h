/* Net builders and trainer helpers shared by the trainer suites (check_train.c,
 * check_train_workflow.c).  Failures are check assertions (these run inside a test). */
#ifndef TEST_TRAIN_H
#define TEST_TRAIN_H

#include "model.h"
#include "test_nets.h" /* add, bn, inputs, compiled */
#include "train.h"

#include <stddef.h>
#include <stdint.h>

/* Layer descriptions: conv k x k stride 1 (pad on every side, bias when bias, fused act),
 * dense (bias, fused act), pooling k x k stride s, a layer without parameters, an
 * activation. */
struct cnn_layer_desc conv(const char *name, int oc, int k, int pad, int bias, enum cnn_act act);
struct cnn_layer_desc dense(const char *name, int out, enum cnn_act act);
struct cnn_layer_desc pool(enum cnn_layer_kind kind, const char *name, int k, int s, int pad);
struct cnn_layer_desc simple(enum cnn_layer_kind kind, const char *name);
struct cnn_layer_desc act(const char *name, enum cnn_act kind);

/* An empty model over a c x h x w input (mean 0, std 1). */
struct cnn_model *new_model(int c, int h, int w);

/* Random weights, biases and BN parameters (gamma around 1) from seed. */
void randomize(struct cnn_model *m, uint64_t seed);

/* A trainer of m with configuration c / one training step of it on (x, y), n images. */
struct cnn_trainer *trainer(const struct cnn_model *m, const struct cnn_train_config *c);
void step(struct cnn_trainer *t, const float *x, const int *y, int n, struct cnn_train_stats *st);

/* Asserts |got[k] - want[k]| <= tol for each of the n values; what names them. */
void expect_close(const float *got, const float *want, size_t n, double tol, const char *what);

/* Copy of the trainer's weight slot (count floats); owned by the caller (free()). */
float *copy_slot(struct cnn_trainer *t, int layer, int slot, size_t *count);

/* Whole-net finite-difference check of a trainer of m on (x, y or tgt), n images, with
 * loss: six coordinates of each learned weight slot of every layer and ten of the input;
 * coordinates where a kink lies within the steps are skipped (at most 1 in 7).  Asserts. */
void gradcheck(struct cnn_model *m, const float *x, const int *y, const float *tgt, int n,
               enum cnn_loss loss);

#endif
