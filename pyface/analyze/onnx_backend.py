"""A model backend on ONNX Runtime: a ``pyface export --format onnx`` file runs without
torch (``pyface analyze --onnx model.onnx``; the ``onnx`` extra brings onnxruntime).

:class:`OnnxBackend` implements :class:`pyface.analyze.backend.ModelBackend`. The file
says what it expects and gives (:mod:`pyface.export.metadata`): uint8 RGB [B, 3, S, S]
in, normalisation inside the graph; "embedding" (one pass; the analyzer's flip-sum is
:func:`pyface.analyze.backend.flip_sum`), "landmarks", "pose" out. This module imports
numpy, onnxruntime and pyface's torch-free modules only.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Collection
from pathlib import Path

import numpy as np

from pyface.analyze.backend import OUTPUTS, check_images
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
    """``OnnxBackend("model.onnx")``: ``input_size``, ``outputs``, ``predict(images,
    outputs=None)`` and ``describe()`` on an ONNX Runtime session.

    ``providers``: ONNX Runtime execution providers (default: CUDA when this onnxruntime
    has it, else the CPU). ``threads``: the CPU provider's intra-op threads (default:
    onnxruntime's choice). A missing, unreadable or non-pyface file is a
    :class:`~pyface.errors.CheckpointError` naming it; a file with outputs the analyzer
    does not know (e.g. only an eye-blink head) too."""

    def __init__(self, path: str | os.PathLike, *, providers=None, threads: int | None = None):
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
        try:
            self.info = M.parse(self.session.get_modelmeta().custom_metadata_map, str(self.path))
        except ValueError as exc:
            raise CheckpointError(f"--onnx: {exc}") from None
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or inputs[0].name != self.info.input_name:
            raise CheckpointError(f"--onnx: {self.path}: expected one input {self.info.input_name!r}, "
                                  f"got {[i.name for i in inputs]}")
        self.input_size = self.info.input_size
        self._names = [o.name for o in self.session.get_outputs()]
        self.outputs = frozenset(self._names) & OUTPUTS
        if not self.outputs:
            raise CheckpointError(f"--onnx: {self.path} has none of the outputs {sorted(OUTPUTS)} "
                                  f"(it has {self._names})")
        self.providers = self.session.get_providers()
        self._digest = None

    def __repr__(self) -> str:
        return f"OnnxBackend({str(self.path)!r}, {self.info!r}, providers={self.providers})"

    def describe(self) -> dict:
        """The file, its sha256, what it computes and where it came from (plain data)."""
        if self._digest is None:
            h = hashlib.sha256()
            with open(self.path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            self._digest = h.hexdigest()
        p = self.info.props
        return {"backend": "onnxruntime", "file": str(self.path), "sha256": self._digest,
                "input_size": self.input_size, "outputs": sorted(self.outputs), "heads": list(self.info.heads),
                "source": p.get("source", ""), "source_sha256": p.get("source_sha256", ""),
                "providers": list(self.providers)}

    def _run(self, x: np.ndarray, names: list[str]) -> list[np.ndarray]:
        """One session call per batch of the file's fixed size when it has one (the last
        batch padded with zeros, the padding dropped)."""
        b = self.info.fixed_batch
        feed = self.info.input_name
        if b is None or len(x) == b:
            return self.session.run(names, {feed: x})
        parts = []
        for lo in range(0, len(x), b):
            chunk = x[lo:lo + b]
            n = len(chunk)
            if n < b:
                chunk = np.concatenate([chunk, np.zeros((b - n, *chunk.shape[1:]), np.uint8)])
            parts.append([o[:n] for o in self.session.run(names, {feed: chunk})])
        return [np.concatenate([p[i] for p in parts]) for i in range(len(names))]

    def predict(self, images: np.ndarray, outputs: Collection[str] | None = None) -> dict[str, np.ndarray]:
        """uint8 [B, 3, S, S] RGB crops -> {name: float32 array} for ``outputs`` (None:
        all of :attr:`outputs`; a name the file lacks is a ValueError). B may be 0."""
        x = check_images(images, self.input_size)
        want = sorted(self.outputs) if outputs is None else list(dict.fromkeys(outputs))
        missing = [n for n in want if n not in self.outputs]
        if missing:
            raise ValueError(f"outputs: {self.path} has no {missing} (it has {sorted(self.outputs)})")
        if len(x) == 0:
            return {n: np.zeros((0, *M.shape_tail(self.info.outputs[n])), np.float32) for n in want}
        return {n: np.asarray(o, np.float32) for n, o in zip(want, self._run(x, want))}
