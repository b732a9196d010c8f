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


def pytest_collection_modifyitems(config, items):
    # A CUDA test runs once, not once per CPU path.
    best = _ext.cpu_isa()
    drop = [i for i in items if "cuda" in i.keywords and getattr(i, "callspec", None)
            and i.callspec.params.get("cpu_isa", best) != best]
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = [i for i in items if i not in drop]
    if cuda_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device and pyface's CUDA backend")
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
    """Parametrisation helper: cpu always, cuda marked (skipped without a GPU)."""
    return ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
