"""Issue 20: `pyface label landmarks` under torchrun (2 gloo ranks on the CPU) and as a job
array (--part k/N + `pyface label finalize`): the shard files and manifest.parquet are the
same bytes as one process writes, summary.json the same but for its timing keys; kill and
resume; uneven shard counts, a rank with no shard, a failing rank; the CPU worker pool
(--cpu-workers) gives the same labels as none and dies with its parent."""
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import pyface
from pyface.cli import main
from pyface.data import SyntheticFaces, write_image_folder
from pyface.label.landmarks import VARYING_KEYS
from pyface.models import MultiTaskNet, model_config

# The pyface under test (source tree or installed wheel): torchrun's workers import it.
PKG_ROOT = Path(pyface.__file__).resolve().parents[1]


def _env(**extra):
    path = os.pathsep.join([str(PKG_ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", **extra}


def torchrun(*argv, nproc=2, no_python=None) -> subprocess.Popen:
    """``torchrun --standalone --nproc_per_node N -m pyface ARGV`` (or ``--no-python
    <no_python> ARGV``), in its own session, output captured."""
    launch = ["--no-python", str(no_python)] if no_python else ["-m", "pyface"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
           *launch, *map(str, argv)]
    return subprocess.Popen(cmd, env=_env(), cwd=PKG_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)


def finish(p: subprocess.Popen, timeout=600) -> str:
    out, _ = p.communicate(timeout=timeout)
    return out


def outputs(out: Path) -> dict[str, bytes]:
    """Every deterministic file of a label run: the shards and the manifest, as bytes."""
    names = sorted(f for f in os.listdir(out) if f.startswith("part-") or f == "manifest.parquet")
    return {f: (out / f).read_bytes() for f in names}


def summary(out: Path) -> dict:
    s = json.loads((out / "summary.json").read_text())
    assert s["manifest"] == str((out / "manifest.parquet").resolve())
    return {k: v for k, v in s.items() if k not in VARYING_KEYS + ("manifest",)}  # (the folders differ)


def entry_point(tmp_path) -> Path:
    """The installed ``pyface`` program, or the same console-script shim in tmp_path."""
    found = shutil.which("pyface")
    if found:
        return Path(found)
    shim = tmp_path / "bin" / "pyface"
    shim.parent.mkdir(exist_ok=True)
    shim.write_text(f"#!{sys.executable}\nimport sys\nfrom pyface.cli import main\nsys.exit(main())\n")
    shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
    return shim


def _net(path, size=32, width=4):
    torch.manual_seed(0)
    net = MultiTaskNet(model_config("resnet18-fld-hpe", input_size=size, width=width, layers=(1, 1, 1, 1)))
    with torch.no_grad():  # non-degenerate random predictions (the heads start at zero)
        for h in net.heads.values():
            h.head.fc.weight.normal_(0, 0.3)
    torch.save({"model": net.state_dict(), "model_config": net.config.to_dict()}, path)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("dist")
    ds = SyntheticFaces(6, 3, image_size=48, seed=1)
    write_image_folder(str(root / "img"), [ds[i] for i in range(len(ds))])
    _net(root / "net.pt")
    return root


def _args(data, out, *extra):
    return ["label", "landmarks", "--data", data / "img", "--net", data / "net.pt", "--no-mediapipe", "--views", "4",
            "--threshold", "0.6", "--out", out, "--batch-size", "3", "--workers", "0", "--no-progress",
            "--device", "cpu", *extra]


def _main(*argv):
    return main([str(a) for a in argv])


@pytest.fixture(scope="module")
def single(data, tmp_path_factory):
    """The reference: one process, 18 images in 5 shards of 4 (the last one short)."""
    out = tmp_path_factory.mktemp("single") / "o"
    assert _main(*_args(data, out, "--shard-size", "4")) == 0
    return out


def test_two_ranks_and_job_array_write_the_single_process_bytes(data, single, tmp_path, capsys):
    ref = outputs(single)
    assert sorted(ref) == ["manifest.parquet"] + [f"part-00000{k}.parquet" for k in range(5)]
    # torchrun, 2 gloo ranks, 5 shards (3 + 2), each rank with one CPU worker process
    p = torchrun(*_args(data, tmp_path / "tr", "--shard-size", "4", "--cpu-workers", "1"))
    log = finish(p)
    assert p.returncode == 0, log
    assert log.count("labeled 18 images") == 1, log  # rank 0 reports
    assert outputs(tmp_path / "tr") == ref
    assert summary(tmp_path / "tr") == summary(single)
    ranks = {json.loads(f.read_text())["rank"] for f in (tmp_path / "tr" / "timing").iterdir()}
    assert ranks == {0, 1}
    s = json.loads((tmp_path / "tr" / "summary.json").read_text())
    assert s["writers"] == 2 and s["images"] == 18 and s["shards"] == 5
    # rank 0's folder check fails on every rank with the same one-line error, no hang
    p = torchrun(*_args(data, tmp_path / "tr", "--shard-size", "4"))
    log = finish(p, timeout=300)
    assert p.returncode != 0 and log.count("pyface label landmarks: error: ") == 2 and "--resume" in log, log

    # a job array: part 2/2 first, finalize refuses the incomplete folder, then part 1/2
    parts = tmp_path / "parts"
    assert _main(*_args(data, parts, "--shard-size", "4", "--part", "2/2")) == 0
    assert sorted(f for f in os.listdir(parts) if f.startswith("part-")) == ["part-000001.parquet",
                                                                            "part-000003.parquet"]
    assert not (parts / "manifest.parquet").exists()
    capsys.readouterr()
    assert _main("label", "finalize", parts) == 2
    err = capsys.readouterr().err
    assert "3 of 5 shards missing (part-000000.parquet, part-000002.parquet, part-000004.parquet)" in err, err
    assert _main(*_args(data, parts, "--shard-size", "4", "--part", "2/2")) == 2  # its shards exist: --resume
    assert "--resume" in capsys.readouterr().err
    assert _main(*_args(data, parts, "--shard-size", "4", "--part", "1/2", "--threshold", "0.5")) != 0
    assert _main(*_args(data, parts, "--shard-size", "4", "--part", "1/2")) == 0
    assert not (parts / "manifest.parquet").exists()
    assert _main("label", "finalize", parts) == 0
    assert outputs(parts) == ref
    assert summary(parts) == summary(single)


def test_uneven_units_and_empty_ranks():
    from pyface.work_split import Part, WorkSplit, parse_part

    class Ctx:  # a DistContext stand-in: which units rank r of W takes
        def __init__(self, r, w):
            self.rank, self.world_size = r, w

    todo = [0, 2, 3, 5, 6]
    shares = [WorkSplit(Ctx(r, 3)).take(todo) for r in range(3)]
    assert shares == [[0, 5], [2, 6], [3]]
    assert [WorkSplit(Ctx(r, 4)).take([7]) for r in range(4)] == [[7], [], [], []]  # ranks with no unit
    assert Part(1, 3).units(8) == [1, 4, 7] and str(parse_part("2/3")) == "2/3"
    for bad in ("0/2", "3/2", "1", "a/b"):
        with pytest.raises(ValueError, match="--part"):
            parse_part(bad)


def _pids_by_rank(launcher: subprocess.Popen) -> dict[int, int]:
    psutil = pytest.importorskip("psutil")
    out = {}
    for c in psutil.Process(launcher.pid).children(recursive=True):
        try:
            env = c.environ()
        except (psutil.Error, OSError):
            continue
        if "RANK" in env and "LOCAL_RANK" in env and c.name().startswith("python"):
            out.setdefault(int(env["RANK"]), c.pid)
    return out


def _wait_for(cond, timeout=300, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_killed_rank_and_killed_job_resume_to_the_same_bytes(data, tmp_path):
    # slower shards (more views through a wider net), so that a kill lands mid-run
    big = tmp_path / "big"
    big.mkdir()
    ds = SyntheticFaces(12, 3, image_size=48, seed=2)
    write_image_folder(str(big / "img"), [ds[i] for i in range(len(ds))])
    _net(big / "net.pt", size=64, width=16)
    args = _args(big, tmp_path / "one", "--shard-size", "2", "--views", "8")
    assert _main(*args) == 0
    ref, ref_summary = outputs(tmp_path / "one"), summary(tmp_path / "one")
    assert len(ref) == 19  # 36 images, 18 shards

    out = tmp_path / "cut"
    args = _args(big, out, "--shard-size", "2", "--views", "8")
    p = torchrun(*args)
    timing = out / "timing"
    _wait_for(lambda: timing.is_dir() and any(json.loads(f.read_text())["rank"] == 1 for f in timing.glob("*.json")
                                              if f.stat().st_size), what="a shard of rank 1")
    pids = _pids_by_rank(p)
    os.kill(pids[1], signal.SIGKILL)  # one rank dies; torchrun ends the other
    log = finish(p)
    assert p.returncode != 0, log
    assert not (out / "manifest.parquet").exists(), "finished before the kill"
    done_before = len(list(out.glob("part-*.parquet")))
    assert 1 <= done_before < 18

    p = torchrun(*args, "--resume")  # then the whole job is killed, as a scheduler does (SIGTERM)
    _wait_for(lambda: len(list(out.glob("part-*.parquet"))) >= done_before + 2 or p.poll() is not None,
              what="two more shards")
    p.send_signal(signal.SIGTERM)
    finish(p)
    if (out / "manifest.parquet").exists():
        pytest.fail("the resumed run finished before it could be killed")
    assert p.returncode != 0
    p = torchrun(*args, "--resume")
    log = finish(p)
    assert p.returncode == 0, log
    assert outputs(out) == ref
    assert summary(out) == ref_summary


def test_rank_without_shard_entry_point_and_failing_rank(data, tmp_path):
    pyface_bin = entry_point(tmp_path)
    # one shard, two ranks: rank 1 has nothing to do (torchrun --no-python with the pyface program)
    p = torchrun(*_args(data, tmp_path / "tr", "--shard-size", "64"), no_python=pyface_bin)
    log = finish(p)
    assert p.returncode == 0, log
    assert _main(*_args(data, tmp_path / "one", "--shard-size", "64")) == 0
    assert outputs(tmp_path / "tr") == outputs(tmp_path / "one") and len(outputs(tmp_path / "one")) == 2
    # a rank that fails: an unreadable image in rank 1's shard (shard 1 of 3); every rank
    # exits non-zero (rank 0 is stopped in the barrier by torchrun), nothing final written
    bad = tmp_path / "bad"
    shutil.copytree(data / "img", bad / "img")
    files = sorted(str(f.relative_to(bad / "img")) for f in (bad / "img").rglob("*.jpg"))
    (bad / "img" / files[8]).write_bytes(b"not an image")
    shutil.copy(data / "net.pt", bad / "net.pt")
    t0 = time.time()
    p = torchrun(*_args(bad, tmp_path / "failed", "--shard-size", "6"))
    log = finish(p, timeout=300)
    assert p.returncode != 0, log
    assert "not an image" in log or os.path.basename(files[8]) in log, log
    assert not (tmp_path / "failed" / "manifest.parquet").exists()
    print(f"a failing rank: torchrun exited {p.returncode} after {time.time() - t0:.0f} s")


# ----------------------------------------------------------------------------- --cpu-workers
def _images(n=5, size=64, seed=3):
    ds = SyntheticFaces(n, 1, image_size=size, seed=seed)
    return [ds[i]["image"].permute(1, 2, 0).numpy().copy() for i in range(n)]


def test_cpu_workers_give_the_same_labels(data):
    from pyface.label import Labeler
    from pyface.label import mediapipe as M

    images = _images()
    kw = dict(views=4, threshold=0.6, device="cpu", mediapipe=M.available())
    ref = Labeler(str(data / "net.pt"), **kw).label_arrays(images, keep_samples=True)
    with Labeler(str(data / "net.pt"), cpu_workers=2, **kw) as lab:
        got = lab.label_arrays(images, keep_samples=True)
        pending = [lab.start(images[:2]), lab.start(images[2:])]  # two batches in flight
        split = [lab.finish(b, keep_samples=True) for b in pending]
        pids = lab._pool.pids()
        assert len(pids) == 2 and lab.timings["warp"] > 0
    for k in ("landmarks", "pose", "accepted", "n_valid", "n_kept", "spread", "cause", "samples", "kept"):
        a, b = np.asarray(ref[k]), np.asarray(got[k])
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), k
        c = np.concatenate([np.asarray(s[k]) for s in split])
        assert np.array_equal(a, c, equal_nan=a.dtype.kind == "f"), k
    assert ref["sample_causes"] == got["sample_causes"]
    _wait_for(lambda: not any(_alive(p) for p in pids), timeout=30, what="workers ended by close()")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def test_cpu_workers_die_with_a_killed_parent(data, tmp_path):
    code = textwrap.dedent(f"""
        import os, sys, time
        from pyface.data import SyntheticFaces
        from pyface.label import Labeler
        ds = SyntheticFaces(2, 1, image_size=48, seed=0)
        lab = Labeler({str(data / "net.pt")!r}, mediapipe=False, views=2, device="cpu", cpu_workers=2)
        lab.label_arrays([ds[i]["image"].permute(1, 2, 0).numpy().copy() for i in range(2)])
        print(" ".join(map(str, lab._pool.pids())), flush=True)
        time.sleep(600)
    """)
    p = subprocess.Popen([sys.executable, "-c", code], env=_env(), cwd=tmp_path, stdout=subprocess.PIPE, text=True)
    pids = [int(x) for x in p.stdout.readline().split()]
    assert len(pids) == 2 and all(_alive(w) for w in pids)
    p.kill()  # SIGKILL: no atexit, no executor shutdown -- only the kernel's parent-death signal
    p.wait()
    _wait_for(lambda: not any(_alive(w) for w in pids), timeout=10, what="the workers of a killed parent to end")


# ----------------------------------------------------------------------------- label identities
def _identity_outputs(out: Path) -> dict[str, bytes]:
    """The deterministic files of a `label identities` run: every embedding unit, the
    identity map, the merges, the PLTD manifest."""
    files = sorted(p for p in out.rglob("*") if p.is_file() and (p.suffix in (".parquet", ".csv"))
                   and "timing" not in p.parts)
    return {str(p.relative_to(out)): p.read_bytes() for p in files}


def _identity_summary(out: Path) -> dict:
    s = json.loads((out / "summary.json").read_text())
    s.pop("seconds")
    return s


@pytest.fixture(scope="module")
def fr_data(tmp_path_factory):
    """Two FR datasets (folder + RecordIO, shared persons), two FR checkpoints, a
    calibration .bin and Algorithm-1 shards of dataset A (python_tests/test_label_identities.py)."""
    from test_label_identities import PERSONS_A, PERSONS_B, person_image, samples, write_alg1_shards

    from pyface.data import ImageFolderFaces, write_recordio
    from pyface.data.verification_bin import write_bin
    from pyface.models import build_model

    root = tmp_path_factory.mktemp("ids")
    write_image_folder(str(root / "A"), samples(PERSONS_A, salt=1))
    write_recordio(str(root / "B" / "train.rec"), samples(PERSONS_B, salt=2))
    for name in ("a", "b"):
        torch.manual_seed(len(name) + 10 * (name == "b"))
        m = build_model("iresnet-tiny-multi")
        torch.save({"model": m.state_dict(), "model_config": m.config.to_dict()}, root / f"{name}.pt")
    imgs, same = [], []
    for p in range(4):
        imgs += [person_image(p, 0, salt=5), person_image(p, 1, salt=5),
                 person_image(p, 2, salt=5), person_image((p + 1) % 4, 2, salt=5)]
        same += [True, False]
    write_bin(str(root / "pairs.bin"), [x.permute(1, 2, 0).numpy() for x in imgs], same, ext=".png")
    write_alg1_shards(root / "lm", [("A", ImageFolderFaces(str(root / "A")))])
    return root


def _identities_args(d, out, *extra):
    return ["label", "identities", "--dataset", f"A={d / 'A'}", "--dataset", f"B={d / 'B' / 'train.rec'}",
            "--net-a", d / "a.pt", "--net-b", d / "b.pt", "--calibrate", d / "pairs.bin", "--landmarks", d / "lm",
            "--out", out, "--chunk-size", "5", "--batch-size", "3", "--workers", "0", "--no-progress",
            "--device", "cpu", *extra]


def test_identities_two_ranks_and_job_array_equal_one_process(fr_data, tmp_path, capsys):
    assert _main(*_identities_args(fr_data, tmp_path / "one")) == 0
    ref = _identity_outputs(tmp_path / "one")
    # 24 images per dataset in units of 5: 5 units each (3 + 2 per rank), plus the final files
    assert len([f for f in ref if f.startswith("embeddings/A/part-")]) == 5 and "manifest.parquet" in ref
    p = torchrun(*_identities_args(fr_data, tmp_path / "tr"))
    log = finish(p)
    assert p.returncode == 0, log
    assert log.count("identities: 16 before") == 1, log
    assert _identity_outputs(tmp_path / "tr") == ref  # unit sums, identity map, merges, manifest: same bytes
    ranks = {json.loads(f.read_text())["rank"] for f in (tmp_path / "tr" / "embeddings" / "A" / "timing").iterdir()}
    assert ranks == {0, 1}
    s1, s2 = _identity_summary(tmp_path / "one"), _identity_summary(tmp_path / "tr")
    assert s1 == s2
    # a job array: the parts embed; finalize checks the units, calibrates, merges, writes
    parts = tmp_path / "parts"
    assert _main(*_identities_args(fr_data, parts, "--part", "1/2")) == 0
    capsys.readouterr()
    assert _main("label", "finalize", parts) == 2
    assert "embedding units missing" in capsys.readouterr().err
    assert _main(*_identities_args(fr_data, parts, "--part", "2/2")) == 0
    assert not (parts / "manifest.parquet").exists()
    assert _main("label", "finalize", parts) == 0
    assert {k: v for k, v in _identity_outputs(parts).items()} == ref
    assert _identity_summary(parts) == s1


def test_identity_sums_are_added_in_unit_order():
    """The reduction adds unit sums in unit order (never in the order ranks finished), so
    values whose float sum depends on the order come out the same for any split."""
    import tempfile

    from pyface.label.identities.embed import _reduce, _unit_table
    from pyface.label.shards import open_output

    vals = [1e16, 1.0, -1e16, 1.0, 3.0]  # in this order: ((1e16 + 1) - 1e16) + 1 + 3 = 4.0
    with tempfile.TemporaryDirectory() as d:
        out = open_output(d, {"t": 1}, units=5)
        for k in (4, 2, 0, 3, 1):  # written in another order, as ranks would
            t, meta = _unit_table([torch.tensor([7])], [torch.tensor([[vals[k]]], dtype=torch.float64)],
                                  [torch.tensor([[0.0]], dtype=torch.float64)], 1, 1)
            out.write(k, t, {**meta, "images": 1})
        g = _reduce("x", out, 1, 1, None)
    expect = 0.0
    for v in vals:
        expect += v
    assert g.sum_a[0, 0] == expect == 4.0 and g.counts[0] == 5


# ----------------------------------------------------------------------------- memory per rank
def _memory_rank(rank, port, out, result):
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    import psutil
    from test_label_cli import _CheapNet, _Tiny

    from pyface.distributed import run_job, setup
    from pyface.label import Labeler
    from pyface.label.landmarks import label_dataset
    from pyface.work_split import WorkSplit

    def job():
        ctx, _ = setup(torch.device("cpu"))
        proc, rss = psutil.Process(), []
        with Labeler(_CheapNet(), mediapipe=False, views=2, device="cpu", batch_size=2000, cpu_workers=1) as lab:
            label_dataset(_Tiny(), lab, out, shard_size=2000, batch_size=1000, progress=False, split=WorkSplit(ctx),
                          callback=lambda k: rss.append(proc.memory_info().rss))
        Path(result).write_text(json.dumps(rss))

    run_job(job)


def test_memory_bounded_per_rank(tmp_path):
    """As the single-process test (test_label_cli.py): 20k images in shards of 2000, now
    5 shards per rank, with a CPU worker and one batch in flight: a rank's memory is one
    shard of rows plus the prefetch, not its share of the data set."""
    pytest.importorskip("psutil")
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_memory_rank, args=(r, port, str(tmp_path / "o"), str(tmp_path / f"rss{r}.json")))
             for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=600)
    assert [p.exitcode for p in procs] == [0, 0]
    for r in range(2):
        rss = json.loads((tmp_path / f"rss{r}.json").read_text())
        assert len(rss) == 5
        growth = (rss[4] - rss[1]) / 2**20
        assert growth < 40, f"rank {r}: RSS grew by {growth:.0f} MiB between its shard 2 and 5 (not streaming?)"
        print(f"rank {r}: RSS growth between its shard 2 and 5: {growth:.1f} MiB")
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["images"] == 20_000
