#!/usr/bin/env bash
# Admin listener and fine-tune jobs (issue 5), on the bundled fashion model and small
# Fashion-MNIST subsets written under a temp data root: auth (401 cases, token never
# logged), dataset path escapes, a fine-tune queued -> running -> succeeded with per-epoch
# progress and the new version served, a 3-class head >= 95%, rollback by activate, a gate
# that cannot be met, cancel mid-epoch, example collection, /metrics through promtool,
# 16 clients classifying while a job publishes (p50/p99 printed), and kill -9 rounds
# (ADMIN_KILL_ROUNDS, default 8) after each of which the live version loads and serves.
source "$(dirname "$0")/lib.sh"
itest_init admin
t_start=$(date +%s)

FASHION=${FASHION_DATA:-/usr/share/datasets/fashion-mnist}
if [ ! -f "$FASHION/train-images-idx3-ubyte.gz" ]; then
  fail "Fashion-MNIST not found in $FASHION (FASHION_DATA)"
  finish
fi
ROUNDS=${ADMIN_KILL_ROUNDS:-8}
S="$ROOT/models/samples"
D="$T/data"
mkdir -p "$T/repo/fashion/1" "$D" "$T/outside"
# ADMIN_MODEL: another model file to fine-tune instead of the bundled one (28x28 gray).
cp "${ADMIN_MODEL:-$ROOT/models/repository/fashion/1/model.cnn}" "$T/repo/fashion/1/model.cnn"

# Datasets (first N training images of each class): fm 150/class, big 600/class (for the
# cancel), small 30/class (kill rounds), three = Trouser, Bag, Ankle boot as class folders.
mk() { "$PY" "$ITEST_DIR/fm_subset.py" "$@" >/dev/null || fail "fm_subset.py $*"; }
mk "$D/fm" --per-class 150
mk "$D/big" --per-class 600
mk "$D/small" --per-class 30 --skip 150
mk "$D/three" --per-class 200 --classes 1,8,9 --format folder
# Outside the root: a valid dataset, reached by a symlink and by a symlinked class folder.
mk "$T/outside/fm" --per-class 20
ln -s ../outside "$D/escape"
ln -s fm "$D/fmlink" # inside the root, but a symlink: openat2 (RESOLVE_NO_SYMLINKS) refuses it
mkdir -p "$D/symset/Bag"
ln -s ../../../outside/fm "$D/symset/Trouser"

write_config training.job_queue_size=1 training.max_examples=4 training.example_max_bytes=64k
start() {
  cnnd_start --data-root "$D" "$@" || finish
  export CNND_ADMIN_URL
  CNND_ADMIN_URL=$(admin_url)
  export CNND_ADMIN_TOKEN_FILE="$T/admin.token"
}
if [ "${ADMIN_ONLY:-}" != kill ]; then # ADMIN_ONLY=kill: only the kill rounds
start
check grep -q "admin token source=file file=$T/admin.token created=1" "$T/cnnd.log" -- \
  "first start: the token file is created and its path (not the token) logged"
A=(--repo "$T/repo" --samples "$S" --data "$D" --outside "$T/outside" --log "$T/cnnd.log" --token-file "$T/admin.token")

py check_admin auth "${A[@]}"
py check_admin paths "${A[@]}"
py check_admin finetune "${A[@]}"
py check_admin gate "${A[@]}"
v_tuned=$(ls "$T/repo/fashion" | grep -E '^[0-9]+$' | sort -n | tail -n1)
py check_admin head "${A[@]}"
py check_admin rollback "${A[@]}" --to "$v_tuned"
py check_admin reject "${A[@]}"
py check_admin cancel "${A[@]}"
py check_admin examples "${A[@]}"
py check_admin samehead "${A[@]}" --fashion "$FASHION"
py check_admin manage "${A[@]}"
py check_client_admin

curl -s "$URL/metrics" >"$T/metrics.txt"
if promtool check metrics <"$T/metrics.txt" >"$T/promtool.out" 2>&1; then
  pass "promtool check metrics passes with the training metrics"
else
  fail "promtool check metrics: $(head -c 600 "$T/promtool.out")"
fi
for m in cnnd_train_steps_total cnnd_train_loss cnnd_train_accuracy 'cnnd_jobs{state="rejected"}' cnnd_publish_total; do
  check grep -qF "$m" "$T/metrics.txt" -- "/metrics has $m"
done

# 16 clients classify while a job trains and publishes.  Its epochs are chosen from job 1's
# speed so that it trains about 3 s when alone (1 epoch for the bundled-size model, more for
# a tiny one); under the load it takes longer.
epochs=$(curl -s -H "Authorization: Bearer $(cat "$T/admin.token")" "$CNND_ADMIN_URL/admin/v1/jobs/1" |
  "$PY" -c 'import json,sys; print(max(1, min(20, round(3 * json.load(sys.stdin)["items_per_s"] / 1200))))')
py check_admin_load "$S/bag.png" 16 4 \
  "{\"dataset\":{\"format\":\"idx\",\"path\":\"fm\"},\"epochs\":${epochs:-1},\"validation_split\":0.2,\"seed\":11,\"gate\":\"min_accuracy\"}"
cnnd_stop

# Restart: the token file is read, not replaced.
start
check grep -q "admin token source=file file=$T/admin.token\$" "$T/cnnd.log" -- \
  "restart: the existing token file is used"
cnnd_stop

# CNND_ADMIN_TOKEN wins over the file (none is made), is never logged and is wiped from
# the process's environment block.
envtok=env-token-$RANDOM$RANDOM-0123456789abcdef
CNND_ADMIN_TOKEN=$envtok cnnd_start --data-root "$D" --admin-token-file "$T/unused.token" || finish
ap=$(admin_url)
check grep -q "admin token source=environment" "$T/cnnd.log" -- "CNND_ADMIN_TOKEN: the log names the source"
check [ ! -e "$T/unused.token" ] -- "CNND_ADMIN_TOKEN: no token file is created"
st=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $envtok" "$ap/admin/v1/models")
st2=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $(cat "$T/admin.token")" "$ap/admin/v1/models")
check [ "$st:$st2" = 200:401 ] -- "CNND_ADMIN_TOKEN: that token is accepted ($st), the file's is not ($st2)"
check not grep -qF "$envtok" "$T/cnnd.log" -- "CNND_ADMIN_TOKEN: the token is not in the log"
check not grep -qaF "$envtok" "/proc/$CNND_PID/environ" -- "CNND_ADMIN_TOKEN: wiped from /proc/PID/environ"
cnnd_stop
fi

# kill -9 at random moments of fine-tune-and-publish rounds (check_admin_kill.py picks the
# moment: a random fraction of the training steps, 0..40 ms into the export/publish phase,
# or a random time), then a restart that must load and serve the newest version.
SMALL='{"dataset":{"format":"idx","path":"small"},"epochs":1,"batch_size":16,"validation_split":0,"gate":"min_accuracy"}'
versions() { ls "$T/repo/fashion" | grep -E '^[1-9][0-9]*$' | sort -n | tr '\n' ' '; }
newest() { ls "$T/repo/fashion" | grep -E '^[1-9][0-9]*$' | sort -n | tail -n1; }
live_version() {
  curl -s -H 'Content-Type: image/png' --data-binary "@$S/bag.png" "$URL/v1/models/fashion/classify" |
    "$PY" -c 'import json,sys; print(json.load(sys.stdin)["version"])' 2>/dev/null
}
: >"$T/kill.log"
before=0 writing=0 renamed=0 after=0 cleaned=0 bad_start=0 bad_serve=0 bad_files=0
for r in $(seq 1 "$ROUNDS"); do
  start
  grep -q "model load failed" "$T/cnnd.log" && bad_start=$((bad_start + 1))
  grep -q "removed_unfinished_publish_folders" "$T/cnnd.log" && cleaned=$((cleaned + 1))
  n=$(newest)
  v=$(live_version)
  [ "$v" = "$n" ] || { bad_serve=$((bad_serve + 1)); echo "round $r: live version '$v', newest on disk $n"; }
  vs_before=$(versions)
  py check_admin_kill "$r" "$SMALL"
  wait "$CNND_PID" 2>/dev/null
  CNND_PID=
  cat "$T/cnnd.log" >>"$T/kill.log"
  if [ "$(versions)" = "$vs_before" ]; then
    if ls -a "$T/repo/fashion" | grep -q '^\.publish-'; then writing=$((writing + 1)); else before=$((before + 1)); fi
  elif grep -q "job finished" "$T/cnnd.log"; then after=$((after + 1)); else renamed=$((renamed + 1)); fi
done
for v in $(versions); do # every version folder, whenever the kill came, holds a whole model
  "$CNN" info "$T/repo/fashion/$v/model.cnn" >/dev/null 2>&1 ||
    { bad_files=$((bad_files + 1)); echo "version $v: model.cnn missing or does not load"; }
done
start
grep -q "model load failed" "$T/cnnd.log" && bad_start=$((bad_start + 1))
grep -q "removed_unfinished_publish_folders" "$T/cnnd.log" && cleaned=$((cleaned + 1))
n=$(newest)
v=$(live_version)
echo "kill -9 rounds: $ROUNDS; killed before the publish: $before, while the temp version folder was written: $writing, after the rename before the job finished: $renamed, after the job finished: $after; restarts that removed an unfinished temp folder: $cleaned; versions on disk: $(versions | wc -w)"
check [ "$cleaned" = "$writing" ] -- "each kill during the temp folder write left a .publish- folder that the next start removed ($cleaned of $writing)"
check [ "$bad_start" = 0 ] -- "$ROUNDS kill -9 rounds: every restart became ready with no 'model load failed' ($bad_start bad)"
check [ "$bad_serve" = 0 ] -- "after every restart the newest version on disk is live and serves ($bad_serve bad)"
check [ "$bad_files" = 0 ] -- "all $(versions | wc -w) version folders hold a complete model file ($bad_files bad)"
check [ "$v" = "$n" ] -- "final restart serves version $v (newest on disk $n)"
ls -a "$T/repo/fashion" | grep -q '^\.publish-' && fail "a temp version folder survived a restart" ||
  pass "no temp version folder left after the last restart"
cnnd_stop
echo "t_admin took $(($(date +%s) - t_start)) s"
finish
