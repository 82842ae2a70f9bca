#!/usr/bin/env bash
# Load-to-ready time and peak RSS of cnnd serving one model file:
#
#   bash bench/load_rss.sh MODEL_FILE [RUNS]      (MODEL_FILE: a .cnn or a .onnx)
#
# Each run copies the file into a fresh repository m/1/model.{cnn,onnx}, starts build/cnnd on
# an ephemeral loopback port with the default config, and measures the wall time from the
# start to the first 200 of /v2/health/ready (polled every 10 ms), then reads VmHWM (peak
# RSS) and VmRSS (RSS once ready) from /proc.  Prints one line per run and the median:
#   load_rss file=model.onnx run=1 ready_ms=812 peak_rss_mb=301.4 ready_rss_mb=250.2
source "$(dirname "$0")/../tests/integration/lib.sh"
f=${1:?usage: load_rss.sh MODEL_FILE [RUNS]}
runs=${2:-3}
case "$f" in *.onnx) ext=onnx ;; *.cnn) ext=cnn ;; *) echo "load_rss.sh: $f: not .cnn or .onnx" >&2; exit 2 ;; esac
f=$(cd "$(dirname "$f")" && pwd)/$(basename "$f")
itest_init load_rss
mkdir -p "$T/repo/m/1"
cp "$f" "$T/repo/m/1/model.$ext"
write_config
times=()
for r in $(seq 1 "$runs"); do
  : >"$T/cnnd.log"
  t0=$(date +%s%N)
  "$CNND" --config "$T/cnnd.conf" --listen 127.0.0.1 --port 0 --model-repository "$T/repo" \
    >>"$T/cnnd.log" 2>&1 &
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
  rss=$(awk '/^VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$CNND_PID/status")
  now=$(awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$CNND_PID/status")
  echo "load_rss file=$(basename "$f") run=$r ready_ms=$ms peak_rss_mb=$rss ready_rss_mb=$now"
  times+=("$ms")
  cnnd_stop >/dev/null
done
printf '%s\n' "${times[@]}" | sort -n | awk -v f="$(basename "$f")" \
  '{a[NR]=$1} END {print "load_rss file=" f " runs=" NR " median_ready_ms=" a[int((NR+1)/2)]}'
