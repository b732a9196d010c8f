"""The model side of the analyzer: one small interface that a PyTorch checkpoint
(:class:`pyface.analyze.torch_backend.TorchBackend`) and an exported ONNX file
(:class:`pyface.analyze.onnx_backend.OnnxBackend`) both implement, so
:class:`pyface.analyze.FaceAnalyzer` runs either without knowing which.

A backend takes square face crops as the nets were trained on them -- uint8 RGB
``[B, 3, S, S]`` with ``S = input_size``; the normalisation (``(x - 127.5) / 128``) is
the backend's business -- and returns float32 NumPy arrays by output name:

===============  ================  ======================================================
name             shape             meaning
===============  ================  ======================================================
``landmarks``    ``[B, 68, 2]``    iBUG-68 points, ``(x, y)`` pixels of the S x S input
``pose``         ``[B, 3]``        (yaw, pitch, roll) degrees, :mod:`pyface.geometry`'s
                                   convention (a HopeNet head's bin logits already
                                   turned into angles)
``embedding``    ``[B, D]``        the face-recognition embedding of that one image,
                                   unnormalised (no mirror pass: :func:`flip_sum`)
===============  ================  ======================================================

``outputs`` is the set of these names the model has; a head it lacks is absent, never
zeros. ``predict(images, outputs)`` computes at least the requested ``outputs`` (None:
all) and may return more.
"""
from __future__ import annotations

from typing import Collection, Protocol, runtime_checkable

import numpy as np

__all__ = ["OUTPUTS", "ModelBackend", "check_images", "flip_sum"]

#: Every output name a backend may have (see the module docstring).
OUTPUTS = frozenset({"landmarks", "pose", "embedding"})


@runtime_checkable
class ModelBackend(Protocol):
    """What the analyzer needs from a model (module docstring)."""

    #: Side S of the square uint8 crops :meth:`predict` takes.
    input_size: int
    #: The outputs this model has: a subset of :data:`OUTPUTS`.
    outputs: frozenset

    def predict(self, images: np.ndarray, outputs: Collection[str] | None = None) -> dict[str, np.ndarray]:
        """uint8 ``[B, 3, S, S]`` RGB crops -> {name: float32 array} for at least
        ``outputs`` (None: all of :attr:`outputs`); B may be 0."""
        ...

    def describe(self) -> dict:
        """Plain data that identifies the model and what it computes (file, weights
        digest, input size, outputs): recorded with results and hashed by the resume
        check of ``pyface analyze``."""
        ...


def check_images(images, size: int) -> np.ndarray:
    """``images`` as a C-contiguous uint8 ``[B, 3, size, size]`` array, else a
    ValueError naming the shape/dtype that was given (for backends' ``predict``)."""
    a = np.asarray(images)
    if a.dtype != np.uint8 or a.ndim != 4 or a.shape[1:] != (3, size, size):
        raise ValueError(f"images must be uint8 [B, 3, {size}, {size}] RGB crops, got {a.dtype} {list(a.shape)}")
    return np.ascontiguousarray(a)


def flip_sum(backend: ModelBackend, images: np.ndarray) -> np.ndarray:
    """insightface's test-time embedding: the float32 sum of the embeddings of the
    crops and of their mirror images, unnormalised -- the same arithmetic as
    :func:`pyface.runtime.embed` (``flip=True, normalize=False``) for any backend."""
    if "embedding" not in backend.outputs:
        raise ValueError("flip_sum: this model has no 'embedding' output (no face-recognition head)")
    images = np.asarray(images)
    a = backend.predict(images, ("embedding",))["embedding"]
    b = backend.predict(np.ascontiguousarray(images[..., ::-1]), ("embedding",))["embedding"]
    return a.astype(np.float32) + b.astype(np.float32)
