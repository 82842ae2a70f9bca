#!/usr/bin/env python3
"""Mixed client of tests/soak/soak.sh (standard library only):

  mixed.py URL SECONDS IMAGE.png OUT.json

For SECONDS, one keep-alive connection sends in turn: a valid v2 JSON infer (FP32 tensor),
a valid v2 binary infer of the PNG (BYTES, classification extension), and malformed
requests with the status each must get: bad JSON 400, a wrong shape 400, a non-image
classify body 400, an unknown model 404, a wrong method 405, a body over the limit 413
(by Content-Length, nothing sent).  Writes to OUT.json the counts by kind and status,
"unexpected" (a status other than the expected one; 503 is counted apart), and the p50/p99
of the valid requests in ms."""
import http.client
import json
import struct
import sys
import time
from urllib.parse import urlparse


def main():
    url, seconds, image, out = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
    u = urlparse(url)
    png = open(image, "rb").read()
    v2json = json.dumps({"inputs": [{"name": "input", "shape": [1, 1, 28, 28], "datatype": "FP32",
                                     "data": [((i * 37) % 255) / 255.0 for i in range(784)]}]})
    head = json.dumps({"inputs": [{"name": "input", "shape": [1], "datatype": "BYTES",
                                   "parameters": {"binary_data_size": 4 + len(png)}}],
                       "outputs": [{"name": "output", "parameters": {"classification": 2}}]}).encode()
    v2bin = head + struct.pack("<I", len(png)) + png
    J = {"Content-Type": "application/json"}
    kinds = [
        ("v2_json", 200, "POST", "/v2/models/fashion/infer", v2json, J),
        ("v2_binary", 200, "POST", "/v2/models/fashion/infer", v2bin,
         {"Inference-Header-Content-Length": str(len(head)), "Content-Type": "application/octet-stream"}),
        ("bad_json", 400, "POST", "/v2/models/fashion/infer", '{"inputs": [', J),
        ("bad_shape", 400, "POST", "/v2/models/fashion/infer",
         v2json.replace("[1, 1, 28, 28]", "[1, 1, 28, 27]"), J),
        ("not_image", 400, "POST", "/v1/models/fashion/classify", b"GIF89a not an image",
         {"Content-Type": "image/png"}),
        ("unknown_model", 404, "POST", "/v2/models/nosuch/infer", v2json, J),
        ("wrong_method", 405, "DELETE", "/v2/models/fashion", None, {}),
        ("too_large", 413, "POST", "/v1/models/fashion/classify", None,
         {"Content-Type": "image/png", "Content-Length": str(1 << 40)}),
    ]
    counts, unexpected, lat = {}, [], []
    conn = None
    t_end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < t_end:
        name, want, method, path, body, hdrs = kinds[i % len(kinds)]
        i += 1
        if conn is None:
            conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        t0 = time.monotonic()
        try:
            conn.request(method, path, body=body, headers=hdrs)
            r = conn.getresponse()
            data = r.read()
            st = r.status
            if r.getheader("Connection", "").lower() == "close" or name == "too_large":
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException) as e:
            st, data = 0, str(e).encode()
            conn.close()
            conn = None
        if want == 200 and st == 200:
            lat.append((time.monotonic() - t0) * 1000)
        key = "%s %d" % (name, st)
        counts[key] = counts.get(key, 0) + 1
        if st != want and st != 503:
            if len(unexpected) < 20:
                unexpected.append("%s: %d (want %d) %s" % (name, st, want, data[:160]))
        if st >= 400 and st != 0:
            try:
                ok = isinstance(json.loads(data).get("error"), str)
            except (ValueError, AttributeError):
                ok = False
            if not ok:
                counts["no_json_error " + name] = counts.get("no_json_error " + name, 0) + 1
    lat.sort()
    pct = lambda p: round(lat[min(len(lat) - 1, int(len(lat) * p / 100))], 3) if lat else None
    n_unexpected = sum(v for k, v in counts.items()
                       if not k.startswith("no_json_error") and
                       int(k.rsplit(" ", 1)[1]) not in (dict((k2[0], k2[1]) for k2 in kinds)[k.rsplit(" ", 1)[0]], 503))
    json.dump({"requests": i, "counts": counts, "unexpected": n_unexpected,
               "unexpected_examples": unexpected, "valid_p50_ms": pct(50), "valid_p99_ms": pct(99)},
              open(out, "w"), indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
