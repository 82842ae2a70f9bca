#!/usr/bin/python3
"""Photo and reference preprocessing for tests/conformance/photo.sh (end to end: a JPEG through
/v1/models/NAME/classify vs a Python reference).

  /usr/bin/python3 photo_prep.py DIR MODEL

Writes DIR/photo.jpg: a 320x240 natural-looking synthetic photo (sky-to-ground gradient, a sun
disc, a hill, a house with a roof, sensor noise, then blurred a little), JPEG quality 90 via
torchvision.io.encode_jpeg; DIR/repo/MODEL/config.ini (ImageNet mean/std, shorter side 256,
center crop 224) and DIR/repo/MODEL/labels.txt (1000 made-up labels); and DIR/ref.f32, the
reference input (1,3,224,224): the same JPEG decoded by torchvision.io.decode_jpeg, resized as
torchvision's Resize(256) (shorter side 256, longer floor(256*long/short), bilinear,
align_corners=False, no antialias: torch.nn.functional.interpolate), CenterCrop(224)
(offset round((n-224)/2)), /255, (x - mean) / std.  Prints the tensor's min/max.
"""
import os
import sys

import torch
import torch.nn.functional as F
import torchvision.io as tio

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
W, H, SHORT, CROP = 320, 240, 256, 224


def photo(seed=7):
    g = torch.Generator().manual_seed(seed)
    y = torch.linspace(0, 1, H).view(H, 1).expand(H, W)
    x = torch.linspace(0, 1, W).view(1, W).expand(H, W)
    sky = torch.stack([0.35 + 0.3 * y, 0.55 + 0.25 * y, 0.95 - 0.1 * y])
    ground = torch.stack([0.25 + 0.1 * x, 0.45 - 0.1 * y, 0.15 + 0.05 * x])
    hill = (y > 0.62 - 0.12 * torch.sin(3.1 * x + 0.4)).float()
    img = sky * (1 - hill) + ground * hill
    sun = (((x - 0.8) * W) ** 2 + ((y - 0.2) * H) ** 2 < 22 ** 2).float()
    img = img * (1 - sun) + torch.tensor([1.0, 0.92, 0.6]).view(3, 1, 1) * sun
    wall = ((x > 0.2) & (x < 0.45) & (y > 0.5) & (y < 0.78)).float()
    img = img * (1 - wall) + torch.tensor([0.8, 0.72, 0.6]).view(3, 1, 1) * wall
    roof = ((y > 0.36) & (y <= 0.5) & ((x - 0.325).abs() * W < (y - 0.36) * H * 1.1)).float()
    img = img * (1 - roof) + torch.tensor([0.6, 0.15, 0.1]).view(3, 1, 1) * roof
    door = ((x > 0.3) & (x < 0.35) & (y > 0.64) & (y < 0.78)).float()
    img = img * (1 - door) + torch.tensor([0.3, 0.2, 0.1]).view(3, 1, 1) * door
    img = img + 0.03 * torch.randn(3, H, W, generator=g)
    k = torch.tensor([1.0, 2.0, 1.0]) / 4
    img = F.conv2d(F.pad(img.unsqueeze(1), (1, 1, 1, 1), mode="replicate"),
                   (k.view(3, 1) * k.view(1, 3)).view(1, 1, 3, 3)).squeeze(1)
    return (img.clamp(0, 1) * 255).round().to(torch.uint8)


def reference(jpeg):
    img = tio.decode_jpeg(jpeg, mode=tio.ImageReadMode.RGB).float()  # (3, H, W), 0..255
    h, w = img.shape[1:]
    if w <= h:
        rw, rh = SHORT, SHORT * h // w
    else:
        rw, rh = SHORT * w // h, SHORT
    r = F.interpolate(img.unsqueeze(0), size=(rh, rw), mode="bilinear", align_corners=False,
                      antialias=False)
    top, left = int(round((rh - CROP) / 2.0)), int(round((rw - CROP) / 2.0))
    r = r[:, :, top:top + CROP, left:left + CROP] / 255.0
    return (r - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


def main():
    out, model = sys.argv[1], sys.argv[2]
    jpeg = tio.encode_jpeg(photo(), quality=90)
    with open(os.path.join(out, "photo.jpg"), "wb") as f:
        f.write(bytes(jpeg.numpy().tobytes()))
    mdir = os.path.join(out, "repo", model)
    with open(os.path.join(mdir, "labels.txt"), "w") as f:
        for i in range(1000):
            f.write("synset%04d\n" % i)
    with open(os.path.join(mdir, "config.ini"), "w") as f:
        f.write("[model]\nlabels = labels.txt\n[preprocessing]\nresize = shorter_crop\n"
                "resize_short = %d\ninvert = 0\nmean = %s\nstd = %s\ninput_size = %dx%d\n" %
                (SHORT, ",".join(map(str, MEAN)), ",".join(map(str, STD)), CROP, CROP))
    with open(os.path.join(out, "photo.jpg"), "rb") as f:
        t = reference(torch.frombuffer(bytearray(f.read()), dtype=torch.uint8))
    t.contiguous().numpy().astype("<f4").tofile(os.path.join(out, "ref.f32"))
    print("photo %dx%d jpeg=%d bytes; reference input %s min %.3f max %.3f" %
          (W, H, len(jpeg), tuple(t.shape), t.min().item(), t.max().item()))


if __name__ == "__main__":
    main()
