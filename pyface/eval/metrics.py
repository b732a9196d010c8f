"""Evaluation metrics, one definition each.

- Pose MAE: mean over samples and the three angles of |pred - gt| in degrees.
- NME: per-sample mean over the 68 landmarks of the Euclidean error divided by the
  face's **bounding-box size** sqrt(w * h) of the ground-truth landmarks (the
  AFLW2000-3D convention of 3DDFA / SynergyNet and the paper's d in Eq. 12), then
  averaged over samples. Returned as a fraction (multiply by 100 for the %% tables).
  ``norm="interocular"`` divides by the outer-eye-corner distance (points 36 and 45,
  the 300W convention) instead.
- Verification accuracy: insightface's 10-fold protocol, defined once in
  :mod:`pyface.eval.verification`; :func:`verification_accuracy` here is its
  index-pair form used by the trainer.
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["pose_mae", "nme", "landmark_bbox_size", "verification_pairs", "verification_accuracy"]

LEFT_EYE_OUTER, RIGHT_EYE_OUTER = 36, 45


def _np(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def pose_mae(pred, gt) -> dict[str, float]:
    """pred, gt: [N, 3] (yaw, pitch, roll) degrees. Rows with a non-finite gt are skipped.
    Returns {"mae", "yaw", "pitch", "roll"} in degrees (nan when no row is usable)."""
    p, g = _np(pred).reshape(-1, 3), _np(gt).reshape(-1, 3)
    ok = np.isfinite(g).all(1)
    if not ok.any():
        return {"mae": float("nan"), "yaw": float("nan"), "pitch": float("nan"), "roll": float("nan")}
    err = np.abs(p[ok] - g[ok])
    per = err.mean(0)
    return {"mae": float(err.mean()), "yaw": float(per[0]), "pitch": float(per[1]), "roll": float(per[2])}


def landmark_bbox_size(gt) -> np.ndarray:
    """[N, 68, 2] -> [N] sqrt(w * h) of each ground-truth landmark bounding box (pixels)."""
    g = _np(gt)
    wh = g.max(1) - g.min(1)
    return np.sqrt(wh[:, 0] * wh[:, 1])


def nme(pred, gt, norm: str = "bbox", reduce: bool = True):
    """Normalised mean error of [N, 68, 2] landmark predictions (see the module docstring).
    Rows whose gt contains a non-finite value are skipped. Returns a float (mean over
    rows, nan when none) or, with ``reduce=False``, the per-row values [M]."""
    p, g = _np(pred), _np(gt)
    if p.shape != g.shape or p.ndim != 3 or p.shape[2] != 2:
        raise ValueError(f"pred and gt must both be [N, L, 2], got {p.shape} and {g.shape}")
    ok = np.isfinite(g).all((1, 2))
    p, g = p[ok], g[ok]
    if norm == "bbox":
        d = landmark_bbox_size(g)
    elif norm == "interocular":
        d = np.linalg.norm(g[:, LEFT_EYE_OUTER] - g[:, RIGHT_EYE_OUTER], axis=1)
    else:
        raise ValueError(f"norm must be 'bbox' or 'interocular', got {norm!r}")
    per = np.linalg.norm(p - g, axis=2).mean(1) / np.maximum(d, 1e-9)
    if not reduce:
        return per
    return float(per.mean()) if len(per) else float("nan")


def verification_pairs(identities, num_pairs: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Balanced pairs over samples with identity >= 0: up to num_pairs/2 same-identity
    and as many different-identity pairs, drawn without repeats with a fixed seed,
    interleaved genuine/impostor. Returns (pairs [P, 2] sample indices, issame [P] bool)."""
    ids = _np(identities).astype(np.int64).reshape(-1)
    rng = np.random.default_rng(seed)
    idx = np.flatnonzero(ids >= 0)
    groups = {}
    for i in idx:
        groups.setdefault(int(ids[i]), []).append(int(i))
    pos = [(a, b) for g in groups.values() for k, a in enumerate(g) for b in g[k + 1:]]
    half = num_pairs // 2
    if len(pos) > half:
        pos = [pos[i] for i in rng.choice(len(pos), half, replace=False)]
    neg, seen = [], set()
    if len(groups) >= 2:
        tries = 0
        while len(neg) < len(pos) and tries < 50 * max(len(pos), 1):
            a, b = rng.choice(idx, 2, replace=False)
            tries += 1
            key = (min(a, b), max(a, b))
            if ids[a] != ids[b] and key not in seen:
                seen.add(key)
                neg.append(key)
    # interleaved (genuine, impostor, ...) so contiguous verification folds are balanced
    order = sorted(range(len(pos) + len(neg)), key=lambda k: (2 * k if k < len(pos) else 2 * (k - len(pos)) + 1))
    allp = pos + neg
    pairs = np.array([allp[k] for k in order], dtype=np.int64).reshape(-1, 2)
    issame = np.array([k < len(pos) for k in order], dtype=bool)
    return pairs, issame


def verification_accuracy(embeddings, pairs, issame, n_folds: int = 10, seed: int = 0) -> dict[str, float]:
    """Index-pair form of :func:`pyface.eval.verification.verification_accuracy` (the
    one definition of the protocol) for callers holding one embedding per sample:
    embeddings [N, D]; pairs [P, 2] sample indices; issame [P] bool. Folds are
    contiguous as in insightface; :func:`verification_pairs` interleaves genuine and
    impostor pairs so every fold holds both. ``seed`` is unused (kept for callers).
    Returns {"accuracy", "mean", "std", "threshold"}."""
    from pyface.eval.verification import verification_accuracy as _va

    e = _np(embeddings)
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    return _va(e[pairs[:, 0]], e[pairs[:, 1]], issame, nfolds=n_folds)
