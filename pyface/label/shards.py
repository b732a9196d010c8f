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
naming the keys that differ. Shared by ``pyface label landmarks`` and
``pyface label identities``.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pyface.io import atomic_path, remove_stale_temps, write_json_atomic  # noqa: F401 - write_json_atomic re-exported

__all__ = ["ShardedOutput", "open_output", "config_hash", "write_json_atomic", "SHARD_META"]

SHARD_META = b"pyface.shard"
_PART = re.compile(r"^part-(\d{6})\.parquet$")


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
    """A shard folder opened by :func:`open_output`."""

    def __init__(self, root: Path, config: dict):
        self.root = root
        self.config = config

    def path(self, k: int) -> Path:
        return self.root / f"part-{int(k):06d}.parquet"

    def finished(self) -> list[int]:
        """Indices of the shards on disk, sorted."""
        return sorted(int(m.group(1)) for f in os.listdir(self.root) if (m := _PART.match(f)))

    def write(self, k: int, table: pa.Table, meta: dict | None = None) -> Path:
        """Atomically write shard ``k`` (``meta``: JSON-able statistics kept in its schema metadata)."""
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

    def read(self, columns: list[str] | None = None) -> pa.Table:
        """All shards in order as one table (the shard metadata dropped)."""
        parts = [pq.read_table(self.path(k), columns=columns) for k in self.finished()]
        if not parts:
            raise ValueError(f"{self.root}: no shards written")
        table = pa.concat_tables(parts)
        md = dict(table.schema.metadata or {})
        md.pop(SHARD_META, None)
        return table.replace_schema_metadata(md)


def open_output(root: str | os.PathLike, config: dict, resume: bool = False) -> ShardedOutput:
    """Create ``root`` for a new job, or reopen it for ``resume`` after checking that the
    stored configuration hash matches ``config``'s. Raises ``ValueError`` (naming the
    folder and the differing keys) before any work is done."""
    root = Path(root)
    cfg_path = root / "config.json"
    h = config_hash(config)
    if cfg_path.exists():
        stored = json.loads(cfg_path.read_text())
        if not resume:
            raise ValueError(f"{root} already holds a labeling run ({cfg_path}); pass --resume to continue it "
                             "or choose a new --out")
        if stored.get("hash") != h:
            keys = _diff(stored.get("config", {}), json.loads(json.dumps(config, default=str)))
            raise ValueError(f"{root}: cannot resume, the configuration changed ({', '.join(keys) or 'hash'}); "
                             "rerun with the original settings or choose a new --out")
        remove_stale_temps(root)
    else:
        if root.exists() and any(_PART.match(f) for f in os.listdir(root)):
            raise ValueError(f"{root} holds shards but no config.json; choose a new --out")
        root.mkdir(parents=True, exist_ok=True)
        write_json_atomic(cfg_path, {"hash": h, "config": config})
    return ShardedOutput(root, config)
