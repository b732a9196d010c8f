"""IJB-C 1:1 verification from image features, and the paper's pose protocol.

The standard protocol is insightface ``recognition/arcface_torch/eval_ijbc.py``:

- image features: flip-sum embeddings, *not* normalised (the script's
  ``use_norm_score=True``, test mode N1) and multiplied by the detector's faceness
  score (``use_detector_score=True``, D1) — both done by the caller (the runner);
- :func:`template_features`: mean of the image features within a media (video), sum
  over the medias of a template, L2-normalised (``image2template_feature``);
- :func:`pair_scores`: cosine of the two template features of every pair
  (``verification``);
- :func:`pyface.eval.tar_at_far` on the scores (sklearn ``roc_curve``).

pyface differs in arithmetic only: template features are aggregated with sorted
``reduceat`` instead of a Python loop over 23k templates, and pair scores are computed
in float32 (insightface: float64) — from one GEMM per block of gallery templates when
the pairs are dense (IJB-C: 3.5k x 19.6k templates for 15.7M pairs), by row gathers in
fixed-size chunks otherwise. Memory stays bounded by ``chunk_mb`` plus O(pairs) indices.

**Pose protocol** (Lee et al. 2024, Table 4). In each pair ``(t1, t2)`` of
``ijbc_template_pair_label.txt`` the first template is the gallery (enrolment) and
the second the probe (verification) template. For the case ``all`` both keep all
their images (the standard protocol). For ``soft`` / ``medium`` / ``hard`` the gallery
feature still uses all its images, while the probe feature is pooled only from its
images whose predicted |yaw| lies in [0, 30), [30, 60) or [60, 90] degrees (beyond 90
counts as hard); a pair enters a case when its probe has at least one image of that
case, so a pair can be in several cases (the paper's counts 15,070,066 / 11,410,991 /
5,926,383 of 15,658,489 pairs).
"""
from __future__ import annotations

import numpy as np
import torch

from pyface.eval.verification import DEFAULT_FARS, tar_at_far

__all__ = ["template_features", "pair_scores", "pair_scores_reference", "yaw_case_masks", "pose_protocol",
           "CASES", "PAPER_PAIR_COUNTS", "plot_roc"]

CASES = {"soft": (0.0, 30.0), "medium": (30.0, 60.0), "hard": (60.0, np.inf)}
# GEMM over all (used gallery x used probe) templates when that is at most this many
# times the pair count: a GEMM multiply-add costs far less than a gathered random row
# (measured on 2 loaded cores: GEMM 2x faster than gathers at ratio 46, 1.5M pairs)
DENSE_RATIO = 64
PAPER_PAIR_COUNTS = {"all": 15_658_489, "soft": 15_070_066, "medium": 11_410_991, "hard": 5_926_383}


def _ints(name: str, x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.cpu().numpy()
    a = np.asarray(x)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    if a.dtype.kind not in "iu":
        if a.size and not np.all(np.mod(a, 1) == 0):
            raise ValueError(f"{name} must hold integer ids")
        a = a.astype(np.int64)
    return a


def _feats(name: str, x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().float().cpu().numpy()
    a = np.asarray(x)
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D [N, D], got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} has non-finite values (nan or inf)")
    return a


def template_features(img_feats, templates, medias) -> tuple[np.ndarray, np.ndarray]:
    """(template_ids sorted [T], L2-normalised template features float32 [T, D]) from
    image features [N, D] and each image's template and media id [N] (see the module
    docstring). A template whose summed feature is zero keeps a zero feature."""
    f = _feats("img_feats", img_feats).astype(np.float64, copy=False)
    t, m = _ints("templates", templates), _ints("medias", medias)
    if not len(t) == len(m) == len(f):
        raise ValueError(f"img_feats ({len(f)}), templates ({len(t)}) and medias ({len(m)}) must have equal length")
    if len(f) == 0:
        raise ValueError("img_feats is empty")
    order = np.lexsort((m, t))
    ts, ms, fs = t[order], m[order], f[order]
    new_media = np.r_[True, (ts[1:] != ts[:-1]) | (ms[1:] != ms[:-1])]
    starts = np.flatnonzero(new_media)
    counts = np.diff(np.r_[starts, len(ts)])
    media_feats = np.add.reduceat(fs, starts, axis=0) / counts[:, None]
    media_t = ts[starts]
    new_t = np.r_[True, media_t[1:] != media_t[:-1]]
    tstarts = np.flatnonzero(new_t)
    tf = np.add.reduceat(media_feats, tstarts, axis=0)
    norm = np.linalg.norm(tf, axis=1, keepdims=True)
    tf /= np.where(norm == 0, 1.0, norm)
    return media_t[tstarts], tf.astype(np.float32)


def _positions(ids: np.ndarray, query: np.ndarray, name: str, ids_name: str) -> np.ndarray:
    pos = np.searchsorted(ids, query)
    pos_c = np.minimum(pos, len(ids) - 1)
    bad = ids[pos_c] != query
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name} names {int(bad.sum())} pair(s) with templates missing from {ids_name} "
                         f"(first: template {int(query[k])} at pair {k})")
    return pos_c.astype(np.int32)


def _sorted_ids(name: str, ids, feats_name: str, feats) -> tuple[np.ndarray, np.ndarray]:
    i, f = _ints(name, ids), _feats(feats_name, feats)
    if len(i) != len(f):
        raise ValueError(f"{name} has {len(i)} ids but {feats_name} has {len(f)} rows")
    if len(i) == 0:
        raise ValueError(f"{name} is empty")
    if np.any(i[1:] <= i[:-1]):  # template_features returns them sorted; accept any unique order
        order = np.argsort(i, kind="stable")
        i, f = i[order], f[order]
        if np.any(i[1:] == i[:-1]):
            raise ValueError(f"{name} has duplicate template ids")
    return i, np.ascontiguousarray(f, dtype=np.float32)


def pair_scores(template_ids, feats, t1, t2, probe_ids=None, probe_feats=None, chunk_mb: float = 64.0) -> np.ndarray:
    """Cosine score float32 [P] of every pair (t1[k], t2[k]) of template ids.

    feats [T, D] must be L2-normalised (as :func:`template_features` returns them).
    The t2 side looks its templates up in (probe_ids, probe_feats) when given (the pose
    protocol's case-pooled probes), else in (template_ids, feats). Unknown template ids
    raise ValueError naming the pair list. Working memory beyond the outputs and the
    index arrays stays below about ``chunk_mb``."""
    ids1, f1 = _sorted_ids("template_ids", template_ids, "feats", feats)
    if (probe_ids is None) != (probe_feats is None):
        raise ValueError("probe_ids and probe_feats must be given together")
    ids2, f2 = (ids1, f1) if probe_ids is None else _sorted_ids("probe_ids", probe_ids, "probe_feats", probe_feats)
    if f1.shape[1] != f2.shape[1]:
        raise ValueError(f"feats have dimension {f1.shape[1]} but probe_feats {f2.shape[1]}")
    a, b = _ints("t1", t1), _ints("t2", t2)
    if len(a) != len(b):
        raise ValueError(f"t1 has {len(a)} entries but t2 has {len(b)}")
    out = np.empty(len(a), dtype=np.float32)
    if len(a) == 0:
        return out
    i1 = _positions(ids1, a, "t1", "template_ids")
    i2 = _positions(ids2, b, "t2", "probe_ids" if probe_ids is not None else "template_ids")
    budget = max(int(chunk_mb * 2**20), 1 << 16)
    d = f1.shape[1]
    used1 = np.flatnonzero(np.bincount(i1, minlength=len(ids1)))
    used2 = np.flatnonzero(np.bincount(i2, minlength=len(ids2)))
    if len(used1) * len(used2) <= DENSE_RATIO * len(a):
        r1 = np.zeros(len(ids1), dtype=np.int32)
        r1[used1] = np.arange(len(used1), dtype=np.int32)
        r2 = np.zeros(len(ids2), dtype=np.int32)
        r2[used2] = np.arange(len(used2), dtype=np.int32)
        row, col = r1[i1], r2[i2]
        g2t = np.ascontiguousarray(f2[used2].T)
        rows = max(1, budget // (4 * len(used2)))
        for lo in range(0, len(used1), rows):
            hi = min(lo + rows, len(used1))
            block = f1[used1[lo:hi]] @ g2t
            sel = np.flatnonzero((row >= lo) & (row < hi))
            out[sel] = block[row[sel] - lo, col[sel]]
    else:
        step = max(1, budget // (8 * d))
        for lo in range(0, len(a), step):
            s = slice(lo, lo + step)
            out[s] = np.einsum("ij,ij->i", f1[i1[s]], f2[i2[s]])
    return out


def pair_scores_reference(template_ids, feats, t1, t2, batch: int = 100_000) -> np.ndarray:
    """insightface ``verification()`` as written (template2id table, float64 gathers in
    batches of 100k pairs): the straightforward version ``pyface bench eval`` and the
    tests compare :func:`pair_scores` with."""
    ids = np.asarray(template_ids)
    f = np.asarray(feats, dtype=np.float64)
    template2id = np.zeros((max(ids) + 1, 1), dtype=int)
    for k, t in enumerate(ids):
        template2id[t] = k
    score = np.zeros((len(t1),))
    for lo in range(0, len(t1), batch):
        s = np.arange(lo, min(lo + batch, len(t1)))
        feat1 = f[template2id[t1[s]]]
        feat2 = f[template2id[t2[s]]]
        score[s] = np.sum(feat1 * feat2, -1).flatten()
    return score


def yaw_case_masks(yaw_deg) -> dict[str, np.ndarray]:
    """Boolean masks of the images in each case of :data:`CASES` by |yaw| (degrees)."""
    y = np.abs(np.asarray(yaw_deg, dtype=np.float64).reshape(-1))
    if not np.isfinite(y).all():
        raise ValueError("yaw_deg has non-finite values")
    return {k: (y >= lo) & (y < hi) for k, (lo, hi) in CASES.items()}


def _roc_points(scores: np.ndarray, labels: np.ndarray, n: int = 400) -> dict:
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(labels, scores)
    grid = np.logspace(-7, 0, n)
    return {"fpr": grid.tolist(), "tpr": np.interp(grid, fpr, tpr).tolist()}


def pose_protocol(img_feats, templates, medias, yaw_deg, t1, t2, labels, fars=DEFAULT_FARS,
                  roc: bool = True, chunk_mb: float = 64.0) -> dict:
    """The paper's IJB-C table (module docstring). img_feats [N, D] (flip-summed and
    faceness-weighted by the caller), templates/medias/yaw_deg [N], pairs t1, t2,
    labels [P]. Returns {case: {"pairs", "genuine", "impostor", "tar": {far: tar},
    "roc": {"fpr", "tpr"} (log-spaced FPR grid, for plots)}} for all/soft/medium/hard;
    a case with no genuine or no impostor pair has "tar" None."""
    f = _feats("img_feats", img_feats)
    t, m = _ints("templates", templates), _ints("medias", medias)
    a, b = _ints("t1", t1), _ints("t2", t2)
    lab = np.asarray(labels).reshape(-1).astype(bool)
    if len(lab) != len(a):
        raise ValueError(f"labels has {len(lab)} entries but there are {len(a)} pairs")
    masks = {"all": np.ones(len(f), dtype=bool), **yaw_case_masks(yaw_deg)}
    if len(masks["soft"]) != len(f):
        raise ValueError(f"yaw_deg has {len(masks['soft'])} values for {len(f)} images")
    gid, gfeat = template_features(f, t, m)
    out = {}
    for case, mask in masks.items():
        if case == "all":
            keep, scores = np.ones(len(a), dtype=bool), pair_scores(gid, gfeat, a, b, chunk_mb=chunk_mb)
        elif not mask.any():
            keep, scores = np.zeros(len(a), dtype=bool), np.empty(0, np.float32)
        else:
            pid, pfeat = template_features(f[mask], t[mask], m[mask])
            pos = np.minimum(np.searchsorted(pid, b), len(pid) - 1)
            keep = pid[pos] == b
            scores = pair_scores(gid, gfeat, a[keep], b[keep], probe_ids=pid, probe_feats=pfeat, chunk_mb=chunk_mb)
        y = lab[keep]
        r = {"pairs": int(keep.sum()), "genuine": int(y.sum()), "impostor": int((~y).sum()), "tar": None}
        if y.any() and (~y).any():
            r["tar"] = tar_at_far(scores, y, fars)
            if roc:
                r["roc"] = _roc_points(scores, y)
        out[case] = r
    return out


def plot_roc(results: dict, path, title: str = "IJB-C 1:1 verification") -> None:
    """ROC curves (log FAR) of :func:`pose_protocol` results, one line per case, to a PNG."""
    from pyface.eval.figures import pyplot, save_png

    plt = pyplot()

    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    for case, r in results.items():
        if r.get("roc"):
            ax.plot(r["roc"]["fpr"], np.asarray(r["roc"]["tpr"]) * 100, label=f"{case} ({r['pairs']:,} pairs)")
    ax.set_xscale("log")
    ax.set_xlim(1e-6, 1)
    ax.set_xlabel("FAR")
    ax.set_ylabel("TAR (%)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    save_png(fig, path, dpi=120)
