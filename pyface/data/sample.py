"""The sample contract shared by every pyface dataset, and the 68-point mirror map.

A sample is a dict (torch's default collate batches it):

- ``image``: ``torch.uint8`` ``[3, H, W]``, RGB.
- ``landmarks``: ``torch.float32`` ``[68, 2]``, ``(x, y)`` pixels of that image,
  iBUG 68-point order, 0-based indices; all NaN when unknown.
- ``pose``: ``torch.float32`` ``[3]``, ``(yaw, pitch, roll)`` degrees; NaN when unknown.
- ``identity``: ``torch.int64`` scalar; -1 when unknown.
- ``source``: ``str``, the dataset name.

Pixel coordinates are continuous: pixel column ``j`` covers ``[j, j + 1)`` and its
centre is ``x = j + 0.5`` (the convention of ``cv2.resize``), so a resize by ``s``
maps ``x -> s * x`` and a horizontal mirror of a ``W``-wide image maps
``x -> W - x`` exactly.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from pyface.data_files.mean_shape_68 import IBUG68_FLIP
from pyface.errors import DataError

__all__ = [
    "NUM_LANDMARKS", "MIRROR_68", "DataError", "make_sample", "check_sample",
    "label_problem", "mirror_landmarks", "unknown_landmarks", "unknown_pose",
]

NUM_LANDMARKS = 68


#: ``MIRROR_68[i]`` is the iBUG index that point ``i`` becomes after a horizontal flip
#: (left eye <-> right eye, ...). Defined once, next to the mean shape, in
#: ``pyface.data_files.mean_shape_68.IBUG68_FLIP`` (pyface.geometry uses the same table).
MIRROR_68: tuple[int, ...] = tuple(int(i) for i in IBUG68_FLIP)


def unknown_landmarks() -> torch.Tensor:
    return torch.full((NUM_LANDMARKS, 2), math.nan, dtype=torch.float32)


def unknown_pose() -> torch.Tensor:
    return torch.full((3,), math.nan, dtype=torch.float32)


def mirror_landmarks(landmarks, width: float):
    """Landmarks of the horizontally mirrored ``width``-pixel-wide image: ``x -> width - x``
    and the left/right index swap (``MIRROR_68``). Accepts ``[..., 68, 2]`` torch or numpy."""
    idx = list(MIRROR_68)
    if isinstance(landmarks, torch.Tensor):
        out = landmarks[..., idx, :].clone()
    else:
        out = np.array(landmarks, copy=True)[..., idx, :]
    out[..., 0] = width - out[..., 0]
    return out


def mirror_pose(pose):
    """Pose of the horizontally mirrored image: yaw and roll negated, pitch kept.
    Accepts ``[..., 3]`` (yaw, pitch, roll) torch or numpy."""
    if isinstance(pose, torch.Tensor):
        return pose * pose.new_tensor([-1.0, 1.0, -1.0])
    return np.asarray(pose) * np.array([-1.0, 1.0, -1.0], dtype=np.asarray(pose).dtype)


def make_sample(image, landmarks=None, pose=None, identity=-1, source: str = "") -> dict:
    """Build a contract sample. ``image``: HxWx3 RGB uint8 numpy array or a [3,H,W]
    uint8 tensor; ``landmarks`` [68,2] (x, y) pixels or None; ``pose`` (yaw, pitch, roll)
    degrees or None; ``identity`` int (-1 unknown)."""
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image must be an HxWx3 uint8 array, got {image.shape} {image.dtype}")
        image = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).contiguous()
    lm = unknown_landmarks() if landmarks is None else torch.as_tensor(
        np.asarray(landmarks, dtype=np.float32).reshape(NUM_LANDMARKS, 2))
    ps = unknown_pose() if pose is None else torch.as_tensor(np.asarray(pose, dtype=np.float32).reshape(3))
    return {
        "image": image,
        "landmarks": lm,
        "pose": ps,
        "identity": torch.tensor(int(identity), dtype=torch.int64),
        "source": str(source),
    }


def check_sample(sample: dict) -> None:
    """Raise ``ValueError`` naming the field if ``sample`` breaks the contract."""
    img = sample.get("image")
    if not isinstance(img, torch.Tensor) or img.dtype != torch.uint8 or img.dim() != 3 or img.shape[0] != 3:
        raise ValueError(f"image must be a uint8 tensor [3, H, W], got "
                         f"{getattr(img, 'dtype', type(img))} {tuple(getattr(img, 'shape', ()))}")
    lm = sample.get("landmarks")
    if not isinstance(lm, torch.Tensor) or lm.dtype != torch.float32 or tuple(lm.shape) != (68, 2):
        raise ValueError("landmarks must be a float32 tensor [68, 2]")
    ps = sample.get("pose")
    if not isinstance(ps, torch.Tensor) or ps.dtype != torch.float32 or tuple(ps.shape) != (3,):
        raise ValueError("pose must be a float32 tensor [3]")
    ident = sample.get("identity")
    if not isinstance(ident, torch.Tensor) or ident.dtype != torch.int64 or ident.dim() != 0:
        raise ValueError("identity must be an int64 scalar tensor")
    if not isinstance(sample.get("source"), str):
        raise ValueError("source must be a str")


def _known_or_unknown(name: str, a: np.ndarray) -> tuple[bool, str | None]:
    """(known, problem): a label is all finite (known) or all NaN (unknown), nothing between."""
    nan = np.isnan(a)
    if nan.all():
        return False, None
    if nan.any():
        return True, f"{name}: partly NaN"
    if not np.isfinite(a).all():
        return True, f"{name}: not finite"
    return True, None


def label_problem(landmarks, pose, identity, width: int, height: int,
                  margin: float = 0.5, max_angle: float = 180.0) -> str | None:
    """Why these labels are out of range, or None if they are usable.

    Landmarks must be all finite or all NaN (unknown), and lie within ``margin`` image
    sizes outside the image (self-occluded points may fall slightly outside). Pose must be
    all finite within +-``max_angle`` degrees or all NaN. Identity must be >= -1."""
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (68, 2):
        return f"landmarks have shape {lm.shape}, expected (68, 2)"
    known, problem = _known_or_unknown("landmarks", lm)
    if problem:
        return problem
    if known:
        lo_x, hi_x = -margin * width, (1 + margin) * width
        lo_y, hi_y = -margin * height, (1 + margin) * height
        if (lm[:, 0].min() < lo_x or lm[:, 0].max() > hi_x or lm[:, 1].min() < lo_y
                or lm[:, 1].max() > hi_y):
            return (f"landmarks outside the {width}x{height} image by more than {margin} of its size "
                    f"(x in [{lm[:, 0].min():.1f}, {lm[:, 0].max():.1f}], "
                    f"y in [{lm[:, 1].min():.1f}, {lm[:, 1].max():.1f}])")
    ps = np.asarray(pose, dtype=np.float64).reshape(-1)
    if ps.shape != (3,):
        return f"pose has {ps.size} values, expected 3"
    known, problem = _known_or_unknown("pose", ps)
    if problem:
        return problem
    if known:
        if np.abs(ps).max() > max_angle:
            return f"pose {ps.tolist()} exceeds +-{max_angle} degrees"
    if int(identity) < -1:
        return f"identity {int(identity)} < -1"
    return None
