#!/usr/bin/env bash
# Command line and configuration: --help, --version, bad config file / flag / environment
# variable -> exit 2 naming where and which option; precedence file < CNND_* env < flag
# (seen through log_format); the shipped config/cnnd.conf and the bundled model
# repository start and classify the sample images.
source "$(dirname "$0")/lib.sh"
itest_init cli
repo_add fashion 1 lenet5 1

out=$("$CNND" --help 2>&1); rc=$?
check [ "$rc" = 0 ] -- "cnnd --help exits 0"
check grep -q max_batch_size <<<"$out" -- "cnnd --help lists the options"
out=$("$CNND" --version 2>&1); rc=$?
check [ "$rc" = 0 ] -- "cnnd --version exits 0"
check grep -qE '[0-9]+\.[0-9]+' <<<"$out" -- "cnnd --version prints a version ($out)"

# expect_exit2 WHAT PATTERN... -- CMD...: CMD exits 2 and its output matches every PATTERN.
expect_exit2() {
  local what=$1 pats=() out rc p
  shift
  while [ "$1" != "--" ]; do pats+=("$1"); shift; done
  shift
  out=$(timeout 10 "$@" 2>&1); rc=$?
  if [ "$rc" != 2 ]; then fail "$what: exit status $rc, expected 2: ${out:0:200}"; return; fi
  for p in "${pats[@]}"; do
    grep -qF -- "$p" <<<"$out" || { fail "$what: message lacks '$p': ${out:0:300}"; return; }
  done
  pass "$what: exit 2, message names ${pats[*]}"
}
base=(--listen 127.0.0.1 --port 0 --model-repository "$T/repo")
printf '[server]\nport = 0\nbogus_option = 1\n' >"$T/bad1.conf"
expect_exit2 "unknown option in the config file" "bad1.conf:3" bogus_option -- "$CNND" --config "$T/bad1.conf" "${base[@]}"
printf '# comment\n[batching]\n\nmax_batch_size = 0\n' >"$T/bad2.conf"
expect_exit2 "out-of-range value in the config file" "bad2.conf:4" max_batch_size -- "$CNND" --config "$T/bad2.conf" "${base[@]}"
printf '[server]\nport = many\n' >"$T/bad3.conf"
expect_exit2 "non-numeric value in the config file" "bad3.conf:2" port -- "$CNND" --config "$T/bad3.conf" "${base[@]}"
printf '[nosuchsection]\nport = 1\n' >"$T/bad4.conf"
expect_exit2 "unknown section in the config file" "bad4.conf:" nosuchsection -- "$CNND" --config "$T/bad4.conf" "${base[@]}"
expect_exit2 "missing config file" "$T/none.conf" -- "$CNND" --config "$T/none.conf" "${base[@]}"
expect_exit2 "bad flag value" port -- "$CNND" "${base[@]}" --port 70000
expect_exit2 "unknown flag" --no-such-flag -- "$CNND" "${base[@]}" --no-such-flag 1
cores=$(nproc)
expect_exit2 "instances x blas_threads over the $cores cores" instances blas_threads -- "$CNND" "${base[@]}" --instances $((cores + 1)) --blas-threads 1
expect_exit2 "blas_threads alone over the $cores cores" blas_threads -- "$CNND" "${base[@]}" --instances 1 --blas-threads $((cores + 1))
expect_exit2 "bad CNND_* variable" CNND_MAX_BATCH_SIZE max_batch_size -- env CNND_MAX_BATCH_SIZE=abc "$CNND" "${base[@]}"

# Precedence: file (json) < flag (text) < environment (json); the first log line shows it.
first_log_is_json() { head -n1 "$T/cnnd.log" | grep -q '^{'; }
write_config log.log_format=json
cnnd_start || finish
check first_log_is_json -- "log_format=json in the file: JSON log lines"
curl -s -o /dev/null -H 'Content-Type: image/png' --data-binary "@$ROOT/models/samples/bag.png" \
  "$URL/v1/models/fashion/classify"
cnnd_stop
check "$PY" -c '
import json, sys
lines = open(sys.argv[1]).read().splitlines()
assert len(lines) >= 3 and all(isinstance(json.loads(l), dict) for l in lines)' "$T/cnnd.log" \
  -- "with log_format=json every log line (start, request, stop) is a JSON object"
cnnd_start --log-format text || finish
check not first_log_is_json -- "--log-format text overrides the file"
cnnd_stop
CNND_LOG_FORMAT=json cnnd_start --log-format text || finish
check not first_log_is_json -- "--log-format text overrides CNND_LOG_FORMAT=json (flags > environment)"
cnnd_stop
write_config log.log_format=text
CNND_LOG_FORMAT=json cnnd_start || finish
check first_log_is_json -- "CNND_LOG_FORMAT=json overrides log_format=text in the file (environment > file)"
cnnd_stop

# The shipped config and the bundled repository (models/repository) with its samples.
if [ -f "$ROOT/config/cnnd.conf" ]; then
  cp "$ROOT/config/cnnd.conf" "$T/cnnd.conf"
  rm -rf "$T/repo" && ln -s "$ROOT/models/repository" "$T/repo"
  cnnd_start || finish
  for img in "$ROOT"/models/samples/*.png; do
    expect_status 200 POST /v1/models/fashion/classify -H 'Content-Type: image/png' \
      --data-binary "@$img" -- "shipped config + bundled model classify $(basename "$img")"
  done
  cnnd_stop
else
  fail "config/cnnd.conf is missing"
fi
finish
