"""The output folder's lock under a division of work (pyface.work_split.WorkSplit.lock):
the parts of a job array share one folder on purpose, so each part holds a lock file of
its own; a second copy of the same part, or a second whole job, is refused."""
from __future__ import annotations

import subprocess
import sys

from utils import NEUTRAL_CWD, subprocess_env

from pyface.io import LOCK_FILE
from pyface.work_split import Part, WorkSplit

_TRY = """
import sys
from pyface.errors import OutputError
from pyface.work_split import Part, WorkSplit
part = None if sys.argv[2] == "-" else Part(int(sys.argv[2]), 2)
try:
    with WorkSplit(part=part).lock(sys.argv[1], "labeling run"):
        print("acquired")
except OutputError as exc:
    print("refused:", exc)
"""


def _other_process(folder, part) -> str:
    r = subprocess.run([sys.executable, "-c", _TRY, str(folder), "-" if part is None else str(part)],
                       capture_output=True, text=True, env=subprocess_env(), cwd=NEUTRAL_CWD, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_parts_share_a_folder_and_each_part_runs_once(tmp_path):
    out = tmp_path / "labels"
    with WorkSplit(part=Part(0, 2)).lock(out, "labeling run"):
        assert (out / f"{LOCK_FILE}.part-1-of-2").exists()
        assert _other_process(out, 1) == "acquired"  # part 2/2 beside part 1/2
        refused = _other_process(out, 0)  # part 1/2 again
        assert refused.startswith("refused:") and "labeling run, part 1/2" in refused, refused
    assert not (out / f"{LOCK_FILE}.part-1-of-2").exists()  # released, lock file removed


def test_a_part_leaves_other_parts_temporaries_alone_and_the_whole_job_cleans_them(tmp_path):
    out = tmp_path / "labels"
    out.mkdir()
    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid that is no longer running: its temporary file counts as stale
    tmp = out / f".part-000003.parquet.{gone.pid}.0123abcd.tmp"  # what a sibling part was writing
    tmp.write_bytes(b"x")
    with WorkSplit(part=Part(1, 2)).lock(out):
        assert tmp.exists()
    with WorkSplit().lock(out):  # finalize / a whole run: the folder's own lock, which cleans
        assert not tmp.exists()


def test_the_whole_job_lock_refuses_a_second_job(tmp_path):
    out = tmp_path / "eval"
    with WorkSplit().lock(out, "evaluation"):
        refused = _other_process(out, None)  # the holder is named by what it is, not by what asks
        assert refused.startswith("refused:") and "is in use by another pyface evaluation (pid " in refused, refused
    assert _other_process(out, None) == "acquired"  # released at the end of the job
