#!/usr/bin/env python3
"""Error statuses of a running cnnd (model fashion/1, lenet5) started with small limits:
classify_max_body 65536, infer_max_body 131072, max_image_pixels 1000000,
max_multipart_parts 4, max_json_depth 32.  Requests are written byte by byte on a raw
socket so malformed framing (Transfer-Encoding with Content-Length, two Content-Length
headers) reaches the server as sent.  Every error must carry {"error": "..."}."""
import json
import struct
import sys

from itlib import check, done, is_error_json, png_gray, raw_http, read, ROOT
from cnnd_client import multipart, pack_bytes

SAMPLE = read(ROOT + "/models/samples/bag.png")
CLS = "/v1/models/fashion/classify"
INF = "/v2/models/fashion/infer"


def req(method, path, headers=(), body=b"", cl=True):
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: 127.0.0.1", "Connection: close"]
    lines += list(headers)
    if cl and body is not None:
        lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


def expect(name, data, want, allow=None, retry_after=False, timeout=10.0, words=()):
    """want: the status, or a tuple of acceptable ones; words: text the error must hold."""
    wants = want if isinstance(want, tuple) else (want,)
    status, hdrs, body, _ = raw_http(data, timeout=timeout)
    why = None
    if status not in wants:
        why = "status %r, expected %s; body %r" % (status, "/".join(map(str, wants)), body[:160])
    elif not is_error_json(body):
        why = "body is not {\"error\": \"...\"}: %r" % body[:160]
    elif any(w not in json.loads(body)["error"] for w in words):
        why = "error %r lacks one of %r" % (json.loads(body)["error"], list(words))
    elif allow is not None:
        got = {m.strip() for m in hdrs.get("allow", "").split(",") if m.strip()}
        if not set(allow) <= got:
            why = "Allow %r, expected it to list %s" % (hdrs.get("allow"), "/".join(allow))
    if why is None and status is not None and "json" not in hdrs.get("content-type", ""):
        why = "Content-Type %r, expected application/json" % hdrs.get("content-type")
    check(why is None, "%s -> %s" % (name, status if why is None else "/".join(map(str, wants))),
          why)


def v2_json(obj):
    return req("POST", INF, ["Content-Type: application/json"], json.dumps(obj).encode())


def fp32_input(shape, data, name="input", dt="FP32"):
    return {"inputs": [{"name": name, "shape": shape, "datatype": dt, "data": data}]}


def conn_limits(per_ip, idle_s):
    """cnnd started with per_ip_limit=per_ip and connection_timeout_s=idle_s."""
    import socket
    import time
    from itlib import host_port
    live = b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    held = [socket.create_connection(host_port(), timeout=5) for _ in range(per_ip)]
    time.sleep(0.2)
    try:
        status, _, _, _ = raw_http(live, timeout=3)
    except OSError:
        status = None
    check(status in (None, 503), "connection %d from one address over per_ip_limit %d is "
          "refused" % (per_ip + 1, per_ip), "answered %r" % status)
    for h in held:
        h.close()
    time.sleep(0.3)
    status, _, _, _ = raw_http(live, timeout=3)
    check(status == 200, "after closing them a new connection is served", "status %r" % status)
    s = socket.create_connection(host_port(), timeout=idle_s + 5)
    t0 = time.monotonic()
    try:
        data = s.recv(100)
    except OSError:
        data = b""
    secs = time.monotonic() - t0
    s.close()
    check(data == b"" and idle_s - 0.5 <= secs <= idle_s + 3,
          "an idle connection is closed after connection_timeout_s=%d (%.1f s)" % (idle_s, secs),
          "recv %r after %.1f s" % (data[:40], secs))


def main():
    if sys.argv[1:2] == ["conn-limits"]:
        conn_limits(int(sys.argv[2]), int(sys.argv[3]))
        done()
    inp = sys.argv[1] if len(sys.argv) > 1 else "input"
    png = ["Content-Type: image/png"]

    # 400: bad requests
    expect("classify with garbage bytes as image/png", req("POST", CLS, png, b"not a png" * 10), 400)
    expect("classify with a truncated PNG", req("POST", CLS, png, SAMPLE[:len(SAMPLE) // 2]), 400)
    expect("classify with an empty body", req("POST", CLS, png, b""), 400)
    expect("classify ?top_k=0", req("POST", CLS + "?top_k=0", png, SAMPLE), 400)
    expect("classify ?top_k=abc", req("POST", CLS + "?top_k=abc", png, SAMPLE), 400)
    body, ctype = multipart([])
    expect("multipart without any image part",
           req("POST", CLS, ["Content-Type: " + ctype], body), 400)
    expect("multipart without a boundary",
           req("POST", CLS, ["Content-Type: multipart/form-data"], b"--x\r\n\r\n--x--\r\n"), 400)
    expect("v2 infer with bad JSON", req("POST", INF, ["Content-Type: application/json"],
                                         b'{"inputs": [ {"name": '), 400)
    expect("v2 infer without inputs", v2_json({"outputs": []}), 400)
    expect("v2 infer with data/shape mismatch", v2_json(fp32_input([1, 1, 28, 28], [0.5] * 783, inp)), 400)
    expect("v2 infer with a wrong input shape", v2_json(fp32_input([1, 1, 27, 29], [0.5] * 783, inp)), 400)
    expect("v2 infer with an unknown input name", v2_json(fp32_input([1, 1, 28, 28], [0.5] * 784, "nope")), 400)
    expect("v2 infer with datatype INT8", v2_json(fp32_input([1, 1, 28, 28], [1] * 784, inp, "INT8")), 400)
    expect("v2 infer with a string in FP32 data", v2_json(fp32_input([1, 1, 28, 28], ["x"] * 784, inp)), 400)
    expect("v2 infer with a negative dimension", v2_json(fp32_input([-1, 1, 28, 28], [0.5] * 784, inp)), 400)
    expect("v2 infer with an unknown output name",
           v2_json(dict(fp32_input([1, 1, 28, 28], [0.5] * 784, inp), outputs=[{"name": "nope"}])), 400)
    for depth in (2000, 10000, 60000):  # 60000 deep is 120 KB, under infer_max_body
        deep = b'{"inputs":' + b"[" * depth + b"]" * depth + b"}"
        expect("v2 infer with JSON nested %d deep (over max_json_depth 32)" % depth,
               req("POST", INF, ["Content-Type: application/json"], deep), 400,
               words=("max_json_depth 32",))
    head = json.dumps({"inputs": [{"name": inp, "shape": [1], "datatype": "BYTES",
                                   "parameters": {"binary_data_size": 1000}}]}).encode()
    expect("v2 binary_data_size beyond the body",
           req("POST", INF, ["Content-Type: application/octet-stream",
                             "Inference-Header-Content-Length: %d" % len(head)],
               head + pack_bytes([SAMPLE])[:200]), 400)
    expect("v2 Inference-Header-Content-Length beyond the body",
           req("POST", INF, ["Content-Type: application/octet-stream",
                             "Inference-Header-Content-Length: 99999"], head), 400)
    bad_elem = struct.pack("<I", 5000) + SAMPLE
    head = json.dumps({"inputs": [{"name": inp, "shape": [1], "datatype": "BYTES",
                                   "parameters": {"binary_data_size": len(bad_elem)}}]}).encode()
    expect("v2 BYTES element length prefix beyond its data",
           req("POST", INF, ["Content-Type: application/octet-stream",
                             "Inference-Header-Content-Length: %d" % len(head)], head + bad_elem), 400)
    head = json.dumps({"inputs": [{"name": inp, "shape": [1], "datatype": "BYTES",
                                   "parameters": {"binary_data_size": 24}}]}).encode()
    expect("v2 BYTES element that is not an image",
           req("POST", INF, ["Content-Type: application/octet-stream",
                             "Inference-Header-Content-Length: %d" % len(head)],
               head + pack_bytes([b"garbage garbage garbage."[:20]])), 400)
    expect("Transfer-Encoding and Content-Length both present",
           req("POST", CLS, png + ["Transfer-Encoding: chunked",
                                   "Content-Length: %d" % (len(SAMPLE) + 20)],
               (b"%x\r\n" % len(SAMPLE)) + SAMPLE + b"\r\n0\r\n\r\n", cl=False), 400)
    expect("two Content-Length headers",
           req("POST", CLS, png + ["Content-Length: %d" % len(SAMPLE),
                                   "Content-Length: %d" % len(SAMPLE)], SAMPLE, cl=False), 400)
    expect("two different Content-Length headers",
           req("POST", CLS, png + ["Content-Length: %d" % len(SAMPLE), "Content-Length: 5"],
               SAMPLE, cl=False), 400)

    # The framing cases above are refused for the conflict, not for chunking itself.
    status, _, body, _ = raw_http(req("POST", CLS, png + ["Transfer-Encoding: chunked"],
                                      (b"%x\r\n" % len(SAMPLE)) + SAMPLE + b"\r\n0\r\n\r\n",
                                      cl=False))
    check(status == 200 and b'"results"' in body,
          "a chunked body without Content-Length is classified -> 200", "status %r" % status)

    # 404
    expect("classify an unknown model", req("POST", "/v1/models/nope/classify", png, SAMPLE), 404)
    expect("classify an unknown version",
           req("POST", "/v1/models/fashion/versions/9/classify", png, SAMPLE), 404)
    expect("v2 metadata of an unknown model", req("GET", "/v2/models/nope", body=None), 404)
    expect("v2 metadata of an unknown version", req("GET", "/v2/models/fashion/versions/9", body=None), 404)
    expect("v2 ready of an unknown model", req("GET", "/v2/models/nope/ready", body=None), 404)
    expect("v2 infer on an unknown model",
           req("POST", "/v2/models/nope/infer", ["Content-Type: application/json"],
               json.dumps(fp32_input([1, 1, 28, 28], [0.5] * 784, inp)).encode()), 404)
    expect("an unknown path", req("GET", "/nope", body=None), 404)

    # 405 + Allow
    expect("GET on classify", req("GET", CLS, body=None), 405, allow=["POST"])
    expect("PUT on v2 infer", req("PUT", INF, ["Content-Type: application/json"], b"{}"), 405, allow=["POST"])
    expect("POST on /v2/health/live", req("POST", "/v2/health/live", body=b""), 405, allow=["GET"])
    expect("DELETE on /v2/models/fashion", req("DELETE", "/v2/models/fashion", body=None), 405, allow=["GET"])
    expect("POST on /metrics", req("POST", "/metrics", body=b""), 405, allow=["GET"])
    expect("POST on /v1/models", req("POST", "/v1/models", body=b""), 405, allow=["GET"])

    # 413: only a body over its route's byte limit
    big = SAMPLE + b"\0" * (70000 - len(SAMPLE))
    expect("classify body over classify_max_body (sent)", req("POST", CLS, png, big), 413)
    expect("classify Content-Length over the limit, body never sent",
           req("POST", CLS, png + ["Content-Length: 1000000000"], b"", cl=False), 413)
    expect("v2 infer Content-Length over infer_max_body, body never sent",
           req("POST", INF, ["Content-Type: application/json", "Content-Length: 1000000000"],
               b"", cl=False), 413)
    # 400: a structural limit (pixels, parts, elements, batch, shape), the message naming it
    wide = png_gray(2000, 1000, b"\x80" * 2000 * 1000)  # 2 Mpixel > max_image_pixels
    expect("classify an image over max_image_pixels (%d bytes compressed)" % len(wide),
           req("POST", CLS, png, wide), 400, words=("over the limit of 1000000",))
    body, ctype = multipart([("image%d" % i, "f%d.png" % i, "image/png", SAMPLE) for i in range(5)])
    expect("multipart with 5 parts over max_multipart_parts 4",
           req("POST", CLS, ["Content-Type: " + ctype], body), 400, words=("more than 4",))
    expect("v2 infer with a tensor of 2^62 elements",
           v2_json(fp32_input([2 ** 31, 2 ** 31, 1, 1], [0.5], inp)), 400,
           words=("max_tensor_elements",))
    for shape in ([2 ** 40, 2 ** 40, 2 ** 40, 1], [2 ** 32, 2 ** 32], [2 ** 62, 4]):
        expect("v2 infer with shape %r, its product overflowing 64 bits" % shape,
               v2_json(fp32_input(shape, [0.5], inp)), 400,
               words=("overflows", "max_tensor_elements"))
    expect("v2 infer with a batch of 65 over max_batch_items 64",
           v2_json(fp32_input([65, 1, 28, 28], [0.5], inp)), 400, words=("max_batch_items (64)",))

    # 415: content types
    expect("classify with text/plain", req("POST", CLS, ["Content-Type: text/plain"], SAMPLE), 415)
    expect("classify with image/gif", req("POST", CLS, ["Content-Type: image/gif"], SAMPLE), 415)
    expect("classify without a Content-Type", req("POST", CLS, [], SAMPLE), 415)
    expect("v2 infer with image/png", req("POST", INF, png, SAMPLE), 415)
    expect("v2 infer with text/plain", req("POST", INF, ["Content-Type: text/plain"], b"{}"), 415)
    done()


if __name__ == "__main__":
    main()
