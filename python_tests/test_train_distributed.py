"""Distributed training on CPU with gloo: the per-rank epoch share, checkpoint shards
and re-sharding, a 2-process run equal to a 1-process run with the same global batch,
and `torchrun --nproc_per_node 2 -m pyface train` killed and resumed giving bit-identical
weights to an uninterrupted run."""
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F
import yaml

import pyface
from pyface.distributed import run_job
from pyface.train import Trainer, resolve_config
from pyface.train import checkpoint as ckpt
from pyface.train.sampling import EpochBatchSampler

# The pyface under test (the source tree, or the installed wheel in CI): the torchrun
# workers import it from there, never from the cwd.
PKG_ROOT = Path(pyface.__file__).resolve().parents[1]


def test_epoch_sampler_rank_shares_are_disjoint_and_equal_the_global_batch():
    n, bs, W = 23, 3, 2
    single = list(EpochBatchSampler(n, bs * W, seed=5, epoch=2))
    ranks = [list(EpochBatchSampler(n, bs, seed=5, epoch=2, rank=r, world_size=W)) for r in range(W)]
    assert all(len(r) == n // (bs * W) for r in ranks)
    for b, batch in enumerate(single):  # same items and item seeds, rank r takes slice r
        assert batch == ranks[0][b] + ranks[1][b]
    seen = [i for r in ranks for batch in r for i, _ in batch]
    assert len(seen) == len(set(seen))
    resumed = list(EpochBatchSampler(n, bs, seed=5, epoch=2, start_batch=1, rank=1, world_size=W))
    assert resumed == ranks[1][1:]
    with pytest.raises(ValueError, match="rank"):
        EpochBatchSampler(n, bs, 0, 0, rank=2, world_size=2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cfg(out, **over):
    cfg = {"recipe": "mtl", "device": "cpu", "seed": 3, "progress": False, "tensorboard": False, "log_every": 1,
           "checkpoint_every": 1, "val_pairs": 20, "out_dir": str(out),
           "model": {"preset": "iresnet-tiny-multi", "input_size": 32, "dropout": 0.0},
           "data": {"train": {"type": "SyntheticFaces", "num_identities": 7, "images_per_identity": 4,
                              "image_size": 32, "seed": 0},
                    "batch_size": 4},
           "optim": {"lr": 0.01, "max_steps": 3}}
    for k, v in over.items():
        cfg[k] = {**cfg[k], **v} if isinstance(v, dict) and isinstance(cfg.get(k), dict) else v
    return cfg


def _freeze_batchnorm(model):
    """Per-rank BatchNorm statistics differ from global-batch ones by design (no SyncBN
    on CPU): for the equality test every BN normalises with its running statistics."""
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.forward = (lambda x, m=m: F.batch_norm(x, m.running_mean, m.running_var, m.weight, m.bias, False,
                                                     0.0, m.eps))


def _rank_worker(rank, port, cfg, out_file):
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)

    def job():
        tr = Trainer(resolve_config(cfg))
        _freeze_batchnorm(tr.model)
        tr.fit()
        w = tr.loss.tasks["fr"].fr
        torch.save({"history": tr.history, "model": tr.model.state_dict(), "fr": w.weight.detach().clone(),
                    "span": (w.class_start, w.num_local)}, out_file)

    run_job(job)  # as `pyface train` ends a rank


def test_two_ranks_equal_one_process_with_the_global_batch(tmp_path):
    cfg2 = _cfg(tmp_path / "two")
    port = _free_port()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_rank_worker, args=(r, port, cfg2, str(tmp_path / f"r{r}.pt"))) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    assert all(p.exitcode == 0 for p in procs)
    ranks = [torch.load(tmp_path / f"r{r}.pt") for r in range(2)]
    one = Trainer(resolve_config(_cfg(tmp_path / "one", data={"batch_size": 8})))
    _freeze_batchnorm(one.model)
    m0 = {k: v.detach().clone() for k, v in one.model.state_dict().items()}
    one.fit()
    h2, h1 = ranks[0]["history"], one.history
    assert len(h1) == len(h2) == 3
    errs = {}
    for k in ("loss", "fr", "fld", "hpe"):
        a = torch.tensor([r[k] for r in h2], dtype=torch.float64)
        b = torch.tensor([r[k] for r in h1], dtype=torch.float64)
        errs[k] = float(((a - b).abs() / b.abs()).max())
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    m1 = one.model.state_dict()
    worst = worst_update = 0.0
    for k, v in ranks[0]["model"].items():
        if v.is_floating_point():
            # Relative to what 3 steps changed: the two sides sum the gradient over the
            # batch in a different order (and oneDNN may pick another convolution
            # algorithm for a batch of 4 than of 8), so single elements differ by fp32
            # noise (seen: 2.7e-5 of a 0.03 weight); a wrong gradient would be off by
            # the size of the update itself.
            diff = float((v - m1[k]).abs().max())
            update = float((m1[k] - m0[k]).abs().max())
            assert diff <= 1e-2 * update + 1e-6, (k, diff, update)
            worst = max(worst, diff)
            worst_update = max(worst_update, diff / update if update else 0.0)
        assert torch.equal(v, ranks[1]["model"][k])  # DDP keeps the replicas identical
    w1 = one.loss.tasks["fr"].fr.weight.detach()
    for r in ranks:
        s, n = r["span"]
        torch.testing.assert_close(r["fr"], w1[s:s + n], rtol=1e-4, atol=1e-5)
        worst = max(worst, float((r["fr"] - w1[s:s + n]).abs().max()))
    print(f"2 ranks vs 1 process, 3 steps: max rel err of logged losses {errs}, max abs weight diff {worst:.3g} "
          f"({worst_update:.3g} of the update)")


def _torchrun(cfg_file, out, *extra):
    env = {**os.environ, "PYTHONPATH": str(PKG_ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "pyface", "train", "--config", str(cfg_file), "--out-dir", str(out), *extra]
    return subprocess.Popen(cmd, env=env, cwd=PKG_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)


def _state(run: Path):
    """Model, class-centre shards and optimizer state of a distributed run's checkpoint."""
    return [ckpt.load_rank(run / "checkpoints" / "last.pt", r, 2) for r in range(2)]


def _assert_identical(a, b, path="state"):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), path
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _assert_identical(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)) and a and isinstance(a[0], (torch.Tensor, dict)):
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_identical(x, y, f"{path}[{i}]")


@pytest.mark.slow
def test_torchrun_two_ranks_kill_and_resume_is_bit_identical(tmp_path):
    cfg = _cfg(tmp_path / "unused", optim={"max_steps": 24})
    cfg.pop("out_dir")
    cfg["data"]["val"] = {"type": "SyntheticFaces", "num_identities": 4, "images_per_identity": 3,
                          "image_size": 32, "seed": 1, "identity_offset": 100}
    cfg_file = tmp_path / "tiny.yaml"
    cfg_file.write_text(yaml.safe_dump(cfg))
    full = _torchrun(cfg_file, tmp_path / "full")
    out, _ = full.communicate(timeout=600)
    assert full.returncode == 0, out
    assert "2 ranks (gloo), global batch 8" in out and out.count("run folder") == 1  # rank 0 prints
    assert (tmp_path / "full" / "model.pt").exists() and (tmp_path / "full" / "val.csv").exists()
    killed = _torchrun(cfg_file, tmp_path / "killed")
    shards = tmp_path / "killed" / "checkpoints" / "shards"
    deadline = time.time() + 300
    while time.time() < deadline and killed.poll() is None:
        if any(int(p.name[4:13]) >= 3 for p in shards.glob("step*-rank1-of-2.pt")):
            break
        time.sleep(0.02)
    # SIGTERM to torchrun, as a job scheduler sends it: the agent terminates its workers
    # (which run in their own sessions) wherever they are
    killed.send_signal(signal.SIGTERM)
    killed.communicate(timeout=120)
    assert killed.returncode != 0
    assert not (tmp_path / "killed" / "model.pt").exists(), "the run finished before it could be killed"
    step_at_kill = torch.load(tmp_path / "killed" / "checkpoints" / "last.pt", weights_only=False)["step"]
    assert 1 <= step_at_kill < 24
    resumed = _torchrun(cfg_file, tmp_path / "killed", "--resume")
    out, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, out
    a, b = _state(tmp_path / "full"), _state(tmp_path / "killed")
    for r in range(2):
        for key in ("model", "loss", "optimizer", "scheduler", "step"):
            _assert_identical(a[r][key], b[r][key], f"rank{r}.{key}")
    # re-shard to one process: the full class-centre matrix in the single-process format
    one = ckpt.reshard(tmp_path / "full" / "checkpoints" / "last.pt", 1, tmp_path / "one")
    st1 = ckpt.load(one)
    key = "tasks.fr.fr.weight"
    assert torch.equal(st1["loss"][key], torch.cat([a[0]["loss"][key], a[1]["loss"][key]]))
    assert st1["loss"][key].shape[0] == 7
    single = Trainer(resolve_config({**cfg, "out_dir": str(tmp_path / "single")}))
    assert single.resume(one) and single.step == 24  # loads into a one-process trainer
    assert torch.equal(single.loss.tasks["fr"].fr.weight.detach(), st1["loss"][key])
    # and to 3 ranks, whose shards follow the class_shard formula
    three = ckpt.reshard(tmp_path / "full" / "checkpoints" / "last.pt", 3, tmp_path / "three")
    parts = [ckpt.load_rank(three, r, 3)["loss"][key] for r in range(3)]
    assert [p.shape[0] for p in parts] == [3, 2, 2]
    assert torch.equal(torch.cat(parts), st1["loss"][key])
    with pytest.raises(ValueError, match="re-shard"):
        ckpt.load_rank(tmp_path / "full" / "checkpoints" / "last.pt", 0, 3)
    # an error on one rank (its shard file is gone) ends every rank, non-zero, no hang
    for p in (tmp_path / "killed" / "checkpoints" / "shards").glob("*rank1-of-2.pt"):
        p.unlink()
    t0 = time.time()
    broken = _torchrun(cfg_file, tmp_path / "killed", "--resume")
    out, _ = broken.communicate(timeout=600)
    assert broken.returncode != 0 and "rank1-of-2.pt" in out, out
    print(f"one rank failing: torchrun exited {broken.returncode} after {time.time() - t0:.0f} s")
