"""Issue 20: `pyface eval` under torchrun (2 gloo ranks on the CPU): the inference split
across the ranks by shards, the protocols once on rank 0 -- the report's numbers equal one
process's; and as a job array (--part k/N fills the cache, the run without it reports)."""
import json
import shutil

import pytest
import torch
from test_label_distributed import finish, torchrun

from pyface.cli import main
from pyface.demos.eval import write_demo_data
from pyface.models import build_model


@pytest.fixture(scope="module")
def evaldata(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaldist")
    write_demo_data(root / "sets", image_size=64, scale=0.1)
    shutil.copy(root / "sets" / "lfw.bin", root / "sets" / "cfp_fp.bin")  # two .bin sets
    torch.manual_seed(0)
    m = build_model("iresnet-tiny-multi")
    torch.save({"model": m.state_dict(), "model_config": m.config.to_dict()}, root / "model.pt")
    return root


def _args(d, out, *extra):
    return ["eval", "all", "--checkpoint", str(d / "model.pt"), "--data-root", str(d / "sets"), "--out", str(out),
            "--device", "cpu", "--batch-size", "3", "--shard-size", "7", "--no-progress", "--fps-repeats", "1",
            "--fps-batches", "1", *extra]


def _numbers(out) -> dict:
    """report.json without what measures time or names the run (fps, seconds, paths)."""
    rep = json.loads((out / "report.json").read_text())
    for k in ("fps", "seconds", "device", "checkpoint"):
        rep.pop(k, None)
    return rep


def test_eval_two_ranks_and_parts_equal_one_process(evaldata, tmp_path):
    assert main(_args(evaldata, tmp_path / "one")) == 0
    ref = _numbers(tmp_path / "one")
    assert set(ref) >= {"verification", "ijbc", "aflw2000", "biwi"} and set(ref["verification"]) == {"lfw", "cfp_fp"}
    p = torchrun(*_args(evaldata, tmp_path / "tr"))
    log = finish(p)
    assert p.returncode == 0, log
    assert log.count("wrote ") == 1, log  # rank 0 writes the report
    assert _numbers(tmp_path / "tr") == ref
    # both ranks computed shards: the cache holds them all, written by either
    shards = sorted(f.name for f in (tmp_path / "tr" / "cache").rglob("*.npz"))
    assert shards == sorted(f.name for f in (tmp_path / "one" / "cache").rglob("*.npz")) and len(shards) > 8
    # a job array: the parts fill the cache, the plain run finds every shard there and reports
    parts = tmp_path / "parts"
    assert main(_args(evaldata, parts, "--part", "1/2")) == 0 and not (parts / "report.json").exists()
    assert main(_args(evaldata, parts, "--part", "2/2")) == 0
    n = len(list((parts / "cache").rglob("*.npz")))
    assert n == len(shards)
    assert main(_args(evaldata, parts)) == 0
    assert _numbers(parts) == ref
    assert main(_args(evaldata, parts, "--part", "1/2", "--cache", "")) == 2  # parts meet in the cache
