#!/usr/bin/env bash
# make bench, imported models: ResNet-18/50 loaded from the SAME .onnx file by cnnd (`cnn bench
# FILE.onnx`) and by ONNX Runtime (../shared/peers/bench_ort.js pointed at that file through a
# manifest in PEERS_MODELS_DIR), next to cnnd's native arch:NAME, so "an imported model runs
# within 5% of the native architecture" and cnnd-vs-ORT on one file are visible.
#   bash bench/onnx_rows.sh [path/to/cnn]
# The .onnx files come from tests/conformance/torchvision_export.py (seeded random weights,
# opset 13, dynamic batch, Softmax appended; /usr/bin/python3 + torchvision), cached in
# $BENCH_ONNX_DIR (default ~/.cache/cnnd-bench-onnx), never committed.  Prints numbers only.
# Each cell is the median over BENCH_ONNX_ROUNDS rounds (default 4) of native, onnx, ORT run
# in turn (native and onnx swap places every other round), so drift hits all three; "busy"
# is the most other processes' CPU (cores) seen during cnnd's runs of that row (cnn bench's
# foreign_cpu): above ~0.3 the row is noisy.
# Env: BENCH_ONNX_MODELS (resnet18 resnet50), BENCH_ONNX_BATCHES (1 8), BENCH_THREADS (1 2),
#      BENCH_ONNX_ROUNDS, BENCH_MIN_TIME, CNND_PEERS_DIR, TORCH_PYTHON.
set -euo pipefail
cd "$(dirname "$0")/.."
CNN=${1:-build/cnn}
PEERS=${CNND_PEERS_DIR:-$(cd .. && pwd)/shared/peers}
DIR=${BENCH_ONNX_DIR:-$HOME/.cache/cnnd-bench-onnx}
MODELS=${BENCH_ONNX_MODELS:-resnet18 resnet50}
BATCHES=${BENCH_ONNX_BATCHES:-1 8}
THREADS=${BENCH_THREADS:-1 2}
MIN_TIME=${BENCH_MIN_TIME:-1.0}
ROUNDS=${BENCH_ONNX_ROUNDS:-4}
TORCH_PY=${TORCH_PYTHON:-/usr/bin/python3}
CONF=tests/conformance

mkdir -p "$DIR"
for m in $MODELS; do
  f="$DIR/repo/$m/1/model.onnx"
  if [ ! -f "$f" ]; then
    echo "bench: exporting $m to $f" >&2
    "$TORCH_PY" "$CONF/torchvision_export.py" "$DIR" --models "$m" >&2
  fi
done

field() { sed -n "s/.*\"$1\":\"\{0,1\}\([^,\"}]*\).*/\1/p" <<<"$2"; }
median() { tr ' ' '\n' | { grep -v '^$' || true; } | sort -g | awk '{ v[NR] = $1 } END {
  if (NR == 0) print "-"; else printf "%.2f\n", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
maxof() { tr ' ' '\n' | grep -v '^$' | sort -g | tail -n 1; }
minof() { tr ' ' '\n' | grep -v '^$' | sort -g | head -n 1; }
have_ort=0
if [ -f "$PEERS/bench_ort.js" ] && bash "$PEERS/setup.sh" >&2; then
  have_ort=1
  # bench_ort.js reads models from PEERS_MODELS_DIR/manifest.json and checks each against a
  # batch-2 reference output: here ONNX Runtime's own output on the exporter's input
  # (ort_run.js), so that check is only a self-consistency check.
  {
    echo '{"models": {'
    sep=
    for m in $MODELS; do
      out="$DIR/in/$m.ort.f32"
      [ -f "$out" ] || node "$CONF/ort_run.js" "$DIR/repo/$m/1/model.onnx" "$DIR/in/$m.f32" \
        2,3,224,224 "$out" >/dev/null
      printf '%s"%s": {"file": "repo/%s/1/model.onnx", "input_chw": [3, 224, 224], "flops": 1,' \
        "$sep" "$m" "$m"
      printf ' "ref_batch": 2, "ref_in": "in/%s.f32", "ref_out": "in/%s.ort.f32"}\n' "$m" "$m"
      sep=,
    done
    echo '}}'
  } >"$DIR/manifest.json"
fi

printf '%-9s %5s %7s %11s %11s %11s %9s %9s %5s %9s\n' model batch threads "native i/s" "onnx i/s" \
  "ORT i/s" onnx/nat onnx/ORT busy "best n/o"
for m in $MODELS; do
  for t in $THREADS; do
    for b in $BATCHES; do
      opts=(--batch "$b" --threads "$t" --min-time "$MIN_TIME" --json)
      nats= onxs= orts= busy= natmin= onxmin=
      for r in $(seq 1 "$ROUNDS"); do
        # native first in odd rounds, the .onnx first in even ones: an order effect (the
        # second run of a pair inherits the first's caches and clock) cancels in the medians
        order=("arch:$m" "$DIR/repo/$m/1/model.onnx")
        [ $((r % 2)) = 1 ] || order=("${order[1]}" "${order[0]}")
        for src in "${order[@]}"; do
          line=$("$CNN" bench "$src" "${opts[@]}")
          busy+=" $(field foreign_cpu "$line")"
          if [ "$src" = "arch:$m" ]; then
            nats+=" $(field ips "$line")" natmin+=" $(field lat_ms_min "$line")"
          else
            onxs+=" $(field ips "$line")" onxmin+=" $(field lat_ms_min "$line")"
          fi
        done
        if [ "$have_ort" = 1 ]; then
          orts+=" $(PEERS_MODELS_DIR="$DIR" node "$PEERS/bench_ort.js" --models "$m" --batches "$b" \
            --threads "$t" --min-time "$MIN_TIME" --min-iters 7 |
            sed -n 's/.*"ips":\([0-9.eE+-]*\).*/\1/p')"
        fi
      done
      nat=$(median <<<"$nats"); onx=$(median <<<"$onxs"); ort=$(median <<<"$orts")
      r1=$(awk -v a="$onx" -v b="$nat" 'BEGIN { printf "%.3f", a / b }')
      # the fastest call of each over all rounds, native ms / onnx ms: immune to a slow mode
      # that lasts whole runs (a 2-thread forward on this VM is either fast or ~1.5x slower)
      best=$(awk -v a="$(minof <<<"$natmin")" -v b="$(minof <<<"$onxmin")" 'BEGIN { printf "%.3f", a / b }')
      r2=-
      [ "$ort" = - ] || r2=$(awk -v a="$onx" -v b="$ort" 'BEGIN { printf "%.2f", a / b }')
      printf '%-9s %5d %7d %11.2f %11.2f %11s %9s %9s %5s %9s\n' "$m" "$b" "$t" "$nat" "$onx" "$ort" \
        "$r1" "$r2" "$(maxof <<<"$busy")" "$best"
    done
  done
done
echo "onnx/nat = cnnd on the exported .onnx / cnnd's native arch:NAME (random weights; the same"
echo "layers, so ~1.00 is the goal); onnx/ORT = cnnd / ONNX Runtime on the same .onnx file;"
echo "best n/o = fastest native call / fastest onnx call over all rounds (ms; >1: onnx faster)."
