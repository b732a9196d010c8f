"""Algorithm 2, steps 2-4 (l.13-19): duplicates, union-find merge, SemiIdentify, and the
thresholds and quality measures of a merge.

- Duplicates (l.13-15): identity pairs whose mean embeddings have cosine >=
  ``threshold_a`` under net A *and* >= ``threshold_b`` under net B, via
  :func:`pyface.ops.cosine_duplicates` searching both spaces at once. ``scope="all"``
  (default, the paper's: one list E of all identities of every dataset, l.1-2, so
  duplicates inside one dataset merge too) searches every pair of datasets and each
  dataset against itself; ``scope="cross"`` only pairs of different datasets (pyface
  before 0.2). Chains through three or more datasets are found either way.
- Merge (l.16): union-find (connected components, :mod:`scipy.sparse.csgraph`) over the
  (dataset, identity) nodes; new identity ids are contiguous from 0 in the order of each
  component's first node (datasets in the given order, identities ascending).
- SemiIdentify (l.17-19): every source 300W face of 300W-LP is one identity
  (:func:`semi_identify_key`); the merged identities' pooled sums (:func:`pooled`) are
  searched against them the same way.
- Thresholds: calibrated as the best-accuracy cosine threshold on verification pairs
  (:func:`calibrate_threshold`, the paper's LFW calibration).
"""
from __future__ import annotations

import os
import re

import numpy as np
import torch

from pyface import runtime
from pyface.label.identities.embed import IdentityEmbeddings

__all__ = ["DUPLICATE_SCOPES", "SEMI_NAME", "calibrate_threshold", "find_duplicates", "merge_identities",
           "merge_quality", "pair_precision_recall", "pooled", "scope_pairs", "semi_identify_key",
           "semi_identify_labels", "union_find"]

#: ``scope`` of the duplicate search: "all" (the paper's one list over every identity) or "cross".
DUPLICATE_SCOPES = ("all", "cross")
#: The name of the SemiIdentify dataset (300W-LP) in outputs.
SEMI_NAME = "300w_lp"
_SEMI_RE = re.compile(r"_\d+$")


def _check_dims(groups: list[IdentityEmbeddings]) -> None:
    if not groups:
        raise ValueError("no datasets given")
    names = [g.name for g in groups]
    if len(set(names)) != len(names):
        raise ValueError(f"dataset names must be unique, got {names}")
    for space in ("sum_a", "sum_b"):
        dims = {g.name: getattr(g, space).shape[1] for g in groups}
        if len(set(dims.values())) > 1:
            raise ValueError(f"embedding sizes differ between datasets in space {space[-1].upper()}: {dims} "
                             "(all datasets must be embedded by the same two nets)")


def _unit_rows(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def scope_pairs(n: int, scope: str = "all") -> list[tuple[int, int]]:
    """The (i, j) group pairs a duplicate search of ``n`` groups covers: i < j, plus
    (i, i) -- the group against itself -- for ``scope="all"``."""
    if scope not in DUPLICATE_SCOPES:
        raise ValueError(f"scope must be one of {list(DUPLICATE_SCOPES)}, got {scope!r}")
    return [(i, j) for i in range(n) for j in range(i if scope == "all" else i + 1, n)]


def find_duplicates(groups: list[IdentityEmbeddings], threshold_a: float, threshold_b: float,
                    device=None, pairs_of=None, scope: str = "all") -> dict[str, np.ndarray]:
    """Step 2: identity pairs with cos >= threshold_a in space A and >= threshold_b in
    space B (mean embeddings). ``pairs_of``: which (i, j) group pairs to search (i == j:
    within group i, each unordered pair once); default :func:`scope_pairs` of ``scope``.
    Returns arrays ``node_a``, ``node_b`` (global node index: group offset + row; node_a <
    node_b), ``sim_a``, ``sim_b``, ``group_a``, ``group_b``."""
    from pyface.ops import cosine_duplicates

    _check_dims(groups)
    offsets = np.cumsum([0] + [len(g) for g in groups])
    pairs_of = pairs_of if pairs_of is not None else scope_pairs(len(groups), scope)
    dev = runtime.resolve_device(device) if device is not None else torch.device("cpu")
    means = [(_unit_rows(g.mean_a).to(dev), _unit_rows(g.mean_b).to(dev)) for g in groups]
    out = {k: [] for k in ("node_a", "node_b", "sim_a", "sim_b", "group_a", "group_b")}
    for i, j in pairs_of:
        if not len(groups[i]) or not len(groups[j]) or (i == j and len(groups[i]) < 2):
            continue
        (ai, bi), (aj, bj) = means[i], means[j]
        if i == j:  # self-search: pairs k < l within the group
            p, sa, sb = cosine_duplicates(ai, None, float(threshold_a), a2=bi, threshold2=float(threshold_b))
        else:
            p, sa, sb = cosine_duplicates(ai, aj, float(threshold_a), a2=bi, b2=bj, threshold2=float(threshold_b))
        p = p.cpu().numpy()
        out["node_a"].append(p[:, 0] + offsets[i])
        out["node_b"].append(p[:, 1] + offsets[j])
        out["sim_a"].append(sa.cpu().numpy())
        out["sim_b"].append(sb.cpu().numpy())
        out["group_a"].append(np.full(len(p), i, np.int64))
        out["group_b"].append(np.full(len(p), j, np.int64))
    dt = {"sim_a": np.float32, "sim_b": np.float32}
    return {k: (np.concatenate(v) if v else np.zeros(0, dt.get(k, np.int64))) for k, v in out.items()}


def union_find(n: int, a, b) -> np.ndarray:
    """Connected components of ``n`` nodes joined by edges (a[k], b[k]); component ids
    contiguous from 0 in the order of each component's smallest node."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    if n == 0:
        return np.zeros(0, np.int64)
    if len(a) and (min(a.min(), b.min()) < 0 or max(a.max(), b.max()) >= n):
        raise ValueError(f"edge endpoints must be in [0, {n})")
    g = coo_matrix((np.ones(len(a), np.int8), (a, b)), shape=(n, n)).tocsr()
    _, comp = connected_components(g, directed=False)
    first = np.full(comp.max() + 1, n, np.int64)
    np.minimum.at(first, comp, np.arange(n))
    rank = np.empty_like(first)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[comp]


def merge_identities(groups: list[IdentityEmbeddings], threshold_a: float, threshold_b: float, device=None,
                     pairs_of=None, scope: str = "all") -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
    """Steps 2-3: new ids per group (a list of [I_g] int64 arrays, contiguous from 0) and
    the duplicate edges (:func:`find_duplicates` over ``scope``)."""
    edges = find_duplicates(groups, threshold_a, threshold_b, device, pairs_of, scope)
    sizes = [len(g) for g in groups]
    new = union_find(sum(sizes), edges["node_a"], edges["node_b"])
    return np.split(new, np.cumsum(sizes)[:-1]), edges


def pooled(groups: list[IdentityEmbeddings], new_ids: list[np.ndarray], name: str = "merged") -> IdentityEmbeddings:
    """The merged identities' pooled sums (mean over all their images) as one group."""
    n = int(max((x.max() + 1 for x in new_ids if len(x)), default=0))
    da, db = groups[0].sum_a.shape[1], groups[0].sum_b.shape[1]
    sa, sb = torch.zeros(n, da, dtype=torch.float64), torch.zeros(n, db, dtype=torch.float64)
    cnt = np.zeros(n, np.int64)
    for g, ids in zip(groups, new_ids):
        t = torch.from_numpy(np.asarray(ids, np.int64))
        sa.index_add_(0, t, torch.from_numpy(np.ascontiguousarray(g.sum_a, np.float64)))
        sb.index_add_(0, t, torch.from_numpy(np.ascontiguousarray(g.sum_b, np.float64)))
        cnt += np.bincount(ids, weights=g.counts, minlength=n).astype(np.int64)
    return IdentityEmbeddings(name, np.arange(n, dtype=np.int64), sa.numpy(), sb.numpy(), cnt)


def merge_quality(groups: list[IdentityEmbeddings], new_ids: list[np.ndarray], skip=(SEMI_NAME,)) -> dict:
    """Signs of false merges: a dataset labels its identities as distinct people, so a new
    identity holding two of them either came from a within-dataset duplicate edge
    (``scope="all"``, the paper's search: a claim that the dataset labelled one person
    twice) or from a chain through a false match. Returns the number of such new
    identities, the old identities they hold, and the largest new identity (old
    identities in it). Groups named in ``skip`` (300W-LP: several source faces may show
    one person) are not checked."""
    allnew = np.concatenate([np.asarray(x, np.int64) for x in new_ids]) if new_ids else np.zeros(0, np.int64)
    n = int(allnew.max()) + 1 if len(allnew) else 0
    chained = np.zeros(n, bool)
    for g, x in zip(groups, new_ids):
        if g.name not in skip:
            chained |= np.bincount(np.asarray(x, np.int64), minlength=n) > 1
    sizes = np.bincount(allnew, minlength=n)
    return {"chained_identities": int(chained.sum()), "old_identities_in_chains": int(sizes[chained].sum()),
            "largest_identity": int(sizes.max()) if n else 0}


def semi_identify_key(ref: str) -> str:
    """300W-LP image -> its source 300W face: the file stem without the trailing
    ``_<k>`` augmentation index; the ``_Flip`` folder shares the names, so mirrors share
    it (``.../HELEN_Flip/HELEN_232194_1_3.jpg`` -> ``HELEN_232194_1``)."""
    stem = os.path.splitext(os.path.basename(ref.split("#", 1)[0]))[0]
    return _SEMI_RE.sub("", stem)


def semi_identify_labels(refs) -> tuple[np.ndarray, list[str]]:
    """(per-image label [N] int64, sorted source-face names) for 300W-LP image refs."""
    keys = [semi_identify_key(r) for r in refs]
    names, labels = np.unique(np.asarray(keys, dtype=object), return_inverse=True)
    return labels.astype(np.int64), [str(x) for x in names]


def calibrate_threshold(scores, issame) -> float:
    """Best-accuracy cosine threshold of verification pairs (the paper's LFW
    calibration), via the evaluation suite's ``pyface.eval.best_threshold``."""
    from pyface.eval import best_threshold

    return best_threshold(np.asarray(scores, dtype=np.float64), np.asarray(issame, dtype=bool))[0]


def pair_precision_recall(new_ids: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Pair-counting precision/recall of a merge: over all node pairs, predicted same
    (same new id) vs truly same (same ``truth`` label)."""
    new_ids, truth = np.asarray(new_ids), np.asarray(truth)

    def pairs(*cols):
        _, c = np.unique(np.stack(cols, 1), axis=0, return_counts=True)
        return int((c * (c - 1) // 2).sum())

    pred, true, both = pairs(new_ids), pairs(truth), pairs(new_ids, truth)
    return {"precision": both / pred if pred else 1.0, "recall": both / true if true else 1.0,
            "predicted_pairs": pred, "true_pairs": true, "correct_pairs": both}
