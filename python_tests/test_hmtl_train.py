"""HMTL through the trainer: recipes, the tile prepare hook, exact resume, export without
the SSL branch, linear evaluation / fine-tuning from a pre-trained encoder, Barlow Twins."""
import math
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from pyface.data import SyntheticFaces
from pyface.data import transforms as T
from pyface.models import build_model
from pyface.ssl import untile_transform
from pyface.train import RECIPES, Trainer, load_config, resolve_config
from pyface.train.optim import lr_factor

CONFIGS = Path(__file__).resolve().parents[1] / "pyface" / "train" / "configs"


@pytest.fixture(scope="module")
def faces():
    train = SyntheticFaces(4, 6, image_size=32, seed=0)
    val = SyntheticFaces(2, 4, image_size=32, seed=0, identity_offset=4)
    return [train[i] for i in range(len(train))], [val[i] for i in range(len(val))]


class ListSet(torch.utils.data.Dataset):
    def __init__(self, samples, transform=None):
        self.s, self.t = samples, transform

    def __len__(self):
        return len(self.s)

    def __getitem__(self, i):
        return self.t(self.s[i]) if self.t else self.s[i]


def _cfg(tmp_path, name, recipe="hmtl", **over):
    cfg = {"out_dir": str(tmp_path / name), "recipe": recipe, "device": "cpu", "amp": "none", "progress": False,
           "tensorboard": False, "checkpoint_every": 2, "log_every": 1,
           "model": {"preset": "resnet50-tiny-hopenet-64", "input_size": 32},
           "data": {"train": {}, "batch_size": 8},
           "optim": {"max_steps": 5}}
    for k, v in over.items():
        cfg[k] = {**cfg[k], **v} if isinstance(v, dict) and isinstance(cfg.get(k), dict) else v
    return resolve_config(cfg)


class _Kill(Exception):
    pass


def test_recipes_have_the_paper_defaults():
    assert {"hopenet", "hmtl", "ssl-rotation", "ssl-puzzle", "barlow-twins", "linear-eval", "finetune"} <= set(RECIPES)
    c = resolve_config({"recipe": "hmtl", "data": {"train": "x"}})
    assert c["optim"]["name"] == "adabelief" and c["optim"]["lr"] == 1e-3 and c["optim"]["epochs"] == 110
    assert c["optim"]["schedule"] == "multistep" and c["optim"]["milestones"] == [20, 100]
    assert c["data"]["batch_size"] == 64 and c["amp"] == "bf16" and c["model"]["preset"] == "resnet50-hopenet"
    assert c["tasks"]["ssl_puzzle"] == {"weight": 50.0, "k": 3, "flag": 3, "dropout": 0.2, "block": True}
    assert c["model"]["head_options"]["hopenet"] == {"num_bins": 66, "dropout": 0.5}
    # another SSL head, flag and k from the config; 1-degree bins
    c = resolve_config({"recipe": "hmtl", "data": {"train": "x"}, "tasks": {
        "ssl_puzzle": False, "ssl_rotation": {"k": 2, "flag": 1}, "hopenet": {"bin_width": 1}}})
    assert c["model"]["tasks"] == ["hopenet", "ssl_rotation"]
    assert c["model"]["head_options"]["ssl_rotation"]["flag"] == 1
    assert c["model"]["head_options"]["hopenet"]["num_bins"] == 198
    assert resolve_config({"recipe": "linear-eval", "data": {"train": "x"}})["model"]["frozen"] == ["shared"]
    assert resolve_config({"recipe": "finetune", "data": {"train": "x"}})["optim"]["warmup_epochs"] == 5
    bt = resolve_config({"recipe": "barlow-twins", "data": {"train": "x"}})
    assert bt["optim"]["schedule"] == "cosine" and bt["optim"]["epochs"] == 64
    with pytest.raises(ValueError, match="angles"):
        Trainer(_cfg(Path("/tmp"), "x", tasks={"hopenet": {"angles": ["yaw", "tilt"]}}), ListSet([{}] * 8))


def test_warmup_epochs_schedule():
    o = {"schedule": "multistep", "gamma": 0.1, "milestones": [20, 100], "warmup_steps": 0, "warmup_epochs": 5}
    assert lr_factor(0, 10, 1100, o) == pytest.approx(1 / 50)
    assert lr_factor(49, 10, 1100, o) == pytest.approx(1.0)
    assert lr_factor(199, 10, 1100, o) == 1.0 and lr_factor(200, 10, 1100, o) == pytest.approx(0.1)
    assert lr_factor(1000, 10, 1100, o) == pytest.approx(0.01)


@pytest.mark.parametrize("task,k", [("ssl_puzzle", 2), ("ssl_rotation", 2), ("ssl_puzzle_rotation", 2),
                                    ("ssl_puzzle", 4), ("ssl_puzzle_rotation", 3)])   # 3: 32 px is not divisible
def test_prepare_hook_transforms_image_and_writes_labels(tmp_path, faces, task, k):
    extra = {} if task == "ssl_puzzle" else {"ssl_puzzle": False}
    tr = Trainer(_cfg(tmp_path, task, tasks={**extra, task: {"k": k, "flag": 2}}), ListSet(faces[0]))
    batch = tr.prepare(torch.utils.data.default_collate([faces[0][i] for i in range(8)]))
    g = torch.Generator().manual_seed(0)
    b = tr.loss.prepare(dict(batch), g)
    assert b["ssl_perm"].shape == (8, k * k) and not torch.equal(b["image"], batch["image"])
    t = (32 // k) * k        # the tiled region (remainder="keep")
    assert torch.equal(untile_transform(b["image"][..., :t, :t], b["ssl_perm"], b["ssl_rot"]),
                       batch["image"][..., :t, :t])
    assert torch.equal(b["image"][..., t:, :], batch["image"][..., t:, :])
    out = tr.model(b["image"])
    classes = {"ssl_puzzle": k * k, "ssl_rotation": 4, "ssl_puzzle_rotation": k * k + 4}[task]
    assert out[task].shape == (8, k * k, classes) and out["pose_logits"].shape == (8, 3, 66)
    total, parts = tr.loss(out, b)
    assert torch.isfinite(total) and set(parts) == {"hopenet", task}
    # the SSL term is the sum over regions of the per-region CE
    logits = out[task]
    want = sum(torch.nn.functional.cross_entropy(logits[:, i, :k * k] if task != "ssl_rotation" else logits[:, i],
                                                 (b["ssl_perm"] if task != "ssl_rotation" else b["ssl_rot"])[:, i])
               for i in range(k * k))
    if task == "ssl_puzzle_rotation":
        want = want + sum(torch.nn.functional.cross_entropy(logits[:, i, k * k:], b["ssl_rot"][:, i])
                          for i in range(k * k))
    torch.testing.assert_close(parts[task], want.detach())
    assert total.item() == pytest.approx(parts["hopenet"].item() + 50 * parts[task].item(), rel=1e-5)


def test_hmtl_trains_checkpoints_and_resumes_exactly(tmp_path, faces):
    train, val = ListSet(faces[0], T.hmtl_augmentation(2)), ListSet(faces[1])
    cfg = _cfg(tmp_path, "ref", tasks={"ssl_puzzle": {"k": 2}})
    ref = Trainer(cfg, train, val)
    m = ref.fit()
    assert ref.step == 5 and math.isfinite(m["pose_mae_deg"]) and "pose_mae_baseline_deg" in m
    assert {"yaw_mae_deg", "pitch_mae_deg", "roll_mae_deg"} <= set(m)
    assert (tmp_path / "ref" / "loss_curves.png").exists() and (tmp_path / "ref" / "val.csv").exists()
    assert "ssl_puzzle" in ref.history[-1] and type(ref.optimizer).__name__ == "AdaBelief"

    def kill(t):
        if t.step == 3:   # the checkpoint of step 2 survives, step 3 is lost
            raise _Kill

    run = _cfg(tmp_path, "run", tasks={"ssl_puzzle": {"k": 2}})
    with pytest.raises(_Kill):
        Trainer(run, train, val).fit(callback=kill)
    b = Trainer(run, train, val)
    b.fit(resume=True)
    assert [r["loss"] for r in ref.history] == [r["loss"] for r in b.history]
    for k, v in ref.model.state_dict().items():
        assert torch.equal(v, b.model.state_dict()[k]), k


def test_export_drops_ssl_branch_at_unchanged_inference_cost():
    hmtl = build_model("resnet50-tiny-hopenet-64", tasks=("hopenet", "ssl_puzzle_rotation"),
                       head_options={"ssl_puzzle_rotation": {"k": 3, "flag": 3}}).eval()
    plain = build_model("resnet50-tiny-hopenet-64", tasks=("hopenet",)).eval()
    net = hmtl.export(["hopenet"])
    c_h, c_n, c_p = hmtl.parameter_counts(), net.parameter_counts(), plain.parameter_counts()
    assert c_n == c_p and c_h["total"] == c_p["total"] + c_h["ssl_puzzle_rotation"]
    x = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)

    def flops(m):
        with FlopCounterMode(display=False) as fc:
            m(x)
        return fc.get_total_flops()

    assert flops(net) == flops(plain) < flops(hmtl)
    with torch.no_grad():
        assert torch.equal(net(x)["pose_logits"], hmtl(x)["pose_logits"])
    assert set(net(x)) == {"pose_logits"}
    with pytest.raises(ValueError, match="not in this model"):
        hmtl.export(["fld"])


def test_pretrain_then_linear_eval_and_finetune(tmp_path, faces):
    pre = Trainer(_cfg(tmp_path, "pre", "ssl-puzzle", tasks={"ssl_puzzle": {"k": 2}}, amp="none",
                       optim={"max_steps": 2}), ListSet(faces[0]))
    pre.fit()
    assert "ssl_puzzle" in pre.history[-1] and pre.val_set is None
    ckpt = tmp_path / "pre" / "model.pt"
    le = Trainer(_cfg(tmp_path, "le", "linear-eval", init={"checkpoint": str(ckpt)}, amp="none",
                      optim={"max_steps": 3}), ListSet(faces[0]), ListSet(faces[1]))
    start = {k: v.clone() for k, v in le.model.state_dict().items()}
    for k, v in start.items():   # the encoder came from the pre-training run
        if k.startswith("shared."):
            assert torch.equal(v, pre.model.state_dict()[k]), k
    le.fit()
    for k, v in le.model.state_dict().items():   # frozen: weights and BN statistics unchanged
        assert torch.equal(v, start[k]) == k.startswith("shared."), k
    ft = Trainer(_cfg(tmp_path, "ft", "finetune", init={"checkpoint": str(ckpt)}, amp="none",
                      optim={"max_steps": 3}), ListSet(faces[0]))
    ft.fit()
    assert ft.history[0]["lr"] < ft.history[-1]["lr"] <= 1e-3        # warming up
    assert not torch.equal(ft.model.state_dict()["shared.0.0.weight"], start["shared.0.0.weight"])
    with pytest.raises(FileNotFoundError, match="init.checkpoint"):
        Trainer(_cfg(tmp_path, "x", "finetune", init={"checkpoint": str(tmp_path / "none.pt")}), ListSet(faces[0]))
    with pytest.raises(ValueError, match="missing or of another shape"):
        Trainer(_cfg(tmp_path, "y", "finetune", init={"checkpoint": str(ckpt)}, model={"width": 16}),
                ListSet(faces[0]))


def test_barlow_twins_and_image_rotation_pretraining(tmp_path, faces):
    views = ListSet(faces[0], T.BarlowTwinsViews(40, puzzle=3))   # 40 px views, resized to the 32 px input
    bt = Trainer(_cfg(tmp_path, "bt", "barlow-twins", tasks={"barlow_twins": {"dim": 64}}, amp="none",
                      optim={"max_steps": 2}), views)
    bt.fit()
    assert math.isfinite(bt.history[-1]["barlow_twins"]) and bt.model.parameter_counts()["barlow_twins"] > 0
    with pytest.raises(ValueError, match="BarlowTwinsViews"):
        Trainer(_cfg(tmp_path, "bt2", "barlow-twins", tasks={"barlow_twins": {"dim": 64}}, amp="none",
                     optim={"max_steps": 1}), ListSet(faces[0])).fit()
    rot = Trainer(_cfg(tmp_path, "rot", "ssl-rotation", tasks={"ssl_rotation": False, "ssl_image_rotation": {}},
                       amp="none", optim={"max_steps": 2}), ListSet(faces[0]))
    rot.fit()
    assert math.isfinite(rot.history[-1]["ssl_image_rotation"])


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("hmtl-*.yaml")), ids=lambda p: p.name)
def test_paper_configs_resolve(path):
    cfg = load_config(path)
    assert cfg["recipe"] in RECIPES and cfg["tasks"]
    names = {"hopenet", "pose_regression", "ssl_puzzle", "ssl_rotation", "ssl_puzzle_rotation",
             "barlow_twins", "ssl_image_rotation"}
    assert set(cfg["tasks"]) <= names
    import pyface.data as D

    for spec in (cfg["data"]["train"], cfg["data"]["val"]):   # every named reader / transform exists
        if spec:
            assert spec["type"] in D.DATASETS, spec["type"]
            for t in spec.get("transform") or []:
                assert t["type"] in D.TRANSFORMS, t["type"]
    if cfg["init"]["checkpoint"]:
        assert cfg["recipe"] in ("hmtl", "finetune", "linear-eval")


def test_demo_hmtl_quick(tmp_path, capsys):
    import json

    from pyface.cli import main

    assert main(["demo", "--recipe", "hmtl", "--quick", "--out", str(tmp_path)]) == 0
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["same_initial_weights"] is True
    for name in ("SL", "HMTL"):
        assert math.isfinite(m[name]["pose_mae_deg"]) and m[name]["val_curve"]
    assert m["HMTL"]["parameters"]["total"] > m["SL"]["parameters"]["total"]
    assert m["HMTL"]["parameters"]["hopenet"] == m["SL"]["parameters"]["hopenet"]
    assert (tmp_path / "hmtl_vs_sl.png").exists() and (tmp_path / "hmtl" / "loss_curves.png").exists()
    assert "HMTL - SL" in capsys.readouterr().out


def test_hmtl_bf16_amp_step(tmp_path, faces):
    """The recipes' default AMP: finite losses with bf16 autocast (losses computed in fp32)."""
    tr = Trainer(_cfg(tmp_path, "amp", tasks={"ssl_puzzle": False, "ssl_puzzle_rotation": {"k": 2}},
                      amp="bf16", optim={"max_steps": 2}), ListSet(faces[0]))
    r = tr.train_step(torch.utils.data.default_collate(faces[0][:8]))
    assert all(math.isfinite(float(v)) for v in r.values()) and set(r) == {"loss", "hopenet", "ssl_puzzle_rotation"}
