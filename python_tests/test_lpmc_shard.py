"""The class-shard building blocks of the sharded LPMC loss (lpmc_shard_stats,
lpmc_shard_backward) against their references, and the shards recombined in one
process against the single-process lpmc_loss."""
import pytest
import torch
from conftest import devices

from pyface.nn.lpmc import class_shard, init_class_centres
from pyface.ops import lpmc_loss
from pyface.ops.lpmc import lpmc_shard_backward, lpmc_shard_stats, rescale_row_sum
from pyface.ops.reference import lpmc_shard_backward_reference, lpmc_shard_stats_reference

TOL = {torch.float64: (1e-10, 1e-9), torch.float32: (2e-5, 2e-5), torch.bfloat16: (2e-2, 2e-2),
       torch.float16: (5e-3, 5e-3)}


def _inputs(B, D, C, dtype, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, D, generator=g).to(device=device, dtype=dtype)
    w = torch.randn(C, D, generator=g).to(device=device, dtype=dtype)
    labels = torch.randint(0, C, (B,), generator=g).to(device)
    margins = (torch.rand(B, generator=g) * 0.9).to(device)
    return x, w, labels, margins


def _sharded(x, w, labels, margins, world, grad_rows, **kw):
    """lpmc_loss's per-row losses and gradients recombined from `world` shards."""
    C = w.shape[0]
    stats, shards = [], []
    for r in range(world):
        start, n = class_shard(C, world, r)
        shards.append((start, n))
        stats.append(lpmc_shard_stats(x, w[start:start + n], labels, margins, class_offset=start, num_classes=C, **kw))
    gmax = torch.stack([s.row_max for s in stats]).max(dim=0).values
    total = sum(rescale_row_sum(s.row_max, s.row_sum, gmax) for s in stats)
    tgt = sum(s.target for s in stats)
    lse = gmax + torch.log(total)
    valid = labels != kw.get("ignore_index", -1)
    rows = torch.where(valid, lse - tgt, torch.zeros_like(lse))
    dx = torch.zeros(x.shape, dtype=lse.dtype, device=x.device)
    dws = []
    for (start, n), s in zip(shards, stats):
        dxr, dwr = lpmc_shard_backward(grad_rows, x, w[start:start + n], labels, margins, lse, class_offset=start,
                                       num_classes=C, inv_norm_x=s.inv_norm_x, inv_norm_w=s.inv_norm_w, **kw)
        dx += dxr
        dws.append(dwr)
    return rows, lse, dx, torch.cat(dws), stats, shards


def _single(x, w, labels, margins, grad_rows, **kw):
    xf, wf = x.clone().requires_grad_(), w.clone().requires_grad_()
    rows = lpmc_loss(xf, wf, labels, margins, reduction="none", **kw)
    (rows * grad_rows).sum().backward()
    return rows.detach(), xf.grad, wf.grad


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("B,D,C,world", [(1, 8, 5, 2), (7, 13, 3, 4), (33, 17, 101, 3), (19, 31, 257, 2),
                                         (5, 3, 1001, 7)])
@pytest.mark.parametrize("margin_type", ["cosine", "arc"])
def test_shards_recombine_to_single_process(device, B, D, C, world, margin_type):
    """C not divisible by the world size; with C < world some shards are empty."""
    x, w, y, m = _inputs(B, D, C, torch.float64, device)
    g = torch.rand(B, dtype=torch.float64, device=device)
    rows, _, dx, dw, _, _ = _sharded(x, w, y, m, world, g, margin_type=margin_type, chunk_size=16)
    rows1, dx1, dw1 = _single(x, w, y, m, g, margin_type=margin_type)
    torch.testing.assert_close(rows, rows1, atol=1e-10, rtol=1e-9)
    torch.testing.assert_close(dx, dx1, atol=1e-10, rtol=1e-9)
    torch.testing.assert_close(dw, dw1, atol=1e-10, rtol=1e-9)


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16, torch.float16])
def test_shard_ops_match_reference(device, dtype):
    """Each shard's statistics and gradients against the pure-PyTorch references, with
    ignored rows, rows whose target is on another shard, and labels on one shard only."""
    atol, rtol = TOL[dtype]
    B, D, C, world = 23, 29, 211, 3
    x, w, y, m = _inputs(B, D, C, dtype, device)
    y = y.clone()
    y[[2, 9]] = -1
    y[:6] = torch.arange(6, device=device) % 4  # several rows on shard 0 only
    kw = dict(margin_type="arc", scale=30.0)
    g = torch.rand(B, device=device)
    rows, lse, _, _, stats, shards = _sharded(x, w, y, m, world, g, chunk_size=50, **kw)
    for (start, n), st in zip(shards, stats):
        ws = w[start:start + n]
        rmax, rsum, tgt = lpmc_shard_stats_reference(x.double(), ws.double(), y, m.double(), class_offset=start, **kw)
        valid = y != -1
        torch.testing.assert_close(st.row_max[valid].double(), rmax[valid], atol=atol * 30, rtol=rtol)
        torch.testing.assert_close(st.row_sum.double(), rsum, atol=atol * max(1.0, rsum.max().item()), rtol=rtol * 5)
        torch.testing.assert_close(st.target.double(), tgt, atol=atol * 30, rtol=rtol)
        assert (st.row_max[~valid] == float("-inf")).all() and (st.row_sum[~valid] == 0).all()
        owned = valid & (y >= start) & (y < start + n)
        assert (st.target[~owned] == 0).all()
        dx, dw = lpmc_shard_backward(g, x, ws, y, m, lse, class_offset=start, num_classes=C, chunk_size=7, **kw)
        assert dx.dtype == (torch.float64 if dtype == torch.float64 else torch.float32) and dw.dtype == dtype
        rdx, rdw = lpmc_shard_backward_reference(g.double(), x.double(), ws.double(), y, m.double(), lse.double(),
                                                 class_offset=start, **kw)
        sx, sw = max(rdx.abs().max().item(), 1e-3), max(rdw.abs().max().item(), 1e-3)
        torch.testing.assert_close(dx.double(), rdx, atol=atol * sx * 5, rtol=rtol * 5)
        torch.testing.assert_close(dw.double(), rdw, atol=atol * sw * 5, rtol=rtol * 5)
        assert (dx[~valid] == 0).all()


def test_labels_only_on_one_shard_and_all_ignored():
    x, w, y, m = _inputs(12, 16, 40, torch.float64, "cpu")
    g = torch.rand(12, dtype=torch.float64)
    y_last = torch.randint(30, 40, (12,))  # world 4: shard 3 = [30, 40)
    rows, _, dx, dw, stats, _ = _sharded(x, w, y_last, m, 4, g, chunk_size=3)
    rows1, dx1, dw1 = _single(x, w, y_last, m, g)
    torch.testing.assert_close((rows, dx, dw), (rows1, dx1, dw1))
    assert all((s.target == 0).all() for s in stats[:3]) and (stats[3].target != 0).all()
    y_ign = torch.full((12,), -1)
    rows, _, dx, dw, _, _ = _sharded(x, w, y_ign, m, 3, g)
    assert (rows == 0).all() and (dx == 0).all() and (dw == 0).all()


def test_opcheck_shard_ops():
    x, w, y, m = _inputs(6, 10, 21, torch.float32, "cpu")
    ws = w[7:15].contiguous()
    torch.library.opcheck(torch.ops.pyface.lpmc_shard_fwd, (x, ws, y, m, 7, 21, 64.0, True, -1, 3))
    st = torch.ops.pyface.lpmc_shard_fwd(x, ws, y, m, 7, 21, 64.0, True, -1, 3)
    lse = st[0] + torch.log(st[1])
    torch.library.opcheck(torch.ops.pyface.lpmc_shard_bwd,
                          (torch.rand(6), x, ws, y, m, lse, st[3], st[4], 7, 64.0, True, -1, 3))


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(class_offset=15), ValueError, "class_offset"),
    (dict(class_offset=-1), ValueError, "class_offset"),
    (dict(num_classes=0), ValueError, "num_classes"),
    (dict(labels=torch.tensor([0, 1, 21, 2])), ValueError, "labels"),
    (dict(margins=torch.tensor([0.1, float("nan"), 0.2, 0.3])), ValueError, "margins"),
])
def test_shard_bad_input(kwargs, exc, match):
    x, w, y, m = _inputs(4, 6, 21, torch.float32, "cpu")
    args = dict(labels=y, margins=m, class_offset=7, num_classes=21)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        lpmc_shard_stats(x, w[7:15], args.pop("labels"), args.pop("margins"), **args)


def test_shard_backward_bad_lse():
    x, w, y, m = _inputs(4, 6, 21, torch.float32, "cpu")
    with pytest.raises(ValueError, match="lse"):
        lpmc_shard_backward(torch.ones(4), x, w, y, m, torch.ones(3), class_offset=0, num_classes=21)


def test_class_shard_formula_and_init_is_sharding_independent():
    for C in (1, 5, 10, 1001):
        for W in (1, 2, 3, 7):
            spans = [class_shard(C, W, r) for r in range(W)]
            assert spans[0][0] == 0 and sum(n for _, n in spans) == C
            assert all(s + n == spans[r + 1][0] for r, (s, n) in enumerate(spans[:-1]))
            assert max(n for _, n in spans) - min(n for _, n in spans) <= 1
            for r, (s, n) in enumerate(spans):
                assert n == C // W + (r < C % W) and s == r * (C // W) + min(r, C % W)
    full = init_class_centres(40_000, 4, seed=3)
    assert abs(full.std().item() - 0.5) < 0.01
    parts = [init_class_centres(40_000, 4, 3, *class_shard(40_000, 3, r)) for r in range(3)]
    assert torch.equal(torch.cat(parts), full)
    assert not torch.equal(init_class_centres(100, 4, seed=4), full[:100])


def _head(**kw):
    torch.manual_seed(5)
    from pyface.nn import LPMCLoss

    return LPMCLoss(50, 16, margin_type="arc", **kw)


def test_class_sampling_keeps_positives_and_is_resumable():
    x = torch.randn(8, 16)
    y = torch.tensor([3, 3, 7, 49, 0, 12, -1, 7])
    pose = torch.randn(8, 3) * 30
    full = _head()(x, y, pose)
    head = _head(sample_rate=0.3, sample_seed=11)
    losses, rows = [], []
    for _ in range(3):
        head.weight.grad = None
        loss = head(x, y, pose)
        loss.backward()
        losses.append(loss.item())
        rows.append(head.weight.grad.abs().sum(dim=1) > 0)
    assert int(head.sample_step) == 3
    for used in rows:  # ceil(0.3 * 50) = 15 sampled classes, the 5 positives among them
        assert used.sum() == 15 and used[[0, 3, 7, 12, 49]].all()
    assert not torch.equal(rows[0], rows[1])  # a new draw of negatives each step
    assert all(v < full.item() for v in losses)  # fewer classes in the normaliser
    # resume from the state dict: the same sequence continues
    again = _head(sample_rate=0.3, sample_seed=11)
    again(x, y, pose)
    state = again.state_dict()
    resumed = _head(sample_rate=0.3, sample_seed=11)
    resumed.load_state_dict(state)
    assert resumed(x, y, pose).item() == losses[1]
    # evaluation mode: no sampling, the exact loss
    head.eval()
    torch.testing.assert_close(head(x, y, pose), full)
    # rate 1 is the exact loss; every class kept when ceil(rate * C) = C
    torch.testing.assert_close(_head(sample_rate=0.999)(x, y, pose), full)


def test_module_rejects_bad_options():
    from pyface.nn import LPMCLoss

    with pytest.raises(ValueError, match="sample_rate"):
        LPMCLoss(10, 4, sample_rate=0.0)
    with pytest.raises(ValueError, match="sample_rate"):
        LPMCLoss(10, 4, sample_rate=1.5)
    with pytest.raises(ValueError, match="labels"):
        _head(sample_rate=0.5)(torch.randn(2, 16), torch.tensor([1, 50]), torch.zeros(2, 3))
