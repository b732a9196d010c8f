"""The CPU backend: pyface's ops on CPU tensors.

Registers every op implementation (pyface/ops/backends/__init__.py) for the "cpu"
device type with PyTorch's dispatcher. The kernels are pyface._C.CpuKernels
(csrc/cpu/*_kernel.cpp, on the instruction-set path chosen at import), synchronous,
on as many threads as torch uses.

Emulated CUDA: PyTorch dispatches on the tensors' device, and "CUDA code on CPU
tensors" is no device, so the dispatcher cannot express it. This is the one switch:
while ``pyface.ops._ext.emulating()`` (``emulate_cuda()``, PYFACE_EMULATE_CUDA=1), a
CPU tensor runs the implementation with the CUDA backend's kernels emulated on the CPU
(backends/cuda.py ``emulated_kernels``, pyface._C_emu), and the implementations'
``_ext.cuda_path`` branches take their CUDA side.
"""
from __future__ import annotations

from pyface.ops import _ext
from pyface.ops.backends import cuda, register_backend

_KERNELS = _ext._C.CpuKernels()


@register_backend
def _register(op, impl) -> None:
    def cpu_kernel(*args):
        if _ext.emulating():
            return impl(cuda.emulated_kernels(), *args)
        _ext.sync_num_threads()
        return impl(_KERNELS, *args)

    op.register_kernel("cpu", cpu_kernel)
