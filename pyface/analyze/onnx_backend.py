"""A model backend on ONNX Runtime: a ``pyface export --format onnx`` file runs without
torch (``pyface analyze --onnx model.onnx``; the ``onnx`` extra brings onnxruntime).

The file says what it expects and gives (:mod:`pyface.export.metadata`): uint8 RGB
[B, 3, S, S] in, normalisation inside the graph; "embedding" / "landmarks" / "pose"
out. This module imports numpy, onnxruntime and pyface's torch-free modules only.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pyface.errors import CheckpointError, UsageError
from pyface.export import metadata as M

__all__ = ["OnnxBackend"]


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise UsageError("--onnx: needs onnxruntime; install the onnx extra: pip install 'pyface-mtl[onnx]'") from None
    return onnxruntime


class OnnxBackend:
    """``OnnxBackend("model.onnx")``: ``input_size``, ``outputs`` and ``predict(images)``
    of :class:`pyface.analyze.backend.ModelBackend` on an ONNX Runtime session.

    ``providers``: ONNX Runtime execution providers (default: CUDA when this onnxruntime
    has it, else the CPU). ``threads``: the CPU provider's intra-op threads (default:
    onnxruntime's choice). ``flip_sum``: True makes "embedding" the flip-sum even for a
    file exported without it (the mirrored batch is run too, and only its embedding
    kept); False asks for a one-pass embedding and is refused for a flip-sum export;
    None (default) takes the file as it is (:attr:`flip_sum` says which).

    A missing, unreadable or non-pyface file is a :class:`~pyface.errors.CheckpointError`
    naming it."""

    def __init__(self, path: str | os.PathLike, *, providers=None, threads: int | None = None,
                 flip_sum: bool | None = None):
        ort = _onnxruntime()
        self.path = Path(path)
        if not self.path.is_file():
            raise CheckpointError(f"--onnx: model not found: {self.path}")
        opts = ort.SessionOptions()
        if threads is not None:
            opts.intra_op_num_threads = int(threads)
        if providers is None:
            have = ort.get_available_providers()
            providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in have]
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=opts, providers=list(providers))
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types for a bad file
            raise CheckpointError(f"--onnx: cannot load {self.path}: {type(exc).__name__}: "
                                  f"{' '.join(str(exc).split())[:300]}") from None
        props = self.session.get_modelmeta().custom_metadata_map
        try:
            self.info = M.parse(props, str(self.path))
        except ValueError as exc:
            raise CheckpointError(f"--onnx: {exc}") from None
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or inputs[0].name != self.info.input_name:
            raise CheckpointError(f"--onnx: {self.path}: expected one input {self.info.input_name!r}, "
                                  f"got {[i.name for i in inputs]}")
        self.input_size = self.info.input_size
        self._names = [o.name for o in self.session.get_outputs()]
        self.outputs = frozenset(self._names)
        if flip_sum is False and self.info.flip_sum:
            raise UsageError(f"--onnx: {self.path} was exported with the flip-sum embedding; export again with "
                             "--no-flip-sum for a one-pass embedding")
        self.flip_sum = self.info.flip_sum or bool(flip_sum)
        self._mirror = bool(flip_sum) and not self.info.flip_sum and "embedding" in self.outputs
        self.providers = self.session.get_providers()

    def __repr__(self) -> str:
        return f"OnnxBackend({str(self.path)!r}, {self.info!r}, providers={self.providers})"

    def _check(self, images) -> np.ndarray:
        s = self.input_size
        if not isinstance(images, np.ndarray):
            raise TypeError(f"images: expected a numpy uint8 array [B, 3, {s}, {s}], got {type(images).__name__}")
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (3, s, s):
            raise ValueError(f"images: expected uint8 [B, 3, {s}, {s}] RGB, got {images.dtype} "
                             f"{list(images.shape)}")
        return np.ascontiguousarray(images)

    def run(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """The graph's outputs for ``images`` as they are (no mirror pass), in batches of
        the file's fixed batch size when it has one (the last one padded)."""
        x = self._check(images)
        b = self.info.fixed_batch
        if b is None or len(x) == b:
            return dict(zip(self._names, self.session.run(None, {self.info.input_name: x})))
        parts = []
        for lo in range(0, len(x), b):
            chunk = x[lo:lo + b]
            n = len(chunk)
            if n < b:
                chunk = np.concatenate([chunk, np.zeros((b - n, *chunk.shape[1:]), np.uint8)])
            parts.append([o[:n] for o in self.session.run(None, {self.info.input_name: chunk})])
        if not parts:
            return {n: np.zeros((0, *shape_tail(self.info.outputs[n])), np.float32) for n in self._names}
        return {n: np.concatenate([p[i] for p in parts]) for i, n in enumerate(self._names)}

    def predict(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """uint8 [B, 3, S, S] RGB -> {"embedding", "landmarks", "pose" (those the file
        has)}, float32; the embedding is the flip-sum when :attr:`flip_sum`."""
        out = self.run(images)
        if self._mirror:
            out["embedding"] = out["embedding"] + self.run(images[..., ::-1])["embedding"]
        return out


def shape_tail(spec: dict) -> tuple[int, ...]:
    """The non-batch dimensions of an output in the metadata ("shape": ["batch", 68, 2])."""
    return tuple(int(d) for d in spec.get("shape", [])[1:])
