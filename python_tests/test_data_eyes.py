"""Closed eyes in SyntheticFaces, eye crops, the eye-crop datasets."""
import warnings

import cv2
import numpy as np
import pytest
import torch

from pyface.data import EyeFolder, SyntheticEyes, SyntheticFaces, eye_crops


def test_closed_eye_landmarks_follow_the_lid():
    open_ = SyntheticFaces(3, 4, seed=2)
    shut = SyntheticFaces(3, 4, seed=2, eye_closed_prob=1.0)
    for i in range(12):
        a, b = open_[i], shut[i]
        assert open_.eye_openness(i) == (1.0, 1.0)
        o = shut.eye_openness(i)
        assert all(0 <= x <= 0.25 for x in o)
        unchanged = [k for k in range(68) if k not in (37, 38, 43, 44)]
        assert torch.equal(a["landmarks"][unchanged], b["landmarks"][unchanged]) and torch.equal(a["pose"], b["pose"])
        for eye, (up, low) in enumerate((([37, 38], [41, 40]), ([43, 44], [47, 46]))):
            gap_open = (a["landmarks"][low] - a["landmarks"][up]).norm(dim=-1)
            gap_shut = (b["landmarks"][low] - b["landmarks"][up]).norm(dim=-1)
            # the landmarks are projections of the moved 3D points: the gap shrinks by the openness
            assert torch.allclose(gap_shut, o[eye] * gap_open, atol=1e-3)
        assert not torch.equal(a["image"], b["image"])
    # eye_closed_prob=0 renders exactly what the dataset rendered before the parameter existed
    assert torch.equal(SyntheticFaces(3, 4, seed=2, eye_closed_prob=0.0)[5]["image"], open_[5]["image"])
    with pytest.raises(ValueError, match="eye_closed_prob"):
        SyntheticFaces(1, 1, eye_closed_prob=1.5)


def test_eye_crops_centre_and_bad_input():
    img = torch.zeros(1, 3, 60, 80, dtype=torch.uint8)
    lm = torch.zeros(1, 68, 2)
    lm[0, 36:42] = torch.tensor([[20.0, 30], [22, 28], [26, 28], [28, 30], [26, 32], [22, 32]])
    lm[0, 42:48] = lm[0, 36:42] + torch.tensor([30.0, 0])
    img[0, :, 29:31, 23:25] = 255  # around the first eye's centre (24, 30)
    crops = eye_crops(img, lm, size=16)
    assert crops.shape == (1, 2, 3, 16, 16) and crops.dtype == torch.uint8
    w = crops[0, 0, 0].float()
    ys, xs = torch.meshgrid(torch.arange(16) + 0.5, torch.arange(16) + 0.5, indexing="ij")
    assert abs(float((w * xs).sum() / w.sum()) - 8) < 0.3 and abs(float((w * ys).sum() / w.sum()) - 8) < 0.3
    assert crops[0, 1].sum() == 0
    with pytest.raises(ValueError, match="landmarks"):
        eye_crops(img, lm[:, :60])


def test_synthetic_eyes_labels_and_folder(tmp_path):
    ds = SyntheticEyes(4, 3, seed=0, eye_closed_prob=0.5)
    labels = [int(ds[i]["eye_closed"]) for i in range(len(ds))]
    assert 0 < sum(labels) < len(ds)
    # an open eye shows sclera and pupil: more contrast than a closed lid
    std = [ds[i]["image"].float().std().item() for i in range(len(ds))]
    closed = np.mean([s for s, lab in zip(std, labels) if lab])
    opened = np.mean([s for s, lab in zip(std, labels) if not lab])
    assert opened > closed
    for i in range(6):
        sub = "closed" if labels[i] else "open"
        (tmp_path / sub).mkdir(exist_ok=True)
        cv2.imwrite(str(tmp_path / sub / f"{i}.png"), ds[i]["image"].permute(1, 2, 0).numpy()[:, :, ::-1])
    (tmp_path / "open").mkdir(exist_ok=True)
    (tmp_path / "closed").mkdir(exist_ok=True)
    f = EyeFolder(str(tmp_path), size=24)
    assert len(f) == 6 and f[0]["image"].shape == (3, 24, 24)
    assert sorted(int(f[i]["eye_closed"]) for i in range(6)) == sorted(labels[:6])
    (tmp_path / "open" / "bad.jpg").write_bytes(b"nope")
    bad = EyeFolder(str(tmp_path))
    i = bad.files.index("open/bad.jpg")
    with pytest.raises(ValueError, match="bad.jpg"):
        bad[i]
    assert EyeFolder(str(tmp_path), on_error="skip")[i]["image"].shape == (3, 32, 32)
    with pytest.raises(FileNotFoundError, match="open/ and closed/"):
        EyeFolder(str(tmp_path / "open"))


def test_eye_folder_skips_loudly_like_every_dataset(tmp_path):
    """data/base.py's promise: nothing is dropped silently -- a skipped eye image is
    recorded in ``skipped``, warned about, and not retried."""
    ds = SyntheticEyes(2, 2, seed=0)
    for sub in ("open", "closed"):
        (tmp_path / sub).mkdir()
    for i in range(3):
        cv2.imwrite(str(tmp_path / "open" / f"{i}.png"), ds[i]["image"].permute(1, 2, 0).numpy()[:, :, ::-1])
    (tmp_path / "closed" / "bad.jpg").write_bytes(b"nope")
    f = EyeFolder(str(tmp_path), on_error="skip")
    i = f.files.index("closed/bad.jpg")
    with pytest.warns(RuntimeWarning, match=r"skipping bad sample \(1 skipped so far\): .*bad.jpg"):
        s = f[i]
    assert s["image"].shape == (3, 32, 32) and list(f.skipped) == [i] and "bad.jpg" in f.skipped[i]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a known bad index is not read (or warned about) again
        f[i]
    with pytest.raises(IndexError, match="out of range"):
        f[len(f)]
    assert f.describe(i) == str(tmp_path / "closed" / "bad.jpg")
