"""The compiled extension ``pyface._C``: how it was built, its CPU instruction-set
paths, and the switch to emulated CUDA.

The kernels themselves are reached through the backends (pyface/ops/backends/):
PyTorch's dispatcher picks the backend by the tensors' device, and the backend calls
the extension's kernel objects (``_C.CpuKernels``, ``_C.CudaKernels(stream)``) with
the ops' argument structs. Tensors cross as raw addresses and CUDA work runs on torch's
current raw stream, so the extension does not link libtorch.

CUDA emulation (tests, ``pyface doctor``): inside :func:`emulate_cuda` (or with
``PYFACE_EMULATE_CUDA=1`` in the environment) the ops treat CPU tensors as device
tensors: :func:`cuda_path` is true for them, so every CUDA-only branch of the ops'
Python runs, and the CPU backend runs the CUDA kernels of ``pyface._C_emu`` -- the
unmodified CUDA sources compiled for the CPU emulator in csrc/emu/ (test-only, built
by tools/emu_build.sh). :func:`emulating` is what decides "CUDA path or not" for CPU
tensors; backends/cpu.py holds the one switch on it.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import sys

import torch

try:
    from pyface import _C
except ImportError as exc:  # pragma: no cover - only on a broken install
    raise ImportError(
        "pyface's compiled extension pyface._C is missing: install the package "
        "(pip install .) or run tools/dev_build.sh for a source-tree build"
    ) from exc

__all__ = ["_C", "CPU_ISA_ENV", "CPU_ISAS", "DTYPE_CODES", "acc_dtype", "build_info", "cpu_isa",
           "cuda_available", "cuda_path", "dtype_code", "emu_module", "emulate_cuda", "emulating",
           "emulation_available", "resolve_cpu_isa", "set_cpu_isa", "sync_num_threads"]

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

EMULATE_ENV = "PYFACE_EMULATE_CUDA"
_emulate = os.environ.get(EMULATE_ENV, "") not in ("", "0")
_emu = None

# Must match pyface::DType in csrc/include/pyface/common.h.
DTYPE_CODES = {torch.float32: 0, torch.float16: 1, torch.bfloat16: 2, torch.float64: 3}


def dtype_code(t: torch.Tensor) -> int:
    return DTYPE_CODES[t.dtype]


def acc_dtype(t: torch.Tensor) -> torch.dtype:
    """The kernels' computation type for an input: float64 stays, everything else is float32."""
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def cuda_available() -> bool:
    """The CUDA backend was compiled in and torch sees a GPU."""
    return bool(_C.with_cuda) and torch.cuda.is_available()


def emu_module():
    """pyface._C_emu (imported on first use): the file named by $PYFACE_EMU_MODULE (a
    build of tools/emu_build.sh, e.g. a sanitizer variant), else the package's own;
    RuntimeError saying how to build it."""
    global _emu
    if _emu is None:
        path = os.environ.get("PYFACE_EMU_MODULE")
        try:
            if path:
                if not os.path.isfile(path):
                    raise ImportError(f"PYFACE_EMU_MODULE={path} is not a file")
                spec = importlib.util.spec_from_file_location("pyface._C_emu", path)
                mod = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(mod)
                _emu = sys.modules["pyface._C_emu"] = mod
            else:
                _emu = importlib.import_module("pyface._C_emu")
        except ImportError as exc:
            raise RuntimeError(
                "CUDA emulation needs the test-only module pyface._C_emu: build it with "
                "tools/emu_build.sh (needs the CUDA toolkit headers, not a GPU)") from exc
    return _emu


def emulation_available() -> bool:
    """pyface._C_emu is built and importable."""
    try:
        emu_module()
    except RuntimeError:
        return False
    return True


def emulating() -> bool:
    """CPU tensors currently take the (emulated) CUDA path."""
    return _emulate


@contextlib.contextmanager
def emulate_cuda(enabled: bool = True):
    """Within the block, pyface.ops run CPU tensors through their CUDA code path and
    the emulated CUDA kernels of pyface._C_emu (process-wide, not thread-local)."""
    global _emulate
    if enabled:
        emu_module()
    saved, _emulate = _emulate, bool(enabled)
    try:
        yield
    finally:
        _emulate = saved


def cuda_path(device: torch.device) -> bool:
    """Whether an op on ``device`` takes its CUDA code path (a GPU, or the CPU under emulation)."""
    return device.type == "cuda" or (_emulate and device.type == "cpu")


def sync_num_threads() -> None:
    """CPU kernels use as many threads as torch does."""
    _C.set_num_threads(torch.get_num_threads())


# Applied once at import: a forced path the CPU lacks must fail here, before any kernel
# runs (a kernel built for missing instructions would die with SIGILL).
set_cpu_isa(os.environ.get(CPU_ISA_ENV))
