#!/usr/bin/env bash
# SIGTERM with 64 requests in flight: every one is answered 200, readiness turns 503, new
# connections are refused, exit status 0; a second SIGTERM exits at once
# (check_shutdown.py).  A slow model (resnet18, batches of 8) keeps the requests in flight;
# request_timeout_ms is raised so that on a loaded machine no request expires (503) while
# it waits its turn: the drain, not the queue deadline, is under test.
source "$(dirname "$0")/lib.sh"
itest_init shutdown

IMG="$ROOT/models/samples/sneaker.png"
repo_add slow 1 resnet18 1
write_config batching.max_batch_size=8 batching.max_queue_delay_us=1000 \
  batching.max_queue_size=256 batching.instances=1 batching.blas_threads=2 \
  server.drain_timeout_ms=60000 server.request_timeout_ms=60000
cnnd_start || finish
py check_shutdown drain slow 64 "$IMG"
STOP_WAIT=60 cnnd_wait_exit 0 "SIGTERM with 64 requests in flight"

cnnd_start || finish
py check_shutdown second slow 64 "$IMG"
cnnd_wait_exit any "second SIGTERM"
finish
