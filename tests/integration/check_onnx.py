#!/usr/bin/env python3
"""A cnnd whose repository holds onnxnet/1/model.onnx (written by onnx_net.py) and a
truncated onnxnet/2/model.onnx: the listing shows the ONNX model's input and classes,
version 1 stays live, and KServe v2 FP32 inference gives the probabilities of the plain
Python forward pass of onnx_net.py within 1e-5.  onnxpp is the same file with a
NAME/config.ini giving labels and [preprocessing] mean/std in 0..255 units (scale 255): its
/v1 classify answer of an RGB PNG equals the forward pass of that preprocessing with those
labels, onnxnet's the neutral one (pixels / 255), and the /v2 metadata reports both.
onnxbgr has onnxpp's mean/std with channel_order = bgr: its answer is the forward pass of the
B,G,R planes (mean[0] applied to blue), differs from onnxpp's, and /v2 says "bgr".
onnxc8 takes 8 input channels: /v2 FP32 inference equals its forward pass, /v1 classify of
a PNG answers 400 saying images have 1 or 3 channels."""
import json
import struct
import zlib

from itlib import check, client, done
from cnnd_client import CnndError  # on the path once itlib is imported
import onnx_net


def main():
    c = client()
    models = c.list_models().get("models", [])
    m = {x.get("name"): x for x in models}.get("onnxnet", {})
    check((m.get("input") or {}).get("shape") == [3, 8, 8] and m.get("num_classes") == 5,
          "GET /v1/models: onnxnet from model.onnx, input [3,8,8], 5 classes",
          json.dumps(m)[:300])
    check(m.get("live_version") == 1,
          "GET /v1/models: the truncated model.onnx of version 2 is not served, 1 stays live",
          json.dumps(m)[:300])
    n = onnx_net.C * onnx_net.H * onnx_net.W
    batch = [[((i * 7 + k * 13) % 29) / 29.0 for k in range(n)] for i in range(2)]
    r = c.infer_tensor("onnxnet", batch[0] + batch[1], shape=[2, 3, 8, 8])
    out = (r.get("outputs") or [{}])[0]
    got = out.get("data") or []
    want = [v for row in onnx_net.forward(batch) for v in row]
    err = max((abs(a - b) for a, b in zip(got, want)), default=1.0)
    check(out.get("shape") == [2, 5] and len(got) == 10 and err <= 1e-5,
          "v2 infer FP32 [2,3,8,8] on the ONNX model equals the Python forward (max err %.2g)"
          % err, json.dumps(r)[:300])
    check_config_preprocessing(c)
    check_eight_channels(c)
    done()


def check_eight_channels(c):
    n = 8 * onnx_net.H * onnx_net.W
    x = [((k * 11) % 23) / 23.0 - 0.5 for k in range(n)]
    r = c.infer_tensor("onnxc8", x, shape=[1, 8, 8, 8])
    out = (r.get("outputs") or [{}])[0]
    got = out.get("data") or []
    want = onnx_net.forward([x], 8)[0]
    err = max((abs(a - b) for a, b in zip(got, want)), default=1.0)
    check(out.get("shape") == [1, 5] and len(got) == 5 and err <= 1e-5,
          "v2 infer FP32 [1,8,8,8] on an 8-channel ONNX model equals the Python forward "
          "(max err %.2g)" % err, json.dumps(r)[:300])
    W, H = onnx_net.W, onnx_net.H
    png = png_rgb(W, H, bytes((x * 37 + y * 11) % 256 for y in range(H) for x in range(W)
                              for _ in range(3)))
    try:
        r = c.classify("onnxc8", [png])
        status, msg = 200, json.dumps(r)[:200]
    except CnndError as e:
        status, msg = e.status, e.message or ""
    check(status == 400 and "1 or 3" in msg,
          "/v1 classify of a PNG on the 8-channel model answers 400 with the reason",
          "%s %s" % (status, msg))


def png_rgb(w, h, pixels):
    """PNG bytes of an 8-bit RGB image (rows unfiltered); pixels: bytes (H, W, 3)."""
    def chunk(kind, payload):
        return (struct.pack(">I", len(payload)) + kind + payload +
                struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF))
    raw = b"".join(b"\x00" + pixels[y * w * 3:(y + 1) * w * 3] for y in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def expected(pixels, mean, std, bgr=False):
    """Probabilities of the forward pass of (pixel / 255 - mean[c]) / std[c], the input
    channel of output channel c being c (RGB) or 2 - c (BGR)."""
    C, H, W = onnx_net.C, onnx_net.H, onnx_net.W
    x = [(pixels[(y * W + xx) * 3 + (2 - c if bgr else c)] / 255.0 - mean[c]) / std[c]
         for c in range(C) for y in range(H) for xx in range(W)]
    return onnx_net.forward([x])[0]


def check_config_preprocessing(c):
    W, H = onnx_net.W, onnx_net.H
    pixels = bytes((x * 37 + y * 11 + ch * 90) % 256 for y in range(H) for x in range(W)
                   for ch in range(3))
    png = png_rgb(W, H, pixels)
    labels = ["cat", "dog", "fox", "owl", "emu"]
    cases = [("onnxnet", [0, 0, 0], [1, 1, 1], None),
             ("onnxpp", [0.5, 0.25, 0.75], [0.5, 2.0, 0.25], labels),
             ("onnxbgr", [0.5, 0.25, 0.75], [0.5, 2.0, 0.25], None)]
    answers = {}
    for name, mean, std, names in cases:
        bgr = name == "onnxbgr"
        r = c.classify(name, [png], top_k=5)
        preds = (r.get("predictions") or [{}]) if "predictions" in r else \
            ((r.get("results") or [{}])[0].get("predictions") or [])
        want = expected(pixels, mean, std, bgr)
        got = {p.get("index"): p for p in preds}
        err = max((abs(got[k].get("score", 9) - want[k]) if k in got else 1.0
                   for k in range(len(want))), default=1.0)
        lab_ok = names is None or all(got.get(k, {}).get("label") == names[k] for k in got)
        check(len(got) == 5 and err <= 1e-5 and lab_ok,
              "/v1 classify %s: scores equal the forward pass with mean %s std %s%s (max err "
              "%.2g)%s" % (name, mean, std, " in BGR order" if bgr else "", err,
                           ", config.ini labels" if names else ""),
              json.dumps(r)[:300])
        answers[name] = [round(got[k].get("score", 0), 6) for k in sorted(got)]
    check(answers.get("onnxnet") != answers.get("onnxpp"),
          "config.ini mean/std change what the imported model answers", json.dumps(answers))
    check(answers.get("onnxbgr") != answers.get("onnxpp"),
          "config.ini channel_order = bgr changes what the imported model answers",
          json.dumps(answers))
    order = {n: ((c.model_metadata(n).get("parameters") or {}).get("preprocessing") or {})
             .get("channel_order") for n in ("onnxbgr", "onnxpp")}
    check(order == {"onnxbgr": "bgr", "onnxpp": "rgb"},
          "/v2 metadata reports channel_order (bgr from config.ini, rgb by default)",
          json.dumps(order))
    meta = c.model_metadata("onnxpp")
    pp = (meta.get("parameters") or {}).get("preprocessing") or {}
    close = all(abs(a - b) < 1e-6 for a, b in zip(pp.get("mean", []) + pp.get("std", []),
                                                   [0.5, 0.25, 0.75, 0.5, 2.0, 0.25]))
    check(pp.get("resize") == "stretch" and len(pp.get("mean", [])) == 3 and close and
          (meta.get("parameters") or {}).get("labelled") is True,
          "/v2 metadata of onnxpp reports the config.ini preprocessing and labels",
          json.dumps(meta)[:400])
    pp = ((c.model_metadata("onnxnet").get("parameters") or {}).get("preprocessing") or {})
    check(pp.get("mean") == [0, 0, 0] and pp.get("std") == [1, 1, 1],
          "/v2 metadata of onnxnet reports the neutral defaults (mean 0, std 1)", json.dumps(pp))


if __name__ == "__main__":
    main()
