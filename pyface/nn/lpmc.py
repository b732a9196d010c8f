from __future__ import annotations

import math

import torch
from torch import nn

from pyface.ops import lpmc_loss, pose_margin
from pyface.ops.lpmc import POSE_MARGIN_M1, POSE_MARGIN_M2
from pyface.ops.reference import lpmc_loss_reference


class LPMCLoss(nn.Module):
    """Large-pose margin cosine loss head (Eq. 10): owns the class centres W [C, D].

    forward(embeddings [B, D], labels [B], pose [B, 3] (yaw, pitch, roll) degrees)
    -> scalar loss; the margin of sample i is m1 + m2 * gamma_P(pose_i).
    ``fused=False`` computes the same loss with the pure-PyTorch reference (A/B runs).
    """

    def __init__(self, num_classes: int, embedding_dim: int, m1: float = POSE_MARGIN_M1, m2: float = POSE_MARGIN_M2,
                 scale: float = 64.0, margin_type: str = "cosine", *, ignore_index: int = -1,
                 chunk_size: int | None = None, fused: bool = True):
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if embedding_dim < 1:
            raise ValueError(f"embedding_dim must be >= 1, got {embedding_dim}")
        if margin_type not in ("cosine", "arc"):
            raise ValueError(f"margin_type must be 'cosine' or 'arc', got {margin_type!r}")
        self.num_classes, self.embedding_dim = num_classes, embedding_dim
        self.m1, self.m2, self.scale, self.margin_type = m1, m2, scale, margin_type
        self.ignore_index, self.chunk_size, self.fused = ignore_index, chunk_size, fused
        self.weight = nn.Parameter(torch.empty(num_classes, embedding_dim))
        nn.init.normal_(self.weight, std=1.0 / math.sqrt(embedding_dim))

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
        margins = pose_margin(pose, self.m1, self.m2).to(embeddings.device)
        w = self.weight if self.weight.dtype == embeddings.dtype else self.weight.to(embeddings.dtype)
        if self.fused:
            return lpmc_loss(embeddings, w, labels, margins, scale=self.scale, margin_type=self.margin_type,
                             ignore_index=self.ignore_index, chunk_size=self.chunk_size)
        return lpmc_loss_reference(embeddings, w, labels, margins, scale=self.scale, margin_type=self.margin_type,
                                   ignore_index=self.ignore_index)

    def extra_repr(self) -> str:
        return (f"num_classes={self.num_classes}, embedding_dim={self.embedding_dim}, m1={self.m1}, m2={self.m2}, "
                f"scale={self.scale}, margin_type={self.margin_type!r}, fused={self.fused}")
