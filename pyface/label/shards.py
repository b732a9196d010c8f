"""Resumable output of the labeling jobs: a folder of atomic Parquet shards.

Layout of ``DIR``::

    DIR/config.json              the job's configuration and its hash (written first)
    DIR/part-000000.parquet      shard k holds the rows of work unit k (fixed-size units)
    DIR/part-000001.parquet ...

A shard is committed with :func:`pyface.io.atomic_path` (a temporary file in ``DIR``,
fsynced, renamed over its final name), so a job killed at any moment leaves only whole
shards; the temporary files of a killed job are never read and are removed
(:func:`pyface.io.remove_stale_temps`) when the folder is reopened. Each shard's schema
metadata key ``pyface.shard`` holds a JSON object (per-shard statistics: counts,
seconds) that summaries are re-computed from, so a resumed job reports the same totals
as an uninterrupted one.

:func:`open_output` refuses to mix runs: an existing ``DIR`` is only continued with
``resume=True`` and the same configuration hash; otherwise it raises ``ValueError``
naming the keys that differ (:class:`~pyface.errors.UsageError` /
:class:`~pyface.errors.ConfigError`, both ValueErrors). Shared by ``pyface label landmarks`` and
``pyface label identities``.

Deterministic files: a shard's bytes depend only on its rows and counts, so the same
job gives the same shard files whether one process, the ranks of a ``torchrun``
launch or the parts of a job array wrote them (:func:`open_shared`). What is not
deterministic -- seconds, per-stage times, which rank/host/device -- goes to a sidecar
``DIR/timing/part-000000.json``, written before its shard (a shard on disk always has
its sidecar, unless a job older than the sidecars wrote it).

Several writers (:func:`open_shared`): rank 0 of a torchrun job creates or checks the
folder and lists the shards still to do, once, for every rank; job-array parts each
*join* the folder (``config.json`` is created atomically by the first part, and every
other part must find the same hash), and each removes the torn temporary files of its
own shards only, never those another part is writing.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pyface.errors import ConfigError, DataError, OutputError, UsageError
from pyface.io import atomic_path, fsync_dir, remove_stale_temps, write_json_atomic

__all__ = ["ShardedOutput", "open_output", "open_shared", "reopen", "config_hash", "write_json_atomic", "SHARD_META"]

SHARD_META = b"pyface.shard"
_PART = re.compile(r"^part-(\d{6})\.parquet$")
_SHARD_FILE = re.compile(r"^part-(\d{6})\.(parquet|json)$")
TIMING_DIR = "timing"


def config_hash(config: dict) -> str:
    """SHA-256 of the canonical JSON of ``config`` (sorted keys)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def _diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    keys = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            keys += _diff(va, vb, f"{prefix}{k}.")
        elif va != vb:
            keys.append(f"{prefix}{k}")
    return keys


class ShardedOutput:
    """A shard folder opened by :func:`open_output` / :func:`open_shared` / :func:`reopen`.
    ``units``: how many shards the whole job has (None when unknown: an old folder)."""

    def __init__(self, root: Path, config: dict, units: int | None = None):
        self.root = Path(root)
        self.config = config
        self.units = units

    def path(self, k: int) -> Path:
        return self.root / f"part-{int(k):06d}.parquet"

    def timing_path(self, k: int) -> Path:
        return self.root / TIMING_DIR / f"part-{int(k):06d}.json"

    def finished(self) -> list[int]:
        """Indices of the shards on disk, sorted."""
        return sorted(int(m.group(1)) for f in os.listdir(self.root) if (m := _PART.match(f)))

    def missing(self) -> list[int]:
        """Shards of the job not on disk (needs ``units``)."""
        done = set(self.finished())
        return [k for k in range(self.units or 0) if k not in done]

    def write(self, k: int, table: pa.Table, meta: dict | None = None, timing: dict | None = None) -> Path:
        """Atomically write shard ``k``: ``meta`` (JSON-able, deterministic statistics) in its
        schema metadata, ``timing`` (seconds, who computed it) in its sidecar, first."""
        if timing is not None:
            (self.root / TIMING_DIR).mkdir(exist_ok=True)
            write_json_atomic(self.timing_path(k), timing)
        md = dict(table.schema.metadata or {})
        md[SHARD_META] = json.dumps(meta or {}, sort_keys=True).encode()
        table = table.replace_schema_metadata(md)
        final = self.path(k)
        with atomic_path(final) as tmp:
            pq.write_table(table, tmp)
        return final

    def meta(self, k: int) -> dict:
        md = pq.read_schema(self.path(k)).metadata or {}
        return json.loads(md.get(SHARD_META, b"{}"))

    def metas(self) -> list[dict]:
        return [self.meta(k) for k in self.finished()]

    def timing(self, k: int) -> dict:
        """Shard ``k``'s sidecar ({} when absent)."""
        try:
            return json.loads(self.timing_path(k).read_text())
        except (FileNotFoundError, ValueError):
            return {}

    def timings(self) -> list[dict]:
        return [self.timing(k) for k in self.finished()]

    def read(self, columns: list[str] | None = None) -> pa.Table:
        """All shards in order as one table (the shard metadata dropped)."""
        parts = [pq.read_table(self.path(k), columns=columns) for k in self.finished()]
        if not parts:
            raise ValueError(f"{self.root}: no shards written")
        table = pa.concat_tables(parts)
        md = dict(table.schema.metadata or {})
        md.pop(SHARD_META, None)
        return table.replace_schema_metadata(md)

    def remove_torn(self, shards) -> None:
        """Temporary files of ``shards`` (and of their sidecars) whose writer is gone: a
        killed part's leftovers, without touching what another part is writing now."""
        shards = set(shards)

        def ours(name: str) -> bool:
            m = _SHARD_FILE.match(name)
            return m is not None and int(m.group(1)) in shards

        remove_stale_temps(self.root, which=ours)
        remove_stale_temps(self.root / TIMING_DIR, which=ours)


def open_output(root: str | os.PathLike, config: dict, resume: bool = False, units: int | None = None
                ) -> ShardedOutput:
    """Create ``root`` for a new job, or reopen it for ``resume`` after checking that the
    stored configuration hash matches ``config``'s. Raises ``ValueError`` (naming the
    folder and the differing keys) before any work is done. ``units``: the job's number
    of shards (stored beside the hash, for completeness checks)."""
    root = Path(root)
    cfg_path = root / "config.json"
    h = config_hash(config)
    if cfg_path.exists():
        stored = json.loads(cfg_path.read_text())
        if not resume:
            raise UsageError(f"{root} already holds a labeling run ({cfg_path}); pass --resume to continue it "
                             "or choose a new --out")
        if stored.get("hash") != h:
            keys = _diff(stored.get("config", {}), json.loads(json.dumps(config, default=str)))
            raise ConfigError(f"{root}: cannot resume, the configuration changed ({', '.join(keys) or 'hash'}); "
                             "rerun with the original settings or choose a new --out")
        remove_stale_temps(root)
        remove_stale_temps(root / TIMING_DIR)
    else:
        if root.exists() and any(_PART.match(f) for f in os.listdir(root)):
            raise ValueError(f"{root} holds shards but no config.json; choose a new --out")
        root.mkdir(parents=True, exist_ok=True)
        write_json_atomic(cfg_path, _record(config, h, units))
    return ShardedOutput(root, config, units)


def _record(config: dict, h: str, units: int | None) -> dict:
    return {"hash": h, "config": config, **({"units": int(units)} if units is not None else {})}


def _join(root: Path, config: dict, resume: bool, units: int, part) -> ShardedOutput:
    """A job-array part's view of ``root``: create it with ``config.json`` if no part did
    yet (atomically: a hard link that fails when another part won the race), else check
    the stored hash; the part's own finished shards need ``resume``."""
    root.mkdir(parents=True, exist_ok=True)
    cfg_path = root / "config.json"
    h = config_hash(config)
    if not cfg_path.exists():
        tmp = root / f".config.json.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            with open(tmp, "w") as f:
                f.write(json.dumps(_record(config, h, units), indent=2, sort_keys=True, default=str) + "\n")
                f.flush()
                os.fsync(f.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(tmp, cfg_path)  # never replaces: the first part's file stays
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
        fsync_dir(root)
    stored = json.loads(cfg_path.read_text())
    if stored.get("hash") != h:
        keys = _diff(stored.get("config", {}), json.loads(json.dumps(config, default=str)))
        raise ConfigError(f"{root}: part {part} has another configuration than the run already there "
                         f"({', '.join(keys) or 'hash'}); every part of a job array needs the same arguments")
    out = ShardedOutput(root, config, stored.get("units", units))
    mine = set(part.units(units))
    done = [k for k in out.finished() if k in mine]
    if done and not resume:
        raise OutputError(f"{root} already holds {len(done)} shard(s) of part {part} (e.g. "
                          f"{out.path(done[0]).name}); pass --resume to continue it or choose a new --out")
    out.remove_torn(mine)
    return out


def open_shared(root: str | os.PathLike, config: dict, units: int, resume: bool = False, split=None
                ) -> tuple[ShardedOutput, list[int]]:
    """Open ``root`` for the processes of one job (:class:`pyface.work_split.WorkSplit`):
    rank 0 creates or checks the folder (:func:`open_output`, or the job-array join) and
    lists the shards of the job (or part) still to do; every rank gets the same folder
    and its round-robin share of that list. A folder error is raised on every rank.
    Returns (the folder, the shards this process writes)."""
    from pyface.work_split import WorkSplit

    split = split or WorkSplit()
    root = Path(root)

    def lead():
        if split.part is None:
            out = open_output(root, config, resume, units)
        else:
            out = _join(root, config, resume, units, split.part)
        done = set(out.finished())
        return [k for k in split.part_units(units) if k not in done]

    todo = split.on_leader(lead)
    return ShardedOutput(root, config, units), split.take(todo)


def reopen(root: str | os.PathLike, what: str = "OUT") -> ShardedOutput:
    """A finished or partial shard folder as its ``config.json`` describes it (finalize)."""
    root = Path(root)
    cfg_path = root / "config.json"
    if not cfg_path.is_file():
        raise DataError(f"{what}: {root} is not a labeling output folder (no config.json)")
    stored = json.loads(cfg_path.read_text())
    return ShardedOutput(root, stored.get("config", {}), stored.get("units"))
