"""Algorithm 1 (pyface.label.Labeler): plumbing with an oracle net, validity causes,
AdjustUpperEyes, selective fitting, bad input."""
import numpy as np
import pytest
import torch
from torch import nn

from pyface.data import SyntheticFaces
from pyface.label import Labeler, LabelResult, Validity
from pyface.label import views as V
from pyface.label.eyes import adjust_upper_eyes
from pyface.models import build_model, model_config


class OracleNet(nn.Module):
    """Returns queued per-view predictions in the order the labeler feeds views
    (images x views, flattened), pretending to be a fld+hpe MultiTaskNet."""

    def __init__(self, lm, pose, size=64):
        super().__init__()
        self.config = model_config("resnet18-fld-hpe", input_size=size)
        self.lm, self.pose, self.pos = lm.flatten(0, 1).float(), pose.flatten(0, 1).float(), 0

    def forward(self, x):
        n = len(x)
        s = slice(self.pos, self.pos + n)
        self.pos += n
        return {"landmarks": self.lm[s].to(x.device), "pose": self.pose[s].to(x.device)}


def _faces(n=5, size=80, seed=4):
    ds = SyntheticFaces(n, 1, image_size=size, seed=seed)
    s = [ds[i] for i in range(n)]
    return ([x["image"].permute(1, 2, 0).numpy().copy() for x in s], torch.stack([x["landmarks"] for x in s]),
            torch.stack([x["pose"] for x in s]))


def _oracle(images, lm, pose, views, size=64, noise=None):
    A = V.view_matrices(V.boxes_array(images), views, size)
    pv = V.map_landmarks(lm.double(), A, views, size).float()
    if noise is not None:
        pv = pv + noise
    ps = pose[:, None].expand(-1, len(views), 3).clone()
    mirrored = torch.tensor([v.mirror for v in views])
    ps[:, mirrored] *= torch.tensor([-1.0, 1.0, -1.0])
    return OracleNet(pv, ps, size)


def test_oracle_labels_are_exact():
    images, lm, pose = _faces()
    views = V.make_views(8)
    lab = Labeler(_oracle(images, lm, pose, views), mediapipe=False, views=views, device="cpu", batch_size=7)
    res = lab.label_images(images)
    assert len(res) == 5 and all(isinstance(r, LabelResult) for r in res)
    for r, lmk, p in zip(res, lm, pose):
        assert r.accepted and r.n_kept == 3 and r.n_valid == 8 and r.cause is None
        assert np.abs(r.landmarks - lmk.numpy()).max() < 1e-3 and np.abs(r.pose - p.numpy()).max() < 1e-3
        assert r.landmarks.shape == (68, 2) and r.pose.shape == (3,) and r.spread < 1e-4


def test_outliers_dropped_and_spread_rejected():
    images, lm, pose = _faces()
    views = V.make_views(8)
    noise = torch.zeros(5, 8, 68, 2)
    noise[0, 2] += 9.0  # one bad view of image 0: dropped by the fit
    noise[1] = torch.randn(8, 68, 2, generator=torch.Generator().manual_seed(0)) * 6  # all views disagree
    r = Labeler(_oracle(images, lm, pose, views, noise=noise), mediapipe=False, views=views, device="cpu"
                ).label_arrays(images, keep_samples=True)
    assert r["accepted"][0] and not r["kept"][0, 2]
    assert np.abs(r["landmarks"][0] - lm[0].numpy()).max() < 1e-3
    assert not r["accepted"][1] and r["cause"][1] == "spread"
    assert np.isnan(r["landmarks"][1]).all() and np.isnan(r["pose"][1]).all()
    assert r["accepted"][2:].all()


def test_validity_causes_counted():
    images, lm, pose = _faces(4)
    views = V.make_views(4)
    A = V.view_matrices(V.boxes_array(images), views, 64)
    pv = V.map_landmarks(lm.double(), A, views, 64).float()
    pv[0, :] = float("nan")                                  # nonfinite
    pv[1, :] = 32 + 0.02 * (pv[1, :] - 32)                   # tiny
    pv[2, :, :, 0] = 32.0 + 0.1 * torch.randn(4, 68)         # x collapsed on the centre line
    pv[3, :, :, :] += 200                                    # outside
    ps = pose[:, None].expand(-1, 4, 3).clone()
    net = OracleNet(pv, ps)
    r = Labeler(net, mediapipe=False, views=views, device="cpu").label_arrays(images)
    assert r["sample_causes"] == {"nonfinite": 4, "too_small": 4, "centre_cluster": 4, "outside": 4, "no_face": 0}
    assert not r["accepted"].any() and list(r["cause"]) == ["too_few_valid"] * 4
    with pytest.raises(ValueError, match="validity.min_extent"):
        Validity(min_extent=2.0)


def test_adjust_upper_eyes():
    lm = torch.randn(3, 68, 2)
    sigma = torch.tensor([[0.0, 1.0], [0.5, 0.25], [1.0, 0.0]])
    out = adjust_upper_eyes(lm, sigma)
    moved = [37, 38, 43, 44]
    rest = [k for k in range(68) if k not in moved]
    assert torch.equal(out[:, rest], lm[:, rest])
    for up, low, e in ((37, 41, 0), (38, 40, 0), (43, 47, 1), (44, 46, 1)):
        want = lm[:, up] + sigma[:, e, None] * (lm[:, low] - lm[:, up])
        assert torch.allclose(out[:, up], want)
    with pytest.raises(ValueError, match="sigma"):
        adjust_upper_eyes(lm, sigma[:, :1])


def test_eye_net_closes_the_lids():
    images, lm, pose = _faces(3)
    views = V.make_views(4, mirror=False)

    class Closed(nn.Module):  # P(closed) = 1 for every crop
        config = model_config("resnet18-fld-hpe", tasks=("fld",))

        def forward(self, x):
            return {"eye_closed": torch.full((len(x),), 50.0)}

    Closed.config = None
    r = Labeler(_oracle(images, lm, pose, views), eye_net=Closed(), mediapipe=False, views=views,
                device="cpu").label_arrays(images)
    assert r["accepted"].all()
    got = torch.from_numpy(r["landmarks"])
    assert torch.allclose(got[:, [37, 38, 43, 44]], lm[:, [41, 40, 47, 46]], atol=1e-3)


def test_real_net_runs_and_bad_input(tmp_path):
    torch.manual_seed(0)
    net = build_model("resnet18-fld-hpe")
    images, _, _ = _faces(3)
    r = Labeler(net, mediapipe=False, views=3, device="cpu").label_images(images, boxes=[None, (5, 5, 60, 70), None])
    assert len(r) == 3  # an untrained net: centre-collapsed predictions are rejected, not crashes
    assert not any(x.accepted for x in r)
    fr_only = build_model("iresnet-tiny-multi", tasks=["fr"])
    with pytest.raises(ValueError, match="'fld'"):
        Labeler(fr_only, mediapipe=False)
    torch.save({"model": fr_only.state_dict(), "model_config": fr_only.config.to_dict()}, tmp_path / "fr.pt")
    with pytest.raises(ValueError, match="fr.pt"):
        Labeler(str(tmp_path / "fr.pt"), mediapipe=False)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        Labeler(str(tmp_path / "missing.pt"), mediapipe=False)
    with pytest.raises(ValueError, match="threshold"):
        Labeler(net, mediapipe=False, threshold=-1)
    with pytest.raises(ValueError, match="images\\[1\\]"):
        Labeler(net, mediapipe=False, views=1).label_images([images[0], images[1][..., :2]])
