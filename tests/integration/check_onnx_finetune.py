#!/usr/bin/env python3
"""A fine-tune job on a model served from model.onnx (t_onnx.sh's onnxpp: onnx_net.py's
classifier with config.ini labels cat..emu and mean/std):  check_onnx_finetune.py REPO DATA

Writes a folder dataset DATA/onnxft (5 class folders named by the labels, 8 RGB 8x8 PNGs
each: a class colour plus noise), POSTs /admin/v1/models/onnxpp/finetune (3 epochs, no
validation), waits: queued -> running -> succeeded, the new version is REPO/onnxpp/V/model.cnn
(no model.onnx in it) with lineage parent=onnxpp/1 (`cnn info`), it is live, the training
loss fell, /v1 classify answers from version V with the config.ini labels and equals
`cnn predict` of that file, and the answer differs from version 1's (the weights changed).
Environment: CNND_URL, CNND_ADMIN_URL, CNND_ADMIN_TOKEN_FILE."""
import json
import os
import subprocess
import sys

from adminlib import Admin
from check_onnx import png_rgb
from itlib import CNN, check, client, cnn_predict, done, preds_of, same_preds
import onnx_net

MODEL = "onnxpp"
LABELS = ["cat", "dog", "fox", "owl", "emu"]
COLOURS = [(230, 40, 40), (40, 200, 60), (50, 60, 220), (220, 220, 40), (30, 30, 30)]


def dataset(root):
    """5 class folders x 8 PNGs; returns one image path per class (for classify)."""
    W, H = onnx_net.W, onnx_net.H
    s, first = 99, []
    for k, name in enumerate(LABELS):
        d = os.path.join(root, name)
        os.makedirs(d, exist_ok=True)
        for i in range(8):
            px = bytearray()
            for _ in range(W * H):
                for ch in range(3):
                    s = (s * 1103515245 + 12345) & 0x7FFFFFFF
                    px.append(max(0, min(255, COLOURS[k][ch] + (s >> 26) - 16)))
            p = os.path.join(d, "%d.png" % i)
            with open(p, "wb") as f:
                f.write(png_rgb(W, H, bytes(px)))
            if i == 0:
                first.append(p)
    return first


def classify(img):
    c = client()
    with open(img, "rb") as f:
        r = c.classify(MODEL, [f.read()], top_k=5)
    c.close()
    return r


def main():
    repo, data = sys.argv[1], sys.argv[2]
    imgs = dataset(os.path.join(data, "onnxft"))
    before = {p: classify(p) for p in imgs}
    adm = Admin()
    st, j, _ = adm.submit(MODEL, {"dataset": {"format": "folder", "path": "onnxft"},
                                  "epochs": 3, "batch_size": 8, "learning_rate": 0.05,
                                  "validation_split": 0, "gate": "min_accuracy", "seed": 5})
    check(st == 202 and j, "POST /admin/v1/models/onnxpp/finetune (model.onnx) -> 202 (%d)" % st,
          json.dumps(j)[:300])
    if st != 202 or not j:
        done()
    final, seen, _ = adm.wait(j["id"])
    trans = [t["state"] for t in final.get("transitions", [])]
    check(trans == ["queued", "running", "succeeded"],
          "fine-tune of the ONNX-served model went queued -> running -> succeeded",
          "%r; error: %s" % (trans, final.get("error")))
    v = final.get("version")
    vdir = os.path.join(repo, MODEL, str(v))
    f = os.path.join(vdir, "model.cnn")
    check(v == 2 and os.path.isfile(f) and not os.path.exists(os.path.join(vdir, "model.onnx")),
          "the new version %s is onnxpp/%s/model.cnn (%s)" % (v, v, sorted(os.listdir(vdir))
                                                               if os.path.isdir(vdir) else "-"))
    info = subprocess.run([CNN, "info", f], capture_output=True, text=True).stdout
    check("parent=%s/1" % MODEL in info and "trained_by=cnnd" in info,
          "its metadata names the ONNX version as parent (parent=onnxpp/1)", info[-300:])
    h = final.get("history") or []
    print("job %d: %s" % (j["id"], "; ".join("epoch %d loss %.3f acc %.3f" % (
        e["epoch"], e["train_loss"], e["train_accuracy"]) for e in h)))
    check(len(h) == 3 and h[-1]["train_loss"] < h[0]["train_loss"],
          "the training loss fell over the 3 epochs", json.dumps(h)[:300])
    c = client()
    m = {x.get("name"): x for x in c.list_models().get("models", [])}.get(MODEL, {})
    c.close()
    check(m.get("live_version") == v and m.get("labels") == LABELS,
          "GET /v1/models: version %s live, config.ini labels kept" % v, json.dumps(m)[:300])
    ref = cnn_predict(f, imgs)
    wrong, changed = [], 0
    for p in imgs:
        r = classify(p)
        got = preds_of(r["results"][0])
        why = same_preds(got, ref[p]) if r.get("version") == v else "version %s" % r.get("version")
        if why:
            wrong.append("%s: %s" % (os.path.basename(os.path.dirname(p)), why))
        changed += got != preds_of(before[p]["results"][0])
    check(not wrong, "classify answers come from version %s and equal cnn predict of its "
          "model.cnn (%d images)" % (v, len(imgs)), "; ".join(wrong[:3]))
    check(changed == len(imgs), "the fine-tuned answers differ from version 1's (%d of %d)"
          % (changed, len(imgs)))
    done()


if __name__ == "__main__":
    main()
