"""SyntheticFaces: determinism, exact labels (pyface.geometry's convention), rendering
agrees with the labels, identity bookkeeping."""
import numpy as np
import pytest
import torch

from pyface import geometry
from pyface.data import MIRROR_68, SyntheticFaces, check_sample
from pyface.data import transforms as T


def _similarity_residual(pred, target):
    """Max residual after the best scale + translation (no rotation) mapping pred -> target."""
    p = pred - pred.mean(0)
    t = target - target.mean(0)
    s = (p * t).sum() / (p * p).sum()
    return float(np.abs(s * p - t).max()), float(s)


def test_length_identity_and_contract():
    ds = SyntheticFaces(3, 4, image_size=64, seed=1, identity_offset=10)
    assert len(ds) == 12
    s = ds[5]
    check_sample(s)
    assert tuple(s["image"].shape) == (3, 64, 64)
    assert int(s["identity"]) == 11 and s["source"] == "synthetic"
    assert [int(ds[i]["identity"]) for i in range(12)] == [10] * 4 + [11] * 4 + [12] * 4
    assert torch.isfinite(s["landmarks"]).all() and torch.isfinite(s["pose"]).all()
    with pytest.raises(IndexError):
        ds[12]
    with pytest.raises(ValueError, match="num_identities"):
        SyntheticFaces(0, 3)


def test_deterministic_per_seed_and_index():
    a, b = SyntheticFaces(4, 3, seed=7), SyntheticFaces(4, 3, seed=7)
    for i in (0, 5, 11):
        x, y = a[i], b[i]
        assert torch.equal(x["image"], y["image"])
        assert torch.equal(x["landmarks"], y["landmarks"]) and torch.equal(x["pose"], y["pose"])
    assert torch.equal(b[5]["image"], a[5]["image"])  # order of access does not matter
    c = SyntheticFaces(4, 3, seed=8)
    assert not torch.equal(a[0]["image"], c[0]["image"])
    # identity_offset picks identities from the same population: identity 2 of seed 7
    shifted = SyntheticFaces(2, 3, seed=7, identity_offset=2)
    assert torch.equal(shifted[0]["image"], a[6]["image"])


def test_landmarks_are_the_projected_pose():
    ds = SyntheticFaces(3, 5, seed=3)
    for i in range(len(ds)):
        s = ds[i]
        shape = ds._identity(int(s["identity"])).shape  # the identity's 3D face
        proj = geometry.project_shape(torch.from_numpy(shape), s["pose"].double()[None])[0].numpy()
        keep = [k for k in range(68) if k not in (55, 56, 57, 58, 59, 65, 66, 67)]  # mouth opens per image
        res, scale = _similarity_residual(proj[keep], s["landmarks"].double().numpy()[keep])
        assert res < 1e-3 and scale > 0
    poses = torch.stack([ds[i]["pose"] for i in range(len(ds))])
    assert poses.abs().max(0).values.tolist() < [65.0 + 1e-4, 30.0 + 1e-4, 25.0 + 1e-4]


def test_pose_range_is_respected_and_spread():
    ds = SyntheticFaces(20, 10, seed=0, max_yaw=70, max_pitch=20, max_roll=10)
    poses = torch.stack([ds[i]["pose"] for i in range(0, len(ds), 2)])
    lim = torch.tensor([70.0, 20.0, 10.0])
    assert (poses.abs() <= lim + 1e-4).all()
    assert (poses.abs().max(0).values > 0.8 * lim).all()  # the range is used


def test_flip_agrees_with_geometry():
    """Mirroring an image = the mirrored face (x -> -x, MIRROR_68) under (-yaw, pitch, -roll)."""
    ds = SyntheticFaces(2, 4, seed=5)
    m = np.diag([-1.0, 1.0, 1.0])
    for i in range(len(ds)):
        s = ds[i]
        f = T.hflip(s)
        shape = ds._identity(int(s["identity"])).shape
        mirrored = (shape @ m)[list(MIRROR_68)]
        proj = geometry.project_shape(torch.from_numpy(mirrored), f["pose"].double()[None])[0].numpy()
        keep = [k for k in range(68) if MIRROR_68[k] not in (55, 56, 57, 58, 59, 65, 66, 67)]
        res, scale = _similarity_residual(proj[keep], f["landmarks"].double().numpy()[keep])
        assert res < 1e-3 and scale > 0


def test_pupils_are_drawn_at_the_eye_landmarks():
    ds = SyntheticFaces(6, 3, seed=2, max_yaw=15, max_pitch=10, max_roll=10, noise=0)
    dark = 0
    for i in range(len(ds)):
        s = ds[i]
        img = s["image"].int()
        for eye in (range(36, 42), range(42, 48)):
            x, y = s["landmarks"][list(eye)].mean(0).floor().long().tolist()
            dark += int(img[:, y, x].max() < 60)
    assert dark >= 0.9 * 2 * len(ds)


def test_identities_differ_and_images_of_one_identity_vary():
    ds = SyntheticFaces(2, 2, seed=0)
    a, b, c = ds[0], ds[1], ds[2]
    assert not torch.equal(a["image"], b["image"]) and not torch.equal(a["pose"], b["pose"])
    assert int(a["identity"]) == int(b["identity"]) != int(c["identity"])


def test_transform_and_dataloader():
    aug = T.Compose([T.RandomFaceCrop(1.2, 2.0, 56), T.RandomHorizontalFlip(0.5)])
    ds = SyntheticFaces(2, 4, seed=0, transform=aug)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=8)))
    assert batch["image"].shape == (8, 3, 56, 56) and batch["landmarks"].shape == (8, 68, 2)
    assert batch["identity"].tolist() == [0] * 4 + [1] * 4
