"""Head pose from any 68 landmarks: a PnP fit of pyface's mean 3D face.

MediaPipe's face mesh (and any 68-point detector) gives points but no pose;
:func:`pose_from_landmarks` fits the mean 3D face (:func:`pyface.geometry.default_mean_shape`,
image axes, cm) to the points with OpenCV (``cv2.SOLVEPNP_SQPNP`` -- a global solver,
no initial guess, so no local minimum -- then Levenberg-Marquardt on the reprojection
error) and returns the rotation in pyface's Euler convention (:mod:`pyface.geometry`:
(yaw, pitch, roll) degrees, R = Rx(-pitch) Ry(yaw) Rz(roll)). The mean shape is in
image axes like OpenCV's camera frame (x right, y down, z away from the camera), so
the fitted rotation *is* pyface's R.

Camera: by default a weak-perspective (scaled orthographic) camera -- the projection of
pyface's pose labels (300W-LP / AFLW2000-3D, SyntheticFaces) and so of every net trained
on them: the fit uses a pinhole camera whose focal length is 30 face sizes, centred on
the face, which makes the face's depth 3 % of its distance (the rotation of an
orthographic fit to within ~0.05 degrees on the synthetic faces). With ``camera`` (a
focal length in pixels, principal point at the image centre, or a 3 x 3 intrinsic
matrix) the fit is perspective: the head's rotation in that camera's frame, which for a
face away from the image centre differs from its apparent (weak-perspective) pose by
the angle of its viewing ray.

Accuracy (python_tests/test_analyze.py): on 400 SyntheticFaces' exact landmarks (yaw
U(-65, 65), pitch U(-30, 30), roll U(-25, 25), per-identity face shapes) the mean
absolute error is 1.98 / 1.92 / 0.64 degrees (yaw / pitch / roll; 95th percentiles 4.7 /
5.2 / 2.0); the error comes from the identities' shapes differing from the mean face.
"""
from __future__ import annotations

import cv2
import numpy as np

__all__ = ["WEAK_PERSPECTIVE_FACES", "pose_from_landmarks"]

#: Focal length of the weak-perspective fit, in face sizes (see the module docstring).
WEAK_PERSPECTIVE_FACES = 30.0


def _mean_shape(mean_shape) -> np.ndarray:
    if mean_shape is None:
        from pyface.geometry import default_mean_shape

        return default_mean_shape().double().numpy()
    X = np.asarray(mean_shape.detach().cpu().numpy() if hasattr(mean_shape, "detach") else mean_shape, np.float64)
    if X.shape != (68, 3) or not np.isfinite(X).all():
        raise ValueError(f"mean_shape must be a finite [68, 3] array (image axes), got shape {X.shape}")
    return X


def _camera(camera, image_size, centre: np.ndarray, face: float) -> np.ndarray:
    if camera is None:
        f = WEAK_PERSPECTIVE_FACES * face
        return np.array([[f, 0, centre[0]], [0, f, centre[1]], [0, 0, 1.0]])
    K = np.asarray(camera, np.float64)
    if K.shape == (3, 3):
        return K
    if K.shape == () and np.isfinite(K) and K > 0:
        if image_size is None:
            raise ValueError("pose_from_landmarks: a focal length needs image_size (height, width) for the "
                             "principal point")
        h, w = image_size
        return np.array([[float(K), 0, w / 2.0], [0, float(K), h / 2.0], [0, 0, 1.0]])
    raise ValueError(f"camera must be None (weak perspective), a focal length in pixels > 0 or a 3x3 matrix, "
                     f"got {camera!r}")


def _fit_one(pts: np.ndarray, X: np.ndarray, camera, image_size) -> np.ndarray:
    from pyface.geometry import matrix_to_euler

    lo, hi = pts.min(0), pts.max(0)
    face = float(np.sqrt(max((hi[0] - lo[0]) * (hi[1] - lo[1]), 1e-12)))
    K = _camera(camera, image_size, (lo + hi) / 2, face)
    ok, rvec, tvec = cv2.solvePnP(X, pts, K, None, flags=cv2.SOLVEPNP_SQPNP)
    if not ok:
        return np.full(3, np.nan)
    rvec, tvec = cv2.solvePnPRefineLM(X, pts, K, None, rvec, tvec)
    R = cv2.Rodrigues(rvec)[0]
    if tvec[2, 0] <= 0:  # behind the camera: the mirror-image solution, not a face
        return np.full(3, np.nan)
    import torch

    return matrix_to_euler(torch.from_numpy(R)).numpy()


def pose_from_landmarks(landmarks, image_size=None, *, camera=None, mean_shape=None) -> np.ndarray:
    """(yaw, pitch, roll) degrees of the head whose iBUG-68 points are ``landmarks``.

    ``landmarks``: [68, 2] or [N, 68, 2] pixels (any image; a face with a non-finite
    point, or points spanning no area, gets NaN). ``image_size``: (height, width), only
    needed with a focal-length ``camera``. ``camera``: None (weak perspective, the
    default: module docstring), a focal length in pixels, or a 3 x 3 intrinsic matrix.
    ``mean_shape``: the 3D face [68, 3] (image axes; default pyface's mean face).
    Returns float64 [3] or [N, 3]."""
    L = np.asarray(landmarks.detach().cpu().numpy() if hasattr(landmarks, "detach") else landmarks, np.float64)
    if L.ndim not in (2, 3) or L.shape[-2:] != (68, 2):
        raise ValueError(f"landmarks must be [68, 2] or [N, 68, 2] pixels, got shape {L.shape}")
    X = _mean_shape(mean_shape)
    flat = L.reshape(-1, 68, 2)
    out = np.full((len(flat), 3), np.nan)
    for i, pts in enumerate(flat):
        span = pts.max(0) - pts.min(0) if np.isfinite(pts).all() else np.zeros(2)
        if (span > 0).all():
            out[i] = _fit_one(np.ascontiguousarray(pts), X, camera, image_size)
    return out[0] if L.ndim == 2 else out
