"""Cosine duplicate search (``pyface bench dups``): the tiled op vs a blocked
PyTorch reference (matmul + nonzero per row block) and, on CPU, faiss-cpu
``IndexFlatIP.range_search`` on the same number of threads (normalisation and
index building included, as the op normalises inside); on CUDA also the time of
the bare blocked matrix product (the floor of any unfused design).

The embeddings are random with a fraction of b's rows being noisy copies of a's
rows (duplicate identities), so that the threshold yields realistic pair counts."""
from __future__ import annotations

import torch

from pyface.benchmarks import _harness as H
from pyface.ops import cosine_duplicates
from pyface.ops.reference import cosine_duplicates_blocked_reference

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def add_arguments(p):
    p.add_argument("--n", type=int, default=None, help="Na = Nb (default CPU 20000, CUDA 100000; --quick 4000)")
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--dtype", default=None, choices=sorted(DTYPES), help="default CPU fp32, CUDA bf16")
    p.add_argument("--iters", type=int, default=None)
    p.add_argument("--no-faiss", action="store_true")


def make_inputs(n, d, device, dtype, dup_frac=0.05, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, d, generator=g)
    b = torch.randn(n, d, generator=g)
    k = int(n * dup_frac)
    src = torch.randint(0, n, (k,), generator=g)
    b[:k] = a[src] + 0.7 * torch.randn(k, d, generator=g)
    return a.to(device=device, dtype=dtype), b.to(device=device, dtype=dtype)


def _faiss_search(a, b, t):
    import faiss
    import numpy as np

    faiss.omp_set_num_threads(torch.get_num_threads())
    an = np.ascontiguousarray(a.float().numpy())
    bn = np.ascontiguousarray(b.float().numpy())
    an, bn = an.copy(), bn.copy()
    faiss.normalize_L2(an)
    faiss.normalize_L2(bn)
    index = faiss.IndexFlatIP(bn.shape[1])
    index.add(bn)
    lims, _, _ = index.range_search(an, t)
    return int(lims[-1])


def _bare_product(a, b, block):
    out = torch.empty(block, b.shape[0], dtype=a.dtype, device=a.device)

    def step():
        for i0 in range(0, a.shape[0], block):
            x = a[i0:i0 + block]
            torch.mm(x, b.t(), out=out[: x.shape[0]])

    return step


def run(args) -> dict:
    device = torch.device(args.device or H.default_device())
    cuda = device.type == "cuda"
    n = args.n or (4000 if args.quick else (100_000 if cuda else 20_000))
    dname = args.dtype or ("bf16" if cuda else "fp32")
    dtype = DTYPES[dname]
    iters = args.iters or (1 if not cuda else 5)
    t = args.threshold
    a, b = make_inputs(n, args.dim, device, dtype)
    res = {}
    k_op = len(cosine_duplicates(a, b, t)[0])
    res["op"] = H.measure(lambda: cosine_duplicates(a, b, t), device, iters=iters, warmup=1 if cuda else 0)
    block = 8192 if cuda else 2048
    k_ref = len(cosine_duplicates_blocked_reference(a, b, t, block=block)[0])
    res["ref"] = H.measure(lambda: cosine_duplicates_blocked_reference(a, b, t, block=block), device, iters=iters,
                           warmup=1 if cuda else 0)
    row = {"n": n, "D": args.dim, "dtype": dname, "K": k_op, "K_ref": k_ref,
           "op_ms": res["op"]["ms"], "ref_ms": res["ref"]["ms"], "x_ref": res["ref"]["ms"] / res["op"]["ms"],
           "op_extra_mb": res["op"]["peak_extra_mb"], "ref_extra_mb": res["ref"]["peak_extra_mb"]}
    cols = [("n", "Na=Nb"), ("D", "D"), ("dtype", "dtype"), ("K", "pairs"), ("op_ms", "op ms"),
            ("ref_ms", "blocked ref ms"), ("x_ref", "x ref")]
    if not cuda and not args.no_faiss:
        try:
            k_faiss = _faiss_search(a, b, t)
            r = H.measure(lambda: _faiss_search(a, b, t), device, iters=iters, warmup=0)
            row.update(faiss_ms=r["ms"], K_faiss=k_faiss, x_faiss=r["ms"] / res["op"]["ms"],
                       faiss_extra_mb=r["peak_extra_mb"])
            cols += [("faiss_ms", "faiss ms"), ("x_faiss", "x faiss"), ("K_faiss", "faiss pairs")]
        except ImportError:
            print("faiss not installed: skipping the faiss-cpu comparison")
    if cuda:
        r = H.measure(_bare_product(a, b, block), device, iters=iters)
        row.update(bare_ms=r["ms"], op_over_bare=res["op"]["ms"] / r["ms"])
        cols += [("bare_ms", "bare GEMM ms"), ("op_over_bare", "op/GEMM")]
    cols += [("op_extra_mb", "op MiB"), ("ref_extra_mb", "ref MiB")]
    target = "GPU >=3x blocked ref, <=1.5x bare GEMM" if cuda else "CPU >= faiss-cpu speed"
    H.print_table(f"cosine_duplicates threshold={t} on {H.device_name(device)} (target: {target})", [row], cols)
    return {"bench": "dups", "device": H.device_name(device), "device_type": device.type, "quick": args.quick,
            "rows": [row]}
