"""Access to the compiled extension ``pyface._C`` and the calling convention.

Kernels take raw pointers (``tensor.data_ptr()``), sizes and, on CUDA, torch's
current raw stream. Every C++ entry point exists as ``<name>_cpu`` and, when the
CUDA backend was built, ``<name>_cuda`` with the stream as its last argument.
"""
from __future__ import annotations

import torch

try:
    from pyface import _C
except ImportError as exc:  # pragma: no cover - only on a broken install
    raise ImportError(
        "pyface's compiled extension pyface._C is missing: install the package "
        "(pip install .) or run tools/dev_build.sh for a source-tree build"
    ) from exc

__all__ = ["_C", "DTYPE_CODES", "acc_dtype", "call", "cuda_available", "dtype_code", "ptr", "sync_num_threads"]

# Must match pyface::DType in csrc/include/pyface/common.h.
DTYPE_CODES = {torch.float32: 0, torch.float16: 1, torch.bfloat16: 2, torch.float64: 3}


def dtype_code(t: torch.Tensor) -> int:
    return DTYPE_CODES[t.dtype]


def acc_dtype(t: torch.Tensor) -> torch.dtype:
    """The kernels' computation type for an input: float64 stays, everything else is float32."""
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def ptr(t: torch.Tensor | None) -> int:
    """Raw address of a contiguous tensor (0 for None or empty)."""
    if t is None or t.numel() == 0:
        return 0
    return t.data_ptr()


def cuda_available() -> bool:
    """The CUDA backend was compiled in and torch sees a GPU."""
    return bool(_C.with_cuda) and torch.cuda.is_available()


def sync_num_threads() -> None:
    """CPU kernels use as many threads as torch does."""
    _C.set_num_threads(torch.get_num_threads())


def call(name: str, device: torch.device, *args) -> None:
    """Run kernel ``name`` on ``device``'s backend (CUDA: on torch's current stream)."""
    if device.type == "cpu":
        sync_num_threads()
        getattr(_C, name + "_cpu")(*args)
    elif device.type == "cuda":
        fn = getattr(_C, name + "_cuda", None)
        if fn is None:
            raise RuntimeError(
                "pyface was built without its CUDA backend; reinstall with a CUDA compiler "
                "on PATH (PYFACE_CUDA=ON pip install ...) to run on GPU tensors"
            )
        with torch.cuda.device(device):
            fn(*args, torch.cuda.current_stream(device).cuda_stream)
    else:
        raise ValueError(f"pyface kernels run on cpu or cuda tensors, not {device.type}")
