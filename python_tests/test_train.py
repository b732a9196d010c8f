"""Trainer smoke tests: a tiny model for a few steps, atomic checkpoints, exact resume
after a simulated kill, loss masking of missing labels, configs and metrics."""
import math

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from pyface.eval import metrics as M
from pyface.models import model_config
from pyface.train import MultiTaskLoss, TaskContext, Trainer, resolve_config
from pyface.train.trainer import lr_factor


class TinyFaces(Dataset):
    """The sample contract with random content and a random augmentation (global torch
    RNG) so that resume must reproduce the per-item seeding."""

    def __init__(self, n=40, ids=5, size=32, offset=0, missing=False):
        self.n, self.ids, self.size, self.offset, self.missing = n, ids, size, offset, missing
        self.num_identities = ids

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        img = torch.randint(0, 256, (3, self.size, self.size), generator=g, dtype=torch.uint8)
        shift = int(torch.randint(0, 3, ()).item())          # "augmentation"
        img = torch.roll(img, shift, dims=2)
        lmk = torch.rand(68, 2, generator=g) * self.size
        pose = (torch.rand(3, generator=g) - 0.5) * 60
        ident = i % self.ids + self.offset
        if self.missing and i % 3 == 0:
            lmk, pose, ident = torch.full((68, 2), math.nan), torch.full((3,), math.nan), -1
        return {"image": img, "landmarks": lmk.float(), "pose": pose.float(),
                "identity": torch.tensor(ident, dtype=torch.int64), "source": "tiny"}


def _cfg(tmp_path, name, **over):
    cfg = {"out_dir": str(tmp_path / name), "recipe": "mtl", "device": "cpu", "progress": False,
           "tensorboard": False, "checkpoint_every": 3, "log_every": 1, "val_pairs": 40,
           "model": {"preset": "iresnet-tiny-multi", "dropout": 0.2, "input_size": 32},
           "data": {"train": {}, "batch_size": 8},
           "optim": {"lr": 0.05, "max_steps": 8}}
    cfg.update(over)
    return resolve_config(cfg)


class _Kill(Exception):
    pass


def _params(tr):
    return {k: v.clone() for k, v in {**tr.model.state_dict(), **tr.loss.state_dict()}.items()}


def test_train_checkpoint_and_exact_resume(tmp_path):
    val = TinyFaces(n=20, offset=100)
    ref = Trainer(_cfg(tmp_path, "ref"), TinyFaces(missing=True), val)
    ref.fit()
    assert ref.step == 8 and (tmp_path / "ref" / "checkpoints" / "last.pt").exists()
    assert (tmp_path / "ref" / "train.csv").exists() and (tmp_path / "ref" / "loss_curves.png").exists()
    assert (tmp_path / "ref" / "val.csv").exists()

    def kill(tr):
        if tr.step == 4:  # checkpoint was written at step 3; step 4 is lost
            raise _Kill

    a = Trainer(_cfg(tmp_path, "run"), TinyFaces(missing=True), val)
    with pytest.raises(_Kill):
        a.fit(callback=kill)
    b = Trainer(_cfg(tmp_path, "run"), TinyFaces(missing=True), val)
    assert b.resume() and b.step == 3
    b.fit()
    pr, pb = _params(ref), _params(b)
    assert pr.keys() == pb.keys()
    for k in pr:
        assert torch.equal(pr[k], pb[k]), k
    assert [r["loss"] for r in ref.history] == [r["loss"] for r in b.history]
    # logs after the resume hold exactly one row per step
    rows = (tmp_path / "run" / "train.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 8
    # something was learned from the first step: the weights moved
    fresh = Trainer(_cfg(tmp_path, "fresh"), TinyFaces(), val)
    assert not torch.equal(fresh.model.state_dict()["shared.0.0.weight"], pb["shared.0.0.weight"])


def test_loss_masks_missing_labels_and_fused_matches_reference():
    torch.manual_seed(0)
    B = 6
    out = {"embedding": torch.randn(B, 16, requires_grad=True),
           "landmarks": (torch.rand(B, 68, 2) * 64).requires_grad_(),
           "pose": (torch.randn(B, 3) * 20).requires_grad_()}
    batch = {"identity": torch.tensor([0, 1, -1, 2, 1, -1]), "landmarks": torch.rand(B, 68, 2) * 64,
             "pose": torch.randn(B, 3) * 30}
    batch["landmarks"][1] = math.nan
    batch["pose"][4] = math.nan
    mc = model_config("iresnet-tiny-multi", embedding_dim=16)
    fused = MultiTaskLoss({"fr": {"num_classes": 3}, "fld": {"unit": 1.0}, "hpe": {}}, TaskContext(mc, fused=True))
    ref = MultiTaskLoss({"fr": {"num_classes": 3}, "fld": {"unit": 1.0}, "hpe": {}}, TaskContext(mc, fused=False))
    ref.load_state_dict(fused.state_dict())
    tf, pf = fused(out, batch)
    tr, pr = ref(out, batch)
    assert torch.isfinite(tf)
    for k in ("fr", "fld", "hpe"):
        torch.testing.assert_close(pf[k], pr[k], rtol=1e-4, atol=1e-4)
    # HPE term is exactly the MAE over rows with a known pose
    keep = torch.tensor([True, True, True, True, False, True])
    torch.testing.assert_close(pf["hpe"], (out["pose"][keep] - batch["pose"][keep]).abs().mean())
    gf = torch.autograd.grad(tf, [out["embedding"], out["landmarks"], out["pose"]])
    gr = torch.autograd.grad(tr, [out["embedding"], out["landmarks"], out["pose"]])
    for a, b in zip(gf, gr):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert gf[1][1].abs().sum() == 0 and gf[2][4].abs().sum() == 0  # masked rows get no gradient
    # no usable row at all: terms are 0, not nan
    empty = {k: v.clone() for k, v in batch.items()}
    empty["pose"][:] = math.nan
    empty["identity"][:] = -1
    t, p = fused(out, empty)
    assert float(t.detach()) == 0.0 and float(p["hpe"]) == 0.0


def test_config_validation_and_schedule(tmp_path):
    with pytest.raises(ValueError, match="recipe"):
        resolve_config({"recipe": "nope", "data": {"train": {}}})
    with pytest.raises(ValueError, match="amp"):
        resolve_config({"amp": "fp8", "data": {"train": {}}})
    with pytest.raises(ValueError, match=r"^lr: unknown key \(did you mean 'optim.lr'\?\)$"):
        resolve_config({"lr": 1, "data": {"train": {}}})
    cfg = resolve_config({"recipe": "pretrain-fld-hpe", "data": {"train": {}}})
    assert cfg["model"]["preset"] == "resnet50-fld-hpe" and cfg["model"]["tasks"] == ["fld", "hpe"]
    o = cfg["optim"]
    assert lr_factor(0, 100, 2000, o) == 1.0 and lr_factor(250, 100, 2000, o) == pytest.approx(0.81)


def test_metrics():
    gt = np.random.default_rng(0).uniform(10, 50, (5, 68, 2))
    assert M.nme(gt, gt) == 0.0
    shifted = gt + np.array([3.0, 4.0])
    d = M.landmark_bbox_size(gt)
    np.testing.assert_allclose(M.nme(shifted, gt, reduce=False), 5.0 / d)
    io = np.linalg.norm(gt[:, 36] - gt[:, 45], axis=1)
    np.testing.assert_allclose(M.nme(shifted, gt, norm="interocular", reduce=False), 5.0 / io)
    assert M.pose_mae([[1, 2, 3]], [[0, 0, 0]])["mae"] == pytest.approx(2.0)
    ids = np.repeat(np.arange(20), 5)
    pairs, same = M.verification_pairs(ids, 200)
    assert same.sum() == (~same).sum() == 100
    assert (ids[pairs[same, 0]] == ids[pairs[same, 1]]).all() and (ids[pairs[~same, 0]] != ids[pairs[~same, 1]]).all()
    centres = np.random.default_rng(1).normal(size=(20, 32))
    good = centres[ids] + 0.05 * np.random.default_rng(2).normal(size=(100, 32))
    assert M.verification_accuracy(good, pairs, same)["accuracy"] >= 0.98
    rnd = np.random.default_rng(3).normal(size=(100, 32))
    assert M.verification_accuracy(rnd, pairs, same)["accuracy"] < 0.75


def test_cli_train_yaml_synthetic_and_resume(tmp_path):
    from pyface.cli import main

    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"""
recipe: stl-hpe
out_dir: {tmp_path / 'run'}
device: cpu
progress: false
tensorboard: true
checkpoint_every: 1
model: {{preset: iresnet-tiny-multi, input_size: 32}}
data:
  train: {{type: SyntheticFaces, num_identities: 4, images_per_identity: 4, image_size: 32,
          transform: [{{type: RandomHorizontalFlip, p: 0.5}}]}}
  val: {{type: SyntheticFaces, num_identities: 2, images_per_identity: 4, image_size: 32, identity_offset: 4}}
  batch_size: 8
optim: {{max_steps: 3}}
""")
    assert main(["train", "--config", str(cfg)]) == 0
    run = tmp_path / "run"
    assert (run / "model.pt").exists() and any((run / "tb").iterdir())
    val = (run / "val.csv").read_text()
    assert "pose_mae_deg" in val and "nme" not in val  # stl-hpe: pose only
    st = torch.load(run / "checkpoints" / "last.pt", weights_only=False)
    assert st["step"] == 3 and set(st["model_config"]["tasks"]) == {"hpe"}
    assert main(["train", "--config", str(cfg), "--resume"]) == 0  # already finished: no-op resume


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_amp_steps(tmp_path, amp):
    tr = Trainer(_cfg(tmp_path, amp, amp=amp, checkpoint_every=100, optim={"lr": 0.05, "max_steps": 2}),
                 TinyFaces(n=16), None)
    tr.fit()
    assert tr.step == 2 and all(math.isfinite(r["loss"]) for r in tr.history)
    assert tr.scaler.is_enabled() == (amp == "fp16")


@pytest.mark.parametrize("fmt", ["manifest", "300wlp"])
def test_cli_train_from_files_on_disk(tmp_path, fmt):
    """The YAML dataset specs users point at real data: a Parquet manifest (MTL) and a
    300W-LP folder (the labeling net's recipe), written here in their exact formats."""
    from pyface.cli import main
    from pyface.data import SyntheticFaces
    from pyface.data.manifest import write_manifest_dataset
    from pyface.data.w300lp import write_300wlp

    samples = [SyntheticFaces(3, 4, image_size=32, seed=1)[i] for i in range(12)]
    if fmt == "manifest":
        path = write_manifest_dataset(str(tmp_path / "data"), samples)
        recipe, spec = "mtl", f"{{type: ManifestDataset, path: {path}}}"
    else:
        write_300wlp(str(tmp_path / "300W_LP"), samples)
        recipe, spec = "pretrain-fld-hpe", f"{{type: W300LP, root: {tmp_path / '300W_LP'}, subsets: [AFW]}}"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"""
recipe: {recipe}
out_dir: {tmp_path / 'run'}
device: cpu
progress: false
tensorboard: false
checkpoint_every: 2
model: {{preset: iresnet-tiny-multi, input_size: 32}}
data:
  train: {spec}
  batch_size: 4
optim: {{max_steps: 2}}
""")
    assert main(["train", "--config", str(cfg)]) == 0
    rows = (tmp_path / "run" / "train.csv").read_text().strip().splitlines()
    assert len(rows) >= 2 and "nan" not in rows[-1].lower()


def test_tasks_section_and_moved_options():
    cfg = resolve_config({"recipe": "mtl", "tasks": {"fld": {"weight": 50}, "fr": False}, "data": {"train": {}}})
    assert list(cfg["tasks"]) == ["fld", "hpe"] and cfg["tasks"]["fld"]["weight"] == 50
    assert cfg["tasks"]["hpe"]["weight"] == 10.0 and cfg["model"]["tasks"] == ["fld", "hpe"]
    assert list(resolve_config({"tasks": ["hpe"], "data": {"train": {}}})["tasks"]) == ["hpe"]
    with pytest.raises(ValueError, match=r"^tasks\.hpe\.alpha: unknown key"):
        resolve_config({"tasks": {"hpe": {"alpha": 1}}, "data": {"train": {}}})
    with pytest.raises(ValueError, match="unknown task"):
        resolve_config({"tasks": ["age"], "data": {"train": {}}})
    with pytest.raises(ValueError, match=r"loss.lambda_fld -> tasks.fld.weight"):
        resolve_config({"loss": {"lambda_fld": 1.0}, "data": {"train": {}}})
    with pytest.raises(ValueError, match="optim.name"):
        resolve_config({"optim": {"name": "lbfgs"}, "data": {"train": {}}})
    o = {"schedule": "multistep", "milestones": [2, 5], "gamma": 0.1}
    assert [lr_factor(e * 10, 10, 100, o) for e in (0, 1, 2, 4, 5, 9)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])


def test_a_registered_task_and_recipe_train_as_peers(tmp_path):
    """A new task (its own head, loss, batch transform, metric) and recipe plug in
    without touching the trainer, and its prepare hook is deterministic under resume."""
    from torch import nn

    from pyface.models import HEADS, register_head
    from pyface.train import RECIPES, TASKS, Task, register_recipe, register_task

    @register_head("test_bright", output="brightness", branch_point=2)
    def _head(cfg, trunk, **_):
        return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.LazyLinear(1))

    @register_task("test_bright")
    class Brightness(Task):
        head = "test_bright"
        defaults = {"weight": 2.0}
        label_keys = ("pose",)

        def prepare(self, batch, generator=None):
            # a batch-level transform that writes its own label
            s = torch.rand(batch["image"].shape[0], generator=generator, device=batch["image"].device)
            return {**batch, "image": (batch["image"].float() * s[:, None, None, None]).to(batch["image"].dtype),
                    "bright": s}

        def loss(self, outputs, batch):
            return ((outputs["brightness"][:, 0] - batch["bright"]) ** 2).mean()

        def metrics(self, pred):
            return {"bright_rows": float(len(pred["brightness"]))}

    register_recipe("test-bright", tasks=("hpe", "test_bright"), preset="iresnet-tiny-multi")
    try:
        cfg = _cfg(tmp_path, "b", recipe="test-bright")
        cfg["model"]["tasks"] = None
        cfg = resolve_config(cfg)
        assert cfg["model"]["tasks"] == ["hpe", "test_bright"]
        tr = Trainer(cfg, TinyFaces(), TinyFaces(n=10, offset=50))
        m = tr.fit()
        assert m["bright_rows"] == 10.0 and "pose_mae_deg" in m and "verification_accuracy" not in m
        assert "test_bright" in tr.history[-1] and math.isfinite(tr.history[-1]["test_bright"])

        def kill(t):
            if t.step == 4:
                raise _Kill

        a = Trainer(resolve_config({**cfg, "out_dir": str(tmp_path / "b2")}), TinyFaces(), TinyFaces(n=10, offset=50))
        with pytest.raises(_Kill):
            a.fit(callback=kill)
        b = Trainer(resolve_config({**cfg, "out_dir": str(tmp_path / "b2")}), TinyFaces(), TinyFaces(n=10, offset=50))
        b.fit(resume=True)
        assert [r["loss"] for r in tr.history] == [r["loss"] for r in b.history]
    finally:
        HEADS.unregister("test_bright"), TASKS.unregister("test_bright"), RECIPES.unregister("test-bright")


def test_only_resolve_s_own_result_is_taken_as_resolved(tmp_path):
    """A dict with 'recipe' and 'optim' used to be trusted as resolved (and failed later
    on a missing key); now only resolve()'s result is, everything else gets resolved."""
    import yaml

    from pyface.train.config import ResolvedConfig, merge

    partial = {"recipe": "mtl", "optim": {"max_steps": 2}, "out_dir": str(tmp_path / "p"), "device": "cpu",
               "progress": False, "tensorboard": False, "model": {"preset": "iresnet-tiny-multi", "input_size": 32},
               "tasks": ["hpe"], "data": {"train": "given", "batch_size": 8}}
    tr = Trainer(partial, TinyFaces())
    assert tr.cfg["optim"]["lr"] == 0.01 and tr.cfg["optim"]["schedule"] == "exp" and tr.total_steps == 2
    assert isinstance(tr.cfg, ResolvedConfig) and tr.cfg["tasks"]["hpe"]["weight"] == 10.0
    with pytest.raises(ValueError, match="optim.name"):  # a partial dict is validated, not trusted
        Trainer({**partial, "optim": {"name": "lbfgs"}}, TinyFaces())
    cfg = resolve_config(partial)
    assert Trainer(cfg, TinyFaces()).cfg is cfg  # resolve()'s own result is used as it is
    assert type(merge(cfg, {"seed": 1})) is dict  # an override merged in is resolved again
    assert yaml.safe_load(yaml.safe_dump(cfg)) == dict(cfg)
