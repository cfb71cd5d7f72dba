#!/usr/bin/python3
# make_image_fixtures.py — dev script (not part of the product or its tests): writes the torchvision
# references that tests/test_data.cpp compares engine/io/image.* against. Needs Debian's
# python3-torchvision (torchvision 0.14.1, Pillow 9.4); run with /usr/bin/python3:
#   /usr/bin/python3 tools/make_image_fixtures.py            (from the project root)
# Inputs: the real images committed in tests/fixtures/images/ (provenance in tests/fixtures/README.md).
# Outputs, in tests/fixtures/:
#   <stem>_eval.npy      float32 (3,224,224): ImageFolder's loader (Image.open(f).convert('RGB')), then
#                        Resize(256) + CenterCrop(224) + ToTensor + Normalize(ImageNet mean/std)
#   <stem>_rgb_u8.npy    uint8 (H,W,3): Image.open(f).convert('RGB') (only for the small RGBA icon)
import os
import sys

import numpy as np
from PIL import Image
import torchvision
from torchvision import transforms

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")
EVAL_IMAGES = ["rocket.jpg", "wizard.jpg", "objects.jpg", "coins.png"]
RGB_ONLY = ["headphones_rgba.png"]

tf = transforms.Compose([
    transforms.Resize(256),
    transforms.CenterCrop(224),
    transforms.ToTensor(),
    transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
])


def pil_rgb(path):
    with open(path, "rb") as f:  # torchvision.datasets.folder.pil_loader
        return Image.open(f).convert("RGB")


def main():
    print(f"torchvision {torchvision.__version__}, Pillow {Image.__version__}", file=sys.stderr)
    for name in EVAL_IMAGES:
        src = os.path.join(ROOT, "images", name)
        with Image.open(src) as im:
            mode, size = im.mode, im.size
        x = tf(pil_rgb(src)).numpy().astype(np.float32)
        out = os.path.join(ROOT, os.path.splitext(name)[0] + "_eval.npy")
        np.save(out, x)
        print(f"{name}: {mode} {size[0]}x{size[1]} -> {out} {x.shape}", file=sys.stderr)
    for name in RGB_ONLY:
        src = os.path.join(ROOT, "images", name)
        a = np.ascontiguousarray(np.asarray(pil_rgb(src), dtype=np.uint8))
        out = os.path.join(ROOT, os.path.splitext(name)[0] + "_rgb_u8.npy")
        np.save(out, a)
        print(f"{name}: -> {out} {a.shape}", file=sys.stderr)


if __name__ == "__main__":
    main()
