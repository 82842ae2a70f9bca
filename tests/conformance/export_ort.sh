#!/usr/bin/env bash
# `make conformance-export`: the ONNX export checked by ONNX Runtime.  Models: every shipped
# architecture (`cnn init --list`, seeded random weights), the bundled fashion model, that
# model fine-tuned for 40 steps with a new 3-class head, the fuzz seed model/moves.cnn
# (transpose, concat over W; opsets 13, 7, 11), and the unit-test networks that use
# every layer kind (session_raw --net dag|wide|ranks|kinds|kinds_flat) at opsets 13, 10, 11,
# 12, 17 (wide also 7 and 9: the others pool in ceil mode; kinds and kinds_flat, the kinds
# added for ONNX import, also 14, 7 and 9).  For each: `cnn convert` writes the .onnx, cnnd's
# session runs a seeded batch (session_raw), ONNX Runtime runs the same batch from the .onnx
# (export_ort.js), onnx.checker (python3-onnx, full_check) validates the file.  One line per
# model with the max abs difference; fails when one is over 1e-5, a shape is wrong or the
# checker refuses a file.
# Env: CNN, SESSION_RAW (built by make), CNND_PEERS_DIR (default ../shared/peers),
# CNND_PEERS_HOME, EXPORT_ARCHS (default: all), EXPORT_BATCH (default 3: a dynamic batch),
# FASHION_DATA (default /usr/share/datasets/fashion-mnist).
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DIR="$ROOT/tests/conformance"
CNN=${CNN:-$ROOT/build/cnn}
SESSION_RAW=${SESSION_RAW:-$ROOT/build/session_raw}
PEERS_DIR=${CNND_PEERS_DIR:-$(cd "$ROOT/.." && pwd)/shared/peers}
TOL=1e-5
N=${EXPORT_BATCH:-3}
[ -f "$PEERS_DIR/common.sh" ] || { echo "export_ort: no $PEERS_DIR/common.sh (set CNND_PEERS_DIR)" >&2; exit 1; }
source "$PEERS_DIR/common.sh"
peers_ort_ok || { echo "export_ort: onnxruntime-node missing: run bash $PEERS_DIR/setup.sh" >&2; exit 1; }
PY=$(peers_python onnx) || PY=""
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

fails=0 runs=0
# check NAME MODEL.cnn OPSET: convert, run both engines, compare, check the file.
check() {
  local name=$1 model=$2 opset=$3 onnx="$T/$1.onnx" out line diff dims chk="-"
  runs=$((runs + 1))
  if ! out=$("$CNN" convert "$model" "$onnx" --opset "$opset" 2>&1); then
    echo "FAIL $name opset $opset: cnn convert: $out"; fails=$((fails + 1)); return
  fi
  if ! out=$("$SESSION_RAW" "$model" "$N" 7 "$T/in.f32" "$T/want.f32" 2>&1); then
    echo "FAIL $name: session_raw: $out"; fails=$((fails + 1)); return
  fi
  local chw
  chw=$("$CNN" info "$model" | sed -n 's/^input: \([0-9]*\)x\([0-9]*\)x\([0-9]*\).*/\1 \2 \3/p')
  # shellcheck disable=SC2086
  if ! line=$(node "$DIR/export_ort.js" "$onnx" "$T/in.f32" "$T/want.f32" "$N" $chw 2>&1); then
    echo "FAIL $name opset $opset: onnxruntime: ${line:0:300}"; fails=$((fails + 1)); return
  fi
  if [ -n "$PY" ]; then
    if chk=$("$PY" -c 'import onnx, sys; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True); print("ok")' "$onnx" 2>&1); then
      chk=ok
    else
      chk="refused: $(tail -1 <<<"$chk")"
    fi
  fi
  diff=$(node -e 'const r = JSON.parse(process.argv[1]); console.log(r.maxdiff.toExponential(2), r.dims.join("x"), r.maxprob.toFixed(3))' "$line")
  read -r d dims maxprob <<<"$diff"
  local k
  k=$("$CNN" info "$model" | sed -n 's/^classes: //p')
  local verdict=ok
  if [ "$dims" != "${N}x$k" ] || ! awk -v d="$d" -v t="$TOL" 'BEGIN { exit !(d <= t) }' || { [ -n "$PY" ] && [ "$chk" != ok ]; }; then
    verdict=FAIL; fails=$((fails + 1))
  fi
  printf '%-4s %-22s opset %-2s output %-8s max_abs_diff %-9s max_prob %s checker %s\n' \
    "$verdict" "$name" "$opset" "$dims" "$d" "$maxprob" "$chk"
}

[ -n "$PY" ] || echo "note: no python3 with onnx: checker not run"
archs=${EXPORT_ARCHS:-$("$CNN" init --list | awk '{print $1}')}
for a in $archs; do
  "$CNN" init "$a" "$T/$a.cnn" --seed 3 >/dev/null ||
    { echo "FAIL $a: cnn init"; runs=$((runs + 1)); fails=$((fails + 1)); continue; }
  check "$a" "$T/$a.cnn" 13
  rm -f "$T/$a.cnn" "$T/$a.onnx"
done
check fashion "$ROOT/models/repository/fashion/1/model.cnn" 13
# the transpose kind and a concat over W (the fuzz seed of tests/fuzz/make_seeds.c)
for opset in 13 7 11; do
  check moves "$ROOT/tests/fuzz/corpus/model/moves.cnn" "$opset"
done
# a fine-tuned model: the bundled one with a new 3-class head, 40 SGD steps
FASHION_DATA=${FASHION_DATA:-/usr/share/datasets/fashion-mnist}
if [ -d "$FASHION_DATA" ]; then
  if "$CNN" train "$ROOT/models/repository/fashion/1/model.cnn" --data "$FASHION_DATA" \
      --classes 0,1,7 --labels tshirt,trouser,sneaker --steps 40 --batch 32 --epochs 1 \
      --threads 1 --quiet --out "$T/finetuned.cnn" >/dev/null; then
    check fashion_finetuned "$T/finetuned.cnn" 13
  else
    echo "FAIL fashion_finetuned: cnn train"; runs=$((runs + 1)); fails=$((fails + 1))
  fi
else
  echo "note: no $FASHION_DATA: the fine-tuned model is not checked"
fi
for net in dag wide ranks kinds kinds_flat; do
  "$SESSION_RAW" --net "$net" 5 "$T/$net.cnn" ||
    { echo "FAIL net $net"; runs=$((runs + 1)); fails=$((fails + 1)); continue; }
  opsets="13 10 11 12 17"
  [ "$net" = wide ] && opsets="$opsets 7 9" # dag and ranks pool in ceil mode: opset 10 on
  case $net in kinds*) opsets="$opsets 14 7 9" ;; esac # HardSwish from 14; Pad-2 below 11
  for opset in $opsets; do
    check "$net" "$T/$net.cnn" "$opset"
  done
done
echo "== export vs onnxruntime: $((runs - fails)) of $runs within $TOL${PY:+, onnx.checker full_check}"
[ "$fails" = 0 ]
