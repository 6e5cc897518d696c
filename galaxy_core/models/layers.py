"""The layers the project's own backbone is built of: ResNet's basic residual block and the ``galaxynet`` feature
extractor (the registry's constructors put a decision-tree head on it)."""

from __future__ import annotations

import torch
from torch import nn


def conv3x3(inplanes: int, planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """ResNet's basic residual block (He et al. 2016): conv3x3-BN-ReLU-conv3x3-BN, plus the input (or its
    ``downsample``), then ReLU. The same modules under the same names, registered in the same order, as torchvision's
    ``BasicBlock`` (``tests/models/test_registry.py`` checks that the two compute the same), written out here because
    importing ``torchvision`` costs about 1.5 s at every start of the dashboard and the command line; only the
    ``resnet18`` model imports it."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))) + identity)


class GalaxyNetFeatures(nn.Module):
    """The default backbone: a ResNet-18-sized residual network for ~64-96 px galaxy cutouts.

    A 3x3 stem (stride 1, ``width // 2`` channels, then stride 2, ``width`` channels; 32 and 64 at the default
    width) replaces ResNet's 7x7 stride-2 convolution and max pool, which would shrink an 80 px cutout to 20 px
    before the first residual block. Then 4 stages of :class:`BasicBlock` (``depth[i]`` blocks each) with
    ``width * (1, 2, 4, 8)`` channels and strides (1, 2, 2, 2), and global average pooling to an ``8 * width``
    embedding. An 80 px input reaches the last stage at 5x5 px. Convolutions use Kaiming initialisation (He et al.
    2015), and the last BatchNorm of each residual block starts at zero so every block starts as the identity
    (Goyal et al. 2017, arXiv:1706.02677). Only standard convolutions, BatchNorm and ReLU, so channels_last and bf16
    autocast work unchanged.
    """

    def __init__(self, width: int = 64, depth: tuple[int, ...] = (2, 2, 2, 2)):
        super().__init__()
        if width < 2:
            raise ValueError(f"width must be at least 2, got {width}")
        if len(depth) != 4 or min(depth) < 1:
            raise ValueError(f"depth must be 4 positive block counts, got {depth}")
        self.stem = nn.Sequential(
            conv3x3(3, width // 2), nn.BatchNorm2d(width // 2), nn.ReLU(inplace=True),
            conv3x3(width // 2, width, stride=2), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
        )
        stages, inplanes = [], width
        for mult, stride, blocks in zip((1, 2, 4, 8), (1, 2, 2, 2), depth):
            planes = width * mult
            down = None
            if stride != 1 or inplanes != planes:
                down = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes))
            layers = [BasicBlock(inplanes, planes, stride, down)]
            layers += [BasicBlock(planes, planes) for _ in range(blocks - 1)]
            stages.append(nn.Sequential(*layers))
            inplanes = planes
        self.stages = nn.Sequential(*stages)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.embed_dim = 8 * width

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.modules():
            if isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.stages(self.stem(x)))
