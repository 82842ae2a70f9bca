#!/usr/bin/env bash
# Per-layer times of cnnd beside ONNX Runtime on the same .onnx file:
#   bash bench/layer_profile.sh MODEL.onnx BATCH THREADS [path/to/cnn]
# cnnd: `cnn bench MODEL --profile --json` (mode blas at 1 thread, team above: one session's
# ops, as cnnd runs a batch that finds the queue short).  ORT: bench/ort_profile.js (its
# enableProfiling trace, graph optimisation all as the peers run it).  The two are joined by
# name: ORT names a fused node after the value it writes (".../relu/Relu_output_0_nchwc"),
# which is the name of a layer one cnnd op covers; ORT nodes that match no cnnd layer
# (reorders) are rows of their own, and cnnd ops ORT fused away (e.g. an add ORT did inside
# a conv) show ORT 0.  Rows are sorted by the loss, cnnd ms - ORT ms, largest first.
# Times are medians per forward call (LAYER_PROFILE_MIN=1: minima, which a loaded machine
# disturbs less); the load shows in the cnnd line's foreign_cpu: above ~0.3 it is noisy;
# LAYER_PROFILE_CPU=1 (1 thread): cnnd's per-op CPU times (--profile-cpu), which it is not.
# Env: LAYER_PROFILE_MIN_TIME (cnn bench --min-time, default 3), LAYER_PROFILE_RUNS (ORT
#      timed runs, default 20), LAYER_PROFILE_TOP (rows, default all), LAYER_PROFILE_MIN,
#      LAYER_PROFILE_CPU, CNND_PEERS_HOME, ORT_PROFILE_HW (ORT's input side, default 224).
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: bash bench/layer_profile.sh MODEL.onnx BATCH THREADS [path/to/cnn]" >&2
  exit 2
fi
MODEL=$1 BATCH=$2 THREADS=$3
HERE=$(cd "$(dirname "$0")" && pwd)
CNN=${4:-$HERE/../build/cnn}
MIN_TIME=${LAYER_PROFILE_MIN_TIME:-3}
RUNS=${LAYER_PROFILE_RUNS:-20}
TOP=${LAYER_PROFILE_TOP:-0}
STAT=ms
[ "${LAYER_PROFILE_MIN:-0}" = 0 ] || STAT=min_ms
mode=blas
[ "$THREADS" = 1 ] || mode=team
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prof=--profile
[ "${LAYER_PROFILE_CPU:-0}" = 0 ] || prof=--profile-cpu
"$CNN" bench "$MODEL" --batch "$BATCH" --threads "$THREADS" --mode "$mode" "$prof" --json \
  --min-time "$MIN_TIME" >"$tmp/cnnd.jsonl"
node "$HERE/ort_profile.js" "$MODEL" "$BATCH" "$THREADS" "$RUNS" >"$tmp/ort.jsonl"
python3 - "$tmp/cnnd.jsonl" "$tmp/ort.jsonl" "$TOP" "$STAT" <<'PY'
import json, re, sys

cnnd = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
ort = [json.loads(l) for l in open(sys.argv[2]) if l.startswith("{")]
top, stat = int(sys.argv[3]), sys.argv[4]
NAME_MAX = 47  # CNN_NAME_MAX - 1 (core/model.h)
bench, ops = cnnd[0], cnnd[1:]
ort_total = next(o["total_ms"] for o in ort if "total_ms" in o)
nodes = [o for o in ort if "node" in o]
print("cnnd: %s batch=%s threads=%s mode=%s median %.3f ms (foreign_cpu %.2f); ORT median %.3f ms"
      % (bench["model"], bench["batch"], bench["threads"], bench["mode"], bench["lat_ms_median"],
         bench["foreign_cpu"], ort_total))
owner = {}
for i, op in enumerate(ops):
    for name in op["layers"]:
        owner[name] = i
rows = [{"ops": [i], "nodes": [], "ms": op[stat], "ort": 0.0} for i, op in enumerate(ops)]
extra = []
for n in nodes:
    key = re.sub(r"(_output_\d+)?(_nchwc)?$", "", n["node"])
    if key not in owner and key[:NAME_MAX] in owner:  # cnnd keeps NAME_MAX chars of a name
        key = key[:NAME_MAX]
    if key in owner:
        r = rows[owner[key]]
        r["nodes"].append(n)
        r["ort"] += n[stat]
    else:
        extra.append({"ops": [], "nodes": [n], "ms": 0.0, "ort": n[stat]})
rows += extra
rows.sort(key=lambda r: r["ort"] - r["ms"])
print("%4s %-16s %-12s %9s %9s %9s %7s %8s  %s" % ("op", "cnnd variant", "output", "MFLOP",
      "cnnd ms", "ORT ms", "ratio", "loss ms", "cnnd layers / ORT nodes"))
sum_c = sum(r["ms"] for r in rows)
sum_o = sum(r["ort"] for r in rows)
for r in rows[:top or len(rows)]:
    op = ops[r["ops"][0]] if r["ops"] else None
    names = "+".join(op["layers"]) if op else ""
    onames = ",".join("%s(%s)" % (n["node"], n["op"]) for n in r["nodes"]) or "-"
    ratio = "%7.2f" % (r["ms"] / r["ort"]) if r["ort"] > 0 else "      -"
    print("%4s %-16s %-12s %9.2f %9.3f %9.3f %s %8.3f  %s <- %s" % (
        r["ops"][0] if op else "-", op["variant"] if op else "(ORT only)",
        op["out"] if op else "", op["mflop"] if op else 0, r["ms"], r["ort"], ratio,
        r["ms"] - r["ort"], names, onames))
print("sum (%s): cnnd %.3f ms, ORT %.3f ms (ratio %.2f) over %d rows" % (
    "medians" if stat == "ms" else "minima", sum_c, sum_o, sum_c / sum_o if sum_o else 0, len(rows)))
PY
