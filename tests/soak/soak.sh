#!/usr/bin/env bash
# Soak (issue 12; not in `make test`): SOAK_SECONDS (default 600) of mixed load on one cnnd
# serving the bundled fashion model:
#   - loadgen: 4 connections classifying a PNG (/v1) and 2 sending v2 binary infers;
#   - mixed.py: v2 JSON and binary infers and malformed requests (each with its status);
#   - every SWAP_S (default 20) s a new version folder published and SIGHUP (a swap);
#   - every JOB_S (default 120) s a fine-tune job (1 epoch, 300 images) that publishes.
# Every SAMPLE_S (default 10) s: RSS, open fds and threads of cnnd, whether a job trains,
# swaps and jobs done so far.  Prints the status counts, p50/p99, the RSS/fd timeline, and
# checks, between samples with no job training: RSS growth after the warm-up < 5% -- the
# baseline is the first such sample after the first WARMUP_S (default a fifth of the run)
# once a swap and a job have finished, and every later one (the last and the highest) must
# stay within 5% of it -- and fds at the end <= fds at the baseline + 2,
# no 5xx but 503, no failed request that should have succeeded, every swap and job went
# live, a clean SIGTERM exit.
#   make soak SOAK_SECONDS=60   (CNN, CNND, LOADGEN: paths of build/cnn, build/cnnd, build/loadgen)
source "$(dirname "$0")/../integration/lib.sh"
itest_init soak
SOAK_DIR=$(cd "$(dirname "$0")" && pwd)
DUR=${SOAK_SECONDS:-600}
SWAP_S=${SWAP_S:-20}
JOB_S=${JOB_S:-120}
SAMPLE_S=${SAMPLE_S:-10}
WARMUP_S=${WARMUP_S:-$((DUR / 5))}
LOADGEN=${LOADGEN:-$ROOT/build/loadgen}
[ -x "$LOADGEN" ] || { fail "$LOADGEN is not built (make build/loadgen)"; finish; }
S="$ROOT/models/samples"
D="$T/data"
mkdir -p "$T/repo/fashion/1" "$D"
cp "$ROOT/models/repository/fashion/1/model.cnn" "$T/repo/fashion/1/model.cnn"
"$PY" "$ROOT/tests/integration/fm_subset.py" "$D/small" --per-class 30 \
  --data "${FASHION_DATA:-/usr/share/datasets/fashion-mnist}" >/dev/null || { fail "fm_subset.py"; finish; }
for seed in 1 2; do model_file fashion_cnn "$seed" >/dev/null || { fail "cnn init"; finish; }; done
write_config log.log_level=warn batching.max_queue_size=4096
cnnd_start --data-root "$D" || finish
ADM=$(admin_url)
TOK=$(cat "$T/admin.token")
echo "soak: ${DUR}s on port $PORT (pid $CNND_PID), swaps every ${SWAP_S}s, jobs every ${JOB_S}s, warm-up ${WARMUP_S}s; $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"

sample() { # t rss_kb fds threads job_training swaps_done jobs_done
  echo "$1 $(awk '/^VmRSS:/ {print $2}' "/proc/$CNND_PID/status") $(ls "/proc/$CNND_PID/fd" | wc -l) $(awk '/^Threads:/ {print $2}' "/proc/$CNND_PID/status") $([ -n "$job_id" ] && echo 1 || echo 0) $swaps $jobs_done"
}
newest() { ls "$T/repo/fashion" | grep -E '^[1-9][0-9]*$' | sort -n | tail -n1; }
live_version() {
  curl -s -H 'Content-Type: image/png' --data-binary "@$S/bag.png" "$URL/v1/models/fashion/classify" |
    "$PY" -c 'import json,sys; print(json.load(sys.stdin)["version"])' 2>/dev/null
}

t0=$(date +%s)
"$LOADGEN" --url "$URL/v1/models/fashion/classify" --file "$S/bag.png" --content-type image/png \
  --concurrency 4 --duration "$DUR" --json >"$T/classify.json" 2>"$T/classify.err" &
lg1=$!
"$LOADGEN" --url "$URL/v2/models/fashion/infer" --v2 --file "$S/sandal.png" \
  --content-type image/png --concurrency 2 --duration "$DUR" --json >"$T/v2bin.json" 2>"$T/v2bin.err" &
lg2=$!
"$PY" "$SOAK_DIR/mixed.py" "$URL" "$DUR" "$S/bag.png" "$T/mixed.json" 2>"$T/mixed.err" &
mx=$!

: >"$T/samples"
# the first job inside the warm-up, so a trainer's memory is part of the baseline
swaps=0 swap_bad=0 jobs=0 jobs_done=0 job_bad=0 next_swap=$SWAP_S next_sample=0 seed=1
next_job=$((JOB_S / 2 < WARMUP_S / 2 ? JOB_S / 2 : WARMUP_S / 2))
job_id=
while :; do
  el=$(($(date +%s) - t0))
  [ "$el" -ge "$DUR" ] && break
  if [ "$el" -ge "$next_sample" ]; then
    sample "$el" >>"$T/samples"
    next_sample=$((next_sample + SAMPLE_S))
  fi
  if [ "$el" -ge "$next_swap" ]; then # publish a version folder as a trainer would, then SIGHUP
    v=$(($(newest) + 1))
    seed=$((3 - seed))
    mkdir -p "$T/repo/fashion/.tmp-$v"
    cp "$T/cache/fashion_cnn-$seed.cnn" "$T/repo/fashion/.tmp-$v/model.cnn"
    mv "$T/repo/fashion/.tmp-$v" "$T/repo/fashion/$v"
    kill -HUP "$CNND_PID"
    sleep 1.5
    lv=$(live_version)
    swaps=$((swaps + 1))
    # a job may have published v + 1 meanwhile: live is v or newer
    [ -n "$lv" ] && [ "$lv" -ge "$v" ] 2>/dev/null ||
      { swap_bad=$((swap_bad + 1)); echo "swap to $v: live version is '$lv'"; }
    for old in $(ls "$T/repo/fashion" | grep -E '^[1-9][0-9]*$' | sort -n | head -n -3); do
      rm -rf "${T:?}/repo/fashion/$old" # keep the disk small; loaded versions live in memory
    done
    next_swap=$((next_swap + SWAP_S))
  fi
  if [ -n "$job_id" ]; then # the job submitted last: succeeded and live?
    st=$(curl -s -H "Authorization: Bearer $TOK" "$ADM/admin/v1/jobs/$job_id" |
      "$PY" -c 'import json,sys; j=json.load(sys.stdin); print(j["state"], j.get("version") or 0)' 2>/dev/null)
    case "$st" in
      queued* | running*) ;;
      succeeded*) job_id= jobs_done=$((jobs_done + 1)) ;;
      *) job_bad=$((job_bad + 1)); echo "job $job_id ended: $st"; job_id= jobs_done=$((jobs_done + 1)) ;;
    esac
  elif [ "$el" -ge "$next_job" ]; then
    out=$(curl -s -H "Authorization: Bearer $TOK" -H 'Content-Type: application/json' \
      -d '{"dataset":{"format":"idx","path":"small"},"epochs":1,"batch_size":32,"validation_split":0,"gate":"min_accuracy"}' \
      "$ADM/admin/v1/models/fashion/finetune")
    job_id=$("$PY" -c 'import json,sys; print(json.loads(sys.argv[1])["id"])' "$out" 2>/dev/null)
    jobs=$((jobs + 1))
    [ -n "$job_id" ] || { job_bad=$((job_bad + 1)); echo "job submit answered: $out"; }
    next_job=$((next_job + JOB_S))
  fi
  sleep 0.5
done
wait "$lg1" "$lg2" "$mx"
for i in $(seq 1 600); do # the last job finishes
  [ -z "$job_id" ] && break
  st=$(curl -s -H "Authorization: Bearer $TOK" "$ADM/admin/v1/jobs/$job_id" |
    "$PY" -c 'import json,sys; print(json.load(sys.stdin)["state"])' 2>/dev/null)
  case "$st" in queued | running) sleep 0.2 ;; succeeded) job_id= ;;
    *) job_bad=$((job_bad + 1)); echo "job $job_id ended: $st"; job_id= ;; esac
done
sleep 2 # replies flushed, freed versions trimmed (main's 1 s tick)
sample "$(($(date +%s) - t0))" >"$T/idle"

# RSS is compared between samples in one state: under load, no job training (a trainer's
# buffers come and go with the job), after the daemon has done everything the run repeats
# (a swap and a job finished).  The baseline is the first such sample after the warm-up;
# the last one and the highest one after it are compared with it.
echo "== RSS and fds over time under load (s, MB, fds, threads, job training, swaps, jobs done)"
awk '{printf "t=%-5s rss_mb=%-7.1f fds=%-4s threads=%-3s job=%s swaps=%-3s jobs_done=%s\n", $1, $2 / 1024, $3, $4, $5, $6, $7}' "$T/samples"
awk '{printf "idle after the load: t=%s rss_mb=%.1f fds=%s threads=%s\n", $1, $2 / 1024, $3, $4}' "$T/idle"
steady='$5 == 0 && $6 >= 1 && $7 >= 1' # job idle, a swap and a job done
read -r w_t w_rss w_fds <<<"$(awk -v w="$WARMUP_S" "\$1 >= w && $steady {print \$1, \$2, \$3; exit}" "$T/samples")"
read -r e_t e_rss e_fds <<<"$(awk "$steady {t = \$1; r = \$2; f = \$3} END {print t, r, f}" "$T/samples")"
read -r p_t p_rss <<<"$(awk -v w="${w_t:-0}" "\$1 >= w && $steady && \$2 > m {m = \$2; t = \$1} END {print t, m}" "$T/samples")"
max_rss=$(awk 'BEGIN {m = 0} {if ($2 > m) m = $2} END {print m}' "$T/samples")
if [ -z "$w_rss" ]; then # a run too short for a steady sample after the warm-up
  w_t=none w_rss=0 w_fds=0 growth=none peak=none
  fail "no sample after the warm-up with a swap and a job done and no job training: raise SOAK_SECONDS or JOB_S"
else
  growth=$(awk -v a="$w_rss" -v b="$e_rss" 'BEGIN {printf "%.2f", (b - a) * 100 / a}')
  peak=$(awk -v a="$w_rss" -v b="$p_rss" 'BEGIN {printf "%.2f", (b - a) * 100 / a}')
fi
echo "== RSS growth after the warm-up (job idle): ${w_rss} kB at t=${w_t}s -> ${e_rss} kB at t=${e_t}s (${growth}%); highest ${p_rss} kB at t=${p_t}s (${peak}%); max ${max_rss} kB (with a job training); fds ${w_fds} -> ${e_fds}"
echo "== loadgen /v1 classify: $(cat "$T/classify.json")"
echo "== loadgen /v2 binary:   $(cat "$T/v2bin.json")"
echo "== mixed.py: $(tr -d '\n' <"$T/mixed.json" | tr -s ' ')"
echo "== swaps: $swaps (not live after 1.5 s: $swap_bad); jobs: $jobs (failed: $job_bad)"

j() { "$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); print($1)" "$2"; }
[ "$growth" = none ] ||
  check awk -v g="$growth" 'BEGIN {exit !(g < 5)}' -- "RSS growth after the warm-up ${growth}% < 5%"
[ "$growth" = none ] ||
  check awk -v g="$peak" 'BEGIN {exit !(g < 5)}' -- "every job-idle sample after the baseline within 5% of it (highest +${peak}%)"
[ "$growth" = none ] || check [ "$e_fds" -le $((w_fds + 2)) ] -- "fds stable: $w_fds at the baseline, $e_fds at the end of the load"
for f in classify v2bin; do
  check [ "$(j 'sum(v for k,v in d["errors"].items())' "$T/$f.json")" = 0 ] -- \
    "$f: every request succeeded ($(j 'd["ok"]' "$T/$f.json") ok, errors $(j 'd["errors"]' "$T/$f.json"))"
done
check [ "$(j 'd["unexpected"]' "$T/mixed.json")" = 0 ] -- \
  "mixed: every request got its expected status ($(j 'd["requests"]' "$T/mixed.json") requests)"
check [ "$(j 'sum(v for k,v in d["counts"].items() if k.startswith("no_json_error"))' "$T/mixed.json")" = 0 ] -- \
  "mixed: every 4xx has a JSON {\"error\": ...} body"
check [ "$(j 'sum(v for k,v in d["counts"].items() if k.split()[-1][0]=="5" and k.split()[-1]!="503")' "$T/mixed.json")" = 0 ] -- \
  "mixed: no 5xx but 503"
all_good() { [ "$1" -gt 0 ] && [ "$2" = 0 ]; }
check all_good "$swaps" "$swap_bad" -- "$swaps SIGHUP swaps, each live within 1.5 s"
check all_good "$jobs" "$job_bad" -- "$jobs fine-tune jobs published"
# every request the daemon answered, by its own count (all clients, all routes)
curl -s "$URL/metrics" | grep '^cnnd_requests_total' >"$T/requests.txt"
echo "== cnnd_requests_total by status: $(awk '{split($1, a, "status=\""); split(a[2], b, "\""); n[b[1]] += $2} END {for (s in n) printf "%s=%d ", s, n[s]}' "$T/requests.txt")"
no_5xx() { # no row with a 5xx status other than 503 and a nonzero count
  awk '{split($1, a, "status=\""); s = a[2] + 0; if (s >= 500 && s != 503 && $2 > 0) bad = 1}
       END {exit bad}' "$1"
}
check no_5xx "$T/requests.txt" -- "/metrics: no 5xx other than 503 answered"
cnnd_stop
finish
