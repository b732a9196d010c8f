"""selective_fit against the per-image NumPy loop (the rules verbatim) and the
vectorised PyTorch reference."""
import pytest
import torch
from conftest import devices

from pyface.ops import selective_fit
from pyface.ops.reference import selective_fit_loop_reference, selective_fit_reference

# Kernel comparisons run once per CPU instruction-set path (conftest.cpu_isa).
pytestmark = pytest.mark.cpu_kernels


def _data(B, N, P=68, *, spread=20.0, dtype=torch.float64, device="cpu", nan_frac=0.0, invalid_frac=0.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(B, 1, P, 2, generator=g, dtype=torch.float64) * 100
    # Heavy-tailed per-sample scales: some samples are clear outliers.
    scale = spread * torch.rand(B, N, 1, 1, generator=g, dtype=torch.float64) ** 3
    samples = base + scale * torch.randn(B, N, P, 2, generator=g, dtype=torch.float64)
    poses = torch.randn(B, N, 3, generator=g, dtype=torch.float64) * 20
    valid = torch.rand(B, N, generator=g) >= invalid_frac
    if nan_frac:
        bad = torch.rand(B, N, generator=g) < nan_frac
        pts = torch.randint(0, P, (B, N), generator=g)
        for b, s in bad.nonzero().tolist():
            if (b + s) % 2:
                samples[b, s, pts[b, s], 0] = float("nan")
            else:
                poses[b, s, (b + s) % 3] = float("inf")
    face_size = 50 + 50 * torch.rand(B, generator=g, dtype=torch.float64)
    return [t.to(device=device, dtype=dtype if t.is_floating_point() else t.dtype)
            for t in (samples, poses, valid, face_size)]


def _loop(samples, poses, valid, face_size, **kw):
    out = selective_fit_loop_reference(*(t.cpu().double().numpy() if t.is_floating_point() else t.cpu().numpy()
                                         for t in (samples, poses, valid, face_size)), **kw)
    return [torch.from_numpy(o) for o in out]


def _assert_matches(got, want, atol):
    lm, po, acc, kept = (t.cpu() for t in got)
    wlm, wpo, wacc, wkept = want
    assert torch.equal(kept, wkept)
    assert torch.equal(acc, wacc)
    torch.testing.assert_close(lm.double(), wlm, atol=atol, rtol=0, equal_nan=True)
    torch.testing.assert_close(po.double(), wpo, atol=atol, rtol=0, equal_nan=True)


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("B,N,keep,min_samples,threshold", [(37, 9, 3, 2, 0.01), (9, 64, 3, 2, 7e-5),
                                                             (13, 17, 1, 1, 0.01), (11, 4, 5, 3, 0.01),
                                                             (7, 1, 3, 1, 0.01)])
def test_matches_loop_reference_float64(device, B, N, keep, min_samples, threshold):
    args = _data(B, N, device=device, nan_frac=0.1, invalid_frac=0.15, seed=B * N)
    kw = dict(threshold=threshold, keep=keep, min_samples=min_samples)
    want = _loop(*args, **kw)
    _assert_matches(selective_fit(*args, **kw), want, 1e-9)
    # Both accepted and rejected images are exercised.
    if N >= keep + 2 and keep > 1:
        assert 0 < int(want[2].sum()) < B


@pytest.mark.parametrize("device", devices())
def test_float32_and_vectorised_reference(device):
    args = _data(200, 16, dtype=torch.float32, device=device, nan_frac=0.05, invalid_frac=0.1, seed=3)
    kw = dict(threshold=0.03, keep=3, min_samples=2)
    want = _loop(*args, **kw)
    got = selective_fit(*args, **kw)
    assert got[0].dtype == torch.float32
    _assert_matches(got, want, 1e-3)
    _assert_matches(selective_fit_reference(*args, **kw), want, 1e-3)


@pytest.mark.parametrize("device", devices())
def test_vectorised_reference_matches_loop_float64(device):
    args = _data(50, 12, P=7, device=device, nan_frac=0.1, invalid_frac=0.2, seed=5)
    kw = dict(threshold=0.04, keep=2, min_samples=2)
    _assert_matches(selective_fit_reference(*args, **kw), _loop(*args, **kw), 1e-9)


@pytest.mark.parametrize("device", devices())
def test_empty_and_tiny_sets(device):
    samples, poses, valid, fs = _data(4, 5, device=device)
    valid[0] = False                      # empty S
    valid[1] = torch.tensor([False, True, False, False, False])  # |S| = 1 < min_samples
    samples[2, :3, 0, 0] = float("nan")   # only two finite samples
    # the stricter rule (min_samples 2); the paper's default accepts |S| = 1 (test_paper_fidelity)
    lm, po, acc, kept = selective_fit(samples, poses, valid, fs, threshold=1.0, min_samples=2)
    assert torch.isnan(lm[0]).all() and torch.isnan(po[0]).all() and not acc[0] and not kept[0].any()
    assert not acc[1] and kept[1].tolist() == valid[1].tolist()
    torch.testing.assert_close(lm[1], samples[1, 1])
    torch.testing.assert_close(po[1], poses[1, 1])
    assert kept[2].tolist() == [False, False, False, True, True] and bool(acc[2])
    torch.testing.assert_close(lm[2], samples[2, 3:].mean(0))
    assert bool(acc[3]) and int(kept[3].sum()) == 3


@pytest.mark.parametrize("device", devices())
def test_ties_keep_lowest_index(device):
    # Samples 0..3 identical, 4 and 5 identical outliers: the outliers go first,
    # then (all tied) the lowest indices, leaving the last `keep` identical ones.
    P = 68
    base = torch.rand(P, 2, dtype=torch.float64) * 100
    samples = base.expand(1, 6, P, 2).clone().to(device)
    samples[0, 4:] += 30.0
    poses = torch.arange(18, dtype=torch.float64, device=device).view(1, 6, 3)
    valid = torch.ones(1, 6, dtype=torch.bool, device=device)
    fs = torch.full((1,), 80.0, dtype=torch.float64, device=device)
    lm, po, acc, kept = selective_fit(samples, poses, valid, fs, keep=3)
    want = _loop(samples, poses, valid, fs, keep=3)
    _assert_matches((lm, po, acc, kept), want, 1e-9)
    # Removal order: 4 (tie with 5, lowest index), then 5, then 0 (all tied).
    assert kept[0].tolist() == [False, True, True, True, False, False]
    assert bool(acc[0])
    # All six identical: the three lowest indices leave.
    samples[0, 4:] = samples[0, 0]
    kept = selective_fit(samples, poses, valid, fs, keep=3)[3]
    assert kept[0].tolist() == [False, False, False, True, True, True]


@pytest.mark.parametrize("device", devices())
def test_threshold_decides_acceptance(device):
    samples, poses, valid, fs = _data(30, 8, device=device, seed=9)
    lm, _, _, kept = selective_fit(samples, poses, valid, fs, threshold=10.0)
    d = (samples - lm[:, None]).norm(dim=-1).mean(-1) / fs[:, None]
    dmax = torch.where(kept, d, torch.zeros_like(d)).amax(1)
    srt = dmax.sort().values
    t = float(srt[14] + srt[15]) / 2  # halfway between two images: no rounding ties
    acc = selective_fit(samples, poses, valid, fs, threshold=t)[2]
    assert torch.equal(acc.cpu(), (dmax <= t).cpu())


def test_large_batch_cpu_matches_vectorised():
    args = _data(2000, 16, P=20, dtype=torch.float64, nan_frac=0.02, invalid_frac=0.05, seed=11)
    kw = dict(threshold=0.03)
    got, want = selective_fit(*args, **kw), selective_fit_reference(*args, **kw)
    assert torch.equal(got[3], want[3]) and torch.equal(got[2], want[2])
    torch.testing.assert_close(got[0], want[0], atol=1e-9, rtol=0, equal_nan=True)


def test_deterministic_and_thread_independent():
    args = _data(500, 16, dtype=torch.float32, seed=2)
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        a = selective_fit(*args)
        torch.set_num_threads(max(2, old))
        b = selective_fit(*args)
    finally:
        torch.set_num_threads(old)
    for x, y in zip(a, b):
        assert torch.equal(x, y) if x.dtype == torch.bool else torch.equal(x.nan_to_num(), y.nan_to_num())


def test_half_inputs_and_opcheck():
    samples, poses, valid, fs = _data(6, 5, P=10, dtype=torch.float32, seed=4)
    lm = selective_fit(samples.half(), poses.half(), valid, fs)[0]
    assert lm.dtype == torch.float32
    torch.library.opcheck(torch.ops.pyface.selective_fit, (samples, poses, valid, fs, 0.05, 3, 2))


def test_bad_inputs():
    samples, poses, valid, fs = _data(3, 4, P=5, dtype=torch.float32)
    with pytest.raises(ValueError, match="samples"):
        selective_fit(samples[..., :1], poses, valid, fs)
    with pytest.raises(ValueError, match="poses"):
        selective_fit(samples, poses[:, :3], valid, fs)
    with pytest.raises(TypeError, match="valid"):
        selective_fit(samples, poses, valid.float(), fs)
    with pytest.raises(ValueError, match="face_size"):
        selective_fit(samples, poses, valid, fs[:2])
    with pytest.raises(ValueError, match="face_size"):
        selective_fit(samples, poses, valid, torch.tensor([1.0, 0.0, 2.0]))
    with pytest.raises(ValueError, match="threshold"):
        selective_fit(samples, poses, valid, fs, threshold=-0.1)
    with pytest.raises(ValueError, match="keep"):
        selective_fit(samples, poses, valid, fs, keep=0)
    with pytest.raises(ValueError, match="min_samples"):
        selective_fit(samples, poses, valid, fs, keep=2, min_samples=3)
    with pytest.raises(TypeError, match="keep"):
        selective_fit(samples, poses, valid, fs, keep=2.0)
