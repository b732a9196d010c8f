"""pyface.nn.LPMCLoss with its class centres sharded over 2 gloo processes against the
single-process lpmc_loss on the same inputs: loss, embedding gradients (W x the
single-process rows of each rank's samples) and every class-centre shard."""
import json
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from pyface.distributed import gloo_worker_threads, run_job, setup
from pyface.nn import LPMCLoss
from pyface.nn.lpmc import class_shard
from pyface.ops import lpmc_loss, pose_margin

WORLD = 2
# (name, C, local batch sizes, label rule, ignored global rows, dtype, margin_type, sample_rate)
CASES = [
    ("C=11 uneven batches", 11, (5, 3), "any", (1, 6), torch.float32, "arc", 1.0),
    ("labels on shard 1 only", 13, (4, 4), "last", (), torch.float32, "cosine", 1.0),
    ("ignore rows + empty rank", 9, (6, 0), "any", (0, 2, 3), torch.float32, "arc", 1.0),
    ("C < world", 1, (3, 2), "any", (4,), torch.float32, "cosine", 1.0),
    ("fp64 larger", 1001, (17, 23), "any", (5,), torch.float64, "arc", 1.0),
    ("sampling keeps all", 37, (6, 5), "any", (3,), torch.float32, "arc", 0.999),
]


def _global_inputs(C, sizes, rule, ignored, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    B = sum(sizes)
    x = torch.randn(B, 16, generator=g, dtype=torch.float64).to(dtype)
    lo = class_shard(C, WORLD, WORLD - 1)[0] if rule == "last" else 0
    labels = torch.randint(lo, C, (B,), generator=g)
    labels[list(ignored)] = -1
    pose = torch.randn(B, 3, generator=g) * 40
    return x, labels, pose


def _worker(rank, port, out_dir):
    # TCP store on the loopback, as torchrun sets it up (and as test_train_distributed
    # does); the process group set up and ended as pyface's jobs do (pyface.distributed).
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(WORLD))
    torch.set_num_threads(1)
    setup(torch.device("cpu"))
    run_job(_cases, rank, out_dir)
    with open(os.path.join(out_dir, f"rank{rank}.progress"), "a") as f:
        f.write(f"ended, gloo worker threads left: {gloo_worker_threads()}\n")


def _cases(rank, out_dir):
    progress = os.path.join(out_dir, f"rank{rank}.progress")
    results = []
    for name, C, sizes, rule, ignored, dtype, mt, rate in CASES:
        with open(progress, "a") as f:  # where a crash happened, if one does
            f.write(f"start {name}\n")
        results.append(_run_case(rank, name, C, sizes, rule, ignored, dtype, mt, rate))
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump({"cases": results}, f)


def _run_case(rank, name, C, sizes, rule, ignored, dtype, mt, rate):
    x, labels, pose = _global_inputs(C, sizes, rule, ignored, dtype)
    torch.manual_seed(7)  # both ranks draw the same class-centre init seed
    head = LPMCLoss(C, 16, margin_type=mt, scale=32.0, process_group=dist.group.WORLD, sample_rate=rate,
                    chunk_size=4).to(dtype)
    s0 = sum(sizes[:rank])
    xl = x[s0:s0 + sizes[rank]].clone().requires_grad_()
    loss = head(xl, labels[s0:s0 + sizes[rank]], pose[s0:s0 + sizes[rank]])
    loss.backward()
    # single process, full matrix: the rows of every shard gathered
    nmax = class_shard(C, WORLD, 0)[1]
    parts = [torch.empty(nmax, 16, dtype=dtype) for r in range(WORLD)]
    mine = torch.zeros(nmax, 16, dtype=dtype)
    mine[:head.num_local] = head.weight.detach()
    dist.all_gather(parts, mine)
    w_full = torch.cat([p[:class_shard(C, WORLD, r)[1]] for r, p in enumerate(parts)]).requires_grad_()
    x1 = x.clone().requires_grad_()
    ref = lpmc_loss(x1, w_full, labels, pose_margin(pose), scale=32.0, margin_type=mt)
    ref.backward()
    start, n = head.class_start, head.num_local

    def err(a, b):
        d = (a.double() - b.double()).abs()
        return float(d.max()) if d.numel() else 0.0, float((d / b.double().abs().clamp_min(1e-6)).max()) \
            if d.numel() else 0.0

    return {
        "name": name, "loss": err(loss.detach(), ref.detach()),
        "dx": err(xl.grad, WORLD * x1.grad[s0:s0 + sizes[rank]]),
        "dw": err(head.weight.grad, w_full.grad[start:start + n]),
        "loss_value": float(loss.detach()), "grad_scale": float(x1.grad.abs().max()),
        "w_scale": float(w_full.grad.abs().max()) if w_full.grad.numel() else 0.0,
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    d = tmp_path_factory.mktemp("lpmc_dist")
    ctx = mp.get_context("spawn")
    port = _free_port()
    procs = [ctx.Process(target=_worker, args=(r, port, str(d))) for r in range(WORLD)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join()

    def progress(r):
        f = d / f"rank{r}.progress"
        return f.read_text().split("\n") if f.exists() else []

    for r, p in enumerate(procs):
        # Non-zero after "ended" = the process died in interpreter teardown: the gloo
        # exit abort of issue 16 (pyface.distributed), a failure like any other.
        assert p.exitcode == 0, (
            f"rank {r} exited with {p.exitcode} during {[line for line in progress(r) if line][-1:]}")
    return [{**json.loads((d / f"rank{r}.json").read_text()), "progress": [x for x in progress(r) if x]}
            for r in range(WORLD)]


def test_the_process_group_ended_with_its_worker_threads(results):
    # run_job's shutdown destroyed the group while the interpreter was alive: no gloo
    # worker thread is left to release a work during finalization (issue 16).
    for r in range(WORLD):
        assert results[r]["progress"][-1] == "ended, gloo worker threads left: 0", results[r]["progress"]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_two_process_sharded_loss_equals_single_process(results, case):
    name, dtype = CASES[case][0], CASES[case][5]
    tol = 1e-10 if dtype == torch.float64 else 2e-5
    for r in range(WORLD):
        res = results[r]["cases"][case]
        assert res["name"] == name
        print(f"{name} rank {r}: max abs/rel err loss {res['loss']}, dx {res['dx']}, dw {res['dw']}")
        assert res["loss"][0] <= tol * max(1.0, abs(res["loss_value"])), res
        assert res["dx"][0] <= tol * max(1.0, WORLD * res["grad_scale"]), res
        assert res["dw"][0] <= tol * max(1.0, res["w_scale"]), res
    assert results[0]["cases"][case]["loss_value"] == results[1]["cases"][case]["loss_value"]  # same mean on every rank
