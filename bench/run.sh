#!/usr/bin/env bash
# make bench: cnnd's forward pass next to ONNX Runtime, measured in the same run.
#   bash bench/run.sh [path/to/cnn]
# For LeNet-5, the CIFAR net and ResNet-18 (../shared/peers/make_models.py, same FLOPs and
# parameters) at batch 1, 8, 32 and 1, 2 threads: `cnn bench` (median of timed calls after
# warm-up) and ORT's images/s from ../shared/peers/bench_one.sh, alternating BENCH_ROUNDS
# times per row so that drift hits both (a 2-core VM here runs both engines 1.5x slower for
# seconds at a time); each side's median over the rounds, then the ratio.  Prints numbers,
# never pass/fail.
# Then bench/onnx_rows.sh: ResNet-18/50 from one exported .onnx file in cnnd and ORT beside the
# native arch:NAME (BENCH_ONNX=0 skips it).
# Env: CNND_PEERS_DIR (default ../shared/peers), BENCH_MODELS, BENCH_BATCHES, BENCH_THREADS,
#      BENCH_MIN_TIME (seconds per measurement, default 1.0), BENCH_ROUNDS (default 3).
set -euo pipefail
cd "$(dirname "$0")/.."
CNN=${1:-build/cnn}
PEERS=${CNND_PEERS_DIR:-$(cd .. && pwd)/shared/peers}
MODELS=${BENCH_MODELS:-lenet5 cifar_cnn resnet18}
BATCHES=${BENCH_BATCHES:-1 8 32}
THREADS=${BENCH_THREADS:-1 2}
MIN_TIME=${BENCH_MIN_TIME:-1.0}
ROUNDS=${BENCH_ROUNDS:-3}

have_ort=0
if [ -f "$PEERS/bench_one.sh" ]; then
  if bash "$PEERS/setup.sh" >&2; then have_ort=1; fi
else
  echo "bench: $PEERS not found: printing cnnd numbers only" >&2
fi

field() { sed -n "s/.*\"$1\":\"\{0,1\}\([^,\"}]*\).*/\1/p" <<<"$2"; }
median() { tr ' ' '\n' | { grep -v '^$' || true; } | sort -g | awk '{ v[NR] = $1 } END {
  if (NR == 0) print ""; else print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

printf '%-10s %5s %7s %6s %12s %10s %9s %12s %7s\n' model batch threads mode \
  "cnnd img/s" "ms/batch" "GFLOP/s" "ORT img/s" ratio
for model in $MODELS; do
  for threads in $THREADS; do
    for batch in $BATCHES; do
      # cnnd, then ORT, ROUNDS times; the line kept is cnnd's median round (by images/s)
      lines=() ips_all="" ort_all=""
      for _ in $(seq "$ROUNDS"); do
        line=$("$CNN" bench "arch:$model" --batch "$batch" --threads "$threads" \
          --min-time "$MIN_TIME" --json --name "$model")
        lines+=("$line")
        ips_all="$ips_all $(field ips "$line")"
        if [ "$have_ort" = 1 ]; then
          ort_all="$ort_all $(CNND_PEERS_MIN_TIME="$MIN_TIME" bash "$PEERS/bench_one.sh" \
            "$model" "$batch" "$threads" 2>/dev/null | sed -n 's/^ort_images_per_s=//p')"
        fi
      done
      ips=$(median <<<"$ips_all")
      for l in "${lines[@]}"; do # the round closest to the median
        awk -v a="$(field ips "$l")" -v b="$(field ips "$line")" -v m="$ips" \
          'BEGIN { exit !((a - m) ^ 2 < (b - m) ^ 2) }' && line=$l
      done
      ms=$(field lat_ms_median "$line")
      gf=$(field gflops "$line"); mode=$(field mode "$line")
      ort="-"; ratio="-"
      o=$(median <<<"$ort_all")
      if [ -n "$o" ]; then
        ort=$o
        ratio=$(awk -v a="$ips" -v b="$ort" 'BEGIN { printf "%.2f", a / b }')
      fi
      printf '%-10s %5d %7d %6s %12.1f %10.3f %9.1f %12s %7s\n' "$model" "$batch" "$threads" \
        "$mode" "$ips" "$ms" "$gf" "$ort" "$ratio"
    done
  done
done
echo "ratio = cnnd images/s / ONNX Runtime images/s, same machine, same run (>1: cnnd faster);"
echo "each the median of $ROUNDS alternated rounds (ms/batch and GFLOP/s: cnnd's median round)."
echo "mode split: the batch is divided over the threads, each with its own session and"
echo "single-threaded BLAS (how cnnd instances use cores); team (batch < threads, >= 4 MFLOP):"
echo "one session whose layers are split over T threads (what cnnd runs for a batch that finds"
echo "the queue short); blas: one session, T BLAS threads (a batch under 4 MFLOP, as cnnd keeps"
echo "it on one core)."

if [ "${BENCH_ONNX:-1}" = 1 ]; then
  echo
  CNND_PEERS_DIR="$PEERS" BENCH_THREADS="$THREADS" BENCH_MIN_TIME="$MIN_TIME" \
    bash bench/onnx_rows.sh "$CNN"
fi
