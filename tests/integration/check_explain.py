#!/usr/bin/env python3
"""POST /v1/models/{name}/explain and GET /v1/models/{name}/filters.png against a running cnnd
whose repository holds fashion/1 (the bundled model): JSON and PNG replies (format=, Accept),
the top-k equal to /classify's, the class asked by index or label, every method, the heatmap
PNG byte-equal to `cnn explain` on the same image (the offline tool), bad input -> 4xx with a
JSON error, the explain_max_concurrent cap -> 429 while classify keeps answering, /metrics."""
import base64
import json
import os
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

from itlib import URL, check, done, is_error_json, read

S = sys.argv[1]  # models/samples
MODEL = sys.argv[2]  # the model file served as fashion/1
CNN = os.environ["CNN"]
SNEAKER = os.path.join(S, "sneaker.png")


def post(path, body, ctype="image/png", accept=None, timeout=60):
    req = urllib.request.Request(URL + path, data=body, method="POST")
    if ctype:
        req.add_header("Content-Type", ctype)
    if accept:
        req.add_header("Accept", accept)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def get(path):
    try:
        with urllib.request.urlopen(URL + path, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def png_size(b):
    """(width, height, color type) from a PNG's IHDR, or None."""
    if len(b) < 33 or b[:8] != b"\x89PNG\r\n\x1a\n" or b[12:16] != b"IHDR":
        return None
    w, h = struct.unpack(">II", b[16:24])
    return w, h, b[25]


img = read(SNEAKER)
st, hd, body = post("/v1/models/fashion/explain", img)
j = json.loads(body) if st == 200 else {}
check(st == 200 and hd.get("Content-Type", "").startswith("application/json"),
      "explain sneaker.png: 200 JSON", "%s %s" % (st, body[:200]))
check(j.get("label") == "Sneaker" and j.get("class") == 7 and j.get("method") == "gradinput",
      "explain: class 7 Sneaker by gradinput (the default; the top-1)", json.dumps({k: j.get(k) for k in ("class", "label", "method")}))
_, _, cbody = post("/v1/models/fashion/classify", img)
cls_preds = json.loads(cbody)["results"][0]["predictions"]
check(j.get("predictions") == cls_preds, "explain: top-k equal to /classify's",
      "%s vs %s" % (j.get("predictions"), cls_preds))
png = base64.b64decode(j.get("heatmap", {}).get("base64", "")) if j else b""
check(png_size(png) == (280, 280, 2) and j["heatmap"]["width"] == 280,
      "explain: heatmap is a 280x280 RGB PNG (28 px x 10)", str(png_size(png)))

with tempfile.TemporaryDirectory() as d:
    out = os.path.join(d, "heat.png")
    subprocess.run([CNN, "explain", MODEL, SNEAKER, "--out", out], check=True,
                   stdout=subprocess.DEVNULL)
    check(read(out) == png, "explain: the heatmap is byte-equal to `cnn explain` on the same image")
    st, hd, raw = post("/v1/models/fashion/explain?format=png&method=occlusion", img)
    subprocess.run([CNN, "explain", MODEL, SNEAKER, "--out", out, "--method", "occlusion"],
                   check=True, stdout=subprocess.DEVNULL)
    check(st == 200 and hd.get("Content-Type") == "image/png" and raw == read(out),
          "explain ?format=png&method=occlusion: image/png equal to `cnn explain --method occlusion`",
          "%s %s" % (st, hd.get("Content-Type")))

st, hd, raw = post("/v1/models/fashion/explain", img, accept="image/png")
check(st == 200 and hd.get("Content-Type") == "image/png" and raw == png,
      "explain with Accept: image/png -> the same PNG", "%s %s" % (st, hd.get("Content-Type")))
for m in ("smoothgrad", "gradinput"):
    st, _, body = post("/v1/models/fashion/explain?method=%s&samples=5" % m, img)
    jj = json.loads(body) if st == 200 else {}
    check(st == 200 and jj.get("method") == m and png_size(base64.b64decode(jj["heatmap"]["base64"])),
          "explain method=%s: 200 with a PNG" % m, "%s %s" % (st, body[:200]))
for q, want in (("class=1", 1), ("class=Trouser", 1), ("class=Ankle%20boot", 9)):
    st, _, body = post("/v1/models/fashion/explain?" + q, img)
    check(st == 200 and json.loads(body).get("class") == want, "explain ?%s explains class %d" % (q, want),
          "%s %s" % (st, body[:200]))
st, _, body = post("/v1/models/fashion/versions/1/explain?top_k=2", img)
jj = json.loads(body) if st == 200 else {}
check(st == 200 and jj.get("version") == 1 and len(jj.get("predictions", [])) == 2,
      "explain on /versions/1 with top_k=2: 2 predictions", "%s %s" % (st, body[:200]))

# Bad input: a 4xx and a JSON error, never a 500.
bad_cases = [
    ("?method=lime", img, "image/png", 400),
    ("?class=10", img, "image/png", 400),
    ("?class=Hat", img, "image/png", 400),
    ("?format=gif", img, "image/png", 400),
    ("?samples=0", img, "image/png", 400),
    ("?samples=101", img, "image/png", 400),
    ("?top_k=0", img, "image/png", 400),
    ("", b"", "image/png", 400),
    ("", b"not an image at all", "image/png", 400),
    ("", img[: len(img) // 2], "image/png", 400),
    ("", img, "text/plain", 415),
]
for q, b, ct, want in bad_cases:
    st, _, body = post("/v1/models/fashion/explain" + q, b, ctype=ct)
    check(st == want and is_error_json(body), "explain %s (%d bytes, %s) -> %d with a JSON error" %
          (q or "body", len(b), ct, want), "%s %s" % (st, body[:200]))
st, _, body = post("/v1/models/nosuch/explain", img)
check(st == 404 and is_error_json(body), "explain on an unknown model -> 404", "%s" % st)
st, _, body = get("/v1/models/fashion/explain")
check(st == 405, "GET .../explain -> 405", "%s" % st)

# filters.png: conv1 has 32 filters 3x3: a 6x6 grid of 63-px tiles with 4-px gaps.
st, hd, raw = get("/v1/models/fashion/filters.png")
check(st == 200 and hd.get("Content-Type") == "image/png" and png_size(raw) == (406, 406, 2),
      "GET filters.png: 406x406 RGB PNG of 32 filters", "%s %s" % (st, png_size(raw)))
st, _, body = get("/v1/models/nosuch/filters.png")
check(st == 404 and is_error_json(body), "filters.png of an unknown model -> 404", "%s" % st)

# The cap (explain_max_concurrent = 1 in this test's config): a burst of slow explanations
# gets 429s with Retry-After, and classify answers meanwhile.
results = []


def slow():
    results.append(post("/v1/models/fashion/explain?method=smoothgrad&samples=100", img, timeout=120))


threads = [threading.Thread(target=slow) for _ in range(6)]
for t in threads:
    t.start()
time.sleep(0.05)
t0 = time.time()
cst, _, _ = post("/v1/models/fashion/classify", img)
classify_s = time.time() - t0
for t in threads:
    t.join()
codes = sorted(r[0] for r in results)
n429 = [r for r in results if r[0] == 429]
check(codes.count(200) >= 1 and len(n429) >= 1 and set(codes) <= {200, 429},
      "6 concurrent smoothgrad explains with explain_max_concurrent 1: 200s and 429s only", str(codes))
check(all(is_error_json(r[2]) and r[1].get("Retry-After") == "1" for r in n429),
      "429 answers carry a JSON error and Retry-After: 1")
check(cst == 200, "classify during the explain burst: 200 (took %.3f s)" % classify_s)

with urllib.request.urlopen(URL + "/metrics", timeout=30) as r:
    text = r.read().decode()
check('route="v1_explain"' in text and 'route="v1_filters"' in text,
      "/metrics counts v1_explain and v1_filters requests")
done()
