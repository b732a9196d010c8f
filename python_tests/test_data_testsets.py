"""AFLW2000-3D and BIWI readers on real bytes written by their writers; the loose
crop checked against HopeNet's literal arithmetic and PIL's crop."""
import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from pyface.data import AFLW2000, BIWI, DataError, SyntheticFaces, check_sample, write_aflw2000, write_biwi_npz
from pyface.data.aflw2000 import crop_image, loose_crop_box


@pytest.fixture(scope="module")
def samples():
    ds = SyntheticFaces(2, 2, image_size=64, seed=7)
    return [ds[i] for i in range(len(ds))]


def _hopenet_box(pt2d):
    """HopeNet datasets.AFLW2000.__getitem__, verbatim arithmetic (pt2d: 2 x K)."""
    x_min = min(pt2d[0, :])
    y_min = min(pt2d[1, :])
    x_max = max(pt2d[0, :])
    y_max = max(pt2d[1, :])
    k = 0.20
    x_min -= 2 * k * abs(x_max - x_min)
    y_min -= 2 * k * abs(y_max - y_min)
    x_max += 2 * k * abs(x_max - x_min)
    y_max += 0.6 * k * abs(y_max - y_min)
    return int(x_min), int(y_min), int(x_max), int(y_max)


def test_loose_crop_matches_hopenet_and_pil():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)
    for _ in range(20):
        pts = rng.uniform(-5, 55, (21, 2))
        box = loose_crop_box(pts)
        assert box == _hopenet_box(pts.T)
        if box[2] > box[0] and box[3] > box[1]:
            ref = np.asarray(Image.fromarray(img).crop(box))
            np.testing.assert_array_equal(crop_image(img, box), ref)
    with pytest.raises(ValueError, match="empty"):
        crop_image(img, (5, 5, 5, 9))


def test_aflw2000_round_trip(tmp_path, samples):
    names = write_aflw2000(tmp_path, samples)
    full = AFLW2000(tmp_path, crop=None)
    loose = AFLW2000(tmp_path)
    assert len(full) == len(loose) == len(samples) and full.names == names
    for i, s in enumerate(samples):
        a, b = full[i], loose[i]
        check_sample(a), check_sample(b)
        assert (a["image"].float() - s["image"].float()).abs().mean() < 12
        torch.testing.assert_close(a["landmarks"], s["landmarks"], atol=1e-4, rtol=0)
        torch.testing.assert_close(a["pose"], s["pose"], atol=1e-4, rtol=0)
        mat = scipy.io.loadmat(tmp_path / (names[i] + ".mat"))
        x0, y0, x1, y1 = _hopenet_box(mat["pt2d"])
        assert tuple(b["image"].shape) == (3, y1 - y0, x1 - x0)
        torch.testing.assert_close(b["landmarks"], s["landmarks"] - torch.tensor([x0, y0], dtype=torch.float32),
                                   atol=1e-4, rtol=0)
        ref = np.asarray(Image.fromarray(a["image"].permute(1, 2, 0).numpy()).crop((x0, y0, x1, y1)))
        np.testing.assert_array_equal(b["image"].permute(1, 2, 0).numpy(), ref)


def test_aflw2000_bad_input(tmp_path, samples):
    with pytest.raises(FileNotFoundError, match="root not found"):
        AFLW2000(tmp_path / "nope")
    write_aflw2000(tmp_path, samples[:2])
    (tmp_path / "image00001.mat").unlink()
    with pytest.raises(FileNotFoundError, match=r"image00001\.mat"):
        AFLW2000(tmp_path)
    (tmp_path / "image00001.jpg").unlink()
    (tmp_path / "image00000.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="image00000.jpg"):
        AFLW2000(tmp_path)[0]


def test_biwi_npz(tmp_path, samples):
    p = str(tmp_path / "BIWI_test.npz")
    assert write_biwi_npz(p, samples) == len(samples)
    d = np.load(p)
    # stored like FSA-Net's file: BGR crops, pose (yaw, pitch, roll) degrees
    np.testing.assert_array_equal(d["image"][0], samples[0]["image"].permute(1, 2, 0).numpy()[:, :, ::-1])
    ds = BIWI(p)
    for i, s in enumerate(samples):
        got = ds[i]
        check_sample(got)
        assert torch.equal(got["image"], s["image"])
        torch.testing.assert_close(got["pose"], s["pose"])
        assert torch.isnan(got["landmarks"]).all()
    assert torch.equal(BIWI(p, channels="rgb")[0]["image"], s_flip(samples[0]["image"]))
    bad = tmp_path / "bad.npz"
    np.savez(bad, image=d["image"])
    with pytest.raises(DataError, match="'pose'"):
        BIWI(str(bad))
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(DataError, match="junk.npz"):
        BIWI(str(tmp_path / "junk.npz"))


def s_flip(chw):
    return chw.flip(0)
