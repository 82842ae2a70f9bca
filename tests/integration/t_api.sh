#!/usr/bin/env bash
# Every endpoint with valid requests: /v1 listing and classification, KServe v2 health,
# metadata and inference (JSON, binary data, classification extension), the clients/ curl
# scripts and Python client, the per-request log line, /metrics through `promtool check
# metrics`; results compared with `cnn predict` (check_api.py).  Ends with a clean SIGTERM.
source "$(dirname "$0")/lib.sh"
itest_init api

S="$ROOT/models/samples"
IMGS=("$S/trouser.png" "$S/dress.png" "$S/sandal.png" "$S/sneaker.png" "$S/bag.png" "$S/ankle_boot.png")
repo_add fashion 1 lenet5 1
repo_add fashion 2 lenet5 2
repo_add cifar 1 cifar_cnn 3
repo_add labeled 1 lenet5 1
printf '%s\n' "T-shirt/top" Trouser Pullover Dress Coat Sandal Shirt Sneaker Bag "Ankle boot" \
  >"$T/repo/labeled/labels.txt"
printf '[model]\nlabels = labels.txt\n' >"$T/repo/labeled/config.ini"

# A JPEG of one sample (libjpeg through a tiny helper; Python cannot encode JPEG).
cc -O1 -Wall -Wextra -Werror -o "$T/pgm2jpeg" "$ITEST_DIR/pgm2jpeg.c" -ljpeg || fail "build pgm2jpeg"
"$PY" -c '
import sys; sys.path.insert(0, sys.argv[1]); import itlib
w, h, p = itlib.png_gray_pixels(sys.argv[2])
open(sys.argv[3], "wb").write(b"P5 %d %d 255\n" % (w, h) + p)' "$ITEST_DIR" "$S/sneaker.png" "$T/sneaker.pgm"
"$T/pgm2jpeg" "$T/sneaker.pgm" "$T/sneaker.jpg" 90

write_config models.max_versions=2  # keep fashion/1 loaded beside the live fashion/2
cnnd_start || finish

# The clients/ scripts, as a user would run them.
out=$("$ROOT/clients/classify.sh" "$S/sneaker.png")
check grep -q '"results"' <<<"$out" -- "clients/classify.sh one image: JSON with results"
n=$("$PY" -c 'import json,sys; print(len(json.load(sys.stdin)["results"]))' <<<"$("$ROOT/clients/classify.sh" "$S/sneaker.png" "$S/bag.png" "$S/dress.png")" 2>&1)
check [ "$n" = 3 ] -- "clients/classify.sh three images (multipart): 3 results (got $n)"
out=$(TOP_K=2 "$ROOT/clients/infer_v2.sh" "$S/sneaker.png" "$S/bag.png")
check grep -qE '"[0-9.e-]+:[0-9]+:class[0-9]"' <<<"$out" -- "clients/infer_v2.sh: classification strings score:index:label"
if "$PY" "$ROOT/clients/cnnd_client.py" --url "$URL" classify fashion "$S/bag.png" --top-k 2 >"$T/cli.json"; then
  check grep -q '"predictions"' "$T/cli.json" -- "clients/cnnd_client.py classify prints predictions"
else
  fail "clients/cnnd_client.py classify exited nonzero"
fi
"$PY" "$ROOT/clients/cnnd_client.py" --url "$URL" infer fashion "$S/bag.png" >"$T/cli.json"
check grep -qE '"[0-9.]+:[0-9]+:class[0-9]"' "$T/cli.json" -- "clients/cnnd_client.py infer prints classification strings"

py check_api --fashion-v1 "$(model_file lenet5 1)" --fashion-v2 "$(model_file lenet5 2)" \
  --cifar "$(model_file cifar_cnn 3)" --jpeg "$T/sneaker.jpg" --labels "$T/repo/labeled/labels.txt" \
  "${IMGS[@]}"

# One log line per request: id, method, path, status, model, version, batch, latency.
http POST /v1/models/fashion/classify -H 'Content-Type: image/png' --data-binary "@$S/bag.png"
line=$(grep -F '/v1/models/fashion/classify' "$T/cnnd.log" | tail -n1)
check grep -qE 'POST' <<<"$line" -- "request log line has the method"
check grep -qE '200' <<<"$line" -- "request log line has the status"
check grep -qiE 'id=|"id"|request' <<<"$line" -- "request log line has a request id: $line"
check grep -qE 'fashion' <<<"$line" -- "request log line names the model"
check grep -qiE 'version' <<<"$line" -- "request log line has the version"
check grep -qiE 'batch' <<<"$line" -- "request log line has the batch size"
check grep -qiE 'latency' <<<"$line" -- "request log line has the latency"

curl -s "$URL/metrics" >"$T/metrics.txt"
if promtool check metrics <"$T/metrics.txt" >"$T/promtool.out" 2>&1; then
  pass "promtool check metrics passes on a live /metrics"
else
  fail "promtool check metrics: $(head -c 600 "$T/promtool.out")"
fi
check grep -q '^# TYPE .*histogram' "$T/metrics.txt" -- "/metrics has histograms"

cnnd_stop
finish
