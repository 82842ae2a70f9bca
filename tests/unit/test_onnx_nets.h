/* A test network for the ONNX export beyond test_nets.h: the rank changes (a (N, C) value
 * feeding an add with a (N, C, 1, 1) one and then a conv), fused activations on conv and
 * dense, average pooling with ceil mode and count_include_pad, a dense layer without bias
 * and batch norm on a flat value.  Shared by check_onnx_export and the ONNX Runtime check
 * (tests/conformance/session_raw.c). */
#ifndef TEST_ONNX_NETS_H
#define TEST_ONNX_NETS_H

#include "model.h"

#include <stdint.h>

/* A conv desc: k x k kernel, stride 1, undilated, ungrouped, padding pad on every side. */
struct cnn_layer_desc onnx_test_conv(const char *name, int oc, int k, int pad, int bias,
                                     struct cnn_act_params act);

/* Over 3x6x6, 5 classes, labelled "k0".."k4"; random weights and BN statistics from seed;
 * not compiled. */
struct cnn_model *test_net_ranks(uint64_t seed);

#endif
