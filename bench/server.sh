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
# For LeNet-5 and ResNet-18 each point is followed by the same point of the peer server,
# ../shared/peers/ort_server.js (Node http + pngjs + ONNX Runtime on every core, batching
# up to the same max batch; bench_server_peer.sh) driven by the same loadgen with the same
# PNG (its models have the shapes and FLOPs of `cnn init lenet5|resnet18`): a "  peer" row
# under cnnd's, then a side-by-side table with the ratios; after ResNet-18's concurrency-1
# point, ONNX Runtime's compute latency of one batch of 1 on all cores (bench_one.sh) beside
# cnnd's HTTP p50.  Without the peers (CNND_PEERS_DIR, default ../shared/peers) or node,
# cnnd's rows alone and the reason.
# Numbers only, never pass/fail.  Env: CNN, CNND, LOADGEN, DURATION (s per point, default
# 5), WARMUP (default 1), MODELS (default "fashion lenet5 resnet18"), CONCURRENCY (default
# "1 8 64"), LOADGEN_THREADS (client threads, default 1), BENCH_JSON (file to append one
# JSON line per point, the peer's with "server": "ort_node" or "ort_compute"),
# CNND_PEERS_DIR, PEER=0 (skip the peer).
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

LOADGEN=$(cd "$(dirname "$LOADGEN")" && pwd)/$(basename "$LOADGEN")
PEERS=${CNND_PEERS_DIR:-$(cd "$ROOT/.." && pwd)/shared/peers}
PEER_MODELS="lenet5 resnet18" # the peer's models that `cnn init` also makes
peer_why=
if [ "${PEER:-1}" = 0 ]; then
  peer_why="PEER=0"
elif [ ! -f "$PEERS/bench_server_peer.sh" ]; then
  peer_why="$PEERS/bench_server_peer.sh not found (CNND_PEERS_DIR)"
elif ! command -v node >/dev/null; then
  peer_why="node is not installed"
elif ! bash "$PEERS/setup.sh" >/dev/null 2>&1; then
  peer_why="bash $PEERS/setup.sh failed"
fi

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
  # admin on an ephemeral port too: the default 8081 may be another cnnd's
  OPENBLAS_NUM_THREADS=1 "$CNND" --config "$T/cnnd.conf" --admin-port 0 \
    --admin-token-file "$T/admin.token" --data-root "$T" >>"$T/cnnd.log" 2>&1 &
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
  echo "cnnd not ready:" >&2
  tail -n 5 "$T/cnnd.log" >&2
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

# peer_point MODEL MAX_BATCH CONC MODE: the same point on the peer server (started for it,
# stopped after): prints a "  peer" row, appends a JSON line to $T/points (and BENCH_JSON).
peer_point() {
  local img_var="IMG_$1" out
  out=$(MAX_BATCHES=$2 DURATION=$DURATION WARMUP=$WARMUP LOADGEN=$LOADGEN \
    bash "$PEERS/bench_server_peer.sh" "$1" "${!img_var}" "$3" 2>>"$T/peer.log" | grep '^peer=') ||
    { echo "  peer    (failed: $(tail -n 1 "$T/peer.log"))"; return 0; }
  python3 - "$out" "$1" "$4" "$3" "$T/points" "${BENCH_JSON:-}" <<'EOF'
import json, re, sys
f = dict(kv.split("=", 1) for kv in re.findall(r"\S+=\S+", sys.argv[1]))
load = open("/proc/loadavg").read().split()[0]
num = lambda k: float(f.get(k, "nan").rstrip(":") or "nan")
j = {"server": "ort_node", "model": sys.argv[2], "batching": sys.argv[3],
     "concurrency": int(sys.argv[4]), "images_per_s": num("images_per_s"),
     "p50_ms": num("p50_ms"), "p99_ms": num("p99_ms"),
     "errors": int(num("errors")) if num("errors") == num("errors") else -1,
     "loadavg_1m": float(load)}
print("%-9s %-8s %5d %10.1f %9.3f %9.3f %7s %7d %11s %6s %5s" % (
    "  peer", j["batching"], j["concurrency"], j["images_per_s"], j["p50_ms"], j["p99_ms"],
    "-", j["errors"], "-", "-", load))
for path in sys.argv[5:]:
    if path:
        open(path, "a").write(json.dumps(j) + "\n")
EOF
}

# ort_compute MODE: ONNX Runtime's forward pass of one ResNet-18 image on all cores, ms
# (bench_one.sh: median of timed calls; batch 1, so ms = 1000 / images/s) into $T/points.
ort_compute() {
  local ips
  ips=$(bash "$PEERS/bench_one.sh" resnet18 1 "$CORES" 2>>"$T/peer.log" |
    sed -n 's/^ort_images_per_s=//p') || true
  [ -n "$ips" ] || return 0
  python3 - "$ips" "$1" "$CORES" "$T/points" "${BENCH_JSON:-}" <<'EOF'
import json, sys
j = {"server": "ort_compute", "model": "resnet18", "batching": sys.argv[2], "batch": 1,
     "threads": int(sys.argv[3]), "lat_ms": round(1000.0 / float(sys.argv[1]), 3),
     "loadavg_1m": float(open("/proc/loadavg").read().split()[0])}
for path in sys.argv[4:]:
    if path:
        open(path, "a").write(json.dumps(j) + "\n")
EOF
}

echo "cnnd server benchmark: $CORES cores, $INSTANCES instances x 1 BLAS thread, loadgen on the" \
  "same machine, ${DURATION}s per point after ${WARMUP}s warm-up; load average before:" \
  "$(cut -d' ' -f1-3 /proc/loadavg)"
if [ -z "$peer_why" ]; then
  echo "peer server rows (\"  peer\"): ../shared/peers/ort_server.js, Node http + pngjs + ONNX" \
    "Runtime on $CORES threads, max batch as cnnd's, after each $PEER_MODELS point"
else
  echo "peer server rows: none ($peer_why)"
fi
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
      sed -n 2p <<<"$line" >>"$T/points"
      if [ -z "$peer_why" ] && [[ " $PEER_MODELS " == *" $m "* ]]; then
        peer_point "$m" "$mb" "$c" "$mode"
        [ "$m" != resnet18 ] || [ "$c" != 1 ] || ort_compute "$mode"
      fi
    done
  done
  stop
done
echo "engine i/s: $INSTANCES concurrent 'cnn bench --batch B --threads 1', summed; B = the mean" \
  "batch the server ran (column batch), rounded; eff = images/s / engine i/s;" \
  "load = 1-minute load average after the point (other work on the machine skews both sides)"
if [ -n "$peer_why" ]; then
  echo "peer server rows: none ($peer_why)"
  exit 0
fi
python3 - "$T/points" "$CORES" <<'EOF'
import json, os, sys
pts = [json.loads(l) for l in open(sys.argv[1])] if os.path.exists(sys.argv[1]) else []
key = lambda p: (p["model"], p["batching"], p.get("concurrency"))
cnnd = {key(p): p for p in pts if "server" not in p}
peer = [p for p in pts if p.get("server") == "ort_node"]
ratio = lambda a, b: "%.2f" % (a / b) if a and b and a == a and b == b else "-"
print("\ncnnd beside the peer server (same loadgen, same PNG, points alternated):")
print("%-9s %-8s %5s %10s %10s %6s %9s %9s %9s %9s %6s" % ("model", "batching", "conc",
      "cnnd i/s", "peer i/s", "i/s x", "cnnd p50", "peer p50", "cnnd p99", "peer p99", "p99 x"))
for p in peer:
    c = cnnd.get(key(p))
    if not c:
        continue
    print("%-9s %-8s %5d %10.1f %10.1f %6s %9.3f %9.3f %9.3f %9.3f %6s" % (
        p["model"], p["batching"], p["concurrency"], c["images_per_s"], p["images_per_s"],
        ratio(c["images_per_s"], p["images_per_s"]), c["p50_ms"], p["p50_ms"], c["p99_ms"],
        p["p99_ms"], ratio(p["p99_ms"], c["p99_ms"])))
print("i/s x = cnnd images/s / peer images/s; p99 x = peer p99 / cnnd p99 (> 1: cnnd ahead)")
ort = [p for p in pts if p.get("server") == "ort_compute"]
if ort:
    print("\nResNet-18 at concurrency 1: cnnd's HTTP p50 beside ONNX Runtime's compute latency "
          "of one image on %s threads (bench_one.sh resnet18 1 %s, right after the point):"
          % (sys.argv[2], sys.argv[2]))
    print("%-8s %12s %14s %10s" % ("batching", "cnnd p50 ms", "ORT compute ms", "p50 / ORT"))
    for o in ort:
        c = cnnd.get(("resnet18", o["batching"], 1))
        if c:
            print("%-8s %12.3f %14.3f %10s" % (o["batching"], c["p50_ms"], o["lat_ms"],
                                               ratio(c["p50_ms"], o["lat_ms"])))
EOF
