#!/usr/bin/env python3
"""A small ONNX classifier written byte by byte with a minimal protobuf encoder (no
third-party modules), and its forward pass in plain Python as the reference:
x (N,3,8,8) -> Conv 4x3x3x3 pad 1 + bias -> Relu -> GlobalAveragePool -> Flatten ->
Gemm (transB, 5 outputs) -> Softmax.  `onnx_net.py write OUT.onnx [C]` writes the model
(C input channels, 3 unless given: a tensor-fed model may take any C); `forward(batch, c)`
computes the expected probabilities."""
import math
import struct
import sys

C, H, W, OC, NC = 3, 8, 8, 4, 5


def weights(C=C):
    """Deterministic weights in [-1, 1): conv w, conv b, fc w (NC, OC), fc b."""
    s = 12345
    vals = []
    for _ in range(OC * C * 9 + OC + NC * OC + NC):
        s = (s * 1103515245 + 12345) % (1 << 31)
        vals.append((s >> 8) / float(1 << 22) - 1.0)
    cw = vals[:OC * C * 9]
    cb = vals[OC * C * 9:OC * C * 9 + OC]
    fw = vals[OC * C * 9 + OC:OC * C * 9 + OC + NC * OC]
    fb = vals[-NC:]
    return cw, cb, fw, fb


def varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def key(field, wire):
    return varint(field << 3 | wire)


def ld(field, payload):
    """A length-delimited field (string, bytes, sub-message)."""
    if isinstance(payload, str):
        payload = payload.encode()
    return key(field, 2) + varint(len(payload)) + payload


def vi(field, v):
    return key(field, 0) + varint(v & 0xFFFFFFFFFFFFFFFF)


def tensor(name, dims, vals):
    """TensorProto: dims=1, data_type=2 (FLOAT=1), name=8, raw_data=9."""
    msg = b"".join(vi(1, d) for d in dims) + vi(2, 1) + ld(8, name)
    return msg + ld(9, struct.pack("<%df" % len(vals), *vals))


def attr_int(name, v):
    return ld(1, name) + vi(3, v) + vi(20, 2)  # name, i, type INT


def attr_ints(name, vs):
    return ld(1, name) + b"".join(vi(8, v) for v in vs) + vi(20, 7)  # ints, type INTS


def node(op, name, inputs, outputs, attrs=()):
    msg = b"".join(ld(1, i) for i in inputs) + b"".join(ld(2, o) for o in outputs)
    return msg + ld(3, name) + ld(4, op) + b"".join(ld(5, a) for a in attrs)


def value_info(name, dims):
    """ValueInfoProto name=1, type=2: TypeProto.tensor_type=1 {elem_type=1, shape=2}."""
    dim = b"".join(ld(1, ld(2, "N") if d is None else vi(1, d)) for d in dims)
    return ld(1, name) + ld(2, ld(1, vi(1, 1) + ld(2, dim)))


def model_bytes(C=C):
    cw, cb, fw, fb = weights(C)
    nodes = [
        node("Conv", "conv", ["x", "cw", "cb"], ["c"], [attr_ints("pads", [1, 1, 1, 1])]),
        node("Relu", "relu", ["c"], ["r"]),
        node("GlobalAveragePool", "gap", ["r"], ["g"]),
        node("Flatten", "flat", ["g"], ["f"]),
        node("Gemm", "fc", ["f", "fw", "fb"], ["y"], [attr_int("transB", 1)]),
        node("Softmax", "prob", ["y"], ["prob"]),
    ]
    inits = [tensor("cw", [OC, C, 3, 3], cw), tensor("cb", [OC], cb),
             tensor("fw", [NC, OC], fw), tensor("fb", [NC], fb)]
    graph = b"".join(ld(1, n) for n in nodes) + ld(2, "net")
    graph += b"".join(ld(5, t) for t in inits)
    graph += ld(11, value_info("x", [None, C, H, W])) + ld(12, value_info("prob", [None, NC]))
    opset = ld(1, "") + vi(2, 13)
    return vi(1, 8) + ld(2, "onnx_net.py") + ld(7, graph) + ld(8, opset)


def forward(batch, C=C):
    """batch: list of flat (C*H*W) lists -> list of NC probabilities each."""
    cw, cb, fw, fb = weights(C)
    out = []
    for x in batch:
        feats = []
        for o in range(OC):
            total = 0.0
            for y in range(H):
                for xx in range(W):
                    acc = cb[o]
                    for c in range(C):
                        for ky in range(3):
                            for kx in range(3):
                                iy, ix = y + ky - 1, xx + kx - 1
                                if 0 <= iy < H and 0 <= ix < W:
                                    acc += cw[((o * C + c) * 3 + ky) * 3 + kx] * \
                                        x[(c * H + iy) * W + ix]
                    total += max(acc, 0.0)
            feats.append(total / (H * W))
        logits = [fb[k] + sum(fw[k * OC + o] * feats[o] for o in range(OC)) for k in range(NC)]
        m = max(logits)
        e = [math.exp(v - m) for v in logits]
        out.append([v / sum(e) for v in e])
    return out


if __name__ == "__main__":
    if len(sys.argv) in (3, 4) and sys.argv[1] == "write":
        with open(sys.argv[2], "wb") as f:
            f.write(model_bytes(int(sys.argv[3]) if len(sys.argv) == 4 else C))
    else:
        sys.exit("usage: onnx_net.py write OUT.onnx [C]")
