"""Nothing lost, nothing silently wrong (issue 21), at the library level: the config
schema, what a resume checks, content-keyed evaluation caches, damaged inputs named,
folders that are locked and left clean, workers that die with their job. The command
lines are walked through the same faults by test_faults.py."""
import errno
import hashlib
import io
import math
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from utils import NEUTRAL_CWD, subprocess_env

from pyface import schema as S
from pyface.data import SyntheticFaces, write_bin
from pyface.errors import CheckpointError, ConfigError, DataError, OutputError, UserError
from pyface.io import DigestMemo, FolderLock, atomic_write, file_digest
from pyface.train import Trainer, register_optimizer, register_recipe, resolve_config
from pyface.train.config import RECIPES, resume_problems
from pyface.train.optim import OPTIMIZERS


def _tree_digest(folder: Path) -> dict:
    """{relative path: sha256} of every file under ``folder`` (the lock file aside)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".pyface.lock"}


# ----------------------------------------------------------------------------- the config schema
@pytest.mark.parametrize("cfg, message", [
    ({"optim": {"epoch": 100}}, r"^optim\.epoch: unknown key \(did you mean 'epochs'\?\)$"),
    ({"optim": {"lr": "fast"}}, r"^optim\.lr: expected a number, got 'fast' \(str\)$"),
    ({"optim": {"epochs": "two"}}, r"^optim\.epochs: expected an integer, got 'two' \(str\)$"),
    ({"optim": {"lr": -1}}, r"^optim\.lr: must be > 0, got -1$"),
    ({"data": {"batch_size": 1}}, r"^data\.batch_size: must be >= 2, got 1 \(BatchNorm needs at least 2 samples"),
    ({"data": {"batch_sise": 8}}, r"^data\.batch_sise: unknown key \(did you mean 'batch_size'"),
    ({"modle": {}}, r"^modle: unknown key \(did you mean 'model'\?\)$"),
    ({"epochs": 3}, r"^epochs: unknown key \(did you mean 'optim\.epochs'\?\)$"),
    ({"model": {"input_sise": 64}}, r"^model\.input_sise: unknown key \(did you mean 'input_size'\?\)$"),
    ({"model": {"input_size": 8}}, r"^model\.input_size: must be in \[32, 448\], got 8$"),
    ({"tasks": {"fr": {"scael": 3}}}, r"^tasks\.fr\.scael: unknown key \(did you mean 'scale'\?\)$"),
    ({"tasks": {"fr": {"weight": -1}}}, r"^tasks\.fr\.weight: must be >= 0, got -1$"),
    ({"tasks": {"fr": {"sample_rate": 2}}}, r"^tasks\.fr\.sample_rate: must be <= 1, got 2$"),
    ({"optim": {"schedule": "cosin"}}, r"^optim\.schedule: must be one of .* got 'cosin' \(did you mean 'cosine'\?\)$"),
    ({"optim": {"milestones": [3, "x"]}}, r"^optim\.milestones\[1\]: expected an integer, got 'x' \(str\)$"),
    ({"device": "gpu"}, r"^device: 'gpu' is not a device"),
    ({"progress": "yes"}, r"^progress: expected true or false, got 'yes' \(str\)$"),
    ({"data": {"train": {"type": "SyntheticFaces", "num_identites": 4, "images_per_identity": 2}}},
     r"^data\.train: dataset type SyntheticFaces needs 'num_identities'; data\.train\.num_identites: unknown key "
     r"for dataset type SyntheticFaces \(did you mean 'num_identities'\?\)$"),
    ({"data": {"val": {"type": "SyntheticFaces", "num_identities": 2, "images_per_identity": 2,
                       "transform": [{"type": "Resize", "sise": 40}]}}},
     r"^data\.val\.transform\[0\]: transform Resize needs 'size'; data\.val\.transform\[0\]\.sise: unknown key"),
])
def test_whole_schema_is_checked_naming_the_key(cfg, message):
    base = {"data": {"train": {}}}
    for k, v in cfg.items():
        base[k] = {**base[k], **v} if k in base and isinstance(v, dict) else v
    with pytest.raises(ConfigError, match=message) as e:
        resolve_config(base)
    assert "\n" not in str(e.value)


def test_every_problem_in_one_line_and_yaml_exponents(tmp_path):
    with pytest.raises(ConfigError) as e:
        resolve_config({"data": {"train": {}, "batch_size": 0}, "optim": {"lr": "fast", "epoch": 1}, "seed": -1})
    msg = str(e.value)
    assert all(k in msg for k in ("data.batch_size", "optim.lr", "optim.epoch", "seed")) and "\n" not in msg
    # PyYAML reads 1e-3 (no dot) as a string; YAML 1.2 and users mean a number
    cfg = tmp_path / "c.yaml"
    cfg.write_text("optim: {lr: 1e-3, weight_decay: 5.0e-4}\ndata: {train: {}}\n")
    from pyface.train import load_config

    c = load_config(cfg)
    assert c["optim"]["lr"] == 1e-3 and isinstance(c["optim"]["lr"], float)
    cfg.write_text("optim: {lr: fast}\ndata: {train: {}}\n")
    with pytest.raises(ConfigError, match=rf"^{cfg}: optim\.lr: expected a number"):
        load_config(cfg)
    cfg.write_text("optim: {lr: [1\n")
    with pytest.raises(ConfigError, match=rf"^{cfg}: not valid YAML at line \d+"):
        load_config(cfg)


def test_a_dataset_of_another_type_replaces_the_recipes_default_instead_of_merging():
    """The eyeblink recipe defaults to SyntheticEyes(num_identities=...); a config naming
    EyeFolder must not inherit those arguments (EyeFolder would refuse them)."""
    same = resolve_config({"recipe": "eyeblink", "data": {"train": {"seed": 3}}})["data"]["train"]
    assert same["type"] == "SyntheticEyes" and same["seed"] == 3 and same["num_identities"] == 400
    other = resolve_config({"recipe": "eyeblink", "data": {"train": {"type": "EyeFolder", "root": "x"}}})
    assert other["data"]["train"] == {"type": "EyeFolder", "root": "x"}


def test_registry_entries_declare_their_keys_in_one_line():
    """A recipe, an optimizer and a task add settings by declaring them; the schema then
    checks them like the built-in ones (issue 18 adds keys the same way)."""
    @register_optimizer("test-opt", keys={"betas": S.Key([0.9, 0.99], list, items=float)})
    def _opt(groups, o):
        return torch.optim.Adam(groups, lr=o["lr"], betas=tuple(o["betas"]))

    register_recipe("test-recipe", tasks=("hpe",), preset="iresnet-tiny-multi",
                    keys={"curriculum": {"every": S.Key(100, int, ge=1)}})
    try:
        c = resolve_config({"recipe": "test-recipe", "optim": {"name": "test-opt"}, "data": {"train": {}}})
        assert c["optim"]["betas"] == [0.9, 0.99] and c["curriculum"] == {"every": 100}
        with pytest.raises(ConfigError, match=r"^optim\.betas\[0\]: expected a number"):
            resolve_config({"recipe": "test-recipe", "optim": {"name": "test-opt", "betas": ["a", 1]},
                            "data": {"train": {}}})
        with pytest.raises(ConfigError, match=r"^curriculum\.evry: unknown key \(did you mean 'every'\?\)"):
            resolve_config({"recipe": "test-recipe", "curriculum": {"evry": 3}, "data": {"train": {}}})
        with pytest.raises(ConfigError, match=r"^optim\.betas: unknown key"):  # another optimizer's key
            resolve_config({"recipe": "test-recipe", "optim": {"betas": [0.9, 0.9]}, "data": {"train": {}}})
        with pytest.raises(ConfigError, match=r"^curriculum: unknown key"):  # another recipe's key
            resolve_config({"recipe": "mtl", "curriculum": {"every": 3}, "data": {"train": {}}})
    finally:
        OPTIMIZERS.unregister("test-opt"), RECIPES.unregister("test-recipe")


# ----------------------------------------------------------------------------- resume
def _run_cfg(out, **over):
    cfg = {"recipe": "mtl", "out_dir": str(out), "device": "cpu", "progress": False, "tensorboard": False,
           "seed": 0, "model": {"preset": "iresnet-tiny-multi", "input_size": 32},
           "data": {"train": {"type": "SyntheticFaces", "num_identities": 4, "images_per_identity": 4,
                              "image_size": 32, "seed": 0}, "batch_size": 8},
           "optim": {"lr": 0.05, "max_steps": 2}, "checkpoint_every": 1, "log_every": 1}
    for k, v in over.items():
        cfg[k] = {**cfg[k], **v} if isinstance(v, dict) and isinstance(cfg.get(k), dict) else v
    return resolve_config(cfg)


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("resume") / "run"
    Trainer(_run_cfg(out)).fit()
    return out


@pytest.mark.parametrize("change, named", [
    ({"optim": {"lr": 0.02}}, r"optim\.lr \(0\.05 -> 0\.02\)"),
    ({"data": {"batch_size": 4}}, r"data\.batch_size \(8 -> 4\)"),
    ({"model": {"preset": "iresnet10-multi-64"}}, r"model\.preset \('iresnet-tiny-multi' -> 'iresnet10-multi-64'\)"),
    ({"tasks": {"fr": False}}, r"tasks\.fr \(.* -> None\)"),
    ({"tasks": {"fld": {"weight": 5.0}}}, r"tasks\.fld\.weight \(100\.0 -> 5\.0\)"),
    ({"recipe": "stl-hpe"}, r"recipe \('mtl' -> 'stl-hpe'\)"),
    ({"data": {"train": {"type": "SyntheticFaces", "num_identities": 4, "images_per_identity": 4, "image_size": 32,
                         "seed": 1}}}, r"data\.train\.seed \(0 -> 1\)"),
    ({"seed": 3}, r"seed \(0 -> 3\)"),
    ({"amp": "bf16"}, r"amp \('none' -> 'bf16'\)"),
])
def test_resume_refuses_a_changed_configuration_naming_the_keys(good_run, change, named):
    before = _tree_digest(good_run)
    tr = Trainer(_run_cfg(good_run, **change))
    with pytest.raises(ConfigError, match=rf"^cannot resume {good_run}/checkpoints/last\.pt: the configuration "
                                          rf"changed: .*{named}.*A resumed run keeps its settings except "
                                          r".*optim\.max_steps") as e:
        tr.fit(resume=True)
    assert "\n" not in str(e.value)
    assert _tree_digest(good_run) == before


def test_resume_may_change_the_declared_keys(tmp_path, good_run):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(good_run, run)
    tr = Trainer(_run_cfg(run, optim={"max_steps": 3}, log_every=2, checkpoint_every=5, data={"num_workers": 1}))
    tr.fit(resume=True)
    assert tr.step == 3 and tr.resumed_from == run / "checkpoints" / "last.pt"
    assert resume_problems(_run_cfg(run), _run_cfg(run, optim={"epochs": 4}, device="cpu", val_pairs=10)) == []


def test_a_run_is_not_overwritten_and_a_missing_resume_path_is_an_error(tmp_path, good_run):
    before = _tree_digest(good_run)
    with pytest.raises(OutputError, match=rf"^{good_run} already holds a training run \(.*\); pass --resume"):
        Trainer(_run_cfg(good_run)).fit()
    with pytest.raises(CheckpointError, match=r"^resume: checkpoint not found: .*nope\.pt$") as e:
        Trainer(_run_cfg(good_run)).fit(resume=str(tmp_path / "nope.pt"))
    assert isinstance(e.value, FileNotFoundError)
    # weights only (model.pt) are no training state
    with pytest.raises(CheckpointError, match=r"model\.pt: not a training checkpoint \(it lacks 'step', 'loss'"):
        Trainer(_run_cfg(good_run)).fit(resume=str(good_run / "model.pt"))
    assert _tree_digest(good_run) == before


def test_a_running_training_locks_its_folder(tmp_path):
    """A second training into the folder of a running one is refused naming the holder."""
    code = ("import sys, time; from pyface.io import FolderLock\n"
            "with FolderLock(sys.argv[1], 'training run'):\n"
            "    print('locked', flush=True); time.sleep(60)\n")
    out = tmp_path / "busy"
    p = subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True,
                         env=subprocess_env(), cwd=NEUTRAL_CWD)
    try:
        assert p.stdout.readline().strip() == "locked"
        with pytest.raises(OutputError, match=rf"^{out} is in use by another pyface training run \(pid {p.pid} "):
            Trainer(_run_cfg(out)).fit()
    finally:
        p.kill()
        p.wait()
    assert not (out / "config.yaml").exists()


# ----------------------------------------------------------------------------- caches keyed on content
def test_eval_cache_serves_only_the_same_bytes(tmp_path):
    """The issue's repro: the test set replaced by another file of the same name and
    size (mtime put back too) must not get the first file's cached results."""
    from pyface.eval import suites
    from pyface.models import build_model

    torch.manual_seed(0)
    model = build_model("iresnet-tiny-multi").eval()
    faces = SyntheticFaces(10, 4, image_size=64, seed=0)
    images = [faces[i]["image"].permute(1, 2, 0).numpy() for i in range(len(faces))]
    issame = [k % 2 == 0 for k in range(20)]
    path = tmp_path / "lfw.bin"
    write_bin(str(path), images, issame)
    first = path.read_bytes()
    st = path.stat()
    kw = {"batch_size": 8, "device": "cpu", "amp": False, "num_workers": 0, "progress": False,
          "cache_dir": str(tmp_path / "cache")}
    r1 = suites.eval_verification(model, [suites.VerificationBin(str(path))], **kw)["lfw"]
    # the same images paired otherwise (same name, same size: the same encoded images in
    # another order), mtime put back
    order = np.random.default_rng(3).permutation(len(images))
    write_bin(str(path), [images[k] for k in order], issame)
    assert path.stat().st_size == st.st_size and path.read_bytes() != first
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    r2 = suites.eval_verification(model, [suites.VerificationBin(str(path))], **kw)["lfw"]
    fresh = suites.eval_verification(model, [suites.VerificationBin(str(path))],
                                     **{**kw, "cache_dir": None})["lfw"]
    assert r2 == fresh and r2 != r1  # a stale cache would have served r1
    assert len([d for d in os.listdir(tmp_path / "cache") if d.startswith("lfw-")]) == 2
    # new weights in the same model object: another key as well
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    suites.eval_verification(model, [suites.VerificationBin(str(path))], **kw)
    assert len([d for d in os.listdir(tmp_path / "cache") if d.startswith("lfw-")]) == 3
    assert r1["pairs"] == r2["pairs"]


def test_digest_memo_trusts_only_an_unchanged_identity(tmp_path):
    f = tmp_path / "a.bin"
    f.write_bytes(b"x" * 1000)
    memo = DigestMemo(tmp_path / "digests.json")
    d1 = file_digest(f, memo)
    memo.save()
    assert d1 == hashlib.sha256(b"x" * 1000).hexdigest()
    st = f.stat()
    f.write_bytes(b"y" * 1000)  # same size; ctime moves even when mtime is put back
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    again = DigestMemo(tmp_path / "digests.json")
    assert file_digest(f, again) == hashlib.sha256(b"y" * 1000).hexdigest()
    (tmp_path / "digests.json").write_text("{not json")
    assert file_digest(f, DigestMemo(tmp_path / "digests.json")) == hashlib.sha256(b"y" * 1000).hexdigest()


# ----------------------------------------------------------------------------- damaged inputs
def _jpeg(seed=0, size=64) -> bytes:
    import cv2

    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur((rng.random((size, size, 3)) * 255).astype(np.uint8), (9, 9), 3)
    return cv2.imencode(".jpg", img)[1].tobytes()


def test_a_jpeg_with_a_garbage_body_is_a_data_error_naming_the_file(tmp_path):
    from pyface.data import ImageFolderFaces
    from pyface.data.base import jpeg_problem, read_image

    good = _jpeg()
    sos = good.find(b"\xff\xda")
    rng = np.random.default_rng(1)
    bad = good[:sos + 14] + rng.integers(0, 256, len(good) - sos - 14, dtype=np.uint8).tobytes()
    (tmp_path / "0").mkdir()
    (tmp_path / "0" / "good.jpg").write_bytes(good)
    (tmp_path / "0" / "bad.jpg").write_bytes(bad)
    import cv2

    assert cv2.imdecode(np.frombuffer(bad, np.uint8), cv2.IMREAD_COLOR) is not None  # OpenCV takes it
    assert read_image(str(tmp_path / "0" / "good.jpg")).shape == (64, 64, 3)
    with pytest.raises(DataError, match=r"bad\.jpg: damaged JPEG \("):
        read_image(str(tmp_path / "0" / "bad.jpg"))
    ds = ImageFolderFaces(str(tmp_path))
    i = [ds.describe(k) for k in range(len(ds))].index(str(tmp_path / "0" / "bad.jpg"))
    with pytest.raises(DataError, match=r"bad\.jpg: damaged JPEG"):
        ds[i]
    # valid files of every kind pass: baseline, progressive, restart markers, trailing bytes after EOI
    for params in ([], [cv2.IMWRITE_JPEG_PROGRESSIVE, 1], [cv2.IMWRITE_JPEG_RST_INTERVAL, 2]):
        buf = cv2.imencode(".jpg", read_image(str(tmp_path / "0" / "good.jpg")), params)[1]
        assert jpeg_problem(buf) is None
    assert jpeg_problem(np.frombuffer(good + b"\x00trailer", np.uint8)) is None
    assert "truncated" in jpeg_problem(np.frombuffer(good[: len(good) // 2], np.uint8))


def _manifest_with_null_image(tmp_path) -> Path:
    faces = SyntheticFaces(2, 3, image_size=32, seed=0)
    from pyface.data import write_manifest_dataset

    path = Path(write_manifest_dataset(str(tmp_path / "m"), [faces[i] for i in range(len(faces))]))
    t = pq.read_table(path)
    images = t.column("image").to_pylist()
    images[2] = None
    t = t.set_column(0, pa.field("image", pa.string()), pa.array(images, pa.string()))
    pq.write_table(t, path)
    return path


def test_a_null_image_path_is_named_and_skipped_under_skip(tmp_path):
    from pyface.data import ManifestDataset

    path = _manifest_with_null_image(tmp_path)
    with pytest.raises(DataError, match=rf"^{path}: manifest column 'image' is null in 1 row\(s\) \(first: row 2\)"):
        ManifestDataset(str(path))
    ds = ManifestDataset(str(path), on_error="skip")
    with pytest.warns(RuntimeWarning, match=r"row 2 has no image path"):
        got = [ds[i] for i in range(len(ds))]
    assert len(got) == 6 and 2 in ds.skipped and ds.describe(2).endswith("#row2")


def test_biwi_without_pose_and_other_small_ones(tmp_path):
    from pyface.data import BIWI

    np.savez(tmp_path / "b.npz", image=np.zeros((2, 8, 8, 3), np.uint8))
    with pytest.raises(DataError, match=r"b\.npz: no 'pose' array \(a BIWI \.npz holds 'image' and 'pose'; this one "
                                        r"holds \['image'\]\)$"):
        BIWI(str(tmp_path / "b.npz"))
    from pyface.eval.runner import measure_fps
    from pyface.models import build_model

    with pytest.raises(ValueError, match="repeats must be >= 1, got 0"):
        measure_fps(build_model("iresnet-tiny-multi"), "cpu", repeats=0)


class _Ids(torch.utils.data.Dataset):
    def __init__(self, ids):
        self.ids = ids
        self.num_identities = int(max(ids)) + 1 if ids else 0

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {"image": torch.zeros(3, 32, 32, dtype=torch.uint8), "landmarks": torch.zeros(68, 2),
                "pose": torch.zeros(3), "identity": torch.tensor(self.ids[i]), "source": "t"}


def test_identity_labels_that_cannot_train_are_named(tmp_path):
    cfg = _run_cfg(tmp_path / "x", data={"train": "given"})
    with pytest.raises(ConfigError, match=r"^tasks\.fr: 1000000000001 classes .* need \d+ GiB of class centres per "
                                          r"process, more than this machine's \d+ GiB; identities must be numbered"):
        Trainer(cfg, _Ids([0, 10**12] * 8))
    with pytest.raises(ConfigError, match=r"^tasks\.fr: the training set .* has no identity labels"):
        Trainer(cfg, _Ids([-1] * 16))
    with pytest.raises(DataError, match=r"^data\.train: the dataset is empty"):
        Trainer(cfg, _Ids([]))
    assert not (tmp_path / "x").exists()


def test_a_one_image_validation_set_says_why_the_fr_metric_is_missing(tmp_path):
    tr = Trainer(_run_cfg(tmp_path / "v", optim={"max_steps": 1}), val_set=_Ids([0]))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        m = tr.fit()
    assert "verification_accuracy" not in m
    assert any("no verification accuracy: the validation set (1 images, 1 identities) gives 0 genuine" in str(x.message)
               for x in w)


# ----------------------------------------------------------------------------- outputs
def test_full_disk_inside_torch_save_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    """torch's zip writer turns a failed write into "unexpected pos ..." with the ENOSPC
    chained: the error names the file and says no space; the temporary file is gone."""
    target = tmp_path / "last.pt"
    target.write_bytes(b"previous")

    class Full(io.FileIO):
        written = 0

        def write(self, b):
            Full.written += len(b)
            if Full.written > 20_000:
                raise OSError(errno.ENOSPC, "No space left on device")
            return super().write(b)

    import builtins

    real = builtins.open
    monkeypatch.setattr(builtins, "open", lambda p, mode="r", *a, **k: Full(p, "wb") if str(p).endswith(".tmp")
                        else real(p, mode, *a, **k))
    with pytest.raises(OutputError, match=rf"^{target}: no space left on the device") as e:
        with atomic_write(target) as f:
            torch.save({"w": torch.zeros(100_000)}, f)
    assert isinstance(e.value, UserError) and "\n" not in str(e.value)
    assert "unexpected pos" in str(e.value.__cause__)  # what users saw before
    assert target.read_bytes() == b"previous" and os.listdir(tmp_path) == ["last.pt"]


def test_a_lock_leaves_no_trace_and_a_failed_job_no_folder(tmp_path):
    out = tmp_path / "new"
    with FolderLock(out, "job"):
        assert (out / ".pyface.lock").exists()
    assert not out.exists()  # created by the lock, left empty: removed
    out.mkdir()
    (out / "keep").write_text("x")
    with FolderLock(out, "job"):
        pass
    assert os.listdir(out) == ["keep"]
    # a job failing on bad input before it writes leaves nothing behind
    from pyface.label.landmarks import label_dataset

    class _Lab:
        net = eye_net = None

        def config(self):
            return {}

    with pytest.raises(ValueError, match="limit must be >= 1, got -5"):
        label_dataset(SyntheticFaces(1, 2, image_size=32), _Lab(), tmp_path / "lab", limit=-5)
    assert not (tmp_path / "lab").exists()


_ORPHAN = r"""
import os, sys, time, torch
from torch.utils.data import DataLoader, Dataset
from pyface.procs import worker_init_fn

class Stuck(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        os.write(1, f"worker {os.getpid()}\n".encode())  # one write: two workers share the pipe
        time.sleep(120)   # a decoder stuck in a futex, as far as the parent can tell

kw = {"worker_init_fn": worker_init_fn()} if sys.argv[1] == "tied" else {}
for b in DataLoader(Stuck(), batch_size=1, num_workers=2, **kw):
    pass
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")
def test_dataloader_workers_die_with_a_killed_parent(tmp_path):
    def run(mode):
        p = subprocess.Popen([sys.executable, "-c", _ORPHAN, mode], stdout=subprocess.PIPE, text=True,
                             env=subprocess_env(), cwd=NEUTRAL_CWD)
        workers = [int(p.stdout.readline().split()[1]) for _ in range(2)]
        p.send_signal(signal.SIGKILL)
        p.wait()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(_alive(w) for w in workers):
            time.sleep(0.1)
        alive = [w for w in workers if _alive(w)]
        for w in alive:
            os.kill(w, signal.SIGKILL)
        return alive

    assert run("tied") == []
    assert len(run("untied")) == 2  # torch's own watchdog leaves them (the defect this guards against)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_schema_helpers():
    sch = {"a": S.Key(1, int, ge=0), "s": {"x": S.Key(None, float, may_change=True), "y": S.Key("u")}}
    assert S.defaults(sch) == {"a": 1, "s": {"x": None, "y": "u"}}
    assert S.fixed_part({"a": 2, "s": {"x": 1.0, "y": "v"}}, sch) == {"a": 2, "s": {"y": "v"}}
    assert S.may_change(sch) == ["s.x"]
    out, problems = S.validate({"a": True, "s": {"x": "2e3"}}, sch)
    assert problems == ["a: expected an integer, got True (bool)"] and out["s"]["x"] == 2000.0
    assert math.isclose(S.check({"s": {"x": 3}}, sch)["s"]["x"], 3)
