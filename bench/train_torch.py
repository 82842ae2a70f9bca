#!/usr/bin/python3
"""PyTorch side of the training benchmark (bench/train.sh): the fashion_cnn architecture of
core/arch_classic.c, trained with SGD (momentum 0.9, weight decay 5e-4, cosine schedule) on
Fashion-MNIST batches for a fixed number of steps, as `cnn train fashion_cnn --steps N` does.

Prints one line: "torch train throughput: S steps, batch B, I images in T s after W warm-up
steps: X images/s".  Data loading and normalisation happen before the clock starts, and each
step takes its batch from a tensor already in memory (cnn train does the same: the dataset is
decoded once, batches are gathered from memory).

usage: /usr/bin/python3 bench/train_torch.py --steps 200 --batch 64 --threads 2 \
           [--data /usr/share/datasets/fashion-mnist] [--warmup 5] [--seed 1]
"""
import argparse
import gzip
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn

MEAN, STD = 0.2860, 0.3530  # core/arch.c FASHION28


def fashion_cnn(classes=10):
    """Layer for layer core/arch_classic.c cnn_arch_fashion_cnn (468,010 parameters)."""

    def block(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

    return nn.Sequential(
        *block(1, 32), *block(32, 32), nn.MaxPool2d(2),
        *block(32, 64), *block(64, 64), nn.MaxPool2d(2),
        nn.Dropout(0.25), nn.Flatten(), nn.Linear(3136, 128), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(128, classes))


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    ndims = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndims).reshape(dims)


def find(folder, stem):
    for ext in ("", ".gz"):
        p = os.path.join(folder, stem + ext)
        if os.path.exists(p):
            return p
    sys.exit(f"train_torch.py: no {stem}[.gz] in {folder}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    x = read_idx(find(a.data, "train-images-idx3-ubyte"))
    y = read_idx(find(a.data, "train-labels-idx1-ubyte"))
    images = (torch.from_numpy(x.astype(np.float32) / 255.0) - MEAN) / STD
    images = images.unsqueeze(1).contiguous()  # N, 1, 28, 28
    labels = torch.from_numpy(y.astype(np.int64))

    model = fashion_cnn()
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=0.9, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, a.steps) / a.steps)))
    loss_fn = nn.CrossEntropyLoss()
    order = torch.randperm(images.shape[0])
    warm = a.warmup if a.steps > a.warmup else 0
    t0 = None
    for step in range(a.steps):
        if step == warm:
            t0 = time.perf_counter()
        first = (step * a.batch) % (images.shape[0] - a.batch)
        idx = order[first:first + a.batch]
        xb, yb = images[idx], labels[idx]
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
        sched.step()
    secs = time.perf_counter() - t0
    n = (a.steps - warm) * a.batch
    print(f"torch train throughput: {a.steps} steps, batch {a.batch}, {n} images in {secs:.3f} s "
          f"after {warm} warm-up steps: {n / secs:.1f} images/s "
          f"(torch {torch.__version__}, {torch.get_num_threads()} threads, last loss "
          f"{loss.item():.4f})")


if __name__ == "__main__":
    main()
