"""``pyface label landmarks``: Algorithm 1 over a whole dataset, streaming, resumable.

Images are read by a DataLoader (``workers`` processes), labeled in batches by a
:class:`~pyface.label.Labeler` and written as shards of ``shard_size`` images
(:mod:`pyface.label.shards`): shard k holds images ``[k * shard_size, (k + 1) *
shard_size)`` in dataset order, so a killed job resumed with ``resume=True`` skips the
finished shards and writes exactly what an uninterrupted run writes. Memory is bounded
by one shard of rows plus the loader's prefetch.

Rows (:data:`LABEL_SCHEMA`): the manifest columns ``pyface train`` reads (image,
identity, landmarks, pose, source; :mod:`pyface.data.manifest`) plus ``accepted``,
``n_valid``, ``n_kept``, ``spread`` (largest kept sample's distance to the label, in
face sizes) and ``cause`` (why not accepted: a value of
:data:`~pyface.label.IMAGE_CAUSES` or ``unreadable``; '' when accepted). Rejected and
unreadable images are kept as rows with NaN landmarks and pose, which the trainer
masks. ``image`` is the absolute file path (``<file.rec>#<key>`` for RecordIO,
``<source>:<index>`` for generated datasets). When all shards are done,
``DIR/manifest.parquet`` (all rows) and ``DIR/summary.json`` are written (atomically).
A manifest input's optional ``box`` column (``x0, y0, x1, y1`` pixels, NaN = none) gives
face boxes for uncropped photos.
"""
from __future__ import annotations

import math
import os
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from pyface.data.base import FaceDataset
from pyface.data.manifest import MANIFEST_SCHEMA
from pyface.data.sample import DataError
from pyface.io import atomic_path, job_lock, write_json_atomic
from pyface.label.labeler import IMAGE_CAUSES, SAMPLE_CAUSES, Labeler
from pyface.label.shards import open_output
from pyface.procs import worker_init_fn
from pyface.runtime import device_name, weights_digest  # noqa: F401 - weights_digest re-exported

__all__ = ["LABEL_SCHEMA", "label_dataset", "weights_digest"]

UNREADABLE = "unreadable"
LABEL_SCHEMA = pa.schema(list(MANIFEST_SCHEMA) + [
    pa.field("accepted", pa.bool_(), nullable=False),
    pa.field("n_valid", pa.int32(), nullable=False),
    pa.field("n_kept", pa.int32(), nullable=False),
    pa.field("spread", pa.float32(), nullable=False),
    pa.field("cause", pa.string(), nullable=False),
], metadata=MANIFEST_SCHEMA.metadata)


def _ref(ds, i: int) -> str:
    """The manifest's ``image`` of sample i: an absolute path (``<file.rec>#<key>``), or
    ``<source>:<index>`` for datasets without files."""
    if isinstance(ds, FaceDataset) and type(ds).describe is not FaceDataset.describe:
        path, sep, key = ds.describe(i).partition("#")
        return os.path.abspath(path) + sep + key
    return f"{getattr(ds, 'source', 'dataset')}:{i}"


def _boxes(ds) -> np.ndarray | None:
    path = getattr(ds, "path", None)
    if not (isinstance(path, str) and path.endswith(".parquet")):
        return None
    if "box" not in pq.read_schema(path).names:
        return None
    col = pq.read_table(path, columns=["box"]).column("box").combine_chunks()
    vals = col.flatten().to_numpy(zero_copy_only=False).astype(np.float64)
    if vals.size != 4 * len(col):
        raise ValueError(f"{path}: column 'box' must hold 4 values (x0, y0, x1, y1) per row")
    return vals.reshape(-1, 4)


class _Reader(torch.utils.data.Dataset):
    """Index -> (index, HxWx3 image or None, error, identity, source) for the DataLoader;
    an unreadable image is a row, not an exception, when on_error="skip". Existing labels
    are not checked (the labeler replaces them); the caller's dataset is not modified."""

    def __init__(self, ds, on_error: str):
        self.ds, self.on_error = ds, on_error

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, i):
        try:
            # FaceDataset.sample: this index or an error, not the next good sample
            s = self.ds.sample(i, check_labels=False) if isinstance(self.ds, FaceDataset) else self.ds[i]
        except DataError as exc:
            if self.on_error == "raise":
                raise
            return i, None, str(exc), -1, getattr(self.ds, "source", "")
        img = np.ascontiguousarray(s["image"].permute(1, 2, 0).numpy())
        return i, img, "", int(s["identity"]), str(s["source"])


def _table(rows: dict) -> pa.Table:
    n = len(rows["image"])
    return pa.Table.from_arrays([
        pa.array(rows["image"], pa.string()),
        pa.array(np.asarray(rows["identity"], np.int64), pa.int64()),
        pa.FixedSizeListArray.from_arrays(pa.array(np.asarray(rows["landmarks"], np.float32).reshape(-1)), 136),
        pa.FixedSizeListArray.from_arrays(pa.array(np.asarray(rows["pose"], np.float32).reshape(-1)), 3),
        pa.array(rows["source"], pa.string()),
        pa.array(np.asarray(rows["accepted"], bool).reshape(n), pa.bool_()),
        pa.array(np.asarray(rows["n_valid"], np.int32), pa.int32()),
        pa.array(np.asarray(rows["n_kept"], np.int32), pa.int32()),
        pa.array(np.asarray(rows["spread"], np.float32), pa.float32()),
        pa.array([str(c) for c in rows["cause"]], pa.string()),
    ], schema=LABEL_SCHEMA)


def summarize(metas: list[dict], extra: dict) -> dict:
    images = sum(m["images"] for m in metas)
    accepted = sum(m["accepted"] for m in metas)
    seconds = sum(m["seconds"] for m in metas)
    causes = {c: sum(m["causes"].get(c, 0) for m in metas) for c in (*IMAGE_CAUSES, UNREADABLE)}
    sample_causes = {c: sum(m["sample_causes"].get(c, 0) for m in metas) for c in SAMPLE_CAUSES}
    timings = {k: sum(m["timings"].get(k, 0.0) for m in metas) for k in metas[0]["timings"]} if metas else {}
    return {"images": images, "accepted": accepted, "acceptance_rate": accepted / images if images else math.nan,
            "rejection_causes": causes, "invalid_samples": sample_causes, "seconds": seconds,
            "images_per_s": images / seconds if seconds else math.nan, "seconds_by_stage": timings, **extra}


def label_dataset(dataset, labeler: Labeler, out: str | os.PathLike, **kw) -> dict:
    """Label every image of ``dataset`` (any pyface dataset) into ``out`` (see the module
    docstring; keywords: those of :func:`_label_dataset`); returns the summary. ``out``
    is locked for the job's lifetime (:func:`pyface.io.job_lock`: a second job is
    refused naming the holder)."""
    with job_lock(out, "labeling run"):
        return _label_dataset(dataset, labeler, out, **kw)


def _label_dataset(dataset, labeler: Labeler, out: str | os.PathLike, *, resume: bool = False,
                   shard_size: int = 1024, batch_size: int = 64, workers: int = 0, on_error: str = "raise",
                   progress: bool = True, data_spec=None, limit: int | None = None, callback=None) -> dict:
    """``callback(k)`` runs after shard k is written."""
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    for name, v in (("shard_size", shard_size), ("batch_size", batch_size), ("limit", 1 if limit is None else limit)):
        if int(v) < 1:
            raise ValueError(f"{name} must be >= 1, got {v}")
    n = len(dataset) if limit is None else min(len(dataset), int(limit))
    if n == 0:
        raise ValueError(f"dataset {data_spec or dataset!r} is empty: nothing to label")
    boxes = _boxes(dataset)
    config = {"data": data_spec if data_spec is not None else type(dataset).__name__, "images": n,
              "shard_size": int(shard_size), "labeler": labeler.config(),
              "net_weights": weights_digest(labeler.net), "eye_net_weights": weights_digest(labeler.eye_net),
              "on_error": on_error}
    output = open_output(out, config, resume=resume)
    n_shards = (n + shard_size - 1) // shard_size
    done = set(output.finished())
    todo = [k for k in range(n_shards) if k not in done]
    metas = output.metas()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n, initial=sum(m["images"] for m in metas), unit="img", desc="label landmarks",
                   dynamic_ncols=True)
    acc_total, img_total = sum(m["accepted"] for m in metas), sum(m["images"] for m in metas)
    reader = _Reader(dataset, on_error)
    try:
        for k in todo:
            lo, hi = k * shard_size, min(n, (k + 1) * shard_size)
            loader = torch.utils.data.DataLoader(torch.utils.data.Subset(reader, range(lo, hi)), batch_size=batch_size,
                                                 num_workers=workers, collate_fn=list,
                                                 worker_init_fn=worker_init_fn())  # die with this process
            rows = {c: [] for c in ("image", "identity", "landmarks", "pose", "source", "accepted", "n_valid",
                                    "n_kept", "spread", "cause")}
            meta = {"images": 0, "accepted": 0, "seconds": 0.0, "causes": {}, "sample_causes": {},
                    "timings": {key: 0.0 for key in labeler.timings}}
            t_shard = time.perf_counter()
            before = dict(labeler.timings)
            for batch in loader:
                good = [b for b in batch if b[1] is not None]
                if good:
                    bx = None if boxes is None else [boxes[b[0]] for b in good]
                    r = labeler.label_arrays([b[1] for b in good], bx)
                    for key, v in r["sample_causes"].items():
                        meta["sample_causes"][key] = meta["sample_causes"].get(key, 0) + int(v)
                j = 0
                for i, img, _err, ident, src in batch:
                    rows["image"].append(_ref(dataset, i))
                    rows["identity"].append(ident)
                    rows["source"].append(src)
                    if img is None:
                        rows["landmarks"].append(np.full((68, 2), np.nan, np.float32))
                        rows["pose"].append(np.full(3, np.nan, np.float32))
                        for c, v in (("accepted", False), ("n_valid", 0), ("n_kept", 0), ("spread", np.nan)):
                            rows[c].append(v)
                        rows["cause"].append(UNREADABLE)
                        continue
                    for c in ("landmarks", "pose", "accepted", "n_valid", "n_kept", "spread", "cause"):
                        rows[c].append(r[c][j])
                    j += 1
                if bar is not None:
                    bar.update(len(batch))
                    acc_total += sum(bool(a) for a in rows["accepted"][-len(batch):])
                    img_total += len(batch)
                    bar.set_postfix_str(f"accepted {100.0 * acc_total / img_total:.1f}%")
            meta["images"] = len(rows["image"])
            meta["accepted"] = int(sum(bool(a) for a in rows["accepted"]))
            for c in rows["cause"]:
                if c:
                    meta["causes"][c] = meta["causes"].get(c, 0) + 1
            meta["seconds"] = time.perf_counter() - t_shard
            meta["timings"] = {key: labeler.timings[key] - before[key] for key in labeler.timings}
            output.write(k, _table(rows), meta)
            if callback is not None:
                callback(k)
    finally:
        if bar is not None:
            bar.close()
    table = output.read()
    manifest = Path(out) / "manifest.parquet"
    with atomic_path(manifest) as tmp:
        pq.write_table(table, tmp)
    dev = labeler.device
    summary = summarize(output.metas(), {
        "device": str(dev), "device_name": device_name(dev), "views": len(labeler.views),
        "threshold": labeler.threshold, "mediapipe": labeler.mediapipe is not None,
        "eye_net": labeler.eye_net is not None, "net": labeler.net is not None, "shards": n_shards,
        "manifest": str(manifest)})
    write_json_atomic(Path(out) / "summary.json", summary)
    return summary

