#!/usr/bin/env bash
# Before/after of a change, measured in one run: two builds of `cnn` (e.g. the base commit built
# in a git worktree, and this tree) alternate row by row so that the machine's drift hits both.
#   bash bench/compare.sh OLD_CNN NEW_CNN
# Prints images/s of each and new/old per (model, batch, threads), then the geometric mean of
# new/old.  Numbers only, never pass/fail.  Env: BENCH_MODELS, BENCH_BATCHES, BENCH_THREADS,
# BENCH_MIN_TIME (seconds per measurement, default 1.0), ROUNDS (alternations per row, default 2;
# the median of each side's rounds is printed).
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 OLD_CNN NEW_CNN" >&2; exit 2; }
OLD=$1
NEW=$2
MODELS=${BENCH_MODELS:-lenet5 cifar_cnn resnet18}
BATCHES=${BENCH_BATCHES:-1 8 32}
THREADS=${BENCH_THREADS:-1 2}
MIN_TIME=${BENCH_MIN_TIME:-1.0}
ROUNDS=${ROUNDS:-2}

ips() {
  "$1" bench "arch:$2" --batch "$3" --threads "$4" --min-time "$MIN_TIME" --json --name "$2" |
    sed -n 's/.*"ips":\([0-9.e+]*\).*/\1/p'
}
median() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{v[NR] = $1} END {
  if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

printf '%-10s %5s %7s %12s %12s %8s\n' model batch threads "old img/s" "new img/s" new/old
logsum=0
rows=0
for model in $MODELS; do
  for threads in $THREADS; do
    for batch in $BATCHES; do
      o=""
      n=""
      for _ in $(seq "$ROUNDS"); do
        o="$o $(ips "$OLD" "$model" "$batch" "$threads")"
        n="$n $(ips "$NEW" "$model" "$batch" "$threads")"
      done
      om=$(median <<<"$o")
      nm=$(median <<<"$n")
      r=$(awk -v a="$nm" -v b="$om" 'BEGIN { printf "%.3f", a / b }')
      logsum=$(awk -v s="$logsum" -v r="$r" 'BEGIN { print s + log(r) }')
      rows=$((rows + 1))
      printf '%-10s %5d %7d %12.1f %12.1f %8s\n' "$model" "$batch" "$threads" "$om" "$nm" "$r"
    done
  done
done
awk -v s="$logsum" -v n="$rows" 'BEGIN { printf "geometric mean new/old over %d rows: %.3f\n", n, exp(s / n) }'
