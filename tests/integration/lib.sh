# Shared helpers for the integration tests (sourced, not run): PASS/FAIL counting, a temp
# model repository and config, starting a real cnnd on 127.0.0.1 with --port 0 (the port is
# read from its "listening ... port=N" log line), HTTP via curl, /metrics lookups, and a
# clean SIGTERM stop that must exit 0.  Needs CNN and CNND (paths to build/cnn, build/cnnd).
# shellcheck shell=bash

ITEST_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$ITEST_DIR/../.." && pwd)
CNN=${CNN:-build/cnn}
CNND=${CNND:-build/cnnd}
case "$CNN" in /*) ;; *) CNN="$ROOT/$CNN" ;; esac
case "$CNND" in /*) ;; *) CNND="$ROOT/$CNND" ;; esac
PY=${PYTHON:-python3}
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}

NPASS=0
NFAIL=0
CNND_PID=
PORT=
URL=

pass() { NPASS=$((NPASS + 1)); echo "PASS $ITEST_NAME: $*"; }
fail() { NFAIL=$((NFAIL + 1)); echo "FAIL $ITEST_NAME: $*"; }
# check COND-COMMAND... -- MESSAGE: PASS when the command succeeds.
check() {
  local args=() msg
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do args+=("$1"); shift; done
  shift
  msg="$*"
  if "${args[@]}"; then pass "$msg"; else fail "$msg"; fi
}

# not CMD...: succeeds when CMD fails (for check).
not() { ! "$@"; }

# itest_init NAME: temp dir $T (removed at exit), repository $T/repo, log $T/cnnd.log.
itest_init() {
  ITEST_NAME=$1
  T=$(mktemp -d "${TMPDIR:-/tmp}/cnnd-itest-$1.XXXXXX")
  mkdir -p "$T/repo" "$T/cache"
  trap itest_cleanup EXIT
  for b in "$CNN" "$CNND"; do
    [ -x "$b" ] || { echo "FAIL $ITEST_NAME: $b is not built"; exit 1; }
  done
}

itest_cleanup() {
  if [ -n "$CNND_PID" ] && kill -0 "$CNND_PID" 2>/dev/null; then
    kill -KILL "$CNND_PID" 2>/dev/null
    wait "$CNND_PID" 2>/dev/null
  fi
  if [ "${KEEP_TMP:-0}" = 1 ]; then echo "kept $T"; else rm -rf "$T"; fi
}

# model_file ARCH SEED: path of a model made by `cnn init ARCH --seed SEED` (cached in $T).
model_file() {
  local f="$T/cache/$1-$2.cnn"
  [ -f "$f" ] || "$CNN" init "$1" "$f" --seed "$2" >/dev/null || return 1
  echo "$f"
}

# repo_add NAME VERSION ARCH SEED: NAME/VERSION/model.cnn in the test repository.
repo_add() {
  local src
  src=$(model_file "$3" "$4") || return 1
  mkdir -p "$T/repo/$1/$2"
  cp "$src" "$T/repo/$1/$2/model.cnn"
}

# publish NAME VERSION ARCH SEED: atomically, as a trainer would: the whole version folder
# is written under a temp name in the repository's model folder, then renamed into place.
publish() {
  local src tmpd
  src=$(model_file "$3" "$4") || return 1
  tmpd="$T/repo/$1/.tmp-$2"
  mkdir -p "$tmpd"
  cp "$src" "$tmpd/model.cnn"
  mv "$tmpd" "$T/repo/$1/$2"
}

# write_config [SECTION.KEY=VALUE...]: $T/cnnd.conf (INI, one [section] each) with the
# test defaults below, each overridable by an argument.
write_config() {
  local kv sec key
  declare -A val=()
  local order=()
  for kv in server.per_ip_limit=0 server.connection_limit=1024 log.log_level=info "$@"; do
    key=${kv%%=*}
    [ -n "${val[$key]+x}" ] || order+=("$key")
    val[$key]=${kv#*=}
  done
  {
    echo "# integration test config (tests/integration/lib.sh)"
    for sec in server models batching limits admin training log; do
      echo "[$sec]"
      for key in "${order[@]}"; do
        [ "${key%%.*}" = "$sec" ] && echo "${key#*.} = ${val[$key]}"
      done
    done
  } >"$T/cnnd.conf"
}

# cnnd_start [FLAG...]: starts cnnd on 127.0.0.1, ephemeral port, test repo and config
# (the admin listener on an ephemeral port too, its token in $T/admin.token, data root $T);
# sets CNND_PID, PORT, URL.  Waits for /v2/health/ready (READY_WAIT=0 skips that).
cnnd_start() {
  [ -f "$T/cnnd.conf" ] || write_config
  : >"$T/cnnd.log"
  "$CNND" --config "$T/cnnd.conf" --listen 127.0.0.1 --port 0 --model-repository "$T/repo" \
    --admin-port 0 --admin-token-file "$T/admin.token" --data-root "$T" "$@" \
    >>"$T/cnnd.log" 2>&1 &
  CNND_PID=$!
  PORT=
  local i
  # cnnd listens once every model has loaded: up to 60 s (the conformance repository's eight
  # torchvision models, VGG-11's 133M parameters among them, took over 10 s on a Zen 5 VM);
  # a cnnd that exits ends the wait at once
  for i in $(seq 1 1200); do
    PORT=$(sed -nE 's/.*listening.* port=([0-9]+).*/\1/p' "$T/cnnd.log" | head -n1)
    [ -n "$PORT" ] && break
    kill -0 "$CNND_PID" 2>/dev/null || break
    sleep 0.05
  done
  if [ -z "$PORT" ]; then
    fail "cnnd did not log 'listening ... port=N' (log follows)"
    sed 's/^/  log: /' "$T/cnnd.log" | tail -n 30
    return 1
  fi
  URL="http://127.0.0.1:$PORT"
  export CNND_URL="$URL"
  [ "${READY_WAIT:-1}" = 1 ] || return 0
  for i in $(seq 1 200); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/v2/health/ready")" = 200 ] && return 0
    sleep 0.05
  done
  fail "cnnd on port $PORT not ready after 10 s"
  return 1
}

# admin_url: http://127.0.0.1:N of the admin listener of the cnnd started last.
admin_url() { echo "http://127.0.0.1:$(sed -nE 's/.*admin listening port=([0-9]+).*/\1/p' "$T/cnnd.log" | head -n1)"; }

# cnnd_stop: SIGTERM, then cnnd_wait_exit 0.
cnnd_stop() {
  [ -n "$CNND_PID" ] || return 0
  kill -TERM "$CNND_PID" 2>/dev/null
  cnnd_wait_exit 0 "SIGTERM"
}

# cnnd_wait_exit WANT WHAT: waits (at most STOP_WAIT s, default 30) for cnnd to exit;
# PASS when its status is WANT ("any" accepts every status).
cnnd_wait_exit() {
  local i rc
  for i in $(seq 1 $((${STOP_WAIT:-30} * 10))); do
    cnnd_alive || break
    sleep 0.1
  done
  if cnnd_alive; then
    fail "$2: cnnd still running ${STOP_WAIT:-30} s later"
    kill -KILL "$CNND_PID" 2>/dev/null
  fi
  wait "$CNND_PID"
  rc=$?
  CNND_PID=
  if [ "$1" = any ] || [ "$rc" = "$1" ]; then pass "$2: cnnd exited with status $rc"; else
    fail "$2: cnnd exited with status $rc, expected $1 (log tail follows)"
    tail -n 20 "$T/cnnd.log" | sed 's/^/  log: /'
  fi
}

# cnnd_alive: cnnd's process exists and is not a zombie.
cnnd_alive() {
  local st
  st=$(awk '{print $3}' "/proc/$CNND_PID/stat" 2>/dev/null) || return 1
  [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# http METHOD PATH [CURL-ARG...]: sets STATUS, BODY (file $T/body) and HDRS (file $T/hdrs).
http() {
  local m=$1 p=$2
  shift 2
  STATUS=$(curl -s -o "$T/body" -D "$T/hdrs" -w '%{http_code}' -X "$m" "$@" "$URL$p")
  BODY=$(cat "$T/body")
}

# header NAME: value of response header NAME from the last http call ("" when absent).
header() {
  tr -d '\r' <"$T/hdrs" | sed -nE "s/^$1: *(.*)$/\\1/Ip" | tail -n1
}

# expect_status CODE METHOD PATH [CURL-ARG...] -- MESSAGE
expect_status() {
  local want=$1 args=() msg
  shift
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do args+=("$1"); shift; done
  shift
  msg="$*"
  http "${args[@]}"
  if [ "$STATUS" = "$want" ]; then pass "$msg -> $want"; else
    fail "$msg: status $STATUS, expected $want; body: ${BODY:0:200}"
  fi
}

# is_error_json: the last body is {"error": "<non-empty string>"}.
is_error_json() {
  "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if isinstance(d,dict) and isinstance(d.get("error"),str) and d["error"] else 1)' "$T/body" 2>/dev/null
}

# py SCRIPT [ARG...]: runs tests/integration/SCRIPT.py (URL in $CNND_URL, cnnd's pid in
# $CNND_PID); its PASS/FAIL lines are counted here.
py() {
  local line before=$NFAIL
  while IFS= read -r line; do
    case "$line" in
      PASS*) NPASS=$((NPASS + 1)); echo "PASS $ITEST_NAME: ${line#PASS }" ;;
      FAIL*) NFAIL=$((NFAIL + 1)); echo "FAIL $ITEST_NAME: ${line#FAIL }" ;;
      rc=0) ;;
      rc=*) # a crash without a FAIL line of its own still fails
        [ "$NFAIL" = "$before" ] && NFAIL=$((NFAIL + 1)) &&
          echo "FAIL $ITEST_NAME: $1.py exited with ${line#rc=}" ;;
      *) echo "$line" ;;
    esac
  done < <(CNN="$CNN" CNND_PID="$CNND_PID" "$PY" "$ITEST_DIR/$1.py" "${@:2}" 2>&1; echo "rc=$?")
}

# metric NAME [LABEL-SUBSTRING]: sum of the samples of NAME on /metrics whose label set
# contains LABEL-SUBSTRING (all when empty).
metric() {
  curl -s "$URL/metrics" | awk -v n="$1" -v l="${2:-}" '
    $1 == n || index($1, n "{") == 1 { if (l == "" || index($1, l)) s += $NF; f = 1 }
    END { if (f) printf "%.17g\n", s; else print "none" }'
}

# rss_kb: resident set size of cnnd in kB.
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$CNND_PID/status"; }

# finish: prints the total, exits 1 on any failure.
finish() {
  echo "TOTAL $ITEST_NAME: $NPASS passed, $NFAIL failed"
  [ "$NFAIL" = 0 ] && [ "$NPASS" -gt 0 ]
  exit $?
}
