/* A test network with every layer kind and activation added for ONNX import (global max
 * pool, PReLU, scale-shift, pad with crop, log-softmax, hard sigmoid, hard swish) and the
 * layer descriptions it is built from.  Shared by check_kinds_net (suite kinds_net),
 * check_onnx_export and the ONNX Runtime check (tests/conformance/session_raw.c). */
#ifndef TEST_KINDS_NETS_H
#define TEST_KINDS_NETS_H

#include "model.h"

#include <stdint.h>

/* Descriptions: an activation with alpha and beta, PReLU over 1 or C channels, scale-shift
 * over 1 or C channels with a fused act, constant pad (negative crops) of value. */
struct cnn_layer_desc act2(const char *name, enum cnn_act kind, float a, float b);
struct cnn_layer_desc prelu(const char *name, int channels);
struct cnn_layer_desc scale_shift(const char *name, int channels, enum cnn_act a);
struct cnn_layer_desc pad(const char *name, int t, int l, int b, int r, float value);

/* Over 3x9x7, 5 classes, log-probabilities out (the layer list: test_kinds_nets.c); random
 * weights, slopes, scales and shifts from seed; not compiled. */
struct cnn_model *test_net_kinds(uint64_t seed);

/* Over 1x4x4, 3 classes: flatten, dense, per-channel PReLU and scale-shift (fused hard
 * swish) on the (N, C) value, dense, softmax; random weights from seed; not compiled. */
struct cnn_model *test_net_kinds_flat(uint64_t seed);

#endif
