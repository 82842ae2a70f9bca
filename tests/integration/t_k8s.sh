#!/usr/bin/env bash
# The Kubernetes manifests (config/k8s) and compose file, parsed and checked against each
# other (check_k8s.py static), then a real cnnd started the way the Deployment starts it:
# config/cnnd.conf plus the container's CNND_* environment (paths and ports mapped into a
# temp dir and free loopback ports), as uid 10001, with the admin token a Secret volume file
# (root's, mode 0644, token -> ..data/token) on a read-only bind mount in a private mount
# namespace; each probe path is fetched on the port it names (200), the admin API takes the
# Secret's token, SIGTERM exits 0.  The same file on a writable mount is refused (exit 1);
# CNND_ADMIN_LISTEN=off serves the probes with no admin port and no token.
source "$(dirname "$0")/lib.sh"
itest_init k8s

YPY=
for p in "$PY" /usr/bin/python3; do "$p" -c 'import yaml' 2>/dev/null && YPY=$p && break; done
if [ -z "$YPY" ]; then
  fail "no python3 with the yaml module (Debian: python3-yaml; bash .ci/deps.sh test)"
  finish
fi
PY=$YPY py check_k8s static "$ROOT"
mkdir -p "$T/repo/fashion/1" "$T/data"
cp "$ROOT/models/repository/fashion/1/model.cnn" "$T/repo/fashion/1/model.cnn"

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
HP=$(free_port) AP=$(free_port)
# The container's environment with its paths under $T and its ports free ones.
declare -a ENVS=()
while IFS='=' read -r k v; do
  case "$k" in
    CNND_LISTEN | CNND_ADMIN_LISTEN) [ "$v" != off ] && v=127.0.0.1 ;;
    CNND_PORT) v=$HP ;;
    CNND_ADMIN_PORT) v=$AP ;;
    CNND_MODEL_REPOSITORY) v=$T/repo ;;
    CNND_DATA_ROOT) v=$T/data ;;
    CNND_ADMIN_TOKEN_FILE) TOKEN_NAME=$(basename "$v") v=$T/secret/$TOKEN_NAME ;;
  esac
  ENVS+=("$k=$v")
done < <("$YPY" "$ITEST_DIR/check_k8s.py" env "$ROOT")
echo "container environment, mapped: ${ENVS[*]}"
mapfile -t PROBES < <("$YPY" "$ITEST_DIR/check_k8s.py" probes "$ROOT")
check test ${#PROBES[@]} = 3 -- "the Deployment has 3 probes: ${PROBES[*]}"

# A Secret volume as the kubelet writes it: ..TIMESTAMP/ holds the files, ..data links to it,
# each key links through ..data.  Root's, mode 0644 (the default; 0440 with fsGroup).
TOKEN=k8s-secret-token-0123456789abcdef
mkdir -p "$T/secret/..2026_12_06_09_00_00.1"
echo "$TOKEN" >"$T/secret/..2026_12_06_09_00_00.1/${TOKEN_NAME:-token}"
chmod 644 "$T/secret/..2026_12_06_09_00_00.1/${TOKEN_NAME:-token}"
ln -s ..2026_12_06_09_00_00.1 "$T/secret/..data"
ln -s "..data/${TOKEN_NAME:-token}" "$T/secret/${TOKEN_NAME:-token}"

# run_pod [VAR=VALUE...]: cnnd as the pod runs it (uid 10001 and a read-only Secret mount
# when we are root and may unshare a mount namespace, else as we are); sets CNND_PID.
RO=0
if [ "$(id -u)" = 0 ] && unshare -m --propagation private true 2>/dev/null; then RO=1; fi
chmod 755 "$T" "$T/secret" "$T/secret/..2026_12_06_09_00_00.1"
chown -R 10001:10001 "$T/repo" "$T/data" 2>/dev/null
run_pod() {
  : >"$T/cnnd.log"
  if [ "$RO" = 1 ] && [ "${RW:-0}" = 0 ]; then
    env "${ENVS[@]}" "$@" unshare -m --propagation private sh -c \
      'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" "$1" && shift &&
       exec setpriv --reuid=10001 --regid=10001 --clear-groups "$@"' sh "$T/secret" \
      "$CNND" --config "$ROOT/config/cnnd.conf" >>"$T/cnnd.log" 2>&1 &
  elif [ "$RO" = 1 ]; then
    env "${ENVS[@]}" "$@" setpriv --reuid=10001 --regid=10001 --clear-groups \
      "$CNND" --config "$ROOT/config/cnnd.conf" >>"$T/cnnd.log" 2>&1 &
  else
    env "${ENVS[@]}" "$@" "$CNND" --config "$ROOT/config/cnnd.conf" >>"$T/cnnd.log" 2>&1 &
  fi
  CNND_PID=$!
}
wait_listening() {
  local i
  for i in $(seq 1 200); do
    grep -q 'listening port=' "$T/cnnd.log" && return 0
    cnnd_alive || return 1
    sleep 0.05
  done
  return 1
}
probe_all() { # fetches every probe on the port it names (the manifest's 8080 is $HP here)
  local kind path port code
  for p in "${PROBES[@]}"; do
    read -r kind path port <<<"$p"
    [ "$port" = 8080 ] && port=$HP
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port$path")
    check test "$code" = 200 -- "$1: $kind GET $path on port $port -> $code"
  done
}

if [ "$RO" = 1 ]; then
  echo "the Secret is bind-mounted read-only in a private mount namespace; cnnd runs as uid 10001"
else
  echo "SKIP k8s: not root or no mount namespace here: the token is a 0600 file and cnnd runs as $(id -un)"
  rm -rf "$T/secret" && mkdir -p "$T/secret" && (umask 077 && echo "$TOKEN" >"$T/secret/${TOKEN_NAME:-token}")
fi
run_pod
if wait_listening; then
  pass "cnnd started with the Deployment's environment and config/cnnd.conf"
  for i in $(seq 1 100); do [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HP/v2/health/ready")" = 200 ] && break; sleep 0.05; done
  probe_all "admin on"
  check grep -q "admin listening port=$AP" "$T/cnnd.log" -- "the admin listener is on the manifest's admin port ($AP here)"
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$AP/admin/v1/models")
  check test "$code" = 200 -- "the admin API takes the Secret's token -> $code"
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer wrong-token-0123456789" "http://127.0.0.1:$AP/admin/v1/models")
  check test "$code" = 401 -- "and refuses another -> $code"
  [ "$RO" = 1 ] && check test "$(awk '/^Uid:/ {print $2}' "/proc/$CNND_PID/status")" = 10001 -- "cnnd runs as uid 10001 (runAsUser)"
  cnnd_stop
else
  fail "cnnd did not start with the Deployment's environment: $(tail -n 3 "$T/cnnd.log")"
  kill -KILL "$CNND_PID" 2>/dev/null
fi

if [ "$RO" = 1 ]; then
  RW=1 run_pod
  cnnd_wait_exit 1 "the same Secret files on a writable mount"
  check grep -q "admin token file .*symlink" "$T/cnnd.log" -- "refused, and the log says why: $(grep -o 'admin token file[^"\\]*' "$T/cnnd.log" | head -n1)"
fi

# Serve-only: CNND_ADMIN_LISTEN=off, no token file at all.
rm -rf "$T/secret"
RW=1 run_pod CNND_ADMIN_LISTEN=off
if wait_listening; then
  for i in $(seq 1 100); do [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HP/v2/health/ready")" = 200 ] && break; sleep 0.05; done
  probe_all "admin off"
  check grep -q "admin listener off" "$T/cnnd.log" -- "CNND_ADMIN_LISTEN=off: the log says the admin listener is off"
  check not curl -s -o /dev/null "http://127.0.0.1:$AP/admin/v1/models" -- "nothing listens on the admin port"
  cnnd_stop
else
  fail "cnnd with CNND_ADMIN_LISTEN=off and no token file did not start: $(tail -n 3 "$T/cnnd.log")"
  kill -KILL "$CNND_PID" 2>/dev/null
fi
finish
