"""Microbenchmarks of each kernel against its PyTorch reference (``pyface bench``).

Every module here that does not start with an underscore is a benchmark with
``add_arguments(parser)`` and ``run(args) -> dict``; results are printed as a table
(times measured side by side in one run, speed ratio, peak memory, device name)
and written as JSON.
"""
from __future__ import annotations

import importlib
import pkgutil


def available() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def load(name: str):
    if name not in available():
        raise ValueError(f"unknown benchmark {name!r}; choose from {available()}")
    return importlib.import_module(f"{__name__}.{name}")
