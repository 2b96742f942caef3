"""PyTorch definitions of G_l2h with the same variable names as plugin/src/model/arch.rs.

Used as the independent reference: tests check that a checkpoint written here gives the
same output in the element/tch, and benchmarks time PyTorch eager on the same weights.
"""
import json

import torch
import torch.nn as nn
import torch.nn.functional as F

FORMAT = "cyclesr-sr/1"


def conv3x3(c_in, c_out):
    return nn.Conv2d(c_in, c_out, 3, padding=1)


class ResidualBlockNoBN(nn.Module):
    def __init__(self, nf):
        super().__init__()
        self.conv1 = conv3x3(nf, nf)
        self.conv2 = conv3x3(nf, nf)

    def forward(self, x):
        return x + self.conv2(F.relu(self.conv1(x)))


class MSRResNet(nn.Module):
    """BasicSR's MSRResNet: no BN, bilinear base added to the output."""

    def __init__(self, blocks=16, features=64, scale=4):
        super().__init__()
        self.scale = scale
        self.conv_first = conv3x3(3, features)
        self.body = nn.Sequential(*[ResidualBlockNoBN(features) for _ in range(blocks)])
        self.upconv1 = conv3x3(features, features * 4)
        if scale == 4:
            self.upconv2 = conv3x3(features, features * 4)
        self.conv_hr = conv3x3(features, features)
        self.conv_last = conv3x3(features, 3)

    def forward(self, x):
        feat = F.leaky_relu(self.conv_first(x), 0.1)
        out = self.body(feat)
        out = F.leaky_relu(F.pixel_shuffle(self.upconv1(out), 2), 0.1)
        if self.scale == 4:
            out = F.leaky_relu(F.pixel_shuffle(self.upconv2(out), 2), 0.1)
        out = self.conv_last(F.leaky_relu(self.conv_hr(out), 0.1))
        base = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        return out + base


class ConvBN(nn.Module):
    def __init__(self, nf, activate):
        super().__init__()
        self.conv = conv3x3(nf, nf)
        self.bn = nn.BatchNorm2d(nf)
        self.activate = activate

    def forward(self, x):
        y = self.bn(self.conv(x))
        return F.relu(y) if self.activate else y


class VDSR(nn.Module):
    """vega's VDSR on LR input: conv-BN-ReLU blocks + conv-BN under a global residual."""

    def __init__(self, blocks=20, features=64, scale=4):
        super().__init__()
        self.scale = scale
        self.conv_first = conv3x3(3, features)
        self.body = nn.Sequential(*[ConvBN(features, i < blocks) for i in range(blocks + 1)])
        self.upconv1 = conv3x3(features, features * 4)
        if scale == 4:
            self.upconv2 = conv3x3(features, features * 4)
        self.conv_hr = conv3x3(features, features)
        self.conv_last = conv3x3(features, 3)

    def forward(self, x):
        head = self.conv_first(x)
        feat = self.body(head) + head
        feat = F.relu(F.pixel_shuffle(self.upconv1(feat), 2))
        if self.scale == 4:
            feat = F.relu(F.pixel_shuffle(self.upconv2(feat), 2))
        return self.conv_last(F.relu(self.conv_hr(feat)))


def build(arch, blocks, features, scale):
    cls = {"srresnet": MSRResNet, "vdsr": VDSR}[arch]
    return cls(blocks=blocks, features=features, scale=scale)


def checkpoint_metadata(arch, blocks, features, scale, provenance=None):
    return {
        "format": FORMAT,
        "network": json.dumps({"arch": arch, "blocks": blocks, "features": features, "scale": scale}),
        "io": json.dumps({"color": "rgb", "range": [0.0, 1.0]}),
        "provenance": json.dumps(provenance or {}),
    }
