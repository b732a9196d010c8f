"""Argument checks for the whole package (tensors, numbers): each raises
ValueError/TypeError naming the argument, before any work runs (for the ops: before
any kernel)."""
from __future__ import annotations

from collections.abc import Sequence

import torch

FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def tensor(name: str, t, *, dtypes: Sequence[torch.dtype] | None = None, ndim: int | None = None) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if dtypes is not None and t.dtype not in dtypes:
        allowed = ", ".join(str(d).replace("torch.", "") for d in dtypes)
        raise TypeError(f"{name} must have dtype in ({allowed}), got {str(t.dtype).replace('torch.', '')}")
    if ndim is not None and t.dim() != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {tuple(t.shape)}")
    return t


def shape(name: str, t: torch.Tensor, expected: Sequence[int | None]) -> None:
    """expected: sizes, None for 'any'."""
    ok = t.dim() == len(expected) and all(e is None or s == e for s, e in zip(t.shape, expected))
    if not ok:
        want = "[" + ", ".join("*" if e is None else str(e) for e in expected) + "]"
        raise ValueError(f"{name} must have shape {want}, got {list(t.shape)}")


def same_device(**tensors: torch.Tensor) -> torch.device:
    items = [(k, v) for k, v in tensors.items() if v is not None]
    dev = items[0][1].device
    for k, v in items[1:]:
        if v.device != dev:
            raise ValueError(f"{k} is on {v.device} but {items[0][0]} is on {dev}: all tensors must share a device")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"{items[0][0]} is on {dev}; pyface kernels run on cpu or cuda")
    return dev


def finite(name: str, t: torch.Tensor) -> None:
    """Raises naming the argument and the first row (index along dim 0) with a nan/inf."""
    if t.numel() and not bool(torch.isfinite(t).all()):
        where = ""
        if t.dim() >= 1:
            bad = (~torch.isfinite(t)).reshape(t.shape[0], -1).any(dim=1)
            where = f", first in row {int(bad.nonzero()[0, 0])}"
        raise ValueError(f"{name} has non-finite values (nan or inf){where}")


def number(name: str, v, *, lo: float | None = None, hi: float | None = None, lo_open: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(v).__name__}")
    v = float(v)
    if v != v or v in (float("inf"), float("-inf")):
        raise ValueError(f"{name} must be finite, got {v}")
    if lo is not None and (v < lo or (lo_open and v == lo)):
        raise ValueError(f"{name} must be {'>' if lo_open else '>='} {lo}, got {v}")
    if hi is not None and v > hi:
        raise ValueError(f"{name} must be <= {hi}, got {v}")
    return v


def integer(name: str, v, *, lo: int | None = None) -> int:
    """A Python int (bool rejected), optionally >= lo."""
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"{name} must be an int, got {type(v).__name__}")
    if lo is not None and v < lo:
        raise ValueError(f"{name} must be >= {lo}, got {v}")
    return int(v)


def choice(name: str, v, options: Sequence[str]) -> str:
    if v not in options:
        raise ValueError(f"{name} must be one of {list(options)}, got {v!r}")
    return v
