"""Batched selective fitting (``pyface bench fit``): the fused op vs a per-image
NumPy loop and the vectorised PyTorch reference (pyface/ops/reference.py).

The per-image loop is timed on a subset of images and scaled to the full batch
(it is linear in B); the others run on the whole batch."""
from __future__ import annotations

import time

import torch

from pyface.benchmarks import _harness as H
from pyface.ops import selective_fit
from pyface.ops.reference import selective_fit_loop_reference, selective_fit_reference


def add_arguments(p):
    p.add_argument("--batch", type=int, default=None, help="images (default 65536; --quick: 4096)")
    p.add_argument("--samples", type=int, default=16, help="samples per image N")
    p.add_argument("--points", type=int, default=68)
    p.add_argument("--loop-images", type=int, default=None,
                   help="images timed for the NumPy loop (default 2000; --quick: 300)")
    p.add_argument("--iters", type=int, default=None)


def make_inputs(B, N, P, device, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(B, 1, P, 2, generator=g) * 100
    scale = 20 * torch.rand(B, N, 1, 1, generator=g) ** 3
    samples = base + scale * torch.randn(B, N, P, 2, generator=g)
    poses = torch.randn(B, N, 3, generator=g) * 20
    valid = torch.rand(B, N, generator=g) > 0.1
    face_size = 50 + 50 * torch.rand(B, generator=g)
    return [t.to(device=device, dtype=dtype if t.is_floating_point() else t.dtype)
            for t in (samples, poses, valid, face_size)]


def run(args) -> dict:
    device = torch.device(args.device or H.default_device())
    quick = args.quick
    B = args.batch or (4096 if quick else 65536)
    N, P = args.samples, args.points
    iters = args.iters or (3 if quick or device.type == "cpu" else 20)
    n_loop = min(B, args.loop_images or (300 if quick else 2000))
    inputs = make_inputs(B, N, P, device)
    r_fused = H.measure(lambda: selective_fit(*inputs), device, iters=iters)
    r_vec = H.measure(lambda: selective_fit_reference(*inputs), device, iters=iters)
    np_in = [t[:n_loop].cpu().numpy() for t in inputs]
    t0 = time.perf_counter()
    want = selective_fit_loop_reference(*np_in)
    loop_ms = (time.perf_counter() - t0) * 1e3 * B / n_loop
    got = [t[:n_loop].cpu() for t in selective_fit(*inputs)]
    agree = float((got[3].numpy() == want[3]).all(axis=1).mean())
    row = {"B": B, "N": N, "P": P, "fused_ms": r_fused["ms"], "vec_ms": r_vec["ms"], "loop_ms": loop_ms,
           "x_loop": loop_ms / r_fused["ms"], "x_vec": r_vec["ms"] / r_fused["ms"],
           "fused_extra_mb": r_fused["peak_extra_mb"], "vec_extra_mb": r_vec["peak_extra_mb"],
           "kept_agree": agree}
    cols = [("B", "B"), ("N", "N"), ("fused_ms", "fused ms"), ("vec_ms", "vectorised ms"),
            ("loop_ms", "NumPy loop ms"), ("x_loop", "x loop"), ("x_vec", "x vectorised"),
            ("fused_extra_mb", "fused MiB"), ("vec_extra_mb", "vectorised MiB"), ("kept_agree", "kept agree")]
    H.print_table(f"selective_fit float32 on {H.device_name(device)} (targets: CPU >=10x loop; "
                  f"GPU >=50x loop, >=5x vectorised)", [row], cols)
    return {"bench": "fit", "device": H.device_name(device), "device_type": device.type, "quick": quick,
            "rows": [row]}
