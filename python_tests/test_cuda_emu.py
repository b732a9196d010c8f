"""The emulated CUDA backend itself (pyface._C_emu, csrc/emu/): every kernel and dtype
launched, launcher branches the op tests cannot reach, shuffled schedules, and the
mutation check (faults injected into the emulated kernels must make comparisons fail).

Each case runs an op through its CUDA code path on the emulator and through the CPU
backend, and compares: the CPU kernels are tested against the references elsewhere.
Only with the emulation (not on a GPU: seeds and faults are the emulator's).
"""
import pytest
import torch
from conftest import EMULATED

import pyface.ops.cosine_dups as CD
from pyface.ops import _ext, cosine_duplicates, landmark_loss, lpmc_loss, pose_margin, selective_fit

pytestmark = [pytest.mark.emu,
              pytest.mark.skipif(not EMULATED, reason="needs the emulated CUDA backend (tools/emu_build.sh)")]


def _emu():
    return _ext.emu_module()


@pytest.fixture
def schedule():
    """Set the emulator's schedule seed / injected fault for one test, restored after."""
    emu = _emu()
    saved = emu.schedule_seed(), emu.fault()

    def set_(seed=None, fault=None):
        if seed is not None:
            emu.set_schedule_seed(seed)
        if fault is not None:
            emu.set_fault(fault)

    yield set_
    emu.set_schedule_seed(saved[0])
    emu.set_fault(saved[1])


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _lpmc(dtype):
    g = _gen(1)
    B, D, C = 9, 40, 70  # 70 classes in chunks of 33: three chunks, partial warps and tiles
    x = torch.randn(B, D, generator=g).to(dtype).requires_grad_()
    w = torch.randn(C, D, generator=g).to(dtype).requires_grad_()
    y = torch.randint(0, C, (B,), generator=g)
    y[3] = -1
    m = pose_margin(torch.randn(B, 3, generator=g) * 40)
    loss = lpmc_loss(x, w, y, m, margin_type="arc", chunk_size=33, reduction="none")
    loss.backward(torch.linspace(0.5, 1.5, B, dtype=loss.dtype))
    return loss.detach(), x.grad, w.grad


def _landmark(dtype, lambda_p="dynamic"):
    g = _gen(2)
    B = 7  # two blocks of four warps, the second with one warp left early
    target = torch.rand(B, 68, 2, generator=g) * 100
    pred = (target + torch.randn(B, 68, 2, generator=g) * 3).to(dtype).requires_grad_()
    pose = torch.randn(B, 3, generator=g) * 30
    loss, lam = landmark_loss(pred, target.to(dtype), pose.to(dtype), lambda_p=lambda_p, reduction="none",
                              return_lambda=True)
    loss.backward(torch.linspace(0.5, 1.5, B, dtype=loss.dtype))
    return loss.detach(), lam, pred.grad


def _selfit(dtype, N=9, B=23, P=68):
    g = _gen(3)
    base = torch.rand(B, 1, P, 2, generator=g, dtype=torch.float64) * 100
    scale = 20 * torch.rand(B, N, 1, 1, generator=g, dtype=torch.float64) ** 3
    samples = base + scale * torch.randn(B, N, P, 2, generator=g, dtype=torch.float64)
    poses = torch.randn(B, N, 3, generator=g, dtype=torch.float64) * 20
    valid = torch.rand(B, N, generator=g) >= 0.2
    samples[0, N // 2, 5, 1] = float("nan")
    poses[B - 1, 0, 2] = float("inf")
    face = 50 + 50 * torch.rand(B, generator=g, dtype=torch.float64)
    out = ()
    for t in (0.01, 0.02, 0.04):  # acceptance near the distances: a wrong distance flips some
        out += selective_fit(samples.to(dtype), poses.to(dtype), valid, face.to(dtype), threshold=t)
    return out


def _dups(dtype, monkeypatch=None):
    g = _gen(4)
    centres = torch.randn(3, 24, generator=g)
    a = (centres[torch.randint(0, 3, (61,), generator=g)] + 0.6 * torch.randn(61, 24, generator=g)).to(dtype)
    b = (centres[torch.randint(0, 3, (45,), generator=g)] + 0.6 * torch.randn(45, 24, generator=g)).to(dtype)
    a2, b2 = torch.randn(61, 9, generator=g).to(dtype), torch.randn(45, 9, generator=g).to(dtype)
    if monkeypatch is not None:  # force the output growth and the CUDA path's row retry
        monkeypatch.setattr(CD, "_initial_capacity", lambda na, nb: 5)
    out = []
    for args, kw in [((a, b, 0.4), {"tile_size": 16}), ((a, None, 0.4), {"tile_size": 16}),
                     ((a, b, 0.4), {"a2": a2, "b2": b2, "threshold2": 0.0, "tile_size": 16}),
                     ((a, None, 0.4), {"a2": a2, "threshold2": -0.1})]:
        pairs, sim, sim2 = cosine_duplicates(*args, **kw)
        out += [pairs, sim] + ([sim2] if sim2 is not None else [])
    return tuple(out)


def _rotation(dtype):
    pose = (torch.randn(37, 3, generator=_gen(5)) * 50).to(dtype)
    R = torch.ops.pyface.euler_to_matrix(pose)  # the kernels' rotation (CPU / CUDA backend)
    return (R,)


CASES = {
    "lpmc_fp32": lambda: _lpmc(torch.float32),
    "lpmc_fp64": lambda: _lpmc(torch.float64),
    "lpmc_bf16": lambda: _lpmc(torch.bfloat16),
    "landmark_fp32": lambda: _landmark(torch.float32),
    "landmark_fp64": lambda: _landmark(torch.float64),
    "landmark_fixed_fp32": lambda: _landmark(torch.float32, 0.5),
    "selfit_fp32": lambda: _selfit(torch.float32),
    "selfit_fp64": lambda: _selfit(torch.float64),
    "dups_fp32": lambda: _dups(torch.float32),
    "dups_fp16": lambda: _dups(torch.float16),
    "rotation_fp32": lambda: _rotation(torch.float32),
    "rotation_fp64": lambda: _rotation(torch.float64),
}
# Emulated vs CPU kernels: host libm on both sides, but different summation orders.
TOL = {torch.float64: 1e-10, torch.float32: 2e-4, torch.bfloat16: 3e-2, torch.float16: 3e-3}


def _close(a, b) -> bool:
    if a.dtype == torch.bool or not a.is_floating_point():
        return a.shape == b.shape and bool((a == b).all())
    if a.shape != b.shape:
        return False
    tol = TOL[a.dtype]
    a, b = a.double(), b.double()
    scale = max(b[torch.isfinite(b)].abs().max().item() if b.numel() and torch.isfinite(b).any() else 1.0, 1e-3)
    return bool(torch.allclose(a, b, atol=tol * scale, rtol=tol, equal_nan=True))


def _mismatches(names=CASES) -> list[str]:
    bad = []
    for name in names:
        torch.manual_seed(0)
        want = CASES[name]()
        torch.manual_seed(0)
        with _ext.emulate_cuda():
            try:
                got = CASES[name]()
            except (RuntimeError, ValueError):  # a launch failure (deadlock, bad collective) counts as caught
                bad.append(name)
                continue
        if not all(_close(g, w) for g, w in zip(got, want)):
            bad.append(name)
    return bad


def test_every_kernel_and_dtype_matches_cpu_and_is_launched():
    _emu().launch_stats(reset=True)
    assert _mismatches() == []
    launched = {(s["kernel"].split("<")[0], s["signature"]) for s in _emu().launch_stats()}
    kernels = {k for k, _ in launched}
    assert kernels == {"row_inv_norm_kernel", "lpmc_fwd_kernel", "lpmc_bwd_kernel", "lpmc_rowsum_kernel",
                       "landmark_fwd_kernel", "landmark_bwd_kernel", "euler_to_matrix_kernel",
                       "selective_fit_kernel", "dup_tile_kernel", "dup_second_kernel"}
    norm_inputs = {sig.split("(")[-1].split(",")[0] for k, sig in launched if k == "row_inv_norm_kernel"}
    assert norm_inputs == {"float const*", "double const*", "__half const*", "__nv_bfloat16 const*"}
    for k in kernels - {"row_inv_norm_kernel", "dup_tile_kernel", "dup_second_kernel"}:
        sigs = [sig for kk, sig in launched if kk == k]
        assert any("double" in s for s in sigs) and any("float" in s for s in sigs), (k, sigs)


def test_output_growth_and_retry_on_the_cuda_path(monkeypatch):
    want = _dups(torch.float32)
    with _ext.emulate_cuda():
        got = _dups(torch.float32, monkeypatch)
    assert all(_close(g, w) for g, w in zip(got, want))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_shuffled_schedules_give_the_same_results(schedule, seed):
    schedule(seed=seed)
    assert _mismatches() == []


@pytest.mark.parametrize("N", [1, 2, 3, 4, 5, 31, 33, 64])
def test_selective_fit_every_sample_count(N):
    want = _selfit(torch.float32, N=N, B=9, P=21)
    with _ext.emulate_cuda():
        got = _selfit(torch.float32, N=N, B=9, P=21)
    assert all(_close(g, w) for g, w in zip(got, want))


def test_launcher_limits_raise_before_any_launch():
    with _ext.emulate_cuda(), pytest.raises(ValueError, match="too many samples or points"):
        _selfit(torch.float64, N=11300, B=1)
    with pytest.raises(ValueError, match="at most 65535 rows"):
        emu = _emu()  # null pointers: the launcher must refuse before touching them
        emu.CudaKernels(0).dup_tile(emu.DupTileArgs(buf=None, ta=70000, tb=1, i0=0, j0=0, inv_a=None, inv_b=None,
                                                    threshold=0.5, self=False, pairs=None, sim=None, capacity=0,
                                                    counter=None))


# Mutation check: a broken warp reduction must break every op; barriers that vanish
# must be caught under at least one of a few schedules (a race shows only when a
# schedule exposes it: the poisoned shared memory then reads as NaN).
def test_broken_warp_reduction_is_caught(schedule):
    schedule(fault="shuffle")
    bad = set(_mismatches(["lpmc_fp32", "landmark_fp32", "landmark_fixed_fp32", "selfit_fp32", "dups_fp32"]))
    assert bad == {"lpmc_fp32", "landmark_fp32", "landmark_fixed_fp32", "selfit_fp32", "dups_fp32"}


def test_missing_syncthreads_is_caught(schedule):
    caught = set()
    for seed in (-1, 1, 2, 3):
        schedule(seed=seed, fault="syncthreads")
        caught |= set(_mismatches(["lpmc_fp32", "landmark_fp32"]))
    assert caught == {"lpmc_fp32", "landmark_fp32"}
