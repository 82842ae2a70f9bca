#!/usr/bin/env bash
# Load-to-ready time and peak RSS of cnnd serving one model file, optionally after load:
#
#   bash bench/load_rss.sh MODEL_FILE [RUNS [SECTION.KEY=VALUE...]]   (a .cnn or a .onnx)
#   IMAGE=x.png LOAD="1 8" bash bench/load_rss.sh MODEL_FILE [RUNS [SECTION.KEY=VALUE...]]
#
# Each run copies the file into a fresh repository m/1/model.{cnn,onnx}, starts build/cnnd on
# ephemeral loopback ports (admin too) with the default config (SECTION.KEY=VALUE overrides
# it, e.g. batching.split=off), and measures the wall time from the start to the first 200
# of /v2/health/ready (polled every 10 ms), then reads VmHWM (peak RSS) and VmRSS (RSS once
# ready) from /proc.  Prints one line per run and the median:
#   load_rss file=model.onnx run=1 ready_ms=812 peak_rss_mb=301.4 ready_rss_mb=250.2
# With IMAGE (a PNG the model accepts), build/loadgen ($LOADGEN) then POSTs it to
# /v1/models/m/classify at each concurrency of LOAD (default "1 8") for LOAD_S seconds
# (default 3, no warm-up) and one line per concurrency gives the peak RSS so far (VmHWM:
# every forward pass up to then, split ones on all cores included) and the 1-minute load:
#   load_rss file=model.cnn run=1 conc=8 ok=41 errors=0 peak_rss_mb=412.0 rss_mb=405.3 load=3.10
source "$(dirname "$0")/../tests/integration/lib.sh"
f=${1:?usage: load_rss.sh MODEL_FILE [RUNS [SECTION.KEY=VALUE...]]}
runs=${2:-3}
shift $(( $# < 2 ? $# : 2 ))
case "$f" in *.onnx) ext=onnx ;; *.cnn) ext=cnn ;; *) echo "load_rss.sh: $f: not .cnn or .onnx" >&2; exit 2 ;; esac
f=$(cd "$(dirname "$f")" && pwd)/$(basename "$f")
LOADGEN=${LOADGEN:-build/loadgen}
case "$LOADGEN" in /*) ;; *) LOADGEN="$ROOT/$LOADGEN" ;; esac
if [ -n "${IMAGE:-}" ]; then
  [ -x "$LOADGEN" ] || { echo "load_rss.sh: $LOADGEN is not built (make build/loadgen)" >&2; exit 2; }
  [ -f "$IMAGE" ] || { echo "load_rss.sh: IMAGE=$IMAGE: no such file" >&2; exit 2; }
fi
itest_init load_rss
mkdir -p "$T/repo/m/1"
cp "$f" "$T/repo/m/1/model.$ext"
write_config "$@"
times=()
mb() { awk -v k="$1:" '$1 == k {printf "%.1f", $2 / 1024}' "/proc/$CNND_PID/status"; }
for r in $(seq 1 "$runs"); do
  : >"$T/cnnd.log"
  t0=$(date +%s%N)
  "$CNND" --config "$T/cnnd.conf" --listen 127.0.0.1 --port 0 --model-repository "$T/repo" \
    --admin-port 0 --admin-token-file "$T/admin.token" --data-root "$T" >>"$T/cnnd.log" 2>&1 &
  CNND_PID=$!
  PORT=
  for i in $(seq 1 6000); do
    [ -n "$PORT" ] || PORT=$(sed -nE 's/.*listening.* port=([0-9]+).*/\1/p' "$T/cnnd.log" | head -n1)
    if [ -n "$PORT" ] &&
       [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/v2/health/ready")" = 200 ]; then
      break
    fi
    cnnd_alive || { echo "load_rss.sh: cnnd exited"; tail -n 5 "$T/cnnd.log"; exit 1; }
    sleep 0.01
  done
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  echo "load_rss file=$(basename "$f") run=$r ready_ms=$ms peak_rss_mb=$(mb VmHWM) ready_rss_mb=$(mb VmRSS)"
  times+=("$ms")
  for c in ${IMAGE:+${LOAD:-1 8}}; do
    out=$("$LOADGEN" --url "http://127.0.0.1:$PORT/v1/models/m/classify" --file "$IMAGE" \
      --concurrency "$c" --duration "${LOAD_S:-3}" --warmup 0 --json)
    python3 - "$out" "$(basename "$f")" "$r" "$c" "$(mb VmHWM)" "$(mb VmRSS)" <<'PY'
import json, sys
j = json.loads(sys.argv[1])
print("load_rss file=%s run=%s conc=%s ok=%d errors=%d peak_rss_mb=%s rss_mb=%s load=%s" % (
    sys.argv[2], sys.argv[3], sys.argv[4], j["ok"], sum(j["errors"].values()),
    sys.argv[5], sys.argv[6], open("/proc/loadavg").read().split()[0]))
PY
  done
  cnnd_stop >/dev/null
done
printf '%s\n' "${times[@]}" | sort -n | awk -v f="$(basename "$f")" \
  '{a[NR]=$1} END {print "load_rss file=" f " runs=" NR " median_ready_ms=" a[int((NR+1)/2)]}'
