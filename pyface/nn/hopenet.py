"""HopeNet-style head pose losses (Ruiz et al. 2018; Pourmirzaei et al., Formulas 2 and 3).

Bins: the angle range [-99, 99] degrees cut into ``198 / bin_width`` bins (66 of 3
degrees, or 198 of 1 degree); bin i covers ``[-99 + i*w, -99 + (i+1)*w)`` and its
centre is ``-99 + (i + 0.5) * w``.

Angles are (yaw, pitch, roll) degrees, the order of every pyface pose.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from pyface import checks as V

__all__ = ["ANGLE_RANGE", "OUT_OF_RANGE", "bin_centres", "hopenet_angles", "hopenet_bins", "hopenet_loss",
           "num_bins", "pose_regression_loss"]

ANGLE_RANGE = 99.0
OUT_OF_RANGE = ("clamp", "exclude")
_FLOATS = V.FLOAT_DTYPES + (torch.float64,)


def _acc(t: torch.Tensor) -> torch.Tensor:
    """At least float32 (half-precision logits under AMP are upcast; float64 kept)."""
    return t.to(torch.promote_types(t.dtype, torch.float32))


def num_bins(bin_width: float) -> int:
    """Number of bins of ``bin_width`` degrees over [-99, 99] (must divide 198 exactly)."""
    w = V.number("bin_width", bin_width, lo=0.0, lo_open=True)
    n = round(2 * ANGLE_RANGE / w)
    if n < 2 or abs(n * w - 2 * ANGLE_RANGE) > 1e-6:
        raise ValueError(f"bin_width must divide 198 degrees into >= 2 bins (e.g. 3 or 1), got {bin_width}")
    return n


def bin_centres(bin_width: float = 3.0, device=None) -> torch.Tensor:
    """float32 [nbins]: -99 + (i + 0.5) * bin_width."""
    n = num_bins(bin_width)
    return -ANGLE_RANGE + (torch.arange(n, dtype=torch.float32, device=device) + 0.5) * float(bin_width)


def hopenet_bins(angles_deg: torch.Tensor, bin_width: float = 3.0) -> torch.Tensor:
    """int64 bin index of each angle, clamped to [0, nbins - 1] (so angles beyond +-99
    fall into the edge bins); NaN angles give -1."""
    n = num_bins(bin_width)
    a = angles_deg.float()
    idx = torch.floor((a + ANGLE_RANGE) / float(bin_width)).clamp(0, n - 1)
    return torch.where(torch.isnan(a), torch.full_like(idx, -1), idx).long()


def _check_logits(logits: torch.Tensor, bin_width: float) -> int:
    V.tensor("logits", logits, dtypes=_FLOATS, ndim=3)
    n = num_bins(bin_width)
    if logits.shape[2] != n:
        raise ValueError(f"logits must be [B, A, {n}] for bin_width={bin_width} (198 / bin_width bins), "
                         f"got {list(logits.shape)}")
    return n


def hopenet_angles(logits: torch.Tensor, bin_width: float = 3.0) -> torch.Tensor:
    """Angles in degrees [B, A] (A = 3: yaw, pitch, roll) from bin logits [B, A, nbins]:
    the softmax expectation over the bin CENTRES, ``sum_i p_i * (-99 + (i + 0.5) * w)``.

    HopeNet's code uses ``sum_i p_i * i * 3 - 99``, the expectation over the bins'
    LOWER edges: its predictions are biased by -w/2 (-1.5 degrees for 3-degree bins)
    relative to the labels' bins; with centres a prediction whose mass sits in the true
    bin is unbiased. Computed in at least float32.
    """
    _check_logits(logits, bin_width)
    p = torch.softmax(_acc(logits), dim=-1)
    return p @ bin_centres(bin_width, logits.device).to(p.dtype)


def hopenet_loss(logits: torch.Tensor, angles_deg: torch.Tensor, bin_width: float = 3.0, alpha: float = 2.0,
                 *, out_of_range: str = "clamp") -> torch.Tensor:
    """Formula 2 of Pourmirzaei et al.: ``sum_a [CE(logits_a, bin(y_a)) + alpha * RMSE(E_a, y_a)]``
    over the angles a, where E_a is :func:`hopenet_angles` and CE / RMSE average over
    the batch. (The paper uses RMSE where HopeNet used MSE; the extra trailing RMSE term
    printed in Formula 2 is not part of HopeNet and is not added.)

    logits [B, A, nbins] float, angles_deg [B, A] degrees (A = 3: yaw, pitch, roll).
    NaN angles (unknown labels) are left out of their angle's terms; an angle with no
    known row contributes 0. Labels beyond +-99 degrees (e.g. 31 AFLW2000 faces):
    ``out_of_range="clamp"`` (default) gives them the edge bin for the CE and keeps the
    true angle as the regression target (which the expectation, bounded by the outer bin
    centres, can only approach); ``"exclude"`` leaves such rows out of that angle's
    terms, as HopeNet's data lists do. Returns a scalar of at least float32.
    """
    n = _check_logits(logits, bin_width)
    V.tensor("angles_deg", angles_deg, dtypes=_FLOATS)
    V.shape("angles_deg", angles_deg, (logits.shape[0], logits.shape[1]))
    V.same_device(logits=logits, angles_deg=angles_deg)
    alpha = V.number("alpha", alpha, lo=0.0)
    V.choice("out_of_range", out_of_range, OUT_OF_RANGE)
    lf = _acc(logits)
    y = angles_deg.to(lf.dtype)
    if torch.isinf(y).any():
        raise ValueError("angles_deg has inf values (use NaN for unknown angles)")
    known = ~torch.isnan(y)
    if out_of_range == "exclude":
        known = known & (y.abs() <= ANGLE_RANGE)
    ce = F.cross_entropy(lf.reshape(-1, n), hopenet_bins(y, bin_width).reshape(-1), reduction="none",
                         ignore_index=-1).view_as(y)
    sq = (hopenet_angles(lf, bin_width) - torch.nan_to_num(y)) ** 2
    cnt = known.sum(0)
    den = cnt.clamp(min=1).to(lf.dtype)
    ce_a = torch.where(known, ce, 0.0).sum(0) / den
    mse_a = torch.where(known, sq, 0.0).sum(0) / den
    # sqrt'(0) is infinite: a perfect fit would give NaN gradients, so the root gets a tiny floor
    rmse_a = torch.sqrt(mse_a + 1e-12)
    per_angle = torch.where(cnt > 0, ce_a + alpha * rmse_a, 0.0)
    return per_angle.sum()


def pose_regression_loss(pred_deg: torch.Tensor, angles_deg: torch.Tensor, mse_weight: float = 1.0) -> torch.Tensor:
    """Formula 3: ``sum_a [MSE_a + RMSE_a]`` over the angles a of a plain regression head
    (``mse_weight=0``: Formula 1, the RMSE alone, used for the flag search of Table 1).
    pred_deg, angles_deg [B, A] degrees; NaN labels left out of their angle; an angle with
    no known row contributes 0. Returns a scalar of at least float32."""
    V.tensor("pred_deg", pred_deg, dtypes=_FLOATS, ndim=2)
    V.tensor("angles_deg", angles_deg, dtypes=_FLOATS)
    V.shape("angles_deg", angles_deg, tuple(pred_deg.shape))
    V.same_device(pred_deg=pred_deg, angles_deg=angles_deg)
    mse_weight = V.number("mse_weight", mse_weight, lo=0.0)
    pred = _acc(pred_deg)
    y = angles_deg.to(pred.dtype)
    if torch.isinf(y).any():
        raise ValueError("angles_deg has inf values (use NaN for unknown angles)")
    known = ~torch.isnan(y)
    cnt = known.sum(0)
    mse = torch.where(known, (pred - torch.nan_to_num(y)) ** 2, 0.0).sum(0) / cnt.clamp(min=1).to(pred.dtype)
    return torch.where(cnt > 0, mse_weight * mse + torch.sqrt(mse + 1e-12), 0.0).sum()
