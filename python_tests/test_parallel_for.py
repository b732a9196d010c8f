"""pyface::parallel_for (the CPU kernels' fork-join loop): every index once, and an
exception from any range reaches Python as an error after all threads joined, instead
of std::terminate ("terminate called without an active exception") killing the process."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

import pyface
from pyface.ops import _ext

# The pyface under test (the source tree, or the installed wheel in CI), never the cwd's.
PKG_ROOT = Path(pyface.__file__).resolve().parents[1]


@pytest.mark.parametrize("n,threads", [(1, 4), (7, 3), (37, 4), (1000, 8), (5, 1)])
def test_every_index_runs_once(n, threads):
    assert _ext._C._parallel_for_selftest(n, -1, threads) == [1] * n


@pytest.mark.parametrize("throw_at", [0, 5, 36])  # the caller's range, a middle one, the last
def test_exception_in_a_range_is_raised_not_fatal(throw_at):
    with pytest.raises(RuntimeError, match=f"range holding {throw_at}"):
        _ext._C._parallel_for_selftest(37, throw_at, 4)
    assert _ext._C._parallel_for_selftest(37, -1, 4) == [1] * 37  # still usable; thread count restored


def test_a_throwing_range_does_not_abort_the_process(tmp_path):
    # In a fresh interpreter: an abort would show as a signal exit code, not a caught error.
    code = ("from pyface.ops import _ext\n"
            "try:\n    _ext._C._parallel_for_selftest(64, 40, 8)\n"
            "except RuntimeError as e:\n    print('caught', e)\n")
    env = {**os.environ, "PYTHONPATH": str(PKG_ROOT)}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert r.returncode == 0 and "caught" in r.stdout, (r.returncode, r.stderr[-2000:])
