"""Landmark loss (Eq. 3-9), forward + backward: fused op vs the pure-PyTorch reference.

The reference launches dozens of small kernels (Wing branches, MSE, rotation,
projection, two normalisations, distances, reductions) plus their backward; the fused
op is one forward and one backward kernel (plus the batch reduction)."""
from __future__ import annotations

import torch

from pyface.benchmarks import _harness as H
from pyface.ops import landmark_loss
from pyface.ops.reference import landmark_loss_reference

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp64": torch.float64}


def add_arguments(p):
    p.add_argument("--batches", type=int, nargs="+", default=None, help="batch sizes (default 128 512 4096)")
    p.add_argument("--lambda-p", default="dynamic", help='"dynamic" or a number')
    p.add_argument("--dtypes", nargs="+", default=None, choices=sorted(DTYPES))
    p.add_argument("--iters", type=int, default=None)


def _case(B, dtype, device, fn, lambda_p):
    pose = (torch.rand(B, 3, device=device) * 2 - 1) * 60
    target = torch.rand(B, 68, 2, device=device) * 112
    pred = (target + torch.randn(B, 68, 2, device=device) * 6).to(dtype).requires_grad_()
    target = target.to(dtype)

    def step():
        pred.grad = None
        fn(pred, target, pose, lambda_p=lambda_p).backward()

    return step


def run(args) -> dict:
    device = torch.device(args.device or H.default_device())
    quick = args.quick
    batches = args.batches or ([512] if quick else [128, 512, 4096])
    dtypes = args.dtypes or ["fp32"]
    lp = args.lambda_p
    lambda_p = lp if lp == "dynamic" else float(lp)
    iters = args.iters or (20 if quick else (50 if device.type == "cpu" else 200))
    rows = []
    for dname in dtypes:
        dtype = DTYPES[dname]
        for B in batches:
            r_f = H.measure(_case(B, dtype, device, landmark_loss, lambda_p), device, warmup=3, iters=iters)
            r_r = H.measure(_case(B, dtype, device, landmark_loss_reference, lambda_p), device, warmup=3, iters=iters)
            rows.append({"dtype": dname, "B": B, "lambda_p": str(lambda_p), "fused_ms": r_f["ms"], "ref_ms": r_r["ms"],
                         "speedup": r_r["ms"] / r_f["ms"], "fused_extra_mb": r_f["peak_extra_mb"],
                         "ref_extra_mb": r_r["peak_extra_mb"]})
    cols = [("dtype", "dtype"), ("B", "B"), ("fused_ms", "fused ms"), ("ref_ms", "ref ms"), ("speedup", "speedup"),
            ("fused_extra_mb", "fused MiB"), ("ref_extra_mb", "ref MiB")]
    target = "targets: >=2x on CPU, >=5x on H100/H200 at B=512"
    H.print_table(f"landmark_loss fwd+bwd (lambda_p={lambda_p}) on {H.device_name(device)}; {target}", rows, cols)
    return {"bench": "landmark", "device": H.device_name(device), "device_type": device.type, "quick": quick,
            "rows": rows}
