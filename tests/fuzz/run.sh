#!/usr/bin/env bash
# `make fuzz`: runs each libFuzzer target (built by `make fuzz-bins` with clang,
# ASan+UBSan) for SECONDS on a working copy of its seed corpus, then prints one line per
# target: executions, coverage (cov = edges, ft = features), corpus size, crashes and hangs.
# A crash, leak or hang input is left in build-.../fuzz/artifacts/TARGET/ -- commit it under
# tests/fuzz/crashes/TARGET/ with its fix.  New corpus entries stay in
# build-.../fuzz/work/TARGET/ (merge the useful ones with -merge=1 by hand).
# usage: run.sh BINDIR SECONDS TARGET...
set -u
BIN=$1 SECONDS_EACH=$2
shift 2
HERE=$(cd "$(dirname "$0")" && pwd)
export OPENBLAS_NUM_THREADS=1
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1}
summary=()
status=0
for t in "$@"; do
  work=$BIN/work/$t art=$BIN/artifacts/$t log=$BIN/$t.log
  mkdir -p "$work" "$art"
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/fuzz-$t.XXXXXX") # what a target writes (the HTTP one's repo)
  dict=()
  case $t in infer | jobspec) d=json ;; *) d=$t ;; esac # JSON bodies share one dictionary
  [ -f "$HERE/$d.dict" ] && dict=(-dict="$HERE/$d.dict")
  echo "== fuzz $t: ${SECONDS_EACH}s (log $log)"
  TMPDIR=$tmp "$BIN/fuzz_$t" -max_total_time="$SECONDS_EACH" -timeout=20 -rss_limit_mb=2048 \
    -max_len=65536 -print_final_stats=1 -artifact_prefix="$art/" "${dict[@]}" \
    "$work" "$HERE/corpus/$t" > "$log" 2>&1
  rc=$?
  rm -rf "$tmp"
  execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | awk '{print $2}')
  last=$(grep -E '^#[0-9]+' "$log" | tail -1)
  cov=$(echo "$last" | grep -o 'cov: [0-9]*' | awk '{print $2}')
  ft=$(echo "$last" | grep -o 'ft: [0-9]*' | awk '{print $2}')
  corp=$(echo "$last" | grep -o 'corp: [0-9]*' | awk '{print $2}')
  crashes=$(find "$art" -maxdepth 1 \( -name 'crash-*' -o -name 'leak-*' -o -name 'oom-*' \) | wc -l)
  hangs=$(find "$art" -maxdepth 1 -name 'timeout-*' | wc -l)
  line=$(printf '%-10s execs=%-9s cov=%-6s ft=%-6s corpus=%-5s crashes=%s hangs=%s exit=%s' \
    "$t" "${execs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$crashes" "$hangs" "$rc")
  echo "$line"
  summary+=("$line")
  [ "$rc" = 0 ] && [ "$crashes" = 0 ] && [ "$hangs" = 0 ] || status=1
done
echo "== fuzz summary (${SECONDS_EACH}s per target)"
printf '%s\n' "${summary[@]}"
exit $status
