"""The eyeblink head, task and recipe (registry peers) and the eye net in the labeler."""
import pytest
import torch

from pyface.label.nets import EyeBlinkNet
from pyface.models import build_model
from pyface.train import RECIPES, TASKS, Trainer, resolve_config


def test_head_task_recipe_registered():
    assert "eyeblink" in TASKS and "eyeblink" in RECIPES
    net = build_model("resnet18-eyeblink")
    out = net(torch.zeros(5, 3, 32, 32, dtype=torch.uint8))
    assert set(out) == {"eye_closed"} and out["eye_closed"].shape == (5,)
    assert net.branch_points == {"eyeblink": 4}
    cfg = resolve_config({"recipe": "eyeblink"})  # the embedded default data (SyntheticEyes)
    assert cfg["model"]["tasks"] == ["eyeblink"] and cfg["data"]["train"]["type"] == "SyntheticEyes"


def test_task_loss_and_metrics():
    t = TASKS.get("eyeblink")()
    logit = torch.tensor([2.0, -1.0, 0.5, 3.0])
    y = torch.tensor([1.0, 0.0, float("nan"), 0.0])
    want = torch.nn.functional.binary_cross_entropy_with_logits(logit[[0, 1, 3]], y[[0, 1, 3]])
    assert torch.allclose(t.loss({"eye_closed": logit}, {"eye_closed": y}), want)
    m = t.metrics({"eye_closed": logit.numpy(), "eye_closed_gt": y.numpy()})
    assert m["eyeblink_accuracy"] == pytest.approx(2 / 3) and m["eyeblink_baseline"] == pytest.approx(2 / 3)


def test_recipe_trains_and_loads_into_the_labeler(tmp_path):
    cfg = resolve_config({"recipe": "eyeblink", "out_dir": str(tmp_path / "eb"), "device": "cpu", "progress": False,
                          "tensorboard": False, "model": {"width": 8, "layers": [1, 1, 1, 1]},
                          "data": {"train": {"type": "SyntheticEyes", "num_identities": 8, "images_per_identity": 2},
                                   "val": {"type": "SyntheticEyes", "num_identities": 4, "images_per_identity": 2,
                                           "identity_offset": 100},
                                   "batch_size": 16},
                          "optim": {"epochs": 1}})
    m = Trainer(cfg).fit()
    assert 0.0 <= m["eyeblink_accuracy"] <= 1.0
    eye = EyeBlinkNet(str(tmp_path / "eb" / "model.pt"))
    p = eye(torch.zeros(3, 3, 32, 32, dtype=torch.uint8))
    assert p.shape == (3,) and ((p >= 0) & (p <= 1)).all()
    with pytest.raises(ValueError, match="eyeblink"):
        EyeBlinkNet(build_model("resnet18-fld-hpe"))
