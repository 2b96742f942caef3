#!/usr/bin/env python3
"""Convert torchvision's VGG19 weights to the safetensors file of cyclesr's perceptual loss.

    python scripts/convert_vgg19.py vgg19-dcbb9e9d.pth vgg19.safetensors

Keeps the `features.*` tensors under torchvision's names (what `load_vgg19` in
train/src/archs/vgg.rs reads) and drops the classifier. Needs torch and safetensors only:
the .pth is a plain state dict, so torchvision itself is not required.
"""

import argparse
import os
import sys

import torch
from safetensors.torch import save_file

# Indices of the 16 convolutions in torchvision's `vgg19().features` (no batch norm).
VGG19_CONVS = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pth", help="torchvision VGG19 state dict, e.g. vgg19-dcbb9e9d.pth")
    parser.add_argument("out", help="safetensors file to write")
    args = parser.parse_args()

    state = torch.load(args.pth, map_location="cpu", weights_only=True)
    features = {
        name: tensor.float().contiguous()
        for name, tensor in state.items()
        if name.startswith("features.")
    }
    # Refuse look-alikes (vgg16, vgg19_bn) here rather than at training start.
    for i in VGG19_CONVS:
        weight = features.get(f"features.{i}.weight")
        if weight is None or weight.dim() != 4 or f"features.{i}.bias" not in features:
            print(
                f"{args.pth}: no convolution features.{i}: not torchvision's vgg19 weights",
                file=sys.stderr,
            )
            return 1

    save_file(features, args.out, metadata={"source": os.path.basename(args.pth)})
    print(f"wrote {len(features)} tensors to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
