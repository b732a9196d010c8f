"""Task heads on a stage-4 feature map [B, C, s, s].

All three flatten the whole map (as the insightface FR head does); with IResNet50 at
112x112 this reproduces the parameter counts of the paper's Table 8 MTL rows.

The regression FCs (landmarks, pose) have no normalisation after them, and their
fan-in is large (25088 for IResNet50 at 112): with plain SGD one step would move the
outputs by lr * grad * fan_in. They are therefore written as ``out_scale *
fc(x) / sqrt(fan_in)`` (an "equalised learning rate" parametrisation), which makes
the step of the head independent of the feature-map size.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from pyface.registry import Registry

NUM_LANDMARKS = 68


class EmbeddingHead(nn.Module):
    """FR: BN2d - dropout - FC - BN1d -> [B, dim] embedding (insightface layout; the
    final BN has a fixed unit scale)."""

    def __init__(self, channels: int, size: int, dim: int = 512, dropout: float = 0.0):
        super().__init__()
        self.bn2 = nn.BatchNorm2d(channels, eps=1e-5)
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(channels * size * size, dim)
        self.features = nn.BatchNorm1d(dim, eps=1e-5)
        nn.init.constant_(self.features.weight, 1.0)
        self.features.weight.requires_grad = False

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.dropout(self.bn2(f)), 1)
        return self.features(self.fc(x))


class LandmarkHead(nn.Module):
    """FLD: BN2d - FC -> [B, 68, 2] (x, y) in pixels of the ``input_size`` network input.
    The FC predicts u in [-1, 1] image units (x = (u + 1) * input_size / 2), zero-initialised
    (every point at the image centre)."""

    def __init__(self, channels: int, size: int, input_size: int, out_scale: float = 1.0):
        super().__init__()
        self.input_size = input_size
        self.bn = nn.BatchNorm2d(channels, eps=1e-5)
        self.fc = nn.Linear(channels * size * size, NUM_LANDMARKS * 2)
        self.mult = out_scale / math.sqrt(self.fc.in_features)
        nn.init.zeros_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        u = self.fc(torch.flatten(self.bn(f), 1)).float().view(-1, NUM_LANDMARKS, 2) * self.mult
        return (u + 1.0) * (0.5 * self.input_size)


class PoseHead(nn.Module):
    """HPE: BN2d - FC -> [B, 3] (yaw, pitch, roll) in degrees, zero-initialised (frontal);
    ``out_scale`` sets the head's step size in degrees (see the module docstring)."""

    def __init__(self, channels: int, size: int, out_scale: float = 3.0):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, eps=1e-5)
        self.fc = nn.Linear(channels * size * size, 3)
        self.mult = out_scale / math.sqrt(self.fc.in_features)
        nn.init.zeros_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.bn(f), 1)).float() * self.mult


# ---------------------------------------------------------------------- head registry
class HeadSpec:
    """A registered head: ``build(config, trunk, **options) -> nn.Module`` taking the trunk
    features after stage ``branch_point`` (1..4) and returning the tensor stored under
    ``output`` in :class:`~pyface.models.MultiTaskNet`'s output dict."""

    def __init__(self, name: str, build, output: str, branch_point):
        self.name, self.build, self.output = name, build, output
        self._branch_point = branch_point

    def branch_point(self, **options) -> int:
        bp = self._branch_point(**options) if callable(self._branch_point) else self._branch_point
        if bp not in (1, 2, 3, 4):
            raise ValueError(f"head {self.name!r}: branch point must be 1, 2, 3 or 4, got {bp!r}")
        return bp


#: name -> :class:`HeadSpec` (``HEADS.names()``, ``HEADS.get(name)``; unknown names suggest close ones).
HEADS: Registry[HeadSpec] = Registry("head")


def register_head(name: str, *, output: str, branch_point=3):
    """Decorator: ``@register_head("fld", output="landmarks")`` on a builder
    ``fn(config, trunk, **options) -> nn.Module``. ``branch_point`` is the trunk stage
    (1..4) whose output the head consumes, or a function of the head options."""

    def deco(fn):
        HEADS.register(name, HeadSpec(name, fn, output, branch_point))
        return fn

    return deco


class Stage4Branch(nn.Module):
    """Lee et al.'s 3:1 split: a private copy of stage 4 followed by the task head."""

    def __init__(self, stage4: nn.Module, head: nn.Module):
        super().__init__()
        self.stage4, self.head = stage4, head

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.head(self.stage4(f))


@register_head("fr", output="embedding")
def fr_head(cfg, trunk, **_):
    s = trunk.feature_size(cfg.input_size)
    return Stage4Branch(trunk.make_layer4(), EmbeddingHead(trunk.out_channels, s, cfg.embedding_dim, cfg.dropout))


@register_head("fld", output="landmarks")
def fld_head(cfg, trunk, **_):
    s = trunk.feature_size(cfg.input_size)
    return Stage4Branch(trunk.make_layer4(), LandmarkHead(trunk.out_channels, s, cfg.input_size,
                                                          cfg.landmark_scale))


@register_head("hpe", output="pose")
def hpe_head(cfg, trunk, **_):
    s = trunk.feature_size(cfg.input_size)
    return Stage4Branch(trunk.make_layer4(), PoseHead(trunk.out_channels, s, cfg.pose_scale))
