"""ETH-XGaze reader (Zhang et al. 2020), head pose only, as used by Pourmirzaei et al.
(Sec. 4.1, 4.3, 5.2), and a writer of the same layout for tests.

Layout (the dataset's pre-processed release): ``root/<folder>/subjectNNNN.h5``, one HDF5
file per subject with (among others) ``face_patch`` uint8 [N, H, W, 3] (BGR, 224 x 224
normalised face crops), ``face_head_pose`` float [N, 2] (pitch, yaw) in radians, and
``face_gaze`` float [N, 2] (pitch, yaw) radians. ``folder`` is ``train`` (80 subjects
with labels) or ``test``.

Conversion (the only place it happens): pose -> (yaw, pitch, roll) degrees with roll 0.
ETH-XGaze's data normalisation rotates the virtual camera so that its x-axis is parallel
to the head's, which removes head roll from the face patches; the dataset therefore
labels only pitch and yaw, and roll 0 is the label of the normalised image. Angles keep
ETH-XGaze's signs (not converted to :mod:`pyface.geometry`'s 300W-LP convention, which
matters only when mixing datasets; the paper trains and evaluates within ETH-XGaze).

Subject split of the paper: validation subjects 108, 109, 111 (:data:`VAL_SUBJECTS`),
training on the other ``train`` subjects (``num_subjects`` takes the first n in id order,
as in the small-data experiments of Sec. 4.1 / 5.2).
"""
from __future__ import annotations

import os
import re
from typing import Sequence

import numpy as np

from pyface.data.base import FaceDataset
from pyface.data.sample import DataError
from pyface.data.spec import register_dataset
from pyface.io import atomic_path

__all__ = ["ETHXGaze", "VAL_SUBJECTS", "write_ethxgaze"]

VAL_SUBJECTS = (108, 109, 111)
_NAME = re.compile(r"^subject(\d+)\.h5$")


def _h5py():
    try:
        import h5py
    except ImportError as exc:  # an optional dependency: only this reader needs it
        raise ImportError("ETHXGaze needs h5py: pip install 'pyface-mtl[xgaze]' (or pip install h5py)") from exc
    return h5py


def _subject_files(folder: str) -> dict[int, str]:
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"ETH-XGaze folder {folder!r} does not exist")
    out = {}
    for name in os.listdir(folder):
        m = _NAME.match(name)
        if m:
            out[int(m.group(1))] = os.path.join(folder, name)
    return out


@register_dataset
class ETHXGaze(FaceDataset):
    """ETH-XGaze face patches with head pose (yaw, pitch, 0) degrees; landmarks unknown,
    identity = subject id.

    ``split``: "train" (all subjects of ``folder`` but :data:`VAL_SUBJECTS`), "val" (those
    three), or "all"; ``subjects``: explicit subject ids instead (overrides ``split``);
    ``num_subjects``: keep the first n selected subjects (by id). HDF5 files are opened
    lazily, once per process (DataLoader workers each open their own handles).
    """

    source = "eth_xgaze"

    def __init__(self, root: str, split: str = "train", subjects: Sequence[int] | None = None,
                 num_subjects: int | None = None, folder: str = "train", transform=None,
                 on_error: str = "raise", **kw):
        super().__init__(transform=transform, on_error=on_error, **kw)
        h5py = _h5py()
        files = _subject_files(os.path.join(root, folder))
        if subjects is not None:
            missing = sorted(set(int(s) for s in subjects) - set(files))
            if missing:
                raise FileNotFoundError(f"ETH-XGaze {root}/{folder}: no file for subjects {missing}")
            ids = sorted(set(int(s) for s in subjects))
        elif split == "train":
            ids = sorted(s for s in files if s not in VAL_SUBJECTS)
        elif split == "val":
            ids = sorted(s for s in files if s in VAL_SUBJECTS)
        elif split == "all":
            ids = sorted(files)
        else:
            raise ValueError(f"split must be 'train', 'val' or 'all', got {split!r}")
        if num_subjects is not None:
            if num_subjects < 1:
                raise ValueError(f"num_subjects must be >= 1, got {num_subjects}")
            ids = ids[:num_subjects]
        if not ids:
            raise ValueError(f"ETH-XGaze {root}/{folder}: no subject selected (split={split!r})")
        self.subjects = tuple(ids)
        self.paths = [files[s] for s in ids]
        counts = []
        for p in self.paths:
            try:
                with h5py.File(p, "r") as f:
                    for key in ("face_patch", "face_head_pose"):
                        if key not in f:
                            raise DataError(f"{p}: no {key!r} dataset")
                    n, pn = f["face_patch"].shape[0], f["face_head_pose"].shape
                    if f["face_patch"].ndim != 4 or f["face_patch"].shape[3] != 3:
                        raise DataError(f"{p}: face_patch has shape {f['face_patch'].shape}, expected [N, H, W, 3]")
                    if pn != (n, 2):
                        raise DataError(f"{p}: face_head_pose has shape {pn}, expected ({n}, 2)")
            except OSError as exc:
                raise DataError(f"{p}: cannot read HDF5 file ({exc})") from exc
            counts.append(n)
        self.offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self._handles: dict[int, object] = {}
        self._pid = None

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def _locate(self, i: int) -> tuple[int, int]:
        f = int(np.searchsorted(self.offsets, i, side="right")) - 1
        return f, i - int(self.offsets[f])

    def describe(self, i: int) -> str:
        f, j = self._locate(i)
        return f"{self.paths[f]}[{j}]"

    def _file(self, f: int):
        if self._pid != os.getpid():  # h5py handles must not cross a fork
            self._handles, self._pid = {}, os.getpid()
        if f not in self._handles:
            self._handles[f] = _h5py().File(self.paths[f], "r")
        return self._handles[f]

    def _load(self, i: int):
        f, j = self._locate(i)
        try:
            h5 = self._file(f)
            bgr = np.asarray(h5["face_patch"][j])
            pitch, yaw = (float(v) for v in np.asarray(h5["face_head_pose"][j], dtype=np.float64))
        except (OSError, KeyError) as exc:
            raise DataError(f"{self.describe(i)}: cannot read ({exc})") from exc
        if bgr.dtype != np.uint8:
            raise DataError(f"{self.describe(i)}: face_patch dtype {bgr.dtype}, expected uint8")
        pose = np.array([np.degrees(yaw), np.degrees(pitch), 0.0])
        return np.ascontiguousarray(bgr[:, :, ::-1]), None, pose, self.subjects[f]

    def __getstate__(self):  # DataLoader workers: never pickle open HDF5 handles
        st = dict(self.__dict__)
        st["_handles"], st["_pid"] = {}, None
        return st


def write_ethxgaze(root: str, subjects: dict[int, tuple[np.ndarray, np.ndarray]], folder: str = "train") -> list[str]:
    """Write ``root/<folder>/subjectNNNN.h5`` files in ETH-XGaze's layout from
    ``{subject: (rgb uint8 [N, H, W, 3], pose (yaw, pitch) degrees [N, 2])}`` (stored as BGR
    ``face_patch`` and (pitch, yaw) radians ``face_head_pose``, plus zero ``face_gaze``,
    ``cam_index``, ``frame_index``, like the release). Returns the paths."""
    h5py = _h5py()
    os.makedirs(os.path.join(root, folder), exist_ok=True)
    paths = []
    for s, (rgb, yaw_pitch) in sorted(subjects.items()):
        rgb = np.asarray(rgb, dtype=np.uint8)
        yp = np.asarray(yaw_pitch, dtype=np.float64).reshape(-1, 2)
        if rgb.ndim != 4 or rgb.shape[3] != 3 or len(rgb) != len(yp):
            raise ValueError(f"subject {s}: need rgb [N, H, W, 3] and pose [N, 2], got {rgb.shape}, {yp.shape}")
        p = os.path.join(root, folder, f"subject{s:04d}.h5")
        with atomic_path(p) as tmp, h5py.File(tmp, "w") as f:
            f.create_dataset("face_patch", data=rgb[..., ::-1], chunks=(1,) + rgb.shape[1:])
            f.create_dataset("face_head_pose", data=np.radians(yp[:, ::-1]).astype(np.float32))
            f.create_dataset("face_gaze", data=np.zeros((len(yp), 2), np.float32))
            f.create_dataset("cam_index", data=np.zeros((len(yp), 1), np.int32))
            f.create_dataset("frame_index", data=np.arange(len(yp), dtype=np.int32)[:, None])
        paths.append(p)
    return paths
