"""The model side of the analyzer: anything that turns face crops into network outputs.

A backend has ``input_size`` (S), ``outputs`` (the set of output names it gives:
"embedding", "landmarks", "pose") and ``predict(images)``: uint8 RGB crops
[B, 3, S, S] (numpy) -> ``{name: float32 numpy}`` -- "embedding" [B, D] (unnormalised),
"landmarks" [B, 68, 2] in pixels of the S x S crop, "pose" [B, 3] (yaw, pitch, roll)
degrees. Outputs a model lacks are absent, never zeros. Implementations: the PyTorch
backend (pyface.runtime) and :class:`pyface.analyze.onnx_backend.OnnxBackend` (ONNX
Runtime, no torch). Torch-free.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["ModelBackend"]


@runtime_checkable
class ModelBackend(Protocol):
    input_size: int
    outputs: frozenset[str] | set[str]

    def predict(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """uint8 [B, 3, S, S] RGB -> {output name: float32 array with batch first}."""
        ...
