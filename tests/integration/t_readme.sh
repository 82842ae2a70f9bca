#!/usr/bin/env bash
# README.md's commands, in order, on a fresh copy of the tree (the files a clone would have:
# tracked and not ignored; no models/admin.token, no models/data): every ```sh block is cut
# into commands (a line, with its '\' continuations), each run in one bash session (so
# T=$(...) carries on) and printed with its exit status; a command must exit 0.  A block
# after <!-- readme-test: skip ... --> is not run (`make run` serves until stopped, `make
# test` runs this test): cnnd is started the way `make run` does (`.ci/deps.sh run`, then
# build/cnnd --config config/cnnd.conf in the tree), with CNND_PORT=0 CNND_ADMIN_PORT=0 so
# it can run next to other servers, and 127.0.0.1:8080 / :8081 in the commands are replaced
# by the ports it logged.  Blocks after <!-- readme-test: slow --> and the full dataset run
# only with README_TEST=full; the fast run sets DEMO_PER_CLASS=100 so `make demo-data`
# writes 1,000 images instead of copying all 60,000.  README_TEST_BUILD=1 builds in the copy
# (`make all`) instead of copying $CNN and $CNND.  After the commands: the fine-tune job
# ended succeeded or rejected, with the parent's and the candidate's validation accuracy;
# with README_TEST=full, `cnn eval` of the live version must reach the bundled 93.13%.
source "$(dirname "$0")/lib.sh"
itest_init readme
MODE=${README_TEST:-fast}
TREE="$T/tree"
mkdir -p "$TREE"
(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard |
  tar --null --ignore-failed-read -T - -cf - 2>/dev/null) | tar -xf - -C "$TREE" ||
  { fail "cannot copy the tree"; finish; }
check [ ! -e "$TREE/models/admin.token" ] -- "fresh copy: no models/admin.token"
check [ ! -e "$TREE/models/data" ] -- "fresh copy: no data root (models/data)"
if [ "${README_TEST_BUILD:-0}" = 1 ]; then
  check make -C "$TREE" -s -j2 all -- "make all in the fresh copy"
else
  mkdir -p "$TREE/build" && cp "$CNN" "$TREE/build/cnn" && cp "$CNND" "$TREE/build/cnnd"
fi
cd "$TREE" || finish

# `make run`, without the make: deps (nothing missing here), then cnnd in the foreground.
check bash .ci/deps.sh run -- "make run's dependency step (.ci/deps.sh run) exits 0"
CNND_PORT=0 CNND_ADMIN_PORT=0 ./build/cnnd --config config/cnnd.conf >"$T/cnnd.log" 2>&1 &
CNND_PID=$!
for _ in $(seq 1 400); do
  PORT=$(grep -v 'admin listening' "$T/cnnd.log" | sed -nE 's/.* listening port=([0-9]+).*/\1/p' | head -n1)
  APORT=$(sed -nE 's/.*admin listening port=([0-9]+).*/\1/p' "$T/cnnd.log" | head -n1)
  [ -n "$PORT" ] && [ -n "$APORT" ] && break
  kill -0 "$CNND_PID" 2>/dev/null || break
  sleep 0.05
done
if [ -z "$PORT" ] || [ -z "$APORT" ]; then
  fail "cnnd --config config/cnnd.conf did not log both listening lines"
  sed 's/^/  log: /' "$T/cnnd.log" | tail -n 20
  finish
fi
check [ -d models/data ] -- "the data root models/data was created at start"
check [ -f models/admin.token ] -- "models/admin.token was created at start"
for _ in $(seq 1 200); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/v2/health/ready")" = 200 ] && break
  sleep 0.05
done
export CNND_URL="http://127.0.0.1:$PORT" CNND_ADMIN_URL="http://127.0.0.1:$APORT"
[ "$MODE" = full ] || export DEMO_PER_CLASS=${DEMO_PER_CLASS:-100}
echo "cnnd from the fresh copy: port $PORT (README: 8080), admin port $APORT (README: 8081); mode $MODE${DEMO_PER_CLASS:+, DEMO_PER_CLASS=$DEMO_PER_CLASS}"

# README.md -> $T/cmds (what runs) and $T/readme.sh (readme_cmds.py): run by one bash, so a
# variable one command sets (T=$(...)) reaches the next and none reaches this script.
"$PY" "$ITEST_DIR/readme_cmds.py" "$MODE" README.md "$T" "$PORT" "$APORT" ||
  { fail "cannot parse README.md"; finish; }
bash "$T/readme.sh"

n=0
while IFS= read -r -d '' rec || [ -n "$rec" ]; do
  kind=${rec%%$'\t'*}
  rest=${rec#*$'\t'}
  why=${rest%%$'\t'*}
  cmd=${rest#*$'\t'}
  n=$((n + 1))
  if [ "$kind" = SKIP ]; then
    printf '[%d] $ %s\n    -> not run (%s)\n' "$n" "$cmd" "$why"
    continue
  fi
  rc=$(cat "$T/rc.$n" 2>/dev/null || echo "(not reached)")
  ms=$(cat "$T/ms.$n" 2>/dev/null || echo 0)
  printf '[%d] $ %s\n    -> exit %s (%d.%d s)\n' "$n" "$cmd" "$rc" $((ms / 1000)) $((ms % 1000 / 100))
  head -c 600 "$T/out.$n" | head -n 4 | awk '{ print "    | " $0 }'
  if [ "$rc" = 0 ]; then pass "README command $n exits 0"; else
    fail "README command $n exits $rc: $(tail -c 300 "$T/out.$n")"
  fi
done <"$T/cmds"

# The fine-tune the README started: job 1, final, both accuracies; what is live afterwards.
tok=$(cat models/admin.token)
curl -s -H "Authorization: Bearer $tok" "$CNND_ADMIN_URL/admin/v1/jobs/1" >"$T/job1.json"
"$PY" - "$T/job1.json" <<'EOF' >"$T/job1.txt"
import json, sys
j = json.load(open(sys.argv[1]))
f = lambda x: "-" if x is None else "%.4f" % x
print("%s %s %s %s %s" % (j["state"], f(j.get("parent_val_accuracy")), f(j.get("val_accuracy")),
                          j.get("val_items"), j.get("version")))
print("fine-tune job 1: %s; parent (version %s) validation accuracy %s, candidate %s, on the "
      "same %s items; %s" % (j["state"], j.get("parent_version"), f(j.get("parent_val_accuracy")),
                              f(j.get("val_accuracy")), j.get("val_items"),
                              j.get("error") or "published as version %s" % j.get("version")))
EOF
read -r st pva va _ _ <"$T/job1.txt"
sed -n 2p "$T/job1.txt"
check [ "$st" = succeeded -o "$st" = rejected ] -- "the README's fine-tune ended succeeded or rejected ($st)"
check [ -n "$pva" -a "$pva" != - -a -n "$va" -a "$va" != - ] -- "the job reports the parent's ($pva) and the candidate's ($va) validation accuracy"
live=$(curl -s "$CNND_URL/v1/models" | "$PY" -c 'import json,sys; print([m["live_version"] for m in json.load(sys.stdin)["models"] if m["name"] == "fashion"][0])')
echo "live version of fashion afterwards: $live"
if [ "$MODE" = full ]; then
  ./build/cnn eval "models/repository/fashion/$live/model.cnn" --data /usr/share/datasets/fashion-mnist >"$T/eval.txt" 2>&1
  acc=$(sed -nE 's/^accuracy[^0-9]*([0-9.]+)%.*/\1/p' "$T/eval.txt" | head -n1)
  echo "live version $live: cnn eval on the 10,000 test images: ${acc:-?}% (bundled version 1: 93.13%)"
  check awk -v a="${acc:-0}" 'BEGIN { exit !(a >= 93.13) }' -- \
    "the live version $live scores ${acc:-?}% >= 93.13% on the test images"
fi
kill -TERM "$CNND_PID"
wait "$CNND_PID"
rc=$?
CNND_PID=
check [ "$rc" = 0 ] -- "cnnd stops on SIGTERM with exit 0"
finish
