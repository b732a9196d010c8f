"""MediaPipe in Algorithm 1: the 468 -> 68 index map (pure NumPy) and a real photo
(needs the `label` extra: pip install "pyface-mtl[label]")."""
import json
import os

import numpy as np
import pytest

from pyface.data_files.mediapipe_68 import MP_TO_IBUG68
from pyface.label import mediapipe as M


def test_to68_and_fit_index_map_recover_a_planted_map(tmp_path):
    rng = np.random.default_rng(0)
    truth = rng.choice(M.NUM_MESH, 68, replace=False)
    net = rng.uniform(0, 100, (40, 68, 2))
    mesh = rng.uniform(0, 100, (40, M.NUM_MESH, 2))
    mesh[:, truth] = net + rng.normal(0, 0.5, net.shape)
    mesh[3] = np.nan  # a view without a face is skipped
    fitted = M.fit_index_map(mesh, net)
    assert [p[0] for p in fitted] == truth.tolist()
    assert np.allclose(M.to68(mesh[:2], fitted), mesh[:2, truth])
    two = M.to68(mesh[:1], [[0, 1]] * 68)
    assert np.allclose(two[0, 5], mesh[0, :2].mean(0))
    M.save_index_map(tmp_path / "m.json", fitted, {"note": 1})
    assert M.load_index_map(tmp_path / "m.json") == fitted
    assert json.loads((tmp_path / "m.json").read_text())["note"] == 1
    assert len(MP_TO_IBUG68) == 68 and M.to68(np.zeros((468, 2))).shape == (68, 2)
    with pytest.raises(ValueError, match="68 points"):
        M.to68(mesh[0], [[0]] * 67)
    with pytest.raises(ValueError, match="no calibration sample"):
        M.fit_index_map(np.full((2, 468, 2), np.nan), net[:2])


def test_astronaut_with_mediapipe():
    why = M.why_unavailable()
    if why is not None and os.environ.get("PYFACE_REQUIRE_MEDIAPIPE") == "1":  # CI's label-extra environment
        pytest.fail(f"the label extra is installed but MediaPipe is unusable: {why}")
    if why is not None:
        pytest.skip(f"MediaPipe face mesh unavailable ({why}); install the label extra: "
                    "pip install 'pyface-mtl[label]'")
    skimage_data = pytest.importorskip("skimage.data", reason="scikit-image (test extra) provides the photo")
    from pyface.label import Labeler

    img = skimage_data.astronaut()
    box = (150.0, 40.0, 300.0, 200.0)  # Eileen Collins' face in the 512 x 512 photo
    (r,) = Labeler(net=None, mediapipe=True, views=8, device="cpu").label_images([img], boxes=[box])
    assert r.accepted and r.n_kept == 3 and r.n_valid >= 6
    assert np.isnan(r.pose).all()  # MediaPipe alone gives no pose
    lm = r.landmarks
    x0, y0, x1, y1 = box
    assert (lm[:, 0] > x0).all() and (lm[:, 0] < x1).all() and (lm[:, 1] > y0).all() and (lm[:, 1] < y1).all()
    eyes, nose, mouth, chin = lm[36:48, 1].mean(), lm[30, 1], lm[48:68, 1].mean(), lm[8, 1]
    assert eyes < nose < mouth < chin
    assert lm[36:42, 0].mean() < lm[27:36, 0].mean() < lm[42:48, 0].mean()  # eye 36-41 on the image left
    assert lm[17:27, 1].mean() < eyes  # brows above the eyes


def test_fit_index_map_cli_on_the_photo(tmp_path):
    if M.why_unavailable() is not None:
        pytest.skip(f"MediaPipe face mesh unavailable ({M.why_unavailable()})")
    skimage_data = pytest.importorskip("skimage.data")
    import cv2
    import torch

    from pyface.cli import main
    from pyface.models import build_model

    crop = skimage_data.astronaut()[30:210, 135:315]  # a loose face crop, as in FR datasets
    (tmp_path / "img" / "0").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "img" / "0" / "a.png"), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
    net = build_model("resnet18-fld-hpe")
    with torch.no_grad():
        for h in net.heads.values():
            h.head.fc.weight.normal_(0, 0.2)
    torch.save({"model": net.state_dict(), "model_config": net.config.to_dict()}, tmp_path / "net.pt")
    assert main(["label", "fit-index-map", "--data", str(tmp_path / "img"), "--net", str(tmp_path / "net.pt"),
                 "--views", "4", "--device", "cpu", "--out", str(tmp_path / "map.json")]) == 0
    d = json.loads((tmp_path / "map.json").read_text())
    assert len(d["index_map"]) == 68 and d["fitted_on"]["samples"] >= 1
    assert d["fitted_on"]["fitted_map_distance"] <= d["fitted_on"]["default_map_distance"]
