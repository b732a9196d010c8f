"""pyface.ssl: tile puzzles/rotations and the Barlow Twins loss against plain references."""
import math

import pytest
import torch

from pyface.ssl import barlow_twins_loss, tile_transform, untile_transform

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def rebuild_reference(out, perm, rot, k):
    """Per image, per region: undo the rotation and put the tile back (plain loops)."""
    b, c, h, w = out.shape
    th, tw = h // k, w // k
    orig = torch.full_like(out, -1)
    for n in range(b):
        for i in range(k * k):
            r, cc = divmod(i, k)
            tile = out[n, :, r * th:(r + 1) * th, cc * tw:(cc + 1) * tw]
            tile = torch.rot90(tile, -int(rot[n, i]), dims=(-2, -1))
            j = int(perm[n, i])
            jr, jc = divmod(j, k)
            orig[n, :, jr * th:(jr + 1) * th, jc * tw:(jc + 1) * tw] = tile
    return orig


def distinct_images(b, c, h, w, dtype=torch.float32, device="cpu"):
    # every pixel value distinct, so a wrong tile or orientation cannot go unnoticed
    return torch.randperm(b * c * h * w).reshape(b, c, h, w).to(dtype=dtype, device=device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mode", ["puzzle", "rotation", "puzzle_rotation"])
@pytest.mark.parametrize("k,h,w", [(2, 8, 8), (3, 9, 9), (3, 21, 21), (1, 5, 5)])
def test_rebuild_exact(mode, k, h, w, device):
    x = distinct_images(5, 3, h, w, device=device)
    out, perm, rot = tile_transform(x, k, mode, torch.Generator().manual_seed(k * 100 + h))
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    assert perm.dtype == rot.dtype == torch.int64 and perm.shape == rot.shape == (5, k * k)
    assert torch.equal(rebuild_reference(out.cpu(), perm.cpu(), rot.cpu(), k), x.cpu())
    assert torch.equal(untile_transform(out, perm, rot), x)


def test_region_holds_rotated_tile():
    """The stated contract literally: region i == rot90(original tile perm[i], rot[i])."""
    k, t = 3, 4
    x = distinct_images(4, 2, k * t, k * t)
    out, perm, rot = tile_transform(x, k, "puzzle_rotation", torch.Generator().manual_seed(7))
    for n in range(4):
        for i in range(k * k):
            r, c = divmod(i, k)
            jr, jc = divmod(int(perm[n, i]), k)
            want = torch.rot90(x[n, :, jr * t:(jr + 1) * t, jc * t:(jc + 1) * t], int(rot[n, i]), dims=(-2, -1))
            assert torch.equal(out[n, :, r * t:(r + 1) * t, c * t:(c + 1) * t], want)


def test_rectangular_tiles_puzzle_and_uint8():
    x = distinct_images(3, 3, 6, 10).remainder(256).to(torch.uint8)
    out, perm, rot = tile_transform(x, 2, "puzzle", torch.Generator().manual_seed(1))
    assert out.dtype == torch.uint8
    assert torch.equal(rebuild_reference(out, perm, rot, 2), x)


def test_puzzle_labels():
    x = torch.zeros(2000, 1, 6, 6)
    out, perm, rot = tile_transform(x, 3, "puzzle", torch.Generator().manual_seed(0))
    assert torch.equal(rot, torch.zeros_like(rot))
    assert torch.equal(perm.sort(1).values, torch.arange(9).expand(2000, 9))  # permutations
    # uniform: tile 0 lands in each region ~1/9 of the time; not all images the same
    where0 = (perm == 0).float().argmax(1)
    freq = torch.bincount(where0, minlength=9).float() / 2000
    assert (freq - 1 / 9).abs().max() < 0.03
    assert len({tuple(p) for p in perm.tolist()}) > 1500


def test_rotation_labels():
    x = torch.zeros(2000, 1, 4, 4)
    _, perm, rot = tile_transform(x, 2, "rotation", torch.Generator().manual_seed(0))
    assert torch.equal(perm, torch.arange(4).expand(2000, 4))
    freq = torch.bincount(rot.flatten(), minlength=4).float() / rot.numel()
    assert (freq - 0.25).abs().max() < 0.02
    # independent per tile: all four tiles equal far less often than 1/64 * 4
    assert (rot == rot[:, :1]).all(1).float().mean() < 0.03


@pytest.mark.parametrize("k", [2, 3])
def test_puzzle_rotation_at_most_two_rotated(k):
    x = torch.zeros(3000, 1, 2 * k, 2 * k)
    _, perm, rot = tile_transform(x, k, "puzzle_rotation", torch.Generator().manual_seed(k))
    assert torch.equal(perm.sort(1).values, torch.arange(k * k).expand(3000, k * k))
    nrot = (rot != 0).sum(1)
    assert int(nrot.max()) == 2 and int(nrot.min()) == 0
    # two regions each rotated with probability 3/4: P(two) = 9/16, P(none) = 1/16
    assert abs(float((nrot == 2).float().mean()) - 9 / 16) < 0.03
    assert abs(float((nrot == 0).float().mean()) - 1 / 16) < 0.015
    # the rotated regions are spread over all regions
    assert bool(((rot != 0).sum(0) > 0).all())


def test_deterministic_given_generator():
    x = distinct_images(4, 3, 12, 12)
    a = tile_transform(x, 3, "puzzle_rotation", torch.Generator().manual_seed(5))
    b = tile_transform(x, 3, "puzzle_rotation", torch.Generator().manual_seed(5))
    c = tile_transform(x, 3, "puzzle_rotation", torch.Generator().manual_seed(6))
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert not torch.equal(a[1], c[1])
    torch.manual_seed(3)
    d = tile_transform(x, 3, "puzzle")
    torch.manual_seed(3)
    e = tile_transform(x, 3, "puzzle")
    assert torch.equal(d[0], e[0])


def test_gradient_flows_through_tiles():
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    out, perm, rot = tile_transform(x, 2, "puzzle_rotation", torch.Generator().manual_seed(0))
    w = torch.randn_like(out)
    (out * w).sum().backward()
    assert torch.equal(x.grad, untile_transform(w, perm, rot))


@pytest.mark.parametrize("mode", ["puzzle", "rotation", "puzzle_rotation"])
def test_remainder_keep(mode):
    x = distinct_images(3, 3, 23, 22)            # 224 px with k = 3 in miniature: 21 x 21 tiled
    out, perm, rot = tile_transform(x, 3, mode, torch.Generator().manual_seed(2), remainder="keep")
    assert torch.equal(out[..., 21:, :], x[..., 21:, :]) and torch.equal(out[..., :, 21:], x[..., :, 21:])
    inner = rebuild_reference(out[..., :21, :21], perm, rot, 3)
    assert torch.equal(inner, x[..., :21, :21])
    # divisible sizes: identical to the default
    y = distinct_images(2, 3, 12, 12)
    a = tile_transform(y, 3, mode, torch.Generator().manual_seed(4), remainder="keep")
    b = tile_transform(y, 3, mode, torch.Generator().manual_seed(4))
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    with pytest.raises(ValueError, match="smaller than k"):
        tile_transform(torch.zeros(1, 3, 2, 8), 3, mode, remainder="keep")
    with pytest.raises(ValueError, match="remainder"):
        tile_transform(y, 3, mode, remainder="drop")


def test_bad_inputs():
    x = torch.zeros(2, 3, 8, 8)
    with pytest.raises(ValueError, match="divisible by k=3"):
        tile_transform(x, 3, "puzzle")
    with pytest.raises(ValueError, match="mode"):
        tile_transform(x, 2, "jigsaw")
    with pytest.raises(ValueError, match="images must be 4-D"):
        tile_transform(torch.zeros(3, 8, 8), 2, "puzzle")
    with pytest.raises(TypeError, match="images must be a torch.Tensor"):
        tile_transform(x.numpy(), 2, "puzzle")
    with pytest.raises(ValueError, match="k must be >= 1"):
        tile_transform(x, 0, "puzzle")
    with pytest.raises(TypeError, match="k must be an int"):
        tile_transform(x, 2.0, "puzzle")
    with pytest.raises(ValueError, match="square"):
        tile_transform(torch.zeros(1, 3, 8, 12), 2, "rotation")


# ---------------------------------------------------------------------- Barlow Twins
def barlow_reference(z1, z2, lambd):
    bn = torch.nn.BatchNorm1d(z1.shape[1], affine=False, dtype=torch.float64).train()
    c = bn(z1.double()).T @ bn(z2.double()) / z1.shape[0]
    loss = 0.0
    d = c.shape[0]
    for i in range(d):
        for j in range(d):
            loss = loss + ((1 - c[i, j]) ** 2 if i == j else lambd * c[i, j] ** 2)
    return loss


@pytest.mark.parametrize("b,d,lambd", [(2, 3, 0.0051), (7, 5, 0.0051), (16, 13, 0.5), (5, 1, 0.0)])
def test_barlow_matches_reference_with_grad(b, d, lambd):
    g = torch.Generator().manual_seed(b * d)
    z1 = torch.randn(b, d, generator=g, dtype=torch.float64) * 3 + 1
    z2 = (z1 + 0.5 * torch.randn(b, d, generator=g, dtype=torch.float64)).float()
    z1 = z1.float()
    a1, a2 = z1.clone().requires_grad_(), z2.clone().requires_grad_()
    r1, r2 = z1.double().requires_grad_(), z2.double().requires_grad_()
    loss = barlow_twins_loss(a1, a2, lambd)
    ref = barlow_reference(r1, r2, lambd)
    loss.backward()
    ref.backward()
    torch.testing.assert_close(loss.double(), ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(a1.grad.double(), r1.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(a2.grad.double(), r2.grad, rtol=1e-4, atol=1e-5)


def test_barlow_identical_views_minimum():
    z = torch.randn(64, 8, generator=torch.Generator().manual_seed(0))
    # identical views: diagonal is ~1; the off-diagonal term is the only thing left
    loss = barlow_twins_loss(z, z, 0.0)
    assert float(loss) < 1e-4
    assert barlow_twins_loss(z, -z, 0.0) > 8 * 3.9


def test_barlow_half_precision_input():
    z1 = torch.randn(8, 4, dtype=torch.bfloat16)
    z2 = torch.randn(8, 4, dtype=torch.bfloat16)
    loss = barlow_twins_loss(z1, z2)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, barlow_twins_loss(z1.float(), z2.float()))


def test_barlow_bad_inputs():
    z = torch.randn(4, 3)
    with pytest.raises(ValueError, match="same shape"):
        barlow_twins_loss(z, torch.randn(4, 2))
    with pytest.raises(ValueError, match="at least 2"):
        barlow_twins_loss(z[:1], z[:1])
    with pytest.raises(ValueError, match="z1 must be 2-D"):
        barlow_twins_loss(z[0], z[0])
    with pytest.raises(TypeError, match="z2 must have dtype"):
        barlow_twins_loss(z, z.long())
    with pytest.raises(ValueError, match="lambd must be >= 0"):
        barlow_twins_loss(z, z, -1.0)
    assert math.isfinite(float(barlow_twins_loss(z, z)))
