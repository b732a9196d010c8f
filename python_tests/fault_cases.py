"""The fault-injection cases of issue 21: every command line walked through a bad
config, bad data, a bad checkpoint, a kill, a full disk and a concurrent run.

Each case runs the real ``python -m pyface ...`` in a subprocess against a "world" of
small data and good runs (a training run, a labeling run, an evaluation, an identities
run, built by the same command lines), and checks what the issue asks of every case:

- the exit code (2 for a user error; 0 where the job must succeed, e.g. a resume);
- the message: one line ``pyface <command>: error: ...`` naming the file or key, no
  traceback;
- no file of a previous good run (or of the data) changed: every file hashed before and
  after (the lock file aside);
- no partial file accepted later (no temporary file left; a resumed job completes);
- no process left behind (no process whose command line names the world's folder).

Used by ``test_faults.py`` (pytest marker ``faults``) and ``tools/fault_table.py``, which
runs every case against any pyface source tree (``PYFACE_FAULT_TREE``) for the
before/after table. The full-disk cases run the command inside a private mount
namespace (``unshare -rm``) on a small tmpfs; where the machine does not allow that they
are skipped (the ENOSPC path is also covered in-process by test_safety.py).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _tree() -> Path:
    """The pyface under test: PYFACE_FAULT_TREE (tools/fault_table.py), else the one this
    interpreter imports (the source tree, or the installed wheel in CI)."""
    if os.environ.get("PYFACE_FAULT_TREE"):
        return Path(os.environ["PYFACE_FAULT_TREE"]).resolve()
    import pyface

    return Path(pyface.__file__).resolve().parents[1]


TREE = _tree()
ERROR_LINE = re.compile(r"^pyface( [a-z-]+){1,2}: error: ")


# ----------------------------------------------------------------------------- running the CLI
def _env(**extra) -> dict:
    # PYTHONSAFEPATH and a neutral cwd: `python -m pyface` run from CI's clone (no built
    # extension) would otherwise import the clone's pyface instead of TREE's
    return {**os.environ, "PYTHONPATH": str(TREE), "PYTHONSAFEPATH": "1", "OMP_NUM_THREADS": "1",
            "PYTHONWARNINGS": "ignore", **extra}


NEUTRAL_CWD = tempfile.gettempdir()


@dataclass
class Run:
    rc: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def error_lines(self) -> list[str]:
        return [ln for ln in self.stderr.splitlines() if ERROR_LINE.match(ln)]

    @property
    def last_line(self) -> str:
        lines = [ln for ln in self.stderr.splitlines() if ln.strip()]
        return lines[-1].strip() if lines else ""


def cli(*argv, timeout: float = 300, cwd=None, env=None) -> Run:
    """``env``: more environment variables (the cases run with Python's warnings off,
    so a message must be an error line; a case about a warning turns them on)."""
    t0 = time.monotonic()
    try:
        p = subprocess.run([sys.executable, "-m", "pyface", *map(str, argv)], capture_output=True, text=True,
                           env=_env(**(env or {})), timeout=timeout, cwd=cwd or NEUTRAL_CWD)
        return Run(p.returncode, p.stdout, p.stderr, time.monotonic() - t0)
    except subprocess.TimeoutExpired as exc:
        return Run(-9, exc.stdout or "", (exc.stderr or "") + f"\n(timed out after {timeout} s)",
                   time.monotonic() - t0)


def _children(pid: int) -> list[int]:
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(x) for x in f.read().split()]
    except (FileNotFoundError, ProcessLookupError):
        pass
    return out + [d for c in out for d in _children(c)]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def processes_naming(text: str) -> list[int]:
    """Live processes whose command line contains ``text`` (this one aside)."""
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        if text in cmd and _alive(int(d)):
            found.append(int(d))
    return found


def leftovers(root: Path, wait: float = 6.0, exclude=()) -> list[int]:
    """Processes of the world still alive after ``wait`` seconds (then killed, so that
    one failing case does not spoil the next); ``exclude``: the case's own helpers."""
    deadline = time.monotonic() + wait
    keep = set(exclude)
    while True:
        left = [p for p in processes_naming(str(root)) if p not in keep and not set(_ancestors(p)) & keep]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    for p in left:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return left


def _ancestors(pid: int) -> list[int]:
    out = []
    while pid > 1:
        try:
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rsplit(")", 1)[-1].split()[1])
        except (FileNotFoundError, ValueError, IndexError):
            break
        out.append(pid)
    return out


def same_table(a: Path, b: Path) -> bool:
    """Two Parquet files hold the same columns and values (NaN equal to NaN)."""
    import numpy as np
    import pyarrow.parquet as pq

    ta, tb = pq.read_table(a), pq.read_table(b)
    if ta.schema != tb.schema:
        return False
    for c in ta.column_names:
        x, y = ta.column(c).to_pylist(), tb.column(c).to_pylist()
        try:
            if not np.array_equal(np.asarray(x, dtype=float), np.asarray(y, dtype=float), equal_nan=True):
                return False
        except (TypeError, ValueError):
            if x != y:
                return False
    return True


def tree_digest(*folders: Path) -> dict:
    out = {}
    for folder in folders:
        for p in sorted(Path(folder).rglob("*")):
            if p.is_file() and p.name != ".pyface.lock":
                out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def temps(folder: Path) -> list[str]:
    return sorted(str(p) for p in Path(folder).rglob(".*.tmp"))


# ----------------------------------------------------------------------------- the world
GOOD_CONFIG = """\
recipe: mtl
out_dir: {out}
device: cpu
seed: 0
progress: false
tensorboard: false
checkpoint_every: {checkpoint_every}
log_every: 1
val_pairs: 40
model: {{preset: iresnet-tiny-multi, input_size: 32}}
data:
  train: {train}
  val: {{type: SyntheticFaces, num_identities: 3, images_per_identity: 4, image_size: 32, identity_offset: 50, seed: 1}}
  batch_size: {batch_size}
  num_workers: {workers}
optim: {{lr: {lr}, max_steps: {max_steps}}}
"""
SYNTH = "{type: SyntheticFaces, num_identities: 4, images_per_identity: 4, image_size: 32, seed: 0}"


class World:
    """Data, good runs and bad files under ``root`` (built once)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.data, self.bad, self.runs = self.root / "data", self.root / "bad", self.root / "runs"
        self.good_run, self.good_label = self.runs / "train", self.runs / "label"
        self.good_eval, self.good_ids = self.runs / "eval", self.runs / "ids"
        self.scratch = self.root / "scratch"
        self.marker = self.root / "PWNED"  # what the crafted checkpoint would create
        self._n = 0

    # -- building
    def config(self, out, *, train=SYNTH, max_steps=4, batch_size=8, lr=0.05, workers=0, checkpoint_every=2,
               extra: str = "") -> Path:
        self._n += 1
        path = self.scratch / f"config{os.getpid()}-{self._n}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(GOOD_CONFIG.format(out=out, train=train, max_steps=max_steps, batch_size=batch_size, lr=lr,
                                           workers=workers, checkpoint_every=checkpoint_every) + extra)
        return path

    def fresh(self, name: str) -> Path:
        self._n += 1
        return self.scratch / f"{name}{os.getpid()}-{self._n}"

    def build(self) -> "World":
        import numpy as np
        import pyarrow as pa
        import pyarrow.parquet as pq

        from pyface.data import SyntheticFaces, write_bin, write_image_folder, write_manifest_dataset, write_recordio

        faces = SyntheticFaces(4, 4, image_size=32, seed=0)
        samples = [faces[i] for i in range(len(faces))]
        write_image_folder(str(self.data / "img"), samples)
        many = SyntheticFaces(24, 4, image_size=32, seed=7)  # a labeling job long enough to be killed mid-way
        write_image_folder(str(self.data / "img_many"), [many[i] for i in range(len(many))])
        write_recordio(str(self.data / "train.rec"), samples, str(self.data / "train.idx"))
        # verification pairs, and the same images paired otherwise: same name and size
        test = SyntheticFaces(8, 4, image_size=32, seed=3, identity_offset=100)
        images = [test[i]["image"].permute(1, 2, 0).numpy() for i in range(len(test))]
        issame = [k % 2 == 0 for k in range(16)]
        write_bin(str(self.data / "lfw.bin"), images, issame)
        order = np.random.default_rng(3).permutation(len(images))
        (self.data / "other").mkdir()
        write_bin(str(self.data / "other" / "lfw.bin"), [images[k] for k in order], issame)
        write_bin(str(self.data / "big.bin"), images * 25, issame * 25)  # long enough to be killed mid-way
        # damaged data
        good = (self.data / "img").rglob("*.jpg").__next__().read_bytes()
        sos = good.find(b"\xff\xda")
        garbage = self.data / "garbage"
        shutil.copytree(self.data / "img", garbage)
        victim = sorted(garbage.rglob("*.jpg"))[5]
        rng = np.random.default_rng(0)
        victim.write_bytes(good[:sos + 20] + rng.integers(0, 256, len(good) - sos - 20, dtype=np.uint8).tobytes())
        self.garbage_jpeg = victim
        man = Path(write_manifest_dataset(str(self.data / "man"), samples))
        t = pq.read_table(man)

        def variant(name, **cols):
            tt = t
            for col, values in cols.items():
                i, typ = tt.schema.get_field_index(col), tt.schema.field(col).type
                tt = tt.set_column(i, pa.field(col, typ), pa.array(values, typ))
            pq.write_table(tt, self.data / "man" / name)

        images_col = t.column("image").to_pylist()
        variant("null.parquet", image=[None if i == 3 else v for i, v in enumerate(images_col)])
        variant("unknown.parquet", identity=[-1] * len(t))
        variant("huge.parquet", identity=[10**12 if i == 0 else i % 4 for i in range(len(t))])
        pq.write_table(t.slice(0, 0), self.data / "man" / "empty.parquet")
        (self.data / "empty_root").mkdir()
        # good runs, through the command lines of the tree under test
        steps = [
            ("train", ["train", "--config", self.config(self.good_run)]),
            ("label", ["label", "landmarks", "--data", self.data / "img", "--net", self.good_run / "model.pt",
                       "--no-mediapipe", "--views", "2", "--shard-size", "2", "--workers", "0", "--no-progress",
                       "--device", "cpu", "--out", self.good_label]),
            ("eval", ["eval", "verification", "--checkpoint", self.good_run, "--bin", self.data / "lfw.bin",
                      "--out", self.good_eval, "--device", "cpu", "--no-progress"]),
            ("identities", ["label", "identities", "--dataset", f"a={self.data / 'img'}", "--net-a",
                            self.good_run / "model.pt", "--net-b", self.good_run / "model.pt", "--threshold-a", "0.9",
                            "--threshold-b", "0.9", "--workers", "0", "--no-progress", "--device", "cpu",
                            "--out", self.good_ids]),
        ]
        for name, argv in steps:
            r = cli(*argv)
            if r.rc != 0:
                raise RuntimeError(f"building the world: {name} failed ({r.rc}):\n{r.stderr[-3000:]}")
        # bad checkpoints
        self.bad.mkdir()
        last = (self.good_run / "checkpoints" / "last.pt").read_bytes()
        (self.bad / "truncated.pt").write_bytes(last[: len(last) // 2])
        (self.bad / "random.pt").write_bytes(np.random.default_rng(1).integers(0, 256, 65536, np.uint8).tobytes())
        import torch

        torch.save({"model": _Evil(self.marker), "model_config": {}, "step": 1}, self.bad / "evil.pt")
        shutil.copy(self.good_run / "model.pt", self.bad / "weights.pt")
        return self

    # -- checks
    def snapshot(self) -> dict:
        return tree_digest(self.data, self.runs, self.bad)


class _Evil:
    """Creates a file when unpickled without weights_only (torch.load's old default)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


# ----------------------------------------------------------------------------- outcomes
@dataclass
class Outcome:
    """What one case did, and which of its expectations held."""

    rc: int | None = None
    message: str = ""
    checks: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(self.checks.values())

    def failed(self) -> list[str]:
        return [k for k, v in self.checks.items() if not v]

    def summary(self) -> str:
        msg = self.message if len(self.message) <= 160 else self.message[:157] + "..."
        state = "ok" if self.ok else "FAILS: " + ", ".join(self.failed())
        return f"exit {self.rc}; {state}; {msg}" + (f" [{'; '.join(self.notes)}]" if self.notes else "")


def expect_error(w: World, argv, named: str, *, timeout=300, extra=None, exclude=()) -> Outcome:
    """A user error: exit 2, one ``pyface ...: error:`` line matching ``named`` (the file
    or key), no traceback, nothing of the world changed, no process left."""
    before = w.snapshot()
    r = cli(*argv, timeout=timeout)
    o = Outcome(r.rc, r.error_lines[0] if r.error_lines else r.last_line)
    o.checks["exit 2"] = r.rc == 2
    o.checks["one line, no traceback"] = len(r.error_lines) == 1 and "Traceback" not in r.stderr \
        and r.last_line == r.error_lines[0]
    o.checks["names the file/key"] = bool(r.error_lines) and re.search(named, r.error_lines[0]) is not None
    o.checks["good runs unchanged"] = w.snapshot() == before
    o.checks["no process left"] = not leftovers(w.root, exclude=exclude)
    if extra is not None:
        extra(o, r)
    return o


def _no_marker(w):
    def check(o, r):
        o.checks["crafted pickle ran nothing"] = not w.marker.exists()
        if w.marker.exists():
            w.marker.unlink()
    return check


def _nothing_at(path: Path):
    def check(o, r):
        o.checks["nothing written"] = not Path(path).exists() or not any(Path(path).iterdir())
    return check


# ----------------------------------------------------------------------------- the cases
CASES: dict[str, tuple[str, str, str]] = {}  # id -> (command, fault, what)
_FUNCS = {}


def case(cid: str, command: str, fault: str, what: str):
    def deco(fn):
        CASES[cid] = (command, fault, what)
        _FUNCS[cid] = fn
        return fn
    return deco


def run_case(cid: str, w: World) -> Outcome:
    return _FUNCS[cid](w)


# -- train: bad config / options
def _bad_config(w, extra_yaml=None, **kw):
    out = w.fresh("t")
    cfg = w.config(out, **kw)
    if extra_yaml is not None:
        cfg.write_text(cfg.read_text().replace("optim: {lr: 0.05, max_steps: 4}", extra_yaml))
    return out, cfg


@case("train-config-unknown-nested", "train", "bad config", "optim: {epoch: 100} (unknown key inside a section)")
def _(w):
    out, cfg = _bad_config(w, "optim: {epoch: 100}")
    return expect_error(w, ["train", "--config", cfg], r"optim\.epoch: unknown key \(did you mean 'epochs'\?\)",
                        extra=_nothing_at(out))


@case("train-config-lr-str", "train", "bad config", 'lr: "fast"')
def _(w):
    out, cfg = _bad_config(w, "optim: {lr: fast, max_steps: 4}")
    return expect_error(w, ["train", "--config", cfg], r"optim\.lr: expected a number, got 'fast'",
                        extra=_nothing_at(out))


@case("train-config-epochs-str", "train", "bad config", 'epochs: "two" (failed inside fit after writing)')
def _(w):
    out, cfg = _bad_config(w, "optim: {lr: 0.05, epochs: two}")
    return expect_error(w, ["train", "--config", cfg], r"optim\.epochs: expected an integer, got 'two'",
                        extra=_nothing_at(out))


@case("train-config-lr-negative", "train", "bad config", "lr: -1")
def _(w):
    out, cfg = _bad_config(w, "optim: {lr: -1, max_steps: 4}")
    return expect_error(w, ["train", "--config", cfg], r"optim\.lr: must be > 0, got -1", extra=_nothing_at(out))


@case("train-config-batch-1", "train", "bad config", "batch_size: 1 (BatchNorm)")
def _(w):
    out, cfg = _bad_config(w, batch_size=1)
    return expect_error(w, ["train", "--config", cfg], r"data\.batch_size: must be >= 2, got 1 \(BatchNorm",
                        extra=_nothing_at(out))


@case("train-config-missing", "train", "bad config", "--config file that does not exist")
def _(w):
    return expect_error(w, ["train", "--config", w.scratch / "nope.yaml"], r"--config: .*nope\.yaml")


@case("train-config-yaml", "train", "bad config", "config that is not valid YAML")
def _(w):
    out, cfg = _bad_config(w)
    cfg.write_text(cfg.read_text() + "optim: {lr: [1\n")
    return expect_error(w, ["train", "--config", cfg], rf"{re.escape(str(cfg))}: not valid YAML at line \d+",
                        extra=_nothing_at(out))


@case("train-option-typo", "train", "bad option", "--ouput-dir (mistyped) pointing at a good run")
def _(w):
    return expect_error(w, ["train", "--config", w.config(w.fresh("t")), "--ouput-dir", w.good_run],
                        r"unknown option --ouput-dir \(did you mean '--out-dir'\?\)")


@case("train-existing-run", "train", "existing run", "train into a finished run's out_dir without --resume")
def _(w):
    return expect_error(w, ["train", "--config", w.config(w.good_run)],
                        rf"{re.escape(str(w.good_run))} already holds a training run .*pass --resume")


@case("train-resume-missing", "train", "bad checkpoint", "--resume PATH that does not exist")
def _(w):
    out = w.fresh("t")
    return expect_error(w, ["train", "--config", w.config(out), "--resume", w.scratch / "nope.pt"],
                        r"--resume: checkpoint not found: .*nope\.pt", extra=_nothing_at(out))


for _key, _over, _named in (("lr", {"lr": 0.1}, r"optim\.lr \(0\.05 -> 0\.1\)"),
                            ("batch-size", {"batch_size": 4}, r"data\.batch_size \(8 -> 4\)"),
                            ("preset", None, r"model\.preset \('iresnet-tiny-multi' -> 'iresnet10-multi-64'\)"),
                            ("task", None, r"tasks\.fr \("),
                            ("data", {"train": SYNTH.replace("seed: 0", "seed: 1")}, r"data\.train\.seed \(0 -> 1\)")):
    def _resume_changed(w, _key=_key, _over=_over, _named=_named):
        cfg = w.config(w.good_run, **(_over or {}))
        if _key == "preset":
            cfg.write_text(cfg.read_text().replace("preset: iresnet-tiny-multi", "preset: iresnet10-multi-64"))
        if _key == "task":
            cfg.write_text(cfg.read_text() + "tasks: {fr: false}\n")
        return expect_error(w, ["train", "--config", cfg, "--resume"], rf"cannot resume .*last\.pt: the configuration "
                            rf"changed: .*{_named}")

    case(f"train-resume-changed-{_key}", "train", "resume, changed config",
         f"--resume with a changed {_key}")(_resume_changed)


for _name, _named in (("truncated", r"truncated\.pt.*not a readable torch checkpoint"),
                      ("random", r"random\.pt.*not a readable"),
                      ("evil", r"evil\.pt.*refers to .*nothing in it was run"),
                      ("weights", r"weights\.pt: not a training checkpoint")):
    def _train_bad_ckpt(w, _name=_name, _named=_named):
        out = w.fresh("t")
        return expect_error(w, ["train", "--config", w.config(out), "--resume", w.bad / f"{_name}.pt"], _named,
                            extra=_no_marker(w))

    what = {"evil": "a crafted pickle that runs code", "weights": "model.pt (weights, not a training checkpoint)"}
    case(f"train-resume-{_name}", "train", "bad checkpoint",
         f"--resume {what.get(_name, 'a ' + _name + ' file')}")(_train_bad_ckpt)


@case("train-writer-as-dataset", "train", "bad data", "data.train: {type: RecordIOWriter, rec_path: train.rec}")
def _(w):
    spec = f"{{type: RecordIOWriter, rec_path: {w.data / 'train.rec'}}}"
    return expect_error(w, ["train", "--config", w.config(w.fresh("t"), train=spec)],
                        r"data\.train\.type: unknown dataset type 'RecordIOWriter'")


@case("train-garbage-jpeg", "train", "bad data", "an image folder with a JPEG whose body is garbage")
def _(w):
    spec = f"{{type: ImageFolderFaces, root: {w.data / 'garbage'}}}"
    return expect_error(w, ["train", "--config", w.config(w.fresh("t"), train=spec)],
                        rf"{re.escape(str(w.garbage_jpeg))}: damaged JPEG")


for _name, _named, _what in (
        ("null", r"null\.parquet: manifest column 'image' is null in 1 row", "a null image path in a Parquet manifest"),
        ("empty", r"data\.train: the dataset is empty", "an empty manifest"),
        ("unknown", r"tasks\.fr: the training set .* has no identity labels", "every identity -1 (unknown) under mtl"),
        ("huge", r"tasks\.fr: 1000000000001 classes .* identities must be numbered", "an identity of 10^12")):
    def _train_manifest(w, _name=_name, _named=_named):
        spec = f"{{type: ManifestDataset, path: {w.data / 'man' / (_name + '.parquet')}}}"
        return expect_error(w, ["train", "--config", w.config(w.fresh("t"), train=spec)], _named, timeout=120)

    case(f"train-manifest-{_name}", "train", "bad data", _what)(_train_manifest)


@case("train-val-one-image", "train", "bad data", "a 1-image validation set: the FR metric must say why it is missing")
def _(w):
    out = w.fresh("t")
    cfg = w.config(out, max_steps=2)
    cfg.write_text(cfg.read_text().replace("num_identities: 3, images_per_identity: 4",
                                           "num_identities: 1, images_per_identity: 1"))
    r = cli("train", "--config", cfg, env={"PYTHONWARNINGS": "default"})  # the reason is a RuntimeWarning
    o = Outcome(r.rc, next((ln for ln in r.stderr.splitlines() if "verification" in ln), r.last_line))
    o.checks["exit 0"] = r.rc == 0
    o.checks["says why"] = "no verification accuracy" in r.stderr
    o.checks["no process left"] = not leftovers(w.root)
    return o


def _wait_for(pred, timeout: float, proc=None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        if proc is not None and proc.poll() is not None:
            return False
        time.sleep(0.1)
    return False


def _popen(*argv):
    return subprocess.Popen([sys.executable, "-m", "pyface", *map(str, argv)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=_env(), cwd=NEUTRAL_CWD)


@case("train-concurrent", "train", "concurrent run", "a second training into the out_dir of a running one")
def _(w):
    out = w.fresh("t")
    cfg = w.config(out, max_steps=100000, checkpoint_every=1000)
    first = _popen("train", "--config", cfg)
    try:
        started = _wait_for(lambda: (out / "train.csv").exists(), 120, first)
        o = expect_error(w, ["train", "--config", cfg],
                         rf"{re.escape(str(out))} is in use by another pyface training run \(pid {first.pid} ",
                         exclude=[first.pid])
        if not started:
            o.notes.append("the first run did not start")
        rows = (out / "train.csv").read_text().splitlines() if (out / "train.csv").exists() else []
        o.checks["logs not interleaved"] = all(r.count(",") == rows[0].count(",") for r in rows) and \
            [int(r.split(",")[0]) for r in rows[1:]] == sorted(int(r.split(",")[0]) for r in rows[1:])
    finally:
        first.kill()
        first.wait()
    o.checks["no process left"] = o.checks["no process left"] and not leftovers(w.root)
    return o


def _kill_and_resume(w, argv, ready, resume_argv, check_done, what: str) -> Outcome:
    p = _popen(*argv)
    o = Outcome()
    try:
        if not _wait_for(ready, 240, p):
            o.rc = p.poll()
            o.message = f"{what} did not reach the kill point: " + (p.stderr.read()[-300:] if o.rc is not None else "")
            o.checks["reached the kill point"] = False
            return o
        kids = _children(p.pid)
        p.send_signal(signal.SIGKILL)
        p.wait()
        time.sleep(0.5)
        o.notes.append(f"killed with {len(kids)} child process(es)")
        left = leftovers(w.root)
        o.checks["no process left"] = not left
        if left:
            o.notes.append(f"{len(left)} left behind")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    r = cli(*resume_argv)
    o.rc, o.message = r.rc, (r.error_lines[0] if r.error_lines else f"resumed: {r.stdout.strip().splitlines()[-1:]}")
    o.checks["resume exits 0"] = r.rc == 0
    o.checks.update(check_done())
    o.checks["no process left"] = o.checks["no process left"] and not leftovers(w.root)
    return o


@case("train-kill", "train", "kill -9", "kill -9 mid-run (2 DataLoader workers), then --resume")
def _(w):
    out = w.fresh("t")
    cfg = w.config(out, max_steps=200, checkpoint_every=2, workers=2)
    def ok():  # checkpoints and logs written, the DataLoader workers running
        return (out / "checkpoints" / "last.pt").exists() and (out / "train.csv").exists() and \
            len((out / "train.csv").read_text().splitlines()) > 4 and len(processes_naming(str(cfg))) >= 3

    def done():
        import torch

        st = torch.load(out / "checkpoints" / "last.pt", weights_only=False)
        return {"finished": st["step"] == 200, "no temporary file left": temps(out) == [],
                "model.pt readable": (out / "model.pt").stat().st_size > 0}

    return _kill_and_resume(w, ["train", "--config", cfg], ok, ["train", "--config", cfg, "--resume"], done,
                            "training")


# -- eval
for _name, _named in (("truncated", r"truncated\.pt.*not a readable torch checkpoint"),
                      ("random", r"random\.pt.*not a readable"),
                      ("evil", r"evil\.pt.*nothing in it was run")):
    def _eval_bad_ckpt(w, _name=_name, _named=_named):
        return expect_error(w, ["eval", "verification", "--checkpoint", w.bad / f"{_name}.pt", "--bin",
                                w.data / "lfw.bin", "--out", w.good_eval, "--device", "cpu", "--no-progress"], _named,
                            extra=_no_marker(w))

    case(f"eval-checkpoint-{_name}", "eval", "bad checkpoint", f"--checkpoint {_name}.pt")(_eval_bad_ckpt)


@case("eval-bad-bin", "eval", "bad data", "a .bin that is random bytes")
def _(w):
    bad = w.fresh("bin")
    bad.mkdir(parents=True)
    shutil.copy(w.bad / "random.pt", bad / "lfw.bin")
    return expect_error(w, ["eval", "verification", "--checkpoint", w.good_run, "--bin", bad / "lfw.bin", "--out",
                            w.fresh("ev"), "--device", "cpu", "--no-progress"], r"lfw\.bin")


@case("eval-all-nothing", "eval", "bad data", "eval all on a --data-root without any test set")
def _(w):
    return expect_error(w, ["eval", "all", "--checkpoint", w.good_run, "--data-root", w.data / "empty_root",
                            "--out", w.fresh("ev"), "--device", "cpu", "--no-progress"],
                        r"eval all: no test set this model can be evaluated on")


@case("eval-fps-repeats-0", "eval", "bad option", "--fps-repeats 0")
def _(w):
    return expect_error(w, ["eval", "fps", "--checkpoint", w.good_run, "--fps-repeats", "0", "--out", w.fresh("ev"),
                            "--device", "cpu"], r"--fps-repeats: .*must be > 0")


def _accuracy(report: Path) -> float:
    return json.loads(report.read_text())["verification"]["lfw"]["mean"]


@case("eval-stale-cache", "eval", "stale cache", "lfw.bin replaced by another of the same name and size, same --out")
def _(w):
    ev, data = w.fresh("ev"), w.fresh("bins")
    data.mkdir(parents=True)
    shutil.copy(w.data / "lfw.bin", data / "lfw.bin")
    base = ["--checkpoint", w.good_run, "--out", ev, "--device", "cpu", "--no-progress"]
    r1 = cli("eval", "verification", "--bin", data / "lfw.bin", *base)
    st = (data / "lfw.bin").stat()
    shutil.copy(w.data / "other" / "lfw.bin", data / "lfw.bin")
    os.utime(data / "lfw.bin", ns=(st.st_atime_ns, st.st_mtime_ns))
    r2 = cli("eval", "verification", "--bin", data / "lfw.bin", *base)
    fresh = w.fresh("ev")
    r3 = cli("eval", "verification", "--bin", data / "lfw.bin", "--checkpoint", w.good_run, "--out", fresh,
             "--device", "cpu", "--no-progress")
    o = Outcome(r2.rc)
    if r1.rc == r2.rc == r3.rc == 0:
        a1, a2, a3 = (_accuracy(p / "report.json") for p in (ev, ev, fresh))
        o.message = f"replaced file: reported {a2 * 100:.2f} %, fresh evaluation {a3 * 100:.2f} %"
        o.checks["reports the new file's accuracy"] = a2 == a3
    else:
        o.message = (r1.last_line or r2.last_line or r3.last_line)
        o.checks["runs"] = False
    o.checks["no process left"] = not leftovers(w.root)
    return o


def _holding_lock(folder: Path, what: str):
    code = ("import sys, time; from pyface.io import FolderLock\n"
            "with FolderLock(sys.argv[1], sys.argv[2]):\n"
            "    print('locked', flush=True); time.sleep(120)\n")
    p = subprocess.Popen([sys.executable, "-c", code, str(folder), what], stdout=subprocess.PIPE, text=True,
                         env={**os.environ, "PYTHONPATH": str(HERE.parent)})  # this checkout's lock (pure Python)
    p.stdout.readline()
    return p


@case("eval-concurrent", "eval", "concurrent run", "an evaluation into an --out another evaluation holds")
def _(w):
    ev = w.fresh("ev")
    holder = _holding_lock(ev, "evaluation")
    try:
        return expect_error(w, ["eval", "verification", "--checkpoint", w.good_run, "--bin", w.data / "lfw.bin",
                                "--out", ev, "--device", "cpu", "--no-progress"],
                            rf"{re.escape(str(ev))} is in use by another pyface evaluation \(pid {holder.pid} ",
                            exclude=[holder.pid])
    finally:
        holder.kill()
        holder.wait()


@case("eval-kill", "eval", "kill -9", "kill -9 mid-inference (2 DataLoader workers), then the same command")
def _(w):
    ev = w.fresh("ev")
    argv = ["eval", "verification", "--checkpoint", w.good_run, "--bin", w.data / "big.bin", "--out", ev,
            "--device", "cpu", "--no-progress", "--workers", "2", "--batch-size", "2"]

    def ready():  # the DataLoader workers exist
        return len(processes_naming(str(ev))) >= 3

    def done():
        return {"report written": (ev / "report.json").is_file(), "no temporary file left": temps(ev) == []}

    return _kill_and_resume(w, argv, ready, argv, done, "evaluation")


# -- label landmarks
def _label(w, out, *extra, data=None, net=None):
    return ["label", "landmarks", "--data", data or (w.data / "img"), "--net", net or (w.good_run / "model.pt"),
            "--no-mediapipe", "--views", "2", "--shard-size", "2", "--workers", "0", "--no-progress", "--device",
            "cpu", "--out", out, *extra]


for _name, _named in (("truncated", r"truncated\.pt.*not a readable torch checkpoint"),
                      ("random", r"random\.pt.*not a readable"),
                      ("evil", r"evil\.pt.*nothing in it was run"),):
    def _label_bad_net(w, _name=_name, _named=_named):
        out = w.fresh("lab")
        return expect_error(w, _label(w, out, net=w.bad / f"{_name}.pt"), _named,
                            extra=lambda o, r: (_no_marker(w)(o, r), _nothing_at(out)(o, r)))

    case(f"label-net-{_name}", "label landmarks", "bad checkpoint", f"--net {_name}.pt")(_label_bad_net)


@case("label-garbage-jpeg", "label landmarks", "bad data", "a JPEG whose body is garbage (--on-error raise)")
def _(w):
    return expect_error(w, _label(w, w.fresh("lab"), data=w.data / "garbage"),
                        rf"{re.escape(str(w.garbage_jpeg))}: damaged JPEG")


@case("label-garbage-jpeg-skip", "label landmarks", "bad data", "the same with --on-error skip: counted, not used")
def _(w):
    out = w.fresh("lab")
    r = cli(*_label(w, out, "--on-error", "skip", data=w.data / "garbage"))
    o = Outcome(r.rc, r.error_lines[0] if r.error_lines else r.stdout.strip().splitlines()[-2:-1][0]
                if r.rc == 0 else r.last_line)
    s = json.loads((out / "summary.json").read_text()) if (out / "summary.json").exists() else {}
    o.checks["exit 0"] = r.rc == 0
    o.checks["counted as unreadable"] = s.get("rejection_causes", {}).get("unreadable") == 1
    return o


@case("label-null-image", "label landmarks", "bad data", "a null image path in a Parquet manifest")
def _(w):
    return expect_error(w, _label(w, w.fresh("lab"), data=w.data / "man" / "null.parquet"),
                        r"null\.parquet: manifest column 'image' is null in 1 row")


@case("label-null-image-skip", "label landmarks", "bad data", "the same with --on-error skip")
def _(w):
    out = w.fresh("lab")
    r = cli(*_label(w, out, "--on-error", "skip", data=w.data / "man" / "null.parquet"))
    o = Outcome(r.rc, r.error_lines[0] if r.error_lines else r.last_line)
    s = json.loads((out / "summary.json").read_text()) if (out / "summary.json").exists() else {}
    o.checks["exit 0"] = r.rc == 0
    o.checks["counted as unreadable"] = s.get("rejection_causes", {}).get("unreadable") == 1
    if r.rc == 0:
        o.message = f"labeled {s.get('images')} images, {s.get('rejection_causes', {}).get('unreadable')} unreadable"
    return o


@case("label-limit-negative", "label landmarks", "bad option", "--limit -5")
def _(w):
    out = w.fresh("lab")
    return expect_error(w, _label(w, out, "--limit", "-5"), r"--limit: .*must be > 0", extra=_nothing_at(out))


@case("label-existing-run", "label landmarks", "existing run", "label into a finished run's --out without --resume")
def _(w):
    return expect_error(w, _label(w, w.good_label), r"already holds a labeling run .*pass --resume")


@case("label-resume-changed", "label landmarks", "resume, changed config", "--resume with another --threshold")
def _(w):
    return expect_error(w, _label(w, w.good_label, "--resume", "--threshold", "0.2"),
                        r"cannot resume, the configuration changed \(labeler\.threshold\)")


@case("label-writer-as-dataset", "label landmarks", "bad data", "--data '{type: RecordIOWriter, rec_path: train.rec}'")
def _(w):
    spec = f"{{type: RecordIOWriter, rec_path: {w.data / 'train.rec'}}}"
    return expect_error(w, _label(w, w.fresh("lab"), data=spec), r"unknown dataset type 'RecordIOWriter'")


@case("label-concurrent", "label landmarks", "concurrent run", "a labeling run into an --out another one holds")
def _(w):
    out = w.fresh("lab")
    holder = _holding_lock(out, "labeling run")
    try:
        return expect_error(w, _label(w, out), rf"{re.escape(str(out))} is in use by another pyface labeling run "
                                               rf"\(pid {holder.pid} ", exclude=[holder.pid])
    finally:
        holder.kill()
        holder.wait()


@case("label-kill", "label landmarks", "kill -9", "kill -9 mid-run (--workers 2), then --resume: same manifest")
def _(w):
    # 96 images in 48 shards (the good run's 16 could finish between two polls on a fast
    # machine): the uninterrupted run of the same arguments is the reference
    ref, out = w.fresh("lab"), w.fresh("lab")
    r = cli(*_label(w, ref, data=w.data / "img_many"))
    if r.rc != 0:
        return Outcome(r.rc, f"the uninterrupted run failed: {r.last_line}", {"reference run": False})
    argv = _label(w, out, data=w.data / "img_many")
    argv[argv.index("--workers") + 1] = "2"  # the reference's arguments otherwise

    def done():
        return {"manifest equals the uninterrupted run's": same_table(out / "manifest.parquet",
                                                                      ref / "manifest.parquet"),
                "no temporary file left": temps(out) == []}

    def ready():  # a shard is committed and the next one's DataLoader workers are running
        return (out / "part-000001.parquet").exists() and len(processes_naming(str(out))) >= 3

    return _kill_and_resume(w, argv, ready, [*argv, "--resume"], done, "labeling")


# -- label identities
@case("identities-net-truncated", "label identities", "bad checkpoint", "--net-a truncated.pt")
def _(w):
    out = w.fresh("ids")
    return expect_error(w, ["label", "identities", "--dataset", f"a={w.data / 'img'}", "--net-a",
                            w.bad / "truncated.pt", "--net-b", w.good_run / "model.pt", "--threshold-a", "0.9",
                            "--threshold-b", "0.9", "--workers", "0", "--no-progress", "--device", "cpu", "--out", out],
                        r"truncated\.pt.*not a readable", extra=_nothing_at(out))


@case("identities-existing-run", "label identities", "existing run", "into a finished run's --out without --resume")
def _(w):
    return expect_error(w, ["label", "identities", "--dataset", f"a={w.data / 'img'}", "--net-a",
                            w.good_run / "model.pt", "--net-b", w.good_run / "model.pt", "--threshold-a", "0.9",
                            "--threshold-b", "0.9", "--workers", "0", "--no-progress", "--device", "cpu", "--out",
                            w.good_ids], r"already holds a run")


# -- demo
@case("demo-existing-out", "demo", "existing run", "pyface demo mtl --quick into a folder holding a training run")
def _(w):
    out = w.fresh("demo")
    shutil.copytree(w.good_run, out)
    before = tree_digest(out)
    o = expect_error(w, ["demo", "mtl", "--quick", "--out", out], r"already holds a training run", timeout=600)
    o.checks["its run unchanged"] = tree_digest(out) == before
    return o


@case("demo-eval-checkpoint", "demo", "bad checkpoint", "pyface demo eval --checkpoint truncated.pt")
def _(w):
    out = w.fresh("demo")
    return expect_error(w, ["demo", "eval", "--checkpoint", w.bad / "truncated.pt", "--out", out],
                        r"truncated\.pt.*not a readable", extra=_nothing_at(out))


# -- checkpoint reshard
@case("reshard-truncated", "checkpoint reshard", "bad checkpoint", "a truncated checkpoint")
def _(w):
    out = w.fresh("rs")
    return expect_error(w, ["checkpoint", "reshard", w.bad / "truncated.pt", "--world-size", "2", "--out", out],
                        r"truncated\.pt.*not a readable", extra=_nothing_at(out))


@case("reshard-single", "checkpoint reshard", "bad checkpoint", "a single-process checkpoint")
def _(w):
    return expect_error(w, ["checkpoint", "reshard", w.good_run / "checkpoints" / "last.pt", "--world-size", "2",
                            "--out", w.fresh("rs")], r"single-process checkpoint: nothing to re-shard")


@case("reshard-over-a-run", "checkpoint reshard", "existing run", "--out onto a run's checkpoints folder")
def _(w):
    return expect_error(w, ["checkpoint", "reshard", w.good_run / "checkpoints" / "last.pt", "--world-size", "1",
                            "--out", w.good_run / "checkpoints"], r"already holds a checkpoint")


# -- full disk (a tmpfs in a private mount namespace)
def unshare_works() -> bool:
    if not sys.platform.startswith("linux") or shutil.which("unshare") is None:
        return False
    try:
        return subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt 2>/dev/null || "
                               "mount -t tmpfs -o size=1m tmpfs /tmp"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


_FULL_DISK = {
    # case: (argv builder, the folder on the tmpfs, what must resume)
    "train": "training", "label": "labeling", "eval": "evaluation",
}


def _full_disk(w: World, kind: str) -> Outcome:
    if not unshare_works():
        o = Outcome(None, "skipped: this machine allows no private tmpfs (unshare -rm)")
        o.checks["tmpfs available"] = False
        return o
    mnt = w.fresh("disk")
    mnt.mkdir(parents=True)
    args = {"world": str(w.root), "mnt": str(mnt), "kind": kind, "tree": str(TREE)}
    p = subprocess.run(["unshare", "-rm", sys.executable, __file__, "full-disk", json.dumps(args)],
                       capture_output=True, text=True, env=_env(), timeout=600)
    try:
        res = json.loads(p.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        o = Outcome(p.returncode, "driver failed: " + p.stderr[-500:])
        o.checks["driver ran"] = False
        return o
    o = Outcome(res["rc"], res["message"], res["checks"], res.get("notes", []))
    o.checks["no process left"] = not leftovers(w.root)
    return o


def _full_disk_driver(args: dict) -> dict:
    """Inside the private mount namespace: a tmpfs at ``mnt``, a copy of a good run on it
    (must stay unchanged), the disk filled until the job cannot write, the job run (must
    fail with one line naming a file on the tmpfs, no temporary file left), space freed,
    the job resumed (must finish)."""
    global TREE
    TREE = Path(args["tree"])
    w = World(Path(args["world"]))
    mnt, kind = Path(args["mnt"]), args["kind"]
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mnt)], check=True)
    shutil.copytree(w.good_run, mnt / "good")
    before = tree_digest(mnt / "good")
    out = mnt / "job"
    if kind == "train":
        cfg = w.config(out, max_steps=12, checkpoint_every=1)
        argv, again = ["train", "--config", cfg], ["train", "--config", cfg, "--resume"]
    elif kind == "label":
        argv = _label(w, out)
        again = [*argv, "--resume"]
    else:
        argv = ["eval", "verification", "--checkpoint", w.good_run, "--bin", w.data / "lfw.bin", "--out", out,
                "--device", "cpu", "--no-progress"]
        again = argv
    filler = mnt / "filler"
    # leave a few kilobytes: the job gets going (or fails at its first file), then runs out
    free = shutil.disk_usage(mnt).free
    with open(filler, "wb") as f:
        f.write(b"\0" * max(0, free - (160 * 1024 if kind == "train" else 24 * 1024)))
    r = cli(*argv, timeout=300)
    res = {"rc": r.rc, "message": r.error_lines[0] if r.error_lines else r.last_line, "checks": {}, "notes": []}
    c = res["checks"]
    c["exit 2"] = r.rc == 2
    c["one line, no traceback"] = len(r.error_lines) == 1 and "Traceback" not in r.stderr
    c["says no space, names a file on the full disk"] = bool(r.error_lines) and "no space left" in r.error_lines[0] \
        and str(mnt) in r.error_lines[0]
    c["no temporary file left"] = temps(mnt) == []
    c["good run on the same disk unchanged"] = tree_digest(mnt / "good") == before
    filler.unlink()
    r2 = cli(*again, timeout=300)
    c["resumes after space is freed"] = r2.rc == 0
    if r2.rc != 0:
        res["notes"].append("resume: " + (r2.error_lines[0] if r2.error_lines else r2.last_line)[:200])
    return res


for _kind, _cmd in (("train", "train"), ("label", "label landmarks"), ("eval", "eval")):
    case(f"{_kind}-full-disk", _cmd, "full disk", "the disk fills during the job (tmpfs), then space is freed and "
         "the job resumed")(lambda w, _kind=_kind: _full_disk(w, _kind))


if __name__ == "__main__" and len(sys.argv) > 2 and sys.argv[1] == "full-disk":
    sys.path.insert(0, json.loads(sys.argv[2])["tree"])
    print(json.dumps(_full_disk_driver(json.loads(sys.argv[2]))))

__all__ = ["CASES", "Outcome", "World", "run_case", "unshare_works"]
