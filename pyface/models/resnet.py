"""ResNet (He et al. 2016, standard torchvision layout) and IResNet (the insightface
face-recognition layout of ArcFace / Partial FC), written here because torchvision
is not a dependency.

Both expose the same trunk interface used by :class:`pyface.models.MultiTaskNet`:
``stem`` then ``layer1`` .. ``layer4``, ``make_layer4()`` (a freshly initialised copy
of stage 4), ``out_channels`` and ``feature_size(input_size)`` (the stage-4 map side).
Inputs: float [B, 3, H, W] normalised images, any side from 64 to 224.
"""
from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["Trunk", "init_weights", "ResNet", "IResNet", "resnet18", "resnet50", "iresnet18", "iresnet50", "iresnet100"]


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def _conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1, self.bn1 = _conv3x3(cin, planes, stride), nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = _conv3x3(planes, planes), nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + idt)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1, self.bn1 = _conv1x1(cin, planes), nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = _conv3x3(planes, planes, stride), nn.BatchNorm2d(planes)
        self.conv3, self.bn3 = _conv1x1(planes, planes * 4), nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + idt)


class IBasicBlock(nn.Module):
    """insightface block: BN-conv3x3-BN-PReLU-conv3x3(stride)-BN, plus shortcut, no final activation."""
    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin, eps=1e-5)
        self.conv1 = _conv3x3(cin, planes)
        self.bn2 = nn.BatchNorm2d(planes, eps=1e-5)
        self.prelu = nn.PReLU(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn3 = nn.BatchNorm2d(planes, eps=1e-5)
        self.downsample = downsample

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + idt


def init_weights(module: nn.Module) -> None:
    """The trunks' initialisation: Kaiming-normal (fan out) convolutions, unit-scale and
    zero-shift batch norms (also for head branches built from the same blocks)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)) and m.affine:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class Trunk(nn.Module):
    """Shared machinery of :class:`ResNet` and :class:`IResNet`: four stages of ``block``
    with widths w, 2w, 4w, 8w. A head builder (:func:`pyface.models.register_head`)
    receives one: ``out_channels``, ``feature_size(input_size)``, ``make_layer4()``."""

    block: type
    first_stride: int

    def __init__(self, layers: tuple[int, int, int, int], width: int):
        super().__init__()
        if len(layers) != 4 or min(layers) < 1:
            raise ValueError(f"layers must be 4 positive block counts, got {layers}")
        if width < 1:
            raise ValueError(f"width must be >= 1, got {width}")
        self.layers_cfg, self.width = tuple(layers), width
        self.inplanes = width
        self.layer1 = self._make_layer(width, layers[0], self.first_stride)
        self.layer2 = self._make_layer(2 * width, layers[1], 2)
        self.layer3 = self._make_layer(4 * width, layers[2], 2)
        self._layer4_in = self.inplanes
        self.layer4 = self._make_layer(8 * width, layers[3], 2)
        self.out_channels = 8 * width * self.block.expansion

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        down = None
        if stride != 1 or self.inplanes != planes * self.block.expansion:
            down = nn.Sequential(_conv1x1(self.inplanes, planes * self.block.expansion, stride),
                                 nn.BatchNorm2d(planes * self.block.expansion))
        mods = [self.block(self.inplanes, planes, stride, down)]
        self.inplanes = planes * self.block.expansion
        mods += [self.block(self.inplanes, planes) for _ in range(1, blocks)]
        seq = nn.Sequential(*mods)
        init_weights(seq)
        return seq

    def make_layer4(self) -> nn.Sequential:
        """A freshly initialised stage 4 (one per task in MultiTaskNet)."""
        saved, self.inplanes = self.inplanes, self._layer4_in
        try:
            return self._make_layer(8 * self.width, self.layers_cfg[3], 2)
        finally:
            self.inplanes = saved

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.stem(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] -> stage-4 map [B, out_channels, s, s] with s = feature_size(H)."""
        x = self.stem(x)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def _check_size(input_size: int) -> None:
    if not 32 <= input_size <= 448:
        raise ValueError(f"input_size must be in [32, 448] (64-224 intended), got {input_size}")


class ResNet(Trunk):
    """Standard ResNet: conv7x7/2 + maxpool/2 stem, stages with strides 1, 2, 2, 2 (total /32),
    global-average-pooled classifier ``fc`` when ``num_classes`` is given."""

    def __init__(self, block: type, layers, width: int = 64, num_classes: int | None = None):
        self.block, self.first_stride = block, 1
        super().__init__(layers, width)
        self.stem = nn.Sequential(nn.Conv2d(3, width, 7, 2, 3, bias=False), nn.BatchNorm2d(width),
                                  nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
        init_weights(self.stem)
        self.fc = nn.Linear(self.out_channels, num_classes) if num_classes else None

    @staticmethod
    def feature_size(input_size: int) -> int:
        _check_size(input_size)
        s = (input_size + 2 * 3 - 7) // 2 + 1        # conv7x7/2
        s = (s + 2 - 3) // 2 + 1                     # maxpool 3/2
        for _ in range(3):
            s = (s + 2 - 3) // 2 + 1                 # stride-2 3x3 convs of stages 2-4
        return s

    def forward(self, x):
        f = self.forward_features(x)
        return f if self.fc is None else self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(f, 1), 1))


class IResNet(Trunk):
    """insightface IResNet: conv3x3/1 + BN + PReLU stem, IBasicBlock stages all with
    stride 2 (total /16: 112 -> 7x7), and optionally the insightface FR head
    BN2d - dropout - FC - BN1d producing ``num_features``-d embeddings."""

    def __init__(self, layers, width: int = 64, num_features: int | None = None, input_size: int = 112,
                 dropout: float = 0.0):
        self.block, self.first_stride = IBasicBlock, 2
        super().__init__(layers, width)
        self.stem = nn.Sequential(_conv3x3(3, width), nn.BatchNorm2d(width, eps=1e-5), nn.PReLU(width))
        init_weights(self.stem)
        self.head = None
        if num_features:
            from pyface.models.heads import EmbeddingHead

            self.head = EmbeddingHead(self.out_channels, self.feature_size(input_size), num_features, dropout)

    @staticmethod
    def feature_size(input_size: int) -> int:
        _check_size(input_size)
        s = input_size
        for _ in range(4):
            s = math.ceil(s / 2)
        return s

    def forward(self, x):
        f = self.forward_features(x)
        return f if self.head is None else self.head(f)


def resnet18(**kw) -> ResNet:
    return ResNet(BasicBlock, (2, 2, 2, 2), **kw)


def resnet50(**kw) -> ResNet:
    return ResNet(Bottleneck, (3, 4, 6, 3), **kw)


def iresnet18(**kw) -> IResNet:
    return IResNet((2, 2, 2, 2), **kw)


def iresnet50(**kw) -> IResNet:
    return IResNet((3, 4, 14, 3), **kw)


def iresnet100(**kw) -> IResNet:
    return IResNet((3, 13, 30, 3), **kw)
