#!/usr/bin/env bash
# Does /explain stall inference?  Inference p50/p99 at concurrency 16 on the bundled model,
# alone and with a concurrent closed-loop stream of explain requests (EXPLAIN_C connections,
# METHOD), ROUNDS times alternating; prints loadgen's lines.  Numbers from a shared machine
# are noisy: compare the pairs, and say what else ran.
#   bench/explain_load.sh [SECONDS] [ROUNDS]   (needs build/cnnd and build/loadgen)
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CNND=${CNND:-$ROOT/build/cnnd} LOADGEN=${LOADGEN:-$ROOT/build/loadgen}
S=${1:-10} ROUNDS=${2:-2} EXPLAIN_C=${EXPLAIN_C:-2} METHOD=${METHOD:-gradinput}
T=$(mktemp -d)
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$T"' EXIT
mkdir -p "$T/repo/fashion/1"
cp "$ROOT/models/repository/fashion/1/model.cnn" "$T/repo/fashion/1/"
"$CNND" --listen 127.0.0.1 --port 0 --model-repository "$T/repo" --admin-port 0 \
  --admin-token-file "$T/tok" --data-root "$T" --log-level warn >"$T/log" 2>&1 &
PID=$!
for _ in $(seq 100); do grep -q "listening port" "$T/log" && break; sleep 0.1; done
PORT=$(sed -nE 's/.* listening port=([0-9]+).*/\1/p' "$T/log" | head -n1)
U="http://127.0.0.1:$PORT/v1/models/fashion"
IMG="$ROOT/models/samples/sneaker.png"
echo "cnnd $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); classify c=16 ${S}s; explain stream c=$EXPLAIN_C method=$METHOD"
for r in $(seq "$ROUNDS"); do
  echo "round $r alone:      $("$LOADGEN" --url "$U/classify" --file "$IMG" --concurrency 16 --duration "$S" --warmup 1 | tr '\n' ' ')"
  "$LOADGEN" --url "$U/explain?method=$METHOD" --file "$IMG" --concurrency "$EXPLAIN_C" \
    --duration "$((S + 2))" --warmup 0 >"$T/explain.txt" &
  XP=$!
  echo "round $r + explains: $("$LOADGEN" --url "$U/classify" --file "$IMG" --concurrency 16 --duration "$S" --warmup 1 | tr '\n' ' ')"
  wait $XP
  echo "  explain stream:    $(tr '\n' ' ' <"$T/explain.txt")"
done
