"""AFLW2000-3D reader (Zhu et al. 2016) and a writer of the same layout for tests.

Layout: ``root/<name>.jpg`` + ``root/<name>.mat`` with ``Pose_Para`` (1x7: pitch, yaw,
roll radians, ...), ``pt3d_68`` (3x68: x, y, z of the fitted 3D landmarks, MATLAB
1-based pixels; rows x, y are the 2D evaluation landmarks of 3DDFA / SynergyNet) and
``pt2d`` (2x21 original AFLW points, ``-1`` where not annotated). The ``.mat`` reading and
the pose / pixel conversions are those of :mod:`pyface.data.w300lp`.

``crop="loose"`` returns the HopeNet / 6DRepNet test crop (``datasets.AFLW2000``: the
box of ``pt2d`` widened by ``k = 0.2`` — left and top by ``2k``, right by ``2k`` of the
already widened width, bottom by ``0.6k`` — cut with integer truncation as PIL's
``Image.crop`` does, black outside the image); landmarks move with it. pyface takes
the box from the annotated ``pt2d`` points only (HopeNet's ``min`` would include the
``-1`` placeholders) and from ``pt3d_68`` when a file has no usable ``pt2d``.
"""
from __future__ import annotations

import os
from typing import Iterable

import numpy as np

from pyface.data.base import FaceDataset, read_image, write_image
from pyface.data.sample import DataError
from pyface.data.spec import register_dataset
from pyface.data.w300lp import MATLAB_TO_PIXEL, _field, _loadmat, pose_from_pose_para, pose_para_from_pose, write_mat

__all__ = ["AFLW2000", "loose_crop_box", "crop_image", "write_aflw2000"]

LOOSE_K = 0.20


def loose_crop_box(points) -> tuple[int, int, int, int]:
    """HopeNet's AFLW2000 test box ``(x0, y0, x1, y1)`` (integers, exclusive end) from
    [K, 2] points (see the module docstring)."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    x_min, y_min = p.min(0)
    x_max, y_max = p.max(0)
    k = LOOSE_K
    x_min -= 2 * k * abs(x_max - x_min)
    y_min -= 2 * k * abs(y_max - y_min)
    x_max += 2 * k * abs(x_max - x_min)  # sic: uses the widened x_min, as HopeNet does
    y_max += 0.6 * k * abs(y_max - y_min)
    return int(x_min), int(y_min), int(x_max), int(y_max)


def crop_image(image: np.ndarray, box) -> np.ndarray:
    """HxWx3 crop of ``box`` (x0, y0, x1, y1), zero-padded outside the image."""
    x0, y0, x1, y1 = (int(v) for v in box)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"empty crop box {box}")
    h, w = image.shape[:2]
    out = np.zeros((y1 - y0, x1 - x0, image.shape[2]), dtype=image.dtype)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = image[sy0:sy1, sx0:sx1]
    return out


@register_dataset
class AFLW2000(FaceDataset):
    """AFLW2000-3D: 2000 images with 68 landmarks (``pt3d_68`` x, y) and pose.

    ``crop``: None (whole image) or "loose" (HopeNet's test crop, module docstring).
    ``names``: optional subset/order of file stems (e.g. a filtered list).
    """

    source = "aflw2000"

    def __init__(self, root: str, crop: str | None = "loose", names: Iterable[str] | None = None,
                 transform=None, on_error: str = "raise", **kw):
        kw.setdefault("landmark_margin", 1.0)  # pt3d_68 of profile faces may leave the image
        kw.setdefault("max_angle", 360.0)  # the +-99 filter is the protocol's (pose_mae), not the reader's
        super().__init__(transform=transform, on_error=on_error, **kw)
        if crop not in (None, "loose"):
            raise ValueError(f"crop must be None or 'loose', got {crop!r}")
        self.root, self.crop = str(root), crop
        if not os.path.isdir(self.root):
            raise FileNotFoundError(f"AFLW2000-3D root not found: {self.root}")
        if names is None:
            names = sorted(f[:-4] for f in os.listdir(self.root) if f.lower().endswith(".jpg"))
        self.names = list(names)
        if not self.names:
            raise FileNotFoundError(f"no AFLW2000-3D images (*.jpg) under {self.root}")
        missing = [n for n in self.names if not os.path.isfile(os.path.join(self.root, n + ".mat"))]
        if missing:
            raise FileNotFoundError(f"{os.path.join(self.root, missing[0] + '.mat')}: label file missing "
                                    f"({len(missing)} of {len(self.names)} images have no .mat)")

    def __len__(self) -> int:
        return len(self.names)

    def describe(self, i: int) -> str:
        return os.path.join(self.root, self.names[i] + ".jpg")

    def labels(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(landmarks [68, 2] pyface pixels of the full image, pose (yaw, pitch, roll)
        degrees, crop-box points [K, 2] in the file's own MATLAB coordinates, as HopeNet
        uses them) of item i, read from its .mat only."""
        path = os.path.join(self.root, self.names[i] + ".mat")
        mat = _loadmat(path)
        pose = pose_from_pose_para(_field(mat, "Pose_Para", path, 7).reshape(-1)[:3])
        raw = _field(mat, "pt3d_68", path, 204).reshape(3, 68)[:2].T
        lm, box_pts = raw + MATLAB_TO_PIXEL, raw
        if "pt2d" in mat:
            p = np.asarray(mat["pt2d"], dtype=np.float64)
            if p.ndim == 2 and p.shape[0] == 2:
                p = p.T[(p.T >= 0).all(1)]
                if len(p):
                    box_pts = p
        return lm, pose, box_pts

    def _load(self, i: int):
        image = read_image(self.describe(i))
        lm, pose, box_pts = self.labels(i)
        if self.crop == "loose":
            x0, y0, x1, y1 = loose_crop_box(box_pts)
            try:
                image = crop_image(image, (x0, y0, x1, y1))
            except ValueError as exc:
                raise DataError(f"{self.describe(i)}: {exc}") from exc
            lm = lm - np.array([x0, y0], dtype=np.float64)
        return image, lm.astype(np.float32), pose.astype(np.float32), -1


def write_aflw2000(root: str, samples: Iterable[dict], quality: int = 95) -> list[str]:
    """Write contract samples in the AFLW2000-3D layout (``image<k>.jpg`` + ``.mat`` with
    ``Pose_Para``, ``pt3d_68`` (z = 0) and ``pt2d`` holding 21 of the 68 points).
    Returns the written names."""
    os.makedirs(root, exist_ok=True)
    names = []
    for k, s in enumerate(samples):
        name = f"image{k:05d}"
        write_image(os.path.join(root, name + ".jpg"), s["image"].permute(1, 2, 0).numpy(), quality)
        lm = s["landmarks"].numpy().astype(np.float64) - MATLAB_TO_PIXEL
        pt3d = np.concatenate([lm.T, np.zeros((1, 68))], 0)
        sub = lm[np.linspace(0, 67, 21).astype(int)].T
        write_mat(os.path.join(root, name + ".mat"),
                  {"Pose_Para": pose_para_from_pose(s["pose"].numpy()), "pt3d_68": pt3d, "pt2d": sub})
        names.append(name)
    return names
