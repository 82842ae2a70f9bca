/* A model through sessions on teams against the naive reference (ref_net.h), for the suites
 * whose nets exercise a kernel path end to end (gemm_packed, im2col_pack). */
#ifndef TEST_TEAMS_H
#define TEST_TEAMS_H

#include "model.h"

#include <stdint.h>

/* m (uncompiled: compiled here) through one session at batches 1 and 3 on teams of 1-3,
 * inputs test_fill(seed), against ref_net_forward() image by image: asserts that want_packed
 * ops say "packed" in their variant, that every output is within 1e-4 of the reference, and
 * that the reference is not near uniform (or the test could not see errors); prints the
 * largest difference after label. */
void test_net_on_teams_matches_reference(struct cnn_model *m, uint64_t seed, const char *label,
                                         int want_packed);

#endif
