"""The crop a net sees: pyface's face-area convention, from a detector box or from
landmarks, and the framing a checkpoint was trained with.

pyface defines every face crop on the **face box**, the square bounding box of the 68
landmarks (:func:`pyface.data.transforms.face_box`: centre of the landmarks' box, side
its longer edge). Training crops it with ``RandomFaceCrop(min_area, max_area)`` /
``CenterFaceCrop(area)`` -- a square of ``area`` times the face box area centred on it --
and the labeler's views are the same square crops (:mod:`pyface.label.views`, a view of
``scale`` = sqrt(area)). The analyzer uses exactly those warps
(:func:`pyface.label.views.view_matrices` / ``warp_views`` / ``unmap_landmarks``): a
detection gives a first face box (the detector's calibration,
:func:`pyface.analyze.detectors.face_box`), the net's landmarks give the exact one for
a second pass.

The area a net expects (:func:`training_crop_area`) is, in order: given explicitly;
the mean ``(input side / face box side)^2`` over samples of the run's own training data
(``data.train`` of its configuration, after its transforms, samples with landmarks
only); otherwise :data:`DEFAULT_CROP_AREA`.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch

from pyface.label import views as V

__all__ = ["DEFAULT_CROP_AREA", "crop_faces", "face_box_from_landmarks", "training_crop_area", "unmap"]

#: The framing of 112 x 112 aligned face-recognition crops (the paper's MTL training
#: data): the same constant as ``pyface label identities --face-crop-area``.
DEFAULT_CROP_AREA = 2.0
#: Training samples measured for the framing.
FRAMING_SAMPLES = 64


def face_box_from_landmarks(landmarks: np.ndarray) -> np.ndarray:
    """[K, 68, 2] -> [K, 3] ``(cx, cy, side)``: :func:`pyface.data.transforms.face_box`
    for a batch (side at least 1 pixel)."""
    lm = np.asarray(landmarks, np.float64).reshape(-1, 68, 2)
    lo, hi = lm.min(1), lm.max(1)
    c = (lo + hi) / 2
    return np.concatenate([c, np.maximum((hi - lo).max(1, keepdims=True), 1.0)], 1)


def crop_faces(image: np.ndarray, boxes: np.ndarray, area: float, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Square crops of ``area`` times each face box's area, centred on it, resized to
    ``size`` (black outside the image): uint8 [K, 3, size, size] and the crop matrices
    [K, 2, 3] (image pixels -> crop pixels) for :func:`unmap`."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 3)
    view = (V.View(math.sqrt(area)),)
    A = V.view_matrices(boxes, view, size)  # [K, 1, 2, 3]
    out = np.empty((len(boxes), 3, size, size), np.uint8)
    for k in range(len(boxes)):
        V.warp_views(image, A[k], view, size, out=out[k:k + 1])
    return out, A[:, 0]


def unmap(landmarks: np.ndarray, A: np.ndarray, size: int) -> np.ndarray:
    """Crop-pixel points [K, P, 2] -> image pixels through the matrices of :func:`crop_faces`."""
    lm = torch.from_numpy(np.asarray(landmarks, np.float64))[:, None]
    return V.unmap_landmarks(lm, np.asarray(A)[:, None], (V.View(),), size)[:, 0].numpy()


def _run_config(checkpoint: str | os.PathLike) -> dict | None:
    """The training configuration of the run a checkpoint belongs to: ``config`` in a
    training checkpoint, else ``config.yaml`` beside ``model.pt`` (or one folder up from
    ``checkpoints/last.pt``)."""
    from pyface import runtime

    p = Path(checkpoint)
    try:
        st = runtime.read_checkpoint(runtime.find_checkpoint(p))
    except Exception:  # noqa: BLE001 - an unreadable file is reported by the loader, not here
        st = {}
    if isinstance(st.get("config"), dict):
        return st["config"]
    folder = p if p.is_dir() else p.parent
    for cand in (folder / "config.yaml", folder.parent / "config.yaml"):
        if cand.is_file():
            import yaml

            try:
                cfg = yaml.safe_load(cand.read_text())
            except (OSError, yaml.YAMLError):
                return None
            return cfg if isinstance(cfg, dict) else None
    return None


def training_crop_area(checkpoint: str | os.PathLike | None, input_size: int,
                       samples: int = FRAMING_SAMPLES) -> tuple[float, str]:
    """(area, how it was found) for a checkpoint (module docstring). The training data are
    opened with their configured transforms; a dataset that cannot be opened here (moved,
    another machine), a placeholder, or samples without landmarks leave the default."""
    if checkpoint is None:
        return DEFAULT_CROP_AREA, "default (no checkpoint file)"
    cfg = _run_config(checkpoint)
    spec = ((cfg or {}).get("data") or {}).get("train")
    if spec is None or (isinstance(spec, str) and spec.startswith("<")):
        return DEFAULT_CROP_AREA, "default (the run's training data are not on record)"
    from pyface.data import open_dataset

    try:
        ds = open_dataset(spec, what="data.train")
        n = len(ds)
        areas = []
        for i in np.linspace(0, n - 1, min(samples, n)).round().astype(int):
            s = ds[int(i)]
            lm = s["landmarks"]
            if not bool(torch.isfinite(lm).all()):
                continue
            side = float(face_box_from_landmarks(lm.numpy())[0, 2])
            h, w = s["image"].shape[1:]
            # the net sees the image resized to input_size: the framing is relative
            areas.append((min(h, w) / side) ** 2)
    except Exception as exc:  # noqa: BLE001 - any failure to read the training data means "not on record"
        return DEFAULT_CROP_AREA, f"default (the training data could not be read here: {type(exc).__name__})"
    if not areas:
        return DEFAULT_CROP_AREA, "default (the training data have no landmarks)"
    return float(np.mean(areas)), f"measured on the run's data.train ({len(areas)} samples)"
