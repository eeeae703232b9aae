"""The paper's networks (Li et al. 2023, section 1.2), in PyTorch.

3D (CEUS clips, N x 1 x 30 x 64 x 64): 3D-CNN, Res3D, Dense3D.
2D (B-mode ROI, N x 3 x 112 x 112): VGG, ResNet, DenseNet.
Each ends in a two-way softmax (non-HCC, HCC): the ONNX output is probabilities.
Widths are small (the paper's data set has 116 patients), so all six train on a CPU.
"""

from __future__ import annotations

import torch
from torch import nn


def _pool3d() -> nn.Module:
    return nn.MaxPool3d(kernel_size=3, stride=2, padding=1)


class CNN3D(nn.Module):
    """Conv 3x3x3 → max-pool 3x3x3, channels doubling per block, then flatten → FC →
    classifier (the paper's Fig. 4)."""

    def __init__(self, frames: int = 30, size: int = 64, width: int = 8, blocks: int = 3,
                 hidden: int = 64, dropout: float = 0.3):
        super().__init__()
        layers: list[nn.Module] = []
        c_in, c = 1, width
        d, s = frames, size
        for _ in range(blocks):
            layers += [nn.Conv3d(c_in, c, 3, padding=1), nn.BatchNorm3d(c), nn.ReLU(inplace=True),
                       _pool3d()]
            c_in, c = c, c * 2
            d, s = (d + 1) // 2, (s + 1) // 2
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(c_in * d * s * s, hidden),
                                  nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(hidden, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class _Res3DBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv3d(c_in, c_out, 3, padding=1), nn.BatchNorm3d(c_out), nn.ReLU(inplace=True),
            nn.Conv3d(c_out, c_out, 3, padding=1), nn.BatchNorm3d(c_out))
        self.skip = nn.Conv3d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.act(self.body(x) + self.skip(x))


class Res3D(nn.Module):
    def __init__(self, width: int = 8, blocks: int = 3):
        super().__init__()
        # a strided stem keeps the full-resolution work small enough for a CPU
        layers: list[nn.Module] = [nn.Conv3d(1, width, 3, stride=(1, 2, 2), padding=1),
                                   nn.BatchNorm3d(width), nn.ReLU(inplace=True)]
        c_in, c = width, width
        for _ in range(blocks):
            layers += [_Res3DBlock(c_in, c), _pool3d()]
            c_in, c = c, c * 2
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(c_in, 2))

    def forward(self, x):
        return self.head(self.features(x))


class _Dense3DBlock(nn.Module):
    def __init__(self, c_in: int, growth: int, layers: int):
        super().__init__()
        self.layers = nn.ModuleList()
        c = c_in
        for _ in range(layers):
            self.layers.append(nn.Sequential(nn.BatchNorm3d(c), nn.ReLU(inplace=True),
                                             nn.Conv3d(c, growth, 3, padding=1)))
            c += growth
        self.out_channels = c

    def forward(self, x):
        for layer in self.layers:
            x = torch.cat([x, layer(x)], 1)
        return x


class Dense3D(nn.Module):
    def __init__(self, growth: int = 6, blocks: int = 3, layers: int = 2):
        super().__init__()
        mods: list[nn.Module] = [nn.Conv3d(1, 8, 3, stride=(1, 2, 2), padding=1)]
        c = 8
        for _ in range(blocks):
            blk = _Dense3DBlock(c, growth, layers)
            c = blk.out_channels
            mods += [blk, nn.Conv3d(c, c // 2, 1), _pool3d()]
            c = c // 2
        self.features = nn.Sequential(*mods)
        self.head = nn.Sequential(nn.BatchNorm3d(c), nn.ReLU(inplace=True),
                                  nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(c, 2))

    def forward(self, x):
        return self.head(self.features(x))


class VGG2D(nn.Module):
    """Four groups of two 3x3 convs, each followed by a 2x2 max-pool, channels doubling;
    then fully connected layers and a softmax (the paper's Fig. 3)."""

    def __init__(self, width: int = 16, hidden: int = 128, dropout: float = 0.3):
        super().__init__()
        layers: list[nn.Module] = []
        c_in, c = 3, width
        for _ in range(4):
            layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                       nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2)]
            c_in, c = c, c * 2
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(c_in * 7 * 7, hidden),
                                  nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(hidden, 2))

    def forward(self, x):
        return self.head(self.features(x))


class _Res2DBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1), nn.BatchNorm2d(c_out))
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.act(self.body(x) + self.skip(x))


class ResNet2D(nn.Module):
    """VGG's layout with residual shortcuts."""

    def __init__(self, width: int = 16):
        super().__init__()
        layers: list[nn.Module] = []
        c_in, c = 3, width
        for _ in range(4):
            layers += [_Res2DBlock(c_in, c), nn.MaxPool2d(2)]
            c_in, c = c, c * 2
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, 2))

    def forward(self, x):
        return self.head(self.features(x))


class _Dense2DBlock(nn.Module):
    def __init__(self, c_in: int, growth: int, layers: int):
        super().__init__()
        self.layers = nn.ModuleList()
        c = c_in
        for _ in range(layers):
            self.layers.append(nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                                             nn.Conv2d(c, growth, 3, padding=1)))
            c += growth
        self.out_channels = c

    def forward(self, x):
        for layer in self.layers:
            x = torch.cat([x, layer(x)], 1)
        return x


class DenseNet2D(nn.Module):
    """VGG's layout with dense connections inside each group."""

    def __init__(self, growth: int = 12, layers: int = 3):
        super().__init__()
        mods: list[nn.Module] = [nn.Conv2d(3, 16, 3, padding=1)]
        c = 16
        for _ in range(4):
            blk = _Dense2DBlock(c, growth, layers)
            c = blk.out_channels
            mods += [blk, nn.Conv2d(c, c // 2, 1), nn.MaxPool2d(2)]
            c = c // 2
        self.features = nn.Sequential(*mods)
        self.head = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 2))

    def forward(self, x):
        return self.head(self.features(x))


class WithSoftmax(nn.Module):
    """Export wrapper: probabilities out, so every runtime reads the same thing."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        return torch.softmax(self.net(x), dim=1)


NETWORKS_3D = {"cnn3d": CNN3D, "res3d": Res3D, "dense3d": Dense3D}
NETWORKS_2D = {"vgg": VGG2D, "resnet": ResNet2D, "densenet": DenseNet2D}
NETWORKS = {**NETWORKS_3D, **NETWORKS_2D}
PAPER_NAMES = {"cnn3d": "3D-CNN", "res3d": "Res-3D", "dense3d": "Dense-3D", "vgg": "VGG",
               "resnet": "ResNet", "densenet": "DenseNet"}


def build(name: str, **kw) -> nn.Module:
    if name not in NETWORKS:
        raise ValueError(f"unknown network {name!r} (known: {', '.join(NETWORKS)})")
    return NETWORKS[name](**kw)
