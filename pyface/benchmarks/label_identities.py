"""Algorithm 2 after the embeddings (``pyface bench label_identities``): where the time
of ``pyface label identities`` goes once the per-identity mean embeddings exist, for
100k identities by default.

Phases, each measured in the same run: the duplicate search between two datasets in
two embedding spaces at once (:func:`pyface.label.identities.find_duplicates`, the
fused two-space ``cosine_duplicates``) beside the same search done as two single-space
searches plus an intersection of the pair sets; union-find and renumbering; the
identity map; and the join of Algorithm-1 shards (``images_per_id`` rows per identity)
into the final manifest. The embedding pass itself is the FR nets' forward time
(``pyface bench train`` measures the same networks) and is not included.

Synthetic inputs: two datasets of ``n/2`` identities, unit-normal embeddings in two
spaces (D each); ``dup_frac`` of the second dataset's identities are noisy copies of
identities of the first, in both spaces."""
from __future__ import annotations

import os
import tempfile
import types

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from pyface.benchmarks import _harness as H


def add_arguments(p):
    p.add_argument("--n", type=int, default=None, help="identities in total (default 100000; --quick 20000)")
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--images-per-id", type=int, default=None, help="manifest rows per identity (default 10; quick 5)")
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--dup-frac", type=float, default=0.05)
    p.add_argument("--iters", type=int, default=None, help="interleaved rounds (default 3; quick 1)")


def make_groups(n, d, dup_frac, seed=0):
    from pyface.label.identities import IdentityEmbeddings

    g = torch.Generator().manual_seed(seed)
    na = n // 2
    nb = n - na
    base_a, base_b = torch.randn(na, d, generator=g), torch.randn(nb, d, generator=g)
    k = int(nb * dup_frac)
    src = torch.randperm(na, generator=g)[:k]
    base_b[:k] = base_a[src] + 0.6 * torch.randn(k, d, generator=g)
    rot = torch.linalg.qr(torch.randn(d, d, generator=g))[0]  # space B: another view of the same identities

    def space_b(x):
        return x @ rot + 0.3 * torch.randn(x.shape, generator=g)

    a = IdentityEmbeddings.from_arrays("A", np.arange(na), base_a.double().numpy(), space_b(base_a).double().numpy())
    b = IdentityEmbeddings.from_arrays("B", np.arange(nb), base_b.double().numpy(), space_b(base_b).double().numpy())
    return [a, b], k


def write_shards(folder, groups, per_id, rows_per_shard=200_000):
    """Algorithm-1-style shards referencing ``/data/<name>/<id>/<k>.jpg`` (never opened)."""
    names, ids, imgs = [], [], []
    for gr in groups:
        for i in gr.ids:
            for k in range(per_id):
                names.append(gr.name)
                ids.append(int(i))
                imgs.append(f"/data/{gr.name}/{int(i):07d}/{k:04d}.jpg")
    n = len(imgs)
    lm = np.zeros((min(n, rows_per_shard), 136), np.float32)
    for s in range(0, n, rows_per_shard):
        e = min(n, s + rows_per_shard)
        m = e - s
        t = pa.table({"image": imgs[s:e], "identity": pa.array(ids[s:e], pa.int64()),
                      "landmarks": pa.FixedSizeListArray.from_arrays(pa.array(lm[:m].reshape(-1)), 136),
                      "pose": pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(3 * m, np.float32)), 3),
                      "source": names[s:e], "accepted": np.ones(m, bool)})
        pq.write_table(t, os.path.join(folder, f"part-{s // rows_per_shard:06d}.parquet"))
    return n


def run(args) -> dict:
    from pyface.label import identities as I
    from pyface.ops import cosine_duplicates

    device = torch.device(args.device or H.default_device())
    n = args.n or (20_000 if args.quick else 100_000)
    per_id = args.images_per_id or (5 if args.quick else 10)
    iters = args.iters or (1 if args.quick else 3)
    t = args.threshold
    groups, k_true = make_groups(n, args.dim, args.dup_frac)
    state = {}

    def search():
        state["edges"] = I.find_duplicates(groups, t, t, device)

    a, b = groups
    ma, mb = (torch.from_numpy(np.ascontiguousarray(x.mean_a, np.float32)).to(device) for x in (a, b))
    ma2, mb2 = (torch.from_numpy(np.ascontiguousarray(x.mean_b, np.float32)).to(device) for x in (a, b))

    def separate():
        p1 = cosine_duplicates(ma, mb, t)[0].cpu().numpy()
        p2 = cosine_duplicates(ma2, mb2, t)[0].cpu().numpy()
        key = lambda p: p[:, 0] * len(b) + p[:, 1]  # noqa: E731
        return np.intersect1d(key(p1), key(p2))

    def merge():
        e = state["edges"]
        state["new"] = I.union_find(len(a) + len(b), e["node_a"], e["node_b"])

    def id_map():
        new = np.split(state["new"], [len(a)])
        state["maps"] = {g.name: (g.ids, nid) for g, nid in zip(groups, new)}
        state["pooled"] = I.pooled(groups, new)

    with tempfile.TemporaryDirectory() as tmp:
        shards = os.path.join(tmp, "lm")
        os.makedirs(shards)
        rows = write_shards(shards, groups, per_id)
        files = I.shard_files(shards)

        def join():
            roots = {g.name: types.SimpleNamespace(root=f"/data/{g.name}") for g in groups}
            r = I.Resolver(roots, None)
            r.maps = state["maps"]
            state["manifest"] = I.write_pltd(os.path.join(tmp, "manifest.parquet"), files, r)

        # interleaved repeats: each round runs every phase once; the searches (seconds to
        # minutes each) are not warmed up, the short phases are, in the first round
        phases = [("search (two spaces fused)", search), ("search (two single-space + intersect)", separate),
                  ("union-find + renumber", merge), ("identity map + pooled sums", id_map),
                  (f"manifest join ({rows} rows)", join)]
        times = {name: [] for name, _ in phases}
        for r in range(iters):
            for name, fn in phases:
                times[name].append(H.measure(fn, device, warmup=int(r == 0 and "search" not in name), iters=1))
    k_found = len(state["edges"]["node_a"])
    k_sep = len(separate())
    rows_out = []
    total = 0.0
    for name, _ in phases:
        ms = [r["ms"] for r in times[name]]
        q1, med, q3 = np.percentile(ms, [25, 50, 75])
        fused = "single-space" not in name
        total += med if fused else 0.0
        rows_out.append({"phase": name, "ms": float(med), "iqr_ms": float(q3 - q1),
                         "peak_mb": max(r["peak_extra_mb"] for r in times[name])})
    for r in rows_out:
        r["share"] = f"{r['ms'] / total:.1%}" if "single-space" not in r["phase"] else "(not in total)"
    sep = next(r for r in rows_out if "single-space" in r["phase"])
    fus = next(r for r in rows_out if "fused" in r["phase"])
    cols = [("phase", "phase"), ("ms", "median ms"), ("iqr_ms", "IQR ms"), ("share", "share of total"),
            ("peak_mb", "peak extra MiB")]
    H.print_table(f"Algorithm 2 from precomputed embeddings: {n} identities (2 x {n // 2}), D={args.dim} x 2 "
                  f"spaces, {per_id} images/id, threshold {t}, {iters} interleaved repeats on "
                  f"{H.device_name(device)} (the manifest join is CPU + disk)", rows_out, cols)
    print(f"pairs found: {k_found} (planted duplicates {k_true}; two single-space searches + intersect: {k_sep}); "
          f"fused / separate search time: {fus['ms'] / sep['ms']:.2f}; total {total / 1e3:.2f} s for {n} identities "
          f"(the search grows with Na x Nb, the rest linearly)")
    return {"bench": "label_identities", "device": H.device_name(device), "device_type": device.type,
            "quick": args.quick, "n": n, "dim": args.dim, "images_per_id": per_id, "pairs": k_found,
            "planted": k_true, "pairs_separate": k_sep, "total_ms": total, "rows": rows_out}
