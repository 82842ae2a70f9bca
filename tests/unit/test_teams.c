/* A model through sessions on teams against the naive reference (see test_teams.h). */
#include "test_teams.h"

#include "model_ops.h"
#include "ref_net.h"
#include "session.h"
#include "test_nets.h"
#include "workers.h"

#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

double test_teams_vs_reference(struct cnn_model *m, uint64_t seed, double *spread, int *packed)
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
