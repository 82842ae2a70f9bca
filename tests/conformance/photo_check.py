#!/usr/bin/env python3
"""Compares cnnd's /v1/models/MODEL/classify?top_k=5 answer on DIR/photo.jpg with the reference
probabilities DIR/ort/photo.f32 (ONNX Runtime on the same model.onnx, input preprocessed in
Python by photo_prep.py) for tests/conformance/photo.sh.

  photo_check.py URL DIR MODEL [--atol 1e-4]

PASS when: the answer names the model, 5 predictions, labels from labels.txt (synsetNNNN of
the index), the same 5 indices in the same order as the reference's top 5 (an order swap is
tolerated only between scores closer than atol), and every score within atol of the
reference's probability for that index.  Prints both top-5 lists and the max difference.
Python 3 standard library only.
"""
import argparse
import json
import os
import struct
import sys
import urllib.request


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("url")
    ap.add_argument("dir")
    ap.add_argument("model")
    ap.add_argument("--atol", type=float, default=1e-4)
    a = ap.parse_args()
    with open(os.path.join(a.dir, "ort", "photo.f32"), "rb") as f:
        raw = f.read()
    ref = struct.unpack("<%df" % (len(raw) // 4), raw)
    with open(os.path.join(a.dir, "photo.jpg"), "rb") as f:
        body = f.read()
    req = urllib.request.Request("%s/v1/models/%s/classify?top_k=5" % (a.url, a.model), data=body,
                                 headers={"Content-Type": "image/jpeg"})
    with urllib.request.urlopen(req, timeout=120) as r:
        ans = json.load(r)
    fails = []
    preds = ans["results"][0]["predictions"] if ans.get("results") else []
    if ans.get("model") != a.model or len(preds) != 5:
        fails.append("answer: %s" % json.dumps(ans)[:300])
    order = sorted(range(len(ref)), key=lambda i: (-ref[i], i))[:5]
    print("reference top-5: " + ", ".join("%d:%.6f" % (i, ref[i]) for i in order))
    print("cnnd      top-5: " + ", ".join("%d:%.6f" % (p["index"], p["score"]) for p in preds))
    maxd = 0.0
    for k, p in enumerate(preds):
        i = p["index"]
        if p["label"] != "synset%04d" % i:
            fails.append("prediction %d: label %s for index %d" % (k, p["label"], i))
        d = abs(p["score"] - ref[i])
        maxd = max(maxd, d)
        if d > a.atol:
            fails.append("index %d: score %.6f vs reference %.6f" % (i, p["score"], ref[i]))
        if i != order[k] and abs(ref[i] - ref[order[k]]) > a.atol:
            fails.append("rank %d: index %d, reference has %d" % (k, i, order[k]))
    if sorted(p["index"] for p in preds) != sorted(order) and len(preds) == 5:
        fails.append("top-5 sets differ")
    print("max |cnnd - reference| over the top 5: %.3g (atol %g)" % (maxd, a.atol))
    for m in fails:
        print("FAIL photo: " + m)
    print("%s photo: %s classify of a 320x240 JPEG equals the Python reference top-5" %
          ("FAIL" if fails else "PASS", a.model))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
