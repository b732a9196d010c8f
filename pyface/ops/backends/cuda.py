"""The CUDA backend: pyface's ops on CUDA tensors.

Registers every op implementation (pyface/ops/backends/__init__.py) for the "cuda"
device type with PyTorch's dispatcher. The kernels are pyface._C.CudaKernels
(csrc/cuda/*_kernel.cu), launched on torch's current stream of the tensors' device;
the extension takes the raw stream, so it needs no libtorch.

:func:`emulated_kernels` gives the same kernels emulated on the CPU (pyface._C_emu,
csrc/emu; test-only): backends/cpu.py runs them while ``_ext.emulating()``.
"""
from __future__ import annotations

import torch

from pyface.ops import _ext
from pyface.ops.backends import register_backend

__all__ = ["emulated_kernels"]


def _kernels(device: torch.device):
    cls = getattr(_ext._C, "CudaKernels", None)
    if cls is None:
        raise RuntimeError(
            "pyface was built without its CUDA backend; reinstall with a CUDA compiler "
            "on PATH (PYFACE_CUDA=ON pip install ...) to run on GPU tensors"
        )
    return cls(torch.cuda.current_stream(device).cuda_stream)


def emulated_kernels():
    """The CUDA kernels of pyface._C_emu: host memory, synchronous (stream 0)."""
    return _ext.emu_module().CudaKernels(0)


def _device(args) -> torch.device:
    return next(a.device for a in args if isinstance(a, torch.Tensor))


@register_backend
def _register(op, impl) -> None:
    def cuda_kernel(*args):
        device = _device(args)
        with torch.cuda.device(device):
            return impl(_kernels(device), *args)

    op.register_kernel("cuda", cuda_kernel)
