"""The installed package and its extension."""
import os
from pathlib import Path

import pytest
import torch

import pyface
from pyface.ops import _ext


def test_extension_loads_and_reports_backends():
    assert isinstance(_ext._C.with_cuda, bool)
    assert hasattr(_ext._C.CpuKernels, "lpmc_fwd_chunk")
    assert hasattr(_ext._C, "CudaKernels") == _ext._C.with_cuda
    if _ext._C.with_cuda:
        assert hasattr(_ext._C.CudaKernels, "lpmc_fwd_chunk")


@pytest.mark.skipif(os.environ.get("PYFACE_TEST_INSTALLED") != "1", reason="only when testing an installed wheel")
def test_tests_run_against_installed_package_not_source_tree():
    repo_pkg = Path(__file__).resolve().parents[1] / "pyface"
    assert Path(pyface.__file__).resolve().parent != repo_pkg


@pytest.mark.skipif(os.environ.get("PYFACE_EXPECT_CUDA_BACKEND") != "1", reason="set by CI when nvcc is present")
def test_wheel_built_with_cuda_backend_when_nvcc_present():
    assert _ext._C.with_cuda
    assert hasattr(_ext._C.CudaKernels, "lpmc_bwd_chunk")


@pytest.mark.skipif(os.environ.get("PYFACE_EXPECT_MANYLINUX") != "1", reason="set by CI after auditwheel repair")
def test_installed_wheel_is_manylinux():
    from importlib.metadata import distribution

    dist = distribution("pyface-mtl")
    tags = [line.split(":", 1)[1].strip() for line in dist.read_text("WHEEL").splitlines() if line.startswith("Tag:")]
    assert tags and all("-manylinux_" in t and t.endswith("_x86_64") for t in tags), tags
    # the extension in use is the one this distribution installed
    assert Path(_ext._C.__file__).resolve().is_relative_to(Path(dist.locate_file("pyface")).resolve())


def test_thread_count_follows_torch():
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        _ext.sync_num_threads()
        assert _ext._C.get_num_threads() == 1
    finally:
        torch.set_num_threads(old)
        _ext.sync_num_threads()


def test_unsupported_device_is_rejected():
    # A device with no registered kernel runs the op's declared body: the error names the
    # op and the device. (CPU tensors with the CPU kernel switched off stand in for a
    # device that no backend serves.)
    from pyface.ops.selective_fit import _selective_fit

    args = (torch.zeros(1, 2, 3, 2), torch.zeros(1, 2, 3), torch.ones(1, 2, dtype=torch.bool), torch.ones(1),
            0.05, 3, 2)
    with _selective_fit.set_kernel_enabled("cpu", False):
        with pytest.raises(ValueError, match=r"pyface::selective_fit has no kernel for cpu tensors.*cpu or cuda"):
            torch.ops.pyface.selective_fit(*args)
    assert torch.ops.pyface.selective_fit(*args)[2].shape == (1,)
