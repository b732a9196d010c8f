"""LPMC loss, forward + backward: fused op vs the pure-PyTorch reference.

Peak memory is reported beyond the inputs and their gradients. On CUDA the time of
the three matrix products the loss needs (x W^T, G W, G^T x) is the floor.

``--world-size N`` (N > 1): the class-sharded loss (pyface.nn.LPMCLoss with a process
group; N local processes, gloo on CPU, NCCL on N GPUs) against the single-process op
on the same global batch and class count: step time (slowest rank), per-rank peak
memory beyond inputs and gradients, and per-rank class-centre memory (weight + grad),
which falls as 1/N."""
from __future__ import annotations

import torch

from pyface.benchmarks import _harness as H
from pyface.ops import lpmc_loss, pose_margin
from pyface.ops.reference import lpmc_loss_reference

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def add_arguments(p):
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--classes", type=int, nargs="+", default=None,
                   help="class counts (default 10000 93431 1000000; --quick: 10000)")
    p.add_argument("--dtypes", nargs="+", default=None, choices=sorted(DTYPES))
    p.add_argument("--iters", type=int, default=None)
    p.add_argument("--world-size", type=int, default=1,
                   help="> 1: the class-sharded loss on this many local processes vs the single-process op")


def _case(B, D, C, dtype, device, fn):
    x = torch.randn(B, D, device=device, dtype=dtype, requires_grad=True)
    w = torch.randn(C, D, device=device, dtype=dtype, requires_grad=True)
    labels = torch.randint(0, C, (B,), device=device)
    margins = pose_margin(torch.randn(B, 3, device=device) * 30)

    def step():
        x.grad = w.grad = None
        fn(x, w, labels, margins).backward()

    return step


def _matmul3(B, D, C, dtype, device):
    x = torch.randn(B, D, device=device, dtype=dtype)
    w = torch.randn(C, D, device=device, dtype=dtype)

    def step():
        g = x @ w.t()
        _ = g @ w
        _ = g.t() @ x

    return step


def run(args) -> dict:
    if getattr(args, "world_size", 1) > 1:
        return run_sharded(args)
    device = torch.device(args.device or H.default_device())
    quick = args.quick
    classes = args.classes or ([10_000] if quick else [10_000, 93_431, 1_000_000])
    if args.dtypes:
        dtypes = args.dtypes
    elif device.type == "cuda":
        dtypes = ["bf16"] if quick else ["fp32", "bf16"]
    else:  # CPUs without native bf16 matmul make the bf16 reference very slow
        dtypes = ["fp32"]
    iters = args.iters or (2 if quick else (3 if device.type == "cpu" else 20))
    B, D = args.batch, args.dim
    rows = []
    for dname in dtypes:
        dtype = DTYPES[dname]
        for C in classes:
            fused = _case(B, D, C, dtype, device, lambda x, w, y, m: lpmc_loss(x, w, y, m))
            r_f = H.measure(fused, device, iters=iters)
            del fused
            ref = _case(B, D, C, dtype, device, lambda x, w, y, m: lpmc_loss_reference(x, w, y, m))
            r_r = H.measure(ref, device, iters=iters)
            del ref
            row = {"dtype": dname, "B": B, "D": D, "C": C,
                   "fused_ms": r_f["ms"], "ref_ms": r_r["ms"], "speedup": r_r["ms"] / r_f["ms"],
                   # measured after a warm-up step, so the gradients already exist:
                   # this is the memory beyond the inputs and their gradients
                   "fused_extra_mb": r_f["peak_extra_mb"], "ref_extra_mb": r_r["peak_extra_mb"],
                   "ref_oom": r_r["oom"]}
            row["mem_ratio"] = row["ref_extra_mb"] / max(row["fused_extra_mb"], 1e-9)
            if device.type == "cuda":
                r_m = H.measure(_matmul3(B, D, C, dtype, device), device, iters=iters)
                row["matmul3_ms"] = r_m["ms"]
                row["fused_over_matmul3"] = r_f["ms"] / r_m["ms"]
            rows.append(row)
    cols = [("dtype", "dtype"), ("C", "C"), ("fused_ms", "fused ms"), ("ref_ms", "ref ms"), ("speedup", "speedup"),
            ("fused_extra_mb", "fused MiB"), ("ref_extra_mb", "ref MiB"), ("mem_ratio", "mem ratio")]
    if device.type == "cuda":
        cols += [("matmul3_ms", "3xGEMM ms"), ("fused_over_matmul3", "fused/GEMM")]
    H.print_table(f"lpmc_loss fwd+bwd, B={B} D={D} on {H.device_name(device)}", rows, cols)
    return {"bench": "lpmc", "device": H.device_name(device), "device_type": device.type, "quick": quick,
            "rows": rows}


# ----------------------------------------------------------------------------- sharded


def _sharded_rank(rank, world, port, device_type, B, D, C, dtype, iters, threads, out):
    import os

    import torch.distributed as dist

    from pyface.nn import LPMCLoss

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(threads)
    device = torch.device(device_type, rank) if device_type == "cuda" else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=rank, world_size=world)
    try:
        torch.manual_seed(rank)
        head = LPMCLoss(C, D, process_group=dist.group.WORLD, init_seed=0).to(device, dtype)
        b = B // world + (rank < B % world)
        x = torch.randn(b, D, device=device, dtype=dtype, requires_grad=True)
        labels = torch.randint(0, C, (b,), device=device)
        pose = torch.randn(b, 3, device=device) * 30

        def step():
            x.grad = head.weight.grad = None
            head(x, labels, pose).backward()

        r = H.measure(step, device, iters=iters)
        r["centre_mb"] = 2 * head.weight.numel() * head.weight.element_size() / 2**20  # weight + grad
        r["rows"] = head.num_local
        torch.save(r, out)
    finally:
        dist.destroy_process_group()


def run_sharded(args) -> dict:
    import os
    import socket
    import tempfile

    import torch.multiprocessing as mp

    W = args.world_size
    device = torch.device(args.device or H.default_device())
    if device.type == "cuda" and torch.cuda.device_count() < W:
        raise ValueError(f"--world-size {W} on CUDA needs {W} GPUs (NCCL: one rank per device), "
                         f"found {torch.cuda.device_count()}")
    classes = args.classes or ([10_000] if args.quick else [10_000, 93_431, 1_000_000])
    dname = (args.dtypes or ["fp32"])[0]
    dtype = DTYPES[dname]
    iters = args.iters or (2 if args.quick else (3 if device.type == "cpu" else 20))
    B, D = args.batch, args.dim
    threads = max(1, torch.get_num_threads() // W) if device.type == "cpu" else 1
    rows = []
    for C in classes:
        single = _case(B, D, C, dtype, device, lambda x, w, y, m: lpmc_loss(x, w, y, m))
        r_s = H.measure(single, device, iters=iters)
        del single
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        with tempfile.TemporaryDirectory() as tmp:
            outs = [os.path.join(tmp, f"rank{r}.pt") for r in range(W)]
            ctx = mp.get_context("spawn")
            procs = [ctx.Process(target=_sharded_rank, args=(r, W, port, device.type, B, D, C, dtype, iters, threads,
                                                             outs[r])) for r in range(W)]
            for p in procs:
                p.start()
            for p in procs:
                p.join()
            if any(p.exitcode != 0 for p in procs):
                raise RuntimeError(f"a rank of the sharded benchmark failed (exit codes {[p.exitcode for p in procs]})")
            ranks = [torch.load(o) for o in outs]
        row = {"dtype": dname, "B": B, "D": D, "C": C, "world": W,
               "single_ms": r_s["ms"], "sharded_ms": max(r["ms"] for r in ranks),
               "single_extra_mb": r_s["peak_extra_mb"], "rank_extra_mb": max(r["peak_extra_mb"] for r in ranks),
               "single_centre_mb": 2 * C * D * torch.tensor([], dtype=dtype).element_size() / 2**20,
               "rank_centre_mb": max(r["centre_mb"] for r in ranks),
               "rank_ms": [r["ms"] for r in ranks], "rank_rows": [r["rows"] for r in ranks]}
        row["time_ratio"] = row["sharded_ms"] / row["single_ms"]
        row["centre_ratio"] = row["single_centre_mb"] / row["rank_centre_mb"]
        rows.append(row)
    cols = [("C", "C"), ("single_ms", "1-proc ms"), ("sharded_ms", f"{W}-rank ms"), ("time_ratio", "ratio"),
            ("single_extra_mb", "1-proc MiB"), ("rank_extra_mb", "rank MiB"), ("single_centre_mb", "1-proc W MiB"),
            ("rank_centre_mb", "rank W MiB"), ("centre_ratio", "W ratio")]
    H.print_table(f"sharded lpmc fwd+bwd, global B={B} D={D} {dname}, {W} ranks "
                  f"({'NCCL' if device.type == 'cuda' else f'gloo, {threads} thread(s) each'}) vs 1 process on "
                  f"{H.device_name(device)}", rows, cols)
    return {"bench": "lpmc", "mode": "sharded", "world_size": W, "device": H.device_name(device),
            "device_type": device.type, "quick": args.quick, "rows": rows}
