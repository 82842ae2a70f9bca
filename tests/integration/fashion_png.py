#!/usr/bin/env python3
"""Writes Fashion-MNIST test images as 28x28 8-bit grayscale PNG files (standard library only).

  fashion_png.py OUTDIR                 one image per class in CLASSES, named by class (sneaker.png)
  fashion_png.py OUTDIR --first N       the first N test images, named img000.png ...
Reads the IDX files (gzip) from --data (default /usr/share/datasets/fashion-mnist)."""
import argparse
import gzip
import os
import struct
import sys
import zlib

NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
# The classes shipped in models/samples/, as file names.
CLASSES = {1: "trouser", 3: "dress", 5: "sandal", 7: "sneaker", 8: "bag", 9: "ankle_boot"}


def read_idx(path, want_magic):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack(">I", data[:4])[0]
    if magic != want_magic:
        sys.exit("%s: magic %#x, expected %#x" % (path, magic, want_magic))
    ndim = magic & 0xFF
    dims = struct.unpack(">%dI" % ndim, data[4:4 + 4 * ndim])
    body = data[4 + 4 * ndim:]
    size = 1
    for d in dims:
        size *= d
    if len(body) != size:
        sys.exit("%s: %d data bytes, header says %d" % (path, len(body), size))
    return dims, body


def png_gray8(width, height, pixels):
    """PNG bytes of a grayscale 8-bit image; pixels is row-major bytes."""
    def chunk(kind, payload):
        crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)
    raw = b"".join(b"\x00" + pixels[y * width:(y + 1) * width] for y in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) +
            chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("outdir")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--first", type=int, default=0, help="write the first N images instead")
    a = ap.parse_args()
    (n, rows, cols), images = read_idx(os.path.join(a.data, "t10k-images-idx3-ubyte.gz"), 0x803)
    (nl,), labels = read_idx(os.path.join(a.data, "t10k-labels-idx1-ubyte.gz"), 0x801)
    if nl != n:
        sys.exit("image count %d != label count %d" % (n, nl))
    os.makedirs(a.outdir, exist_ok=True)
    px = rows * cols
    if a.first > 0:
        picks = [(i, "img%03d" % i) for i in range(min(a.first, n))]
    else:
        picks = []
        for cls, name in sorted(CLASSES.items()):
            i = labels.index(cls)  # first test image of that class
            picks.append((i, name))
    for i, name in picks:
        path = os.path.join(a.outdir, name + ".png")
        with open(path, "wb") as f:
            f.write(png_gray8(cols, rows, images[i * px:(i + 1) * px]))
        print("%s test[%d] label %d (%s)" % (path, i, labels[i], NAMES[labels[i]]))


if __name__ == "__main__":
    main()
