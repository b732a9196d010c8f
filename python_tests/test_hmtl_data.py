"""HMTL data: augmentation levels, Barlow Twins views, the ETH-XGaze reader."""
import numpy as np
import pytest
import torch

from pyface.data import DataError, ETHXGaze, SyntheticFaces, check_sample, make_sample, write_ethxgaze
from pyface.data import transforms as T
from pyface.data.ethxgaze import VAL_SUBJECTS


def face(size=64, seed=0):
    return SyntheticFaces(2, 2, image_size=size, seed=seed)[0]


def gen(s=0):
    return torch.Generator().manual_seed(s)


def test_central_zoom_keeps_centre_and_scales_landmarks():
    s = face(64)
    z = 1.6
    out = T.RandomCentralZoom(z, z)(s)
    check_sample(out)
    torch.testing.assert_close(out["landmarks"], (s["landmarks"] - 32) * z + 32, atol=1e-3, rtol=0)
    assert torch.equal(out["pose"], s["pose"])
    # zoom 1 is the identity (the warp maps pixel centres onto themselves)
    same = T.RandomCentralZoom(1.0, 1.0)(s)
    assert (same["image"].int() - s["image"].int()).abs().max() <= 1
    # zooming out pads black borders
    small = T.RandomCentralZoom(0.5, 0.5)(s)
    assert int(small["image"][:, :8].max()) == 0 and int(small["image"][:, 28:36, 28:36].max()) > 0


def test_blur_downscale_cutout_change_pixels_not_labels():
    s = face(64)
    for t in (T.GaussianBlur(1.0, 1.5, 1.5), T.RandomDownscale(1.0, 0.25, 0.25), T.Cutout(1.0, 0.3, 0.3)):
        out = t(s)
        check_sample(out)
        assert out["image"].shape == s["image"].shape and not torch.equal(out["image"], s["image"])
        assert torch.equal(out["landmarks"], s["landmarks"]) and torch.equal(out["pose"], s["pose"])
    # p = 0 is the identity
    for t in (T.GaussianBlur(0.0), T.RandomDownscale(0.0), T.Cutout(0.0)):
        assert torch.equal(t(s)["image"], s["image"])
    # cutout fills one rectangle of about the requested size with the fill value
    c = T.Cutout(1.0, 0.25, 0.25, fill=7, generator=gen(3))(make_sample(np.full((40, 40, 3), 200, np.uint8)))
    filled = (c["image"] == 7).all(0)
    assert 0 < int(filled.sum()) <= 10 * 10 + 21
    rows, cols = filled.any(1).nonzero().flatten(), filled.any(0).nonzero().flatten()
    assert int(filled[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()) == 1
    # the blur really low-passes: neighbouring-pixel differences shrink
    img = T.GaussianBlur(1.0, 2.0, 2.0)(s)["image"].float()
    tv = lambda x: (x[:, 1:] - x[:, :-1]).abs().mean()  # noqa: E731
    assert tv(img) < 0.7 * tv(s["image"].float())


def test_levels_and_determinism():
    s = face(64)
    assert len(T.hmtl_augmentation(0).transforms) == 0
    assert [type(t).__name__ for t in T.hmtl_augmentation(1).transforms] == ["RandomCentralZoom", "ColorJitter"]
    assert [type(t).__name__ for t in T.hmtl_augmentation(2).transforms] == [
        "RandomCentralZoom", "ColorJitter", "GaussianBlur", "RandomDownscale", "Cutout"]
    a = T.hmtl_augmentation(2, generator=gen(1))(s)
    b = T.hmtl_augmentation(2, generator=gen(1))(s)
    c = T.hmtl_augmentation(2, generator=gen(2))(s)
    assert torch.equal(a["image"], b["image"]) and not torch.equal(a["image"], c["image"])
    torch.manual_seed(4)  # global RNG (what SeededDataset seeds per sample)
    d = T.hmtl_augmentation(2)(s)
    torch.manual_seed(4)
    assert torch.equal(d["image"], T.hmtl_augmentation(2)(s)["image"])
    with pytest.raises(ValueError, match="level"):
        T.hmtl_augmentation(3)
    with pytest.raises(ValueError, match="p must be in"):
        T.Cutout(1.5)
    with pytest.raises(ValueError, match="min_zoom"):
        T.RandomCentralZoom(1.2, 1.0)
    with pytest.raises(ValueError, match="min_factor"):
        T.RandomDownscale(0.5, 0.5, 1.5)


def test_barlow_twins_views():
    s = face(64)
    t = T.BarlowTwinsViews(48, generator=gen(0))
    out = t(s)
    assert out["image"].shape == out["image_view2"].shape == (3, 48, 48)
    assert out["image"].dtype == torch.uint8 and not torch.equal(out["image"], out["image_view2"])
    assert torch.isnan(out["pose"]).all() and torch.isnan(out["landmarks"]).all()
    again = T.BarlowTwinsViews(48, generator=gen(0))(s)
    assert torch.equal(again["image"], out["image"]) and torch.equal(again["image_view2"], out["image_view2"])
    batch = torch.utils.data.default_collate([out, again])
    assert batch["image_view2"].shape == (2, 3, 48, 48)


def test_random_tile_puzzle_non_divisible_side():
    img = torch.randperm(3 * 10 * 11).reshape(3, 10, 11).to(torch.uint8)
    out = T.RandomTilePuzzle(3, generator=gen(1))(make_sample(img.permute(1, 2, 0).numpy()))["image"]
    assert torch.equal(out[:, 9:], img[:, 9:]) and torch.equal(out[:, :, 9:], img[:, :, 9:])
    assert not torch.equal(out[:, :9, :9], img[:, :9, :9])
    assert torch.equal(out[:, :9, :9].flatten().sort().values, img[:, :9, :9].flatten().sort().values)


# ---------------------------------------------------------------------- ETH-XGaze
def xgaze(tmp_path, subjects=(3, 4, 108, 109, 111), n=3, size=16):
    rng = np.random.default_rng(0)
    data = {}
    for s in subjects:
        rgb = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
        pose = rng.uniform(-60, 60, (n, 2))
        data[s] = (rgb, pose)
    write_ethxgaze(str(tmp_path), data)
    return data


def test_ethxgaze_layout_and_conversion(tmp_path):
    import h5py

    data = xgaze(tmp_path)
    with h5py.File(tmp_path / "train" / "subject0003.h5", "r") as f:
        # the release's layout: BGR patches, (pitch, yaw) radians
        assert f["face_patch"].shape == (3, 16, 16, 3) and f["face_patch"].dtype == np.uint8
        np.testing.assert_array_equal(f["face_patch"][1], data[3][0][1][..., ::-1])
        np.testing.assert_allclose(f["face_head_pose"][2], np.radians(data[3][1][2][::-1]), rtol=1e-6)
    ds = ETHXGaze(str(tmp_path), split="train")
    assert ds.subjects == (3, 4) and len(ds) == 6
    s = ds[4]
    check_sample(s)
    assert torch.equal(s["image"], torch.from_numpy(data[4][0][1]).permute(2, 0, 1))
    np.testing.assert_allclose(s["pose"].numpy(), [*data[4][1][1], 0.0], atol=1e-4)
    assert int(s["identity"]) == 4 and s["source"] == "eth_xgaze" and torch.isnan(s["landmarks"]).all()
    assert ETHXGaze(str(tmp_path), split="val").subjects == VAL_SUBJECTS
    assert len(ETHXGaze(str(tmp_path), split="all")) == 15
    assert ETHXGaze(str(tmp_path), subjects=[109, 3]).subjects == (3, 109)
    one = ETHXGaze(str(tmp_path), split="train", num_subjects=1)
    assert one.subjects == (3,) and len(one) == 3
    # workers: the dataset pickles without open HDF5 handles and reads in a subprocess
    loader = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=1)
    batch = next(iter(loader))
    assert batch["image"].shape == (3, 3, 16, 16)
    np.testing.assert_allclose(batch["pose"][:, :2].numpy(), data[3][1], atol=1e-4)


def test_ethxgaze_bad_inputs(tmp_path):
    import h5py

    with pytest.raises(FileNotFoundError, match="does not exist"):
        ETHXGaze(str(tmp_path / "nope"))
    xgaze(tmp_path, subjects=(1,))
    with pytest.raises(FileNotFoundError, match=r"no file for subjects \[2\]"):
        ETHXGaze(str(tmp_path), subjects=[1, 2])
    with pytest.raises(ValueError, match="split"):
        ETHXGaze(str(tmp_path), split="dev")
    with pytest.raises(ValueError, match="no subject selected"):
        ETHXGaze(str(tmp_path), split="val")
    with h5py.File(tmp_path / "train" / "subject0005.h5", "w") as f:
        f.create_dataset("face_patch", data=np.zeros((2, 4, 4, 3), np.uint8))
        f.create_dataset("face_head_pose", data=np.zeros((3, 2), np.float32))
    with pytest.raises(DataError, match="face_head_pose has shape"):
        ETHXGaze(str(tmp_path), subjects=[5])
    (tmp_path / "train" / "subject0006.h5").write_bytes(b"not hdf5")
    with pytest.raises(DataError, match="subject0006.h5: cannot read HDF5"):
        ETHXGaze(str(tmp_path), subjects=[6])
    with h5py.File(tmp_path / "train" / "subject0007.h5", "w") as f:
        f.create_dataset("face_patch", data=np.zeros((1, 4, 4, 3), np.uint8))
        f.create_dataset("face_head_pose", data=np.radians([[0.0, 200.0]]).astype(np.float32))
    with pytest.raises(DataError, match="exceeds"):
        ETHXGaze(str(tmp_path), subjects=[7])[0]
