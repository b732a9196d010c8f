"""Sample transforms: callables ``sample -> sample`` that keep landmarks and pose
consistent with the image (see :mod:`pyface.data.sample` for the pixel convention).

Randomness comes from torch's RNG (per-worker seeded by DataLoader) or from the
``generator`` a transform is given; transforms never modify their input sample.
"""
from __future__ import annotations

import math

import cv2
import numpy as np
import torch

from pyface.data.sample import mirror_landmarks, mirror_pose

__all__ = ["Compose", "Resize", "RandomFaceCrop", "CenterFaceCrop", "RandomHorizontalFlip",
           "ColorJitter", "face_box"]


def _uniform(lo: float, hi: float, generator=None) -> float:
    return lo + (hi - lo) * torch.rand((), generator=generator).item()


def _hwc(image: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(image.permute(1, 2, 0).numpy())


def _chw(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).contiguous()


class Compose:
    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, sample: dict) -> dict:
        for t in self.transforms:
            sample = t(sample)
        return sample

    def __repr__(self):
        return f"Compose({self.transforms!r})"


def _size2(size) -> tuple[int, int]:
    """(height, width) from an int or a (height, width) pair."""
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


class Resize:
    """Resize the image to ``size`` (int: square, or (height, width)); landmarks are
    scaled by the exact per-axis factors."""

    def __init__(self, size):
        self.size = _size2(size)

    def __call__(self, sample: dict) -> dict:
        img = sample["image"]
        h, w = img.shape[1:]
        oh, ow = self.size
        if (oh, ow) == (h, w):
            return dict(sample)
        interp = cv2.INTER_AREA if oh * ow < h * w else cv2.INTER_LINEAR
        out = dict(sample)
        out["image"] = _chw(cv2.resize(_hwc(img), (ow, oh), interpolation=interp))
        out["landmarks"] = sample["landmarks"] * torch.tensor([ow / w, oh / h], dtype=torch.float32)
        return out

    def __repr__(self):
        return f"Resize({self.size})"


def face_box(sample: dict) -> tuple[float, float, float]:
    """Square face box ``(cx, cy, side)`` in pixels: the landmarks' bounding box made square
    (side = its longer edge). With unknown landmarks (e.g. aligned face-recognition
    crops), the largest centred square of the image."""
    lm = sample["landmarks"]
    h, w = sample["image"].shape[1:]
    if torch.isnan(lm).any():
        return w / 2.0, h / 2.0, float(min(h, w))
    lo, hi = lm.min(0).values, lm.max(0).values
    c = (lo + hi) / 2
    side = float((hi - lo).max())
    return float(c[0]), float(c[1]), max(side, 1.0)


def _crop(sample: dict, x0: float, y0: float, side: float, out_size: int) -> dict:
    """Crop the square [x0, x0+side) x [y0, y0+side) (zero padding outside the image) and
    resize it to out_size x out_size in one affine warp. Landmark map: p -> (p - p0) * s."""
    s = out_size / side
    # OpenCV's warpAffine works in pixel-centre-at-integer coordinates: u = x - 0.5.
    m = np.array([[s, 0.0, (0.5 - x0) * s - 0.5],
                  [0.0, s, (0.5 - y0) * s - 0.5]], dtype=np.float64)
    img = _hwc(sample["image"])
    if s < 0.5:  # warpAffine does not area-average: pre-shrink to avoid aliasing
        h, w = img.shape[:2]
        img = cv2.resize(img, (max(1, round(w * 2 * s)), max(1, round(h * 2 * s))), interpolation=cv2.INTER_AREA)
        fx, fy = img.shape[1] / w, img.shape[0] / h
        m = np.array([[s / fx, 0.0, (0.5 - x0 * fx) * s / fx - 0.5],
                      [0.0, s / fy, (0.5 - y0 * fy) * s / fy - 0.5]], dtype=np.float64)
    warped = cv2.warpAffine(img, m, (out_size, out_size), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    out = dict(sample)
    out["image"] = _chw(warped)
    out["landmarks"] = (sample["landmarks"] - torch.tensor([x0, y0], dtype=torch.float32)) * s
    return out


class RandomFaceCrop:
    """The paper's random face-area crop (Lee et al. 2024, Sec. 3.2): a square crop whose
    area is ``a`` times the face box area, ``a ~ U(min_area, max_area)``, placed at random
    so that it keeps the whole face box when ``a >= 1`` (and stays inside it when
    ``a < 1``), padded with black outside the image and resized to ``out_size`` squared.
    The face box is :func:`face_box` (the square landmark box). Landmarks are moved and
    scaled exactly; pose is unchanged."""

    def __init__(self, min_area: float, max_area: float, out_size: int, generator=None):
        if not 0 < min_area <= max_area:
            raise ValueError(f"need 0 < min_area <= max_area, got {min_area}, {max_area}")
        if out_size < 1:
            raise ValueError(f"out_size must be positive, got {out_size}")
        self.min_area, self.max_area, self.out_size = float(min_area), float(max_area), int(out_size)
        self.generator = generator

    def __call__(self, sample: dict) -> dict:
        cx, cy, face = face_box(sample)
        area = _uniform(self.min_area, self.max_area, self.generator)
        side = face * math.sqrt(area)
        slack = abs(side - face) / 2
        cx += _uniform(-slack, slack, self.generator)
        cy += _uniform(-slack, slack, self.generator)
        return _crop(sample, cx - side / 2, cy - side / 2, side, self.out_size)

    def __repr__(self):
        return f"RandomFaceCrop({self.min_area}, {self.max_area}, {self.out_size})"


class CenterFaceCrop:
    """Deterministic twin of :class:`RandomFaceCrop` for evaluation: a square crop of
    ``area`` times the face box area, centred on the face box."""

    def __init__(self, area: float, out_size: int):
        if area <= 0:
            raise ValueError(f"area must be positive, got {area}")
        self.area, self.out_size = float(area), int(out_size)

    def __call__(self, sample: dict) -> dict:
        cx, cy, face = face_box(sample)
        side = face * math.sqrt(self.area)
        return _crop(sample, cx - side / 2, cy - side / 2, side, self.out_size)

    def __repr__(self):
        return f"CenterFaceCrop({self.area}, {self.out_size})"


def hflip(sample: dict) -> dict:
    """Mirror horizontally: image columns reversed, landmarks x -> W - x with the
    left/right index swap (``MIRROR_68``), yaw and roll negated."""
    out = dict(sample)
    w = sample["image"].shape[2]
    out["image"] = torch.from_numpy(np.ascontiguousarray(sample["image"].numpy()[:, :, ::-1]))
    out["landmarks"] = mirror_landmarks(sample["landmarks"], float(w))
    out["pose"] = mirror_pose(sample["pose"])
    return out


class RandomHorizontalFlip:
    """:func:`hflip` with probability ``p``."""

    def __init__(self, p: float = 0.5, generator=None):
        if not 0 <= p <= 1:
            raise ValueError(f"p must be in [0, 1], got {p}")
        self.p, self.generator = float(p), generator

    def __call__(self, sample: dict) -> dict:
        if torch.rand((), generator=self.generator).item() < self.p:
            return hflip(sample)
        return dict(sample)

    def __repr__(self):
        return f"RandomHorizontalFlip({self.p})"


class ColorJitter:
    """Random brightness, contrast, saturation (factors drawn from ``[1-x, 1+x]``) and hue
    (shift drawn from ``[-hue, hue]`` of a full turn, ``hue <= 0.5``), applied in random
    order as in torchvision. Geometry, landmarks and pose are untouched."""

    def __init__(self, brightness: float = 0.0, contrast: float = 0.0, saturation: float = 0.0,
                 hue: float = 0.0, generator=None):
        for name, v in (("brightness", brightness), ("contrast", contrast), ("saturation", saturation)):
            if v < 0:
                raise ValueError(f"{name} must be >= 0, got {v}")
        if not 0 <= hue <= 0.5:
            raise ValueError(f"hue must be in [0, 0.5], got {hue}")
        self.brightness, self.contrast, self.saturation, self.hue = brightness, contrast, saturation, hue
        self.generator = generator

    def __call__(self, sample: dict) -> dict:
        # saturating uint8 OpenCV ops on HWC: fast, and no torch intra-op threads
        g = self.generator
        img = _hwc(sample["image"])
        for k in torch.randperm(4, generator=g).tolist():
            if k == 0 and self.brightness > 0:
                f = _uniform(max(0.0, 1 - self.brightness), 1 + self.brightness, g)
                img = cv2.addWeighted(img, f, img, 0.0, 0.0)
            elif k == 1 and self.contrast > 0:
                f = _uniform(max(0.0, 1 - self.contrast), 1 + self.contrast, g)
                mean = float(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).mean())
                img = cv2.addWeighted(img, f, img, 0.0, mean * (1 - f))
            elif k == 2 and self.saturation > 0:
                f = _uniform(max(0.0, 1 - self.saturation), 1 + self.saturation, g)
                gray = cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
                img = cv2.addWeighted(img, f, gray, 1 - f, 0.0)
            elif k == 3 and self.hue > 0:
                shift = _uniform(-self.hue, self.hue, g)
                hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV_FULL)
                hsv[..., 0] = (hsv[..., 0].astype(np.int32) + int(round(shift * 256))) % 256
                img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB_FULL)
        out = dict(sample)
        out["image"] = _chw(img)
        return out

    def __repr__(self):
        return (f"ColorJitter(brightness={self.brightness}, contrast={self.contrast}, "
                f"saturation={self.saturation}, hue={self.hue})")
