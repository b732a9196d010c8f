"""Eye crops for the eye-blink classifier (Lee et al. 2024, Alg. 1 l. 5-6, Fig. 4).

- :func:`eye_crops`: the two eye patches of face images, cut around the landmarks'
  eyes (0-based iBUG points 36-41 and 42-47), batched (one ``grid_sample``).
- :class:`EyeFolder`: an image folder ``root/open/*``, ``root/closed/*`` of eye crops
  (the layout of CEW-style eye-blink datasets); label 1 = closed.
- :class:`SyntheticEyes`: eye crops cut from :class:`~pyface.data.SyntheticFaces` with
  closed eyes (``eye_closed_prob``) at their exact landmarks; label 1 = closed.

Samples are dicts ``{"image": uint8 [3, s, s], "eye_closed": float32 scalar (1 closed,
0 open), "source": str}``.
"""
from __future__ import annotations

import os

import numpy as np
import torch

from pyface.data.base import get_with_policy, read_image
from pyface.data.folder import list_class_images
from pyface.data.spec import register_dataset

__all__ = ["EYE_POINTS", "EYE_CROP_SIZE", "EYE_CROP_SCALE", "eye_crops", "EyeFolder", "SyntheticEyes"]

#: 0-based iBUG indices of the two eyes (image-left first in a frontal face).
EYE_POINTS = (tuple(range(36, 42)), tuple(range(42, 48)))
EYE_CROP_SIZE = 32
#: Crop side as a multiple of the eye width (corner to corner): the lids and some brow margin.
EYE_CROP_SCALE = 1.8


def eye_crops(images: torch.Tensor, landmarks: torch.Tensor, size: int = EYE_CROP_SIZE,
              scale: float = EYE_CROP_SCALE) -> torch.Tensor:
    """Square eye patches, axis-aligned, centred on the mean of each eye's six points,
    side = ``scale`` x the eye's corner-to-corner width (at least 2 pixels).

    images: uint8 or float [N, 3, H, W]; landmarks: [N, 68, 2] (x, y) pixels of those
    images. Returns the images' dtype [N, 2, 3, size, size] (eye 36-41 first); zeros
    outside the image; non-finite landmarks give zero patches."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be [N, 3, H, W], got {list(images.shape)}")
    if landmarks.shape != (images.shape[0], 68, 2):
        raise ValueError(f"landmarks must be [{images.shape[0]}, 68, 2], got {list(landmarks.shape)}")
    N, _, H, W = images.shape
    lm = landmarks.to(torch.float32)
    centres, sides = [], []
    for pts in EYE_POINTS:
        e = lm[:, list(pts)]
        centres.append(e.mean(1))
        sides.append((scale * (e[:, 3] - e[:, 0]).norm(dim=-1)).clamp_min(2.0))
    c = torch.stack(centres, 1)  # [N, 2, 2]
    side = torch.stack(sides, 1)  # [N, 2]
    ok = torch.isfinite(c).all(-1) & torch.isfinite(side)
    c = torch.where(ok[..., None], c, torch.zeros_like(c))
    side = torch.where(ok, side, torch.full_like(side, 2.0))
    t = (torch.arange(size, dtype=torch.float32, device=images.device) + 0.5) / size - 0.5
    xs = c[..., 0, None] + side[..., None] * t  # [N, 2, size] continuous pixels
    ys = c[..., 1, None] + side[..., None] * t
    # grid_sample(align_corners=False): -1 and 1 are the outer edges of the image
    gx = (2 * xs / W - 1)[:, :, None, :].expand(N, 2, size, size)
    gy = (2 * ys / H - 1)[:, :, :, None].expand(N, 2, size, size)
    grid = torch.stack([gx, gy], -1).reshape(N * 2, size, size, 2)
    src = images.float().repeat_interleave(2, dim=0)
    out = torch.nn.functional.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    out = out.reshape(N, 2, 3, size, size) * ok[..., None, None, None]
    if images.dtype == torch.uint8:
        out = out.round().clamp(0, 255).to(torch.uint8)
    return out.to(images.dtype)


@register_dataset
class EyeFolder(torch.utils.data.Dataset):
    """Eye crops in ``root/open/`` and ``root/closed/`` (any image size; resized to
    ``size`` squared). ``on_error``: "raise" (DataError naming the file) or "skip" (the
    next readable image; recorded in ``skipped`` and warned about, as every pyface
    dataset does: :func:`pyface.data.base.get_with_policy`)."""

    source = "eye_folder"

    def __init__(self, root: str, size: int = EYE_CROP_SIZE, on_error: str = "raise"):
        import cv2  # noqa: F401 - read_image needs it; fail early

        self.root, self.size = str(root), int(size)
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        self.on_error = on_error
        for sub in ("open", "closed"):  # label 0 = open, 1 = closed
            if not os.path.isdir(os.path.join(self.root, sub)):
                raise FileNotFoundError(f"eye folder {self.root} needs sub-folders open/ and closed/ "
                                        f"(missing {sub}/)")
        self.files, self.labels = list_class_images(self.root, ("open", "closed"))
        if not self.files:
            raise FileNotFoundError(f"no images under {self.root}/open/ or {self.root}/closed/")
        self.skipped: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self.files)

    def describe(self, i: int) -> str:
        return os.path.join(self.root, self.files[i])

    def _get(self, i: int) -> dict:
        import cv2

        img = read_image(self.describe(i))
        if img.shape[:2] != (self.size, self.size):
            img = cv2.resize(img, (self.size, self.size), interpolation=cv2.INTER_AREA)
        return {"image": torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).contiguous(),
                "eye_closed": torch.tensor(float(self.labels[i])), "source": self.source}

    def __getitem__(self, index: int) -> dict:
        return get_with_policy(self, index, self._get)


@register_dataset
class SyntheticEyes(torch.utils.data.Dataset):
    """Eye crops from SyntheticFaces (``eye_closed_prob`` of every eye closed): sample
    ``i`` is eye ``i % 2`` of face ``i // 2``; label 1 when its openness < 0.5.
    Remaining keyword arguments go to SyntheticFaces."""

    source = "synthetic_eyes"

    def __init__(self, num_identities: int, images_per_identity: int, image_size: int = 64, seed: int = 0,
                 eye_closed_prob: float = 0.5, size: int = EYE_CROP_SIZE, **kw):
        from pyface.data.synthetic import SyntheticFaces

        self.faces = SyntheticFaces(num_identities, images_per_identity, image_size=image_size, seed=seed,
                                    eye_closed_prob=eye_closed_prob, **kw)
        self.size = int(size)

    @staticmethod
    def kwargs_go_to():
        """The class the remaining keyword arguments configure (for the config check)."""
        from pyface.data.synthetic import SyntheticFaces

        return SyntheticFaces

    def __len__(self) -> int:
        return 2 * len(self.faces)

    def __getitem__(self, index: int) -> dict:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for SyntheticEyes of length {n}")
        index %= n
        face = self.faces[index // 2]
        crops = eye_crops(face["image"][None], face["landmarks"][None], self.size)[0]
        closed = self.faces.eye_openness(index // 2)[index % 2] < 0.5
        return {"image": crops[index % 2], "eye_closed": torch.tensor(float(closed)), "source": self.source}
