/* Small test networks built through model.h, with every layer kind, branches, random
 * weights and random BN statistics; the layer builders they share with the trainer suites;
 * and a seeded random fill for inputs. */
#ifndef TEST_NETS_H
#define TEST_NETS_H

#include "model.h"

#include <stddef.h>
#include <stdint.h>

/* A DAG over a 3x13x11 input using every layer kind: conv+BN+relu (asymmetric pad,
 * stride 2, dilation, groups, depthwise, 1x1), residual add, concat of three branches,
 * standalone BN+relu, LRN, pools with ceil mode, dropout, flatten, dense, softmax and
 * each activation.  Weights random from seed; not compiled. */
struct cnn_model *test_net_dag(uint64_t seed);

/* conv-relu-pool-flatten-dense-softmax over 1x8x8, 4 classes, labelled; not compiled. */
struct cnn_model *test_net_small(uint64_t seed);

/* 3x3 stride-1 convs of 16+ channels (the trainer's Winograd paths: same, valid and
 * asymmetric padding, a fused relu) around a residual add, then global average pool,
 * dense, softmax over 3x12x10, 5 classes; not compiled. */
struct cnn_model *test_net_wide(uint64_t seed);

/* Builders: adds d to m and returns its index (asserts it was accepted); a batch-norm layer
 * (eps 1e-5); d with its n inputs set.  compiled() compiles m (asserting) and returns it. */
int add(struct cnn_model *m, struct cnn_layer_desc d);
struct cnn_layer_desc bn(const char *name);
struct cnn_layer_desc inputs(struct cnn_layer_desc d, int n, const int *in);
struct cnn_model *compiled(struct cnn_model *m);

/* Random weights, biases and BN statistics (scale 0.5-1.5, variance 0.5-1.5) from seed, so
 * that folding a BN into its conv changes something. */
void test_randomize(struct cnn_model *m, uint64_t seed);

/* Uniform floats in [-1, 1) from a seeded generator. */
void test_fill(float *x, size_t n, uint64_t seed);

#endif
