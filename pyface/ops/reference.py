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


def _lpmc_logits_reference(embeddings, weight, labels, margins, scale, margin_type, ignore_index, class_offset=0):
    """Logits [B, C] of the classes [class_offset, class_offset + C) that ``weight``
    holds (target logit in place where the shard owns the label), the target logit
    [B] (0 where not owned) and the row masks (valid, owned)."""
    acc = torch.float64 if embeddings.dtype == torch.float64 else torch.float32
    cos = F.linear(F.normalize(embeddings, dim=1), F.normalize(weight, dim=1)).to(acc)
    valid = labels != ignore_index
    local = labels - class_offset
    owned = valid & (local >= 0) & (local < cos.shape[1])
    safe = torch.where(owned, local, torch.zeros_like(local))
    logits = scale * cos
    tgt = torch.zeros(cos.shape[0], dtype=acc, device=cos.device)
    if cos.shape[1] > 0:
        cos_y = cos.gather(1, safe[:, None])[:, 0]
        tgt = torch.where(owned, lpmc_target_logit(cos_y, margins, scale, margin_type), tgt)
        logits = torch.where(owned[:, None] & (torch.arange(cos.shape[1], device=cos.device) == safe[:, None]),
                             tgt[:, None], logits)
    return logits, tgt, valid, owned


def lpmc_loss_reference(embeddings: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, margins: torch.Tensor,
                        *, scale: float = 64.0, margin_type: str = "cosine", ignore_index: int = -1,
                        reduction: str = "mean") -> torch.Tensor:
    """LPMC loss with the full B x C logit matrix; losses computed in float32 (or float64)."""
    logits, tgt, valid, _ = _lpmc_logits_reference(embeddings, weight, labels, margins, scale, margin_type,
                                                   ignore_index)
    if logits.shape[1] > 0:
        rows = torch.logsumexp(logits, dim=1) - tgt
    else:
        rows = torch.zeros_like(tgt)
    rows = torch.where(valid, rows, torch.zeros_like(rows))
    if reduction == "none":
        return rows
    if reduction == "sum":
        return rows.sum()
    return rows.sum() / valid.sum().clamp(min=1)


def lpmc_shard_stats_reference(embeddings, weight_shard, labels, margins, *, class_offset: int, scale: float = 64.0,
                               margin_type: str = "cosine", ignore_index: int = -1):
    """(row_max, row_sum, target) of one class shard (see pyface.ops.lpmc_shard_stats)."""
    with torch.no_grad():
        logits, tgt, valid, _ = _lpmc_logits_reference(embeddings, weight_shard, labels, margins, scale,
                                                       margin_type, ignore_index, class_offset)
        keep = valid[:, None] & torch.ones_like(logits, dtype=torch.bool)
        logits = torch.where(keep, logits, torch.full_like(logits, float("-inf")))
        if logits.shape[1] == 0:
            row_max = torch.full_like(tgt, float("-inf"))
        else:
            row_max = logits.max(dim=1).values
        row_sum = torch.where(valid, torch.exp(logits - row_max[:, None].clamp_min(-3e38)).sum(dim=1),
                              torch.zeros_like(tgt))
        return row_max, row_sum, tgt


def lpmc_shard_backward_reference(grad_rows, embeddings, weight_shard, labels, margins, lse, *, class_offset: int,
                                  scale: float = 64.0, margin_type: str = "cosine", ignore_index: int = -1):
    """(dx, dw) of one class shard given the global lse, by autograd of the surrogate
    sum_i g_i * (sum_j exp(logit_ij - lse_i) - target_i), whose gradient with respect to
    the shard's logits is g_i * (softmax_ij - [j = y_i]), that of the full loss."""
    x = embeddings.detach().requires_grad_()
    w = weight_shard.detach().requires_grad_()
    with torch.enable_grad():
        logits, tgt, valid, _ = _lpmc_logits_reference(x, w, labels, margins, scale, margin_type, ignore_index,
                                                       class_offset)
        safe_lse = torch.where(valid, lse.to(logits.dtype), torch.zeros_like(tgt))
        p_sum = torch.exp(logits - safe_lse[:, None]).sum(dim=1)
        g = torch.where(valid, grad_rows.to(logits.dtype), torch.zeros_like(tgt))
        (g * (p_sum - tgt)).sum().backward()
    return x.grad, w.grad


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


# ---------------------------------------------------------------- selective fitting


def selective_fit_loop_reference(samples, poses, valid, face_size, *, threshold: float = 0.05, keep: int = 3,
                                 min_samples: int = 1):
    """Per-image NumPy loop of the selective-fitting rules (see pyface.ops.selective_fit),
    computed in float64. Inputs are NumPy arrays (or anything np.asarray takes);
    returns NumPy (landmarks [B, P, 2], pose [B, 3], accepted [B], kept [B, N])."""
    import numpy as np

    samples = np.asarray(samples, dtype=np.float64)
    poses = np.asarray(poses, dtype=np.float64)
    valid = np.asarray(valid, dtype=bool)
    face_size = np.asarray(face_size, dtype=np.float64)
    B, N, P, _ = samples.shape
    landmarks = np.full((B, P, 2), np.nan)
    pose = np.full((B, 3), np.nan)
    accepted = np.zeros(B, dtype=bool)
    kept = np.zeros((B, N), dtype=bool)
    for b in range(B):
        x, pz = samples[b], poses[b]
        finite = np.isfinite(x).all(axis=(1, 2)) & np.isfinite(pz).all(axis=1)
        S = [s for s in range(N) if valid[b, s] and finite[s]]
        while len(S) > keep:
            mean = x[S].mean(axis=0)
            d = np.sqrt(((x[S] - mean) ** 2).sum(axis=-1)).mean(axis=-1) / face_size[b]
            del S[int(np.argmax(d))]  # argmax: first maximum = lowest sample index
        if not S:
            continue
        mean = x[S].mean(axis=0)
        d = np.sqrt(((x[S] - mean) ** 2).sum(axis=-1)).mean(axis=-1) / face_size[b]
        landmarks[b], pose[b] = mean, pz[S].mean(axis=0)
        kept[b, S] = True
        accepted[b] = len(S) >= min_samples and bool((d <= threshold).all())
    return landmarks, pose, accepted, kept


def selective_fit_reference(samples: torch.Tensor, poses: torch.Tensor, valid: torch.Tensor, face_size: torch.Tensor,
                            *, threshold: float = 0.05, keep: int = 3, min_samples: int = 1):
    """Vectorised PyTorch selective fitting over the whole batch (one removal step per
    iteration for every image at once), in the inputs' floating dtype."""
    B, N, P, _ = samples.shape
    x = samples
    finite = torch.isfinite(x).flatten(2).all(dim=2) & torch.isfinite(poses).all(dim=2)
    S = valid & finite
    x0 = torch.where(S[:, :, None, None], x, torch.zeros((), dtype=x.dtype, device=x.device))
    fs = face_size.to(x.dtype)[:, None]

    def mean_and_dist(S):
        n = S.sum(dim=1)
        w = S.to(x.dtype)
        mean = (x0 * w[:, :, None, None]).sum(dim=1) / n.to(x.dtype)[:, None, None]
        d = torch.linalg.vector_norm(x0 - mean[:, None], dim=-1).mean(dim=-1) / fs
        return n, mean, d

    for _ in range(max(N - keep, 0)):
        n, _, d = mean_and_dist(S)
        active = n > keep
        if not bool(active.any()):
            break
        d = torch.where(S, d, torch.full((), -float("inf"), dtype=d.dtype, device=d.device))
        far = d.argmax(dim=1)  # first maximum: lowest sample index
        drop = torch.zeros_like(S).scatter_(1, far[:, None], True) & active[:, None]
        S = S & ~drop
    n, mean, d = mean_and_dist(S)
    within = torch.where(S, d <= threshold, torch.ones_like(S)).all(dim=1)
    accepted = (n >= min_samples) & within
    w = S.to(x.dtype)
    p0 = torch.where(S[:, :, None], poses.to(x.dtype), torch.zeros((), dtype=x.dtype, device=x.device))
    pose = (p0 * w[:, :, None]).sum(dim=1) / n.to(x.dtype)[:, None]
    return mean, pose, accepted, S


# ---------------------------------------------------------------- cosine duplicate search


def cosine_duplicates_reference(a: torch.Tensor, b: torch.Tensor | None, threshold: float, *,
                                a2: torch.Tensor | None = None, b2: torch.Tensor | None = None,
                                threshold2: float | None = None):
    """Brute force: the full Na x Nb cosine matrix (float64), then the threshold(s).
    b=None: pairs i < j within a. Returns (pairs [K, 2] int64, sim [K], sim2 [K] or None)."""
    def cos(x, y):
        x = torch.nn.functional.normalize(x.double(), dim=1)
        y = torch.nn.functional.normalize(y.double(), dim=1)
        return x @ y.t()

    self_search = b is None
    c = cos(a, a if self_search else b)
    mask = c >= threshold
    c2 = None
    if a2 is not None:
        c2 = cos(a2, a2 if self_search else b2)
        mask &= c2 >= threshold2
    if self_search:
        mask = torch.triu(mask, diagonal=1)
    pairs = mask.nonzero()
    sim = c[pairs[:, 0], pairs[:, 1]]
    sim2 = c2[pairs[:, 0], pairs[:, 1]] if c2 is not None else None
    return pairs, sim, sim2


def cosine_duplicates_blocked_reference(a: torch.Tensor, b: torch.Tensor | None, threshold: float, *,
                                        block: int = 4096):
    """Blocked PyTorch search in one space: normalise, then per row block of a
    matmul + nonzero (memory O(block * Nb)). Returns (pairs [K, 2], sim [K] float32)."""
    self_search = b is None
    an = torch.nn.functional.normalize(a.float() if a.device.type == "cpu" else a, dim=1)
    bn = an if self_search else torch.nn.functional.normalize(b.float() if b.device.type == "cpu" else b, dim=1)
    out_p, out_s = [], []
    for i0 in range(0, an.shape[0], block):
        c = (an[i0:i0 + block] @ bn.t()).float()
        m = c >= threshold
        if self_search:
            m = torch.triu(m, diagonal=i0 + 1)
        idx = m.nonzero()
        out_s.append(c[idx[:, 0], idx[:, 1]])
        idx[:, 0] += i0
        out_p.append(idx)
    if not out_p:
        return torch.empty(0, 2, dtype=torch.int64, device=a.device), torch.empty(0, device=a.device)
    return torch.cat(out_p), torch.cat(out_s)
