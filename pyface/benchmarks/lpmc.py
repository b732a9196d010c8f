"""LPMC loss, forward + backward: fused op vs the pure-PyTorch reference.

Peak memory is reported beyond the inputs and their gradients. On CUDA the time of
the three matrix products the loss needs (x W^T, G W, G^T x) is the floor."""
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
