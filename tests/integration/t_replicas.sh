#!/usr/bin/env bash
# Two cnnd replicas behind Debian's nginx on loopback (no containers), sharing one model
# repository (poll_interval_s 2), with the shipped config/nginx.conf (its upstream servers,
# listen port and paths rewritten for loopback): requests alternate between the replicas
# (nginx's access log names the upstream of each; each replica's /metrics agrees); a
# fine-tune published through replica A's admin API is served by both within the poll
# interval (B runs with admin_listen = off); SIGKILL to B at concurrency 16 loses no request.
source "$(dirname "$0")/lib.sh"
itest_init replicas

NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
FASHION=${FASHION_DATA:-/usr/share/datasets/fashion-mnist}
POLL=2
if [ ! -x "$NGINX" ]; then
  fail "nginx not found (bash .ci/deps.sh test installs it; NGINX=path)"
  finish
fi
if [ ! -f "$FASHION/train-images-idx3-ubyte.gz" ]; then
  fail "Fashion-MNIST not found in $FASHION (FASHION_DATA)"
  finish
fi
S="$ROOT/models/samples"
D="$T/data"
mkdir -p "$T/repo/fashion/1" "$D"
cp "$ROOT/models/repository/fashion/1/model.cnn" "$T/repo/fashion/1/model.cnn"
# The fine-tune's dataset: 50 images per class with every label moved to the next class.
# The bundled model scores ~0% on it and any training raises that, so the job publishes
# under an absolute gate and under one relative to the parent alike: this test is about
# the replicas, not about training.
"$PY" "$ITEST_DIR/fm_subset.py" "$D/shifted" --per-class 50 >/dev/null || fail "fm_subset.py"
"$PY" - "$D/shifted/train-labels-idx1-ubyte" <<'EOF'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[8:] = bytes((x + 1) % 10 for x in b[8:])
open(p, "wb").write(b)
EOF

write_config models.poll_interval_s=$POLL
PIDS=()
NGINX_PID=
cleanup_all() {
  local p
  [ -n "$NGINX_PID" ] && kill -TERM "$NGINX_PID" 2>/dev/null && wait "$NGINX_PID" 2>/dev/null
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
  itest_cleanup
}
trap cleanup_all EXIT

# replica NAME FLAG...: starts cnnd NAME on an ephemeral port; sets RPID and RPORT.
replica() {
  local name=$1 i
  shift
  "$CNND" --config "$T/cnnd.conf" --listen 127.0.0.1 --port 0 --model-repository "$T/repo" \
    --data-root "$D" "$@" >"$T/$name.log" 2>&1 &
  RPID=$!
  PIDS+=("$RPID")
  RPORT=
  for i in $(seq 1 200); do
    RPORT=$(sed -nE 's/.*listening.* port=([0-9]+).*/\1/p' "$T/$name.log" | head -n1)
    [ -n "$RPORT" ] && break
    sleep 0.05
  done
  [ -n "$RPORT" ] || { fail "replica $name did not start"; tail -5 "$T/$name.log"; finish; }
}
replica A --admin-port 0 --admin-token-file "$T/admin.token"
A_PID=$RPID A_PORT=$RPORT
A_ADMIN=$(sed -nE 's/.*admin listening port=([0-9]+).*/\1/p' "$T/A.log" | head -n1)
replica B --admin-listen off --admin-token-file "$T/B.token"
B_PID=$RPID B_PORT=$RPORT
check grep -q "admin listener off" "$T/B.log" -- "replica B with admin_listen=off logs that its admin listener is off"
check not test -e "$T/B.token" -- "replica B (admin off) neither reads nor creates an admin token file"

# nginx with the shipped config, on a free loopback port.
N_PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$T/nginx/logs" "$T/nginx/temp"
sed -E -e "s/^( *server )cnnd1:8080/\\1127.0.0.1:$A_PORT/" -e "s/^( *server )cnnd2:8080/\\1127.0.0.1:$B_PORT/" \
  -e "s/^( *listen )8000;/\\1127.0.0.1:$N_PORT;/" "$ROOT/config/nginx.conf" >"$T/nginx/nginx.conf"
check grep -q "server 127.0.0.1:$B_PORT" "$T/nginx/nginx.conf" -- "config/nginx.conf rewritten for loopback replicas"
extra="daemon off;"
[ "$(id -u)" = 0 ] && extra="$extra user root;" # workers keep access to the 0700 temp dir
"$NGINX" -p "$T/nginx/" -c "$T/nginx/nginx.conf" -e "$T/nginx/logs/error.log" -g "$extra" \
  >"$T/nginx/stdout.log" 2>&1 &
NGINX_PID=$!
NURL="http://127.0.0.1:$N_PORT"
for i in $(seq 1 100); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$NURL/v2/health/ready")" = 200 ] && break
  sleep 0.05
done
if ! kill -0 "$NGINX_PID" 2>/dev/null; then
  fail "nginx did not start: $(cat "$T/nginx/stdout.log" "$T/nginx/logs/error.log" 2>/dev/null | head -5)"
  finish
fi
pass "nginx ($("$NGINX" -v 2>&1 | sed 's/.*: //')) proxies to replicas on ports $A_PORT and $B_PORT"

# --- 1. round robin: 10 classify requests, each on a new connection
classify_count() { curl -s "http://127.0.0.1:$1/metrics" | awk '$1 ~ /^cnnd_requests_total\{.*route="v1_classify".*status="200"/ {s += $NF} END {print s + 0}'; }
a0=$(classify_count "$A_PORT") b0=$(classify_count "$B_PORT")
: >"$T/codes"
n_before=$(wc -l <"$T/nginx/logs/access.log")
for i in $(seq 1 10); do
  curl -s -o /dev/null -w '%{http_code}\n' -H 'Content-Type: image/png' \
    --data-binary @"$S/sneaker.png" "$NURL/v1/models/fashion/classify" >>"$T/codes"
done
seq_ports=$(tail -n +$((n_before + 1)) "$T/nginx/logs/access.log" | sed -nE 's/.* upstream=127\.0\.0\.1:([0-9]+) .*/\1/p' |
  sed -e "s/^$A_PORT\$/A/" -e "s/^$B_PORT\$/B/" | tr -d '\n')
echo "upstream of each request (nginx access log): $seq_ports"
check test "$(sort -u "$T/codes" | tr -d '\n')" = 200 -- "10 classify requests through nginx: all 200"
check test "$seq_ports" = ABABABABAB -o "$seq_ports" = BABABABABA -- "requests alternate between the replicas ($seq_ports)"
a1=$(classify_count "$A_PORT") b1=$(classify_count "$B_PORT")
echo "classify requests counted on /metrics: replica A +$((a1 - a0)), replica B +$((b1 - b0))"
check test $((a1 - a0)) = 5 -a $((b1 - b0)) = 5 -- "each replica's /metrics counts 5 of the 10"
expect_admin=$(curl -s -o /dev/null -w '%{http_code}' "$NURL/admin/v1/jobs")
check test "$expect_admin" = 404 -- "the admin API is not reachable through nginx (404)"

# --- 2. a fine-tune published through A's admin API, served by both
TOKEN=$(cat "$T/admin.token")
AURL="http://127.0.0.1:$A_ADMIN"
curl -s -o "$T/job.json" -w '%{http_code}' -H "Authorization: Bearer $TOKEN" \
  -d '{"dataset":{"format":"idx","path":"shifted"},"epochs":2,"learning_rate":0.05,"seed":3}' \
  "$AURL/admin/v1/models/fashion/finetune" >"$T/job.code"
check test "$(cat "$T/job.code")" = 202 -- "fine-tune submitted to replica A's admin API -> 202"
state=
for i in $(seq 1 600); do
  curl -s -H "Authorization: Bearer $TOKEN" "$AURL/admin/v1/jobs/1" >"$T/job.json"
  state=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["state"])' "$T/job.json" 2>/dev/null)
  case "$state" in queued | running | "") sleep 0.1 ;; *) break ;; esac
done
t_done=$(date +%s.%N)
V=$("$PY" -c 'import json,sys; j=json.load(open(sys.argv[1])); print(j.get("version") or "")' "$T/job.json")
check test "$state" = succeeded -a -n "$V" -- "the job succeeded and published version ${V:-?} ($(head -c 200 "$T/job.json" | tr -d '\n' | cut -c1-120)...)"
live_of() { curl -s "http://127.0.0.1:$1/v1/models" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["models"][0]["live_version"])' 2>/dev/null; }
seen_b=
for i in $(seq 1 100); do
  if [ "$(live_of "$B_PORT")" = "$V" ]; then seen_b=$(date +%s.%N); break; fi
  sleep 0.05
done
lag=$(awk -v a="$t_done" -v b="${seen_b:-0}" 'BEGIN{printf "%.2f", b - a}')
echo "replica A live version: $(live_of "$A_PORT"); replica B took version $V ${lag} s after the job ended (poll_interval_s=$POLL)"
check test "$(live_of "$A_PORT")" = "$V" -- "replica A (which ran the job) serves version $V at once"
check test -n "$seen_b" -- "replica B serves version $V"
# main's loop looks at the poll timer once a second: scans come every poll_interval_s to
# poll_interval_s + 1 s; then the version is loaded.
check awk -v l="$lag" -v p="$POLL" 'BEGIN{exit !(l >= 0 && l <= p + 1.5)}' -- \
  "replica B took it within the poll interval ($lag s <= $POLL s + 1 s tick + 0.5 s to load)"
: >"$T/versions"
for i in $(seq 1 6); do
  curl -s -H 'Content-Type: image/png' --data-binary @"$S/sneaker.png" "$NURL/v1/models/fashion/classify" |
    "$PY" -c 'import json,sys; print(json.load(sys.stdin)["version"])' >>"$T/versions"
done
check test "$(sort -u "$T/versions" | tr -d '\n')" = "$V" -- "6 requests through nginx (both replicas): all answered by version $V"

# --- 3. SIGKILL to replica B under load at concurrency 16
CNND_URL="$NURL" py check_replicas "$NURL" "$S/sneaker.png" 16 4 1.5 "$B_PID"
wait "$B_PID" 2>/dev/null
retried=$(grep -c "upstream=127.0.0.1:$B_PORT, 127.0.0.1:$A_PORT" "$T/nginx/logs/access.log")
echo "requests nginx retried on A after B failed (access log): $retried"
tail -n 3 "$T/nginx/logs/error.log" | sed 's/^/  nginx error.log: /'
check test "$(live_of "$A_PORT")" = "$V" -- "replica A still serves after B was killed"
finish
