"""Task heads on a stage-4 feature map [B, C, s, s].

All three flatten the whole map (as the insightface FR head does); with IResNet50 at
112x112 this reproduces the parameter counts of the paper's Table 8 MTL rows.
"""
from __future__ import annotations

import torch
from torch import nn

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
    The FC predicts coordinates in [-1, 1] image units, zero-initialised (image centre)."""

    def __init__(self, channels: int, size: int, input_size: int):
        super().__init__()
        self.input_size = input_size
        self.bn = nn.BatchNorm2d(channels, eps=1e-5)
        self.fc = nn.Linear(channels * size * size, NUM_LANDMARKS * 2)
        nn.init.zeros_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        u = self.fc(torch.flatten(self.bn(f), 1)).float().view(-1, NUM_LANDMARKS, 2)
        return (u + 1.0) * (0.5 * self.input_size)


class PoseHead(nn.Module):
    """HPE: BN2d - FC -> [B, 3] (yaw, pitch, roll) in degrees; the FC output is in units of
    ``scale`` degrees, zero-initialised (frontal)."""

    def __init__(self, channels: int, size: int, scale: float = 90.0):
        super().__init__()
        self.scale = scale
        self.bn = nn.BatchNorm2d(channels, eps=1e-5)
        self.fc = nn.Linear(channels * size * size, 3)
        nn.init.zeros_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.bn(f), 1)).float() * self.scale
