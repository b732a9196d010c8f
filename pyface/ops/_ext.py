"""Access to the compiled extension ``pyface._C`` and the calling convention.

Kernels take raw pointers (``tensor.data_ptr()``), sizes and, on CUDA, torch's
current raw stream. Every C++ entry point exists as ``<name>_cpu`` and, when the
CUDA backend was built, ``<name>_cuda`` with the stream as its last argument.
"""
from __future__ import annotations

import os

import torch

try:
    from pyface import _C
except ImportError as exc:  # pragma: no cover - only on a broken install
    raise ImportError(
        "pyface's compiled extension pyface._C is missing: install the package "
        "(pip install .) or run tools/dev_build.sh for a source-tree build"
    ) from exc

__all__ = ["_C", "CPU_ISA_ENV", "CPU_ISAS", "DTYPE_CODES", "acc_dtype", "build_info", "call", "cpu_isa",
           "cuda_available", "dtype_code", "ptr", "resolve_cpu_isa", "set_cpu_isa", "sync_num_threads"]

# CPU instruction-set paths of the kernels, worst to best (csrc/include/pyface/cpu_isa.h).
CPU_ISAS = ("baseline", "avx2", "avx512")
CPU_ISA_ENV = "PYFACE_CPU_ISA"
_ISA_NEEDS = {"avx2": "x86-64-v3 (AVX2, FMA, BMI1/2, F16C, LZCNT, MOVBE)",
              "avx512": "x86-64-v4 (x86-64-v3 plus AVX-512 F, BW, CD, DQ, VL)"}


def resolve_cpu_isa(requested: str | None, compiled, supported, cpu_features) -> str:
    """The CPU path to run for a ``PYFACE_CPU_ISA`` value: unset or empty gives the
    best path both built and supported here; a name this build lacks or this CPU
    cannot run raises ValueError naming the variable and the CPU's features."""
    if not requested:
        return max(supported, key=CPU_ISAS.index)
    name = requested.strip().lower()
    if name not in CPU_ISAS:
        raise ValueError(f"{CPU_ISA_ENV}={requested!r} is not a CPU path: use one of "
                         f"{', '.join(CPU_ISAS)}, or unset it for the best this CPU supports")
    if name not in compiled:
        raise ValueError(f"{CPU_ISA_ENV}={name}: this build of pyface has only the "
                         f"{', '.join(compiled)} path(s) (the x86-64 paths need GCC on x86-64)")
    if name not in supported:
        raise ValueError(f"{CPU_ISA_ENV}={name} needs {_ISA_NEEDS.get(name, name)}, which this CPU lacks; "
                         f"its features: {' '.join(cpu_features) or 'none of the x86 extensions'}; "
                         f"paths it runs: {', '.join(supported)}")
    return name


def set_cpu_isa(name: str | None) -> str:
    """Make ``name`` (as for ``PYFACE_CPU_ISA``; None = best) the CPU kernels' path
    for the whole process; returns the path now active."""
    info = _C.cpu_isa_info()
    isa = resolve_cpu_isa(name, info["compiled"], info["supported"], info["cpu_features"])
    _C.set_cpu_isa(isa)
    return isa


def cpu_isa() -> str:
    """The CPU kernels' active instruction-set path."""
    return _C.cpu_isa_info()["active"]


def build_info() -> dict:
    """How the extension was built and what it runs here (printed by ``pyface doctor``)."""
    info = _C.cpu_isa_info()
    return {
        "extension": getattr(_C, "__file__", "?"),
        "compiler": _C.compiler,
        "cuda_backend": bool(_C.with_cuda),
        "cuda_available": cuda_available(),
        "cpu_isa": info["active"],
        "cpu_isa_requested": os.environ.get(CPU_ISA_ENV) or None,
        "cpu_isas_compiled": list(info["compiled"]),
        "cpu_isas_supported": list(info["supported"]),
        "cpu_isa_targets": dict(info["targets"]),
        "cpu_features": list(info["cpu_features"]),
        "num_threads": _C.get_num_threads(),
    }

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


# Applied once at import: a forced path the CPU lacks must fail here, before any kernel
# runs (a kernel built for missing instructions would die with SIGILL).
set_cpu_isa(os.environ.get(CPU_ISA_ENV))
