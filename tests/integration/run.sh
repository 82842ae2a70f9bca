#!/usr/bin/env bash
# Integration tests: each t_*.sh starts its own cnnd on 127.0.0.1 (ephemeral port, temp
# repository and config) and prints PASS/FAIL lines and a TOTAL line; this runs them all
# (or those named in ITEST_ONLY, e.g. ITEST_ONLY="api errors"), prints the grand total and
# exits nonzero on any failure.  Called by `make itest` with CNN and CNND set.
set -u
DIR=$(cd "$(dirname "$0")" && pwd)
export CNN=${CNN:-build/cnn} CNND=${CNND:-build/cnnd}
tests=(${ITEST_ONLY:-cli api errors batching queue hotswap shutdown admin onnx explain readme replicas k8s})
pass=0 fail=0 broken=()
t0=$(date +%s)
for t in "${tests[@]}"; do
  echo "== $t"
  out=$(mktemp)
  bash "$DIR/t_$t.sh" 2>&1 | tee "$out"
  rc=${PIPESTATUS[0]}
  p=$(grep -c '^PASS ' "$out")
  f=$(grep -c '^FAIL ' "$out")
  rm -f "$out"
  pass=$((pass + p))
  fail=$((fail + f))
  if [ "$rc" != 0 ] || [ "$p" = 0 ]; then broken+=("$t"); fi
  [ "$rc" != 0 ] && [ "$f" = 0 ] && fail=$((fail + 1)) && echo "FAIL $t: exited $rc without a FAIL line"
done
echo "== integration: $pass passed, $fail failed in $(($(date +%s) - t0)) s${broken[*]:+ (failing: ${broken[*]})}"
[ "$fail" = 0 ] && [ ${#broken[@]} = 0 ]
