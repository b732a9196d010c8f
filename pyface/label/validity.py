"""Validity of a landmark sample and the rejection causes (Alg. 1 l. 10, 13).
Imports torch lazily, so the command line can show the defaults cheaply."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["Validity", "SAMPLE_CAUSES", "IMAGE_CAUSES"]

#: Why a sample (one view's prediction) is left out, in the order they are checked.
SAMPLE_CAUSES = ("nonfinite", "too_small", "centre_cluster", "outside", "no_face")
#: Why an image gets no label.
IMAGE_CAUSES = ("too_few_valid", "spread")


@dataclass(frozen=True)
class Validity:
    """Validity of one sample (Alg. 1 l. 10, 13), in pixels of its S x S view:

    - ``nonfinite``: any landmark or pose value is NaN/inf;
    - ``too_small``: the landmarks' bounding box is both narrower and shorter than
      ``min_extent`` x S (the paper's "abnormally small" landmarks);
    - ``centre_cluster``: at least ``centre_frac`` of the x coordinates lie within
      ``centre_band`` x S of the view's vertical centre line (the paper's "x clustered
      in the centre", a collapsed prediction);
    - ``outside``: more than ``max_outside`` of the points lie outside the view;
    - ``no_face``: MediaPipe found no face in the view.
    """

    min_extent: float = 0.1
    centre_band: float = 0.05
    centre_frac: float = 0.8
    max_outside: float = 0.5

    def __post_init__(self):
        for k, v in asdict(self).items():
            if not (np.isfinite(v) and 0.0 <= v <= 1.0):
                raise ValueError(f"validity.{k} must be in [0, 1], got {v}")

    def check(self, lm: torch.Tensor, pose: torch.Tensor | None, size: float) -> torch.Tensor:
        """lm [..., 68, 2] view pixels, pose [..., 3] or None -> int64 [...]: 0 valid, else
        1 + the index in SAMPLE_CAUSES of the first failed check."""
        import torch

        finite = torch.isfinite(lm).all(-1).all(-1)
        if pose is not None:
            finite &= torch.isfinite(pose).all(-1)
        x = torch.nan_to_num(lm[..., 0], 0.0, 0.0, 0.0)
        y = torch.nan_to_num(lm[..., 1], 0.0, 0.0, 0.0)
        w = x.amax(-1) - x.amin(-1)
        h = y.amax(-1) - y.amin(-1)
        small = (w < self.min_extent * size) & (h < self.min_extent * size)
        centre = ((x - size / 2).abs() < self.centre_band * size).float().mean(-1) >= self.centre_frac
        out = ((x < 0) | (x > size) | (y < 0) | (y > size)).float().mean(-1) > self.max_outside
        cause = torch.zeros(finite.shape, dtype=torch.int64, device=lm.device)
        for code, bad in reversed(list(enumerate((~finite, small, centre, out), start=1))):
            cause = torch.where(bad, torch.full_like(cause, code), cause)
        return cause
