import os

import pytest
import torch

from pyface.ops import _ext, cuda_available


def cpu_isas() -> list[str]:
    """CPU kernel paths the tests run: the forced one when PYFACE_CPU_ISA is set,
    else every path this build has and this CPU runs."""
    if os.environ.get(_ext.CPU_ISA_ENV):
        return [_ext.cpu_isa()]
    return list(_ext.build_info()["cpu_isas_supported"])


def pytest_generate_tests(metafunc):
    # Modules marked cpu_kernels run every test once per CPU path (ids end in -avx2 etc.).
    if "cpu_isa" in metafunc.fixturenames and metafunc.definition.get_closest_marker("cpu_kernels"):
        metafunc.parametrize("cpu_isa", cpu_isas(), indirect=True)


# How the cuda-marked cases run: on a GPU when there is one; otherwise, when the
# test-only module pyface._C_emu is built (tools/emu_build.sh), on CPU tensors
# through the ops' CUDA code path and the emulated CUDA kernels; else skipped.
# PYFACE_TEST_EMULATE=0 turns the emulated cases off.
if cuda_available():
    CUDA_MODE = "gpu"
elif os.environ.get("PYFACE_TEST_EMULATE", "1") != "0" and _ext.emulation_available():
    CUDA_MODE = "emulated"
else:
    CUDA_MODE = None
EMULATED = CUDA_MODE == "emulated"


def pytest_report_header(config):
    if EMULATED:
        emu = _ext.emu_module()
        return (f"pyface CUDA cases: emulated on the CPU (pyface._C_emu, {emu.variant}, "
                f"schedule seed {emu.schedule_seed()})")
    return f"pyface CUDA cases: {'GPU' if CUDA_MODE else 'skipped (no GPU, no pyface._C_emu)'}"


def pytest_collection_modifyitems(config, items):
    # The fault-injection suite (issue 21) is its own CI stage: `pytest -m faults`.
    if "faults" not in (config.option.markexpr or ""):
        skip_faults = pytest.mark.skip(reason="fault-injection suite: run with pytest -m faults (its own CI stage)")
        for item in items:
            if "faults" in item.keywords:
                item.add_marker(skip_faults)
    if os.environ.get("PYFACE_STRESS", "0") in ("", "0"):
        skip_stress = pytest.mark.skip(reason="stress test: run with PYFACE_STRESS=1 pytest -m stress")
        for item in items:
            if "stress" in item.keywords:
                item.add_marker(skip_stress)
    # A CUDA test runs once, not once per CPU path.
    best = _ext.cpu_isa()
    drop = [i for i in items if "cuda" in i.keywords and getattr(i, "callspec", None)
            and i.callspec.params.get("cpu_isa", best) != best]
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = [i for i in items if i not in drop]
    if CUDA_MODE:
        return
    skip = pytest.mark.skip(reason="needs a CUDA device and pyface's CUDA backend, or the emulated backend "
                                   "(tools/emu_build.sh)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def cpu_isa(request):
    """The CPU kernel path of a parametrised test, made active for its duration."""
    isa = getattr(request, "param", None)
    if isa is None:
        yield _ext.cpu_isa()
        return
    before = _ext.cpu_isa()
    _ext.set_cpu_isa(isa)
    try:
        yield isa
    finally:
        _ext.set_cpu_isa(before)


def devices():
    """Parametrisation helper: cpu always, cuda marked (a GPU, or CPU tensors on the
    emulated CUDA path; skipped when neither is available)."""
    return ["cpu", cuda_param()]


def cuda_param():
    """The 'cuda' device parameter: "cuda", or "cpu" when the CUDA path is emulated."""
    return pytest.param("cpu" if EMULATED else "cuda", marks=pytest.mark.cuda, id="cuda")


@pytest.fixture(autouse=True)
def _cuda_emulation(request):
    """cuda-marked tests run inside emulate_cuda() when emulated; all others outside it."""
    on = EMULATED and request.node.get_closest_marker("cuda") is not None
    with _ext.emulate_cuda(on):
        yield


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def pytest_terminal_summary(terminalreporter):
    """Which emulated kernels ran, per instantiation (the coverage table's kernel x dtype)."""
    if not EMULATED:
        return
    stats = _ext.emu_module().launch_stats()
    if not stats:
        return
    tr = terminalreporter
    tr.section("emulated CUDA kernels launched")
    for s in sorted(stats, key=lambda s: (s["kernel"], s["signature"])):
        tr.write_line(f"{s['kernel']:<32} {s['launches']:>6} launches {s['blocks']:>9} blocks "
                      f"{s['partial_warp_blocks']:>7} partial-warp {s['early_exit_threads']:>8} early-exit  "
                      f"{s['signature']}")
