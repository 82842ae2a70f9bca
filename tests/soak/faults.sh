#!/usr/bin/env bash
# Fault injection while a fine-tune job publishes a version (issue 12; not in `make test`):
#   1. write / fsync / rename failures of the publish, injected by an LD_PRELOAD shim
#      (fault_shim.c, built here) into a real cnnd: EIO on the first and a later write of
#      the temp model file, ENOSPC on a write, EIO on the fsync of the temp file and of its
#      folder, on the rename of the temp file and on the rename of the version folder;
#   2. a real full disk: the repository on a small tmpfs (needs root to mount; reported as
#      SKIP otherwise), filled up so the new version cannot be written;
#   3. kill -9 mid-publish, KILL_ROUNDS rounds (default 100): t_admin.sh's kill rounds.
# After every fault: the job is "failed" and its error and the log line "job finished ...
# state=failed" name the failure, the fault was really injected, the versions on disk are
# unchanged, no .publish- temp folder is left, only version folders were ever loaded, and the
# previous version is live and serves.  Then a job without a fault publishes and serves.
#   CNN=build/cnn CNND=build/cnnd bash tests/soak/faults.sh   (KILL_ROUNDS=0 skips part 3)
source "$(dirname "$0")/../integration/lib.sh"
itest_init faults
SOAK_DIR=$(cd "$(dirname "$0")" && pwd)
S="$ROOT/models/samples"
D="$T/data"
FASHION=${FASHION_DATA:-/usr/share/datasets/fashion-mnist}
mkdir -p "$T/repo/fashion/1" "$D"
cp "$ROOT/models/repository/fashion/1/model.cnn" "$T/repo/fashion/1/model.cnn"
"$PY" "$ROOT/tests/integration/fm_subset.py" "$D/small" --per-class 30 --data "$FASHION" >/dev/null ||
  { fail "fm_subset.py (Fashion-MNIST in $FASHION?)"; finish; }
cc -shared -fPIC -O2 -Wall -Wextra -Werror "$SOAK_DIR/fault_shim.c" -o "$T/fault_shim.so" -ldl ||
  { fail "fault_shim.c does not build"; finish; }
write_config
SPEC='{"dataset":{"format":"idx","path":"small"},"epochs":1,"batch_size":32,"validation_split":0,"gate":"min_accuracy"}'

contains() { [[ "$1" == *"$2"* ]]; }
no_temp() { ! ls -a "$1/fashion" | grep -q '^\.publish-'; }
versions() { ls "$1/fashion" | grep -E '^[1-9][0-9]*$' | sort -n | tr '\n' ' '; }
live_version() {
  curl -s -H 'Content-Type: image/png' --data-binary "@$S/bag.png" "$URL/v1/models/fashion/classify" |
    "$PY" -c 'import json,sys; print(json.load(sys.stdin)["version"])' 2>/dev/null
}
# run_job: submits SPEC, waits for a final state; JOB_STATE, JOB_ERROR, JOB_ID.
run_job() {
  local adm tok out i
  adm=$(admin_url)
  tok=$(cat "$T/admin.token")
  out=$(curl -s -H "Authorization: Bearer $tok" -H 'Content-Type: application/json' -d "$SPEC" \
    "$adm/admin/v1/models/fashion/finetune")
  JOB_ID=$("$PY" -c 'import json,sys; print(json.loads(sys.argv[1])["id"])' "$out" 2>/dev/null)
  JOB_STATE=none JOB_ERROR=
  [ -n "$JOB_ID" ] || { echo "submit answered: $out"; return; }
  for i in $(seq 1 1200); do
    out=$(curl -s -H "Authorization: Bearer $tok" "$adm/admin/v1/jobs/$JOB_ID")
    JOB_STATE=$("$PY" -c 'import json,sys; print(json.loads(sys.argv[1])["state"])' "$out" 2>/dev/null)
    case "$JOB_STATE" in queued | running) sleep 0.1 ;; *) break ;; esac
  done
  JOB_ERROR=$("$PY" -c 'import json,sys; print(json.loads(sys.argv[1])["error"] or "")' "$out" 2>/dev/null)
}

# fault_case NAME REPO WANT_TEXT [VAR=VALUE...]: one cnnd with the fault environment, one job.
fault_case() {
  local name=$1 repo=$2 want=$3 before after v loaded
  shift 3
  before=$(versions "$repo")
  local kv
  for kv in "$@"; do export "${kv?}"; done # for cnnd only (curl and python ignore the shim)
  cnnd_start --model-repository "$repo" --data-root "$D"
  for kv in "$@"; do unset "${kv%%=*}"; done
  [ -n "$CNND_PID" ] || return
  run_job
  after=$(versions "$repo")
  v=$(live_version)
  echo "fault $name: job $JOB_ID state=$JOB_STATE error=\"$JOB_ERROR\" versions before=[${before% }] after=[${after% }] live=$v"
  grep -E 'fault_shim:|job finished' "$T/cnnd.log" | sed 's/^/  log: /' | head -n 4
  check [ "$JOB_STATE" = failed ] -- "$name: the job failed"
  check contains "$JOB_ERROR" "$want" -- "$name: the job's error names the failure ($want)"
  check grep -qE "job finished id=$JOB_ID state=failed .*error=\".*$want" "$T/cnnd.log" -- \
    "$name: the log's 'job finished' line names the failure"
  case "$name" in disk-full*) ;; *)
    check grep -q 'fault_shim: ' "$T/cnnd.log" -- "$name: the fault was injected" ;;
  esac
  check [ "$after" = "$before" ] -- "$name: the versions on disk are unchanged"
  check no_temp "$repo" -- "$name: no temp version folder left"
  loaded=$(sed -nE 's/.*model loaded name=fashion version=([0-9]+).*/\1/p' "$T/cnnd.log" | sort -n | tr '\n' ' ')
  check [ "$loaded" = "$before" ] -- "$name: only the version folders were ever loaded ($loaded)"
  check not grep -q 'model load failed' "$T/cnnd.log" -- "$name: no load failure logged"
  check [ "$v" = "$(versions "$repo" | awk '{print $NF}')" ] -- "$name: the previous version ($v) is live and serves"
  cnnd_stop
}
# the shim's environment for the publish of one job
F=(LD_PRELOAD="$T/fault_shim.so" FAULT_MATCH=.publish-)

EIO="Input/output error"
fault_case write-first "$T/repo" "$EIO" "${F[@]}" FAULT_OP=write FAULT_NTH=1
fault_case write-later "$T/repo" "$EIO" "${F[@]}" FAULT_OP=write FAULT_NTH=3
fault_case write-enospc "$T/repo" "No space left on device" "${F[@]}" FAULT_OP=write FAULT_ERRNO=ENOSPC
fault_case fsync-file "$T/repo" "$EIO" "${F[@]}" FAULT_OP=fsync FAULT_NTH=1
fault_case fsync-folder "$T/repo" "$EIO" "${F[@]}" FAULT_OP=fsync FAULT_NTH=2
fault_case rename-file "$T/repo" "$EIO" "${F[@]}" FAULT_OP=renameat
fault_case rename-version "$T/repo" "$EIO" "${F[@]}" FAULT_OP=renameat2

# A real full disk: the repository on a 4 MiB tmpfs holding version 1 (1.8 MB) and a filler
# that leaves 256 KiB, less than a version needs.
FULL="$T/full"
mkdir -p "$FULL"
if mount -t tmpfs -o size=4m tmpfs "$FULL" 2>"$T/mount.err"; then
  trap 'umount "$FULL" 2>/dev/null; itest_cleanup' EXIT
  mkdir -p "$FULL/repo/fashion/1"
  cp "$T/repo/fashion/1/model.cnn" "$FULL/repo/fashion/1/"
  free_kb=$(df -k --output=avail "$FULL" | tail -n1)
  dd if=/dev/zero of="$FULL/filler" bs=1k count=$((free_kb - 256)) status=none
  echo "disk-full: $(df -h --output=size,used,avail "$FULL" | tail -n1)"
  fault_case disk-full "$FULL/repo" "No space left on device"
  rm -f "$FULL/filler" # room again: the same daemon setup publishes
  cnnd_start --model-repository "$FULL/repo" --data-root "$D"
  run_job
  check [ "$JOB_STATE" = succeeded ] -- "disk-full: after space is freed a job publishes (version $(live_version))"
  cnnd_stop
  umount "$FULL"
else
  echo "SKIP disk-full: cannot mount a tmpfs ($(cat "$T/mount.err")); run as root"
fi

# No fault: the same job publishes the next version, which serves.
want=$(($(versions "$T/repo" | awk '{print $NF}') + 1))
cnnd_start --data-root "$D"
run_job
check [ "$JOB_STATE" = succeeded ] -- "no fault: the job succeeded"
check [ "$(live_version)" = "$want" ] -- "no fault: version $want is live and serves"
cnnd_stop

# kill -9 at random moments of fine-tune-and-publish rounds (t_admin.sh's kill part).
if [ "${KILL_ROUNDS:-100}" -gt 0 ]; then
  echo "== kill -9 rounds: ADMIN_ONLY=kill ADMIN_KILL_ROUNDS=${KILL_ROUNDS:-100} tests/integration/t_admin.sh"
  if ADMIN_ONLY=kill ADMIN_KILL_ROUNDS=${KILL_ROUNDS:-100} CNN="$CNN" CNND="$CNND" \
    bash "$ROOT/tests/integration/t_admin.sh" >"$T/kill.out" 2>&1; then
    pass "kill -9 rounds: $(grep -E '^TOTAL' "$T/kill.out")"
  else
    fail "kill -9 rounds: $(grep -E '^(FAIL|TOTAL)' "$T/kill.out" | head -n 5)"
  fi
  grep -E '^kill -9 rounds:|^(PASS|FAIL)' "$T/kill.out" | tail -n 8
fi
finish
