"""Evaluation metrics, one definition each.

- Pose MAE: mean over samples and the three angles of |pred - gt| in degrees.
- NME: per-sample mean over the 68 landmarks of the Euclidean error divided by the
  face's **bounding-box size** sqrt(w * h) of the ground-truth landmarks (the
  AFLW2000-3D convention of 3DDFA / SynergyNet and the paper's d in Eq. 12), then
  averaged over samples. Returned as a fraction (multiply by 100 for the %% tables).
  ``norm="interocular"`` divides by the outer-eye-corner distance (points 36 and 45,
  the 300W convention) instead.
- Verification accuracy: cosine similarities of pairs, 10-fold cross-validation;
  in each fold the threshold maximising accuracy on the other 9 folds is applied
  to the held-out fold; the mean fold accuracy is returned.
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
    and as many different-identity pairs, drawn without repeats with a fixed seed.
    Returns (pairs [P, 2] sample indices, issame [P] bool)."""
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
    pairs = np.array(pos + neg, dtype=np.int64).reshape(-1, 2)
    issame = np.array([True] * len(pos) + [False] * len(neg))
    return pairs, issame


def verification_accuracy(embeddings, pairs, issame, n_folds: int = 10, seed: int = 0) -> dict[str, float]:
    """10-fold verification accuracy of cosine similarity with the best threshold chosen
    on the other 9 folds. embeddings [N, D]; pairs [P, 2] indices; issame [P] bool.
    Returns {"accuracy", "std", "threshold"} (threshold: mean over folds)."""
    from sklearn.model_selection import KFold

    e = _np(embeddings)
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    pairs, issame = np.asarray(pairs), np.asarray(issame, dtype=bool)
    if len(pairs) < n_folds:
        raise ValueError(f"need at least n_folds={n_folds} pairs, got {len(pairs)}")
    sims = (e[pairs[:, 0]] * e[pairs[:, 1]]).sum(1)
    u = np.unique(sims)  # candidate thresholds: midpoints between consecutive similarities
    thresholds = np.concatenate([[u[0] - 1e-6], (u[1:] + u[:-1]) / 2, [u[-1] + 1e-6]])
    accs, ths = [], []
    for tr, te in KFold(n_splits=n_folds, shuffle=True, random_state=seed).split(sims):
        # accuracy of every candidate threshold on the 9 training folds at once
        pred = sims[tr][None, :] >= thresholds[:, None]
        train_acc = (pred == issame[tr][None, :]).mean(1)
        t = thresholds[int(np.argmax(train_acc))]
        accs.append(float(((sims[te] >= t) == issame[te]).mean()))
        ths.append(float(t))
    return {"accuracy": float(np.mean(accs)), "std": float(np.std(accs)), "threshold": float(np.mean(ths))}
