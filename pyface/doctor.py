"""``pyface doctor`` / ``python -m pyface.doctor``: what this installation is and
whether its CUDA kernels compute what the references compute here.

Prints torch / CUDA / driver / device / compute capability, pyface's build info
(backends, CUDA architectures compiled, everything pyface.ops._ext reports), then runs
every op's CUDA path on small inputs against its pure-PyTorch reference and prints
OK or MISMATCH with the error size. Without a GPU it says so; with ``--emulate`` (or
PYFACE_EMULATE_CUDA=1) it runs the emulated CUDA kernels (pyface._C_emu) instead.
Exit status: 0 all OK, 1 a mismatch or an error, 2 no CUDA path to check.
"""
from __future__ import annotations

import argparse
import platform
import sys
import traceback

import torch

from pyface.ops import _ext
from pyface.ops import reference as R
from pyface.ops.cosine_dups import cosine_duplicates
from pyface.ops.landmark import landmark_loss
from pyface.ops.lpmc import lpmc_loss, pose_margin
from pyface.ops.selective_fit import selective_fit


def environment() -> dict:
    info = {"python": platform.python_version(), "platform": platform.platform(), "torch": torch.__version__,
            "torch CUDA": torch.version.cuda or "none (CPU build)", "CUDA available": torch.cuda.is_available()}
    if torch.cuda.is_available():
        get_driver = getattr(torch._C, "_cuda_getDriverVersion", None)
        if get_driver is not None:
            v = int(get_driver())
            info["driver (CUDA API)"] = f"{v // 1000}.{v % 1000 // 10}"
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            info[f"device {i}"] = (f"{p.name}, compute capability {p.major}.{p.minor}, "
                                   f"{p.total_memory / 2**30:.1f} GiB, {p.multi_processor_count} SMs")
    return info


def build_info() -> dict:
    C = _ext._C
    info = {"module": getattr(C, "__file__", "?"), "CUDA backend compiled": bool(C.with_cuda),
            "CUDA architectures": getattr(C, "cuda_architectures", "n/a" if not C.with_cuda else "unknown")}
    extra = getattr(_ext, "build_info", None)  # whatever the extension reports about itself
    if callable(extra):
        extra = extra()
    if isinstance(extra, dict):
        info.update(extra)
    if _ext.emulation_available():
        emu = _ext.emu_module()
        info["emulated CUDA backend"] = f"{getattr(emu, '__file__', '?')} ({emu.variant})"
    else:
        info["emulated CUDA backend"] = "not built (tools/emu_build.sh)"
    return info


def _err(got: torch.Tensor, want: torch.Tensor) -> float:
    """Largest absolute difference relative to the reference's largest magnitude."""
    got, want = got.detach().double().cpu(), want.detach().double().cpu()
    if got.shape != want.shape:
        return float("inf")
    if got.numel() == 0:
        return 0.0
    both_nan = torch.isnan(got) & torch.isnan(want)
    d = (got - want).abs().masked_fill(both_nan, 0.0)
    return float(d.max() / max(want[~torch.isnan(want)].abs().max().item() if (~torch.isnan(want)).any() else 1.0,
                                1e-6))


def _lpmc(dev, dtype, margin_type, chunk):
    g = torch.Generator().manual_seed(0)
    B, D, C = 37, 64, 300
    x = torch.randn(B, D, generator=g).to(dtype)  # the reference sees the same rounded inputs
    w = torch.randn(C, D, generator=g).to(dtype)
    y = torch.randint(0, C, (B,), generator=g)
    y[5] = -1
    m = pose_margin(torch.randn(B, 3, generator=g) * 40)
    xk, wk = x.to(dev, copy=True).requires_grad_(), w.to(dev, copy=True).requires_grad_()
    loss = lpmc_loss(xk, wk, y.to(dev), m.to(dev), margin_type=margin_type, chunk_size=chunk)
    loss.backward()
    xr, wr = x.double().requires_grad_(), w.double().requires_grad_()
    ref = R.lpmc_loss_reference(xr, wr, y, m.double(), margin_type=margin_type)
    ref.backward()
    return max(_err(loss, ref), _err(xk.grad, xr.grad), _err(wk.grad, wr.grad))


def _landmark(dev, dtype, lambda_p):
    g = torch.Generator().manual_seed(1)
    B = 29
    target = (torch.rand(B, 68, 2, generator=g) * 100).to(dtype)
    pred = (target + torch.randn(B, 68, 2, generator=g) * 3).to(dtype)
    pose = (torch.randn(B, 3, generator=g) * 30).to(dtype)
    pk = pred.to(dev, copy=True).requires_grad_()
    loss = landmark_loss(pk, target.to(dev), pose.to(dev), lambda_p=lambda_p, reduction="none")
    loss.sum().backward()
    pr = pred.double().requires_grad_()
    ref = R.landmark_loss_reference(pr, target.double(), pose.double(), lambda_p=lambda_p, reduction="none")
    ref.sum().backward()
    return max(_err(loss, ref), _err(pk.grad, pr.grad))


def _selfit(dev, dtype):
    g = torch.Generator().manual_seed(2)
    B, N, P = 21, 7, 68
    samples = torch.rand(B, 1, P, 2, generator=g) * 100 + torch.randn(B, N, P, 2, generator=g) * 2
    poses = torch.randn(B, N, 3, generator=g) * 20
    valid = torch.rand(B, N, generator=g) > 0.2
    face = 50 + 50 * torch.rand(B, generator=g)
    got = selective_fit(samples.to(dev, dtype), poses.to(dev, dtype), valid.to(dev), face.to(dev, dtype))
    want = R.selective_fit_reference(samples.double(), poses.double(), valid, face.double())
    flags = [float(not torch.equal(got[i].cpu(), want[i])) * float("inf") for i in (2, 3)]
    return max([_err(got[0], want[0]), _err(got[1], want[1])] + [f for f in flags if f])


def _dups(dev, dtype, two):
    g = torch.Generator().manual_seed(3)
    c = torch.randn(4, 32, generator=g)
    a = c[torch.randint(0, 4, (150,), generator=g)] + 0.5 * torch.randn(150, 32, generator=g)
    b = c[torch.randint(0, 4, (90,), generator=g)] + 0.5 * torch.randn(90, 32, generator=g)
    a2, b2 = torch.randn(150, 16, generator=g), torch.randn(90, 16, generator=g)
    kw = {"a2": a2.to(dev, dtype), "b2": b2.to(dev, dtype), "threshold2": 0.0} if two else {}
    got = cosine_duplicates(a.to(dev, dtype), b.to(dev, dtype), 0.6, **kw)
    want = R.cosine_duplicates_reference(a.to(dtype), b.to(dtype), 0.6, **({"a2": a2.to(dtype), "b2": b2.to(dtype),
                                                                           "threshold2": 0.0} if two else {}))
    # Pairs within rounding of the threshold may differ; all others must agree.
    if got[0].shape != want[0].shape or not torch.equal(got[0].cpu(), want[0]):
        return float("inf")
    return max(_err(got[1], want[1]), _err(got[2], want[2]) if two else 0.0)


# (op, case, tolerance on the relative error, fn(device)); tolerances as in the tests.
CHECKS = [
    ("lpmc_loss", "cosine fp32, 3 chunks, ignore_index", 1e-4, lambda d: _lpmc(d, torch.float32, "cosine", 128)),
    ("lpmc_loss", "arc fp32", 1e-4, lambda d: _lpmc(d, torch.float32, "arc", 300)),
    ("lpmc_loss", "arc fp64", 1e-10, lambda d: _lpmc(d, torch.float64, "arc", 100)),
    ("lpmc_loss", "cosine bf16 (fp32 products)", 3e-2, lambda d: _lpmc(d, torch.bfloat16, "cosine", 128)),
    ("landmark_loss", "dynamic lambda fp32", 1e-4, lambda d: _landmark(d, torch.float32, "dynamic")),
    ("landmark_loss", "fixed lambda fp64", 1e-10, lambda d: _landmark(d, torch.float64, 0.5)),
    ("landmark_loss", "dynamic lambda fp16 input", 1e-3, lambda d: _landmark(d, torch.float16, "dynamic")),
    ("selective_fit", "fp32", 1e-4, lambda d: _selfit(d, torch.float32)),
    ("selective_fit", "fp64", 1e-10, lambda d: _selfit(d, torch.float64)),
    ("cosine_duplicates", "fp32 one space", 1e-4, lambda d: _dups(d, torch.float32, False)),
    ("cosine_duplicates", "fp16 two spaces", 2e-3, lambda d: _dups(d, torch.float16, True)),
]


def run_checks(device: torch.device, out=None) -> int:
    """Every check on ``device``'s CUDA path; returns the number of failures."""
    out = out or sys.stdout
    failures = 0
    for op, case, tol, fn in CHECKS:
        try:
            err = fn(device)
            ok = err <= tol
            line = f"{'OK' if ok else 'MISMATCH':<9} {op:<18} {case:<36} max rel. error {err:.2e} (tolerance {tol:.0e})"
        except Exception as exc:  # report and go on: the point is a full picture
            ok = False
            line = f"{'ERROR':<9} {op:<18} {case:<36} {type(exc).__name__}: {exc}"
            if "--traceback" in sys.argv:
                traceback.print_exc()
        failures += not ok
        print(line, file=out)
    return failures


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="pyface doctor", description=__doc__.splitlines()[0])
    p.add_argument("--emulate", action="store_true",
                   help="no GPU needed: check the emulated CUDA kernels (pyface._C_emu, tools/emu_build.sh)")
    p.add_argument("--traceback", action="store_true", help="print the traceback of a check that raised")
    args = p.parse_args(argv)
    print("== environment")
    for k, v in environment().items():
        print(f"{k:>26}: {v}")
    print("== pyface build")
    for k, v in build_info().items():
        print(f"{k:>26}: {v}")
    from pyface.opencv_dists import report as opencv_report

    print("== OpenCV (cv2)")
    for line in opencv_report():
        print(f"{'':>26}  {line}")
    if _ext.cuda_available() and not args.emulate:
        device, what = torch.device("cuda"), f"GPU {torch.cuda.get_device_name()}"
        ctx = _ext.emulate_cuda(False)
    elif args.emulate or _ext.emulating():
        if not _ext.emulation_available():
            print("== no CUDA path to check: pyface._C_emu is not built (tools/emu_build.sh)")
            return 2
        device, what = torch.device("cpu"), "the CPU emulator (pyface._C_emu): kernels, not GPU numerics"
        ctx = _ext.emulate_cuda(True)
    else:
        why = ("pyface was built without its CUDA backend" if not _ext._C.with_cuda
               else "torch sees no GPU")
        print(f"== no CUDA path to check: {why}; `pyface doctor --emulate` runs the emulated kernels")
        return 2
    print(f"== CUDA path vs references, on {what}")
    with ctx:
        failures = run_checks(device)
    print(f"== {len(CHECKS) - failures} of {len(CHECKS)} checks OK")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
