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
from pyface.registry import Registry

__all__ = ["TRANSFORMS", "register_transform", "Compose", "Resize", "RandomFaceCrop", "CenterFaceCrop",
           "RandomHorizontalFlip", "ColorJitter", "face_box", "RandomCentralZoom", "GaussianBlur", "RandomDownscale",
           "Cutout", "RandomGrayscale", "GaussianNoise", "RandomSquareCrop", "RandomTilePuzzle", "BarlowTwinsViews",
           "hmtl_augmentation"]


#: Transforms a dataset spec's ``transform: [{type: Name, ...}]`` may name (``TRANSFORMS.names()``).
TRANSFORMS: Registry = Registry("transform")


def register_transform(obj):
    """Decorator: make a transform class (or a factory returning a transform) nameable in
    a dataset spec under its ``__name__``."""
    if not callable(obj):
        raise TypeError(f"register_transform: {obj!r} is not callable")
    return TRANSFORMS.register(obj.__name__, obj)


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


@register_transform
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


@register_transform
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


@register_transform
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


@register_transform
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


@register_transform
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


# ---------------------------------------------------------------------------------
# HMTL augmentation (Pourmirzaei et al., Sec. 4.2 levels 1 / 2, Sec. 4.3 Barlow Twins)

@register_transform
class RandomCentralZoom:
    """Zoom about the image centre by ``z ~ U(min_zoom, max_zoom)`` (``z > 1`` zooms in,
    ``z < 1`` zooms out with black borders), output ``out_size`` squared (default: the
    input's shorter side). Landmarks scale about the centre; pose is unchanged."""

    def __init__(self, min_zoom: float = 0.9, max_zoom: float = 1.2, out_size: int | None = None, generator=None):
        if not 0 < min_zoom <= max_zoom:
            raise ValueError(f"need 0 < min_zoom <= max_zoom, got {min_zoom}, {max_zoom}")
        self.min_zoom, self.max_zoom, self.out_size = float(min_zoom), float(max_zoom), out_size
        self.generator = generator

    def __call__(self, sample: dict) -> dict:
        h, w = sample["image"].shape[1:]
        side = min(h, w) / _uniform(self.min_zoom, self.max_zoom, self.generator)
        return _crop(sample, w / 2 - side / 2, h / 2 - side / 2, side, self.out_size or min(h, w))

    def __repr__(self):
        return f"RandomCentralZoom({self.min_zoom}, {self.max_zoom}, {self.out_size})"


class _RandomApply:
    """Applies ``self.apply(sample)`` with probability ``p`` (image-only transforms)."""

    def __init__(self, p: float, generator=None):
        if not 0 <= p <= 1:
            raise ValueError(f"p must be in [0, 1], got {p}")
        self.p, self.generator = float(p), generator

    def __call__(self, sample: dict) -> dict:
        if torch.rand((), generator=self.generator).item() >= self.p:
            return dict(sample)
        return self.apply(sample)

    def apply(self, sample: dict) -> dict:
        raise NotImplementedError


@register_transform
class GaussianBlur(_RandomApply):
    """With probability ``p``, a Gaussian blur of sigma ``~ U(min_sigma, max_sigma)`` pixels."""

    def __init__(self, p: float = 0.5, min_sigma: float = 0.1, max_sigma: float = 2.0, generator=None):
        super().__init__(p, generator)
        if not 0 < min_sigma <= max_sigma:
            raise ValueError(f"need 0 < min_sigma <= max_sigma, got {min_sigma}, {max_sigma}")
        self.min_sigma, self.max_sigma = min_sigma, max_sigma

    def apply(self, sample: dict) -> dict:
        sigma = _uniform(self.min_sigma, self.max_sigma, self.generator)
        out = dict(sample)
        out["image"] = _chw(cv2.GaussianBlur(_hwc(sample["image"]), (0, 0), sigmaX=sigma, sigmaY=sigma))
        return out

    def __repr__(self):
        return f"GaussianBlur(p={self.p}, sigma=[{self.min_sigma}, {self.max_sigma}])"


@register_transform
class RandomDownscale(_RandomApply):
    """With probability ``p``, lower the resolution: shrink by ``f ~ U(min_factor, max_factor)``
    (area averaging) and enlarge back (bilinear) to the same size. Labels unchanged."""

    def __init__(self, p: float = 0.5, min_factor: float = 0.25, max_factor: float = 0.75, generator=None):
        super().__init__(p, generator)
        if not 0 < min_factor <= max_factor <= 1:
            raise ValueError(f"need 0 < min_factor <= max_factor <= 1, got {min_factor}, {max_factor}")
        self.min_factor, self.max_factor = min_factor, max_factor

    def apply(self, sample: dict) -> dict:
        f = _uniform(self.min_factor, self.max_factor, self.generator)
        img = _hwc(sample["image"])
        h, w = img.shape[:2]
        small = cv2.resize(img, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
        out = dict(sample)
        out["image"] = _chw(cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR))
        return out

    def __repr__(self):
        return f"RandomDownscale(p={self.p}, factor=[{self.min_factor}, {self.max_factor}])"


@register_transform
class Cutout(_RandomApply):
    """With probability ``p``, fill one random rectangle (sides ``~ U(min_frac, max_frac)`` of
    the image sides, centre anywhere in the image, clipped at its borders) with ``fill``."""

    def __init__(self, p: float = 0.5, min_frac: float = 0.1, max_frac: float = 0.4, fill: int = 0, generator=None):
        super().__init__(p, generator)
        if not 0 < min_frac <= max_frac <= 1:
            raise ValueError(f"need 0 < min_frac <= max_frac <= 1, got {min_frac}, {max_frac}")
        self.min_frac, self.max_frac, self.fill = min_frac, max_frac, fill

    def apply(self, sample: dict) -> dict:
        g = self.generator
        h, w = sample["image"].shape[1:]
        ch, cw = _uniform(self.min_frac, self.max_frac, g) * h, _uniform(self.min_frac, self.max_frac, g) * w
        cy, cx = _uniform(0, h, g), _uniform(0, w, g)
        y0, y1 = max(0, round(cy - ch / 2)), min(h, round(cy + ch / 2))
        x0, x1 = max(0, round(cx - cw / 2)), min(w, round(cx + cw / 2))
        out = dict(sample)
        out["image"] = sample["image"].clone()
        out["image"][:, y0:y1, x0:x1] = self.fill
        return out

    def __repr__(self):
        return f"Cutout(p={self.p}, frac=[{self.min_frac}, {self.max_frac}], fill={self.fill})"


@register_transform
def hmtl_augmentation(level: int, generator=None) -> Compose:
    """The paper's augmentation levels (Sec. 4.2): level 1 = random central zoom + random
    contrast; level 2 = level 1 + blur, down-scaled resolution and cutout (each applied
    with probability 0.5; the paper gives no parameters, these are ours). Level 0: none."""
    if level not in (0, 1, 2):
        raise ValueError(f"augmentation level must be 0, 1 or 2, got {level!r}")
    ts = []
    if level >= 1:
        ts += [RandomCentralZoom(0.85, 1.25, generator=generator), ColorJitter(contrast=0.4, generator=generator)]
    if level >= 2:
        ts += [GaussianBlur(0.5, 0.1, 2.0, generator=generator), RandomDownscale(0.5, 0.25, 0.75, generator=generator),
               Cutout(0.5, 0.1, 0.4, generator=generator)]
    return Compose(ts)


@register_transform
class RandomGrayscale(_RandomApply):
    """With probability ``p``, replace RGB by its luma (kept 3-channel)."""

    def __init__(self, p: float = 0.3, generator=None):
        super().__init__(p, generator)

    def apply(self, sample: dict) -> dict:
        gray = cv2.cvtColor(_hwc(sample["image"]), cv2.COLOR_RGB2GRAY)
        out = dict(sample)
        out["image"] = _chw(cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB))
        return out

    def __repr__(self):
        return f"RandomGrayscale({self.p})"


@register_transform
class GaussianNoise:
    """Additive Gaussian noise with standard deviation ``~ U(0, max_std)`` grey levels
    (saturated to uint8)."""

    def __init__(self, max_std: float = 10.0, generator=None):
        if max_std < 0:
            raise ValueError(f"max_std must be >= 0, got {max_std}")
        self.max_std, self.generator = float(max_std), generator

    def __call__(self, sample: dict) -> dict:
        std = _uniform(0.0, self.max_std, self.generator)
        img = sample["image"]
        noise = torch.randn(img.shape, generator=self.generator) * std
        out = dict(sample)
        out["image"] = (img.float() + noise).round_().clamp_(0, 255).to(torch.uint8)
        return out

    def __repr__(self):
        return f"GaussianNoise(max_std={self.max_std})"


@register_transform
class RandomSquareCrop:
    """A square crop of ``a ~ U(min_area, max_area)`` times the image area (of its shorter
    side squared), at a uniform position inside the image, resized to ``out_size``."""

    def __init__(self, min_area: float = 0.3, max_area: float = 1.0, out_size: int | None = None, generator=None):
        if not 0 < min_area <= max_area <= 1:
            raise ValueError(f"need 0 < min_area <= max_area <= 1, got {min_area}, {max_area}")
        self.min_area, self.max_area, self.out_size, self.generator = min_area, max_area, out_size, generator

    def __call__(self, sample: dict) -> dict:
        h, w = sample["image"].shape[1:]
        side = min(h, w) * math.sqrt(_uniform(self.min_area, self.max_area, self.generator))
        x0, y0 = _uniform(0, w - side, self.generator), _uniform(0, h - side, self.generator)
        return _crop(sample, x0, y0, side, self.out_size or min(h, w))

    def __repr__(self):
        return f"RandomSquareCrop({self.min_area}, {self.max_area}, {self.out_size})"


@register_transform
class RandomTilePuzzle:
    """The tiles of a k x k grid permuted at random (:func:`pyface.ssl.tile_transform`,
    mode "puzzle"). Sides not divisible by k: the top-left ``(H // k) * k`` x
    ``(W // k) * k`` region is puzzled, the remaining rows/columns stay."""

    def __init__(self, k: int = 3, generator=None):
        if not isinstance(k, int) or k < 2:
            raise ValueError(f"k must be an int >= 2, got {k!r}")
        self.k, self.generator = k, generator

    def __call__(self, sample: dict) -> dict:
        from pyface.ssl import tile_transform

        out = dict(sample)
        out["image"] = tile_transform(sample["image"][None], self.k, "puzzle", self.generator, remainder="keep")[0][0]
        return out

    def __repr__(self):
        return f"RandomTilePuzzle({self.k})"


@register_transform
class BarlowTwinsViews:
    """Two distorted views of one image for Barlow Twins pre-training (Sec. 4.3).

    The image is first rotated by a random multiple of 90 degrees (shared by both views);
    then, per view independently: random square crop (always) to ``out_size``; colour
    jitter with probability 0.8; grayscale with probability 0.3; Gaussian noise (always);
    one of blur / down-scaled resolution picked at random and applied with probability
    0.2; optionally a random ``puzzle`` x ``puzzle`` tile puzzle (the paper's "BT*");
    cutout (always). Crop range, jitter strengths and noise level are ours (the paper
    gives none). Output: ``image`` = view 1, ``image_view2`` = view 2 (uint8 [3, S, S]);
    landmarks and pose become unknown (NaN): rotated, independently cropped views have
    no shared geometric label.
    """

    def __init__(self, out_size: int, puzzle: int | None = None, generator=None):
        g = generator
        self.out_size, self.puzzle, self.generator = int(out_size), puzzle, g
        self.crop = RandomSquareCrop(0.3, 1.0, self.out_size, generator=g)
        self.jitter = ColorJitter(0.4, 0.4, 0.2, 0.1, generator=g)
        self.gray = RandomGrayscale(0.3, generator=g)
        self.noise = GaussianNoise(10.0, generator=g)
        self.blur = GaussianBlur(0.2, 0.1, 2.0, generator=g)
        self.down = RandomDownscale(0.2, 0.25, 0.75, generator=g)
        self.tiles = RandomTilePuzzle(puzzle, generator=g) if puzzle else None
        self.cutout = Cutout(1.0, 0.1, 0.4, generator=g)

    def _view(self, sample: dict) -> torch.Tensor:
        g = self.generator
        s = self.crop(sample)
        if torch.rand((), generator=g).item() < 0.8:
            s = self.jitter(s)
        s = self.noise(self.gray(s))
        s = self.blur(s) if torch.rand((), generator=g).item() < 0.5 else self.down(s)
        if self.tiles is not None:
            s = self.tiles(s)
        return self.cutout(s)["image"]

    def __call__(self, sample: dict) -> dict:
        from pyface.data.sample import unknown_landmarks, unknown_pose

        q = int(torch.randint(0, 4, (), generator=self.generator))
        base = dict(sample)
        base["image"] = torch.rot90(sample["image"], q, dims=(1, 2)).contiguous()
        base["landmarks"], base["pose"] = unknown_landmarks(), unknown_pose()
        out = dict(base)
        out["image"], out["image_view2"] = self._view(base), self._view(base)
        out["landmarks"], out["pose"] = base["landmarks"], base["pose"]
        return out

    def __repr__(self):
        return f"BarlowTwinsViews(out_size={self.out_size}, puzzle={self.puzzle})"
