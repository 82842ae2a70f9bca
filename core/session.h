/* A session: every mutable buffer one thread needs to run forward passes of one model.
 * Sized once (cnn_session_create) for the model and a maximum batch; cnn_session_forward
 * then never allocates, never locks and never writes the model.  One session per thread. */
#ifndef CNN_SESSION_H
#define CNN_SESSION_H

#include "err.h"
#include "model.h"

#include <stddef.h>

struct cnn_session;
struct cnn_workers;

#define CNN_SESSION_MAX_PARTS 256 /* threads of a split forward pass, as core/workers.h */
/* Below this much work (model FLOPs per image x images) splitting a batch over a team costs
 * more than it saves; cnnd's batching.split_min_mflop defaults to it, cnn bench follows it. */
#define CNN_SPLIT_MIN_FLOPS 4e6

/* Bytes of session memory a worker needs for batches of up to max_n images. */
size_t cnn_session_plan(const struct cnn_model *m, int max_n);

/* Owned by the caller; destroy with cnn_session_destroy(). */
struct cnn_session *cnn_session_create(const struct cnn_model *m, int max_n,
                                       struct cnn_err *err);
/* The same with scratch for forward passes split over a team of up to `parts` threads
 * (1..CNN_SESSION_MAX_PARTS; cnn_session_create is parts 1): each thread needs its own
 * im2col buffer.  Sessions that take turns can share theirs: cnn_session_forward_lent. */
struct cnn_session *cnn_session_create_parts(const struct cnn_model *m, int max_n, int parts,
                                             struct cnn_err *err);
void cnn_session_destroy(struct cnn_session *s);

/* Input buffer of the session, (max_n, C, H, W) NCHW: decode images straight into it. */
float *cnn_session_input(struct cnn_session *s);

/* images: (n, C, H, W) NCHW, may be cnn_session_input(s); read only, and at n == 1 read by
 * the ops in place (not copied), so it must stay unchanged until the call returns.  A batch
 * whose values would pass 2 MB per layer runs as several passes of fewer images each
 * (session.c, pass_images); the result is the same.
 * *probs: (n, num_classes), the output of the last layer (softmax probabilities when the
 * model ends in softmax), owned by s and valid until the next call with s.  Fails only on n
 * outside 1..max_n. */
int cnn_session_forward(struct cnn_session *s, const struct cnn_model *m, const float *images,
                        int n, const float **probs, struct cnn_err *err);

/* cnn_session_forward with every op whose kind can split (conv, dense, pooling, act, add)
 * split over the threads of team (core/workers.h), at most the session's parts; the other
 * ops run on the caller.  Each part calls the single-threaded GEMM, so BLAS must be at one
 * thread (cnn_gemm_set_threads(1)) or the team oversubscribes the cores.  Same result as
 * cnn_session_forward to float rounding; a NULL team is cnn_session_forward. */
int cnn_session_forward_team(struct cnn_session *s, const struct cnn_model *m,
                             struct cnn_workers *team, const float *images, int n,
                             const float **probs, struct cnn_err *err);

/* cnn_session_forward_team whose part i >= 1 uses the im2col/Winograd scratch of
 * lenders[i - 1] (the team's size - 1 distinct sessions of m, none of them s, each made for
 * batches of n or more) instead of s's own, so that s and the lenders each need scratch for
 * one thread only (cnn_session_create).  Only the lenders' scratch is written; no thread
 * may use a lender until this returns (cnnd: the version's other workers, which wait while
 * a split batch holds every core).  A NULL or 1-thread team is cnn_session_forward.
 * CNN_EINVAL when a lender is missing, repeated or made for another model or smaller n. */
int cnn_session_forward_lent(struct cnn_session *s, const struct cnn_model *m,
                             struct cnn_workers *team, struct cnn_session *const *lenders,
                             const float *images, int n, const float **probs, struct cnn_err *err);

/* Profiling (cnn bench --profile): while op_ms is non-NULL, every forward pass of s stores
 * the time of op k of its model's plan in op_ms[k] (milliseconds; cnn_model_op_count()
 * entries, model_ops.h; borrowed until turned off): wall time, or with cpu_time the calling
 * thread's CPU time (not preempted time on a loaded machine; only the caller's share of a
 * team's or BLAS threads' work).  NULL, the default, turns it off; an unprofiled pass costs
 * one branch more than before, none per op. */
void cnn_session_profile(struct cnn_session *s, double *op_ms, int cpu_time);

#endif
