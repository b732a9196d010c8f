"""BIWI Kinect Head Pose as the widely used ``.npz`` (FSA-Net's ``BIWI_noTrack.npz`` /
``BIWI_test.npz``, read by HopeNet-style and 6DRepNet test scripts): ``image``
[N, H, W, 3] uint8 face crops and ``pose`` [N, 3] degrees in (yaw, pitch, roll) order —
already pyface's order. FSA-Net built the crops with ``cv2.imread``, so they are BGR:
``channels="bgr"`` (default) converts to RGB; 6DRepNet feeds them to PIL unconverted,
which ``channels="rgb"`` reproduces. No landmarks (NaN), identity -1.
"""
from __future__ import annotations

import os
from typing import Iterable

import numpy as np

from pyface.data.base import FaceDataset
from pyface.data.sample import DataError
from pyface.data.spec import register_dataset
from pyface.io import atomic_write

__all__ = ["BIWI", "write_biwi_npz"]


@register_dataset
class BIWI(FaceDataset):
    source = "biwi"

    def __init__(self, path: str, channels: str = "bgr", transform=None, on_error: str = "raise", **kw):
        super().__init__(transform=transform, on_error=on_error, **kw)
        if channels not in ("bgr", "rgb"):
            raise ValueError(f"channels must be 'bgr' or 'rgb', got {channels!r}")
        self.path, self.channels = str(path), channels
        if not os.path.isfile(self.path):
            raise FileNotFoundError(f"BIWI .npz not found: {self.path}")
        try:
            d = np.load(self.path, allow_pickle=False)
            missing = [k for k in ("image", "pose") if k not in getattr(d, "files", ())]
            if missing:
                raise DataError(f"{self.path}: no {' and no '.join(map(repr, missing))} array (a BIWI .npz holds "
                                f"'image' and 'pose'; this one holds {sorted(getattr(d, 'files', []))})")
            images, pose = d["image"], d["pose"]
        except DataError:
            raise
        except Exception as exc:  # zipfile/pickle errors of a file that is not an .npz
            raise DataError(f"{self.path}: not a readable .npz ({exc})") from exc
        if images.ndim != 4 or images.shape[3] != 3 or images.dtype != np.uint8:
            raise DataError(f"{self.path}: 'image' must be uint8 [N, H, W, 3], got {images.dtype} {images.shape}")
        pose = np.asarray(pose, dtype=np.float64)
        if pose.shape != (len(images), 3):
            raise DataError(f"{self.path}: 'pose' must be [{len(images)}, 3], got {pose.shape}")
        self.images, self.pose = images, pose

    def __len__(self) -> int:
        return len(self.images)

    def describe(self, i: int) -> str:
        return f"{self.path}[{i}]"

    def _load(self, i: int):
        img = self.images[i]
        if self.channels == "bgr":
            img = img[:, :, ::-1]
        return np.ascontiguousarray(img), None, self.pose[i].astype(np.float32), -1


def write_biwi_npz(path: str, samples: Iterable[dict]) -> int:
    """Write contract samples (equal image sizes) as a BIWI-style .npz (BGR images,
    (yaw, pitch, roll) degrees), atomically. Returns the number written."""
    imgs, poses = [], []
    for s in samples:
        imgs.append(s["image"].permute(1, 2, 0).numpy()[:, :, ::-1])
        poses.append(s["pose"].numpy())
    with atomic_write(path, "wb") as f:  # a file object: np.savez would append ".npz" to a name
        np.savez(f, image=np.stack(imgs).astype(np.uint8), pose=np.stack(poses).astype(np.float32))
    return len(imgs)
