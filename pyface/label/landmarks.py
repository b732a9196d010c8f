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

Many processes (``split``, :mod:`pyface.work_split`): under torchrun the ranks take
disjoint sets of the same shards (what is left, dealt round-robin by rank 0) and write
them into the shared folder; after a barrier rank 0 writes manifest.parquet and
summary.json (:func:`finalize_landmarks`). A job-array part (``--part k/N``) writes the
shards it owns and ``pyface label finalize`` the rest. Shards and manifest are byte for
byte what one process writes (a shard depends only on its images; batches start at the
shard's first image); only the summary's :data:`VARYING_KEYS` (times, who, where) differ.
The labeler's CPU work may run in worker processes (``Labeler(cpu_workers=K)``), one
batch in flight while this process runs the nets on the previous one.
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
from pyface.io import atomic_path, write_json_atomic
from pyface.label.labeler import IMAGE_CAUSES, SAMPLE_CAUSES, Labeler
from pyface.label.shards import open_shared, reopen
from pyface.procs import worker_init_fn
from pyface.runtime import device_name, weights_digest  # noqa: F401 - weights_digest re-exported

__all__ = ["LABEL_SCHEMA", "VARYING_KEYS", "finalize_landmarks", "label_dataset", "summarize",
           "weights_digest"]

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


#: Keys of summary.json that measure time or say which process ran where: they differ
#: between runs. Everything else -- and every shard and manifest.parquet, byte for byte --
#: is the same for the same job however it was split (one process, torchrun ranks,
#: job-array parts, resumed).
VARYING_KEYS = ("seconds", "images_per_s", "seconds_by_stage", "wall_seconds", "images_per_s_wall", "writers",
               "device", "device_name")


def summarize(metas: list[dict], extra: dict, timings: list[dict] | None = None) -> dict:
    """summary.json from the shards' statistics (``metas``) and their timing sidecars.
    ``seconds`` sums every shard's seconds (process-seconds, over all ranks);
    ``wall_seconds``: first shard start to last shard end (the job's wall time when it
    was not interrupted)."""
    timings = [t for t in (timings or []) if t]
    images = sum(m["images"] for m in metas)
    accepted = sum(m["accepted"] for m in metas)
    seconds = sum(t.get("seconds", 0.0) for t in timings)
    causes = {c: sum(m["causes"].get(c, 0) for m in metas) for c in (*IMAGE_CAUSES, UNREADABLE)}
    sample_causes = {c: sum(m["sample_causes"].get(c, 0) for m in metas) for c in SAMPLE_CAUSES}
    stages = sorted({k for t in timings for k in t.get("stages", {})})
    by_stage = {k: sum(t.get("stages", {}).get(k, 0.0) for t in timings) for k in stages}
    wall = (max(t["end"] for t in timings) - min(t["start"] for t in timings)) if timings else math.nan
    writers = sorted({f"{t.get('host', '?')}:{t.get('pid', '?')}" for t in timings})
    return {"images": images, "accepted": accepted, "acceptance_rate": accepted / images if images else math.nan,
            "rejection_causes": causes, "invalid_samples": sample_causes, "seconds": seconds,
            "images_per_s": images / seconds if seconds else math.nan, "seconds_by_stage": by_stage,
            "wall_seconds": wall, "images_per_s_wall": images / wall if wall and wall == wall else math.nan,
            "writers": len(writers),
            "device": ", ".join(sorted({t["device"] for t in timings if "device" in t})) or "?",
            "device_name": ", ".join(sorted({t["device_name"] for t in timings if "device_name" in t})) or "?",
            **extra}


def _rows_of(batch, r, dataset, rows) -> None:
    """Append a loader batch's rows (``r``: the labeler's arrays for its readable images)."""
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


def _finish_batch(labeler, batch, pending, dataset, rows, meta, bar) -> None:
    r = labeler.finish(pending) if pending is not None else None
    if r is not None:
        for key, v in r["sample_causes"].items():
            meta["sample_causes"][key] = meta["sample_causes"].get(key, 0) + int(v)
    _rows_of(batch, r, dataset, rows)
    if bar is not None:
        bar.update(len(batch))


def _whoami(split, device) -> dict:
    import socket

    return {"rank": split.rank, "world_size": split.world_size, "part": str(split.part) if split.part else None,
            "host": socket.gethostname(), "pid": os.getpid(), "device": str(device),
            "device_name": device_name(device)}


def label_dataset(dataset, labeler: Labeler, out: str | os.PathLike, *, split=None, **kw) -> dict | None:
    """Label every image of ``dataset`` (any pyface dataset) into ``out`` (see the module
    docstring; keywords: those of :func:`_label_dataset`); returns the summary where it
    was written, else None. ``out`` is locked for the job's lifetime
    (:meth:`pyface.work_split.WorkSplit.lock`: a second job is refused naming the holder).

    ``split`` (:class:`pyface.work_split.WorkSplit`, default: this process alone): which
    shards this process labels. Under torchrun every rank labels its share, and after a
    barrier rank 0 writes manifest.parquet and summary.json (:func:`finalize_landmarks`);
    a job-array part (``split.part``) writes its shards only."""
    from pyface.work_split import WorkSplit

    split = split or WorkSplit()
    with split.lock(out, "labeling run"):
        return _label_dataset(dataset, labeler, out, split=split, **kw)


def _label_dataset(dataset, labeler: Labeler, out: str | os.PathLike, *, resume: bool = False,
                   shard_size: int = 1024, batch_size: int = 64, workers: int = 0, on_error: str = "raise",
                   progress: bool = True, data_spec=None, limit: int | None = None, callback=None,
                   split) -> dict | None:
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
    n_shards = (n + shard_size - 1) // shard_size
    output, mine = open_shared(out, config, n_shards, resume, split)
    who = _whoami(split, labeler.device)
    bar = None
    if progress:
        from tqdm import tqdm

        total = sum(min(n, (k + 1) * shard_size) - k * shard_size for k in mine)
        bar = tqdm(total=total, unit="img", desc="label landmarks" + (f" [{split.describe()}]"
                   if split.distributed or split.part else ""), dynamic_ncols=True)
    acc_total = img_total = 0
    reader = _Reader(dataset, on_error)
    try:
        for k in mine:
            lo, hi = k * shard_size, min(n, (k + 1) * shard_size)
            loader = torch.utils.data.DataLoader(torch.utils.data.Subset(reader, range(lo, hi)), batch_size=batch_size,
                                                 num_workers=workers, collate_fn=list,
                                                 worker_init_fn=worker_init_fn())  # die with this process
            rows = {c: [] for c in ("image", "identity", "landmarks", "pose", "source", "accepted", "n_valid",
                                    "n_kept", "spread", "cause")}
            meta = {"images": 0, "accepted": 0, "causes": {}, "sample_causes": {}}
            t_shard, start = time.perf_counter(), time.time()
            before = dict(labeler.timings)

            # one batch in flight: its CPU work (views, MediaPipe) runs on the labeler's
            # workers while this process runs the nets and the fit of the previous one
            prev = None
            for batch in loader:
                good = [b for b in batch if b[1] is not None]
                pending = labeler.start([b[1] for b in good], None if boxes is None else
                                        [boxes[b[0]] for b in good]) if good else None
                if prev is not None:
                    _finish_batch(labeler, *prev, dataset, rows, meta, bar)
                prev = (batch, pending)
            if prev is not None:
                _finish_batch(labeler, *prev, dataset, rows, meta, bar)
            if bar is not None:
                acc_total += int(sum(bool(a) for a in rows["accepted"]))
                img_total += len(rows["accepted"])
                bar.set_postfix_str(f"accepted {100.0 * acc_total / max(img_total, 1):.1f}%")
            meta["images"] = len(rows["image"])
            meta["accepted"] = int(sum(bool(a) for a in rows["accepted"]))
            for c in rows["cause"]:
                if c:
                    meta["causes"][c] = meta["causes"].get(c, 0) + 1
            timing = {**who, "seconds": time.perf_counter() - t_shard, "start": start, "end": time.time(),
                      "stages": {key: labeler.timings[key] - before.get(key, 0.0) for key in labeler.timings}}
            output.write(k, _table(rows), meta, timing)
            if callback is not None:
                callback(k)
    finally:
        if bar is not None:
            bar.close()
    split.barrier()  # every rank's shards are on disk
    if not split.writes_final:
        return None
    return finalize_landmarks(out)


def finalize_landmarks(out: str | os.PathLike, what: str = "OUT") -> dict:
    """Check that every shard of the job in ``out`` is there and write
    ``manifest.parquet`` (all rows in shard order) and ``summary.json`` from the shards
    alone -- the end of every ``label landmarks`` run and ``pyface label finalize``, so
    the files are the same however the shards were written. DataError naming the missing
    shards (and their job-array parts) when the job is not complete."""
    output = reopen(out, what)
    cfg = output.config
    if "labeler" not in cfg or "images" not in cfg:
        raise DataError(f"{what}: {out} is not a pyface label landmarks output (config.json has no labeler)")
    if output.units is None:
        output.units = (int(cfg["images"]) + int(cfg["shard_size"]) - 1) // int(cfg["shard_size"])
    missing = output.missing()
    if missing:
        names = ", ".join(output.path(k).name for k in missing[:3]) + (", ..." if len(missing) > 3 else "")
        raise DataError(f"{what}: {out} is not complete: {len(missing)} of {output.units} shards missing ({names}); "
                        "run the missing parts (or --resume the job) first")
    manifest = Path(out).resolve() / "manifest.parquet"
    with atomic_path(manifest) as tmp:
        pq.write_table(output.read(), tmp)
    lab = cfg["labeler"]
    summary = summarize(output.metas(), {
        "views": len(lab["views"]), "threshold": lab["threshold"], "mediapipe": lab["mediapipe"] is not None,
        "eye_net": lab["eye_net"] is not None, "net": lab["net"] is not None, "shards": output.units,
        "manifest": str(manifest)}, output.timings())
    write_json_atomic(Path(out) / "summary.json", summary)
    return summary
