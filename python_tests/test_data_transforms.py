"""Transforms keep landmarks/pose consistent with the image (pyface.data.transforms)."""
import math

import numpy as np
import pytest
import torch

from pyface.data import MIRROR_68, check_sample, make_sample, mirror_landmarks
from pyface.data import transforms as T
from pyface.data.sample import label_problem


def gradient_sample(h=96, w=120, seed=0):
    """R = 2x, G = 2y at pixel centres (x = j + 0.5): any pixel tells where it came from."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64) + 0.5
    img = np.stack([2 * xx, 2 * yy, np.full_like(xx, 128)], -1).round().astype(np.uint8)
    rng = np.random.default_rng(seed)
    lm = np.stack([rng.uniform(30, 90, 68), rng.uniform(25, 70, 68)], -1)
    return make_sample(img, lm, (30.0, -10.0, 5.0), 7, "grad")


def _affine_from_landmarks(src, dst):
    a = np.concatenate([src, np.ones((len(src), 1))], 1)
    m, *_ = np.linalg.lstsq(a, dst, rcond=None)
    return m  # dst = [src, 1] @ m


def assert_consistent(before, after, atol_px=1.0):
    """Pixel values of `after` encode source coordinates; they must match the inverse of the
    affine map that took before's landmarks to after's."""
    m = _affine_from_landmarks(before["landmarks"].double().numpy(), after["landmarks"].double().numpy())
    lin, t = m[:2], m[2]
    inv = np.linalg.inv(lin)
    h, w = after["image"].shape[1:]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64) + 0.5
    pts = np.stack([xx, yy], -1).reshape(-1, 2)
    src = (pts - t) @ inv
    H, W = before["image"].shape[1:]
    inside = (src[:, 0] > 2) & (src[:, 0] < W - 2) & (src[:, 1] > 2) & (src[:, 1] < H - 2)
    assert inside.sum() > 100
    img = after["image"].permute(1, 2, 0).double().numpy().reshape(-1, 3)
    np.testing.assert_allclose(img[inside, 0] / 2, src[inside, 0], atol=atol_px)
    np.testing.assert_allclose(img[inside, 1] / 2, src[inside, 1], atol=atol_px)
    # no systematic sub-pixel shift: mean error well under a tenth of an output pixel
    scale = abs(np.linalg.det(lin)) ** 0.5
    bias = (img[inside, :2] / 2 - src[inside]).mean(0)
    assert np.abs(bias).max() < 0.1 / scale + 0.02, bias


def test_mirror_map_is_an_involution_and_swaps_sides():
    m = np.array(MIRROR_68)
    assert sorted(m.tolist()) == list(range(68))
    np.testing.assert_array_equal(m[m], np.arange(68))
    assert m[36] == 45 and m[0] == 16 and m[48] == 54 and m[30] == 30 and m[8] == 8


def test_mirroring_twice_is_identity():
    lm = torch.randn(5, 68, 2, dtype=torch.float64) * 40 + 50
    np.testing.assert_allclose(mirror_landmarks(mirror_landmarks(lm, 100.0), 100.0), lm)
    s = gradient_sample()
    back = T.hflip(T.hflip(s))
    assert torch.equal(back["image"], s["image"])
    torch.testing.assert_close(back["landmarks"], s["landmarks"])
    torch.testing.assert_close(back["pose"], s["pose"])


def test_flip_moves_landmarks_with_pixels_and_negates_yaw_roll():
    s = gradient_sample()
    f = T.RandomHorizontalFlip(p=1.0)(s)
    check_sample(f)
    np.testing.assert_allclose(f["pose"].numpy(), [-30.0, -10.0, -5.0])
    W = s["image"].shape[2]
    # point i of the flipped sample is the mirror of point MIRROR_68[i] of the original
    torch.testing.assert_close(f["landmarks"][:, 0], W - s["landmarks"][list(MIRROR_68), 0])
    torch.testing.assert_close(f["landmarks"][:, 1], s["landmarks"][list(MIRROR_68), 1])
    # the flipped image's R channel decreases along x: pixel x holds 2 * (W - x)
    row = f["image"][0, 10].double().numpy() / 2
    np.testing.assert_allclose(row, W - (np.arange(W) + 0.5), atol=0.5)
    assert torch.equal(T.RandomHorizontalFlip(p=0.0)(s)["image"], s["image"])


@pytest.mark.parametrize("size", [(48, 60), 200, (96, 120)])
def test_resize_scales_landmarks_exactly(size):
    s = gradient_sample()
    r = T.Resize(size)(s)
    check_sample(r)
    oh, ow = (size, size) if isinstance(size, int) else size
    assert tuple(r["image"].shape) == (3, oh, ow)
    torch.testing.assert_close(r["landmarks"], s["landmarks"] * torch.tensor([ow / 120, oh / 96]))
    assert_consistent(s, r, atol_px=1.0 if oh >= 96 else 1.5)


@pytest.mark.parametrize("areas,out", [((1.0, 3.0), 112), ((0.5, 0.8), 64), ((4.0, 9.0), 37)])
def test_random_face_crop_is_consistent_and_respects_area(areas, out):
    g = torch.Generator().manual_seed(1)
    crop = T.RandomFaceCrop(*areas, out, generator=g)
    s = gradient_sample()
    _, _, face = T.face_box(s)
    for _ in range(5):
        c = crop(s)
        check_sample(c)
        assert tuple(c["image"].shape) == (3, out, out)
        torch.testing.assert_close(c["pose"], s["pose"])
        # the landmark map is a pure scale + shift; the scale tells the crop side
        scale = (c["landmarks"][:, 0].max() - c["landmarks"][:, 0].min()) / (
            s["landmarks"][:, 0].max() - s["landmarks"][:, 0].min())
        area = (out / float(scale)) ** 2 / face ** 2
        assert areas[0] - 1e-3 <= area <= areas[1] + 1e-3
        if areas[0] >= 1:  # the whole face box stays inside the crop
            assert c["landmarks"].min() >= -1e-3 and c["landmarks"].max() <= out + 1e-3
        assert_consistent(s, c, atol_px=1.0 + 0.6 / float(scale))


def test_center_face_crop_centres_the_face():
    s = gradient_sample()
    c = T.CenterFaceCrop(2.0, 100)(s)
    lo, hi = c["landmarks"].min(0).values, c["landmarks"].max(0).values
    torch.testing.assert_close((lo + hi) / 2, torch.tensor([50.0, 50.0]), atol=1e-3, rtol=0)
    assert float((hi - lo).max()) == pytest.approx(100 / math.sqrt(2), rel=1e-4)
    assert_consistent(s, c)


def test_crop_pads_outside_image_with_black():
    s = gradient_sample()
    c = T.CenterFaceCrop(16.0, 64)(s)  # crop far larger than the image
    assert int(c["image"][:, 0, 0].sum()) == 0 and int(c["image"][:, -1, -1].sum()) == 0


def test_crop_without_landmarks_uses_the_image():
    s = make_sample(np.zeros((112, 112, 3), np.uint8))
    c = T.CenterFaceCrop(1.0, 56)(s)
    assert tuple(c["image"].shape) == (3, 56, 56) and torch.isnan(c["landmarks"]).all()


def test_color_jitter_changes_colour_only():
    s = gradient_sample()
    g = torch.Generator().manual_seed(0)
    j = T.ColorJitter(0.4, 0.4, 0.4, 0.1, generator=g)(s)
    check_sample(j)
    assert not torch.equal(j["image"], s["image"])
    torch.testing.assert_close(j["landmarks"], s["landmarks"])
    torch.testing.assert_close(j["pose"], s["pose"])
    assert torch.equal(T.ColorJitter()(s)["image"], s["image"])
    # brightness alone scales every pixel by one factor in [1 - b, 1 + b] (saturating)
    grey = make_sample(np.full((8, 8, 3), 100, np.uint8))
    for _ in range(5):
        out = T.ColorJitter(brightness=0.5, generator=g)(grey)["image"].float()
        assert out.std() == 0 and 50 <= float(out[0, 0, 0]) <= 150
    # saturation 0 .. 0 makes the image grey
    sat = T.ColorJitter(saturation=1.0, generator=torch.Generator().manual_seed(3))
    outs = [sat(s)["image"].float() for _ in range(8)]
    spread = [float((o.max(0).values - o.min(0).values).mean()) for o in outs]
    assert min(spread) < max(spread)


def test_transforms_do_not_modify_input_and_compose_collates():
    s = gradient_sample()
    before = {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in s.items()}
    aug = T.Compose([T.RandomFaceCrop(1.0, 2.0, 64), T.RandomHorizontalFlip(1.0), T.ColorJitter(0.2, 0.2),
                     T.Resize(32)])
    out = [aug(s) for _ in range(3)]
    for k, v in before.items():
        assert (torch.equal(v, s[k]) if isinstance(v, torch.Tensor) else v == s[k])
    batch = torch.utils.data.default_collate(out)
    assert batch["image"].shape == (3, 3, 32, 32) and batch["identity"].dtype == torch.int64


def test_bad_transform_arguments():
    with pytest.raises(ValueError, match="min_area"):
        T.RandomFaceCrop(2.0, 1.0, 112)
    with pytest.raises(ValueError, match="p must"):
        T.RandomHorizontalFlip(1.5)
    with pytest.raises(ValueError, match="hue"):
        T.ColorJitter(hue=0.7)


def test_label_problem():
    lm = np.full((68, 2), 50.0)
    assert label_problem(lm, [0, 0, 0], 3, 100, 100) is None
    assert label_problem(np.full((68, 2), np.nan), [np.nan] * 3, -1, 100, 100) is None
    bad = lm.copy()
    bad[3, 0] = np.nan
    assert "partly NaN" in label_problem(bad, [0, 0, 0], 0, 100, 100)
    bad = lm.copy()
    bad[3, 0] = 500
    assert "outside" in label_problem(bad, [0, 0, 0], 0, 100, 100)
    assert "exceeds" in label_problem(lm, [0, 200, 0], 0, 100, 100)
    assert "identity" in label_problem(lm, [0, 0, 0], -5, 100, 100)
