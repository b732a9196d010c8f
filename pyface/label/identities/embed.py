"""Algorithm 2, step 1 (l.1-12): per-identity embedding sums under two FR nets.

Every image and its mirror go through the net, the two embeddings are summed and
L2-normalised (insightface's flip-sum), and the per-identity sums of those unit vectors
are accumulated. Images are cropped to the net input first: images with known landmarks
(300W-LP) by a square of ``face_crop_area`` times the landmark box area, others (aligned
FR crops) whole. The work is cut into units of ``chunk_size`` images; each unit's
per-identity sums are an atomic Parquet shard (:mod:`pyface.label.shards`), so a killed
run resumes losing at most one unit, memory holds one unit of embeddings, and disk and
the final reduction hold about identities x (Da + Db) floats -- never one row per image.
Unreadable images are skipped and counted (``bad``).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import torch

from pyface import runtime
from pyface.errors import CheckpointError
from pyface.label.landmarks import weights_digest
from pyface.label.shards import config_hash
from pyface.models import MultiTaskNet
from pyface.procs import worker_init_fn

__all__ = ["DEFAULT_CHUNK", "DEFAULT_FACE_CROP_AREA", "FRNet", "IdentityEmbeddings", "embed_identities",
           "pair_scores"]

#: Crop of images with known landmarks: area of the square crop / area of the landmark box.
#: 2.0 puts the jaw-to-brow box at about 70 % of the side, as in 112x112 aligned FR crops.
DEFAULT_FACE_CROP_AREA = 2.0
#: Images per resumable work unit.
DEFAULT_CHUNK = 8192


class FRNet:
    """A face-recognition net as Algorithm 2 uses it: uint8 [B, 3, S, S] RGB ->
    flip-sum L2-normalised embeddings [B, D] float32.

    ``net``: a ``pyface train`` checkpoint path with an FR head, a MultiTaskNet, or any
    module/callable mapping normalised float images [B, 3, s, s] to a dict with
    ``"embedding"`` or to a tensor [B, D] (``input_size`` then required)."""

    def __init__(self, net, what: str = "net", input_size: int | None = None, device=None, amp=True):
        self.what = what
        self.path = os.path.abspath(os.fspath(net)) if isinstance(net, (str, os.PathLike)) else None
        model = runtime.load_model(self.path, what=what) if self.path else net
        tasks = getattr(getattr(model, "config", None), "tasks", None)
        if tasks is not None and "fr" not in tasks:
            src = self.path or "the given model"
            raise CheckpointError(f"{what}: {src} has no face-recognition head (tasks {list(tasks)}); Algorithm 2 "
                                  "needs a net trained with the 'fr' task")
        size = input_size or getattr(getattr(model, "config", None), "input_size", None)
        if size is None:
            raise ValueError(f"{what}: input_size is required for a net without a .config")
        self.input_size = int(size)
        if isinstance(model, torch.nn.Module):
            self._digest = weights_digest(model)  # of the whole checkpoint, as resume checks always did
        if isinstance(model, MultiTaskNet):
            model = model.export(["fr"])  # the FR branch only: the other heads' stage-4 copies are skipped
        self.device = runtime.resolve_device(device, what="--device")
        self.model = model.to(self.device).eval() if isinstance(model, torch.nn.Module) else model
        self.amp = amp
        runtime.amp_dtype(amp, self.device)  # validates the setting
        self.dim = int(self.embed(torch.zeros(1, 3, self.input_size, self.input_size, dtype=torch.uint8)).shape[1])

    def describe(self) -> dict:
        """What identifies this net in a resume check (the weights' digest, not the file's name)."""
        dtype = runtime.amp_dtype(self.amp, self.device)
        d = {"input_size": self.input_size, "amp": False if dtype is None else str(dtype)}
        if isinstance(self.model, torch.nn.Module):
            d["weights"] = self._digest
        else:
            d["module"] = type(self.model).__name__
        return d

    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (or normalised float) [B, 3, H, W] -> flip-sum unit embeddings [B, D] float32."""
        x = images.to(self.device, non_blocking=True)
        x = runtime.prepare_input(x, self.input_size)
        return runtime.embed(self.model, x, normalize=True, amp=self.amp)


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
                     progress: bool = True, on_unit=None, split=None, complete: bool = False
                     ) -> IdentityEmbeddings | None:
    """Step 1 for one dataset: per-identity embedding sums under both nets, resumable.

    ``labels`` [N] int: per-image identity overriding the dataset's (SemiIdentify), with
    ``keys`` naming each label. ``out_dir``: the shard folder (created; with ``resume`` an
    existing one is continued if its configuration matches, else ``ValueError``).
    ``on_unit(k)``: called after unit ``k`` is written (tests use it to interrupt).

    ``split`` (:class:`pyface.work_split.WorkSplit`): the units are dealt to the ranks of
    a torchrun job (or owned by a job-array part); every process writes its units, and
    after a barrier the writer of the final files (rank 0, not a part) sums them --
    the others return None. ``complete``: compute nothing, every unit must be on disk
    (``pyface label finalize``; DataError naming the missing ones)."""
    from pyface.label.shards import open_shared
    from pyface.work_split import WorkSplit

    split = split or WorkSplit()
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
    units = [(s, min(s + chunk_size, n)) for s in range(0, n, chunk_size)]
    shards, todo = open_shared(out_dir, config, len(units), resume=resume or complete, split=split)
    if complete and todo:
        from pyface.errors import DataError

        raise DataError(f"{out_dir}: {len(todo)} of {len(units)} embedding units missing (e.g. "
                        f"{shards.path(todo[0]).name}); run the missing parts first")
    if todo:
        size = max(net_a.input_size, net_b.input_size)
        frames = _Frames(dataset, size, float(face_crop_area), labels)
        loader = torch.utils.data.DataLoader(frames, batch_sampler=_unit_batches([units[k] for k in todo], batch_size),
                                             num_workers=workers, worker_init_fn=worker_init_fn(),
                                             pin_memory=net_a.device.type == "cuda")
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=sum(units[k][1] - units[k][0] for k in todo), unit="img",
                       desc=f"embed {name}" + (f" [{split.describe()}]" if split.distributed or split.part else ""),
                       dynamic_ncols=True)
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
                meta.update(images=e - s, bad=bad, bad_examples=errors)
                shards.write(k, table, meta, {"seconds": time.perf_counter() - t0, "rank": split.rank,
                                              "part": str(split.part) if split.part else None,
                                              "device": str(net_a.device)})
                if on_unit is not None:
                    on_unit(k)
        finally:
            if bar is not None:
                bar.close()
            del it
    split.barrier()  # every rank's units are on disk
    if not split.writes_final:
        return None
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
    """Sum the unit shards per identity (float64) in a fixed order -- unit 0, 1, 2, ...,
    each adding its per-identity sums (an identity appears at most once per unit) -- so
    the result is exactly the same, bit for bit, however many processes computed the
    units; one unit in memory at a time besides the I x (Da + Db) sums."""
    import pyarrow.parquet as pq

    finished = shards.finished()
    lab = [pq.read_table(shards.path(k), columns=["identity"]).column("identity").to_numpy() for k in finished]
    u = np.unique(np.concatenate(lab)) if lab else np.zeros(0, np.int64)
    sum_a, sum_b = np.zeros((len(u), da)), np.zeros((len(u), db))
    counts = np.zeros(len(u), np.int64)
    for k, ids in zip(finished, lab):
        if not len(ids):
            continue
        t = pq.read_table(shards.path(k))
        pos = np.searchsorted(u, ids)
        sum_a[pos] += t.column("sum_a").combine_chunks().flatten().to_numpy().reshape(-1, da)
        sum_b[pos] += t.column("sum_b").combine_chunks().flatten().to_numpy().reshape(-1, db)
        counts[pos] += t.column("count").to_numpy()
    metas = shards.metas()
    ks = None if keys is None else [keys[int(i)] for i in u]
    images = sum(m.get("images", 0) for m in metas)
    bad = sum(m.get("bad", 0) for m in metas)
    examples = [x for m in metas for x in m.get("bad_examples", [])][:5]
    return IdentityEmbeddings(name, u.astype(np.int64), sum_a, sum_b, counts, ks, images=images, bad=bad,
                              unlabeled=images - bad - int(counts.sum()), bad_examples=examples)


def pair_scores(net: FRNet, images, batch_size: int, workers: int = 0) -> np.ndarray:
    """Cosine scores of pairs (2k, 2k + 1) under ``net`` (threshold calibration):
    ``images`` uint8 [2P, 3, H, W] or a dataset."""
    if isinstance(images, (torch.Tensor, np.ndarray)):
        images = torch.as_tensor(images)
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"verification images must be uint8 [2P, 3, H, W], got {list(images.shape)}")
        batches = (images[i:i + batch_size] for i in range(0, len(images), batch_size))
    else:
        frames = _Frames(images, net.input_size, 1.0)
        loader = torch.utils.data.DataLoader(frames, batch_size=batch_size, num_workers=workers,
                                             worker_init_fn=worker_init_fn())
        batches = (b["image"] for b in loader)
    e = torch.cat([net.embed(b).cpu() for b in batches])
    return (e[0::2] * e[1::2]).sum(1).numpy()
