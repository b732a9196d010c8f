"""Barlow Twins loss (Zbontar et al. 2021), as used for the encoder pre-training of
Pourmirzaei et al., Sec. 4.3."""
from __future__ import annotations

import torch

from pyface import checks as V

__all__ = ["BARLOW_LAMBDA", "barlow_twins_loss"]

#: Off-diagonal weight of the Barlow Twins paper (and Sec. 4.3).
BARLOW_LAMBDA = 0.0051
_BN_EPS = 1e-5  # torch.nn.BatchNorm1d's default, as in the reference implementation


def barlow_twins_loss(z1: torch.Tensor, z2: torch.Tensor, lambd: float = BARLOW_LAMBDA) -> torch.Tensor:
    """sum_i (1 - C_ii)^2 + lambd * sum_{i != j} C_ij^2 with C = z1n^T z2n / B, where
    z1n, z2n are the [B, D] projections of the two views standardised over the batch
    (mean 0, biased variance 1, eps 1e-5: an affine-free BatchNorm1d in training mode).

    Computed in float32 whatever the input dtype (AMP-safe); returns a float32 scalar.
    Needs B >= 2. Single process: a distributed run would all-reduce C before the sum.
    """
    V.tensor("z1", z1, dtypes=V.FLOAT_DTYPES, ndim=2)
    V.tensor("z2", z2, dtypes=V.FLOAT_DTYPES, ndim=2)
    if z1.shape != z2.shape:
        raise ValueError(f"z1 and z2 must have the same shape, got {list(z1.shape)} and {list(z2.shape)}")
    if z1.shape[0] < 2:
        raise ValueError(f"barlow_twins_loss needs a batch of at least 2 rows, got {z1.shape[0]}")
    V.same_device(z1=z1, z2=z2)
    lambd = V.number("lambd", lambd, lo=0.0)

    def standardise(z):
        z = z.float()
        mean = z.mean(0)
        var = z.var(0, unbiased=False)
        return (z - mean) * torch.rsqrt(var + _BN_EPS)

    b = z1.shape[0]
    c = standardise(z1).T @ standardise(z2) / b
    diag = torch.diagonal(c)
    on = (diag - 1).pow(2).sum()
    eye = torch.eye(c.shape[0], dtype=torch.bool, device=c.device)
    off = c.pow(2).masked_fill(eye, 0.0).sum()  # not sum - trace: no cancellation
    return on + lambd * off
