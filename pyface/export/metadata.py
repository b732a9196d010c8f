"""What an exported pyface model says about itself: the preprocessing it expects and the
outputs it gives, stored in the file (ONNX ``metadata_props``, TorchScript / torch.export
extra files) so a consumer needs nothing but the file. Torch-free: the ONNX Runtime
backend (:mod:`pyface.analyze.onnx_backend`) reads it without importing torch.

Keys (every value a string; structured ones JSON):

- ``pyface_export``: this schema's version ("1").
- ``input_name`` ("images"), ``input_dtype`` ("uint8"), ``input_layout`` ("NCHW"),
  ``channel_order`` ("RGB"), ``input_size`` (S: the input is [B, 3, S, S]);
  ``normalization``: what the graph does to the uint8 input before the first layer
  (``(x - mean) / std`` with ``mean`` = 127.5 and ``std`` = 128, inside the graph, so
  the caller passes raw uint8 pixels); ``batch``: "dynamic" or the fixed batch size.
- ``outputs``: JSON ``{name: {"shape": [...], "dtype": "float32", "meaning": ...}}`` in
  the graph's output order.
- ``heads``: the pyface heads kept, comma-separated. "embedding" is one pass over the
  given image (pyface eval's and the analyzer's flip-sum adds the mirror image's).
- ``model_config``: JSON of the MultiTaskNet configuration; ``source``, ``source_sha256``:
  the checkpoint; ``pyface_version``, ``torch_version``, ``format``, ``opset``.
"""
from __future__ import annotations

import json

__all__ = ["INPUT_NAME", "MEAN", "OUTPUT_MEANINGS", "SCHEMA_VERSION", "STD", "ExportInfo", "parse",
           "shape_tail"]

SCHEMA_VERSION = "1"
INPUT_NAME = "images"
#: The nets' input normalisation (pyface.models.MultiTaskNet.normalize): (x - MEAN) / STD on uint8 RGB.
MEAN, STD = 127.5, 128.0
#: The outputs an export may have, in graph order, and what each holds.
OUTPUT_MEANINGS = {
    "embedding": "face embedding [B, D] float32 of the image alone, unnormalised (L2-normalise before cosine "
                 "scores; pyface's flip-sum adds the mirror image's)",
    "landmarks": "68 iBUG landmarks [B, 68, 2] (x, y) in pixels of the S x S network input",
    "pose": "head pose [B, 3] (yaw, pitch, roll) in degrees, pyface.geometry's convention",
}


class ExportInfo:
    """The parsed metadata of an exported model (see the module docstring)."""

    def __init__(self, props: dict[str, str], source: str = "model"):
        self.props = dict(props)
        self.source = source
        if props.get("pyface_export") != SCHEMA_VERSION:
            raise ValueError(f"{source}: not a pyface export (metadata pyface_export="
                             f"{props.get('pyface_export')!r}, expected {SCHEMA_VERSION!r}); export it with "
                             "`pyface export`")
        try:
            self.input_size = int(props["input_size"])
            self.outputs: dict[str, dict] = json.loads(props["outputs"])
            self.heads = tuple(h for h in props.get("heads", "").split(",") if h)
            self.batch = props.get("batch", "dynamic")
            self.input_name = props.get("input_name", INPUT_NAME)
            self.input_dtype = props.get("input_dtype", "uint8")
            self.model_config = json.loads(props.get("model_config", "{}"))
        except (KeyError, ValueError) as exc:
            raise ValueError(f"{source}: malformed pyface export metadata ({type(exc).__name__}: {exc})") from None

    @property
    def dynamic_batch(self) -> bool:
        return self.batch == "dynamic"

    @property
    def fixed_batch(self) -> int | None:
        return None if self.dynamic_batch else int(self.batch)

    def __repr__(self) -> str:
        return (f"ExportInfo(input_size={self.input_size}, outputs={list(self.outputs)}, heads={self.heads}, "
                f"batch={self.batch})")


def parse(props: dict[str, str], source: str = "model") -> ExportInfo:
    """:class:`ExportInfo` of a model's metadata; ValueError naming ``source`` when it is
    not a pyface export."""
    return ExportInfo(props, source)


def shape_tail(spec: dict) -> tuple[int, ...]:
    """The non-batch dimensions of an output in ``outputs`` ({"shape": ["batch", 68, 2]} -> (68, 2))."""
    return tuple(int(d) for d in spec.get("shape", [])[1:])
