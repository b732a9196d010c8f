"""IJB-C scoring (``pyface bench eval``): :func:`pyface.eval.ijbc.pair_scores` (+
:func:`pyface.eval.tar_at_far`) over the full 1:1 protocol size — 15,658,489 pairs
between the real template counts (3,531 gallery, 19,593 probe, 512-d features) — vs
the straightforward NumPy version (insightface ``verification()``: float64 row gathers
in batches of 100k pairs, :func:`pyface.eval.ijbc.pair_scores_reference`).

The straightforward version is timed on ``--ref-pairs`` pairs and scaled to the full
count (it is linear in the pairs); both run on the same random features. Peak memory
is the RSS added during each call (CPU) or the max allocated (no GPU path here).
"""
from __future__ import annotations

import numpy as np

from pyface.benchmarks import _harness as H
from pyface.eval import tar_at_far
from pyface.eval.ijbc import pair_scores, pair_scores_reference

IJBC_GALLERY, IJBC_PROBE, IJBC_PAIRS, IJBC_GENUINE = 3_531, 19_593, 15_658_489, 19_557


def add_arguments(p):
    p.add_argument("--pairs", type=int, default=None, help=f"pairs (default {IJBC_PAIRS:,}; --quick: 1,500,000)")
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--ref-pairs", type=int, default=None,
                   help="pairs timed for the straightforward version (default 500,000; --quick: 300,000)")
    p.add_argument("--iters", type=int, default=None)


def make_inputs(n_pairs: int, dim: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    ids = np.arange(IJBC_GALLERY + IJBC_PROBE, dtype=np.int64) * 3 + 1  # sparse ids like IJB-C's
    feats = rng.standard_normal((len(ids), dim), dtype=np.float32)
    feats /= np.linalg.norm(feats, axis=1, keepdims=True)
    t1 = ids[rng.integers(0, IJBC_GALLERY, n_pairs)]
    t2 = ids[IJBC_GALLERY + rng.integers(0, IJBC_PROBE, n_pairs)]
    labels = np.zeros(n_pairs, dtype=bool)
    labels[rng.choice(n_pairs, max(1, IJBC_GENUINE * n_pairs // IJBC_PAIRS), replace=False)] = True
    return ids, feats, t1, t2, labels


def run(args) -> dict:
    quick = args.quick
    n = args.pairs or (1_500_000 if quick else IJBC_PAIRS)
    n_ref = min(n, args.ref_pairs or (300_000 if quick else 500_000))
    iters = args.iters or 2
    ids, feats, t1, t2, labels = make_inputs(n, args.dim)
    r_ps = H.measure(lambda: pair_scores(ids, feats, t1, t2), "cpu", iters=iters)
    r_ref = H.measure(lambda: pair_scores_reference(ids, feats, t1[:n_ref], t2[:n_ref]), "cpu", warmup=0, iters=1)
    scores = pair_scores(ids, feats, t1, t2)
    # the same sklearn ROC serves both versions: timed once, added to each
    r_tar = H.measure(lambda: tar_at_far(scores, labels), "cpu", warmup=0, iters=1)
    ref_ms = r_ref["ms"] * n / n_ref
    diff = float(np.abs(scores[:n_ref] - pair_scores_reference(ids, feats, t1[:n_ref], t2[:n_ref])).max())
    row = {"pairs": n, "templates": len(ids), "dim": args.dim, "pair_scores_ms": r_ps["ms"], "ref_ms": ref_ms,
           "x_ref": ref_ms / r_ps["ms"], "tar_ms": r_tar["ms"],
           "x_ref_with_tar": (ref_ms + r_tar["ms"]) / (r_ps["ms"] + r_tar["ms"]),
           "pyface_mb": r_ps["peak_extra_mb"], "ref_mb": r_ref["peak_extra_mb"], "tar_mb": r_tar["peak_extra_mb"],
           "max_abs_diff": diff}
    cols = [("pairs", "pairs"), ("pair_scores_ms", "pair_scores ms"), ("ref_ms", "NumPy ms (scaled)"),
            ("x_ref", "x NumPy"), ("tar_ms", "tar_at_far ms"), ("x_ref_with_tar", "x with tar_at_far"),
            ("pyface_mb", "pair_scores MiB"), ("ref_mb", "NumPy MiB"), ("tar_mb", "tar_at_far MiB"),
            ("max_abs_diff", "max |diff|")]
    H.print_table(f"IJB-C scoring, {len(ids):,} templates x {args.dim}-d, on {H.device_name('cpu')} "
                  f"(NumPy timed once on {n_ref:,} pairs, scaled; MiB = peak RSS added)", [row], cols)
    return {"bench": "eval", "device": H.device_name("cpu"), "device_type": "cpu", "quick": quick, "rows": [row]}
