"""cosine_duplicates against brute force (the full cosine matrix in float64)."""
import numpy as np
import pytest
import torch
from conftest import devices

import pyface.ops.cosine_dups as CD
from pyface.ops import cosine_duplicates
from pyface.ops.reference import cosine_duplicates_blocked_reference, cosine_duplicates_reference

# Kernel comparisons run once per CPU instruction-set path (conftest.cpu_isa).
pytestmark = pytest.mark.cpu_kernels

NEAR = 1e-4  # pairs this close to a threshold may go either way


def _cos(x, y, i, j):
    x = torch.nn.functional.normalize(x.double().cpu(), dim=1)
    y = torch.nn.functional.normalize(y.double().cpu(), dim=1)
    return (x[i] * y[j]).sum(1)


def _assert_same_pairs(got, want, a, b, t, a2=None, b2=None, t2=None, sim_atol=1e-5):
    gp, gs, gs2 = got
    wp, ws, ws2 = want
    gp = gp.cpu()
    assert gp.dtype == torch.int64 and gs.dtype == torch.float32
    # Sorted by (i, j) and unique.
    if len(gp) > 1:
        key = gp[:, 0] * (10 ** 9) + gp[:, 1]
        assert bool((key[1:] > key[:-1]).all())
    gset = set(map(tuple, gp.tolist()))
    wset = set(map(tuple, wp.tolist()))
    b = a if b is None else b
    b2 = a2 if b2 is None else b2
    for i, j in gset ^ wset:  # only near-threshold pairs may differ
        i_, j_ = torch.tensor([i]), torch.tensor([j])
        near = abs(float(_cos(a, b, i_, j_)) - t) < NEAR
        if a2 is not None:
            near |= abs(float(_cos(a2, b2, i_, j_)) - t2) < NEAR
        assert near, f"pair {(i, j)} differs from brute force"
    if len(gp):
        torch.testing.assert_close(gs.cpu().double(), _cos(a, b, gp[:, 0], gp[:, 1]), atol=sim_atol, rtol=0)
        if a2 is not None:
            torch.testing.assert_close(gs2.cpu().double(), _cos(a2, b2, gp[:, 0], gp[:, 1]), atol=sim_atol, rtol=0)
    assert (gs2 is None) == (a2 is None)


def _clustered(n, d, *, ids=None, noise=0.6, seed=0, dtype=torch.float32, device="cpu"):
    """Embeddings around a few identities, so that thresholds split the pairs."""
    g = torch.Generator().manual_seed(seed)
    ids = ids or max(2, n // 8)
    centres = torch.randn(ids, d, generator=g)
    lab = torch.randint(0, ids, (n,), generator=g)
    return (centres[lab] + noise * torch.randn(n, d, generator=g)).to(device=device, dtype=dtype)


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("na,nb,d,tile", [(123, 77, 33, 32), (300, 260, 64, None), (5, 400, 7, 64),
                                          (129, 1, 16, 16)])
def test_cross_search_matches_brute_force(device, na, nb, d, tile):
    a = _clustered(na, d, seed=na, device=device)
    b = _clustered(nb, d, seed=nb + 1, device=device)
    t = 0.35
    want = cosine_duplicates_reference(a, b, t)
    assert 0 < len(want[0]) < na * nb
    _assert_same_pairs(cosine_duplicates(a, b, t, tile_size=tile), want, a, b, t)


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("n,tile", [(200, 48), (97, None), (64, 64), (2, 1)])
def test_self_search_matches_brute_force(device, n, tile):
    a = _clustered(n, 24, ids=10, seed=n, device=device)
    t = 0.4
    got = cosine_duplicates(a, None, t, tile_size=tile)
    assert bool((got[0][:, 0] < got[0][:, 1]).all())
    _assert_same_pairs(got, cosine_duplicates_reference(a, None, t), a, None, t)


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("self_search", [False, True])
def test_two_spaces(device, self_search):
    a, a2 = _clustered(150, 32, seed=1, device=device), _clustered(150, 20, seed=2, device=device)
    b = None if self_search else _clustered(170, 32, seed=3, device=device)
    b2 = None if self_search else _clustered(170, 20, seed=4, device=device)
    t, t2 = 0.2, 0.1
    got = cosine_duplicates(a, b, t, a2=a2, b2=b2, threshold2=t2, tile_size=40)
    want = cosine_duplicates_reference(a, b, t, a2=a2, b2=b2, threshold2=t2)
    one = cosine_duplicates_reference(a, b, t)
    assert 0 < len(want[0]) < len(one[0])  # the second space removes some pairs
    _assert_same_pairs(got, want, a, b, t, a2, b2, t2)


@pytest.mark.parametrize("device", devices())
def test_output_grows_when_full(device, monkeypatch):
    monkeypatch.setattr(CD, "_initial_capacity", lambda na, nb: 3)
    a = _clustered(90, 16, ids=3, seed=7, device=device)
    b = _clustered(70, 16, ids=3, seed=8, device=device)
    for args in [(a, b, 0.3), (a, None, 0.3)]:
        got = cosine_duplicates(*args, tile_size=32)
        _assert_same_pairs(got, cosine_duplicates_reference(*args), args[0], args[1], args[2])
    a2, b2 = _clustered(90, 8, seed=9, device=device), _clustered(70, 8, seed=10, device=device)
    got = cosine_duplicates(a, b, 0.3, a2=a2, b2=b2, threshold2=0.0, tile_size=32)
    _assert_same_pairs(got, cosine_duplicates_reference(a, b, 0.3, a2=a2, b2=b2, threshold2=0.0), a, b, 0.3,
                       a2, b2, 0.0)


@pytest.mark.parametrize("device", devices())
def test_empty_all_and_zero_rows(device):
    a = torch.randn(40, 8, device=device)
    b = torch.randn(30, 8, device=device)
    p, s, s2 = cosine_duplicates(a, b, 1.0)
    # Only exact duplicates could reach 1.0; random rows give none.
    assert p.shape == (0, 2) and s.shape == (0,) and s2 is None
    p, s, _ = cosine_duplicates(a, b, -1.0, tile_size=16)
    assert p.shape == (40 * 30, 2)
    assert torch.equal(p.cpu(), torch.cartesian_prod(torch.arange(40), torch.arange(30)))
    p, _, _ = cosine_duplicates(a, None, -1.0, tile_size=16)
    assert len(p) == 40 * 39 // 2
    for x, y in [(a[:0], b), (a, b[:0]), (a[:0], None)]:
        p, s, _ = cosine_duplicates(x, y, 0.0)
        assert p.shape == (0, 2) and s.shape == (0,)
    # Exact duplicates are found at threshold 1 - eps.
    b[3] = a[5] * 2.0
    p, s, _ = cosine_duplicates(a, b, 0.9999)
    assert [5, 3] in p.tolist()


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_low_precision_inputs(device, dtype):
    a = _clustered(100, 40, seed=11, dtype=dtype, device=device)
    b = _clustered(90, 40, seed=12, dtype=dtype, device=device)
    t = 0.35
    got = cosine_duplicates(a, b, t, tile_size=32)
    want = cosine_duplicates_reference(a, b, t)
    _assert_same_pairs(got, want, a, b, t, sim_atol=2e-3 if dtype != torch.float64 else 1e-5)


def test_numpy_inputs_via_dlpack():
    a = _clustered(60, 12, seed=13).numpy()
    b = _clustered(50, 12, seed=14).numpy()
    got = cosine_duplicates(a, b, 0.3)
    _assert_same_pairs(got, cosine_duplicates_reference(torch.from_numpy(a), torch.from_numpy(b), 0.3),
                       torch.from_numpy(a), torch.from_numpy(b), 0.3)
    got = cosine_duplicates(np.asfortranarray(a), None, 0.3)  # non-contiguous
    assert len(got[0]) == len(cosine_duplicates_reference(torch.from_numpy(a), None, 0.3)[0])


def test_blocked_reference_matches_brute_force():
    a, b = _clustered(130, 16, seed=15), _clustered(70, 16, seed=16)
    for y in (b, None):
        p, s = cosine_duplicates_blocked_reference(a, y, 0.3, block=50)
        _assert_same_pairs((p, s, None), cosine_duplicates_reference(a, y, 0.3), a, y, 0.3)


def test_thread_count_does_not_change_result():
    a, b = _clustered(200, 16, seed=17), _clustered(300, 16, seed=18)
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        r1 = cosine_duplicates(a, b, 0.3)
        torch.set_num_threads(max(2, old))
        r2 = cosine_duplicates(a, b, 0.3)
    finally:
        torch.set_num_threads(old)
    assert torch.equal(r1[0], r2[0]) and torch.equal(r1[1], r2[1])


def test_bad_inputs():
    a, b = torch.randn(10, 8), torch.randn(12, 8)
    with pytest.raises(ValueError, match="b must have shape"):
        cosine_duplicates(a, torch.randn(12, 9), 0.5)
    with pytest.raises(ValueError, match="threshold"):
        cosine_duplicates(a, b, 1.5)
    with pytest.raises(ValueError, match="threshold"):
        cosine_duplicates(a, b, -1.01)
    bad = a.clone()
    bad[3] = 0
    with pytest.raises(ValueError, match="a has rows of zero norm"):
        cosine_duplicates(bad, b, 0.5)
    bad = b.clone()
    bad[2, 1] = float("nan")
    with pytest.raises(ValueError, match="b has non-finite"):
        cosine_duplicates(a, bad, 0.5)
    a2, b2 = torch.randn(10, 4), torch.randn(12, 4)
    with pytest.raises(ValueError, match="b2"):
        cosine_duplicates(a, b, 0.5, a2=a2, threshold2=0.5)
    with pytest.raises(ValueError, match="a2"):
        cosine_duplicates(a, b, 0.5, b2=b2, threshold2=0.5)
    with pytest.raises(ValueError, match="threshold2"):
        cosine_duplicates(a, b, 0.5, a2=a2, b2=b2)
    with pytest.raises(ValueError, match="threshold2"):
        cosine_duplicates(a, b, 0.5, a2=a2, b2=b2, threshold2=2.0)
    with pytest.raises(ValueError, match="a2"):
        cosine_duplicates(a, b, 0.5, a2=a2[:5], b2=b2, threshold2=0.5)
    with pytest.raises(ValueError, match="b2"):
        cosine_duplicates(a, b, 0.5, a2=a2, b2=torch.randn(12, 5), threshold2=0.5)
    bad2 = b2.clone()
    bad2[0] = float("inf")
    with pytest.raises(ValueError, match="b2 has non-finite"):
        cosine_duplicates(a, b, 0.5, a2=a2, b2=bad2, threshold2=0.5)
    with pytest.raises(TypeError, match="b"):
        cosine_duplicates(a, b.half(), 0.5)
    with pytest.raises(TypeError, match="a"):
        cosine_duplicates([[1.0]], None, 0.5)
    with pytest.raises(ValueError, match="a"):
        cosine_duplicates(torch.randn(10), None, 0.5)


def test_opcheck():
    a, b = _clustered(20, 8, seed=19), _clustered(15, 8, seed=20)
    a2 = _clustered(20, 4, seed=21)
    torch.library.opcheck(torch.ops.pyface.cosine_duplicates, (a, b, 0.1, False, None, None, 0.0, 8, 8))
    torch.library.opcheck(torch.ops.pyface.cosine_duplicates, (a, a, 0.1, True, a2, a2, 0.0, 8, 8))
