#!/usr/bin/env python3
"""Compares cnnd with ONNX Runtime on the torchvision models of tests/conformance/torchvision.sh.

  torchvision_check.py URL DIR CNND_LOG MODEL... [--atol 1e-4]

For each MODEL: loaded (the cnnd log's "model loaded name=MODEL" line, else its "model load
failed" error), then POST /v2/models/MODEL/infer with DIR/in/MODEL.f32 as a binary FP32
tensor [2,3,224,224] (binary output asked), and image 0 alone as [1,3,224,224], compared with DIR/ort/MODEL.f32 (ONNX Runtime's
output on the same input): max abs diff over the softmax probabilities and top-1 agreement
per image.  One table row per model, then PASS/FAIL; exit status 1 when any model failed.
Python 3 standard library only (clients/cnnd_client.py).
"""
import argparse
import math
import os
import re
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "clients"))
import cnnd_client  # noqa: E402

SHAPE = [2, 3, 224, 224]


def read_f32(path):
    with open(path, "rb") as f:
        raw = f.read()
    return list(struct.unpack("<%df" % (len(raw) // 4), raw)), raw


def load_status(log, name):
    """(True, "") when the log says the model loaded, else (False, the load error)."""
    for line in log.splitlines():
        if re.search(r"model loaded name=%s version=" % re.escape(name), line):
            return True, ""
        m = re.search(r'model load failed name=%s version=\d+ error="(.*)"' % re.escape(name), line)
        if m:
            return False, m.group(1)
    return False, "no load line in the cnnd log"


def top1(row):
    return max(range(len(row)), key=row.__getitem__)


def logit_diff(got, want, k):
    """Max abs difference of the logits recovered from the probabilities: log p is the logit
    minus the row's log-sum-exp, so log(got) - log(want) minus its row mean is the logits'
    difference (a check that stays sharp when every probability is tiny).  Entries where
    either probability underflowed to 0 are left out."""
    worst = 0.0
    for i in range(len(got) // k):
        d = [math.log(a) - math.log(b) for a, b in zip(got[i * k:(i + 1) * k], want[i * k:(i + 1) * k])
             if a > 0 and b > 0]
        if d:
            mean = sum(d) / len(d)
            worst = max(worst, max(abs(x - mean) for x in d))
    return worst


def infer(c, name, raw, shape=SHAPE):
    req = {"inputs": [{"name": "input", "shape": shape, "datatype": "FP32",
                       "parameters": {"binary_data_size": len(raw)}}],
           "outputs": [{"name": "output", "parameters": {"binary_data": True}}]}
    r = c.infer(name, req, binary=raw)
    out = r["outputs"][0]
    return out["shape"], out["data"]


def check_model(c, d, log, name, atol):
    """The table row (a dict) of one model."""
    row = {"model": name, "loaded": "no", "diff": "-", "ldiff": "-", "top1": "-", "maxp": "-",
           "ok": False,
           "why": ""}
    loaded, why = load_status(log, name)
    if not loaded:
        row["why"] = why
        return row
    row["loaded"] = "yes"
    _, raw = read_f32(os.path.join(d, "in", name + ".f32"))
    want, _ = read_f32(os.path.join(d, "ort", name + ".f32"))
    try:
        shape, got = infer(c, name, raw)
    except (cnnd_client.CnndError, OSError, ValueError, KeyError) as e:
        row["why"] = "infer: %s" % e
        return row
    if shape != [2, len(want) // 2] or len(got) != len(want):
        row["why"] = "output shape %s, ONNX Runtime's [2,%d]" % (shape, len(want) // 2)
        return row
    k = len(want) // 2
    try:  # the batch is dynamic: image 0 alone gives row 0
        shape1, got1 = infer(c, name, raw[:len(raw) // 2], [1] + SHAPE[1:])
    except (cnnd_client.CnndError, OSError, ValueError, KeyError) as e:
        row["why"] = "infer batch 1: %s" % e
        return row
    if shape1 != [1, k]:
        row["why"] = "batch-1 output shape %s, expected [1,%d]" % (shape1, k)
        return row
    diff = max(abs(a - b) for a, b in zip(got + got1, want + want[:k]))
    agree = sum(top1(got[i * k:(i + 1) * k]) == top1(want[i * k:(i + 1) * k]) for i in range(2))
    row.update(diff="%.2e" % diff, ldiff="%.2e" % logit_diff(got, want, k), top1="%d/2" % agree, maxp="%.4f" % max(want),
               ok=diff <= atol and agree == 2)
    if not row["ok"]:
        row["why"] = "max abs diff %.3g > %g" % (diff, atol) if diff > atol else "top-1 differs"
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("url")
    ap.add_argument("dir")
    ap.add_argument("log")
    ap.add_argument("models", nargs="+")
    ap.add_argument("--atol", type=float, default=1e-4)
    a = ap.parse_args()
    with open(a.log, encoding="utf-8", errors="replace") as f:
        log = f.read()
    c = cnnd_client.Client(a.url, timeout=600)
    print("%-14s %-6s %-12s %-10s %-6s %-8s %s" % ("model", "loaded", "max_abs_diff",
                                                   "logit_diff", "top1", "ort_maxp", "result"))
    nfail = 0
    for name in a.models:
        r = check_model(c, a.dir, log, name, a.atol)
        nfail += not r["ok"]
        print("%-14s %-6s %-12s %-10s %-6s %-8s %s" % (
            r["model"], r["loaded"], r["diff"], r["ldiff"], r["top1"], r["maxp"],
            "PASS" if r["ok"] else "FAIL " + r["why"]), flush=True)
    print("torchvision: %d models, %d passed, %d failed (softmax outputs, atol %g, batch 2 and 1)"
          % (len(a.models), len(a.models) - nfail, nfail, a.atol))
    sys.exit(1 if nfail else 0)


if __name__ == "__main__":
    main()
