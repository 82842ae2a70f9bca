/* A model through sessions on teams against the naive reference (ref_net.h), for the suites
 * whose nets exercise a kernel path end to end (gemm_packed, im2col_pack). */
#ifndef TEST_TEAMS_H
#define TEST_TEAMS_H

#include "model.h"

#include <stdint.h>

/* m (uncompiled: compiled here) through one session at batches 1 and 3 on teams of 1-3,
 * inputs test_fill(seed), against ref_net_forward() image by image.  Returns the largest
 * |difference| of the outputs; *spread: the largest |reference - 1/classes| (near 0, the
 * test could not see errors); *packed: the ops whose variant says "packed". */
double test_teams_vs_reference(struct cnn_model *m, uint64_t seed, double *spread, int *packed);

#endif
