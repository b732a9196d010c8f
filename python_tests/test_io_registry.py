"""pyface.io (atomic commits, stale temporaries, folder locks) and pyface.registry."""
import errno
import os
import signal
import subprocess
import sys
import time

import pytest
from utils import NEUTRAL_CWD, subprocess_env

from pyface.errors import ConfigError, OutputError, UserError
from pyface.io import FolderLock, atomic_path, atomic_write, remove_stale_temps, write_json_atomic
from pyface.registry import Registry, did_you_mean


def test_atomic_write_replaces_only_on_success(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(p, "w") as f:
            f.write("new, half")
            raise RuntimeError("killed")
    assert p.read_text() == "old"
    assert os.listdir(tmp_path) == ["a.txt"]  # the temporary file is gone
    with atomic_write(p, "w") as f:
        f.write("new")
    assert p.read_text() == "new"
    write_json_atomic(tmp_path / "b.json", {"z": 1, "a": [1, 2]})
    assert (tmp_path / "b.json").read_text().startswith('{\n  "a"')


def test_full_disk_is_one_line_naming_the_file_and_leaves_nothing(tmp_path, monkeypatch):
    p = tmp_path / "model.pt"
    p.write_bytes(b"good")

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OutputError, match="model.pt: no space left") as e:
        with atomic_write(p) as f:
            f.write(b"x" * 1000)
    assert isinstance(e.value, UserError) and "\n" not in str(e.value)
    assert p.read_bytes() == b"good" and os.listdir(tmp_path) == ["model.pt"]


def test_a_killed_writer_leaves_the_old_file_and_a_temp_that_is_cleaned(tmp_path):
    target = tmp_path / "big.bin"
    target.write_bytes(b"previous")
    code = ("import sys, time; from pyface.io import atomic_write\n"
            "with atomic_write(sys.argv[1]) as f:\n"
            "    f.write(b'x' * 1000); f.flush(); print('writing', flush=True); time.sleep(60)\n")
    p = subprocess.Popen([sys.executable, "-c", code, str(target)], stdout=subprocess.PIPE, text=True,
                         env=subprocess_env(), cwd=NEUTRAL_CWD)
    assert p.stdout.readline().strip() == "writing"
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert target.read_bytes() == b"previous"
    temps = [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]
    assert len(temps) == 1 and temps[0].startswith(".big.bin.")
    removed = remove_stale_temps(tmp_path)
    assert [r.name for r in removed] == temps and os.listdir(tmp_path) == ["big.bin"]


def test_remove_stale_temps_keeps_a_live_writers_file(tmp_path):
    with atomic_path(tmp_path / "x.parquet") as tmp:
        tmp.write_bytes(b"in progress")
        assert remove_stale_temps(tmp_path) == [] and tmp.exists()
    assert (tmp_path / "x.parquet").read_bytes() == b"in progress"


def test_keep_suffix_temp_ends_in_the_extension_and_is_cleaned_when_its_writer_is_gone(tmp_path):
    """cv2.VideoWriter picks the container from the name: the temporary keeps ``.mp4``;
    a killed writer's is still recognised as a temporary (by pid)."""
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "clip.mp4", keep_suffix=True) as tmp:
            assert tmp.name.startswith(".clip.mp4.") and tmp.name.endswith(".tmp.mp4")
            tmp.write_bytes(b"partial")
            raise RuntimeError("killed mid-video")
    assert os.listdir(tmp_path) == []
    dead = tmp_path / ".clip.mp4.999999999.0123abcd.tmp.mp4"  # no such pid
    dead.write_bytes(b"left by a killed writer")
    (tmp_path / "keep.tmp.mp4").write_bytes(b"a user's file")  # not one of ours
    assert remove_stale_temps(tmp_path) == [dead] and os.listdir(tmp_path) == ["keep.tmp.mp4"]


def test_folder_lock_refuses_a_second_process_naming_the_holder(tmp_path):
    code = ("import sys, time; from pyface.io import FolderLock\n"
            "with FolderLock(sys.argv[1], 'training run'):\n"
            "    print('locked', flush=True); time.sleep(60)\n")
    p = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                         env=subprocess_env(), cwd=NEUTRAL_CWD)
    try:
        assert p.stdout.readline().strip() == "locked"
        with pytest.raises(OutputError, match=rf"in use by another pyface training run \(pid {p.pid} "):
            FolderLock(tmp_path, "training run").acquire()
    finally:
        p.kill()
        p.wait()
    # the kernel released it with the process: no stale lock
    deadline = time.monotonic() + 10
    while True:
        try:
            with FolderLock(tmp_path):
                with FolderLock(tmp_path):  # re-entrant in one process
                    pass
            break
        except OutputError:
            assert time.monotonic() < deadline
            time.sleep(0.1)


def test_registry_get_list_and_suggest():
    reg = Registry("dataset type")

    @reg.register("SyntheticFaces")
    class A:
        pass

    reg.register("ImageFolderFaces", object())
    assert reg.get("SyntheticFaces") is A and "SyntheticFaces" in reg and len(reg) == 2
    assert reg.names() == ["ImageFolderFaces", "SyntheticFaces"] and reg.names("Synth*") == ["SyntheticFaces"]
    with pytest.raises(ConfigError, match=r"data.train.type: unknown dataset type 'SynteticFaces' \(did you mean "
                                          r"'SyntheticFaces'\?\); known dataset types: ImageFolderFaces, "
                                          r"SyntheticFaces"):
        reg.get("SynteticFaces", what="data.train.type")
    with pytest.raises(ValueError, match="already registered"):
        reg.register("SyntheticFaces", object())
    assert did_you_mean("zzz", ["abc"]) == ""
