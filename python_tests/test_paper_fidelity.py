"""The papers as written (issue 18; docs/papers.md names these tests): every default that
follows Lee et al. 2024 / Pourmirzaei et al., and every deliberate deviation kept as a
named option."""
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from pyface import geometry
from pyface.data import SyntheticFaces
from pyface.errors import ConfigError
from pyface.models import MultiTaskNet, model_config
from pyface.train import MultiTaskLoss, TaskContext, load_config, resolve_config

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "pyface" / "train" / "configs"


@pytest.fixture(scope="module")
def faces():
    s = SyntheticFaces(6, 4, image_size=112, seed=3)
    return [s[i] for i in range(len(s))]


def _batch(faces, n=8):
    return (torch.stack([f["landmarks"] for f in faces[:n]]), torch.stack([f["pose"] for f in faces[:n]]))


# ----------------------------------------------------------------- 1. the face-area crop
@pytest.mark.parametrize("name", ["mtl-iresnet50.yaml", "pretrain-fld-hpe.yaml"])
def test_paper_recipes_train_on_random_face_area_crops(tmp_path, faces, name):
    """Sec. 3.2: "cut out arbitrary face areas between the maximum and minimum areas"."""
    from pyface.data import open_dataset
    from pyface.data.manifest import write_manifest_dataset
    from pyface.data.w300lp import write_300wlp

    cfg = load_config(CONFIGS / name)
    spec = dict(cfg["data"]["train"])
    crops = [t for t in spec["transform"] if t["type"] == "RandomFaceCrop"]
    side = model_config(cfg["model"]["preset"]).input_size
    assert len(crops) == 1 and crops[0]["out_size"] == side and crops[0]["min_area"] < crops[0]["max_area"]
    # the spec opens, and every sample is a square crop of the input size around the face
    if spec["type"] == "W300LP":
        write_300wlp(str(tmp_path / "w"), faces[:4], subset="AFW")
        spec["root"], spec["subsets"] = str(tmp_path / "w"), ["AFW"]
    else:
        spec["path"] = write_manifest_dataset(str(tmp_path / "m"), faces[:4])
    ds = open_dataset(spec)
    sizes = []
    for i in range(len(ds)):
        torch.manual_seed(i)
        s = ds[i]
        assert s["image"].shape == (3, side, side)
        lo, hi = s["landmarks"].min(0).values, s["landmarks"].max(0).values
        assert (lo >= -1).all() and (hi <= side + 1).all()   # min_area >= 1 keeps the whole face box
        sizes.append(float((hi - lo).max()))
    assert max(sizes) > 1.1 * min(sizes)                      # random areas, not one fixed crop


# ----------------------------------------------------------------- 2. 3D-projected landmarks
def test_300wlp_reader_returns_3d_points_by_default(tmp_path, faces):
    from pyface.data import W300LP
    from pyface.data.w300lp import write_300wlp

    lm3 = [f["landmarks"].numpy() + np.array([3.0, -2.0]) for f in faces[:2]]   # pts_3d != pt2d
    write_300wlp(str(tmp_path / "a"), faces[:2], subset="AFW", landmarks_3d=lm3)
    write_300wlp(str(tmp_path / "b"), faces[:2], subset="AFW", landmarks_3d=[x + 1.0 for x in lm3],
                 pt3d_in_mat=True)                                                 # the image .mat has pt3d_68
    a3, a2 = W300LP(str(tmp_path / "a"), subsets=["AFW"]), W300LP(str(tmp_path / "a"), subsets=["AFW"], landmarks="2d")
    b3 = W300LP(str(tmp_path / "b"), subsets=["AFW"], flip=False)
    for i in range(2):
        np.testing.assert_allclose(a3[i]["landmarks"].numpy(), lm3[i], atol=1e-4)
        np.testing.assert_allclose(a2[i]["landmarks"].numpy(), faces[i]["landmarks"].numpy(), atol=1e-4)
        np.testing.assert_allclose(b3[i]["landmarks"].numpy(), lm3[i] + 1.0, atol=1e-4)   # pt3d_68 wins
    # _Flip images: the 3D points mirrored (the landmarks folder has no _Flip entries)
    from pyface.data.sample import mirror_landmarks

    w = faces[0]["image"].shape[-1]
    np.testing.assert_allclose(a3[2]["landmarks"].numpy(), mirror_landmarks(torch.from_numpy(lm3[0]), w).numpy(),
                               atol=1e-4)
    # the paper's recipe asks for them by name
    assert load_config(CONFIGS / "pretrain-fld-hpe.yaml")["data"]["train"]["landmarks"] == "3d"
    with pytest.raises(ValueError, match="landmarks"):
        W300LP(str(tmp_path / "a"), landmarks="pt3d")


# ----------------------------------------------------------------- 3. units of Eq. 3-5
def _fld(units, lambda_p="dynamic", **opts):
    return MultiTaskLoss({"fld": {"units": units, "lambda_p": lambda_p, **opts}},
                         TaskContext(model_config("iresnet50-multi")))


def _terms(loss, gt, pose, err, seed=0):
    g = torch.Generator().manual_seed(seed)
    pred = gt + torch.randn(gt.shape, generator=g) * err / math.sqrt(2)   # ~err px per point
    total, parts = loss({"landmarks": pred}, {"landmarks": gt, "pose": pose})
    return pred, {k: float(v) for k, v in parts.items()}


def test_lambda_mse_is_a_measurable_share_of_l_fld_for_errors_of_a_few_pixels(faces):
    """Sec. 3.2.2: Wing for small errors, lambda_P * MSE "focuses more on large errors"."""
    gt, pose = _batch(faces)
    share = lambda p: p["fld_lambda_mse"] / p["fld"]  # noqa: E731
    _, fixed = _terms(_fld("pixels", 1.0), gt, pose, 3.0)
    assert 0.3 < share(fixed) < 0.7                       # lambda_P = 1: MSE ~ Wing at 3 px
    dyn = [share(_terms(_fld("pixels"), gt, pose, e)[1]) for e in (1.0, 3.0, 10.0, 30.0)]
    assert dyn[1] > 5e-3 and dyn[2] > 0.05 and dyn[3] > 0.3  # measurable at 3 px, dominant for large errors
    assert dyn == sorted(dyn)
    # the normalised coordinates of pyface < 0.2: the MSE term is ~1e-4 of Wing, Wing ~ 5 L1
    pred, old = _terms(_fld("normalized"), gt, pose, 3.0)
    assert share(old) < 1e-3
    l1 = float((pred - gt).abs().mean()) / 112
    assert old["fld_wing"] == pytest.approx(5 * l1, rel=0.02)
    # in pixels Wing is in its logarithmic part for small errors: well below 5 L1
    pred, new = _terms(_fld("pixels"), gt, pose, 3.0)
    assert new["fld_wing"] < 0.8 * 5 * float((pred - gt).abs().mean()) / 112
    # the logged terms add up to L_FLD; "pixels" is L_FLD in pixels divided by the side
    assert new["fld_wing"] + new["fld_lambda_mse"] == pytest.approx(new["fld"], rel=1e-5)
    _, raw = _terms(_fld("pixels-raw"), gt, pose, 3.0)
    assert raw["fld"] == pytest.approx(112 * new["fld"], rel=1e-5)


def test_trainer_logs_wing_and_lambda_mse_separately(tmp_path):
    import csv

    from pyface.train import Trainer

    cfg = resolve_config({"recipe": "pretrain-fld-hpe", "out_dir": str(tmp_path / "r"), "device": "cpu",
                          "progress": False, "tensorboard": False, "log_every": 1,
                          "model": {"preset": "resnet18-fld-hpe", "width": 8},
                          "data": {"train": {"type": "SyntheticFaces", "num_identities": 4, "images_per_identity": 4,
                                             "image_size": 64}, "batch_size": 8},
                          "optim": {"max_steps": 2}})
    Trainer(cfg).fit()
    rows = list(csv.DictReader(open(tmp_path / "r" / "train.csv")))
    assert len(rows) == 2
    for r in rows:
        assert float(r["fld"]) == pytest.approx(float(r["fld_wing"]) + float(r["fld_lambda_mse"]), rel=1e-4)
        assert float(r["fld_lambda_mse"]) > 0 and 0 < float(r["fld_lambda_p"]) < 1


def test_legacy_unit_spelling_loads_and_conflicts_are_named():
    mc = TaskContext(model_config("iresnet50-multi"))
    old = MultiTaskLoss({"fld": {"unit": None}}, mc).tasks["fld"]       # a config.yaml of pyface < 0.2
    assert (old.coord_div, old.loss_div) == (112.0, 1.0)
    assert MultiTaskLoss({"fld": {"unit": 1.0}}, mc).tasks["fld"].coord_div == 1.0
    new = MultiTaskLoss({"fld": {}}, mc).tasks["fld"]
    assert (new.coord_div, new.loss_div) == (1.0, 112.0) and new.options["units"] == "pixels"
    with pytest.raises(ConfigError, match="units"):
        MultiTaskLoss({"fld": {"unit": 1.0, "units": "pixels"}}, mc)
    with pytest.raises(ConfigError, match="tasks.fld.units"):
        MultiTaskLoss({"fld": {"units": "px"}}, mc)
    # a resolved config round-trips without the legacy key
    c = resolve_config({"data": {"train": "x"}})
    assert "unit" not in c["tasks"]["fld"] and resolve_config({**c, "data": {"train": "x"}})["tasks"] == c["tasks"]


# ----------------------------------------------------------------- 4. mean 3D face, Eq. 8
def test_mean_shape_command_writes_the_paper_face_and_the_config_uses_it(tmp_path, faces):
    from pyface.cli import main
    from pyface.data.w300lp import write_300wlp

    s = SyntheticFaces(24, 2, image_size=112, seed=5, max_yaw=25, max_pitch=15, max_roll=15)
    write_300wlp(str(tmp_path / "w"), [s[i] for i in range(len(s))], subset="AFW", write_flip=False)
    out = tmp_path / "mean.json"
    assert main(["data", "mean-shape", "--data", str(tmp_path / "w"), "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["samples"] > 10 and doc["max_angle_deg"] == 20.0
    shape = geometry.load_mean_shape(out)
    want = geometry.mean_shape_from_300wlp(tmp_path / "w")
    torch.testing.assert_close(shape, want, atol=1e-5, rtol=0)
    task = MultiTaskLoss({"fld": {"mean_shape": str(out)}}, TaskContext(model_config("iresnet50-multi"))).tasks["fld"]
    torch.testing.assert_close(task.mean_shape.double(), shape, atol=1e-6, rtol=0)
    # lambda_P follows the configured face
    gt, pose = _batch(faces)
    _, a = _terms(MultiTaskLoss({"fld": {"mean_shape": str(out)}}, TaskContext(model_config("iresnet50-multi"))),
                  gt, pose, 3.0)
    _, b = _terms(_fld("pixels"), gt, pose, 3.0)
    assert a["fld_lambda_p"] != pytest.approx(b["fld_lambda_p"], rel=1e-3)
    with pytest.raises(ConfigError, match="tasks.fld.mean_shape"):
        MultiTaskLoss({"fld": {"mean_shape": str(tmp_path / "nope.json")}}, TaskContext(None))
    assert main(["data", "mean-shape", "--data", str(tmp_path / "nope"), "--out", str(out)]) == 2


def test_perspective_projection_of_eq8(faces):
    shape = geometry.default_mean_shape(torch.float64)
    pose = torch.tensor([[30.0, -10.0, 5.0], [-50.0, 20.0, -10.0]], dtype=torch.float64)
    ortho = geometry.project_shape(shape, pose)
    far = geometry.project_perspective(shape, pose, fx=112, fy=112, cx=56, cy=56, distance=1e6)
    near = geometry.project_perspective(shape, pose, fx=112, fy=112, cx=56, cy=56, distance=30)
    n = geometry.normalize_shape
    torch.testing.assert_close(n(far), n(ortho), atol=1e-5, rtol=0)     # f, c cancel in lambda_P; far = orthographic
    assert (n(near) - n(ortho)).norm(dim=-1).mean() > 1e-3               # a near camera does not
    with pytest.raises(ValueError, match="behind the camera"):
        geometry.project_perspective(shape, pose, fx=1, fy=1, cx=0, cy=0, distance=1.0)
    # the task: the perspective lambda_P with a far camera equals the fused orthographic one
    gt, p = _batch(faces)
    _, o = _terms(_fld("pixels"), gt, p, 3.0)
    _, q = _terms(_fld("pixels", projection="perspective", camera={"distance": 1e6}), gt, p, 3.0)
    assert q["fld_lambda_p"] == pytest.approx(o["fld_lambda_p"], rel=1e-4)
    assert q["fld"] == pytest.approx(o["fld"], rel=1e-4)
    _, r = _terms(_fld("pixels", projection="perspective", camera={"distance": 25}), gt, p, 3.0)
    assert r["fld_lambda_p"] != pytest.approx(o["fld_lambda_p"], rel=1e-3)
    with pytest.raises(ConfigError, match="camera"):
        _fld("pixels", camera={"focal": 3})


# ----------------------------------------------------------------- 5. gamma_P readings
def test_gamma_readings_of_the_pose_margin():
    from pyface.ops import pose_margin

    pose = torch.tensor([[0.0, 0.0, 0.0], [30.0, -30.0, 30.0], [99.0, 60.0, 40.0]])
    torch.testing.assert_close(pose_margin(pose, 0.3, 0.7), torch.tensor([0.3, 0.65, 1.0]))            # sum/180
    torch.testing.assert_close(pose_margin(pose, 0.3, 0.7, "mean"),
                               torch.tensor([0.3, 0.3 + 0.7 * 90 / 540, 0.3 + 0.7 * 199 / 540]))      # mean/180
    with pytest.raises(ValueError, match="gamma"):
        pose_margin(pose, gamma="max")
    c = resolve_config({"data": {"train": "x"}, "tasks": {"fr": {"gamma": "mean"}}})
    assert c["tasks"]["fr"]["gamma"] == "mean" and resolve_config({"data": {"train": "x"}})["tasks"]["fr"][
        "gamma"] == "sum"
    fr = MultiTaskLoss({"fr": {"num_classes": 4, "gamma": "mean"}}, TaskContext(model_config("iresnet-tiny-multi")))
    assert fr.tasks["fr"].fr.gamma == "mean"
    with pytest.raises(ValueError, match="gamma"):
        MultiTaskLoss({"fr": {"num_classes": 4, "gamma": "max"}}, TaskContext(model_config("iresnet-tiny-multi")))


# ----------------------------------------------------------------- 6. selective fitting
def test_selective_fit_accepts_a_single_valid_sample_by_default():
    from pyface.label import Labeler
    from pyface.ops import selective_fit
    from pyface.ops.reference import selective_fit_loop_reference

    g = torch.Generator().manual_seed(0)
    samples = torch.rand(2, 5, 68, 2, generator=g, dtype=torch.float64) * 50
    poses = torch.rand(2, 5, 3, generator=g, dtype=torch.float64) * 10
    valid = torch.zeros(2, 5, dtype=torch.bool)
    valid[0, 3] = True                       # image 0: one valid sample
    face = torch.full((2,), 50.0, dtype=torch.float64)
    lm, pose, acc, kept = selective_fit(samples, poses, valid, face)
    assert acc.tolist() == [True, False]     # Alg. 1 l. 22-31: one sample is its own mean (image 1: none)
    torch.testing.assert_close(lm[0], samples[0, 3])
    assert not selective_fit(samples, poses, valid, face, min_samples=2)[2][0]   # the stricter rule, on request
    ref = selective_fit_loop_reference(samples.numpy(), poses.numpy(), valid.numpy(), face.numpy())
    assert ref[2].tolist() == [True, False]
    import inspect

    from pyface.cli import commands

    assert inspect.signature(Labeler).parameters["min_samples"].default == 1
    p = commands()["label landmarks"]
    import argparse

    parser = argparse.ArgumentParser()
    p.add_arguments(parser)
    assert parser.parse_args(["--data", "x", "--out", "y"]).min_samples == 1


# ----------------------------------------------------------------- 7. Algorithm 2's scope
def test_duplicates_inside_one_dataset_are_merged_by_default():
    import pyface.label.identities as I

    e = np.eye(4)
    a = I.IdentityEmbeddings.from_arrays("a", [0, 1, 2], [e[0], e[1], e[0] * 0.98 + e[3] * 0.2],
                                         [e[0], e[1], e[0] * 0.98 + e[3] * 0.2])  # a0 and a2: one person
    b = I.IdentityEmbeddings.from_arrays("b", [7, 8], [e[1], e[2]], [e[1], e[2]])  # b7 = a1
    new, edges = I.merge_identities([a, b], 0.9, 0.9)
    assert [x.tolist() for x in new] == [[0, 1, 0], [1, 2]]
    assert sorted(zip(edges["group_a"].tolist(), edges["group_b"].tolist())) == [(0, 0), (0, 1)]
    assert (edges["node_a"] < edges["node_b"]).all()
    cross, _ = I.merge_identities([a, b], 0.9, 0.9, scope="cross")
    assert [x.tolist() for x in cross] == [[0, 1, 2], [1, 3]]
    with pytest.raises(ValueError, match="scope"):
        I.merge_identities([a, b], 0.9, 0.9, scope="some")
    with pytest.raises(ConfigError, match="duplicate_scope"):
        I.run_identities(I.IdentitiesConfig({"a": "x"}, None, None, "o", threshold_a=0.5, threshold_b=0.5,
                                            duplicate_scope="within"))


# ----------------------------------------------------------------- 9. HMTL
def test_heads_start_from_the_same_weights_whatever_other_heads_exist():
    """Pourmirzaei et al. Sec. 5.2: "For all three approaches we initialized the ResNet50
    with identical random weights seed"."""
    def build(tasks, preset="resnet50-tiny-hopenet-64"):
        torch.manual_seed(11)
        net = MultiTaskNet(model_config(preset, tasks=tasks))
        return net.state_dict(), torch.rand(3)

    sl, r1 = build(("hopenet",))
    for tasks in (("hopenet", "ssl_puzzle"), ("ssl_puzzle", "hopenet"), ("ssl_rotation", "hopenet")):
        hm, r2 = build(tasks)
        assert all(torch.equal(v, hm[k]) for k, v in sl.items()), tasks
        assert torch.equal(r1, r2)           # and the global RNG after the model is the same
    mtl, r1 = build(("fr", "fld", "hpe"), "iresnet-tiny-multi")
    stl, r2 = build(("fld",), "iresnet-tiny-multi")
    assert all(torch.equal(v, mtl[k]) for k, v in stl.items()) and torch.equal(r1, r2)


def test_ssl_weight_is_formula_1_3_unless_the_section_4_2_recipe():
    from pyface.train.hmtl import SEC42_SSL_WEIGHT, SSLTileTask

    assert SSLTileTask.defaults["weight"] == 1.0 and SEC42_SSL_WEIGHT == 50.0
    for t in ("ssl_puzzle", "ssl_rotation"):
        extra = {} if t == "ssl_puzzle" else {"ssl_puzzle": False}
        assert resolve_config({"recipe": "hmtl", "data": {"train": "x"}, "tasks": {**extra, t: {}}})["tasks"][t][
            "weight"] == 50.0
    assert resolve_config({"recipe": "ssl-puzzle", "data": {"train": "x"}})["tasks"]["ssl_puzzle"]["weight"] == 1.0
    assert load_config(CONFIGS / "hmtl-table6-subjects.yaml")["tasks"]["ssl_puzzle"]["weight"] == 1.0
    assert load_config(CONFIGS / "hmtl-table1-puzzle2x2-flag3.yaml")["tasks"]["ssl_puzzle"]["weight"] == 1.0
    assert load_config(CONFIGS / "hmtl-table2-hmtl-3x3-puzzle-aug2.yaml")["tasks"]["ssl_puzzle"]["weight"] == 50.0


def _torchvision_resnet(blocks=(3, 4, 6, 3), width=64, seed=0) -> dict:
    """A state dict with torchvision's ResNet (Bottleneck) key names and shapes, random
    values: written from torchvision's published layout, not from pyface's modules."""
    g = torch.Generator().manual_seed(seed)
    sd = {}

    def bn(p, c):
        sd.update({f"{p}.weight": torch.rand(c, generator=g), f"{p}.bias": torch.rand(c, generator=g),
                   f"{p}.running_mean": torch.rand(c, generator=g),
                   f"{p}.running_var": torch.rand(c, generator=g) + 0.5, f"{p}.num_batches_tracked": torch.tensor(7)})

    def conv(p, cout, cin, k):
        sd[f"{p}.weight"] = torch.randn(cout, cin, k, k, generator=g) * 0.05

    conv("conv1", width, 3, 7)
    bn("bn1", width)
    cin = width
    for s, n in enumerate(blocks, start=1):
        planes = width * 2 ** (s - 1)
        for b in range(n):
            p = f"layer{s}.{b}"
            conv(f"{p}.conv1", planes, cin, 1)
            bn(f"{p}.bn1", planes)
            conv(f"{p}.conv2", planes, planes, 3)
            bn(f"{p}.bn2", planes)
            conv(f"{p}.conv3", planes * 4, planes, 1)
            bn(f"{p}.bn3", planes * 4)
            if b == 0:
                conv(f"{p}.downsample.0", planes * 4, cin, 1)
                bn(f"{p}.downsample.1", planes * 4)
            cin = planes * 4
    sd["fc.weight"], sd["fc.bias"] = torch.randn(1000, cin, generator=g), torch.randn(1000, generator=g)
    return sd


def test_imagenet_initialisation_from_a_local_torchvision_state_dict(tmp_path):
    from pyface.train import Trainer

    sd = _torchvision_resnet(width=8, blocks=(1, 1, 1, 1))
    path = tmp_path / "resnet50-random.pth"
    torch.save(sd, path)

    def trainer(init):
        return Trainer(resolve_config({"recipe": "hopenet", "out_dir": str(tmp_path / "r"), "device": "cpu",
                                       "amp": "none", "model": {"preset": "resnet50-tiny-hopenet-64", "width": 8,
                                                                "layers": [1, 1, 1, 1], "input_size": 64},
                                       "init": init, "progress": False, "tensorboard": False,
                                       "data": {"train": {"type": "SyntheticFaces", "num_identities": 2,
                                                          "images_per_identity": 4, "image_size": 64},
                                                "batch_size": 4}}))

    for fmt in ("torchvision", "auto"):
        st = trainer({"checkpoint": str(path), "format": fmt}).model.state_dict()
        torch.testing.assert_close(st["shared.0.0.weight"], sd["conv1.weight"])
        torch.testing.assert_close(st["shared.0.1.running_var"], sd["bn1.running_var"])
        torch.testing.assert_close(st["shared.4.0.conv3.weight"], sd["layer4.0.conv3.weight"])
        torch.testing.assert_close(st["shared.1.0.downsample.1.weight"], sd["layer1.0.downsample.1.weight"])
    # another width (or depth): a one-line error naming the key, before any training
    with pytest.raises(ConfigError, match="init.checkpoint"):
        torch.save(_torchvision_resnet(width=16, blocks=(1, 1, 1, 1)), tmp_path / "wide.pth")
        trainer({"checkpoint": str(tmp_path / "wide.pth"), "format": "torchvision"})
    with pytest.raises(ConfigError, match="init.format"):
        resolve_config({"data": {"train": "x"}, "init": {"format": "keras"}})


def test_imagenet_stage4_goes_to_each_head_of_the_3_to_1_split(tmp_path):
    from pyface.models.torchvision_weights import from_torchvision_resnet, is_torchvision_resnet

    sd = _torchvision_resnet(width=8, blocks=(1, 1, 1, 1))
    assert is_torchvision_resnet(sd) and not is_torchvision_resnet({"shared.0.0.weight": 0})
    net = MultiTaskNet(model_config("resnet50-fld-hpe", width=8, layers=(1, 1, 1, 1), input_size=64))
    got = from_torchvision_resnet(sd, net)
    for h in ("fld", "hpe"):
        torch.testing.assert_close(got[f"heads.{h}.stage4.0.conv2.weight"], sd["layer4.0.conv2.weight"])
    assert "shared.3.0.conv1.weight" in got and not any(k.startswith("fc") for k in got)
    net.load_state_dict(got, strict=False)
    assert torch.isfinite(net(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))["pose"]).all()
    with pytest.raises(ValueError, match="resnet"):
        from_torchvision_resnet(sd, MultiTaskNet(model_config("iresnet-tiny-multi")))


# ----------------------------------------------------------------- 10. README configs
def test_every_config_ships_and_loads():
    for f in sorted(CONFIGS.glob("*.yaml")):
        load_config(f)
    for name in ("eyeblink.yaml", "fr-vgg2.yaml", "fr-ms1mv3.yaml", "mtl-iresnet50.yaml", "pretrain-fld-hpe.yaml"):
        assert (CONFIGS / name).is_file(), name


def test_old_run_config_yaml_still_loads(tmp_path):
    """A config.yaml written by pyface before 0.2 (every resolved option spelled out)."""
    import yaml

    old = resolve_config({"data": {"train": "x"}})
    old = json.loads(json.dumps(old))
    old["tasks"]["fld"] = {"weight": 100.0, "unit": None, "wing_w": 10.0, "wing_eps": 2.0, "lambda_p": "dynamic"}
    old["tasks"]["fr"].pop("gamma")
    old.pop("monitor")
    old["init"].pop("format")
    p = tmp_path / "config.yaml"
    p.write_text(yaml.safe_dump(old))
    c = load_config(p)
    assert c["tasks"]["fld"]["unit"] is None and c["tasks"]["fr"]["gamma"] == "sum"
    assert os.path.basename(p) == "config.yaml"


# ----------------------------------------------------------------- hyper-parameters (Sec. 4)
def test_mtl_recipe_has_the_paper_hyperparameters():
    """Lee et al. Sec. 4: lambda_1 = 100, lambda_2 = 10, Wing w = 10 ("C = 10"), eps = 2,
    s = 64, m1 = 0.3, m2 = 0.7, lr 0.01 x 0.9 per epoch, 20 epochs, IResNet50-Multi at 112
    (3:1 split), the pretrained ResNet50 at 128."""
    c = resolve_config({"data": {"train": "x"}})
    assert c["recipe"] == "mtl" and list(c["tasks"]) == ["fr", "fld", "hpe"]
    fr, fld, hpe = c["tasks"]["fr"], c["tasks"]["fld"], c["tasks"]["hpe"]
    assert (fr["weight"], fr["scale"], fr["m1"], fr["m2"], fr["gamma"], fr["margin_type"]) == (
        1.0, 64.0, 0.3, 0.7, "sum", "cosine")
    assert (fld["weight"], fld["wing_w"], fld["wing_eps"], fld["lambda_p"], fld["units"], fld["projection"]) == (
        100.0, 10.0, 2.0, "dynamic", "pixels", "orthographic")
    assert hpe["weight"] == 10.0
    o = c["optim"]
    assert (o["name"], o["lr"], o["schedule"], o["gamma"], o["epochs"]) == ("sgd", 0.01, "exp", 0.9, 20)
    mc = model_config(c["model"]["preset"])
    assert (mc.arch, mc.input_size) == ("iresnet50", 112)
    p = resolve_config({"recipe": "pretrain-fld-hpe", "data": {"train": "x"}})
    mp = model_config(p["model"]["preset"])
    assert (mp.arch, mp.input_size, list(p["tasks"])) == ("resnet50", 128, ["fld", "hpe"])


@pytest.mark.parametrize("name,expect", [
    ("mtl-iresnet50.yaml", {"recipe": "mtl", "preset": "iresnet50-multi", "train": "ManifestDataset", "bins": 3}),
    ("pretrain-fld-hpe.yaml", {"recipe": "pretrain-fld-hpe", "preset": "resnet50-fld-hpe", "train": "W300LP"}),
    ("fr-vgg2.yaml", {"recipe": "stl-fr", "arch": "resnet50", "train": "RecordIOFaces", "bins": 3, "best": "lfw"}),
    ("fr-ms1mv3.yaml", {"recipe": "stl-fr", "arch": "resnet50", "train": "RecordIOFaces", "bins": 3, "best": "lfw"}),
    ("eyeblink.yaml", {"recipe": "eyeblink", "preset": "resnet18-eyeblink", "train": "EyeFolder"}),
    ("hmtl-table2-hmtl-3x3-puzzle-aug1-imagenet.yaml", {"recipe": "hmtl", "init": "torchvision", "train": "W300LP"}),
])
def test_paper_configs_match_their_table_rows(name, expect):
    """The configs named in docs/papers.md for Tables 3, 5-7 (Lee et al.) and Table 2
    (Pourmirzaei et al.) hold what the row says."""
    c = load_config(CONFIGS / name)
    assert c["recipe"] == expect["recipe"] and c["data"]["train"]["type"] == expect["train"]
    if "preset" in expect:
        assert c["model"]["preset"] == expect["preset"]
    if "arch" in expect:   # Table 3: "Ours (pretrained)-ResNet50"
        assert model_config(c["model"]["preset"], arch=c["model"]["arch"]).arch == expect["arch"]
    assert len(c["monitor"]["bins"]) == expect.get("bins", 0) and c["monitor"]["best"] == expect.get(
        "best", c["monitor"]["best"])
    if "init" in expect:
        assert c["init"]["format"] == expect["init"] and c["init"]["checkpoint"].endswith(".pth")
