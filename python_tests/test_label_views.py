"""Views of Algorithm 1: exact affine warps and their inverse maps."""
import numpy as np
import pytest
import torch

from pyface.data import SyntheticFaces
from pyface.label import views as V


def _gt(n=6, size=96, seed=3):
    ds = SyntheticFaces(3, 2, image_size=size, seed=seed)
    s = [ds[i] for i in range(n)]
    return [x["image"].permute(1, 2, 0).numpy() for x in s], torch.stack([x["landmarks"] for x in s]), \
        torch.stack([x["pose"] for x in s])


@pytest.mark.parametrize("n_views", [1, 8, 13])
def test_round_trip_exact(n_views):
    images, lm, pose = _gt()
    views = V.make_views(n_views)
    boxes = V.boxes_array(images, [None, (10, 12, 70, 80)] + [None] * 4)
    A = V.view_matrices(boxes, views, 64)
    in_view = V.map_landmarks(lm.double(), A, views, 64)
    back = V.unmap_landmarks(in_view, A, views, 64)
    assert back.shape == (6, n_views, 68, 2)
    assert (back - lm.double()[:, None]).abs().max() < 1e-4
    poses = pose[:, None].expand(-1, n_views, 3).clone()
    mirrored = torch.tensor([v.mirror for v in views])
    poses[:, mirrored] = poses[:, mirrored] * torch.tensor([-1.0, 1.0, -1.0])
    assert torch.equal(V.unmap_poses(poses, views), pose[:, None].expand(-1, n_views, 3))


def test_default_views_are_a_mix():
    vs = V.make_views(8)
    assert len(set(vs)) == 8
    assert sum(v.mirror for v in vs) == 1 and sum(v.border == "reflect" for v in vs) >= 2
    assert {v.scale > 1 for v in vs} == {True, False} and any(v.dx or v.dy for v in vs)
    assert not any(v.mirror for v in V.make_views(8, mirror=False))


def test_warp_matches_matrix():
    """A bright dot at a known point lands where the view matrix sends it (mirror too)."""
    img = np.zeros((120, 100, 3), np.uint8)
    img[70:72, 30:32] = 255  # centre of the 2x2 block: (31, 71) continuous
    views = V.make_views(12)
    A = V.view_matrices(V.boxes_array([img]), views, 64)
    warped = V.warp_views(img, A[0], views, 64)
    lm = torch.zeros(1, 68, 2, dtype=torch.float64)
    lm[:] = torch.tensor([31.0, 71.0], dtype=torch.float64)
    want = V.map_landmarks(lm, A, views, 64)[0, :, 0]
    for v in range(len(views)):
        w = warped[v, 0].astype(float)
        ys, xs = np.mgrid[:64, :64]
        cx, cy = (w * (xs + 0.5)).sum() / w.sum(), (w * (ys + 0.5)).sum() / w.sum()
        assert abs(cx - want[v, 0].item()) < 0.3 and abs(cy - want[v, 1].item()) < 0.3, v


def test_shrinking_view_keeps_geometry():
    img = np.zeros((600, 600, 3), np.uint8)
    img[300:306, 200:206] = 255
    views = (V.View(1.0),)
    A = V.view_matrices(V.boxes_array([img]), views, 64)  # 600 -> 64: pre-shrunk
    w = V.warp_views(img, A[0], views, 64)[0, 0].astype(float)
    ys, xs = np.mgrid[:64, :64]
    cx, cy = (w * (xs + 0.5)).sum() / w.sum(), (w * (ys + 0.5)).sum() / w.sum()
    assert abs(cx - 203 * 64 / 600) < 0.2 and abs(cy - 303 * 64 / 600) < 0.2


def test_bad_views_and_boxes():
    with pytest.raises(ValueError, match="views"):
        V.make_views(0)
    with pytest.raises(ValueError, match="border"):
        V.View(border="wrap")
    with pytest.raises(ValueError, match="boxes\\[0\\]"):
        V.boxes_array([np.zeros((8, 8, 3), np.uint8)], [(5, 5, 2, 9)])
