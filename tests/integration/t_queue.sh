#!/usr/bin/env bash
# Overload: a full queue answers 503 + Retry-After at once; a request that waited longer
# than request_timeout_ms is answered 503, counted as expired and never computed.  Both
# on a slow model (resnet18, one worker, batches of 1) so the queue really fills up.
source "$(dirname "$0")/lib.sh"
itest_init queue

IMG="$ROOT/models/samples/sneaker.png"
repo_add slow 1 resnet18 1
printf '[batching]\nmax_batch_size = 1\nmax_queue_size = 2\ninstances = 1\n' >"$T/repo/slow/config.ini"
write_config batching.blas_threads=1
cnnd_start || finish
py check_load queue-full slow 24 "$IMG"
cnnd_stop

# Expiry: a queue big enough for everyone, a 100 ms timeout, ~70 ms per image.
printf '[batching]\nmax_batch_size = 1\nmax_queue_size = 64\ninstances = 1\n' >"$T/repo/slow/config.ini"
write_config batching.blas_threads=1 server.request_timeout_ms=100
cnnd_start || finish
py check_load expire slow 12 "$IMG"
cnnd_stop
finish
