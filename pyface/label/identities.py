"""Algorithm 2 of Lee et al. 2024 (Sec. 3.1): one deduplicated identity space across
face-recognition datasets, found with two FR networks (``pyface label identities``).

Steps (the paper's line numbers):

1. Embeddings (l.1-12). Per identity of every dataset, the mean embedding under each
   net: every image and its mirror go through the net, the two embeddings are summed
   and L2-normalised (insightface's flip-sum), and the per-identity sums of those unit
   vectors are accumulated. Images are cropped to the net input first: images with
   known landmarks (300W-LP) by a square of ``face_crop_area`` times the landmark box
   area, others (aligned FR crops) whole. The work is cut into units of ``chunk_size``
   images; each unit's per-identity sums are an atomic Parquet shard in
   ``OUT/embeddings/<name>/`` (:mod:`pyface.label.shards`), so a killed run resumes
   losing at most one unit, memory holds one unit of embeddings, and disk and the final
   reduction hold about identities x (Da + Db) floats -- never one row per image.
   Unreadable images are skipped and counted (``bad`` in the summary).
2. Duplicates (l.13-15): identity pairs of *different* datasets whose mean embeddings
   have cosine >= ``threshold_a`` under net A *and* >= ``threshold_b`` under net B,
   via :func:`pyface.ops.cosine_duplicates` searching both spaces at once, for every
   pair of datasets (so chains through three or more datasets are found).
3. Merge (l.16): union-find (connected components, :mod:`scipy.sparse.csgraph`) over
   the (dataset, identity) nodes; new identity ids are contiguous from 0 in the order of
   each component's first node (datasets in the given order, identities ascending).
4. SemiIdentify (l.17-19): 300W-LP has no identities; every source 300W face gets one
   (all its augmented variants ``<name>_<k>`` and the ``_Flip`` mirrors share it, see
   :func:`semi_identify_key`); steps 1-3 are repeated between the merged identities
   (pooled sums: the mean over all their images) and these, and matches are merged in.
   Merged identities keep their ids unless a 300W-LP face joins two of them.
5. Thresholds: given, or calibrated per net as the best-accuracy cosine threshold on a
   verification pair set (insightface ``.bin``, e.g. LFW), as the paper does, through
   ``pyface.eval.best_threshold``.

Outputs in ``OUT``: ``manifest.parquet`` (the PLTD: the Algorithm-1 rows of
``--landmarks`` with the new identities; images Algorithm 1 rejected are kept out unless
``keep_rejected``, which keeps them with NaN landmarks/pose for FR-only training;
300W-LP rows carry 300W-LP's own ground-truth landmarks and pose unless
``semi_labels="landmarks"``; image references are absolute paths),
``identity_map.csv`` (dataset, old_id, new_id, images), ``merges.csv`` (stage,
dataset/old id of both ends, both similarities), ``summary.json``.
"""
from __future__ import annotations

import csv
import os
import re
import time
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from pyface.label.landmarks import weights_digest
from pyface.label.nets import load_model
from pyface.label.shards import config_hash, open_output, write_json_atomic

__all__ = ["FRNet", "IdentityEmbeddings", "embed_identities", "find_duplicates", "union_find", "merge_identities",
           "semi_identify_key", "semi_identify_labels", "calibrate_threshold", "pair_precision_recall", "merge_quality",
           "run_identities", "demo_identities", "add_parser", "DEFAULT_FACE_CROP_AREA", "DEFAULT_CHUNK"]

#: Crop of images with known landmarks: area of the square crop / area of the landmark box.
#: 2.0 puts the jaw-to-brow box at about 70 % of the side, as in 112x112 aligned FR crops.
DEFAULT_FACE_CROP_AREA = 2.0
#: Images per resumable work unit.
DEFAULT_CHUNK = 8192
SEMI_NAME = "300w_lp"
_SEMI_RE = re.compile(r"_\d+$")


# ---------------------------------------------------------------------------- nets
class FRNet:
    """A face-recognition net as Algorithm 2 uses it: uint8 [B, 3, S, S] RGB ->
    flip-sum L2-normalised embeddings [B, D] float32.

    ``net``: a ``pyface train`` checkpoint path with an FR head, a MultiTaskNet, or any
    module/callable mapping normalised float images [B, 3, s, s] to a dict with
    ``"embedding"`` or to a tensor [B, D] (``input_size`` then required)."""

    def __init__(self, net, what: str = "net", input_size: int | None = None, device=None, amp: bool = True):
        self.what = what
        self.path = os.path.abspath(os.fspath(net)) if isinstance(net, (str, os.PathLike)) else None
        model = load_model(self.path, what) if self.path else net
        tasks = getattr(getattr(model, "config", None), "tasks", None)
        if tasks is not None and "fr" not in tasks:
            src = self.path or "the given model"
            raise ValueError(f"{what}: {src} has no face-recognition head (tasks {list(tasks)}); Algorithm 2 needs "
                             "a net trained with the 'fr' task")
        size = input_size or getattr(getattr(model, "config", None), "input_size", None)
        if size is None:
            raise ValueError(f"{what}: input_size is required for a net without a .config")
        self.input_size = int(size)
        self.device = torch.device(device) if device is not None else torch.device(
            "cuda" if torch.cuda.is_available() else "cpu")
        self.model = model.to(self.device).eval() if isinstance(model, torch.nn.Module) else model
        self.amp = bool(amp) and self.device.type == "cuda"
        self.dim = int(self.embed(torch.zeros(1, 3, self.input_size, self.input_size, dtype=torch.uint8)).shape[1])

    def describe(self) -> dict:
        """What identifies this net in a resume check (the weights' digest, not the file's name)."""
        d = {"input_size": self.input_size, "amp": self.amp}
        if isinstance(self.model, torch.nn.Module):
            d["weights"] = self._digest = getattr(self, "_digest", None) or weights_digest(self.model)
        else:
            d["module"] = type(self.model).__name__
        return d

    def _forward(self, x):
        """The FR branch only of a MultiTaskNet (the other heads' stage-4 copies are skipped)."""
        m = self.model
        bp = getattr(m, "branch_points", {}).get("fr")
        if bp is None:
            return m(x)
        for stage in list(m.shared)[:bp + 1]:
            x = stage(x)
        return m.heads["fr"](x)

    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        x = images.to(self.device, non_blocking=True)
        x = (x.float() - 127.5) / 128.0 if x.dtype == torch.uint8 else x.float()
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            x = torch.nn.functional.interpolate(x, size=(self.input_size,) * 2, mode="bilinear",
                                                align_corners=False, antialias=True)
        b = x.shape[0]
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.amp):
            out = self._forward(torch.cat([x, x.flip(3)]))
        e = (out["embedding"] if isinstance(out, dict) else out).float()
        return torch.nn.functional.normalize(e[:b] + e[b:], dim=1)


# ---------------------------------------------------------------------------- embeddings
@dataclass
class IdentityEmbeddings:
    """Per-identity embedding sums of one dataset (or of the merged identities).

    ``ids`` [I] sorted old identity labels; ``sum_a`` [I, Da], ``sum_b`` [I, Db] float64
    sums of flip-sum unit embeddings; ``counts`` [I] images; ``keys``: printable old ids
    (``str(id)``, or the 300W source-face names)."""

    name: str
    ids: np.ndarray
    sum_a: np.ndarray
    sum_b: np.ndarray
    counts: np.ndarray
    keys: list[str] | None = None
    images: int = 0
    bad: int = 0
    unlabeled: int = 0
    bad_examples: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    def key(self, i: int) -> str:
        return self.keys[i] if self.keys is not None else str(int(self.ids[i]))

    @property
    def mean_a(self) -> np.ndarray:
        return self.sum_a / np.maximum(self.counts, 1)[:, None]

    @property
    def mean_b(self) -> np.ndarray:
        return self.sum_b / np.maximum(self.counts, 1)[:, None]

    @classmethod
    def from_arrays(cls, name, ids, emb_a, emb_b, counts=None, keys=None) -> "IdentityEmbeddings":
        """From per-identity (mean or summed) embeddings [I, Da], [I, Db]; checks shapes."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        a, b = np.asarray(emb_a, dtype=np.float64), np.asarray(emb_b, dtype=np.float64)
        counts = np.ones(len(ids), np.int64) if counts is None else np.asarray(counts, np.int64).reshape(-1)
        for what, x in (("emb_a", a), ("emb_b", b)):
            if x.ndim != 2 or x.shape[0] != len(ids):
                raise ValueError(f"{name}: {what} must be [{len(ids)}, D], got {list(x.shape)}")
        if len(counts) != len(ids):
            raise ValueError(f"{name}: counts must have {len(ids)} entries, got {len(counts)}")
        if len(np.unique(ids)) != len(ids):
            raise ValueError(f"{name}: ids must be unique")
        return cls(name, ids, a, b, counts, keys)


class _Frames(torch.utils.data.Dataset):
    """Image ``i`` of ``dataset`` cropped to ``size``, its identity (``labels[i]`` when
    given) and whether it could be read (unreadable images are counted, not fatal)."""

    def __init__(self, dataset, size: int, crop_area: float, labels=None):
        self.dataset, self.size, self.crop_area, self.labels = dataset, size, crop_area, labels

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i: int):
        from pyface.data import DataError
        from pyface.data.transforms import CenterFaceCrop

        try:
            s = self.dataset[i]
        except DataError as exc:
            return {"image": torch.zeros(3, self.size, self.size, dtype=torch.uint8), "identity": -1, "ok": False,
                    "error": str(exc)}
        known = bool(torch.isfinite(s["landmarks"]).all())
        s = CenterFaceCrop(self.crop_area if known else 1.0, self.size)(s)
        ident = int(self.labels[i]) if self.labels is not None else int(s["identity"])
        return {"image": s["image"], "identity": ident, "ok": True, "error": ""}


def _unit_batches(units: list[tuple[int, int]], batch_size: int) -> list[list[int]]:
    return [list(range(s, min(s + batch_size, e))) for s, e in units for s in range(s, e, batch_size)]


def _dataset_spec_desc(spec, dataset) -> dict:
    from pyface.data import describe_spec

    d = {"len": len(dataset), "type": type(dataset).__name__}
    if isinstance(spec, (str, dict, os.PathLike)):
        d["spec"] = describe_spec(spec)
    return d


def embed_identities(name: str, dataset, net_a: FRNet, net_b: FRNet, out_dir: str, *, labels=None, keys=None,
                     spec=None, batch_size: int = 64, chunk_size: int = DEFAULT_CHUNK,
                     face_crop_area: float = DEFAULT_FACE_CROP_AREA, workers: int = 0, resume: bool = False,
                     progress: bool = True, on_unit=None) -> IdentityEmbeddings:
    """Step 1 for one dataset: per-identity embedding sums under both nets, resumable.

    ``labels`` [N] int: per-image identity overriding the dataset's (SemiIdentify), with
    ``keys`` naming each label. ``out_dir``: the shard folder (created; with ``resume`` an
    existing one is continued if its configuration matches, else ``ValueError``).
    ``on_unit(k)``: called after unit ``k`` is written (tests use it to interrupt)."""
    n = len(dataset)
    if n == 0:
        raise ValueError(f"dataset {name!r} is empty")
    if labels is not None and len(labels) != n:
        raise ValueError(f"{name}: labels must have one entry per image ({n}), got {len(labels)}")
    chunk_size, batch_size = int(chunk_size), int(batch_size)
    if chunk_size < 1 or batch_size < 1:
        raise ValueError("chunk_size and batch_size must be >= 1")
    config = {"dataset": name, "data": _dataset_spec_desc(spec, dataset), "net_a": net_a.describe(),
              "net_b": net_b.describe(), "chunk_size": chunk_size, "face_crop_area": float(face_crop_area),
              "labels": None if labels is None else config_hash({"l": np.asarray(labels).tolist()})}
    shards = open_output(out_dir, config, resume=resume)
    units = [(s, min(s + chunk_size, n)) for s in range(0, n, chunk_size)]
    done = set(shards.finished())
    todo = [k for k in range(len(units)) if k not in done]
    if todo:
        size = max(net_a.input_size, net_b.input_size)
        frames = _Frames(dataset, size, float(face_crop_area), labels)
        loader = torch.utils.data.DataLoader(frames, batch_sampler=_unit_batches([units[k] for k in todo], batch_size),
                                             num_workers=workers,
                                             pin_memory=net_a.device.type == "cuda")
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=n, initial=sum(units[k][1] - units[k][0] for k in done), unit="img",
                       desc=f"embed {name}", dynamic_ncols=True)
        it = iter(loader)
        try:
            for k in todo:
                t0 = time.perf_counter()
                s, e = units[k]
                ids, ea, eb, bad, errors = [], [], [], 0, []
                got = 0
                while got < e - s:
                    batch = next(it)
                    m = len(batch["ok"])
                    got += m
                    ok = batch["ok"] & (batch["identity"] >= 0)
                    bad += int((~batch["ok"]).sum())
                    errors += [x for x, g in zip(batch["error"], batch["ok"].tolist()) if not g][:5 - len(errors)]
                    if bool(ok.any()):
                        img = batch["image"][ok]
                        ea.append(net_a.embed(img).double().cpu())
                        eb.append(net_b.embed(img).double().cpu())
                        ids.append(batch["identity"][ok])
                    if bar is not None:
                        bar.update(m)
                table, meta = _unit_table(ids, ea, eb, net_a.dim, net_b.dim)
                meta.update(images=e - s, bad=bad, bad_examples=errors, seconds=time.perf_counter() - t0)
                shards.write(k, table, meta)
                if on_unit is not None:
                    on_unit(k)
        finally:
            if bar is not None:
                bar.close()
            del it
    return _reduce(name, shards, net_a.dim, net_b.dim, keys)


def _unit_table(ids, ea, eb, da, db):
    if ids:
        lab = torch.cat(ids)
        u, inv = torch.unique(lab, return_inverse=True)
        sa = torch.zeros(len(u), da, dtype=torch.float64).index_add_(0, inv, torch.cat(ea))
        sb = torch.zeros(len(u), db, dtype=torch.float64).index_add_(0, inv, torch.cat(eb))
        cnt = torch.bincount(inv, minlength=len(u))
        u, sa, sb, cnt = u.numpy(), sa.numpy(), sb.numpy(), cnt.numpy()
    else:
        u, sa, sb, cnt = (np.zeros(0, np.int64), np.zeros((0, da)), np.zeros((0, db)), np.zeros(0, np.int64))
    table = pa.table({
        "identity": pa.array(u, pa.int64()), "count": pa.array(cnt, pa.int64()),
        "sum_a": pa.FixedSizeListArray.from_arrays(pa.array(sa.reshape(-1), pa.float64()), da),
        "sum_b": pa.FixedSizeListArray.from_arrays(pa.array(sb.reshape(-1), pa.float64()), db)})
    return table, {"embedded": int(cnt.sum())}


def _reduce(name, shards, da, db, keys) -> IdentityEmbeddings:
    """Sum the unit shards per identity (float64)."""
    table = shards.read()
    metas = shards.metas()
    lab = table.column("identity").to_numpy()
    u, inv = np.unique(lab, return_inverse=True)
    inv_t = torch.from_numpy(inv.astype(np.int64))

    def col(c, d):
        v = np.array(table.column(c).combine_chunks().flatten().to_numpy().reshape(-1, d))
        return torch.zeros(len(u), d, dtype=torch.float64).index_add_(0, inv_t, torch.from_numpy(v)).numpy()

    counts = np.bincount(inv, weights=table.column("count").to_numpy(), minlength=len(u)).astype(np.int64)
    ks = None if keys is None else [keys[int(i)] for i in u]
    images = sum(m.get("images", 0) for m in metas)
    bad = sum(m.get("bad", 0) for m in metas)
    examples = [x for m in metas for x in m.get("bad_examples", [])][:5]
    return IdentityEmbeddings(name, u.astype(np.int64), col("sum_a", da), col("sum_b", db), counts, ks,
                              images=images, bad=bad, unlabeled=images - bad - int(counts.sum()),
                              bad_examples=examples)


# ---------------------------------------------------------------------------- duplicates + merge
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


def find_duplicates(groups: list[IdentityEmbeddings], threshold_a: float, threshold_b: float,
                    device=None, pairs_of=None) -> dict[str, np.ndarray]:
    """Step 2: identity pairs of different groups with cos >= threshold_a in space A and
    >= threshold_b in space B (mean embeddings). ``pairs_of``: which (i, j) group pairs
    to search (default all i < j). Returns arrays ``node_a``, ``node_b`` (global node
    index: group offset + row), ``sim_a``, ``sim_b``, ``group_a``, ``group_b``."""
    from pyface.ops import cosine_duplicates

    _check_dims(groups)
    offsets = np.cumsum([0] + [len(g) for g in groups])
    pairs_of = pairs_of if pairs_of is not None else [(i, j) for i in range(len(groups))
                                                      for j in range(i + 1, len(groups))]
    dev = torch.device(device) if device is not None else torch.device("cpu")
    means = [(_unit_rows(g.mean_a).to(dev), _unit_rows(g.mean_b).to(dev)) for g in groups]
    out = {k: [] for k in ("node_a", "node_b", "sim_a", "sim_b", "group_a", "group_b")}
    for i, j in pairs_of:
        if not len(groups[i]) or not len(groups[j]):
            continue
        (ai, bi), (aj, bj) = means[i], means[j]
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
                     pairs_of=None) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
    """Steps 2-3: new ids per group (a list of [I_g] int64 arrays, contiguous from 0) and
    the duplicate edges (:func:`find_duplicates`)."""
    edges = find_duplicates(groups, threshold_a, threshold_b, device, pairs_of)
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
    """Signs of false merges: identities of one dataset are distinct people, so a new
    identity holding two of them came from a chain through a false match. Returns the
    number of such new identities, the old identities they hold, and the largest new
    identity (old identities in it). Groups named in ``skip`` (300W-LP: several source
    faces may show one person) are not checked."""
    allnew = np.concatenate([np.asarray(x, np.int64) for x in new_ids]) if new_ids else np.zeros(0, np.int64)
    n = int(allnew.max()) + 1 if len(allnew) else 0
    chained = np.zeros(n, bool)
    for g, x in zip(groups, new_ids):
        if g.name not in skip:
            chained |= np.bincount(np.asarray(x, np.int64), minlength=n) > 1
    sizes = np.bincount(allnew, minlength=n)
    return {"chained_identities": int(chained.sum()), "old_identities_in_chains": int(sizes[chained].sum()),
            "largest_identity": int(sizes.max()) if n else 0}


# ---------------------------------------------------------------------------- SemiIdentify
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


# ---------------------------------------------------------------------------- thresholds
def calibrate_threshold(scores, issame) -> float:
    """Best-accuracy cosine threshold of verification pairs (the paper's LFW
    calibration), via the evaluation suite's ``pyface.eval.best_threshold``."""
    from pyface.eval import best_threshold

    return best_threshold(np.asarray(scores, dtype=np.float64), np.asarray(issame, dtype=bool))[0]


def _load_pairs(path: str):
    """(VerificationBin dataset, issame [P]) of an insightface verification ``.bin``."""
    from pyface.data.sample import DataError
    from pyface.data.verification_bin import VerificationBin

    try:
        ds = VerificationBin(path)
    except (FileNotFoundError, DataError) as exc:
        raise type(exc)(f"--calibrate: {exc}") from exc
    return ds, np.asarray(ds.issame, dtype=bool)


def _pair_scores(net: FRNet, images, batch_size: int, workers: int = 0) -> np.ndarray:
    """Cosine scores of pairs (2k, 2k + 1): ``images`` uint8 [2P, 3, H, W] or a dataset."""
    if isinstance(images, (torch.Tensor, np.ndarray)):
        images = torch.as_tensor(images)
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"verification images must be uint8 [2P, 3, H, W], got {list(images.shape)}")
        batches = (images[i:i + batch_size] for i in range(0, len(images), batch_size))
    else:
        frames = _Frames(images, net.input_size, 1.0)
        loader = torch.utils.data.DataLoader(frames, batch_size=batch_size, num_workers=workers)
        batches = (b["image"] for b in loader)
    e = torch.cat([net.embed(b).cpu() for b in batches])
    return (e[0::2] * e[1::2]).sum(1).numpy()


# ---------------------------------------------------------------------------- evaluation
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


# ---------------------------------------------------------------------------- manifest join
def _dataset_root(ds) -> str | None:
    for attr in ("root", "path"):
        v = getattr(ds, attr, None)
        if isinstance(v, str):
            return os.path.abspath(v) if attr == "root" else os.path.dirname(os.path.abspath(v))
    reader = getattr(ds, "reader", None)
    if reader is not None and hasattr(reader, "rec_path"):
        return os.path.abspath(reader.rec_path)
    return None


def _shard_files(landmarks) -> list[str]:
    """The Algorithm-1 shards of one or more ``pyface label landmarks`` output folders
    (``DIR/part-*.parquet``; a folder of other ``*.parquet`` files is read whole)."""
    dirs = [landmarks] if isinstance(landmarks, (str, os.PathLike)) else list(landmarks)
    files = []
    for d in map(os.fspath, dirs):
        if not os.path.isdir(d):
            raise FileNotFoundError(f"--landmarks: folder not found: {d}")
        names = sorted(f for f in os.listdir(d) if f.endswith(".parquet") and not f.startswith("."))
        parts = [f for f in names if f.startswith("part-")]
        if parts and os.path.exists(os.path.join(d, "config.json")) and not os.path.exists(
                os.path.join(d, "summary.json")):
            raise ValueError(f"--landmarks: {d} is an unfinished pyface label landmarks run (no summary.json); "
                             "finish it with --resume first")
        names = parts or names  # the shards, not their concatenation (manifest.parquet)
        if not names:
            raise ValueError(f"--landmarks: no Parquet shards (*.parquet) in {d}")
        files += [os.path.join(d, f) for f in names]
    need = {"image", "identity", "landmarks", "pose", "source"}
    for f in files:
        missing = need - set(pq.read_schema(f).names)
        if missing:
            raise ValueError(f"--landmarks: {f} lacks columns {sorted(missing)}")
    return files


class _Resolver:
    """Maps Algorithm-1 rows to (dataset, old identity) and so to new ids.

    A row belongs to the dataset whose NAME equals its ``source``; rows whose source is
    no NAME are matched by image path prefix (the dataset's folder / .rec / manifest
    folder). Relative image refs are relative to the shard's folder."""

    def __init__(self, datasets: dict, semi_name: str | None):
        self.names = list(datasets)
        self.roots = {n: _dataset_root(d) for n, d in datasets.items()}
        self.semi_name = semi_name
        self.maps: dict[str, tuple[np.ndarray, np.ndarray]] = {}   # name -> (sorted old ids, new ids)
        self.semi_map: dict[str, int] = {}

    def dataset_of(self, source: str, image: str) -> str | None:
        if source in self.roots:
            return source
        for n, r in self.roots.items():
            if r and (image == r or image.startswith(r.rstrip(os.sep) + os.sep) or image.startswith(r + "#")):
                return n
        return None

    @staticmethod
    def absolute(images: pa.Array, base: str) -> pa.Array:
        """Image refs made absolute (relative ones are relative to ``base``)."""
        rel = pc.invert(pc.starts_with(images, "/"))
        if not pc.any(rel).as_py():
            return images
        out = images.to_pylist()
        for k in np.flatnonzero(rel.to_numpy(zero_copy_only=False)):
            out[k] = os.path.normpath(os.path.join(base, out[k])) if "#" not in out[k] else os.path.join(base, out[k])
        return pa.array(out, pa.string())

    def resolve(self, table: pa.Table, base: str) -> tuple[pa.Array, np.ndarray, np.ndarray]:
        """(absolute image refs, dataset code per row = index into ``names`` or -1 when
        no dataset matches, new id per row or -1 when the identity has no embedding)."""
        img = self.absolute(table.column("image").combine_chunks().cast(pa.string()), base)
        src = table.column("source").combine_chunks().cast(pa.string())
        code = pc.index_in(src, value_set=pa.array(self.names, pa.string())).fill_null(-1).to_numpy(
            zero_copy_only=False).astype(np.int64)
        for c, n in enumerate(self.names):  # sources that are no NAME: match by path prefix
            r = self.roots[n]
            if not r or not (code < 0).any():
                continue
            hit = pc.or_(pc.or_(pc.starts_with(img, r.rstrip(os.sep) + os.sep), pc.starts_with(img, r + "#")),
                         pc.equal(img, r)).to_numpy(zero_copy_only=False)
            code[(code < 0) & hit] = c
        old = table.column("identity").to_numpy()
        new = np.full(len(code), -1, np.int64)
        for c, n in enumerate(self.names):
            sel = np.flatnonzero(code == c)
            if not len(sel):
                continue
            if n == self.semi_name:
                imgs = img.take(pa.array(sel)).to_pylist()
                new[sel] = [self.semi_map.get(semi_identify_key(r), -1) for r in imgs]
            elif n in self.maps:
                ids, nid = self.maps[n]
                if not len(ids):
                    continue
                pos = np.clip(np.searchsorted(ids, old[sel]), 0, len(ids) - 1)
                hit = ids[pos] == old[sel]
                new[sel[hit]] = nid[pos[hit]]
        return img, code, new


def _check_sources(files: list[str], resolver: _Resolver) -> None:
    """Before any long work: every Algorithm-1 source must map to a --dataset."""
    for f in files:
        t = pq.read_table(f, columns=["source", "image"])
        if not len(t):
            continue
        srcs = pc.unique(t.column("source")).to_pylist()
        for s in srcs:
            if s in resolver.roots:
                continue
            row = t.filter(pc.equal(t.column("source"), s)).column("image")[0].as_py()
            row = row if os.path.isabs(row.split("#", 1)[0]) else os.path.join(os.path.dirname(f), row)
            if resolver.dataset_of(s, row) is None:
                raise ValueError(f"--landmarks: {f} has source {s!r} (e.g. image {row}) that matches no --dataset "
                                 f"name or folder ({resolver.names}); name the dataset {s}=SPEC")


class _OwnLabels(torch.utils.data.Dataset):
    """Image i's own landmarks and pose (300W-LP's ground truth), or a flag when unreadable."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        from pyface.data import DataError

        try:
            s = self.dataset[i]
        except DataError:
            return {"i": i, "ok": False, "landmarks": torch.full((68, 2), float("nan")),
                    "pose": torch.full((3,), float("nan"))}
        return {"i": i, "ok": True, "landmarks": s["landmarks"].float(), "pose": s["pose"].float()}


def _own_label_tables(ds, resolver: _Resolver, batch_size: int = 256, workers: int = 0):
    """Manifest tables of the SemiIdentify dataset with its own labels, streamed."""
    from pyface.data.manifest import MANIFEST_SCHEMA

    loader = torch.utils.data.DataLoader(_OwnLabels(ds), batch_size=batch_size, num_workers=workers)
    for b in loader:
        ok = b["ok"].numpy()
        refs = [os.path.abspath(ds._describe(int(i))) for i in b["i"]]
        new = np.array([resolver.semi_map.get(semi_identify_key(r), -1) for r in refs], np.int64)
        keep = ok & (new >= 0)
        idx = np.flatnonzero(keep)
        table = pa.Table.from_arrays([
            pa.array([refs[k] for k in idx], pa.string()), pa.array(new[idx], pa.int64()),
            pa.FixedSizeListArray.from_arrays(pa.array(b["landmarks"].numpy()[idx].reshape(-1)), 136),
            pa.FixedSizeListArray.from_arrays(pa.array(b["pose"].numpy()[idx].reshape(-1)), 3),
            pa.array([resolver.semi_name] * len(idx), pa.string())], schema=MANIFEST_SCHEMA)
        yield table, int((~ok).sum()), int((ok & (new < 0)).sum())


def write_pltd(path: str, files: list[str], resolver: _Resolver, keep_rejected: bool = False, own_labels=None,
               workers: int = 0) -> dict:
    """Stream the Algorithm-1 shards into the final manifest (atomic), one shard in
    memory at a time. Output ``source`` = the dataset NAME. ``own_labels``: the
    SemiIdentify dataset, whose rows then come with its own (ground-truth) labels instead
    of Algorithm 1's. Returns row counts."""
    from pyface.data.manifest import MANIFEST_SCHEMA

    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{os.getpid()}.tmp")
    counts = {"rows_in": 0, "rows_out": 0, "rejected_dropped": 0, "unmatched_dropped": 0, "no_identity_dropped": 0}
    per_source = np.zeros(len(resolver.names), np.int64)
    names = pa.array(resolver.names, pa.string())
    own_code = resolver.names.index(resolver.semi_name) if own_labels is not None else -2
    with pq.ParquetWriter(tmp, MANIFEST_SCHEMA) as w:
        for f in files:
            t = pq.read_table(f)
            counts["rows_in"] += len(t)
            if not len(t):
                continue
            img, code, new = resolver.resolve(t, os.path.dirname(os.path.abspath(f)))
            keep = code != own_code  # those rows are written from the dataset's own labels below
            counts["replaced_by_own_labels"] = counts.get("replaced_by_own_labels", 0) + int((~keep).sum())
            acc = (t.column("accepted").to_numpy(zero_copy_only=False).astype(bool)
                   if "accepted" in t.column_names else keep)
            if not keep_rejected:
                counts["rejected_dropped"] += int((keep & ~acc).sum())
                keep &= acc
            counts["unmatched_dropped"] += int((keep & (code < 0)).sum())
            keep &= code >= 0
            counts["no_identity_dropped"] += int((keep & (new < 0)).sum())
            keep &= new >= 0
            idx = np.flatnonzero(keep)
            if not len(idx):
                continue
            per_source += np.bincount(code[idx], minlength=len(per_source))
            take = pa.array(idx)
            lm = t.column("landmarks").combine_chunks().take(take)
            ps = t.column("pose").combine_chunks().take(take)
            lm = np.asarray(lm.flatten().to_numpy(zero_copy_only=False), np.float32).reshape(len(idx), 136)
            ps = np.asarray(ps.flatten().to_numpy(zero_copy_only=False), np.float32).reshape(len(idx), 3)
            if keep_rejected and not acc[idx].all():  # rejected rows: FR-only (unknown landmarks/pose)
                lm, ps = lm.copy(), ps.copy()
                lm[~acc[idx]] = np.nan
                ps[~acc[idx]] = np.nan
            out = pa.Table.from_arrays([
                img.take(take), pa.array(new[idx], pa.int64()),
                pa.FixedSizeListArray.from_arrays(pa.array(lm.reshape(-1)), 136),
                pa.FixedSizeListArray.from_arrays(pa.array(ps.reshape(-1)), 3),
                names.take(pa.array(code[idx]))], schema=MANIFEST_SCHEMA)
            w.write_table(out)
            counts["rows_out"] += len(out)
        if own_labels is not None:
            own = {"rows": 0, "unreadable": 0, "no_identity": 0}
            for table, bad, noid in _own_label_tables(own_labels, resolver, workers=workers):
                w.write_table(table)
                own["rows"] += len(table)
                own["unreadable"] += bad
                own["no_identity"] += noid
            counts["rows_out"] += own["rows"]
            per_source[own_code] += own["rows"]
            counts["own_labels"] = own
    os.replace(tmp, path)
    counts["rows_per_dataset"] = {n: int(c) for n, c in zip(resolver.names, per_source) if c}
    return counts


# ---------------------------------------------------------------------------- the job
def _write_csv_atomic(path: str, header: list[str], rows) -> None:
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{os.getpid()}.tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    os.replace(tmp, path)


def _parse_thresholds(threshold_a, threshold_b, calibrate):
    given = (threshold_a is not None, threshold_b is not None)
    if calibrate is not None and any(given):
        raise ValueError("give either --threshold-a/--threshold-b or --calibrate, not both")
    if calibrate is None and not all(given):
        raise ValueError("thresholds: give both --threshold-a and --threshold-b, or --calibrate PAIRS.bin")
    for what, t in (("--threshold-a", threshold_a), ("--threshold-b", threshold_b)):
        if t is not None and not -1.0 <= float(t) <= 1.0:
            raise ValueError(f"{what} must be a cosine similarity in [-1, 1], got {t}")


def _open(spec, what: str):
    """A dataset object as is; a spec through :func:`pyface.data.open_dataset`, errors naming ``what``."""
    from pyface.data import open_dataset

    if not isinstance(spec, (str, dict, os.PathLike)):
        return spec
    try:
        return open_dataset(spec)
    except (FileNotFoundError, ValueError) as exc:
        raise type(exc)(f"{what}: {exc}") from exc


def run_identities(datasets: dict, net_a, net_b, out: str, *, threshold_a: float | None = None,
                   threshold_b: float | None = None, calibrate: str | None = None, calibration_pairs=None,
                   semi_identify=None, semi_name: str = SEMI_NAME, landmarks=None,
                   keep_rejected: bool = False, semi_labels: str = "dataset", ground_truth=None,
                   batch_size: int = 64,
                   chunk_size: int = DEFAULT_CHUNK, face_crop_area: float = DEFAULT_FACE_CROP_AREA, device=None,
                   amp: bool = True, workers: int = 0, resume: bool = False, progress: bool = True,
                   on_unit=None) -> dict:
    """Algorithm 2 end to end; returns the summary (also written to ``out/summary.json``).

    ``datasets``: ``{NAME: spec or dataset}`` (spec: see :mod:`pyface.data.spec`), in the
    order that numbers the new identities. ``net_a``/``net_b``: checkpoint paths, models or
    :class:`FRNet`. Thresholds: both given, or ``calibrate`` (a verification ``.bin``) or
    ``calibration_pairs`` = ``(images [2P, 3, H, W] uint8, issame [P])``.
    ``semi_identify``: the 300W-LP spec/dataset (named ``semi_name``); its manifest rows
    carry its own ground-truth labels (``semi_labels="dataset"``, the paper's training
    set) or Algorithm 1's (``"landmarks"``). ``landmarks``: the
    Algorithm-1 output folder(s) (one ``pyface label landmarks`` run per dataset; without
    them no manifest is written). ``ground_truth``:
    ``{NAME: callable old_id -> person}`` (300W-LP: called with the source-face name);
    the summary then has pair precision/recall of the final merge."""
    t_start = time.perf_counter()
    if not datasets:
        raise ValueError("--dataset: give at least one NAME=SPEC")
    _parse_thresholds(threshold_a, threshold_b, calibrate if calibrate is not None else calibration_pairs)
    names = list(datasets)
    if semi_labels not in ("dataset", "landmarks"):
        raise ValueError(f"--semi-labels must be 'dataset' or 'landmarks', got {semi_labels!r}")
    if semi_identify is not None and semi_name in names:
        raise ValueError(f"--dataset name {semi_name!r} is reserved for --semi-identify")
    for n in names:
        if not re.fullmatch(r"[A-Za-z0-9_.\-]+", n):
            raise ValueError(f"--dataset name {n!r}: use letters, digits, '_', '-', '.'")
    pairs = _load_pairs(calibrate) if calibrate is not None else calibration_pairs  # read before any work
    built = {}
    for n, spec in datasets.items():
        ds = _open(spec, f"--dataset {n}")
        if len(ds) == 0:
            raise ValueError(f"--dataset {n}: the dataset is empty")
        built[n] = ds
    semi = None
    if semi_identify is not None:
        semi = _open(semi_identify, "--semi-identify")
        if len(semi) == 0:
            raise ValueError("--semi-identify: the dataset is empty")
    every = {**built, **({semi_name: semi} if semi is not None else {})}
    resolver = _Resolver(every, semi_name if semi is not None else None)
    files = _shard_files(landmarks) if landmarks is not None else None
    if files:
        _check_sources(files, resolver)
    for n in every:
        if not resume and os.path.exists(os.path.join(out, "embeddings", n, "config.json")):
            raise ValueError(f"{os.path.join(out, 'embeddings', n)} already holds a run; pass --resume to continue "
                             "it or choose a new --out")
    fa = net_a if isinstance(net_a, FRNet) else FRNet(net_a, "--net-a", device=device, amp=amp)
    fb = net_b if isinstance(net_b, FRNet) else FRNet(net_b, "--net-b", device=device, amp=amp)
    os.makedirs(out, exist_ok=True)
    timing = {}

    # thresholds
    calib = None
    if calibrate is not None or calibration_pairs is not None:
        t0 = time.perf_counter()
        images, issame = pairs
        issame = np.asarray(issame, bool)
        calib = {}
        for key, net in (("a", fa), ("b", fb)):
            scores = _pair_scores(net, images, batch_size, workers)
            if len(scores) != len(issame):
                raise ValueError(f"calibration pairs: {len(scores)} pairs of images but {len(issame)} issame labels")
            t = calibrate_threshold(scores, issame)
            calib[key] = {"threshold": t, "accuracy": float(((scores >= t) == issame).mean()), "pairs": len(issame)}
        threshold_a, threshold_b = calib["a"]["threshold"], calib["b"]["threshold"]
        timing["calibrate_s"] = time.perf_counter() - t0

    # step 1: embeddings
    t0 = time.perf_counter()
    groups = []
    common = dict(batch_size=batch_size, chunk_size=chunk_size, face_crop_area=face_crop_area, workers=workers,
                  resume=resume, progress=progress, on_unit=on_unit)
    for n, ds in built.items():
        groups.append(embed_identities(n, ds, fa, fb, os.path.join(out, "embeddings", n),
                                       spec=datasets[n], **common))
        if not len(groups[-1]):
            raise ValueError(f"--dataset {n}: no image could be embedded ({groups[-1].bad} unreadable, "
                             f"{groups[-1].unlabeled} without identity; e.g. {groups[-1].bad_examples[:1]})")
    semi_group = None
    if semi is not None:
        if not hasattr(semi, "_describe"):
            raise ValueError("--semi-identify: needs a file-backed 300W-LP dataset (the file names carry the "
                             "source 300W face)")
        labels, keys = semi_identify_labels([semi._describe(i) for i in range(len(semi))])
        semi_group = embed_identities(semi_name, semi, fa, fb, os.path.join(out, "embeddings", semi_name),
                                      labels=labels, keys=keys, spec=semi_identify, **common)
        resolver.semi_name = semi_name
    timing["embed_s"] = time.perf_counter() - t0

    # steps 2-3: duplicates across the FR datasets, union-find
    t0 = time.perf_counter()
    new_ids, edges = merge_identities(groups, threshold_a, threshold_b, fa.device)
    n_merged = int(max((x.max() + 1 for x in new_ids if len(x)), default=0))
    merges = [("fr", groups[ga].name, groups[ga].key(a - off[ga]), groups[gb].name, groups[gb].key(b - off[gb]),
               float(sa), float(sb))
              for off in [np.cumsum([0] + [len(g) for g in groups])]
              for a, b, sa, sb, ga, gb in zip(edges["node_a"], edges["node_b"], edges["sim_a"], edges["sim_b"],
                                              edges["group_a"], edges["group_b"])]
    merges_per_pair = {}
    for m in merges:
        k = f"{m[1]}~{m[3]}"
        merges_per_pair[k] = merges_per_pair.get(k, 0) + 1
    final_ids = list(new_ids)
    semi_new = None
    semi_stats = None
    # step 4: SemiIdentify against the merged identities
    if semi_group is not None:
        merged = pooled(groups, new_ids)
        ids2, edges2 = merge_identities([merged, semi_group], threshold_a, threshold_b, fa.device)
        remap, semi_new = ids2
        final_ids = [remap[x] for x in new_ids]
        for a, b, sa, sb in zip(edges2["node_a"], edges2["node_b"], edges2["sim_a"], edges2["sim_b"]):
            merges.append(("semi", "merged", str(int(a)), semi_name, semi_group.key(int(b) - len(merged)),
                           float(sa), float(sb)))
        semi_stats = {"source_faces": len(semi_group), "images": semi_group.images,
                      "matched_to_fr": int(len(np.unique(edges2["node_b"]))),
                      "merges": int(len(edges2["node_a"]))}
        merges_per_pair[f"merged~{semi_name}"] = int(len(edges2["node_a"]))
    timing["merge_s"] = time.perf_counter() - t0
    all_groups = groups + ([semi_group] if semi_group is not None else [])
    all_new = final_ids + ([semi_new] if semi_new is not None else [])
    quality = merge_quality(all_groups, all_new, skip=(semi_name,))
    if quality["chained_identities"]:
        import warnings

        warnings.warn(f"{quality['chained_identities']} new identities join several identities of one dataset "
                      f"(largest: {quality['largest_identity']} old identities) -- duplicate chains through false "
                      "matches; consider stricter thresholds (see summary.json 'quality')", RuntimeWarning,
                      stacklevel=2)
    for g, nid in zip(all_groups, all_new):
        if g.name == semi_name and semi_group is not None:
            resolver.semi_map = {g.key(i): int(nid[i]) for i in range(len(g))}
        else:
            resolver.maps[g.name] = (g.ids, nid)
    n_after = int(max((x.max() + 1 for x in all_new if len(x)), default=0))

    _write_csv_atomic(os.path.join(out, "identity_map.csv"), ["dataset", "old_id", "new_id", "images"],
                      ((g.name, g.key(i), int(nid[i]), int(g.counts[i]))
                       for g, nid in zip(all_groups, all_new) for i in range(len(g))))
    _write_csv_atomic(os.path.join(out, "merges.csv"),
                      ["stage", "dataset_a", "old_id_a", "dataset_b", "old_id_b", "sim_a", "sim_b"], merges)

    manifest = None
    if files is not None:
        t0 = time.perf_counter()
        own = semi if semi is not None and semi_labels == "dataset" else None
        manifest = write_pltd(os.path.join(out, "manifest.parquet"), files, resolver, keep_rejected, own, workers)
        timing["manifest_s"] = time.perf_counter() - t0

    summary = {
        "datasets": {g.name: {"identities": len(g), "images": g.images, "embedded": int(g.counts.sum()),
                              "bad": g.bad, "unlabeled": g.unlabeled, "bad_examples": g.bad_examples}
                     for g in all_groups},
        "identities_before": int(sum(len(g) for g in all_groups)),
        "identities_before_fr": int(sum(len(g) for g in groups)),
        "identities_after_fr_merge": n_merged,
        "identities_after": n_after,
        "merges": len(merges), "merges_per_dataset_pair": merges_per_pair, "quality": quality,
        "thresholds": {"a": float(threshold_a), "b": float(threshold_b), "calibration": calib},
        "semi_identify": semi_stats, "manifest": manifest,
        "nets": {"a": fa.describe() | {"dim": fa.dim, "path": fa.path},
                 "b": fb.describe() | {"dim": fb.dim, "path": fb.path}},
        "device": str(fa.device), "keep_rejected": keep_rejected,
        "seconds": {**timing, "total_s": time.perf_counter() - t_start},
    }
    if ground_truth is not None:
        truth, pred = [], []
        for g, nid in zip(all_groups, all_new):
            fn = ground_truth.get(g.name)
            if fn is None:
                raise ValueError(f"ground_truth has no entry for dataset {g.name!r}")
            truth += [str(fn(g.keys[i] if g.keys is not None else int(g.ids[i]))) for i in range(len(g))]
            pred += list(nid)
        _, tcodes = np.unique(np.asarray(truth, dtype=object), return_inverse=True)
        summary["ground_truth"] = pair_precision_recall(np.asarray(pred), tcodes)
    write_json_atomic(os.path.join(out, "summary.json"), summary)
    return summary


# ---------------------------------------------------------------------------- demo
class _Images(torch.utils.data.Dataset):
    """Images ``k0 .. k0 + n - 1`` of every identity of a SyntheticFaces set."""

    def __init__(self, faces, k0: int, n: int):
        self.faces, self.k0, self.n = faces, k0, n

    def __len__(self):
        return self.faces.num_identities * self.n

    def __getitem__(self, i):
        ident, k = divmod(i, self.n)
        return self.faces[ident * self.faces.images_per_identity + self.k0 + k]


def demo_identities(out: str, net_a, net_b, *, identities: int = 60, shared: int = 20, images: int = 8,
                    image_size: int = 64, seed: int = 0, identity_offset: int = 10_000, pairs: int = 200,
                    device=None, progress: bool = False, threshold_a: float | None = None,
                    threshold_b: float | None = None) -> dict:
    """Algorithm 2 on two synthetic "FR datasets" that share ``shared`` known identities
    (different images of them), thresholds given or (default) calibrated on ``pairs``
    synthetic verification pairs of other identities; returns the summary with ``ground_truth`` precision/recall
    of the merges. The nets (e.g. two ``pyface demo`` models) should not have seen these
    identities (``identity_offset`` is far from the demo's training ids)."""
    from pyface.data import SyntheticFaces

    if not 0 <= shared <= identities:
        raise ValueError(f"shared must be in [0, identities={identities}], got {shared}")
    o = identity_offset
    d1 = SyntheticFaces(identities, 2 * images, image_size=image_size, seed=seed, identity_offset=o)
    d2 = SyntheticFaces(identities, 2 * images, image_size=image_size, seed=seed, identity_offset=o + identities - shared)
    cal = SyntheticFaces(pairs, 3, image_size=image_size, seed=seed, identity_offset=o + 2 * identities)
    imgs, same = [], []
    for p in range(pairs // 2):
        imgs += [cal[3 * p]["image"], cal[3 * p + 1]["image"], cal[3 * p + 2]["image"], cal[3 * (p + 1) + 2]["image"]]
        same += [True, False]
    return run_identities({"synthetic_a": _Images(d1, 0, images), "synthetic_b": _Images(d2, images, images)},
                          net_a, net_b, out, threshold_a=threshold_a, threshold_b=threshold_b,
                          calibration_pairs=None if threshold_a is not None else (torch.stack(imgs), np.array(same)),
                          device=device,
                          progress=progress, ground_truth={"synthetic_a": lambda i: i, "synthetic_b": lambda i: i})


# ---------------------------------------------------------------------------- CLI
def _parse_dataset_args(items: list[str]) -> dict:
    out = {}
    for it in items:
        if "=" not in it:
            raise ValueError(f"--dataset {it!r}: expected NAME=SPEC (e.g. vggface2=/data/vggface2/train)")
        name, spec = it.split("=", 1)
        if name in out:
            raise ValueError(f"--dataset name {name!r} given twice")
        out[name] = spec
    return out


def _main(args) -> int:
    import sys

    if getattr(args, "rest", None):
        print(f"pyface label identities: unrecognized arguments: {' '.join(args.rest)}", file=sys.stderr)
        return 2
    try:
        summary = _run_cli(args)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"pyface label identities: error: {exc}", file=sys.stderr)
        return 2
    th = summary["thresholds"]
    print(f"thresholds: a={th['a']:.4f} b={th['b']:.4f}" + (" (calibrated)" if th["calibration"] else ""))
    print(f"identities: {summary['identities_before']} before, {summary['identities_after']} after "
          f"({summary['merges']} merges: {summary['merges_per_dataset_pair']})")
    if summary["manifest"]:
        m = summary["manifest"]
        print(f"manifest: {m['rows_out']} rows of {m['rows_in']} ({m['rejected_dropped']} rejected, "
              f"{m['unmatched_dropped']} unmatched, {m['no_identity_dropped']} without identity dropped)")
    print(f"wrote {args.out}/summary.json, identity_map.csv, merges.csv"
          + (", manifest.parquet" if summary["manifest"] else ""))
    return 0


def _run_cli(args) -> dict:
    return run_identities(
        _parse_dataset_args(args.dataset), args.net_a, args.net_b, args.out, threshold_a=args.threshold_a,
        threshold_b=args.threshold_b, calibrate=args.calibrate, semi_identify=args.semi_identify,
        landmarks=args.landmarks, keep_rejected=args.keep_rejected, semi_labels=args.semi_labels,
        batch_size=args.batch_size,
        chunk_size=args.chunk_size, face_crop_area=args.face_crop_area, device=args.device, amp=not args.no_amp,
        workers=args.workers, resume=args.resume, progress=not args.no_progress)


def add_parser(subparsers):
    """``pyface label identities`` under a ``label`` sub-command's subparsers."""
    p = subparsers.add_parser("identities", help="Algorithm 2: deduplicate identities across FR datasets "
                              "with two FR nets and write the PLTD manifest")
    p.add_argument("--dataset", action="append", required=True, metavar="NAME=SPEC",
                   help="a face-recognition dataset (image folder per identity, .rec, .parquet manifest, or a "
                        "YAML spec); repeat for each; the order numbers the new identities")
    p.add_argument("--net-a", required=True, help="pyface train checkpoint with an FR head (e.g. trained on VGGFace2)")
    p.add_argument("--net-b", required=True, help="second FR checkpoint (e.g. trained on MS1MV3)")
    p.add_argument("--threshold-a", type=float, default=None, help="cosine threshold of net A")
    p.add_argument("--threshold-b", type=float, default=None, help="cosine threshold of net B")
    p.add_argument("--calibrate", default=None, metavar="PAIRS.bin",
                   help="calibrate both thresholds as the best-accuracy threshold on this verification .bin")
    p.add_argument("--semi-identify", default=None, metavar="300W-LP-SPEC",
                   help="300W-LP: one identity per source 300W face, then merged into the FR identities")
    p.add_argument("--landmarks", nargs="+", default=None, metavar="DIR",
                   help="Algorithm-1 output folders (pyface label landmarks --out DIR, one per dataset) to join "
                        "into OUT/manifest.parquet")
    p.add_argument("--semi-labels", choices=("dataset", "landmarks"), default="dataset",
                   help="labels of the --semi-identify rows in the manifest: the dataset's own (300W-LP ground "
                        "truth, default) or Algorithm 1's from --landmarks")
    p.add_argument("--keep-rejected", action="store_true",
                   help="keep images Algorithm 1 rejected (NaN landmarks/pose) instead of leaving them out")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--resume", action="store_true", help="continue a killed run in OUT (same settings)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK, help="images per resumable unit")
    p.add_argument("--face-crop-area", type=float, default=DEFAULT_FACE_CROP_AREA,
                   help="crop of images with known landmarks (300W-LP), as a multiple of the landmark box area")
    p.add_argument("--workers", type=int, default=4, help="DataLoader worker processes")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: cuda when available)")
    p.add_argument("--no-amp", action="store_true", help="fp32 on CUDA (default: bf16 autocast)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_main)
    return p
