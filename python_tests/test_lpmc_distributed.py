"""pyface.nn.LPMCLoss with its class centres sharded over 2 gloo processes against the
single-process lpmc_loss on the same inputs: loss, embedding gradients (W x the
single-process rows of each rank's samples) and every class-centre shard."""
import json
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

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


def _worker(rank, init_file, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        results = []
        for name, C, sizes, rule, ignored, dtype, mt, rate in CASES:
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

            results.append({
                "name": name, "loss": err(loss.detach(), ref.detach()),
                "dx": err(xl.grad, WORLD * x1.grad[s0:s0 + sizes[rank]]),
                "dw": err(head.weight.grad, w_full.grad[start:start + n]),
                "loss_value": float(loss.detach()), "grad_scale": float(x1.grad.abs().max()),
                "w_scale": float(w_full.grad.abs().max()) if w_full.grad.numel() else 0.0,
            })
        with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
            json.dump(results, f)
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    d = tmp_path_factory.mktemp("lpmc_dist")
    mp.spawn(_worker, args=(str(d / "init"), str(d)), nprocs=WORLD, join=True)
    return [json.loads((d / f"rank{r}.json").read_text()) for r in range(WORLD)]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_two_process_sharded_loss_equals_single_process(results, case):
    name, dtype = CASES[case][0], CASES[case][5]
    tol = 1e-10 if dtype == torch.float64 else 2e-5
    for r in range(WORLD):
        res = results[r][case]
        assert res["name"] == name
        print(f"{name} rank {r}: max abs/rel err loss {res['loss']}, dx {res['dx']}, dw {res['dw']}")
        assert res["loss"][0] <= tol * max(1.0, abs(res["loss_value"])), res
        assert res["dx"][0] <= tol * max(1.0, WORLD * res["grad_scale"]), res
        assert res["dw"][0] <= tol * max(1.0, res["w_scale"]), res
    assert results[0][case]["loss_value"] == results[1][case]["loss_value"]  # same mean on every rank
