"""Training checkpoints: committed atomically (:func:`pyface.io.atomic_write`: a
temporary file in the same folder, fsynced, renamed over the target), so a run killed at
any moment leaves either the previous or the new checkpoint, never a torn one; read back
through :func:`pyface.runtime.read_checkpoint` (no code runs while loading)."""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

from pyface.errors import CheckpointError, OutputError
from pyface.io import atomic_write, job_lock
from pyface.runtime import read_checkpoint


def save_atomic(obj, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "wb") as f:
        torch.save(obj, f)
    return path


def load(path: str | os.PathLike, map_location="cpu") -> dict:
    return read_checkpoint(path, map_location=map_location)


def rng_state() -> dict:
    """torch, numpy, python (and CUDA) RNG states as tensors and plain data (what a
    safe ``torch.load`` reads back): numpy's MT19937 key as an int64 tensor."""
    kind, key, pos, has_gauss, gauss = np.random.get_state()
    st = {"torch": torch.get_rng_state(),
          "numpy": {"kind": str(kind), "key": torch.from_numpy(np.asarray(key, dtype=np.int64)), "pos": int(pos),
                    "has_gauss": int(has_gauss), "gauss": float(gauss)},
          "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def _numpy_state(st):
    """np.random.set_state's tuple from :func:`rng_state`'s dict or the tuple older
    checkpoints hold."""
    if isinstance(st, dict):
        key = st["key"].numpy() if isinstance(st["key"], torch.Tensor) else np.asarray(st["key"])
        return st["kind"], key.astype(np.uint32), st["pos"], st["has_gauss"], st["gauss"]
    return st


def set_rng_state(st: dict) -> None:
    # .cpu(): a checkpoint loaded with map_location="cuda" holds the states on the GPU
    torch.set_rng_state(st["torch"].cpu())
    np.random.set_state(_numpy_state(st["numpy"]))
    random.setstate(st["python"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in st["cuda"]])


# ----------------------------------------------------------------------------- distributed runs
# Layout: checkpoints/last.pt (rank 0: everything but the loss module, with
# "world_size") and checkpoints/shards/step<S>-rank<r>-of-<W>.pt (each rank: its
# class-centre shard, loss buffers, their optimizer state, its RNG). Shards are written
# first; last.pt, written after a barrier, commits step S; older shards are pruned only
# after that, so a kill at any moment leaves a consistent (last.pt, shards) pair.

def shard_path(ckpt_dir: str | os.PathLike, step: int, rank: int, world_size: int) -> Path:
    return Path(ckpt_dir) / "shards" / f"step{step:09d}-rank{rank}-of-{world_size}.pt"


def prune_shards(ckpt_dir: str | os.PathLike, keep_step: int, rank: int, world_size: int) -> None:
    """Delete this rank's shard files other than the one of ``keep_step``."""
    keep = shard_path(ckpt_dir, keep_step, rank, world_size).name
    for p in (Path(ckpt_dir) / "shards").glob(f"step*-rank{rank}-of-{world_size}.pt"):
        if p.name != keep:
            p.unlink(missing_ok=True)


def load_rank(path: str | os.PathLike, rank: int, world_size: int, map_location="cpu") -> dict:
    """The trainer state of ``rank`` from a checkpoint: a single-process one as is (world
    size 1), a distributed one merged from last.pt and the rank's shard file."""
    from pyface.train.distributed import merge_state

    path = Path(path)
    main = load(path, map_location)
    saved = main.get("world_size", 1)
    if saved != world_size:
        raise CheckpointError(
            f"{path} was written by {saved} process(es), this run has {world_size}: re-shard it first with "
            f"`pyface checkpoint reshard {path} --world-size {world_size} --out NEW_DIR`")
    if saved == 1 or "step" not in main:  # single-process (or not a training checkpoint: the caller says so)
        return main
    return merge_state(main, load(shard_path(path.parent, main["step"], rank, saved), map_location))


def _cat_rows(parts: list):
    """Per-rank tensors concatenated along dim 0; scalars (e.g. an optimizer's step
    count, equal on every rank) kept once."""
    if isinstance(parts[0], torch.Tensor) and parts[0].dim() > 0:
        return torch.cat(parts)
    return parts[0]


def reshard(path: str | os.PathLike, world_size: int, out_dir: str | os.PathLike) -> Path:
    """Re-split a checkpoint's class-sharded matrices (and their optimizer state) for
    ``world_size`` ranks, or reassemble them into one process's checkpoint
    (``world_size=1``: the ordinary single-process format, usable for fine-tuning,
    evaluation or ``Trainer.resume``). Writes ``out_dir/last.pt`` (+ ``out_dir/shards/``)
    and returns its path. Rows keep their class ids; per-rank RNG states are kept for
    ranks that exist in both layouts, so only a same-size "reshard" resumes bit-exactly."""

    path, out_dir = Path(path), Path(out_dir)
    world_size = int(world_size)
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    if (out_dir / "last.pt").exists():  # never over another run's checkpoints
        raise OutputError(f"{out_dir} already holds a checkpoint (last.pt); choose an empty --out")
    main = load(path)
    old = main.get("world_size", 1)
    if "step" not in main or "optimizer" not in main:
        raise CheckpointError(f"{path}: not a training checkpoint (model.pt holds weights only): nothing to re-shard")
    if old == 1:
        # its optimizer state is keyed by position only; splitting it is not supported
        raise CheckpointError(f"{path} is a single-process checkpoint: nothing to re-shard")
    with job_lock(out_dir, "checkpoint reshard"):
        return _reshard(path, main, old, world_size, out_dir)


def _reshard(path: Path, main: dict, old: int, world_size: int, out_dir: Path) -> Path:
    from pyface.nn.lpmc import class_shard

    shards = [load(shard_path(path.parent, main["step"], r, old)) for r in range(old)]
    sharded = shards[0]["shards"]
    # full loss state and full optimizer state of the loss parameters
    full_loss = dict(shards[0]["loss"])
    for name in sharded:
        full_loss[name] = torch.cat([s["loss"][name] for s in shards])
    full_opt = {}
    for name, st0 in shards[0]["optimizer"].items():
        if name in sharded:
            full_opt[name] = {k: _cat_rows([s["optimizer"][name][k] for s in shards]) for k in st0}
        else:
            full_opt[name] = st0
    index = shards[0]["optimizer_index"]
    base = {k: v for k, v in main.items() if k != "world_size"}
    if world_size == 1:
        st = dict(base)
        st["loss"] = full_loss
        st["optimizer"] = {"state": {**main["optimizer"]["state"], **{index[n]: s for n, s in full_opt.items()}},
                           "param_groups": main["optimizer"]["param_groups"]}
        st["rng"] = shards[0]["rng"]
        return save_atomic(st, out_dir / "last.pt")
    for r in range(world_size):
        loss_r, opt_r, spans = dict(full_loss), {}, {}
        for name, (_, _, total) in sharded.items():
            start, n = class_shard(total, world_size, r)
            loss_r[name] = full_loss[name][start:start + n].clone()
            spans[name] = (start, n, total)
        for name, st in full_opt.items():
            if name in sharded:
                start, n, _ = spans[name]
                opt_r[name] = {k: (v[start:start + n].clone() if isinstance(v, torch.Tensor) and v.dim() else v)
                               for k, v in st.items()}
            else:
                opt_r[name] = st
        shard = {"step": main["step"], "rank": r, "world_size": world_size, "loss": loss_r, "optimizer": opt_r,
                 "optimizer_index": index, "rng": shards[r if r < old else 0]["rng"],
                 "shards": spans}
        save_atomic(shard, shard_path(out_dir, main["step"], r, world_size))
    return save_atomic({**base, "world_size": world_size}, out_dir / "last.pt")


if __name__ == "__main__":
    # The command moved to `pyface checkpoint reshard` (pyface/cli/checkpoint.py); the old
    # spelling still runs it, with a note.
    import sys

    from pyface.cli import main

    print("pyface: note: 'python -m pyface.train.checkpoint' is now 'pyface checkpoint reshard' (the old spelling "
          "will be removed)", file=sys.stderr)
    raise SystemExit(main(["checkpoint", "reshard", *sys.argv[1:]]))
