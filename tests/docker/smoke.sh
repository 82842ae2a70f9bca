#!/usr/bin/env bash
# `make docker`: builds the top-level Dockerfile and runs it for real with podman through
# docker-smoke (../shared/tools/docker-smoke: Debian base images made locally, no registry),
# then checks the image: size (goal < 120 MB), USER, HEALTHCHECK, a curl classification of
# models/samples/sneaker.png, the admin API with its created token, `podman stop` with 32
# requests in flight (all 32 answered 200, exit code 0), and a Kubernetes-like run (the init
# container's seeding, read-only root, the token a root-owned file on a read-only mount in a
# Secret's ..data layout; the same file on a writable mount is refused).  Needs root.
# Exit 0 all passed, 1 a check failed, 77 skipped (no docker-smoke, or podman cannot run
# here: said why).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
T0=$(date +%s)
TAG=${CNND_IMAGE:-localhost/cnnd:latest}
S=$ROOT/models/samples
NPASS=0 NFAIL=0
pass() { NPASS=$((NPASS + 1)); echo "PASS docker: $*"; }
fail() { NFAIL=$((NFAIL + 1)); echo "FAIL docker: $*"; }
check() {
  local args=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do args+=("$1"); shift; done
  shift
  if "${args[@]}"; then pass "$*"; else fail "$*"; fi
}
skip() { echo "SKIP docker: $*"; exit 77; }

SMOKE=${DOCKER_SMOKE:-}
for c in "$ROOT/../shared/tools/docker-smoke" /work/shared/tools/docker-smoke "$(command -v docker-smoke)"; do
  [ -z "$SMOKE" ] && [ -n "$c" ] && [ -x "$c" ] && SMOKE=$c
done
[ -n "$SMOKE" ] || skip "docker-smoke not found (../shared/tools/docker-smoke; DOCKER_SMOKE=path)"
[ "$(id -u)" = 0 ] || skip "needs root (rootful podman)"

# ---- 1. build, start, health (docker-smoke)
echo "== docker-smoke $ROOT 8080 /v2/health/ready (tag $TAG)"
DOCKER_SMOKE_TAG=$TAG "$SMOKE" "$ROOT" 8080 /v2/health/ready 2>&1 | tee /tmp/cnnd-docker-smoke.$$.log
rc=${PIPESTATUS[0]}
out=$(cat /tmp/cnnd-docker-smoke.$$.log)
rm -f /tmp/cnnd-docker-smoke.$$.log
if [ "$rc" = 2 ]; then skip "docker-smoke could not set up podman here (exit 2; see above)"; fi
check test "$rc" = 0 -- "docker-smoke: $(echo "$out" | tail -n1)"
[ "$rc" = 0 ] || { echo "== docker: $NPASS passed, $NFAIL failed"; exit 1; }
export CONTAINERS_CONF=${DOCKER_SMOKE_CACHE:-/var/cache/docker-smoke}/containers.conf
size=$(podman image inspect -f '{{.Size}}' "$TAG")
size_mb=$(awk -v b="$size" 'BEGIN{printf "%.1f", b/1000/1000}')
user=$(podman image inspect -f '{{.Config.User}}' "$TAG")
check awk -v s="$size" 'BEGIN{exit !(s < 120e6)}' -- "image size $size_mb MB < 120 MB"
check test "$user" = cnnd:cnnd -- "USER $user (not root)"
echo "$out" | grep -q '^healthcheck: .*-> healthy' && pass "HEALTHCHECK $(echo "$out" | sed -n 's/^healthcheck: //p')" ||
  fail "HEALTHCHECK not healthy: $(echo "$out" | grep '^healthcheck')"

# ---- 2. run it: classification, admin, health, 32 requests in flight across podman stop
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
W=$(mktemp -d /tmp/cnnd-docker.XXXXXX)
NAMES=()
cleanup() {
  local n
  for n in "${NAMES[@]}"; do podman rm -f "$n" >/dev/null 2>&1; done
  rm -rf "$W"
}
trap cleanup EXIT
# start NAME RUN-ARG...: runs the image detached with the ports on 127.0.0.1; sets P, PA.
start() {
  local name=$1
  shift
  P=$(free_port) PA=$(free_port)
  NAMES+=("$name")
  # (podman 4.3 still complains that there is no systemd to run health timers: kept apart)
  podman run -d --name "$name" --health-interval=disable -p "127.0.0.1:$P:8080" \
    -p "127.0.0.1:$PA:8081" "$@" "$TAG" >/dev/null 2>>"$W/podman.err" || cat "$W/podman.err"
}
wait_ready() { # wait_ready PORT NAME: 0 once /v2/health/ready is 200 (at most 30 s)
  local i
  for i in $(seq 1 300); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/v2/health/ready")" = 200 ] && return 0
    [ "$(podman inspect -f '{{.State.Status}}' "$2" 2>/dev/null)" = running ] || return 1
    sleep 0.1
  done
  return 1
}

C=cnnd-smoke-$$
start "$C"
check wait_ready "$P" "$C" -- "container $C ready on 127.0.0.1:$P"
check podman healthcheck run "$C" -- "podman healthcheck run: healthy"
uid=$(podman exec "$C" id -u)
check test "$uid" != 0 -- "cnnd runs as uid $uid in the container"
ans=$(curl -s -H 'Content-Type: image/png' --data-binary @"$S/sneaker.png" "http://127.0.0.1:$P/v1/models/fashion/classify?top_k=2")
echo "classify sneaker.png: $ans"
top=$(echo "$ans" | python3 -c 'import json,sys; print(json.load(sys.stdin)["results"][0]["predictions"][0]["label"])' 2>/dev/null)
check test "$top" = Sneaker -- "curl classification of models/samples/sneaker.png in the container: $top"
tok=$(podman exec "$C" cat /var/lib/cnnd/admin.token)
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $tok" "http://127.0.0.1:$PA/admin/v1/models")
check test "$code" = 200 -- "admin API on the published admin port with the token cnnd created: $code"

# 32 clients whose uploads take ~5 s (curl --limit-rate); once cnnd counts all 32 in flight
# (cnnd_requests_in_flight on /metrics, 33 with the metrics request itself) podman stop sends
# SIGTERM; cnnd drains them, answers all 32 and exits 0.
for i in $(seq 1 32); do
  curl -s -o /dev/null -w '%{http_code}\n' --limit-rate 100 -H 'Content-Type: image/png' \
    --data-binary @"$S/sneaker.png" "http://127.0.0.1:$P/v1/models/fashion/classify" >"$W/code.$i" &
done
for i in $(seq 1 60); do
  n=$(curl -s "http://127.0.0.1:$P/metrics" | awk '$1 == "cnnd_requests_in_flight" {print $2}')
  [ "${n:-0}" -ge 33 ] && break
  sleep 0.05
done
echo "cnnd_requests_in_flight before podman stop: $n (32 classify + this /metrics request)"
t_stop=$(date +%s.%N)
podman stop -t 30 "$C" >/dev/null 2>>"$W/podman.err"
wait
stop_s=$(awk -v a="$t_stop" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b - a}')
codes=$(cat "$W"/code.* | sort | uniq -c | awk '{printf "%s%s x %s", (NR > 1 ? ", " : ""), $1, $2}')
exit_code=$(podman inspect -f '{{.State.ExitCode}}' "$C")
echo "podman stop took $stop_s s; the 32 requests in flight: $codes; exit code $exit_code"
podman logs "$C" 2>&1 | grep -E 'draining|stopped' | sed 's/^/  cnnd log: /'
check test "$(cat "$W"/code.* | grep -c '^200$')" = 32 -- "podman stop with 32 requests in flight: all 32 answered 200 ($codes)"
check test "$exit_code" = 0 -- "the container exited with code $exit_code after the drain"
logs_have() { podman logs "$1" 2>&1 | grep "$2" >/dev/null; } # no -q: pipefail + SIGPIPE
check logs_have "$C" 'draining signal=Terminated in_flight=32' -- "cnnd saw SIGTERM with 32 requests in flight"

# ---- 3. as in Kubernetes: read-only root file system, the token a Secret volume file
# (root's, mode 0644, NAME -> ..data/NAME -> ..TIMESTAMP/NAME) on a read-only mount.
mkdir -p "$W/secret/..2026_12_06_00_00_00.1" && chmod 755 "$W/secret" "$W/secret/..2026_12_06_00_00_00.1"
echo "k8s-secret-token-0123456789abcdef" >"$W/secret/..2026_12_06_00_00_00.1/token"
chmod 644 "$W/secret/..2026_12_06_00_00_00.1/token"
ln -s ..2026_12_06_00_00_00.1 "$W/secret/..data"
ln -s ..data/token "$W/secret/token"
# The repository volume, seeded by the Deployment's init container command (config/k8s).
mkdir -p "$W/repo" && chown 10001:10001 "$W/repo"
init=$(python3 -c 'import sys, yaml; d = [x for x in yaml.safe_load_all(open(sys.argv[1])) if x][0]
print(d["spec"]["template"]["spec"]["initContainers"][0]["command"][2])' "$ROOT/config/k8s/deployment.yaml" 2>/dev/null)
podman run --rm --read-only -v "$W/repo:/seed" --entrypoint /bin/sh "$TAG" -c "$init" 2>>"$W/podman.err"
check test -f "$W/repo/fashion/1/model.cnn" -a -f "$W/repo/.seeded" -- "the Deployment's init container command seeds an empty repository volume"
K=cnnd-smoke-k8s-$$
start "$K" --read-only -v "$W/secret:/etc/cnnd/admin:ro" -e CNND_ADMIN_TOKEN_FILE=/etc/cnnd/admin/token \
  -v "$W/repo:/var/lib/cnnd/repository" -e CNND_MODEL_REPOSITORY=/var/lib/cnnd/repository
check wait_ready "$P" "$K" -- "read-only root, the seeded repository volume, token from a root-owned read-only Secret-like mount: ready"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer k8s-secret-token-0123456789abcdef" "http://127.0.0.1:$PA/admin/v1/models")
check test "$code" = 200 -- "the admin API accepts the token of the read-only mount: $code"
podman stop -t 10 "$K" >/dev/null 2>>"$W/podman.err"
K2=cnnd-smoke-rw-$$
start "$K2" -v "$W/secret:/etc/cnnd/admin:rw" \
  -e CNND_ADMIN_TOKEN_FILE=/etc/cnnd/admin/..2026_12_06_00_00_00.1/token
for i in $(seq 1 100); do [ "$(podman inspect -f '{{.State.Status}}' "$K2")" = exited ] && break; sleep 0.1; done
rw_exit=$(podman inspect -f '{{.State.ExitCode}}' "$K2")
echo "same token file mounted read-write: exit $rw_exit, $(podman logs "$K2" 2>&1 | grep -o 'admin token file[^"]*' | head -n1)"
check test "$rw_exit" = 1 -- "the same 0644 file on a writable mount is refused (exit 1)"

echo "== docker: $NPASS passed, $NFAIL failed in $(($(date +%s) - T0)) s (image $TAG, $size_mb MB)"
[ "$NFAIL" = 0 ]
