"""The ``pyface`` command line (pyface/cli): strict parsing with suggestions for every
registered command, one-line user errors vs tracebacks for bugs, ``--help`` without
torch, the old spellings, ``pyface checkpoint reshard``, the torchrun path."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import pyface
from pyface import cli
from pyface.cli.command import COMMANDS, Command, Group
from pyface.errors import ConfigError, UsageError

# Subprocesses import the pyface under test (the source tree, or the installed wheel in
# CI) and run in a temporary folder, never from the cwd's source tree.
PKG_ROOT = Path(pyface.__file__).resolve().parents[1]
COMMAND_NAMES = [n for n, c in cli.commands().items() if isinstance(c, Command)]


def _run(args, tmp_path, **kw):
    path = [str(PKG_ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    return subprocess.run([sys.executable, *args], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, **kw)


def _one_error_line(capsys, prog: str) -> str:
    out = capsys.readouterr()
    assert out.err.count("\n") == 1 and out.err.startswith(f"{prog}: error: "), out.err
    return out.err


def test_every_subcommand_is_registered_once():
    assert set(COMMAND_NAMES) == {"train", "eval", "bench", "doctor", "checkpoint reshard", "export", "demo mtl",
                                  "demo hmtl", "demo label", "demo eval", "demo ablations", "label landmarks",
                                  "label fit-index-map", "label identities", "label finalize", "data mean-shape",
                                  "analyze", "compare"}
    groups = {n for n, c in cli.commands().items() if isinstance(c, Group)}
    assert groups == {"demo", "label", "checkpoint", "data"}
    with pytest.raises(ValueError, match="already registered"):
        COMMANDS.register("train", Command())


@pytest.mark.parametrize("name", COMMAND_NAMES)
def test_unknown_option_refused_with_suggestion(name, capsys):
    """Before any argument is checked or any job starts (required ones left out too)."""
    assert cli.main([*name.split(), "--no-such-option", "3"]) == 2
    err = _one_error_line(capsys, f"pyface {name}")
    assert "unknown option --no-such-option" in err
    # a misspelt option of the command: the suggestion names it
    if name == "bench":  # its options are the selected benchmarks' own
        assert cli.main(["bench", "lpmc", "--dimm", "3"]) == 2
        assert "unknown option --dimm (did you mean '--dim'?)" in _one_error_line(capsys, "pyface bench")
        return
    cmd, parsers = COMMANDS.get(name), cli._build(cli.commands())[1]
    option = next(o for o in parsers[name].option_strings() if o.startswith("--") and o != "--help")
    assert cli.main([*name.split(), option + "x"]) == 2
    # (the closest first; another close option may follow: --datax -> '--data' or '--part')
    assert f"unknown option {option}x (did you mean '{option}'" in _one_error_line(capsys, f"pyface {name}")
    assert cmd.name == name


def test_the_issue_example_and_no_abbreviations(capsys):
    assert cli.main(["train", "--config", "x.yaml", "--epochs", "3"]) == 2
    err = _one_error_line(capsys, "pyface train")
    assert err == ("pyface train: error: unknown option --epochs; options: --help --config --resume --out-dir "
                   "--device --reference-ops\n")
    assert cli.main(["train", "--config", "x.yaml", "--out", "o"]) == 2  # was an abbreviation of --out-dir
    assert "unknown option --out (did you mean '--out-dir'?)" in _one_error_line(capsys, "pyface train")
    assert cli.main(["train", "--config=x.yaml", "--devices=cpu"]) == 2
    assert "unknown option --devices (did you mean '--device'?)" in _one_error_line(capsys, "pyface train")
    assert cli.main(["eval", "all", "--checkpoint", "m.pt", "extra"]) == 2
    assert "unexpected argument 'extra'" in _one_error_line(capsys, "pyface eval")
    # negative numbers are values, not options
    _, args = cli.parse_args(["label", "identities", "--dataset", "a=x", "--net-a", "a", "--net-b", "b",
                              "--threshold-a", "-0.5", "--threshold-b", "-1", "--out", "o"])
    assert (args.threshold_a, args.threshold_b) == (-0.5, -1.0)


def test_unknown_commands_and_bad_values(capsys):
    assert cli.main(["trian"]) == 2
    assert "unknown command 'trian' (did you mean 'train'?)" in _one_error_line(capsys, "pyface")
    assert cli.main(["label", "identity"]) == 2
    assert "unknown command 'identity' (did you mean 'identities'?)" in _one_error_line(capsys, "pyface label")
    assert cli.main(["label"]) == 2
    assert "no command given" in _one_error_line(capsys, "pyface label")
    assert cli.main([]) == 2
    assert "no command given" in _one_error_line(capsys, "pyface")
    assert cli.main(["demo", "--epochs", "0"]) == 2
    assert "argument --epochs: must be > 0, got 0" in _one_error_line(capsys, "pyface demo mtl")
    assert cli.main(["eval", "sideways", "--checkpoint", "m.pt"]) == 2
    assert "invalid choice: 'sideways'" in _one_error_line(capsys, "pyface eval")
    assert cli.main(["train"]) == 2
    assert "required: --config" in _one_error_line(capsys, "pyface train")
    # argument-level validation: files named by flags, before any job starts
    assert cli.main(["train", "--config", "/no/such.yaml"]) == 2
    assert _one_error_line(capsys, "pyface train") == \
        "pyface train: error: --config: config file not found: /no/such.yaml\n"


class _Raises(Command):
    name, help = "zz-test", "raises what it is given"

    def __init__(self, exc=None):
        self.exc = exc

    def add_arguments(self, p):
        p.add_argument("--flag", action="store_true")

    def run(self, args):
        raise self.exc


@pytest.fixture
def raising():
    def register(exc):
        COMMANDS.register("zz-test", _Raises(exc), overwrite=True)

    yield register
    COMMANDS.unregister("zz-test")


def test_user_error_is_one_line_a_bug_keeps_its_traceback(raising, capsys):
    raising(ConfigError("data.train.type: unknown dataset type 'Foo'\n(second line)"))
    assert cli.main(["zz-test"]) == 2
    assert capsys.readouterr().err == ("pyface zz-test: error: data.train.type: unknown dataset type 'Foo' "
                                       "(second line)\n")
    raising(ZeroDivisionError("a bug"))
    with pytest.raises(ZeroDivisionError, match="a bug"):  # the program: traceback, exit 1 (next test)
        cli.main(["zz-test"])
    raising(UsageError("x"))
    with pytest.raises(UsageError):  # run() lets every error through
        cli.run(["zz-test"])


def test_bug_traceback_and_exit_codes_of_the_program(tmp_path):
    code = ("import sys\nfrom pyface import cli\nfrom pyface.cli.command import COMMANDS, Command\n"
            "class C(Command):\n    name, help = 'zz', 'x'\n    def run(self, args):\n        {body}\n"
            "COMMANDS.register('zz', C())\nsys.exit(cli.main(['zz']))\n")
    bug = _run(["-c", code.format(body="return 1 / 0")], tmp_path)
    assert bug.returncode == 1 and "Traceback" in bug.stderr and "ZeroDivisionError" in bug.stderr
    raise_data_error = "from pyface.errors import DataError; raise DataError('img.jpg: cannot decode')"
    user = _run(["-c", code.format(body=raise_data_error)], tmp_path)
    assert user.returncode == 2 and user.stderr == "pyface zz: error: img.jpg: cannot decode\n"
    unknown = _run(["-m", "pyface", "train", "--config", "x", "--epochs", "3"], tmp_path)
    assert unknown.returncode == 2 and unknown.stderr.startswith("pyface train: error: unknown option --epochs")


def test_under_torchrun_every_job_ends_through_run_job(raising, monkeypatch, capsys):
    """WORLD_SIZE > 1: the job runs inside pyface.distributed.run_job, whose on_error
    reports as main does (one line and 2 for a user error, the traceback and 1 for a bug)."""
    import pyface.distributed

    seen = {}

    def fake_run_job(job, *args, on_error):
        seen["job"], seen["on_error"] = job, on_error
        return 0

    monkeypatch.setattr(pyface.distributed, "run_job", fake_run_job)
    monkeypatch.setenv("WORLD_SIZE", "2")
    raising(ValueError("unused"))
    assert cli.main(["zz-test"]) == 0 and seen["job"] == COMMANDS.get("zz-test").run
    assert seen["on_error"](ConfigError("bad key")) == 2
    assert capsys.readouterr().err == "pyface zz-test: error: bad key\n"
    try:
        1 / 0  # noqa: B018 - a real traceback to report
    except ZeroDivisionError as exc:
        assert seen["on_error"](exc) == 1
    assert "Traceback" in capsys.readouterr().err
    # train keeps torchelastic's record around its job
    assert cli.main(["train", "--config", "x.yaml"]) == 0
    assert seen["job"] is not COMMANDS.get("train").run and seen["job"].__wrapped__ == COMMANDS.get("train").run


_NO_TORCH = ("import runpy, sys\nsys.argv = ['pyface', *sys.argv[1:]]\ntry:\n"
             "    runpy.run_module('pyface', run_name='__main__')\nexcept SystemExit as e:\n    code = e.code\n"
             "heavy = sorted(m for m in ('torch', 'pyface.ops', 'pyface.eval', 'pyface.train') if m in sys.modules)\n"
             "print('EXIT', code, 'HEAVY', heavy)\n")


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["demo", "--help"], ["label", "--help"],
                                  *[[*n.split(), "--help"] for n in COMMAND_NAMES]], ids=" ".join)
def test_help_does_not_import_torch(argv, tmp_path):
    r = _run(["-c", _NO_TORCH, *argv], tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.rstrip().endswith("EXIT 0 HEAVY []"), r.stdout[-500:]
    assert "usage: pyface" in r.stdout


def test_label_package_is_lazy(tmp_path):
    r = _run(["-c", "import sys, pyface.label, pyface.cli.label; print('torch' in sys.modules)"], tmp_path)
    assert r.stdout.strip() == "False", r.stderr


@pytest.mark.parametrize("old,new", [
    (["demo", "--recipe", "hmtl", "--quick"], "demo hmtl"),
    (["demo", "--out", "o", "--recipe=hmtl"], "demo hmtl"),
    (["demo", "--recipe", "mtl", "--seed", "2"], "demo mtl"),
    (["eval", "demo", "--checkpoint", "m.pt"], "demo eval"),
    (["label", "demo", "--quick", "--seeds", "1"], "demo label"),
])
def test_old_spellings_map_to_the_new_with_a_note(old, new, capsys):
    cmd, args = cli.parse_args(old)
    assert cmd.name == new
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pyface: note: 'pyface " in err and f"is now 'pyface {new}'" in err
    assert not hasattr(args, "recipe")
    if "--out" in old:
        assert args.out == "o"


def test_new_spellings_and_the_default_demo(capsys):
    for argv, name in ((["demo"], "demo mtl"), (["demo", "--quick"], "demo mtl"), (["demo", "hmtl"], "demo hmtl"),
                       (["demo", "label", "--seeds", "1"], "demo label")):
        assert cli.parse_args(argv)[0].name == name
    assert capsys.readouterr().err == ""  # no note for the new spellings


def _distributed_checkpoint(folder: Path, world: int = 2, classes: int = 7, dim: int = 4):
    """A minimal 2-rank checkpoint in the layout of pyface.train.checkpoint: last.pt + one
    shard per rank holding its rows of the class-centre matrix and their optimizer state."""
    from pyface.nn.lpmc import class_shard
    from pyface.train.checkpoint import save_atomic, shard_path

    torch.manual_seed(0)
    w, mom = torch.randn(classes, dim), torch.randn(classes, dim)
    for r in range(world):
        s, n = class_shard(classes, world, r)
        save_atomic({"step": 5, "rank": r, "world_size": world, "loss": {"w": w[s:s + n].clone()},
                     "optimizer": {"w": {"momentum_buffer": mom[s:s + n].clone()}}, "optimizer_index": {"w": 7},
                     "rng": {"rank": r}, "shards": {"w": (s, n, classes)}}, shard_path(folder, 5, r, world))
    save_atomic({"step": 5, "world_size": world, "model": {"x": torch.ones(2)},
                 "optimizer": {"state": {0: {"momentum_buffer": torch.zeros(2)}}, "param_groups": [{"lr": 0.1}]}},
                folder / "last.pt")
    return folder / "last.pt", w, mom


def test_checkpoint_reshard_command(tmp_path, capsys):
    from pyface.train import checkpoint as ckpt

    last, w, mom = _distributed_checkpoint(tmp_path / "run" / "checkpoints")
    assert cli.main(["checkpoint", "reshard", str(last), "--world-size", "1", "--out", str(tmp_path / "one")]) == 0
    assert f"wrote {tmp_path / 'one' / 'last.pt'}" in capsys.readouterr().out
    one = ckpt.load(tmp_path / "one" / "last.pt")
    assert torch.equal(one["loss"]["w"], w) and torch.equal(one["optimizer"]["state"][7]["momentum_buffer"], mom)
    assert "world_size" not in one and one["step"] == 5
    assert cli.main(["checkpoint", "reshard", str(last), "--world-size", "3", "--out", str(tmp_path / "three")]) == 0
    parts = [ckpt.load_rank(tmp_path / "three" / "last.pt", r, 3)["loss"]["w"] for r in range(3)]
    assert [len(p) for p in parts] == [3, 2, 2] and torch.equal(torch.cat(parts), w)
    # the error that asks for a re-shard names the command
    with pytest.raises(ValueError, match=f"pyface checkpoint reshard {last} --world-size 3"):
        ckpt.load_rank(last, 0, 3)
    assert cli.main(["checkpoint", "reshard", str(tmp_path / "none.pt"), "--world-size", "1", "--out", "x"]) == 2
    assert "checkpoint: checkpoint not found" in _one_error_line(capsys, "pyface checkpoint reshard")
    # the old spelling still works, with a note
    r = _run(["-m", "pyface.train.checkpoint", str(last), "--world-size", "1", "--out", str(tmp_path / "old")],
             tmp_path)
    assert r.returncode == 0, r.stderr
    assert "is now 'pyface checkpoint reshard'" in r.stderr and (tmp_path / "old" / "last.pt").is_file()
    assert torch.equal(ckpt.load(tmp_path / "old" / "last.pt")["loss"]["w"], w)


def test_bench_options_are_checked_against_the_selected_benchmarks(capsys, monkeypatch):
    assert cli.main(["bench", "lpmcc"]) == 2
    assert "unknown benchmark 'lpmcc' (did you mean 'lpmc'?)" in _one_error_line(capsys, "pyface bench")
    assert cli.main(["bench", "fit", "--dim", "3"]) == 2  # --dim is lpmc's, not fit's
    assert "unknown option --dim" in _one_error_line(capsys, "pyface bench")
    ran = {}
    from pyface.benchmarks import fit, landmark

    monkeypatch.setattr(fit, "run", lambda a: ran.setdefault("fit", a) and {})
    monkeypatch.setattr(landmark, "run", lambda a: ran.setdefault("landmark", a) and {})
    assert cli.main(["bench", "fit", "landmark", "--iters", "2", "--batch", "8", "--quick", "--out-dir", ""]) == 0
    assert ran["fit"].iters == 2 and ran["fit"].batch == 8 and ran["fit"].quick and ran["landmark"].iters == 2
