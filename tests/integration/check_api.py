#!/usr/bin/env python3
"""Endpoint checks against a running cnnd whose repository holds fashion/1 and fashion/2
(lenet5), cifar/1 (cifar_cnn) and labeled/1 (lenet5 with a labels file): /v1 listing and
classification (raw body, multipart, top_k, versions, JPEG), KServe v2 health, metadata,
readiness and inference (FP32 JSON flat/nested/batched, FP32 and BYTES through the binary
data extension, binary outputs, the classification extension).  Every result is compared
with `cnn predict --json` on the same model file and images."""
import argparse
import json
import struct

from itlib import (bad, check, client, close_vec, cnn_predict, done, png_gray_pixels,
                   preds_of, probs_from_ref, read, same_preds)
from cnnd_client import CnndError, pack_bytes, parse_classification


def check_listing(c, a):
    models = c.list_models()
    lst = models.get("models") if isinstance(models, dict) else None
    names = {m.get("name"): m for m in lst} if isinstance(lst, list) else {}
    check(set(names) == {"fashion", "cifar", "labeled"}, "GET /v1/models lists every model",
          json.dumps(models)[:300])
    f = names.get("fashion", {})
    vers = {v.get("version"): v.get("state") for v in f.get("versions", [])}
    check(set(vers) == {1, 2} and f.get("live_version") == 2,
          "GET /v1/models: fashion versions 1 and 2, 2 live", json.dumps(f)[:300])
    check((f.get("input") or {}).get("shape") == [1, 28, 28] and f.get("num_classes") == 10,
          "GET /v1/models: fashion input shape [1,28,28], 10 classes", json.dumps(f)[:300])
    check(f.get("labels") == ["class%d" % i for i in range(10)],
          "GET /v1/models: fashion labels from the model file", json.dumps(f.get("labels")))
    cf = names.get("cifar", {})
    check((cf.get("input") or {}).get("shape") == [3, 32, 32],
          "GET /v1/models: cifar input shape [3,32,32]", json.dumps(cf)[:300])
    lab = names.get("labeled", {}).get("labels")
    check(lab == a.labels, "GET /v1/models: labels from the model's labels file",
          json.dumps(lab))


def check_classify(c, a, imgs, ref1, ref2):
    for img in imgs:
        r = c.classify("fashion", [read(img)], top_k=10)
        check(r.get("model") == "fashion" and str(r.get("version")) == "2",
              "classify %s: model fashion, live version 2" % img.split("/")[-1],
              "got model %r version %r" % (r.get("model"), r.get("version")))
        res = r.get("results", [])
        why = "%d results" % len(res) if len(res) != 1 else same_preds(preds_of(res[0]),
                                                                         ref2[img])
        check(why is None, "classify %s top_k=10 equals cnn predict" % img.split("/")[-1], why)
    img = imgs[0]
    r = c.classify("fashion", [read(img)], top_k=3)
    why = same_preds(preds_of(r["results"][0]), ref2[img][:3])
    check(why is None, "classify ?top_k=3 gives the best 3", why)
    r = c.classify("fashion", [read(img)])
    n = len(r["results"][0]["predictions"])
    why = same_preds(preds_of(r["results"][0]), ref2[img][:n])
    check(1 <= n <= 10 and why is None, "classify without top_k: default count (%d) in order" % n,
          why)
    r = c.classify("fashion", [read(img)], top_k=10, version=1)
    why = same_preds(preds_of(r["results"][0]), ref1[img])
    check(str(r.get("version")) == "1" and why is None,
          "classify /versions/1 uses version 1", why or "version %r" % r.get("version"))
    r = c.classify("fashion", [read(i) for i in imgs], top_k=10)
    res = r.get("results", [])
    why = None if len(res) == len(imgs) else "%d results for %d images" % (len(res), len(imgs))
    for i, img in enumerate(imgs):
        why = why or same_preds(preds_of(res[i]), ref2[img])
    check(why is None, "classify multipart/form-data with %d images: one result each, in "
          "order, equal to cnn predict" % len(imgs), why)
    ref = cnn_predict(a.fashion_v2, [a.jpeg])[a.jpeg]
    r = c.classify("fashion", [read(a.jpeg)], top_k=10)
    why = same_preds(preds_of(r["results"][0]), ref)
    check(why is None, "classify image/jpeg equals cnn predict on the same JPEG", why)
    ref = cnn_predict(a.cifar, [imgs[0]])[imgs[0]]
    r = c.classify("cifar", [read(imgs[0])], top_k=10)
    why = same_preds(preds_of(r["results"][0]), ref)
    check(why is None, "classify gray PNG on an RGB model (cifar_cnn) equals cnn predict", why)
    ref = cnn_predict(a.fashion_v1, [imgs[1]])[imgs[1]]
    r = c.classify("labeled", [read(imgs[1])], top_k=10)
    got = preds_of(r["results"][0])
    want = [(a.labels[idx], idx, s) for _, idx, s in ref]
    why = same_preds(got, want)
    check(why is None, "classify on a model with a labels file names classes from it", why)


def check_v2_meta(c):
    check(c.live(), "GET /v2/health/live -> 200")
    check(c.ready(), "GET /v2/health/ready -> 200")
    s = c.server_metadata()
    check(isinstance(s.get("name"), str) and isinstance(s.get("version"), str) and
          isinstance(s.get("extensions"), list), "GET /v2: name, version, extensions",
          json.dumps(s)[:200])
    check("classification" in s.get("extensions", []) and
          "binary_tensor_data" in s.get("extensions", []),
          "GET /v2 lists the classification and binary_tensor_data extensions",
          json.dumps(s.get("extensions")))
    m = c.model_metadata("fashion")
    inp = (m.get("inputs") or [{}])[0]
    out = (m.get("outputs") or [{}])[0]
    check(m.get("name") == "fashion" and {"1", "2"} <= set(map(str, m.get("versions", []))),
          "GET /v2/models/fashion: name and versions", json.dumps(m)[:300])
    check(inp.get("datatype") == "FP32" and list(inp.get("shape", []))[-3:] == [1, 28, 28],
          "GET /v2/models/fashion: input FP32 [.., 1, 28, 28]", json.dumps(inp))
    check(out.get("datatype") == "FP32" and list(out.get("shape", []))[-1:] == [10],
          "GET /v2/models/fashion: output FP32 [.., 10]", json.dumps(out))
    m1 = c.model_metadata("fashion", 1)
    check(m1.get("name") == "fashion", "GET /v2/models/fashion/versions/1 -> 200")
    check(c.model_ready("fashion"), "GET /v2/models/fashion/ready -> 200")
    check(c.model_ready("fashion", 1), "GET /v2/models/fashion/versions/1/ready -> 200")


def out0(r):
    return (r.get("outputs") or [{}])[0]


def check_v2_infer(c, a, imgs, ref1, ref2):
    pix = [png_gray_pixels(i)[2] for i in imgs[:3]]
    tens = [[p / 255.0 for p in px] for px in pix]  # lenet5: scale to [0,1], mean 0, std 1
    want = [probs_from_ref(ref2[i]) for i in imgs[:3]]
    inp_name, out_name = c.io_names("fashion")

    r = c.infer_tensor("fashion", tens[0], shape=[1, 1, 28, 28])
    o = out0(r)
    why = close_vec(o.get("data", []), want[0])
    check(o.get("shape") == [1, 10] and o.get("datatype") == "FP32" and why is None,
          "v2 infer FP32 flat data [1,1,28,28] -> [1,10] equal to cnn predict",
          why or json.dumps(o)[:200])
    check(r.get("model_name") == "fashion" and str(r.get("model_version")) == "2",
          "v2 infer answer names model and version", json.dumps(r)[:200])
    nested = [[[tens[0][y * 28:(y + 1) * 28] for y in range(28)]]]
    r = c.infer_tensor("fashion", nested)
    why = close_vec(out0(r).get("data", []), want[0])
    check(why is None, "v2 infer FP32 nested data equals flat", why)
    flat = [v for t in tens for v in t]
    r = c.infer_tensor("fashion", flat, shape=[3, 1, 28, 28])
    o = out0(r)
    why = close_vec(o.get("data", []), [v for w in want for v in w])
    check(o.get("shape") == [3, 10] and why is None,
          "v2 infer FP32 batched [3,1,28,28] -> [3,10] equal to cnn predict",
          why or json.dumps(o)[:200])
    r = c.infer_tensor("fashion", tens[1], shape=[1, 1, 28, 28], version=1)
    why = close_vec(out0(r).get("data", []), probs_from_ref(ref1[imgs[1]]))
    check(str(r.get("model_version")) == "1" and why is None, "v2 infer /versions/1", why)
    r = c.infer_tensor("fashion", flat, shape=[3, 1, 28, 28], binary_output=True)
    o = out0(r)
    why = close_vec(o.get("data", []), [v for w in want for v in w])
    check((o.get("parameters") or {}).get("binary_data_size") == 120 and why is None,
          "v2 infer binary_data output: 120 bytes of FP32 equal to cnn predict",
          why or json.dumps(o.get("parameters")))
    req = {"id": "req-42", "inputs": [{"name": inp_name, "shape": [2, 1, 28, 28],
                                       "datatype": "FP32",
                                       "parameters": {"binary_data_size": 2 * 784 * 4}}],
           "outputs": [{"name": out_name}]}
    raw = struct.pack("<%df" % (2 * 784), *(tens[0] + tens[2]))
    r = c.infer("fashion", req, binary=raw)
    why = close_vec(out0(r).get("data", []), want[0] + want[2])
    check(why is None, "v2 infer FP32 input through the binary data extension", why)
    check(r.get("id") == "req-42", "v2 infer echoes the request id", json.dumps(r)[:200])
    r = c.infer_tensor("fashion", flat, shape=[3, 1, 28, 28], classification=3)
    o = out0(r)
    why = None if o.get("datatype") == "BYTES" and o.get("shape") == [3, 3] else json.dumps(o)
    for i in range(3):
        if why:
            break
        got = [parse_classification(s) for s in o["data"][i * 3:(i + 1) * 3]]
        why = same_preds([(lab, idx, sc) for sc, idx, lab in got], ref2[imgs[i]][:3])
    check(why is None, "v2 classification:3 on FP32 input -> [3,3] 'score:index:label' "
          "equal to cnn predict", why)

    # BYTES input of encoded images, binary data extension.
    data = [read(i) for i in imgs[:3]]
    r = c.infer_images("fashion", data, classification=2)
    o = out0(r)
    why = None if o.get("shape") == [3, 2] else "shape %r" % o.get("shape")
    for i in range(3):
        if why:
            break
        got = [parse_classification(s) for s in o["data"][i * 2:(i + 1) * 2]]
        why = same_preds([(lab, idx, sc) for sc, idx, lab in got], ref2[imgs[i]][:2])
    check(why is None, "v2 BYTES input of 3 PNGs (binary) + classification:2 equals cnn "
          "predict", why)
    r = c.infer_images("fashion", data, classification=2, binary_output=True)
    o = out0(r)
    got = [parse_classification(s) for s in o.get("data", [])]
    why = None if len(got) == 6 else "%d strings" % len(got)
    why = why or same_preds([(lab, idx, sc) for sc, idx, lab in got[2:4]], ref2[imgs[1]][:2])
    check(why is None, "v2 classification output as binary BYTES", why)
    r = c.infer_images("fashion", data)
    o = out0(r)
    why = close_vec(o.get("data", []), [v for w in want for v in w])
    check(o.get("shape") == [3, 10] and why is None,
          "v2 BYTES input without classification -> FP32 [3,10] probabilities", why)
    req = {"inputs": [{"name": inp_name, "shape": [1], "datatype": "BYTES",
                       "parameters": {"binary_data_size": len(pack_bytes([data[0]]))}}]}
    r = c.infer("fashion", req, binary=pack_bytes([data[0]]))
    why = close_vec(out0(r).get("data", []), want[0])
    check(why is None, "v2 infer without an outputs list returns the output tensor", why)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fashion-v1", required=True)
    ap.add_argument("--fashion-v2", required=True)
    ap.add_argument("--cifar", required=True)
    ap.add_argument("--jpeg", required=True)
    ap.add_argument("--labels", required=True, help="labels file of model 'labeled'")
    ap.add_argument("images", nargs="+")
    a = ap.parse_args()
    a.labels = read(a.labels).decode().splitlines()
    ref1 = cnn_predict(a.fashion_v1, a.images)
    ref2 = cnn_predict(a.fashion_v2, a.images)
    c = client()
    for name, fn in (("listing", lambda: check_listing(c, a)),
                     ("classify", lambda: check_classify(c, a, a.images, ref1, ref2)),
                     ("v2 metadata", lambda: check_v2_meta(c)),
                     ("v2 infer", lambda: check_v2_infer(c, a, a.images, ref1, ref2))):
        try:
            fn()
        except (CnndError, OSError, ValueError, KeyError, IndexError, TypeError) as e:
            bad("%s checks stopped: %s: %s" % (name, type(e).__name__, e))
    done()


if __name__ == "__main__":
    main()
