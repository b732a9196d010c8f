"""Every committed output goes through pyface.io: a writer killed mid-write leaves the
previous file intact, its partial file is never what a reader opens, and the job that
reopens the folder removes it (pyface.io.remove_stale_temps)."""
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch
from utils import NEUTRAL_CWD, subprocess_env

from pyface import runtime as R
from pyface.errors import CheckpointError, OutputError
from pyface.label.shards import open_output
from pyface.models import build_model

# Runs one writer in a child process whose low-level write function is replaced by one
# that writes the first half of the real bytes, says so, and hangs -- then it is killed.
_CHILD = r"""
import io, sys, time
import torch

def hang_after_half(data: bytes, f):
    f.write(data[: len(data) // 2])
    f.flush()
    print("writing", flush=True)
    time.sleep(120)

what, path = sys.argv[1], sys.argv[2]
if what in ("model.pt", "last.pt"):
    real = torch.save

    def save(obj, f, **kw):
        buf = io.BytesIO()
        real(obj, buf, **kw)
        hang_after_half(buf.getvalue(), f)

    torch.save = save
    torch.manual_seed(1)
    from pyface.models import build_model
    m = build_model("iresnet-tiny-multi")
    if what == "model.pt":
        from pyface import runtime
        runtime.save_model(m, path)
    else:
        from pyface.train import checkpoint
        checkpoint.save_atomic({"model": m.state_dict(), "model_config": m.config.to_dict(), "step": 2}, path)
elif what == "shard":
    import pyarrow as pa
    import pyarrow.parquet as pq
    real = pq.write_table

    def write_table(table, where, **kw):
        buf = pa.BufferOutputStream()
        real(table, buf, **kw)
        with open(where, "wb") as f:
            hang_after_half(buf.getvalue().to_pybytes(), f)

    pq.write_table = write_table
    from pyface.label.shards import open_output
    out = open_output(path, {"job": 1}, resume=True)
    out.write(1, pa.table({"x": pa.array([3, 4], pa.int64())}), {"n": 2})
"""


def _kill_mid_write(what: str, path) -> list[str]:
    """Run the writer, kill it mid-write; returns the names in the folder afterwards."""
    p = subprocess.Popen([sys.executable, "-c", _CHILD, what, str(path)], stdout=subprocess.PIPE, text=True,
                         env=subprocess_env(), cwd=NEUTRAL_CWD)
    try:
        assert p.stdout.readline().strip() == "writing"
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    return sorted(os.listdir(Path(path).parent if what != "shard" else path))


def _temps(folder) -> list[Path]:
    return sorted(Path(folder).glob(".*.tmp"))


@pytest.mark.parametrize("what", ["model.pt", "last.pt"])
def test_killed_checkpoint_write_keeps_the_previous_file(tmp_path, what):
    from pyface.train import checkpoint

    folder = tmp_path / ("run" if what == "model.pt" else "run/checkpoints")
    folder.mkdir(parents=True)
    torch.manual_seed(0)
    old = build_model("iresnet-tiny-multi")
    if what == "model.pt":
        R.save_model(old, folder / what)
    else:
        checkpoint.save_atomic({"model": old.state_dict(), "model_config": old.config.to_dict(), "step": 1},
                               folder / what)
    before = (folder / what).read_bytes()
    names = _kill_mid_write(what, folder / what)
    temps = _temps(folder)
    assert len(temps) == 1 and temps[0].name.startswith(f".{what}.") and names == sorted([what, temps[0].name])
    assert (folder / what).read_bytes() == before  # the previous file, whole
    got = R.load_model(tmp_path / "run")  # what a reader of the run folder opens
    for k, v in old.state_dict().items():
        assert torch.equal(got.state_dict()[k], v)
    with pytest.raises(CheckpointError, match="not a readable torch checkpoint"):
        R.load_model(temps[0])  # the partial file, were it opened by name, is refused
    # the job reopening its folder removes the killed writer's temporary file
    from pyface.train import Trainer, resolve_config

    cfg = resolve_config({"out_dir": str(tmp_path / "run"), "device": "cpu", "progress": False,
                          "tensorboard": False, "model": {"preset": "iresnet-tiny-multi", "input_size": 32},
                          "tasks": ["hpe"], "data": {"train": "given", "batch_size": 4},
                          "optim": {"max_steps": 1}})

    class Faces(torch.utils.data.Dataset):
        def __len__(self):
            return 8

        def __getitem__(self, i):
            return {"image": torch.full((3, 32, 32), i * 10, dtype=torch.uint8), "landmarks": torch.rand(68, 2) * 32,
                    "pose": torch.zeros(3), "identity": torch.tensor(i % 2), "source": "t"}

    with pytest.raises(OutputError, match="already holds a training run"):  # nor is the run overwritten
        Trainer(cfg, Faces()).fit()
    assert _temps(folder) == [] and _temps(tmp_path / "run") == []
    assert (folder / what).read_bytes() == before


def test_killed_shard_write_is_never_read_and_is_removed_on_resume(tmp_path):
    out = open_output(tmp_path / "o", {"job": 1})
    out.write(0, pa.table({"x": pa.array([1, 2], pa.int64())}), {"n": 2})
    names = _kill_mid_write("shard", tmp_path / "o")
    assert [n for n in names if n.endswith(".tmp")] and "part-000001.parquet" not in names
    again = open_output(tmp_path / "o", {"job": 1}, resume=True)
    assert again.finished() == [0] and again.read().column("x").to_pylist() == [1, 2]
    assert _temps(tmp_path / "o") == []


def test_eval_cache_removes_a_killed_shard(tmp_path):
    from pyface.data import SyntheticFaces
    from pyface.eval import runner

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    cache = tmp_path / "cache"
    cache.mkdir()
    stale = cache / f".000000000-000000004.npz.{dead.pid}.0badc0de.tmp"
    stale.write_bytes(b"PK\x03\x04 half a shard")
    torch.manual_seed(0)
    m = build_model("iresnet-tiny-multi").eval()
    out = runner.infer(m, SyntheticFaces(2, 2, image_size=64, seed=0), progress=False, cache_dir=cache,
                       shard_size=4)
    assert not stale.exists() and sorted(os.listdir(cache)) == ["000000000-000000004.npz"]
    with np.load(cache / "000000000-000000004.npz") as z:
        assert np.array_equal(z["embedding"], out["embedding"])
