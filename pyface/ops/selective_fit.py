"""Batched selective fitting of landmark/pose pseudo-labels (Algorithm 1, lines
17-33 of Lee et al. 2024).

For each image, several augmented crops were run through the landmark nets; the
samples are fitted one image at a time by a C++ loop per image (CPU, in parallel)
or a warp per image (CUDA), all images in one call. The rules are in
csrc/include/pyface/selective_fit_math.h and in :func:`selective_fit`. Inference
only: no autograd.
"""
from __future__ import annotations

import torch

from pyface import checks as V
from pyface.ops._ext import acc_dtype
from pyface.ops.backends import implementation, no_kernel

__all__ = ["selective_fit", "SELECTIVE_FIT_THRESHOLD", "SELECTIVE_FIT_KEEP", "SELECTIVE_FIT_MIN_SAMPLES"]

# Paper defaults: t_d = 0.05 (normalised mean error), keep at most 3 samples, and an image
# whose list D holds one valid sample is accepted (Alg. 1 l. 22-31: its distance to the
# mean is 0); min_samples = 2 is the stricter rule of pyface before 0.2.
SELECTIVE_FIT_THRESHOLD = 0.05
SELECTIVE_FIT_KEEP = 3
SELECTIVE_FIT_MIN_SAMPLES = 1


@torch.library.custom_op("pyface::selective_fit", mutates_args=())
def _selective_fit(samples: torch.Tensor, poses: torch.Tensor, valid: torch.Tensor, face_size: torch.Tensor,
                   threshold: float, keep: int, min_samples: int
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(landmarks [B, P, 2], pose [B, 3], accepted [B], kept [B, N]); see :func:`selective_fit`."""
    raise no_kernel("pyface::selective_fit", samples.device)


@implementation(_selective_fit)
def _selective_fit_impl(k, samples, poses, valid, face_size, threshold, keep, min_samples):
    # The kernel reads row-major memory: a caller of the raw op may pass any layout.
    samples, poses, valid, face_size = (t.contiguous() for t in (samples, poses, valid, face_size))
    B, N, P, _ = samples.shape
    dev, dt = samples.device, samples.dtype
    if B and not bool(((face_size > 0) & torch.isfinite(face_size)).all()):
        raise ValueError("face_size must be finite and > 0 for every image")
    landmarks = torch.empty(B, P, 2, dtype=dt, device=dev)
    pose = torch.empty(B, 3, dtype=dt, device=dev)
    accepted = torch.empty(B, dtype=torch.bool, device=dev)
    kept = torch.empty(B, N, dtype=torch.bool, device=dev)
    if B:
        k.selective_fit(k.SelFitArgs[dt](samples=samples, poses=poses, valid=valid, face_size=face_size, B=B, N=N,
                                         P=P, threshold=threshold, keep=keep, min_samples=min_samples,
                                         landmarks=landmarks, pose=pose, accepted=accepted, kept=kept))
    return landmarks, pose, accepted, kept


@_selective_fit.register_fake
def _(samples, poses, valid, face_size, threshold, keep, min_samples):
    B, N, P, _ = samples.shape
    return (samples.new_empty((B, P, 2)), samples.new_empty((B, 3)), samples.new_empty((B,), dtype=torch.bool),
            samples.new_empty((B, N), dtype=torch.bool))


def selective_fit(samples: torch.Tensor, poses: torch.Tensor, valid: torch.Tensor, face_size: torch.Tensor, *,
                  threshold: float = SELECTIVE_FIT_THRESHOLD, keep: int = SELECTIVE_FIT_KEEP,
                  min_samples: int = SELECTIVE_FIT_MIN_SAMPLES
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fit one landmark/pose pseudo-label per image from N samples.

    samples: [B, N, P, 2] landmarks (P = 68 for iBUG; (x, y) pixels), float32 or
    float64 (float16/bfloat16 are computed in float32); poses: [B, N, 3]
    (yaw, pitch, roll) in degrees; valid: [B, N] bool; face_size: [B] > 0, the
    length (pixels) that normalises distances.

    Per image, S = the valid samples whose landmarks and pose are all finite (NaN
    samples are simply left out). The distance of a sample to a mean shape is the
    mean over the P points of the Euclidean distance, divided by face_size. While
    |S| > keep, the sample farthest from the mean of S is removed (ties: lowest
    sample index). Returns (landmarks [B, P, 2], pose [B, 3], accepted [B] bool,
    kept [B, N] bool): the mean of S (NaN where S is empty), accepted where
    |S| >= min_samples (default 1, the paper's: one valid sample is its own mean) and
    every sample of S is within ``threshold`` of that mean, and kept = S. Floating
    outputs have the computation dtype. Deterministic.
    """
    floats = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
    V.tensor("samples", samples, dtypes=floats, ndim=4)
    V.tensor("poses", poses, dtypes=floats, ndim=3)
    V.tensor("valid", valid, dtypes=(torch.bool,), ndim=2)
    V.tensor("face_size", face_size, dtypes=floats + (torch.int32, torch.int64), ndim=1)
    B, N, P, two = samples.shape
    if two != 2:
        raise ValueError(f"samples must have shape [B, N, P, 2], got {list(samples.shape)}")
    if P == 0:
        raise ValueError("samples must have at least one landmark point (P > 0)")
    V.shape("poses", poses, (B, N, 3))
    V.shape("valid", valid, (B, N))
    V.shape("face_size", face_size, (B,))
    V.same_device(samples=samples, poses=poses, valid=valid, face_size=face_size)
    threshold = V.number("threshold", threshold, lo=0.0)
    keep = V.integer("keep", keep, lo=1)
    min_samples = V.integer("min_samples", min_samples, lo=1)
    if min_samples > keep:
        raise ValueError(f"min_samples ({min_samples}) must be <= keep ({keep}): no image could be accepted")
    dt = acc_dtype(samples)
    # Explicit copies only where the kernel needs another dtype or layout.
    return torch.ops.pyface.selective_fit(samples.to(dt).contiguous(), poses.to(dt).contiguous(),
                                          valid.contiguous(), face_size.to(dt).contiguous(), threshold, keep,
                                          min_samples)
