"""The matrix products that the chunked/tiled ops hand to the vendor BLAS."""
from __future__ import annotations

import torch

from pyface.ops._ext import cuda_path

_HALF = (torch.float16, torch.bfloat16)


def mm_acc(x: torch.Tensor, y: torch.Tensor, acc: torch.dtype) -> torch.Tensor:
    """x @ y with the result in ``acc`` (float32 or float64), never rounded through a
    16-bit type: fp16/bf16 on CUDA use the tensor cores with a float32 result
    (``out_dtype``, torch >= 2.8); otherwise the operands are computed in ``acc``."""
    if x.dtype == acc and y.dtype == acc:
        return torch.mm(x, y)
    if cuda_path(x.device) and x.dtype in _HALF and acc == torch.float32:
        try:
            return torch.mm(x, y, out_dtype=torch.float32)
        except (TypeError, RuntimeError, NotImplementedError):
            pass
    return torch.mm(x.to(acc), y.to(acc))


def mm_t_into(out: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """out = x @ y^T, stored (and accumulated) in out's dtype (float32 or float64)."""
    if x.dtype == out.dtype:
        return torch.mm(x, y.t(), out=out)
    if cuda_path(x.device) and x.dtype in _HALF and out.dtype == torch.float32:
        try:
            return torch.mm(x, y.t(), out_dtype=torch.float32, out=out)
        except (TypeError, RuntimeError, NotImplementedError):
            pass
    return out.copy_(mm_acc(x, y.t(), out.dtype))
