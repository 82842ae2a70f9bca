/* A model through sessions on teams against the naive reference (see test_teams.h). */
#include "test_teams.h"

#include "model_ops.h"
#include "ref_net.h"
#include "session.h"
#include "test_nets.h"
#include "workers.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The largest |difference| over the passes; *spread, *packed as in the header. */
static double teams_diff(struct cnn_model *m, uint64_t seed, double *spread, int *packed)
{
    const int K = cnn_model_num_classes(m), max_n = 3;
    const struct cnn_preproc *in = cnn_model_preproc(m);
    const size_t img = (size_t)in->c * in->h * in->w;
    float *x = malloc(max_n * img * sizeof(float)), *refs = malloc(max_n * K * sizeof(float));
    ck_assert(x && refs);
    test_fill(x, max_n * img, seed);
    for (int n = 0; n < max_n; n++)
        ck_assert_int_eq(ref_net_forward(m, x + n * img, refs + n * K), 0);
    compiled(m);
    *packed = 0;
    for (int i = 0; i < cnn_model_op_count(m); i++) {
        struct cnn_op_info oi;
        cnn_model_op_info(m, i, &oi);
        *packed += strstr(oi.variant, "packed") != NULL;
    }
    struct cnn_err err = {0};
    struct cnn_session *s = cnn_session_create_parts(m, max_n, 3, &err);
    ck_assert_msg(s != NULL, "%s", err.msg);
    double worst = 0;
    *spread = 0;
    for (int threads = 1; threads <= 3; threads++) {
        struct cnn_workers *team = cnn_workers_create(threads, &err);
        ck_assert_msg(team != NULL, "%s", err.msg);
        for (int n = 1; n <= max_n; n += 2) {
            const float *out;
            ck_assert_int_eq(cnn_session_forward_team(s, m, team, x, n, &out, &err), 0);
            for (int i = 0; i < n * K; i++) {
                worst = fmax(worst, fabs((double)out[i] - refs[i]));
                *spread = fmax(*spread, fabs((double)refs[i] - 1.0 / K));
            }
        }
        cnn_workers_destroy(team);
    }
    cnn_session_destroy(s);
    free(x), free(refs);
    return worst;
}

void test_net_on_teams_matches_reference(struct cnn_model *m, uint64_t seed, const char *label,
                                         int want_packed)
{
    double spread;
    int packed;
    const double worst = teams_diff(m, seed, &spread, &packed);
    ck_assert_int_eq(packed, want_packed);
    printf("%s: net with %d packed convs, teams 1-3, batches 1 and 3: max abs diff %.3g of "
           "softmax vs the naive reference\n",
           label, packed, worst);
    ck_assert_msg(worst <= 1e-4, "vs reference %g", worst);
    ck_assert_msg(spread > 1e-3, "uniform output: the test would not see errors");
}
