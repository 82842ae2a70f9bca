/* Helpers for the server suites: tiny compiled models, seeded inputs, single-image
 * reference outputs, and temporary model repositories on disk. */
#ifndef SERVER_TEST_MODELS_H
#define SERVER_TEST_MODELS_H

#include "model.h"

#include <stddef.h>
#include <stdint.h>

#define STM_C 1
#define STM_H 8
#define STM_W 8
#define STM_IN (STM_C * STM_H * STM_W) /* floats per input image */
#define STM_CLASSES 4

/* conv3x3(4)-relu-maxpool2-flatten-dense(4)-softmax over 1x8x8 with weights and biases
 * drawn from seed, labels "c0".."c3"; compiled.  Owned by the caller. */
struct cnn_model *stm_model(uint64_t seed);
/* Uniform floats in [-1, 1) from seed. */
void stm_fill(float *x, size_t n, uint64_t seed);
/* out (num_classes floats) = a batch-of-one forward pass of in through a fresh session. */
void stm_forward_one(const struct cnn_model *m, const float *in, float *out);
/* Max |a - b| over n floats. */
float stm_max_diff(const float *a, const float *b, size_t n);
/* mkdtemp under $TMPDIR (or /tmp); the path is malloc'd. */
char *stm_tempdir(void);
/* rm -r path (best effort). */
void stm_rmtree(const char *path);
/* Writes m to repo/name/version/model.cnn (folders made as needed). */
void stm_publish(const struct cnn_model *m, const char *repo, const char *name, int version);
/* Writes text to repo/rel (parent folders made as needed). */
void stm_write_file(const char *repo, const char *rel, const char *text);
/* CLOCK_MONOTONIC nanoseconds. */
int64_t stm_now_ns(void);
/* Sleeps ms milliseconds. */
void stm_sleep_ms(int ms);

#endif
