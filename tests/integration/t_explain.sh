#!/usr/bin/env bash
# Explanations end to end (issue 14): POST /v1/models/fashion/explain on the bundled model
# (JSON and PNG replies, every method, the cap on explanations in flight, bad input) and
# GET .../filters.png, checked by check_explain.py against /classify and `cnn explain`; the
# dashboard's routes (check_dashboard.py); config/grafana/cnnd.json against /metrics
# (check_grafana.py).
source "$(dirname "$0")/lib.sh"
itest_init explain

mkdir -p "$T/repo/fashion/1"
cp "$ROOT/models/repository/fashion/1/model.cnn" "$T/repo/fashion/1/model.cnn"
write_config limits.explain_max_concurrent=1 limits.explain_threads=1
cnnd_start || finish
py check_explain "$ROOT/models/samples" "$T/repo/fashion/1/model.cnn"
py check_dashboard "$(admin_url)" "$T/admin.token"
py check_grafana "$ROOT/config/grafana/cnnd.json"
cnnd_stop
finish
