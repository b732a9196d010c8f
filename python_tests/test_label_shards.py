"""Atomic, resumable Parquet shard folders (pyface.label.shards)."""
import os
import subprocess
import sys

import pyarrow as pa
import pytest

from pyface.label.shards import open_output


def _t(a):
    return pa.table({"x": pa.array(a, pa.int64())})


def test_write_read_resume(tmp_path):
    out = open_output(tmp_path / "o", {"a": 1, "b": {"c": 2}})
    out.write(1, _t([3, 4]), {"n": 2})
    out.write(0, _t([1, 2]), {"n": 2})
    assert out.finished() == [0, 1]
    assert out.read().column("x").to_pylist() == [1, 2, 3, 4]
    assert out.metas() == [{"n": 2}, {"n": 2}]
    assert b"pyface.shard" not in (out.read().schema.metadata or {})
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a killed writer's leftover: pyface.io's temporary name with a pid that is gone
    (tmp_path / "o" / f".part-000002.parquet.{dead.pid}.0badc0de.tmp").write_bytes(b"torn")
    again = open_output(tmp_path / "o", {"b": {"c": 2}, "a": 1}, resume=True)
    assert again.finished() == [0, 1]
    assert not any(f.endswith(".tmp") for f in os.listdir(tmp_path / "o"))


def test_refuses_mixed_runs(tmp_path):
    open_output(tmp_path / "o", {"a": 1, "b": {"c": 2}})
    with pytest.raises(ValueError, match="--resume"):
        open_output(tmp_path / "o", {"a": 1, "b": {"c": 2}})
    with pytest.raises(ValueError, match="b.c"):
        open_output(tmp_path / "o", {"a": 1, "b": {"c": 3}}, resume=True)
    with pytest.raises(ValueError, match="no shards"):
        open_output(tmp_path / "p", {}).read()
