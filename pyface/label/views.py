"""The augmentation set A of Algorithm 1 (Lee et al. 2024, Sec. 3.1.2): N views of one
image as exact affine warps, and the inverse maps that bring every prediction back to
the original image's pixels.

A view is a square crop of the face box, resized to the network input (``out_size``
squared) in one ``cv2.warpAffine``:

- ``scale``: crop side as a multiple of the face box side (> 1 adds context, < 1 cuts
  into the face);
- ``dx, dy``: crop centre shift as a fraction of the face box side;
- ``border``: ``"constant"`` (black) or ``"reflect"`` padding where the crop leaves the image;
- ``mirror``: the view is mirrored horizontally after the crop; its predictions come
  back through :func:`pyface.data.mirror_landmarks` (x -> out_size - x plus the iBUG
  left/right index swap) and :func:`pyface.data.mirror_pose` (yaw and roll negated).

:data:`DEFAULT_VIEWS` (the first ``N`` are used; ``N`` > 8 continues with seeded random
views from the same ranges) mixes all of these: an identity view, zoom-out and zoom-in
crops, shifted crops in four directions, reflect padding on three views and one mirrored view.

Coordinates follow pyface's pixel convention (pixel column ``j`` covers ``[j, j+1)``,
see :mod:`pyface.data.sample`): a view's 2x3 matrix ``A`` maps original ``(x, y)`` to
view ``(x', y')``; OpenCV's integer-centre matrix is derived from it.

The face box is ``(cx, cy, side)`` in original pixels; without one the largest centred
square of the image is used (the convention of aligned face-recognition crops, as in
:func:`pyface.data.transforms.face_box`).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from pyface.data.sample import MIRROR_68, mirror_landmarks, mirror_pose

__all__ = ["View", "DEFAULT_VIEWS", "make_views", "view_matrices", "warp_views", "unmap_landmarks", "unmap_poses",
           "box_from_image", "boxes_array", "map_landmarks"]

BORDERS = {"constant": cv2.BORDER_CONSTANT, "reflect": cv2.BORDER_REFLECT_101}


@dataclass(frozen=True)
class View:
    scale: float = 1.0
    dx: float = 0.0
    dy: float = 0.0
    border: str = "constant"
    mirror: bool = False

    def __post_init__(self):
        if not (np.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"view scale must be finite and > 0, got {self.scale}")
        if self.border not in BORDERS:
            raise ValueError(f"view border must be one of {sorted(BORDERS)}, got {self.border!r}")


DEFAULT_VIEWS: tuple[View, ...] = (
    View(1.00),                                   # the crop as given
    View(1.25, border="reflect"),                 # more context, reflect padding
    View(0.90),                                   # tighter crop
    View(1.10, dx=0.06),                          # shifted right
    View(1.10, dx=-0.06, border="reflect"),       # shifted left
    View(1.15, dy=0.06),                          # shifted down
    View(1.05, dy=-0.05, border="reflect"),       # shifted up
    View(1.05, mirror=True),                      # mirrored
)


def make_views(n: int, mirror: bool = True, seed: int = 0) -> tuple[View, ...]:
    """The first ``n`` of :data:`DEFAULT_VIEWS` (without the mirrored one if not ``mirror``),
    continued with seeded random views (scale U(0.9, 1.3), shifts U(-0.07, 0.07), border and
    mirror at random) when ``n`` is larger."""
    n = int(n)
    if n < 1:
        raise ValueError(f"views must be >= 1, got {n}")
    base = [v for v in DEFAULT_VIEWS if mirror or not v.mirror]
    out = base[:n]
    rng = np.random.default_rng(seed)
    while len(out) < n:
        out.append(View(float(rng.uniform(0.9, 1.3)), float(rng.uniform(-0.07, 0.07)), float(rng.uniform(-0.07, 0.07)),
                        "reflect" if rng.uniform() < 0.5 else "constant", bool(mirror and rng.uniform() < 0.25)))
    return tuple(out)


def box_from_image(height: int, width: int) -> tuple[float, float, float]:
    """The largest centred square of an image: ``(cx, cy, side)``."""
    return width / 2.0, height / 2.0, float(min(height, width))


def boxes_array(images, boxes=None) -> np.ndarray:
    """[B, 3] float64 ``(cx, cy, side)`` per image; ``boxes`` is None or a sequence whose
    entries are None (largest centred square) or ``(x0, y0, x1, y1)`` corners in pixels
    (made square around their centre, side = the longer edge)."""
    out = np.empty((len(images), 3), dtype=np.float64)
    if boxes is not None and len(boxes) != len(images):
        raise ValueError(f"boxes must have one entry per image ({len(images)}), got {len(boxes)}")
    for i, img in enumerate(images):
        b = None if boxes is None else boxes[i]
        if b is None or (np.ndim(b) == 1 and len(b) == 4 and not np.isfinite(np.asarray(b, float)).any()):
            out[i] = box_from_image(*img.shape[:2])
            continue
        b = np.asarray(b, dtype=np.float64).reshape(-1)
        if b.shape != (4,) or not np.isfinite(b).all() or b[2] <= b[0] or b[3] <= b[1]:
            raise ValueError(f"boxes[{i}] must be (x0, y0, x1, y1) with x1 > x0 and y1 > y0, got {b.tolist()}")
        out[i] = ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2, max(b[2] - b[0], b[3] - b[1]))
    return out


def view_matrices(boxes: np.ndarray, views, out_size: int) -> np.ndarray:
    """[B, V, 2, 3] float64: original (x, y) -> view (x', y') for each image's box and view."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 3)
    V = len(views)
    A = np.zeros((len(boxes), V, 2, 3))
    cx, cy, side = boxes[:, 0], boxes[:, 1], boxes[:, 2]
    for v, view in enumerate(views):
        crop = side * view.scale
        s = out_size / crop
        x0 = cx + view.dx * side - crop / 2
        y0 = cy + view.dy * side - crop / 2
        sx = -s if view.mirror else s
        A[:, v, 0, 0] = sx
        A[:, v, 0, 2] = -x0 * sx + (out_size if view.mirror else 0.0)
        A[:, v, 1, 1] = s
        A[:, v, 1, 2] = -y0 * s
    return A


def _cv_matrix(A: np.ndarray) -> np.ndarray:
    """Continuous-pixel matrix -> OpenCV's integer-centre one: u' = A (u + 0.5) - 0.5."""
    M = A.copy()
    M[:, 2] = A[:, :2] @ np.array([0.5, 0.5]) + A[:, 2] - 0.5
    return M


def warp_views(image: np.ndarray, A: np.ndarray, views, out_size: int, out: np.ndarray | None = None) -> np.ndarray:
    """Render the views of one HxWx3 uint8 image: ``A`` [V, 2, 3] from :func:`view_matrices`.
    Returns (or fills) uint8 [V, 3, out_size, out_size]. A view that shrinks by more than
    2x first area-averages the image (warpAffine alone would alias); its matrix is
    composed with that exact resize, so the geometry is unchanged."""
    if out is None:
        out = np.empty((len(views), 3, out_size, out_size), dtype=np.uint8)
    h, w = image.shape[:2]
    small = {}
    for v, view in enumerate(views):
        a = A[v]
        s = abs(a[0, 0])
        src = image
        if s < 0.5:
            key = max(1, round(w * 2 * s)), max(1, round(h * 2 * s))
            if key not in small:
                small[key] = cv2.resize(image, key, interpolation=cv2.INTER_AREA)
            src = small[key]
            a = a @ np.array([[w / key[0], 0, 0], [0, h / key[1], 0], [0, 0, 1.0]])
        warped = cv2.warpAffine(src, _cv_matrix(a), (out_size, out_size), flags=cv2.INTER_LINEAR,
                                borderMode=BORDERS[view.border], borderValue=(0, 0, 0))
        out[v] = warped.transpose(2, 0, 1)
    return out


def unmap_landmarks(landmarks: torch.Tensor, A, views, out_size: int) -> torch.Tensor:
    """View predictions [B, V, 68, 2] -> original-image pixels with the iBUG index order
    of the original image (mirror views: index swap + x -> out_size - x first, then the
    inverse crop). ``A`` [B, V, 2, 3] as from :func:`view_matrices`."""
    A = torch.as_tensor(np.asarray(A), dtype=torch.float64, device=landmarks.device)
    lm = landmarks.to(torch.float64)
    mirror = [v for v, view in enumerate(views) if view.mirror]
    if mirror:
        lm = lm.clone()
        lm[:, mirror] = mirror_landmarks(lm[:, mirror], out_size)
        # un-mirrored crop matrix: x' = out - (s x + t)  ->  s x + t = out - x'
        A = A.clone()
        A[:, mirror, 0, :] = -A[:, mirror, 0, :]
        A[:, mirror, 0, 2] += out_size
    lin, t = A[..., :2], A[..., 2]
    inv = torch.linalg.inv(lin)  # [B, V, 2, 2]
    return torch.einsum("bvij,bvpj->bvpi", inv, lm - t[:, :, None, :]).to(landmarks.dtype)


def unmap_poses(poses: torch.Tensor, views) -> torch.Tensor:
    """View poses [B, V, 3] -> original image: crops and shifts keep the pose (orthographic
    camera); a mirrored view's pose gets yaw and roll negated."""
    mirror = [v for v, view in enumerate(views) if view.mirror]
    if not mirror:
        return poses
    out = poses.clone()
    out[:, mirror] = mirror_pose(poses[:, mirror])
    return out


def map_landmarks(landmarks: torch.Tensor, A, views, out_size: int) -> torch.Tensor:
    """Original landmarks [B, 68, 2] -> each view [B, V, 68, 2] (the forward map; with the
    mirror index swap), as a network that sees the view would ideally predict them."""
    A = torch.as_tensor(np.asarray(A), dtype=torch.float64, device=landmarks.device)
    lm = landmarks.to(torch.float64)
    out = torch.einsum("bvij,bpj->bvpi", A[..., :2], lm) + A[..., 2][:, :, None, :]
    mirror = [v for v, view in enumerate(views) if view.mirror]
    if mirror:
        out[:, mirror] = out[:, mirror][..., list(MIRROR_68), :]
    return out.to(landmarks.dtype)
