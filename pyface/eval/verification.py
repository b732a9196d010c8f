"""Pair-verification protocols: pure functions of scores/embeddings and labels.

- :func:`verification_accuracy` — insightface ``eval/verification.py``
  (LFW / CFP-FP / AgeDB-30 ``.bin`` protocol): L2-normalised embeddings, squared
  Euclidean distance, the fixed threshold grid ``np.arange(0, 4, 0.01)`` with
  "same" iff ``dist < t``, 10 contiguous folds (``KFold(shuffle=False)``, so the
  official LFW splits stay intact), the first best threshold of the other nine folds
  applied to the held-out fold, mean and population std of the fold accuracies.
- :func:`best_threshold` — the best-accuracy cosine threshold over all pairs,
  searched exactly over the midpoints between consecutive distinct scores (the
  labeler calibrates Algorithm 2's duplicate thresholds with it; "same" iff
  ``score >= threshold``, the rule of :func:`pyface.ops.cosine_duplicates`).
- :func:`tar_at_far` — insightface ``eval_ijbc.py``: ``sklearn.metrics.roc_curve``,
  curves flipped, for each FAR the operating point with the smallest ``|fpr - far|``
  (among ties the first in the flipped order, i.e. the highest-TPR point, exactly as
  the script's ``min(zip(abs(fpr - x), range(len(fpr))))``).

All threshold searches share :func:`_accuracy_at`, which evaluates every candidate
threshold at once with sorted counts (O((n + T) log n)) instead of insightface's
per-threshold Python loop; the decisions are identical.
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["verification_accuracy", "best_threshold", "tar_at_far", "DEFAULT_FARS"]

DEFAULT_FARS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
INSIGHTFACE_DIST_THRESHOLDS = np.arange(0, 4, 0.01)


def _array(name: str, x, ndim: int, dtype=np.float64) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().float().cpu().numpy()
    a = np.asarray(x)
    if a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {a.shape}")
    if dtype is bool:
        if a.dtype != bool and not np.isin(a, (0, 1)).all():
            raise ValueError(f"{name} must be boolean (or 0/1)")
        return a.astype(bool)
    a = a.astype(dtype, copy=False)
    if not np.isfinite(a).all():
        raise ValueError(f"{name} has non-finite values (nan or inf)")
    return a


def _accuracy_at(dist: np.ndarray, issame: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Accuracy of "same iff dist < t" for every t in thresholds (vectorised)."""
    pos = np.sort(dist[issame])
    neg = np.sort(dist[~issame])
    tp = np.searchsorted(pos, thresholds, side="left")
    fp = np.searchsorted(neg, thresholds, side="left")
    return (tp + (len(neg) - fp)) / max(len(dist), 1)


def _normalize(e: np.ndarray) -> np.ndarray:
    # sklearn.preprocessing.normalize semantics: zero rows stay zero
    n = np.linalg.norm(e, axis=1, keepdims=True)
    return e / np.where(n == 0, 1.0, n)


def verification_accuracy(emb1, emb2, issame, nfolds: int = 10) -> dict[str, float]:
    """insightface's 10-fold verification accuracy (see the module docstring).

    emb1, emb2: [P, D] embeddings of the two sides of each pair (normalised here);
    issame: [P] bool. Returns {"mean", "std", "threshold", "accuracy"}: mean and
    population std of the fold accuracies (fractions; "accuracy" is "mean"), and the
    mean over folds of the chosen threshold expressed as a cosine (1 - t/2).
    """
    e1, e2 = _array("emb1", emb1, 2), _array("emb2", emb2, 2)
    same = _array("issame", issame, 1, bool)
    if e1.shape != e2.shape:
        raise ValueError(f"emb1 and emb2 must have the same shape, got {e1.shape} and {e2.shape}")
    if len(same) != len(e1):
        raise ValueError(f"issame has {len(same)} entries but there are {len(e1)} pairs")
    if isinstance(nfolds, bool) or not isinstance(nfolds, int) or nfolds < 2:
        raise ValueError(f"nfolds must be an int >= 2, got {nfolds!r}")
    if len(same) < nfolds:
        raise ValueError(f"need at least nfolds={nfolds} pairs, got {len(same)}")
    from sklearn.model_selection import KFold

    e1, e2 = _normalize(e1), _normalize(e2)
    dist = np.sum(np.square(e1 - e2), 1)
    th = INSIGHTFACE_DIST_THRESHOLDS
    accs, chosen = [], []
    for train, test in KFold(n_splits=nfolds, shuffle=False).split(dist):
        t = th[int(np.argmax(_accuracy_at(dist[train], same[train], th)))]
        accs.append(float(_accuracy_at(dist[test], same[test], np.array([t]))[0]))
        chosen.append(1.0 - t / 2.0)
    mean = float(np.mean(accs))
    return {"mean": mean, "accuracy": mean, "std": float(np.std(accs)), "threshold": float(np.mean(chosen))}


def best_threshold(scores, issame) -> tuple[float, float]:
    """Best-accuracy cosine threshold over all pairs: returns (threshold, accuracy)
    with "same" iff score >= threshold. Candidates are the midpoints between
    consecutive distinct scores plus one below the minimum and one above the maximum;
    among equally good thresholds the lowest is returned."""
    s = _array("scores", scores, 1)
    same = _array("issame", issame, 1, bool)
    if len(s) != len(same):
        raise ValueError(f"scores has {len(s)} entries but issame has {len(same)}")
    if len(s) == 0:
        raise ValueError("scores is empty")
    u = np.unique(s)
    cand = np.concatenate([[u[0] - 1e-6], (u[1:] + u[:-1]) / 2, [u[-1] + 1e-6]])
    # score >= c  <=>  -score <= -c ; midpoints never equal a score, the end points are
    # outside the range, so "-score < -c" decides the same.
    acc = _accuracy_at(-s, same, -cand)
    k = int(np.argmax(acc))
    return float(cand[k]), float(acc[k])


def tar_at_far(scores, labels, fars=DEFAULT_FARS) -> dict[float, float]:
    """TAR (fraction) at each FAR in fars, insightface ``eval_ijbc.py``'s rule (see the
    module docstring). scores, labels: [P]; labels 1 = genuine, 0 = impostor."""
    s = _array("scores", scores, 1)
    lab = _array("labels", labels, 1, bool)
    if len(s) != len(lab):
        raise ValueError(f"scores has {len(s)} entries but labels has {len(lab)}")
    if lab.all() or not lab.any():
        raise ValueError("labels must contain both genuine (1) and impostor (0) pairs")
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(lab, s)
    fpr, tpr = np.flipud(fpr), np.flipud(tpr)
    return {float(f): float(tpr[int(np.argmin(np.abs(fpr - f)))]) for f in fars}
