#!/usr/bin/env bash
# Error statuses: 400, 404, 405 + Allow, 413, 415 on a cnnd with small limits
# (check_errors.py, raw sockets for malformed framing); one list of malformed requests run
# against both the inference and the admin listener (check_listeners.py); the per-address
# connection limit, the inactivity timeout (on both listeners); 503 from /v2/health/ready
# while no model is loaded.
source "$(dirname "$0")/lib.sh"
itest_init errors

repo_add fashion 1 lenet5 1
write_config limits.classify_max_body=65536 limits.infer_max_body=131072 \
  limits.max_image_pixels=1000000 limits.max_multipart_parts=4 limits.max_json_depth=32
cnnd_start || finish
inp=$(curl -s "$URL/v2/models/fashion" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["inputs"][0]["name"])')
py check_errors "${inp:-input}"
# The same malformed requests on the inference and the admin listener: the same answers.
py check_listeners "$URL" "$(admin_url)" "$T/admin.token" 65536

# After all of that, still serving.
expect_status 200 POST /v1/models/fashion/classify -H 'Content-Type: image/png' \
  --data-binary "@$ROOT/models/samples/bag.png" -- "classify after the error requests"
cnnd_stop

# Connection limits: per client address, and the inactivity timeout.
write_config server.per_ip_limit=4 server.connection_timeout_s=2
cnnd_start || finish
py check_errors conn-limits 4 2
py check_listeners idle "$URL" "$(admin_url)" 2
cnnd_stop

# Not ready: an empty repository.  Live but not ready; classify finds no model.
rm -rf "$T/repo/fashion"
write_config
READY_WAIT=0 cnnd_start || finish
expect_status 200 GET /v2/health/live -- "live with an empty repository"
expect_status 503 GET /v2/health/ready -- "ready with no model loaded"
check is_error_json -- "503 not ready body is {\"error\": ...}"
expect_status 404 POST /v1/models/fashion/classify -H 'Content-Type: image/png' \
  --data-binary "@$ROOT/models/samples/bag.png" -- "classify with no model loaded"
# Publishing the first model makes it ready (SIGHUP rescans the repository).
publish fashion 1 lenet5 1
kill -HUP "$CNND_PID"
for _ in $(seq 1 100); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/v2/health/ready")" = 200 ] && break
  sleep 0.05
done
expect_status 200 GET /v2/health/ready -- "ready after the first model is published + SIGHUP"
cnnd_stop
finish
