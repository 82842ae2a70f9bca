#!/usr/bin/python3
"""Exports torchvision's classic CNNs with seeded random weights as a cnnd model repository
for tests/conformance/torchvision.sh: OUT/repo/NAME/1/model.onnx (opset 13, dynamic batch, eval
mode, torchvision's own weight init after torch.manual_seed(SEED), then calibrate(): random
BN statistics and a logit scale that make the test discriminating), the net's logits wrapped
in a Softmax so cnnd and ONNX Runtime both answer probabilities, plus OUT/in/NAME.f32: a
seeded batch-2 FP32 input (standard normal, like a normalised image), little-endian.

  /usr/bin/python3 torchvision_export.py OUT [--seed 0] [--models alexnet,vgg11,...]

Needs Debian's python3-torch / python3-torchvision (1.13 / 0.14) and python3-onnx; no network
(no pretrained weights).  Prints one line per model: name, parameters, seconds.
"""
import argparse
import os
import sys
import time

import torch
import torchvision

MODELS = ["alexnet", "vgg11", "googlenet", "resnet18", "resnet50", "densenet121",
          "squeezenet1_1", "mobilenet_v2"]


def build(name):
    m = torchvision.models
    if name == "googlenet":
        # no aux classifiers (eval mode drops them anyway, and they would be extra outputs);
        # init_weights=True: torchvision's truncated-normal init, stated so 0.14 does not warn;
        # transform_input=False: True re-normalises the input from ImageNet mean/std to
        # [-1,1] inside the graph (a preprocessing step for the pretrained weights, which
        # random weights do not need; config.ini is the place for preprocessing).
        return m.googlenet(weights=None, aux_logits=False, init_weights=True,
                           transform_input=False)
    return getattr(m, name)(weights=None)


class WithSoftmax(torch.nn.Module):
    """net(x) followed by a softmax over the classes (both engines then output probabilities)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return torch.softmax(self.net(x), dim=1)


def calibrate(net, x, seed):
    """Makes the random net discriminating.  torchvision's init alone leaves BN as identity
    (mean 0, var 1, gamma 1, beta 0), so activations shrink or blow up with depth (MobileNetV2's
    logits come out ~1e-9, GoogLeNet's the same for every image) and the classifier's
    N(0, 0.01) weights give near-uniform probabilities, which any engine matches within 1e-4.
    So: BN gamma/beta drawn at random and running statistics measured in training mode on
    seeded random batches (as a trained net has them), then the last Linear/Conv scaled so
    the logits on x have std 3 (the softmax then has a clear top class)."""
    g = torch.Generator().manual_seed(seed + 2)
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for bn in bns:
        bn.weight.copy_(torch.rand(bn.num_features, generator=g) + 0.5)
        bn.bias.copy_(torch.randn(bn.num_features, generator=g) * 0.2)
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the calibration batches
    if bns:
        net.train()
        for _ in range(2):
            net(torch.randn(4, 3, 224, 224, generator=g))
    net.eval()
    last = [m for m in net.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))][-1]
    k = 3.0 / net(x).std(dim=1).mean().item()
    last.weight.mul_(k)
    if last.bias is not None:
        last.bias.mul_(k)


def export(name, out, seed):
    torch.manual_seed(seed)
    net = build(name)
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        calibrate(net, x, seed)
    net = WithSoftmax(net).eval()
    d = os.path.join(out, "repo", name, "1")
    os.makedirs(d, exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(net, x, os.path.join(d, "model.onnx"), opset_version=13,
                          input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
                          do_constant_folding=True)
    os.makedirs(os.path.join(out, "in"), exist_ok=True)
    x.numpy().astype("<f4").tofile(os.path.join(out, "in", name + ".f32"))
    return sum(p.numel() for p in net.parameters())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--models", default=",".join(MODELS))
    a = ap.parse_args()
    torch.set_num_threads(1)
    for name in a.models.split(","):
        if name not in MODELS:
            sys.exit("torchvision_export.py: unknown model %s (known: %s)" % (name, ",".join(MODELS)))
        t0 = time.time()
        n = export(name, a.out, a.seed)
        print("exported %s params=%d seconds=%.1f" % (name, n, time.time() - t0), flush=True)


if __name__ == "__main__":
    main()
