"""Pure-PyTorch references for pyface's kernels. Tests and benchmarks import these;
they materialise every intermediate (e.g. the B x C logits) on purpose."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# Must match csrc/include/pyface/lpmc_math.h.
LPMC_COS_EPS = 1e-6


def lpmc_target_logit(cos_y: torch.Tensor, margins: torch.Tensor, scale: float, margin_type: str) -> torch.Tensor:
    """Target logit of Eq. 10: s*(cos - m) ("cosine") or s*cos(theta + m) ("arc"),
    the latter falling back to s*(cos - m*sin m) where theta + m >= pi."""
    m = margins.to(cos_y.dtype)
    if margin_type == "cosine":
        return scale * (cos_y - m)
    cc = cos_y.clamp(-1 + LPMC_COS_EPS, 1 - LPMC_COS_EPS)
    arc = cc * torch.cos(m) - torch.sqrt(1 - cc * cc) * torch.sin(m)
    fallback = torch.where(m >= math.pi, torch.ones_like(cos_y, dtype=torch.bool),
                           (m > 0) & (cos_y <= -torch.cos(m)))
    return scale * torch.where(fallback, cos_y - m * torch.sin(m), arc)


def lpmc_loss_reference(embeddings: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, margins: torch.Tensor,
                        *, scale: float = 64.0, margin_type: str = "cosine", ignore_index: int = -1,
                        reduction: str = "mean") -> torch.Tensor:
    """LPMC loss with the full B x C logit matrix; losses computed in float32 (or float64)."""
    acc = torch.float64 if embeddings.dtype == torch.float64 else torch.float32
    cos = F.linear(F.normalize(embeddings, dim=1), F.normalize(weight, dim=1)).to(acc)
    valid = labels != ignore_index
    safe = torch.where(valid, labels, torch.zeros_like(labels))
    logits = scale * cos
    if cos.shape[1] > 0:
        cos_y = cos.gather(1, safe[:, None])[:, 0]
        tgt = lpmc_target_logit(cos_y, margins, scale, margin_type)
        logits = logits.scatter(1, safe[:, None], tgt[:, None])
        rows = torch.logsumexp(logits, dim=1) - tgt
    else:
        rows = torch.zeros(cos.shape[0], dtype=acc, device=cos.device)
    rows = torch.where(valid, rows, torch.zeros_like(rows))
    if reduction == "none":
        return rows
    if reduction == "sum":
        return rows.sum()
    return rows.sum() / valid.sum().clamp(min=1)
