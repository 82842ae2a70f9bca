#!/usr/bin/env bash
# Server benchmark (`make bench-server`): cnnd on 127.0.0.1 driven by build/loadgen on the
# same machine, for the bundled default model (models/repository/fashion), LeNet-5
# (`cnn init lenet5`: the serving path itself, compute is tiny) and ResNet-18
# (`cnn init resnet18`, random weights), at concurrency 1, 8 and 64, with batching on
# (max_batch_size 32) and off (max_batch_size 1).  Prints images/s, p50/p99 latency, the
# mean batch the server ran (from /metrics) and the serving efficiency:
#   HTTP images/s / `cnn bench` images/s at the same batch size and threads,
# where the engine reference runs the server's compute layout: `instances` concurrent
# `cnn bench --batch B --threads 1` processes (each a session with one BLAS thread, like a
# worker), images/s summed; B = the mean batch size the server ran at that point (from the
# /metrics batch-size histogram), rounded.
# Numbers only, never pass/fail.  Env: CNN, CNND, LOADGEN, DURATION (s per point, default
# 5), WARMUP (default 1), MODELS (default "fashion lenet5 resnet18"), CONCURRENCY (default
# "1 8 64"), LOADGEN_THREADS (client threads, default 1), BENCH_JSON (file to append one
# JSON line per point).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CNN=${CNN:-build/cnn}
CNND=${CNND:-build/cnnd}
LOADGEN=${LOADGEN:-build/loadgen}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
MODELS=${MODELS:-fashion lenet5 resnet18}
CONCURRENCY=${CONCURRENCY:-1 8 64}
LOADGEN_THREADS=${LOADGEN_THREADS:-1}
CORES=$(nproc)
INSTANCES=$CORES
for b in "$CNN" "$CNND" "$LOADGEN"; do
  [ -x "$b" ] || { echo "bench/server.sh: $b is not built (make all build/loadgen)" >&2; exit 1; }
done

T=$(mktemp -d "${TMPDIR:-/tmp}/cnnd-bench.XXXXXX")
PID=
cleanup() {
  if [ -n "$PID" ]; then kill -KILL "$PID" 2>/dev/null || true; fi
  rm -rf "$T"
}
trap cleanup EXIT

mkdir -p "$T/repo/fashion/1" "$T/repo/lenet5/1" "$T/repo/resnet18/1"
cp "$ROOT/models/repository/fashion/1/model.cnn" "$T/repo/fashion/1/model.cnn"
"$CNN" init lenet5 "$T/repo/lenet5/1/model.cnn" --seed 1 >/dev/null
"$CNN" init resnet18 "$T/repo/resnet18/1/model.cnn" --seed 1 >/dev/null
IMG_fashion="$ROOT/models/samples/sneaker.png"
IMG_lenet5="$ROOT/models/samples/sneaker.png"
IMG_resnet18="$T/rgb224.png"
# A 224x224 RGB PNG for ResNet-18 (no resize work beyond what a real client would send).
python3 - "$IMG_resnet18" <<'EOF'
import struct, sys, zlib
w = h = 224
rows = b"".join(b"\0" + bytes(((x * 7 + y * 3 + c * 50) & 255) for x in range(w) for c in range(3))
                for y in range(h))
def chunk(k, p):
    return struct.pack(">I", len(p)) + k + p + struct.pack(">I", zlib.crc32(k + p) & 0xFFFFFFFF)
open(sys.argv[1], "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                              + chunk(b"IDAT", zlib.compress(rows, 6)) + chunk(b"IEND", b""))
EOF

start() {  # start MAX_BATCH: cnnd with both models; sets PID, URL
  cat >"$T/cnnd.conf" <<EOF
[server]
listen = 127.0.0.1
port = 0
[models]
model_repository = $T/repo
[batching]
max_batch_size = $1
max_queue_size = 1024
instances = $INSTANCES
blas_threads = 1
EOF
  : >"$T/cnnd.log"
  OPENBLAS_NUM_THREADS=1 "$CNND" --config "$T/cnnd.conf" >>"$T/cnnd.log" 2>&1 &
  PID=$!
  local port= i
  for i in $(seq 1 200); do
    port=$(sed -nE 's/.*listening.* port=([0-9]+).*/\1/p' "$T/cnnd.log" | head -n1)
    [ -n "$port" ] && break
    sleep 0.05
  done
  [ -n "$port" ] || { echo "cnnd did not start:" >&2; cat "$T/cnnd.log" >&2; exit 1; }
  URL="http://127.0.0.1:$port"
  for i in $(seq 1 200); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/v2/health/ready")" = 200 ] && return 0
    sleep 0.05
  done
  echo "cnnd not ready" >&2
  exit 1
}

stop() {
  kill -TERM "$PID"
  wait "$PID" || echo "note: cnnd exited with status $?" >&2
  PID=
}

hist() {  # "sum count" of the batch-size histogram (server-wide: one model runs at a time)
  curl -s "$URL/metrics" | awk '
    $1 ~ /^[a-z_]*batch_size(_[a-z]+)?_sum({|$)/ { s += $2 }
    $1 ~ /^[a-z_]*batch_size(_[a-z]+)?_count({|$)/ { c += $2 }
    END { printf "%s %s\n", s + 0, c + 0 }'
}

# ref_ips MODEL B: engine images/s in the server's compute layout: INSTANCES `cnn bench`
# processes at once, each one session with one BLAS thread forward-passing batches of B;
# the sum of their images/s.  Cached per MODEL/B in $T/ref.
ref_ips() {
  local f="$T/ref/$1-$2" i runs=7
  [ "$1" = resnet18 ] && runs=3
  if [ ! -f "$f" ]; then
    mkdir -p "$T/ref"
    for i in $(seq 1 "$INSTANCES"); do
      OPENBLAS_NUM_THREADS=1 "$CNN" bench "$T/repo/$1/1/model.cnn" --batch "$2" --threads 1 \
        --warmup 1 --runs "$runs" --min-time 2 --json >"$f.$i" &
    done
    wait
    cat "$f".* | python3 -c 'import json,sys; print(round(sum(json.loads(l)["ips"] for l in sys.stdin), 1))' >"$f"
  fi
  cat "$f"
}

echo "cnnd server benchmark: $CORES cores, $INSTANCES instances x 1 BLAS thread, loadgen on the" \
  "same machine, ${DURATION}s per point after ${WARMUP}s warm-up; load average before:" \
  "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-9s %-8s %5s %10s %9s %9s %7s %7s %11s %6s %5s\n' model batching conc "images/s" \
  "p50 ms" "p99 ms" "batch" errors "engine i/s" eff load
for mb in 32 1; do
  start "$mb"
  mode=$([ "$mb" = 1 ] && echo off || echo "on($mb)")
  for m in $MODELS; do
    img_var="IMG_$m"
    for c in $CONCURRENCY; do
      h0=$(hist)
      out=$("$LOADGEN" --url "$URL/v1/models/$m/classify" --file "${!img_var}" \
        --content-type image/png --concurrency "$c" --duration "$DURATION" \
        --warmup "$WARMUP" --threads "$LOADGEN_THREADS" --json)
      h1=$(hist)
      # The engine reference runs the batch size the server ran: the mean batch, rounded.
      b=$(awk -v a="$h0" -v z="$h1" 'BEGIN { split(a, p); split(z, q); n = q[2] - p[2]
        b = n > 0 ? int((q[1] - p[1]) / n + 0.5) : 1; print b < 1 ? 1 : b }')
      ref=$(ref_ips "$m" "$b")
      line=$(python3 - "$out" "$h0" "$h1" "$ref" "$m" "$mode" "$c" "$b" "$INSTANCES" <<'EOF'
import json, sys
r = json.loads(sys.argv[1])
s0, c0 = map(float, sys.argv[2].split()); s1, c1 = map(float, sys.argv[3].split())
load = open("/proc/loadavg").read().split()[0]
ref = float(sys.argv[4]); model, mode, conc, b = sys.argv[5], sys.argv[6], int(sys.argv[7]), int(sys.argv[8])
inst = int(sys.argv[9])
mean = (s1 - s0) / (c1 - c0) if c1 > c0 else 0.0
errs = sum(r["errors"].values())
eff = r["images_per_s"] / ref if ref else 0.0
print("%-9s %-8s %5d %10.1f %9.3f %9.3f %7.2f %7d %11.1f %6.3f %5s" % (
    model, mode, conc, r["images_per_s"], r["latency_ms"]["p50"], r["latency_ms"]["p99"],
    mean, errs, ref, eff, load))
print(json.dumps({"model": model, "batching": mode, "concurrency": conc,
                  "images_per_s": r["images_per_s"], "p50_ms": r["latency_ms"]["p50"],
                  "p99_ms": r["latency_ms"]["p99"], "mean_batch": round(mean, 3),
                  "errors": r["errors"], "engine_batch": b, "engine_threads": inst,
                  "engine_ips": ref, "efficiency": round(eff, 4), "loadavg_1m": float(load)}))
EOF
)
      echo "${line%%$'\n'*}"
      if [ -n "${BENCH_JSON:-}" ]; then
        sed -n 2p <<<"$line" >>"$BENCH_JSON"
      fi
    done
  done
  stop
done
echo "engine i/s: $INSTANCES concurrent 'cnn bench --batch B --threads 1', summed; B = the mean" \
  "batch the server ran (column batch), rounded; eff = images/s / engine i/s;" \
  "load = 1-minute load average after the point (other work on the machine skews both sides)"
