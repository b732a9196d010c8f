"""Model side of the evaluation: load any ``pyface train`` checkpoint, batched inference
over a dataset (CUDA + AMP when available, progress bars), and FPS measurement.

Preprocessing for every benchmark is HopeNet's test transform generalised to the model's
input size S: resize the shorter side to S, centre-crop S x S (for the square, aligned
crops of the ``.bin`` files, IJB-C and BIWI this is a plain resize). Landmark predictions
are mapped back to the pixels of the dataset's image, so NME is computed there, as
3DDFA maps its 120 x 120 predictions back through the ROI box.
"""
from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from pyface import runtime
from pyface.io import DigestMemo, atomic_path, file_digest, remove_stale_temps
from pyface.models import MultiTaskNet
from pyface.procs import worker_init_fn
from pyface.runtime import device_name, find_checkpoint

__all__ = ["load_model", "require_outputs", "find_checkpoint", "infer", "measure_fps", "device_for", "device_name",
           "cache_key", "model_outputs"]


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> MultiTaskNet:
    """MultiTaskNet of a ``pyface train`` checkpoint or run folder, in eval mode on
    ``device``: :func:`pyface.runtime.load_model` (safe loading, legacy weights upgraded,
    CheckpointError naming the file)."""
    return runtime.load_model(path, device)


def model_outputs(model: MultiTaskNet) -> set[str]:
    """What :func:`infer` returns for this model: its heads' outputs, plus "pose" when
    a HopeNet head gives bin logits (HMTL / the second paper's models)."""
    have = set(model.outputs.values())
    if "pose_logits" in have:
        have.add("pose")
    return have


def _hopenet_pose(logits: torch.Tensor) -> torch.Tensor:
    from pyface.nn import hopenet_angles
    from pyface.nn.hopenet import ANGLE_RANGE

    return hopenet_angles(logits, 2 * ANGLE_RANGE / logits.shape[-1])


def require_outputs(model: MultiTaskNet, outputs, what: str) -> None:
    """ValueError naming the checkpoint when the model lacks a needed output."""
    have = model_outputs(model)
    missing = [o for o in outputs if o not in have]
    if missing:
        src = getattr(model, "checkpoint_path", "the model")
        raise ValueError(f"{src}: {what} needs the model output(s) {missing}, but its heads {list(model.tasks)} "
                         f"give {sorted(have)}")


def device_for(name: str | torch.device | None) -> torch.device:
    """The ``--device`` flag's device (:func:`pyface.runtime.resolve_device`)."""
    return runtime.resolve_device(name, what="--device")


def _prepare(image: torch.Tensor, size: int) -> tuple[np.ndarray, np.ndarray]:
    """[3, H, W] uint8 -> (HWC uint8 S x S, affine a [4]: x_in = (x_S + ox) / sx)."""
    img = image.permute(1, 2, 0).numpy()
    h, w = img.shape[:2]
    s = size / min(h, w)
    nw, nh = max(size, int(round(w * s))), max(size, int(round(h * s)))
    if (nw, nh) != (w, h):
        interp = cv2.INTER_AREA if nw * nh < w * h else cv2.INTER_LINEAR
        img = cv2.resize(img, (nw, nh), interpolation=interp)
    ox, oy = int(round((nw - size) / 2)), int(round((nh - size) / 2))
    img = img[oy:oy + size, ox:ox + size]
    return np.ascontiguousarray(img), np.array([nw / w, nh / h, ox, oy], dtype=np.float64)


class _Collate:
    def __init__(self, size: int):
        self.size = size

    def __call__(self, samples):
        imgs, maps = zip(*(_prepare(s["image"], self.size) for s in samples))
        out = {"image": torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).contiguous(),
               "map": torch.from_numpy(np.stack(maps))}
        for k in ("landmarks", "pose", "identity"):
            out[k] = torch.stack([s[k] for s in samples])
        return out


def cache_key(model: MultiTaskNet, name: str, n: int, flip: bool, files=(), *, amp=True,
              memo: DigestMemo | None = None) -> str:
    """Folder name for :func:`infer`'s shard cache, keyed on content: a digest of the
    model's weights (the tensors themselves, :func:`pyface.runtime.weights_digest`, not
    the checkpoint file's name or date) and config, of every file of the test set
    (``files``, in order: :func:`pyface.io.file_digest`, remembered in ``memo`` while a
    file's device/inode/size/mtime/ctime are unchanged), the set's name and length, and
    the flip and AMP settings. A test set replaced by another file of the same name and
    size, or retrained weights in the same path, get a new folder."""
    import hashlib
    import json

    digests = [(os.path.basename(str(f)), file_digest(f, memo)) for f in files]
    ident = json.dumps({"weights": runtime.weights_digest(model), "config": str(model.config), "name": name,
                        "n": int(n), "flip": bool(flip), "amp": str(amp), "files": digests}, sort_keys=True)
    return f"{name}-{hashlib.sha256(ident.encode()).hexdigest()[:16]}"


def infer(model: MultiTaskNet, dataset, *, batch_size: int = 64, device=None, amp=True,
          flip: bool = False, num_workers: int = 0, desc: str = "inference", progress: bool = True,
          cache_dir: str | os.PathLike | None = None, shard_size: int = 8192, split=None) -> dict | None:
    """Outputs over ``dataset`` in order, as float32 numpy: "embedding" (the sum of the
    image's and its mirror's embeddings when ``flip``, unnormalised, as insightface),
    "landmarks" (pixels of the dataset's images), "pose" (of the unflipped image), plus
    the labels "landmarks_gt", "pose_gt". ``amp``: :func:`pyface.runtime.autocast` (True:
    fp16 on CUDA, fp32 on the CPU; "bf16" / "fp16" / False).

    The work is cut into shards of ``shard_size`` images, each inferred in batches that
    start at the shard's first image, so an image's outputs do not depend on how the
    shards are spread. With ``cache_dir``, each shard is saved (atomic .npz) and shards
    already there are loaded instead of recomputed, so a killed run resumes losing at
    most one shard (name the folder with :func:`cache_key`).

    ``split`` (:class:`pyface.work_split.WorkSplit`): under torchrun the shards still to
    compute are dealt to the ranks and their outputs gathered on rank 0, which returns
    them; the other ranks return None. A job-array part (``split.part``) computes its
    shards into ``cache_dir`` only and returns None (the run without ``--part`` then
    finds them all)."""
    from pyface.work_split import WorkSplit

    split = split or WorkSplit()
    kw = dict(batch_size=batch_size, device=device, amp=amp, flip=flip, num_workers=num_workers, progress=progress)
    cache = Path(cache_dir) if cache_dir is not None else None
    if split.part is not None and cache is None:
        from pyface.errors import UsageError

        raise UsageError("--part needs the inference cache (--cache DIR, default <out>/cache): the parts meet there")
    n = len(dataset)
    bounds = [(lo, min(n, lo + shard_size)) for lo in range(0, n, shard_size)]

    def path(k):
        lo, hi = bounds[k]
        return cache / f"{lo:09d}-{hi:09d}.npz"

    def todo():
        if cache is None:
            return split.part_units(len(bounds))
        cache.mkdir(parents=True, exist_ok=True)
        if split.part is None:
            remove_stale_temps(cache)  # a killed run's half-written shard (parts leave each other's alone)
        return [k for k in split.part_units(len(bounds)) if not path(k).is_file()]

    mine = split.take(split.on_leader(todo))
    computed = {}
    for k in mine:
        lo, hi = bounds[k]
        out = _infer(model, torch.utils.data.Subset(dataset, range(lo, hi)),
                     desc=f"{desc} [{lo}:{hi} of {n}]", **kw)
        if cache is not None:
            with atomic_path(path(k)) as tmp, open(tmp, "wb") as f:
                np.savez(f, **out)  # a file object: np.savez would append ".npz" to a name
        if split.part is None:
            computed[k] = out
    if split.part is not None:
        return None
    if split.distributed:
        gathered = split.gather(computed)
        if gathered is None:
            return None
        computed = {k: v for g in gathered for k, v in g.items()}
    parts = []
    for k in range(len(bounds)):
        if k in computed:
            parts.append(computed.pop(k))
            continue
        with np.load(path(k)) as z:
            parts.append({key: z[key] for key in z.files})
    if not parts:
        return {}
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


@torch.no_grad()
def _infer(model: MultiTaskNet, dataset, *, batch_size, device, amp, flip, num_workers, desc, progress) -> dict:
    from tqdm import tqdm

    device = runtime.resolve_device(device) if device is not None else next(model.parameters()).device
    model = model.to(device).eval()
    size = model.config.input_size
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                                         collate_fn=_Collate(size), worker_init_fn=worker_init_fn())
    outs: dict[str, list] = {}
    for b in tqdm(loader, desc=desc, unit="batch", disable=not progress, leave=False):
        o = runtime.forward(model, b["image"], flip=flip, amp=amp)
        if "pose_logits" in o and "pose" not in o:
            o["pose"] = _hopenet_pose(o["pose_logits"].float())
        keep = ("embedding", "landmarks", "pose")  # SSL / logit outputs are not evaluated
        got = {k: v.float().cpu() for k, v in o.items() if k in keep}
        if "landmarks" in got:
            m = b["map"]
            got["landmarks"] = ((got["landmarks"].double() + m[:, None, 2:]) / m[:, None, :2]).float()
        got["landmarks_gt"], got["pose_gt"] = b["landmarks"], b["pose"]
        for k, v in got.items():
            outs.setdefault(k, []).append(v)
    return {k: torch.cat(v).numpy() for k, v in outs.items()}


def measure_fps(model: MultiTaskNet, device=None, batch_sizes=(1, 64), precisions=("fp32", "half"),
                repeats: int = 10, warmup: int = 3, max_seconds: float = 20.0,
                others: dict | None = None) -> list[dict]:
    """Images per second of the forward pass on random uint8 input, per batch size and
    precision ("half": fp16 autocast on CUDA, bf16 autocast on CPU, named in the row):
    ``warmup`` untimed calls, then up to ``repeats`` timed calls (fewer when one
    configuration would take longer than ``max_seconds``); median and IQR of the
    per-call throughput, and the device name.

    ``others``: more runtimes to time beside the PyTorch fp32 rows, ``{name: (fn, device
    description)}`` with ``fn(uint8 numpy [B, 3, S, S])`` running one batch to completion
    (e.g. an ONNX Runtime session: ``pyface eval fps --onnx``). Their calls are
    interleaved with PyTorch's (A, B, A, B, ...), so load on a shared machine hits both
    alike; their rows carry ``"runtime": name`` (PyTorch's ``"pytorch"``)."""
    if int(repeats) < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    device = runtime.resolve_device(device) if device is not None else next(model.parameters()).device
    model = model.to(device).eval()
    size = model.config.input_size
    name = device_name(device)
    rows = []
    for prec in precisions:
        if prec not in ("fp32", "half"):
            raise ValueError(f"precisions must be 'fp32' or 'half', got {prec!r}")
        half = "fp16" if device.type == "cuda" else "bf16"  # the CPU autocast's usual half type
        for bs in batch_sizes:
            x = torch.randint(0, 256, (bs, 3, size, size), dtype=torch.uint8, device=device)
            amp = half if prec == "half" else False

            def call(x=x, amp=amp):
                with torch.no_grad(), runtime.autocast(device, amp):
                    model(x)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)

            calls = {"pytorch": call}
            if prec == "fp32" and others:
                xn = x.cpu().numpy()
                calls.update({k: (lambda fn=fn, xn=xn: fn(xn)) for k, (fn, _) in others.items()})
            t0 = time.perf_counter()
            for _ in range(warmup):
                for c in calls.values():
                    c()
            per = (time.perf_counter() - t0) / max(warmup, 1)
            n = max(3, min(repeats, int(max_seconds / max(per, 1e-9))))
            ips = {k: [] for k in calls}
            for _ in range(n):
                for k, c in calls.items():
                    t = time.perf_counter()
                    c()
                    ips[k].append(bs / (time.perf_counter() - t))
            for k, v in ips.items():
                q = statistics.quantiles(v, n=4) if len(v) >= 2 else [v[0]] * 3
                rows.append({"batch": bs, "precision": prec if prec == "fp32" else
                             str(runtime.AMP_DTYPES[half]).replace("torch.", ""),
                             "images_per_s": statistics.median(v), "iqr": q[2] - q[0], "repeats": n,
                             "device": name if k == "pytorch" else others[k][1], "runtime": k})
    return rows
