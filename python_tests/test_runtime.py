"""pyface.runtime: one loader for every checkpoint (safe, legacy weights upgraded, errors
naming the file), devices, the AMP policy, input preparation and flip-sum embeddings --
and every loader of the package going through it."""
import os
import pickle
import random

import numpy as np
import pytest
import torch

from pyface import runtime as R
from pyface.errors import CheckpointError, ConfigError, UsageError
from pyface.models import MultiTaskNet, build_model


def _model(preset="iresnet-tiny-multi", seed=0, **kw):
    torch.manual_seed(seed)
    m = build_model(preset, **kw)
    with torch.no_grad():  # non-trivial BN statistics: the loaded net must reproduce them
        for mod in m.modules():
            if isinstance(mod, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                mod.running_mean.uniform_(-0.1, 0.1)
                mod.running_var.uniform_(0.5, 1.5)
    return m.eval()


def _legacy(sd: dict) -> dict:
    """Today's weights in the layout written before the head registry: ``stage4.<t>.*``
    beside ``heads.<t>.*`` (the reverse of the upgrade)."""
    old = {}
    for k, v in sd.items():
        p = k.split(".")
        if p[0] == "heads" and p[2] == "stage4":
            old[".".join(["stage4", p[1]] + p[3:])] = v
        elif p[0] == "heads" and p[2] == "head":
            old[".".join(["heads", p[1]] + p[3:])] = v
        else:
            old[k] = v
    return old


def _images(n=3, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)


def _same_outputs(a, b, x):
    with torch.no_grad():
        oa, ob = a.eval()(x), b.eval()(x)
    assert set(oa) == set(ob)
    for k in oa:
        torch.testing.assert_close(oa[k], ob[k], rtol=0, atol=0)


# ---------------------------------------------------------------------------- devices and AMP
def test_resolve_device_accepts_the_documented_names_and_names_the_argument():
    cpu = torch.device("cpu")
    auto = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert R.resolve_device(None) == R.resolve_device("auto") == R.resolve_device("") == auto
    assert R.resolve_device("cpu") == R.resolve_device(cpu) == cpu
    with pytest.raises(UsageError, match=r"^--device: 'tpu' is not a device \(use auto, cpu, cuda or cuda:N\)$"):
        R.resolve_device("tpu", what="--device")
    with pytest.raises(ConfigError, match=r"^device: 'gpu' is not a device"):
        R.resolve_device("gpu")
    with pytest.raises(ConfigError, match="^device: 'meta' is not supported"):
        R.resolve_device("meta")
    with pytest.raises(ConfigError, match="expected a device name"):
        R.resolve_device(0)
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    with pytest.raises(UsageError, match=rf"^--net-device: 'cuda:{n}' requested but"):
        R.resolve_device(f"cuda:{n}", what="--net-device")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="^device: 'cuda' requested but CUDA is not available$"):
            R.resolve_device("cuda")


def test_amp_policy():
    assert R.amp_dtype(True, "cpu") is None  # inference on the CPU runs fp32
    assert R.amp_dtype(True, "cuda") is torch.float16 and R.INFERENCE_AMP == "fp16"
    assert R.amp_dtype("bf16", "cpu") is torch.bfloat16 and R.amp_dtype("fp16", "cuda") is torch.float16
    for off in (False, None, "none"):
        assert R.amp_dtype(off, "cuda") is None
    with pytest.raises(ConfigError, match="amp: expected"):
        R.amp_dtype("fp8", "cpu")
    with torch.autocast("cpu", dtype=torch.bfloat16):  # fp32 means fp32, even inside an autocast region
        with R.autocast("cpu", False):
            assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    with R.autocast("cpu", "bf16"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16


# ---------------------------------------------------------------------------- input and embeddings
def test_prepare_input_is_the_nets_normalisation_and_resize():
    x = _images(2, 40)
    got = R.prepare_input(x)
    torch.testing.assert_close(got, (x.float() - 127.5) / 128.0, rtol=0, atol=0)
    torch.testing.assert_close(got, MultiTaskNet.normalize(x), rtol=0, atol=0)
    r = R.prepare_input(x, 64)
    want = torch.nn.functional.interpolate(got, size=(64, 64), mode="bilinear", align_corners=False, antialias=True)
    assert r.shape == (2, 3, 64, 64) and torch.equal(r, want)
    assert R.prepare_input(got) is got  # a float tensor is taken as normalised


def test_flip_sum_embedding():
    m = _model()
    x = _images(4)
    with torch.no_grad():
        want = m(x)["embedding"].float() + m(x.flip(3))["embedding"].float()
    e = R.embed(m, x)
    torch.testing.assert_close(e, want, rtol=0, atol=0)
    torch.testing.assert_close(R.embed(m, x.flip(3)), e, rtol=1e-5, atol=1e-5)  # mirror-invariant
    u = R.embed(m, x, normalize=True)
    torch.testing.assert_close(u.norm(dim=1), torch.ones(4))
    torch.testing.assert_close(R.embed(m, x, flip=False), m(x)["embedding"].detach(), rtol=0, atol=0)
    out = R.forward(m, x, flip=True)
    torch.testing.assert_close(out["embedding"], want, rtol=0, atol=0)
    with torch.no_grad():
        torch.testing.assert_close(out["pose"], m(x)["pose"], rtol=0, atol=0)  # other heads: the image only
    # resized on the way in, as FR nets see other-sized crops
    big = torch.nn.functional.interpolate(x.float(), size=(80, 80), mode="bilinear").round().to(torch.uint8)
    torch.testing.assert_close(R.embed(m, big, size=64),
                               R.embed(m, R.prepare_input(big, 64)), rtol=0, atol=0)


def test_export_keeps_weights_outputs_and_file(tmp_path):
    m = _model()
    R.save_model(m, tmp_path / "model.pt")
    fr = R.load_model(tmp_path, heads=["fr"], export=True)
    assert fr.tasks == ("fr",) and fr.checkpoint_path == str(tmp_path / "model.pt") and not fr.training
    assert fr.parameter_counts()["total"] < m.parameter_counts()["total"]
    x = _images(2)
    torch.testing.assert_close(R.embed(fr, x), R.embed(m, x), rtol=0, atol=0)


# ---------------------------------------------------------------------------- checkpoints
def test_load_model_from_file_run_folder_and_training_checkpoint(tmp_path):
    m = _model()
    x = _images(2)
    R.save_model(m, tmp_path / "run" / "model.pt")
    assert os.listdir(tmp_path / "run") == ["model.pt"]  # committed, no temporary left
    for src in (tmp_path / "run", tmp_path / "run" / "model.pt"):
        got = R.load_model(src)
        assert got.config == m.config and not got.training and got.checkpoint_path.endswith("model.pt")
        _same_outputs(got, m, x)
    ck = tmp_path / "run2" / "checkpoints"
    ck.mkdir(parents=True)
    torch.save({"model": m.state_dict(), "model_config": m.config.to_dict(), "step": 3}, ck / "last.pt")
    assert R.find_checkpoint(tmp_path / "run2") == ck / "last.pt"
    _same_outputs(R.load_model(tmp_path / "run2"), m, x)


def test_bad_checkpoints_are_one_line_errors_naming_the_file(tmp_path):
    m = _model()
    R.save_model(m, tmp_path / "model.pt")
    data = (tmp_path / "model.pt").read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "random.pt").write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    (tmp_path / "text.pt").write_text("weights: none\n")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    sd = m.state_dict()
    sd.pop(next(k for k in sd if k.startswith("heads.fr.")))
    torch.save({"model": sd, "model_config": m.config.to_dict()}, tmp_path / "short.pt")
    torch.save({"model": m.state_dict(), "model_config": {**m.config.to_dict(), "arch": "vgg"}}, tmp_path / "cfg.pt")
    cases = {"truncated.pt": "not a readable torch checkpoint", "random.pt": "not a readable",
             "text.pt": "not a readable torch checkpoint", "list.pt": "not a pyface checkpoint",
             "foreign.pt": r"not a pyface checkpoint \(needs 'model' and 'model_config', has \['weights'\]\)",
             "short.pt": "weights do not match its model_config", "cfg.pt": "model_config cannot be built"}
    for name, why in cases.items():
        with pytest.raises(CheckpointError, match=why) as e:
            R.load_model(tmp_path / name, what="--net")
        msg = str(e.value)
        assert msg.startswith("--net: ") and name in msg and "\n" not in msg, msg
    with pytest.raises(CheckpointError, match="--net: checkpoint not found: .*nope.pt") as e:
        R.load_model(tmp_path / "nope.pt", what="--net")
    assert isinstance(e.value, FileNotFoundError)
    (tmp_path / "empty_run").mkdir()
    with pytest.raises(FileNotFoundError, match="no model.pt or checkpoints/last.pt"):
        R.load_model(tmp_path / "empty_run")
    with pytest.raises(CheckpointError, match=r"model.pt has heads \['fr', 'fld', 'hpe'\], not \['eyeblink'\]; "
                                              "the eye-blink net"):
        R.load_model(tmp_path / "model.pt", heads=["eyeblink"], purpose="the eye-blink net")


class _Evil:
    """A pickle that would create a file when loaded without weights_only."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_crafted_checkpoint_cannot_run_code(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"model": _Evil(marker), "model_config": {}}, tmp_path / "evil.pt")  # torch's zip format
    with open(tmp_path / "evil_legacy.pt", "wb") as f:  # a bare pickle (torch's legacy format)
        pickle.dump({"model": _Evil(marker), "model_config": {}}, f, protocol=2)
    # the trap is real: an unrestricted load runs it
    torch.load(tmp_path / "evil.pt", weights_only=False)
    assert marker.exists()
    marker.unlink()
    for name in ("evil.pt", "evil_legacy.pt"):
        for load in (lambda p: R.load_model(p), lambda p: R.read_checkpoint(p)):
            with pytest.raises(CheckpointError, match=rf"{name}: not a readable pyface checkpoint: it refers to "
                                                      r"\S*open .*nothing in it was run"):
                load(tmp_path / name)
    assert not marker.exists()


def test_old_training_checkpoint_with_numpy_rng_state_loads_safely(tmp_path):
    """Training checkpoints held numpy's RNG state as an ndarray tuple: still readable with
    the allow-list; new ones hold it as a tensor (nothing but tensors and plain data)."""
    from pyface.train import checkpoint as ckpt

    m = _model()
    np.random.seed(5)
    old_rng = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    torch.save({"model": m.state_dict(), "model_config": m.config.to_dict(), "rng": old_rng,
                "history": [{"nme": np.float64(0.25)}]}, tmp_path / "old.pt")
    st = R.read_checkpoint(tmp_path / "old.pt")
    assert st["history"][0]["nme"] == 0.25
    want = np.random.rand(3)
    np.random.seed(0)
    ckpt.set_rng_state(st["rng"])
    assert np.array_equal(np.random.rand(3), want)
    _same_outputs(R.load_model(tmp_path / "old.pt"), m, _images(2))
    # the current format round-trips through a file with no numpy object in it
    np.random.seed(7)
    ckpt.save_atomic({"rng": ckpt.rng_state()}, tmp_path / "new.pt")
    want = np.random.rand(3)
    assert torch.serialization.get_unsafe_globals_in_checkpoint(tmp_path / "new.pt") == []
    np.random.seed(0)
    ckpt.set_rng_state(R.read_checkpoint(tmp_path / "new.pt")["rng"])
    assert np.array_equal(np.random.rand(3), want)


# ---------------------------------------------------------------------------- legacy weights, every loader
@pytest.fixture
def legacy(tmp_path):
    """model.pt and a training checkpoint written before the head registry, for the
    paper's MTL net (fr + fld + hpe) and the labeler's net (fld + hpe)."""
    out = {}
    for name, kw in (("mtl", {}), ("fldhpe", {"tasks": ["fld", "hpe"]})):
        m = _model(**kw)
        old = _legacy(m.state_dict())
        assert any(k.startswith("stage4.") for k in old) and R.is_legacy_state_dict(old)
        (tmp_path / name / "checkpoints").mkdir(parents=True)
        torch.save({"model": old, "model_config": m.config.to_dict()}, tmp_path / name / "model.pt")
        torch.save({"model": old, "model_config": m.config.to_dict(), "step": 7,
                    "loss": {"fr.weight": torch.ones(4, 8)}, "rng": {"numpy": np.random.get_state()}},
                   tmp_path / name / "checkpoints" / "last.pt")
        out[name] = m
    return tmp_path, out


def test_legacy_checkpoint_loads_in_the_runtime_and_eval(legacy):
    from pyface.eval import runner

    root, models = legacy
    x = _images(2)
    for src in (root / "mtl", root / "mtl" / "model.pt", root / "mtl" / "checkpoints" / "last.pt"):
        _same_outputs(R.load_model(src), models["mtl"], x)
        _same_outputs(runner.load_model(src), models["mtl"], x)
    assert R.upgrade_state_dict(models["mtl"].state_dict()) is not None  # new weights pass through
    assert list(R.upgrade_state_dict(_legacy(models["mtl"].state_dict()))) == list(models["mtl"].state_dict())


def test_legacy_checkpoint_loads_in_the_labeler_and_identities(legacy):
    """``pyface label --net old.pt`` works as ``pyface eval`` does (both through the runtime)."""
    from pyface.label import Labeler
    from pyface.label import identities as I
    from pyface.label.nets import LandmarkPoseNet, load_model

    root, models = legacy
    x = _images(2)
    for src in (root / "fldhpe" / "model.pt", root / "fldhpe" / "checkpoints" / "last.pt"):
        net = LandmarkPoseNet(str(src))
        lm, pose = net(x)
        with torch.no_grad():
            want = models["fldhpe"](x)
        assert torch.equal(lm, want["landmarks"]) and torch.equal(pose, want["pose"])
        lab = Labeler(str(src), mediapipe=False, views=2, device="cpu")
        r = lab.label_images([x[0].permute(1, 2, 0).numpy().copy()])
        assert len(r) == 1
    _same_outputs(load_model(root / "mtl" / "model.pt", "--net-a"), models["mtl"], x)
    fr = I.FRNet(str(root / "mtl" / "model.pt"), "--net-a", device="cpu")
    torch.testing.assert_close(fr.embed(x), R.embed(models["mtl"], x, normalize=True), rtol=1e-5, atol=1e-6)


def test_legacy_checkpoint_in_the_trainer(legacy, tmp_path):
    """Fine-tuning starts from an old checkpoint's (upgraded) weights; resuming its
    training state, whose loss and optimizer layout predate the task registry, is a
    CheckpointError naming the file and the way out."""
    from pyface.train import Trainer, resolve_config

    root, models = legacy
    m = models["mtl"]
    cfg = resolve_config({"out_dir": str(tmp_path / "ft"), "device": "cpu", "progress": False, "tensorboard": False,
                          "model": {"preset": "iresnet-tiny-multi"}, "data": {"train": "given"},
                          "tasks": {"fr": {"num_classes": 4}},
                          "init": {"checkpoint": str(root / "mtl" / "model.pt"), "modules": ["shared", "heads"]}})
    tr = Trainer(cfg, list(range(64)))
    for k, v in m.state_dict().items():
        assert torch.equal(tr.model.state_dict()[k], v), k
    with pytest.raises(CheckpointError, match=r"last.pt was written by an older pyface .* init: \{checkpoint: "):
        tr.resume(root / "mtl" / "checkpoints" / "last.pt")


def test_one_old_checkpoint_in_every_command(legacy, tmp_path, capsys):
    """The same pre-registry checkpoint through ``pyface eval`` and ``pyface label``
    (before the runtime, eval upgraded it and the labeler failed on its keys)."""
    from pyface.cli import main
    from pyface.data import SyntheticFaces, write_aflw2000, write_image_folder

    root, _ = legacy
    faces = SyntheticFaces(3, 2, image_size=64, seed=2)
    write_aflw2000(str(tmp_path / "AFLW2000"), [faces[i] for i in range(len(faces))])
    write_image_folder(str(tmp_path / "img"), [faces[i] for i in range(len(faces))])
    old = str(root / "fldhpe" / "model.pt")
    assert main(["eval", "landmarks", "--checkpoint", old, "--aflw2000", str(tmp_path / "AFLW2000"),
                 "--out", str(tmp_path / "ev"), "--no-progress", "--device", "cpu", "--cache", ""]) == 0
    assert (tmp_path / "ev" / "report.json").is_file()
    assert main(["label", "landmarks", "--data", str(tmp_path / "img"), "--net", old, "--no-mediapipe",
                 "--views", "2", "--out", str(tmp_path / "lab"), "--no-progress", "--device", "cpu"]) == 0
    assert (tmp_path / "lab" / "manifest.parquet").is_file()


@pytest.mark.skipif(torch.torch_version.TorchVersion(torch.__version__) < "2.6",
                    reason="torch < 2.6 cannot allow-list a global under another module's name")
def test_a_numpy_1_training_checkpoint_loads_under_numpy_2(tmp_path):
    """numpy 1 pickled its arrays through ``numpy.core.multiarray``, numpy 2 through
    ``numpy._core.multiarray``: the allow-list names both (torch's legacy format here, whose
    pickle can be edited as text)."""
    import io

    np.random.seed(3)
    st = {"rng": {"numpy": np.random.get_state()}, "w": torch.ones(3)}
    buf = io.BytesIO()
    torch.save(st, buf, _use_new_zipfile_serialization=False)
    mine, other = [f"numpy.{m}.multiarray".encode() for m in ("_core", "core")]
    if mine not in buf.getvalue():
        mine, other = other, mine
    data = buf.getvalue().replace(mine, other)
    assert other in data and mine not in data
    (tmp_path / "old.pt").write_bytes(data)
    got = R.read_checkpoint(tmp_path / "old.pt")
    assert np.array_equal(got["rng"]["numpy"][1], st["rng"]["numpy"][1]) and torch.equal(got["w"], st["w"])
