#!/usr/bin/env python3
"""A cnnd whose repository holds onnxnet/1/model.onnx (written by onnx_net.py) and a
truncated onnxnet/2/model.onnx: the listing shows the ONNX model's input and classes,
version 1 stays live, and KServe v2 FP32 inference gives the probabilities of the plain
Python forward pass of onnx_net.py within 1e-5."""
import json

from itlib import check, client, done
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
    done()


if __name__ == "__main__":
    main()
