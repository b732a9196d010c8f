"""Backbones and MultiTaskNet: shapes over input sizes, parameter counts against the
standard architectures and the paper's Table 8, task subsets, bad configs."""
import pytest
import torch

from pyface.models import PRESETS, MultiTaskNet, build_model, iresnet50, model_config, resnet18, resnet50


def _n(m):
    return sum(p.numel() for p in m.parameters())


def test_standard_parameter_counts():
    # torchvision resnet18/50 with 1000 classes; insightface iresnet50 with a 512-d head at 112.
    assert _n(resnet18(num_classes=1000)) == 11_689_512
    assert _n(resnet50(num_classes=1000)) == 25_557_032
    assert abs(_n(iresnet50(num_features=512, input_size=112)) - 43.59e6) < 0.01e6


@pytest.mark.parametrize("tasks,paper_m", [(("fr", "fld", "hpe"), 73.3), (("fr", "hpe"), 56.8),
                                           (("fr", "fld"), 60.1), (("fld", "hpe"), 47.3)])
def test_table8_mtl_parameter_counts(tasks, paper_m):
    with torch.device("meta"):
        m = build_model("iresnet50-multi", tasks=tasks)
    counts = m.parameter_counts()
    assert counts["total"] == _n(m) == counts["shared"] + sum(counts[t] for t in tasks)
    assert abs(counts["total"] / 1e6 - paper_m) < 0.15


@pytest.mark.parametrize("arch", ["resnet18", "iresnet18"])
@pytest.mark.parametrize("size", [64, 97, 128, 224])
def test_forward_shapes_any_size(arch, size):
    m = build_model(arch=arch, input_size=size, width=4, embedding_dim=16, layers=(1, 1, 1, 1)).eval()
    x = torch.randint(0, 256, (2, 3, size, size), dtype=torch.uint8)
    out = m(x)
    assert out["embedding"].shape == (2, 16)
    assert out["landmarks"].shape == (2, 68, 2) and out["landmarks"].dtype == torch.float32
    assert out["pose"].shape == (2, 3)
    # Zero-initialised heads: landmarks start near the image centre, pose near frontal.
    assert (out["landmarks"] - size / 2).abs().max() < size / 4
    assert out["pose"].abs().max() < 30


def test_task_subsets_and_stage4_duplication():
    m = build_model("iresnet-tiny-multi", tasks=["hpe"])
    out = m(torch.zeros(3, 3, 64, 64, dtype=torch.uint8))
    assert set(out) == {"pose"}
    full = build_model("iresnet-tiny-multi")
    s4 = {t: full.heads[t].stage4 for t in full.heads}
    assert set(s4) == {"fr", "fld", "hpe"}
    assert len(full.shared) == 4  # stem + stages 1-3: every paper head branches after stage 3
    # independent copies, not shared modules
    assert s4["fr"][0].conv1.weight.data_ptr() != s4["fld"][0].conv1.weight.data_ptr()
    assert not torch.equal(s4["fr"][0].conv1.weight, s4["fld"][0].conv1.weight)
    # gradient of the pose loss reaches the shared trunk and the hpe stage 4 only
    full(torch.zeros(2, 3, 64, 64)).get("pose").sum().backward()
    assert s4["hpe"][0].conv1.weight.grad is not None and s4["fr"][0].conv1.weight.grad is None
    assert full.shared[0][0].weight.grad is not None


def test_presets_build_config():
    assert model_config("iresnet50-multi").input_size == 112
    assert model_config("resnet50-fld-hpe").input_size == 128
    assert set(PRESETS) >= {"iresnet50-multi", "resnet50-fld-hpe"}


def test_bad_configs():
    with pytest.raises(ValueError, match="preset"):
        model_config("nope")
    with pytest.raises(ValueError, match="tasks"):
        model_config(tasks=("fr", "age"))
    with pytest.raises(ValueError, match="tasks"):
        model_config(tasks=())
    with pytest.raises(ValueError, match="head_options"):
        model_config(tasks=("fr",), head_options={"hpe": {}})
    with pytest.raises(ValueError, match="arch"):
        model_config(arch="vgg")
    m = MultiTaskNet(model_config("iresnet-tiny-multi"))
    with pytest.raises(ValueError, match="images"):
        m(torch.zeros(1, 3, 32, 32))


def test_registered_head_plugs_in_at_its_branch_point():
    from torch import nn

    from pyface.models import HEADS, register_head

    name = "test_pooled"

    @register_head(name, output="pooled", branch_point=lambda level=4: level)
    def _build(cfg, trunk, level=4):
        return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())

    try:
        x = torch.zeros(2, 3, 64, 64, dtype=torch.uint8)
        m = build_model("iresnet-tiny-multi", tasks=["hpe", name], head_options={name: {"level": 2}})
        out = m(x)
        assert set(out) == {"pose", "pooled"} and out["pooled"].shape == (2, 16)  # stage 2: 2 x width
        assert len(m.shared) == 4
        m4 = build_model("iresnet-tiny-multi", tasks=["hpe", name], head_options={name: {"level": 4}})
        assert len(m4.shared) == 5 and m4(x)["pooled"].shape == (2, 64)
        with pytest.raises(ValueError, match="branch point"):
            build_model("iresnet-tiny-multi", tasks=[name], head_options={name: {"level": 5}})
        with pytest.raises(ValueError, match="already registered"):
            register_head(name, output="x")(_build)
    finally:
        HEADS.unregister(name)
