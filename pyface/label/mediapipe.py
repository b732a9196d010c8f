"""MediaPipe's face mesh as a landmark sampler of Algorithm 1 (l. 8-9, Fig. 5).

The legacy face mesh (``mediapipe.solutions.face_mesh``, ``static_image_mode=True``,
468 vertices; only mediapipe <= 0.10.21 ships its model in the wheel) runs on every
view; its vertices are mapped to the iBUG 68 points by an index map: a list of 68 lists
of vertex indices, each point the mean of its vertices.

- Default map: :data:`pyface.data_files.mediapipe_68.MP_TO_IBUG68` (the published
  MediaPipe -> dlib correspondence, also the source of pyface's mean 3D face).
- ``pyface label fit-index-map`` learns a map as the paper does: for each of the 68
  points, the MediaPipe vertex whose position is on average (over a calibration set,
  distances in face sizes) closest to the landmark net's prediction
  (:func:`fit_index_map`), written as JSON.

MediaPipe is an optional extra (``pip install "pyface-mtl[label]"``, which pins the
numpy 1.x-compatible versions of pyface's other dependencies; see pyproject.toml).
"""
from __future__ import annotations

import json
import os
import warnings

import numpy as np

from pyface.data_files.mediapipe_68 import MP_TO_IBUG68
from pyface.io import write_json_atomic

__all__ = ["available", "why_unavailable", "warn_once", "FaceMesh68", "to68", "fit_index_map", "load_index_map",
           "save_index_map", "NUM_MESH"]

NUM_MESH = 468
_WARNED = False


def _import():
    import mediapipe as mp

    return mp.solutions.face_mesh


def why_unavailable(solution: str = "face_mesh") -> str | None:
    """None when MediaPipe's legacy ``solutions.<solution>`` (face_mesh, face_detection)
    can be used, else the reason."""
    try:
        import mediapipe as mp

        getattr(mp.solutions, solution)
    except ImportError as exc:
        return f"mediapipe is not installed ({exc})"
    except AttributeError:
        return f"this mediapipe has no legacy solutions.{solution} (needs mediapipe <= 0.10.21)"
    except Exception as exc:  # noqa: BLE001 - a broken install (numpy ABI, protobuf) is 'unavailable'
        return f"mediapipe does not import: {type(exc).__name__}: {exc}"
    return None


def available() -> bool:
    return why_unavailable() is None


def warn_once() -> None:
    global _WARNED
    if not _WARNED:
        _WARNED = True
        warnings.warn(f"MediaPipe unavailable ({why_unavailable()}); labeling with the net only. "
                      'Install it with pip install "pyface-mtl[label]".', RuntimeWarning, stacklevel=3)


def _check_map(index_map) -> list[list[int]]:
    m = [[int(v) for v in (p if isinstance(p, (list, tuple)) else [p])] for p in index_map]
    if len(m) != 68 or any(not p or any(not 0 <= v < NUM_MESH for v in p) for p in m):
        raise ValueError(f"index_map must list 68 points, each one or more vertex indices in [0, {NUM_MESH})")
    return m


def load_index_map(path: str | os.PathLike) -> list[list[int]]:
    with open(path) as f:
        d = json.load(f)
    return _check_map(d["index_map"] if isinstance(d, dict) else d)


def save_index_map(path: str | os.PathLike, index_map, meta: dict | None = None) -> None:
    write_json_atomic(path, {"index_map": _check_map(index_map), **(meta or {})}, indent=1, sort_keys=False)


def to68(mesh: np.ndarray, index_map=None) -> np.ndarray:
    """[..., 468, 2] -> [..., 68, 2] (each point the mean of its mapped vertices)."""
    m = _check_map(MP_TO_IBUG68 if index_map is None else index_map)
    mesh = np.asarray(mesh)
    return np.stack([mesh[..., p, :].mean(-2) for p in m], -2)


def fit_index_map(mesh: np.ndarray, net68: np.ndarray, face_size: np.ndarray | None = None) -> list[list[int]]:
    """The paper's index matching: for each iBUG point k, the vertex v minimising the mean
    over calibration samples of |mesh[v] - net68[k]| / face size.

    mesh [M, 468, 2], net68 [M, 68, 2] in the same pixels; samples with any non-finite
    value are skipped; face_size [M] (default: sqrt(w * h) of net68's bounding box)."""
    mesh, net68 = np.asarray(mesh, np.float64), np.asarray(net68, np.float64)
    if mesh.ndim != 3 or mesh.shape[1:] != (NUM_MESH, 2) or net68.shape != (len(mesh), 68, 2):
        raise ValueError(f"need mesh [M, 468, 2] and net68 [M, 68, 2], got {mesh.shape} and {net68.shape}")
    ok = np.isfinite(mesh).all((1, 2)) & np.isfinite(net68).all((1, 2))
    if not ok.any():
        raise ValueError("fit_index_map: no calibration sample with both a mesh and a net prediction")
    mesh, net68 = mesh[ok], net68[ok]
    if face_size is None:
        wh = net68.max(1) - net68.min(1)
        face_size = np.sqrt(wh[:, 0] * wh[:, 1])
    else:
        face_size = np.asarray(face_size, np.float64)[ok]
    total = np.zeros((68, NUM_MESH))
    for s in range(0, len(mesh), 256):
        d = np.linalg.norm(net68[s:s + 256, :, None, :] - mesh[s:s + 256, None, :, :], axis=-1)
        total += (d / np.maximum(face_size[s:s + 256], 1e-9)[:, None, None]).sum(0)
    return [[int(v)] for v in total.argmin(1)]


class FaceMesh68:
    """uint8 views [N, 3, S, S] RGB -> [N, 68, 2] view pixels (NaN where no face)."""

    def __init__(self, index_map=None, min_detection_confidence: float = 0.5):
        self.index_map = _check_map(MP_TO_IBUG68 if index_map is None else index_map)
        self.min_detection_confidence = float(min_detection_confidence)
        self._mesh = _import().FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=False,
                                        min_detection_confidence=self.min_detection_confidence)

    def config(self) -> dict:
        import mediapipe as mp

        return {"version": mp.__version__, "index_map": self.index_map,
                "min_detection_confidence": self.min_detection_confidence}

    def mesh468(self, views: np.ndarray) -> np.ndarray:
        views = np.asarray(views)
        n, _, h, w = views.shape
        out = np.full((n, NUM_MESH, 2), np.nan, dtype=np.float32)
        for i in range(n):
            res = self._mesh.process(np.ascontiguousarray(views[i].transpose(1, 2, 0)))
            if res.multi_face_landmarks:
                pts = res.multi_face_landmarks[0].landmark
                out[i] = np.array([(p.x * w, p.y * h) for p in pts[:NUM_MESH]], dtype=np.float32)
        return out

    def __call__(self, views: np.ndarray) -> np.ndarray:
        return to68(self.mesh468(views), self.index_map).astype(np.float32)
