"""The matrix products that the chunked/tiled ops hand to the vendor BLAS."""
from __future__ import annotations

import torch

_HALF = (torch.float16, torch.bfloat16)


def mm_t_into(out: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """out = x @ y^T, stored (and accumulated) in out's dtype (float32 or float64).

    fp16/bf16 on CUDA use the tensor cores with a float32 result (torch >= 2.8 has
    ``out_dtype``; older versions round through the input dtype); on CPU they are
    computed in float32."""
    if x.dtype == out.dtype:
        return torch.mm(x, y.t(), out=out)
    if x.device.type == "cuda" and x.dtype in _HALF and out.dtype == torch.float32:
        try:
            return torch.mm(x, y.t(), out_dtype=torch.float32, out=out)
        except (TypeError, RuntimeError, NotImplementedError):
            pass
        try:
            return out.copy_(torch.mm(x, y.t(), out_dtype=torch.float32))
        except (TypeError, RuntimeError, NotImplementedError):
            return out.copy_(torch.mm(x, y.t()))
    return torch.mm(x.to(out.dtype), y.to(out.dtype).t(), out=out)
