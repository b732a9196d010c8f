"""The eye-blink head (Lee et al. 2024, Alg. 1 l. 5-6, after Hu et al. 2019): the whole
ResNet trunk (branch point 4), global average pooling and one logit, > 0 = closed.

Registered as the head "eyeblink" (output "eye_closed"); the preset ``resnet18-eyeblink``
is the paper's ResNet18 on 32 x 32 eye crops (pyface.data.eyes).
"""
from __future__ import annotations

import torch
from torch import nn

from pyface.models.heads import register_head

__all__ = ["EyeBlinkHead"]


class EyeBlinkHead(nn.Module):
    """Stage-4 map [B, C, s, s] -> logit [B] (P(closed) = sigmoid)."""

    def __init__(self, channels: int):
        super().__init__()
        self.fc = nn.Linear(channels, 1)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.fc(f.float().mean((2, 3))).squeeze(1)


@register_head("eyeblink", output="eye_closed", branch_point=4)
def eyeblink_head(cfg, trunk, **_):
    return EyeBlinkHead(trunk.out_channels)
