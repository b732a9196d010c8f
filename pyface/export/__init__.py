"""Exported pyface models: ``pyface export`` (:mod:`pyface.export.exporter`, needs torch)
and the self-description every exported file carries (:mod:`pyface.export.metadata`,
torch-free, read by the ONNX Runtime backend). Importing this package imports no torch;
the exporter's names load on first use."""
from __future__ import annotations

from pyface.export.metadata import ExportInfo

__all__ = ["EXPORT_FORMATS", "ExportInfo", "export_model", "parity"]

_LAZY = {"EXPORT_FORMATS", "export_model", "parity", "InferenceNet", "reference_outputs", "exportable_heads"}


def __getattr__(name: str):
    if name in _LAZY:
        from pyface.export import exporter

        return getattr(exporter, name)
    raise AttributeError(f"module 'pyface.export' has no attribute {name!r}")
