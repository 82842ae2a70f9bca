#!/usr/bin/env bash
# Browser tests of the dashboard (make test-browser): Debian's chromium, headless, driven by
# puppeteer-core (pinned in package.json; node_modules is installed here by npm and not
# committed) against a real cnnd serving the bundled model, with a Fashion-MNIST subset under
# its data root for a fine-tune job.  Screenshots go to $BUILD/browser-*.png.
# Exit: 0 all passed, 1 a check failed, 77 skipped (no chromium or node, or npm could not
# install puppeteer-core: no network) -- the reason is printed as "SKIP browser: ...".
set -u
DIR=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$DIR/../.." && pwd)
CNN=${CNN:-build/cnn}
CNND=${CNND:-build/cnnd}
BUILD=${BUILD:-build}
case "$CNND" in /*) ;; *) CNND="$ROOT/$CNND" ;; esac
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
CHROMIUM=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
skip() { echo "SKIP browser: $*"; exit 77; }
[ -n "$CHROMIUM" ] || skip "chromium is not installed (apt-get install chromium)"
command -v node >/dev/null || skip "node is not installed (apt-get install nodejs npm)"
if [ ! -d "$DIR/node_modules/puppeteer-core" ]; then
  (cd "$DIR" && timeout 300 npm ci --no-audit --no-fund --ignore-scripts >/dev/null 2>&1) ||
    skip "npm could not install puppeteer-core (no network to the npm registry?)"
fi
[ -x "$CNND" ] || { echo "FAIL browser: $CNND is not built"; exit 1; }
PY=${PYTHON:-python3}
T=$(mktemp -d "${TMPDIR:-/tmp}/cnnd-browser.XXXXXX")
PID=
cleanup() {
  [ -n "$PID" ] && kill -KILL "$PID" 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT
mkdir -p "$T/repo/fashion/1" "$BUILD"
cp "$ROOT/models/repository/fashion/1/model.cnn" "$T/repo/fashion/1/model.cnn"
"$PY" "$ROOT/tests/integration/fm_subset.py" "$T/fm" --per-class 100 >/dev/null ||
  { echo "FAIL browser: could not write the Fashion-MNIST subset"; exit 1; }
printf 'browser-test-token-0123456789abcdef\n' >"$T/admin.token"
chmod 600 "$T/admin.token"
OPENBLAS_NUM_THREADS=1 "$CNND" --listen 127.0.0.1 --port 0 --model-repository "$T/repo" \
  --admin-port 0 --admin-token-file "$T/admin.token" --data-root "$T" >"$T/cnnd.log" 2>&1 &
PID=$!
for _ in $(seq 1 200); do
  grep -q "admin listening" "$T/cnnd.log" && break
  sleep 0.05
done
PORT=$(sed -nE 's/.* listening port=([0-9]+).*/\1/p' "$T/cnnd.log" | head -n1)
APORT=$(sed -nE 's/.*admin listening port=([0-9]+).*/\1/p' "$T/cnnd.log" | head -n1)
[ -n "$PORT" ] && [ -n "$APORT" ] || { echo "FAIL browser: cnnd did not start"; cat "$T/cnnd.log"; exit 1; }
URL="http://127.0.0.1:$PORT" ADMIN_URL="http://127.0.0.1:$APORT" \
  TOKEN=browser-test-token-0123456789abcdef SAMPLE="$ROOT/models/samples/sneaker.png" \
  SHOTS="$BUILD" CHROMIUM="$CHROMIUM" node "$DIR/dashboard.mjs"
rc=$?
kill -TERM "$PID"
wait "$PID"
st=$?
PID=
if [ "$st" != 0 ]; then echo "FAIL browser: cnnd exited $st after SIGTERM"; rc=1; fi
[ "$rc" = 0 ] || tail -n 20 "$T/cnnd.log" | sed 's/^/  log: /'
exit "$rc"
