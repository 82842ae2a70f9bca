#!/usr/bin/env python3
"""Writes a small Fashion-MNIST subset for the admin tests (standard library only).

  fm_subset.py OUT --per-class N [--classes 1,8,9] [--skip K] [--format idx|folder]

idx:    OUT/train-images-idx3-ubyte and OUT/train-labels-idx1-ubyte (uncompressed, original
        labels 0..9), the first N images of each chosen class after skipping K of it.
folder: OUT/<class name>/NNNNN.png (8-bit gray PNG), names as cnnd stores examples
        ("T-shirt/top" -> "T-shirt%2Ftop").
Reads the training IDX files (gzip) from --data (default /usr/share/datasets/fashion-mnist)."""
import argparse
import os
import struct
import sys

from fashion_png import NAMES, png_gray8, read_idx


def label_dir(label):
    keep = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _.,+-")
    out = []
    for i, ch in enumerate(label.encode()):
        c = chr(ch)
        out.append(c if c in keep and not (i == 0 and c == ".") else "%%%02X" % ch)
    return "".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--per-class", type=int, required=True)
    ap.add_argument("--classes", default="0,1,2,3,4,5,6,7,8,9")
    ap.add_argument("--skip", type=int, default=0)
    ap.add_argument("--format", choices=["idx", "folder"], default="idx")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    a = ap.parse_args()
    classes = [int(c) for c in a.classes.split(",")]
    (n, rows, cols), images = read_idx(os.path.join(a.data, "train-images-idx3-ubyte.gz"), 0x803)
    (nl,), labels = read_idx(os.path.join(a.data, "train-labels-idx1-ubyte.gz"), 0x801)
    if nl != n:
        sys.exit("image count %d != label count %d" % (n, nl))
    px = rows * cols
    seen = {c: 0 for c in classes}
    picks = []
    for i in range(n):
        c = labels[i]
        if c in seen:
            seen[c] += 1
            if a.skip < seen[c] <= a.skip + a.per_class:
                picks.append(i)
    os.makedirs(a.out, exist_ok=True)
    if a.format == "idx":
        with open(os.path.join(a.out, "train-images-idx3-ubyte"), "wb") as f:
            f.write(struct.pack(">IIII", 0x803, len(picks), rows, cols))
            f.write(b"".join(images[i * px:(i + 1) * px] for i in picks))
        with open(os.path.join(a.out, "train-labels-idx1-ubyte"), "wb") as f:
            f.write(struct.pack(">II", 0x801, len(picks)))
            f.write(bytes(labels[i] for i in picks))
    else:
        for k, i in enumerate(picks):
            d = os.path.join(a.out, label_dir(NAMES[labels[i]]))
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, "%05d.png" % k), "wb") as f:
                f.write(png_gray8(cols, rows, images[i * px:(i + 1) * px]))
    print("%s: %d images of classes %s (%s)" % (a.out, len(picks), a.classes, a.format))


if __name__ == "__main__":
    main()
