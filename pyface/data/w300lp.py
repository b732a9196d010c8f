"""300W-LP reader (Zhu et al. 2016) and a writer of the same layout for tests.

Layout: ``root/<SUBSET>/<name>.jpg`` + ``<name>.mat`` with ``Pose_Para`` (1x7: pitch,
yaw, roll in radians, tx, ty, tz, scale) and ``pt2d`` (2x68, MATLAB 1-based pixels),
``root/<SUBSET>_Flip/`` the mirrored images, ``root/landmarks/<SUBSET>/<name>_pts.mat``
with ``pts_2d`` and ``pts_3d`` (68x2; pts_3d are the projected 3D landmarks, including
self-occluded ones). SUBSETs: AFW, HELEN, IBUG, LFPW.

Which 68 points (``landmarks``): "3d" (default) the projected 3D landmarks -- ``pt3d_68``
rows x, y of the image's .mat when it has one (some repackagings), else ``pts_3d`` of the
landmarks folder -- the points AFLW2000-3D scores (``pt3d_68``, the 3DDFA protocol of
Lee et al.'s Table 7), so the paper's recipes train on them; "2d" the visible-contour
``pt2d`` of the image's .mat (HopeNet's crop box; pyface's default before 0.2). The
explicit names "pt2d", "pts_2d", "pts_3d" pick one source.

Conversions (the only place they happen): pose -> (yaw, pitch, roll) degrees;
landmarks -> pyface pixels (``x - 0.5``: MATLAB puts pixel centres at 1, 2, ...;
pyface at 0.5, 1.5, ...). For ``_Flip`` images the labels are by default derived from
the unflipped file: landmarks mirrored (``x -> W - x``) with the left/right index swap,
yaw and roll negated, exactly matching the mirrored image (``flip_labels="derive"``);
``flip_labels="file"`` uses the ``_Flip`` folder's own re-fitted ``.mat`` instead
(pt2d and pose only; the landmarks folder has no ``_Flip`` entries).
"""
from __future__ import annotations

import os
from typing import Iterable, Sequence

import numpy as np

from pyface import geometry
from pyface.data.base import FaceDataset, read_image, write_image
from pyface.data.sample import DataError, mirror_landmarks, mirror_pose
from pyface.data.spec import register_dataset
from pyface.io import atomic_write

__all__ = ["W300LP", "SUBSETS", "pose_from_pose_para", "pose_para_from_pose", "write_300wlp"]

SUBSETS = ("AFW", "HELEN", "IBUG", "LFPW")
MATLAB_TO_PIXEL = -0.5
LANDMARK_KINDS = ("3d", "2d", "pt2d", "pts_2d", "pts_3d")
_ALIASES = {"2d": "pt2d"}


def pose_from_pose_para(pose_para) -> np.ndarray:
    """300W-LP ``Pose_Para`` (pitch, yaw, roll radians first) -> (yaw, pitch, roll) degrees
    (float64 numpy; the conversion itself is :func:`pyface.geometry.pose_from_pose_para`)."""
    return geometry.pose_from_pose_para(np.asarray(pose_para, dtype=np.float64).reshape(-1)[:3]).numpy()


def pose_para_from_pose(pose_deg) -> np.ndarray:
    """A 1x7 ``Pose_Para`` (translation 0, scale 1) for (yaw, pitch, roll) degrees."""
    ppr = geometry.pose_para_from_pose(np.asarray(pose_deg, dtype=np.float64).reshape(3)).numpy()
    return np.concatenate([ppr, [0.0, 0.0, 0.0, 1.0]])[None]


def _loadmat(path: str) -> dict:
    import scipy.io

    try:
        return scipy.io.loadmat(path)
    except FileNotFoundError as exc:
        raise DataError(f"{path}: label file missing") from exc
    except Exception as exc:  # scipy raises several types for corrupt files
        raise DataError(f"{path}: cannot read .mat ({exc})") from exc


def _field(mat: dict, key: str, path: str, size: int) -> np.ndarray:
    if key not in mat:
        raise DataError(f"{path}: no {key!r} in .mat")
    v = np.asarray(mat[key], dtype=np.float64)
    if v.size != size:
        raise DataError(f"{path}: {key!r} has {v.size} values, expected {size}")
    return v


@register_dataset
class W300LP(FaceDataset):
    """300W-LP: images with 68 landmarks and pose; identity unknown (-1).

    ``landmarks``: "3d" (default: the projected 3D points, image .mat ``pt3d_68`` or the
    landmarks folder's ``pts_3d``), "2d" (= "pt2d", the image .mat's), "pts_2d" or "pts_3d".
    ``flip``: include the ``_Flip`` folders. ``subsets``: which of :data:`SUBSETS`.
    """

    source = "300w_lp"

    def __init__(self, root: str, subsets: Sequence[str] = SUBSETS, flip: bool = True,
                 landmarks: str = "3d", flip_labels: str = "derive", transform=None,
                 on_error: str = "raise", **kw):
        super().__init__(transform=transform, on_error=on_error, **kw)
        if landmarks not in LANDMARK_KINDS:
            raise ValueError(f"landmarks must be one of {LANDMARK_KINDS}, got {landmarks!r}")
        if flip_labels not in ("derive", "file"):
            raise ValueError(f"flip_labels must be 'derive' or 'file', got {flip_labels!r}")
        self.root, self.landmark_kind, self.flip_labels = str(root), _ALIASES.get(landmarks, landmarks), flip_labels
        if not os.path.isdir(self.root):
            raise FileNotFoundError(f"300W-LP root not found: {self.root}")
        self.items: list[tuple[str, str, bool]] = []  # (subset, name, flipped)
        for subset in subsets:
            for flipped in ((False, True) if flip else (False,)):
                d = os.path.join(self.root, subset + ("_Flip" if flipped else ""))
                if not os.path.isdir(d):
                    raise FileNotFoundError(f"300W-LP folder not found: {d} (pass subsets=/flip= to choose)")
                names = sorted(f[:-4] for f in os.listdir(d) if f.lower().endswith(".jpg"))
                self.items += [(subset, n, flipped) for n in names]
        if not self.items:
            raise FileNotFoundError(f"no 300W-LP images under {self.root}")

    def __len__(self) -> int:
        return len(self.items)

    def describe(self, i: int) -> str:
        subset, name, flipped = self.items[i]
        return os.path.join(self.root, subset + ("_Flip" if flipped else ""), name + ".jpg")

    def _labels(self, subset: str, name: str, flipped_file: bool, kind: str):
        """(landmarks in pyface pixels, pose degrees) from the files of one folder."""
        folder = os.path.join(self.root, subset + ("_Flip" if flipped_file else ""))
        mat_path = os.path.join(folder, name + ".mat")
        mat = _loadmat(mat_path)
        pose = pose_from_pose_para(_field(mat, "Pose_Para", mat_path, 7).reshape(-1)[:3])
        if kind == "pt2d":
            lm = _field(mat, "pt2d", mat_path, 136).reshape(2, 68).T
        elif kind == "3d" and "pt3d_68" in mat:
            lm = _field(mat, "pt3d_68", mat_path, 204).reshape(3, 68)[:2].T
        else:
            kind = "pts_3d" if kind == "3d" else kind
            pts_path = os.path.join(self.root, "landmarks", subset, name + "_pts.mat")
            lm = _field(_loadmat(pts_path), kind, pts_path, 136).reshape(68, 2)
        return lm + MATLAB_TO_PIXEL, pose

    def _load(self, i: int):
        subset, name, flipped = self.items[i]
        image = read_image(self.describe(i))
        kind = self.landmark_kind
        if not flipped:
            lm, pose = self._labels(subset, name, False, kind)
        elif self.flip_labels == "file" and kind == "pt2d":
            lm, pose = self._labels(subset, name, True, kind)
        else:
            lm, pose = self._labels(subset, name, False, kind)
            lm = mirror_landmarks(lm, image.shape[1])
            if self.flip_labels == "file":
                _, pose = self._labels(subset, name, True, "pt2d")
            else:
                pose = mirror_pose(pose)
        return image, lm.astype(np.float32), pose.astype(np.float32), -1


def write_mat(path: str, arrays: dict) -> None:
    """A MATLAB .mat file (scipy.io.savemat) committed atomically, unfsynced as
    :func:`~pyface.data.base.write_image` (one per image)."""
    import scipy.io

    with atomic_write(path, "wb", fsync=False) as f:
        scipy.io.savemat(f, arrays)


def write_300wlp(root: str, samples: Iterable[dict], subset: str = "AFW", quality: int = 95,
                 write_flip: bool = True, landmarks_3d: Sequence | None = None, pt3d_in_mat: bool = False) -> list[str]:
    """Write contract samples in the 300W-LP layout (``<subset>/``, ``<subset>_Flip/``
    with mirrored images and labels, ``landmarks/<subset>/*_pts.mat``). ``pt2d`` and
    ``pts_2d`` hold the sample's landmarks; ``pts_3d`` holds ``landmarks_3d[k]`` ([68, 2]
    pixels, e.g. points that differ from the 2D ones, as real 300W-LP's do) or the same
    landmarks; ``pt3d_in_mat`` also writes them as ``pt3d_68`` (z = 0) into the image's
    .mat. Returns the written names."""
    from pyface.data.transforms import hflip

    names = []
    for k, s in enumerate(samples):
        name = f"{subset}_{k:06d}_1_0"
        lm3 = (s["landmarks"] if landmarks_3d is None else landmarks_3d[k])
        lm3 = np.asarray(lm3, dtype=np.float64).reshape(68, 2) - MATLAB_TO_PIXEL
        flips = [(subset, s)] + ([(subset + "_Flip", hflip(s))] if write_flip else [])
        for folder, smp in flips:
            d = os.path.join(root, folder)
            os.makedirs(d, exist_ok=True)
            write_image(os.path.join(d, name + ".jpg"), smp["image"].permute(1, 2, 0).numpy(), quality)
            lm = smp["landmarks"].numpy().astype(np.float64) - MATLAB_TO_PIXEL
            arrays = {"Pose_Para": pose_para_from_pose(smp["pose"].numpy()), "pt2d": lm.T, "roi": np.zeros((1, 4))}
            if pt3d_in_mat and folder == subset:
                arrays["pt3d_68"] = np.concatenate([lm3.T, np.zeros((1, 68))], 0)
            write_mat(os.path.join(d, name + ".mat"), arrays)
        lmd = os.path.join(root, "landmarks", subset)
        os.makedirs(lmd, exist_ok=True)
        lm = s["landmarks"].numpy().astype(np.float64) - MATLAB_TO_PIXEL
        write_mat(os.path.join(lmd, name + "_pts.mat"), {"pts_2d": lm, "pts_3d": lm3})
        names.append(name)
    return names
