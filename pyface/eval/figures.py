"""PNG figures: matplotlib with the non-interactive Agg backend, committed atomically.
One place for the reports' plots (:mod:`pyface.eval.report`, :mod:`pyface.eval.ijbc`)
and the trainer's (:mod:`pyface.train.plots`)."""
from __future__ import annotations

import os
from pathlib import Path

from pyface.io import atomic_path

__all__ = ["pyplot", "save_png"]


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (no display needed; imported on first use)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path: str | os.PathLike, dpi: int = 100) -> Path:
    """Write ``fig`` to ``path`` as PNG (atomically: a reader never sees half a file) and close it."""
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi)
    finally:
        pyplot().close(fig)
    return path
