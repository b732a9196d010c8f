import pytest
from conftest import EMULATED

from pyface import doctor
from pyface.ops import _ext


def test_reports_environment_and_build(capsys):
    rc = doctor.main([])
    out = capsys.readouterr().out
    assert "torch:" in out and "CUDA backend compiled:" in out and "emulated CUDA backend:" in out
    if _ext.cuda_available():
        assert rc == 0, out
    else:
        assert rc == 2 and "no CUDA path to check" in out


@pytest.mark.emu
@pytest.mark.skipif(not EMULATED, reason="needs the emulated CUDA backend (tools/emu_build.sh)")
def test_emulated_checks_all_ok(capsys):
    rc = doctor.main(["--emulate"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert out.count("\nOK ") == len(doctor.CHECKS)


def test_a_wrong_result_is_reported(monkeypatch, capsys):
    monkeypatch.setattr(doctor, "CHECKS", [("op", "wrong", 1e-6, lambda d: 0.5),
                                           ("op", "raises", 1e-6, lambda d: 1 / 0)])
    assert doctor.run_checks(None) == 2
    out = capsys.readouterr().out
    assert "MISMATCH" in out and "5.00e-01" in out and "ZeroDivisionError" in out
