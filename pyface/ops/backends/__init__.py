"""Backends by path: which code runs a pyface op on which device.

An op declares its signature once, in ``pyface/ops/<op>.py``: a ``torch.library``
custom op (whose own body only raises :func:`no_kernel`) with its fake and autograd.
Its implementation, also in that file, is written once against a backend's kernel
object ``k`` -- the C++ entry points as methods, ``k.lpmc_fwd_chunk(args, ...)``, and
the argument structs they take, ``k.LpmcArgs[torch.float32](buf=..., ...)`` (csrc/ops/
binding.h) -- and declared with :func:`implementation`. Each backend file registers
every implementation for its device type with PyTorch's dispatcher and supplies its
kernel object:

    cpu.py    CPU tensors:  pyface._C.CpuKernels()                (csrc/cpu/*_kernel.cpp)
    cuda.py   CUDA tensors: pyface._C.CudaKernels(current stream)  (csrc/cuda/*_kernel.cu)

The emulated CUDA backend (CUDA code on CPU tensors; tests and ``pyface doctor
--emulate``) is no device that the dispatcher knows: cpu.py holds the one switch for it.

Adding an op touches no file here: its own module declares the op and its
implementation, its own csrc/ops/<op>.cpp binds its kernels.
"""
from __future__ import annotations

from typing import Callable

import torch

__all__ = ["implementation", "implementations", "no_kernel", "register_backend"]

# (custom op, implementation fn(k, *op_args)) in declaration order, and the backends'
# registration functions fn(op, impl); each side registers with all of the other.
_IMPLEMENTATIONS: list[tuple[object, Callable]] = []
_BACKENDS: list[Callable] = []


def implementation(op):
    """Decorator: ``fn(k, *args)`` implements custom op ``op`` (called with the op's
    arguments) for every backend, with that backend's kernel object ``k``."""
    def register(fn):
        _IMPLEMENTATIONS.append((op, fn))
        for backend in _BACKENDS:
            backend(op, fn)
        return fn
    return register


def implementations() -> list[tuple[object, Callable]]:
    """Every (custom op, implementation) declared so far."""
    return list(_IMPLEMENTATIONS)


def register_backend(register: Callable) -> Callable:
    """Decorator for a backend's ``register(op, impl)``: called for every implementation,
    those declared already and those declared later."""
    _BACKENDS.append(register)
    for op, fn in _IMPLEMENTATIONS:
        register(op, fn)
    return register


def no_kernel(op: str, device: torch.device) -> ValueError:
    """The error of an op called on a device that no backend registered a kernel for."""
    return ValueError(f"{op} has no kernel for {device.type} tensors: pyface kernels run on cpu or cuda tensors")
