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


# ----------------------------------------------------------------------------- landmark loss (Eq. 3-9)


def _elementary_rotation(angle: torch.Tensor, axis: int) -> torch.Tensor:
    """Right-handed rotation matrices [B, 3, 3] about image axis 0 (x), 1 (y) or 2 (z)."""
    c, s = torch.cos(angle), torch.sin(angle)
    o, z = torch.ones_like(angle), torch.zeros_like(angle)
    if axis == 0:
        m = [o, z, z, z, c, -s, z, s, c]
    elif axis == 1:
        m = [c, z, s, z, o, z, -s, z, c]
    else:
        m = [c, -s, z, s, c, z, z, z, o]
    return torch.stack(m, dim=-1).reshape(*angle.shape, 3, 3)


def pose_rotation_reference(pose: torch.Tensor) -> torch.Tensor:
    """R = Rx(-pitch) @ Ry(yaw) @ Rz(roll) from (yaw, pitch, roll) degrees, composed from
    elementary rotations (independent of the closed form in pyface.geometry and
    geometry_math.h; tests check all three agree)."""
    r = torch.deg2rad(pose)
    return (_elementary_rotation(-r[..., 1], 0) @ _elementary_rotation(r[..., 0], 1)
            @ _elementary_rotation(r[..., 2], 2))


def _normalize_shape(x: torch.Tensor) -> torch.Tensor:
    c = x - x.mean(dim=-2, keepdim=True)
    return c / c.flatten(-2).norm(dim=-1).clamp_min(1e-12)[..., None, None]


def landmark_lambda_reference(pred: torch.Tensor, pose: torch.Tensor, mean_shape: torch.Tensor) -> torch.Tensor:
    """Dynamic lambda_P [B] (Eq. 6-9): mean point distance between N(projected mean shape)
    and N(pred); no gradient."""
    with torch.no_grad():
        R = pose_rotation_reference(pose.to(pred.dtype))
        proj = torch.einsum("bij,nj->bni", R[:, :2, :], mean_shape.to(pred.dtype))
        return (_normalize_shape(proj) - _normalize_shape(pred)).norm(dim=-1).mean(dim=-1)


def landmark_loss_reference(pred: torch.Tensor, target: torch.Tensor, pose: torch.Tensor, *,
                            mean_shape: torch.Tensor | None = None, wing_w: float = 10.0, wing_eps: float = 2.0,
                            lambda_p: float | str = "dynamic", reduction: str = "mean", return_lambda: bool = False):
    """Wing + lambda_P * MSE per sample (float32, or float64 for float64 inputs)."""
    acc = torch.float64 if pred.dtype == torch.float64 else torch.float32
    pred, target = pred.to(acc), target.to(acc)
    if mean_shape is None:
        from pyface.data_files.mean_shape_68 import MEAN_SHAPE_68

        mean_shape = torch.tensor(MEAN_SHAPE_68, dtype=acc, device=pred.device)
    d = pred - target
    a = d.abs()
    C = wing_w - wing_w * math.log1p(wing_w / wing_eps)
    wing = torch.where(a < wing_w, wing_w * torch.log1p(a / wing_eps), a - C).flatten(1).mean(dim=1)
    mse = (d * d).flatten(1).mean(dim=1)
    if lambda_p == "dynamic":
        lam = landmark_lambda_reference(pred, pose, mean_shape)
    else:
        lam = torch.full((pred.shape[0],), float(lambda_p), dtype=acc, device=pred.device)
    rows = wing + lam * mse
    if reduction == "none":
        out = rows
    elif reduction == "sum":
        out = rows.sum()
    else:
        out = rows.sum() / max(pred.shape[0], 1)
    return (out, lam) if return_lambda else out


def pose_loss_reference(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eq. 2: mean absolute error over the batch and the three angles."""
    return (pred - target).abs().mean()
