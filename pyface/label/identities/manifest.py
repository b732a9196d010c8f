"""Algorithm 2's outputs: the PLTD manifest (the Algorithm-1 rows of ``pyface label
landmarks`` joined to the new identities), ``identity_map.csv`` and ``merges.csv``. Every
file is committed atomically (:mod:`pyface.io`).

A row of the Algorithm-1 shards belongs to the dataset whose NAME equals its ``source``;
rows whose source is no NAME are matched by image path prefix (:class:`Resolver`).
"""
from __future__ import annotations

import csv
import io
import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from pyface.errors import DataError
from pyface.io import atomic_path, write_text_atomic
from pyface.label.identities.merge import semi_identify_key
from pyface.procs import worker_init_fn

__all__ = ["IDENTITY_MAP_HEADER", "MERGES_HEADER", "Resolver", "check_sources", "dataset_root", "shard_files",
           "write_csv", "write_pltd"]

IDENTITY_MAP_HEADER = ["dataset", "old_id", "new_id", "images"]
MERGES_HEADER = ["stage", "dataset_a", "old_id_a", "dataset_b", "old_id_b", "sim_a", "sim_b"]


def write_csv(path, header: list[str], rows) -> None:
    """A CSV file (``identity_map.csv``, ``merges.csv``) committed atomically."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    w.writerows(rows)
    write_text_atomic(path, buf.getvalue())


def dataset_root(ds) -> str | None:
    for attr in ("root", "path"):
        v = getattr(ds, attr, None)
        if isinstance(v, str):
            return os.path.abspath(v) if attr == "root" else os.path.dirname(os.path.abspath(v))
    reader = getattr(ds, "reader", None)
    if reader is not None and hasattr(reader, "rec_path"):
        return os.path.abspath(reader.rec_path)
    return None


def shard_files(landmarks, what: str = "landmarks") -> list[str]:
    """The Algorithm-1 shards of one or more ``pyface label landmarks`` output folders
    (``DIR/part-*.parquet``; a folder of other ``*.parquet`` files is read whole);
    errors are DataErrors naming ``what``."""
    dirs = [landmarks] if isinstance(landmarks, (str, os.PathLike)) else list(landmarks)
    files = []
    for d in map(os.fspath, dirs):
        if not os.path.isdir(d):
            raise DataError(f"{what}: folder not found: {d}")
        names = sorted(f for f in os.listdir(d) if f.endswith(".parquet") and not f.startswith("."))
        parts = [f for f in names if f.startswith("part-")]
        if parts and os.path.exists(os.path.join(d, "config.json")) and not os.path.exists(
                os.path.join(d, "summary.json")):
            raise DataError(f"{what}: {d} is an unfinished pyface label landmarks run (no summary.json); "
                            "finish it with --resume first")
        names = parts or names  # the shards, not their concatenation (manifest.parquet)
        if not names:
            raise DataError(f"{what}: no Parquet shards (*.parquet) in {d}")
        files += [os.path.join(d, f) for f in names]
    need = {"image", "identity", "landmarks", "pose", "source"}
    for f in files:
        missing = need - set(pq.read_schema(f).names)
        if missing:
            raise DataError(f"{what}: {f} lacks columns {sorted(missing)}")
    return files


class Resolver:
    """Maps Algorithm-1 rows to (dataset, old identity) and so to new ids.

    A row belongs to the dataset whose NAME equals its ``source``; rows whose source is
    no NAME are matched by image path prefix (the dataset's folder / .rec / manifest
    folder). Relative image refs are relative to the shard's folder."""

    def __init__(self, datasets: dict, semi_name: str | None):
        self.names = list(datasets)
        self.roots = {n: dataset_root(d) for n, d in datasets.items()}
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


def check_sources(files: list[str], resolver: Resolver, what: str = "datasets") -> None:
    """Before any long work: every Algorithm-1 source must map to one of the datasets
    (``what`` names them in the error)."""
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
                raise DataError(f"{f} has source {s!r} (e.g. image {row}) that matches no {what} name or folder "
                                f"({resolver.names}); give that dataset the name {s!r}")


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


def _own_label_tables(ds, resolver: Resolver, batch_size: int = 256, workers: int = 0):
    """Manifest tables of the SemiIdentify dataset with its own labels, streamed."""
    from pyface.data.manifest import MANIFEST_SCHEMA

    loader = torch.utils.data.DataLoader(_OwnLabels(ds), batch_size=batch_size, num_workers=workers,
                                         worker_init_fn=worker_init_fn())
    for b in loader:
        ok = b["ok"].numpy()
        refs = [os.path.abspath(ds.describe(int(i))) for i in b["i"]]
        new = np.array([resolver.semi_map.get(semi_identify_key(r), -1) for r in refs], np.int64)
        keep = ok & (new >= 0)
        idx = np.flatnonzero(keep)
        table = pa.Table.from_arrays([
            pa.array([refs[k] for k in idx], pa.string()), pa.array(new[idx], pa.int64()),
            pa.FixedSizeListArray.from_arrays(pa.array(b["landmarks"].numpy()[idx].reshape(-1)), 136),
            pa.FixedSizeListArray.from_arrays(pa.array(b["pose"].numpy()[idx].reshape(-1)), 3),
            pa.array([resolver.semi_name] * len(idx), pa.string())], schema=MANIFEST_SCHEMA)
        yield table, int((~ok).sum()), int((ok & (new < 0)).sum())


def write_pltd(path: str, files: list[str], resolver: Resolver, keep_rejected: bool = False, own_labels=None,
               workers: int = 0) -> dict:
    """Stream the Algorithm-1 shards into the final manifest (atomic), one shard in
    memory at a time. Output ``source`` = the dataset NAME. ``own_labels``: the
    SemiIdentify dataset, whose rows then come with its own (ground-truth) labels instead
    of Algorithm 1's. Returns row counts."""
    from pyface.data.manifest import MANIFEST_SCHEMA

    counts = {"rows_in": 0, "rows_out": 0, "rejected_dropped": 0, "unmatched_dropped": 0, "no_identity_dropped": 0}
    per_source = np.zeros(len(resolver.names), np.int64)
    names = pa.array(resolver.names, pa.string())
    own_code = resolver.names.index(resolver.semi_name) if own_labels is not None else -2
    with atomic_path(path) as tmp, pq.ParquetWriter(tmp, MANIFEST_SCHEMA) as w:
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
    counts["rows_per_dataset"] = {n: int(c) for n, c in zip(resolver.names, per_source) if c}
    return counts
