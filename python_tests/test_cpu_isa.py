"""The CPU kernels' instruction-set paths (PYFACE_CPU_ISA): dispatch reaches the
forced path, and a path the build or the CPU lacks is refused with a clear error.
The kernel comparisons themselves run once per path (conftest.cpu_isa)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import cpu_isas

import pyface
from pyface.ops import _ext

ISA_ENV = _ext.CPU_ISA_ENV


def _run(code: str, isa: str) -> subprocess.CompletedProcess:
    env = {**os.environ, ISA_ENV: isa}
    # Run beside the pyface under test (source tree or site-packages), not the cwd's.
    where = Path(pyface.__file__).resolve().parents[1]
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=where, capture_output=True, text=True,
                          timeout=120)


def test_build_info_reports_paths():
    info = _ext.build_info()
    assert info["cpu_isa"] in info["cpu_isas_supported"]
    assert set(info["cpu_isas_supported"]) <= set(info["cpu_isas_compiled"]) <= set(_ext.CPU_ISAS)
    assert "baseline" in info["cpu_isas_supported"]
    if not os.environ.get(ISA_ENV):  # unforced: the best path the CPU runs
        assert info["cpu_isa"] == max(info["cpu_isas_supported"], key=_ext.CPU_ISAS.index)


def test_x86_builds_have_every_path():
    import platform

    compiler = _ext.build_info()["compiler"]
    if (platform.machine() not in ("x86_64", "AMD64") or not compiler.startswith("GCC ")
            or int(compiler.split()[1].split(".")[0]) < 12):
        pytest.skip("the three x86-64 paths are built by GCC >= 12 on x86-64 only")
    assert _ext.build_info()["cpu_isas_compiled"] == ["baseline", "avx2", "avx512"]


@pytest.mark.parametrize("isa", cpu_isas())
def test_dispatch_reaches_forced_path(isa):
    before = _ext.cpu_isa()
    try:
        assert _ext.set_cpu_isa(isa) == isa
        assert _ext.cpu_isa() == isa
        assert _ext._C.cpu_isa_probe() == isa  # the kernel object compiled for that path ran
    finally:
        _ext.set_cpu_isa(before)


@pytest.mark.parametrize("isa", cpu_isas())
def test_env_variable_selects_path_at_import(isa):
    r = _run("from pyface.ops import _ext; print(_ext.cpu_isa(), _ext._C.cpu_isa_probe())", isa.upper())
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [isa, isa]


def test_unknown_value_is_refused_at_import():
    r = _run("import pyface.ops", "avx3")
    assert r.returncode != 0
    assert "ValueError" in r.stderr and f"{ISA_ENV}='avx3'" in r.stderr
    assert "baseline, avx2, avx512" in r.stderr


def test_path_cpu_lacks_is_refused_naming_variable_and_features():
    with pytest.raises(ValueError, match=rf"{ISA_ENV}=avx512 needs x86-64-v4.*lacks.*features: sse4.2 avx avx2 fma"
                                         r".*paths it runs: baseline, avx2"):
        _ext.resolve_cpu_isa("avx512", ["baseline", "avx2", "avx512"], ["baseline", "avx2"],
                             ["sse4.2", "avx", "avx2", "fma"])
    with pytest.raises(ValueError, match=rf"{ISA_ENV}=avx2: this build of pyface has only the baseline"):
        _ext.resolve_cpu_isa("avx2", ["baseline"], ["baseline"], [])
    assert _ext.resolve_cpu_isa(None, ["baseline", "avx2", "avx512"], ["baseline", "avx2"], []) == "avx2"
    assert _ext.resolve_cpu_isa(" AVX2 ", ["baseline", "avx2"], ["baseline", "avx2"], []) == "avx2"


def test_unsupported_path_is_refused_on_this_cpu():
    info = _ext.build_info()
    missing = [i for i in info["cpu_isas_compiled"] if i not in info["cpu_isas_supported"]]
    if not missing:
        pytest.skip("this CPU runs every compiled path")
    r = _run("import pyface.ops", missing[-1])
    assert r.returncode != 0 and f"{ISA_ENV}={missing[-1]} needs" in r.stderr
    with pytest.raises(ValueError, match="lacks"):
        _ext._C.set_cpu_isa(missing[-1])  # the C++ guard, below the Python check


def test_extension_refuses_unknown_path_name():
    with pytest.raises(ValueError, match="unknown CPU path"):
        _ext._C.set_cpu_isa("sse9")
