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

# Clients that hang up while queued are not computed: 20 requests that give up after 0.15 s
# at 35-70 ms per image (at most ~5 can finish in time); the ones still queued when their
# client left are dropped (499 in the log and metrics) instead of costing a forward pass.
printf '[batching]\nmax_batch_size = 1\nmax_queue_size = 64\ninstances = 1\n' >"$T/repo/slow/config.ini"
write_config batching.blas_threads=1
cnnd_start || finish
pids=()
for i in $(seq 20); do
  curl -s -o /dev/null -m 0.15 -H 'Content-Type: image/png' --data-binary @"$IMG" \
    "$URL/v1/models/slow/classify" &
  pids+=($!)
done
wait "${pids[@]}" # not cnnd, also a child of this shell
sleep 1.5 # the queue drains
gone=$(metric cnnd_requests_total 'status="499"')
computed=$(metric cnnd_batch_size_count)
check [ "${gone%.*}" -ge 5 ] -- "clients that left while queued are answered 499 and counted ($gone of 20)"
check [ "${computed%.*}" -le $((20 - ${gone%.*})) ] -- "those requests were not computed ($computed forward passes)"
cnnd_stop
finish
