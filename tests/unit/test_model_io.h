/* The test model of the model_io suites (check_model_io.c, check_model_io_hostile.c): every
 * layer kind with random weights, labels and meta, its layer indices, and the xorshift
 * generator that fills it. */
#ifndef TEST_MODEL_IO_H
#define TEST_MODEL_IO_H

#include "model.h"

#include <stdint.h>

/* State of the generator; build_model() and tests seed it by assigning it. */
extern uint64_t rng_state;
/* Next value of the generator / a float uniform in [lo, hi) from it. */
uint64_t rng_next(void);
float rnd_uniform(float lo, float hi);

extern const char *const test_labels[5];
extern const char test_meta[];

/* Adds *d to m and asserts it became layer want_index. */
void add_layer(struct cnn_model *m, struct cnn_layer_desc *d, int want_index);
/* A zeroed layer description of the given kind and name. */
struct cnn_layer_desc desc(enum cnn_layer_kind kind, const char *name);

/* Layer indices of the test model (build_model() asserts them; the byte patches of
 * check_model_io_hostile.c use them). */
enum {
    L_INPUT,
    L_CONV1,
    L_BN1,
    L_RELU1,
    L_CONV2,
    L_ADD1,
    L_CONV3,
    L_CAT1,
    L_POOL1,
    L_POOL2,
    L_LRN1,
    L_FLAT,
    L_DROP,
    L_FC1,
    L_FC2,
    L_PROB,
    L_COUNT
};

/* conv+BN+relu, grouped conv, residual add, 1x1 conv with fused clip, concat, max and avg
 * pooling, LRN, flatten, dropout, dense with fused leaky relu, dense, softmax.  Random
 * weights (biases and BN statistics too); labels and meta set.  Not compiled. */
struct cnn_model *build_model(uint64_t seed);

#endif
