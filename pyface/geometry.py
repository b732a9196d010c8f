"""Head-pose geometry: the one Euler-angle convention of pyface, orthographic and
pinhole (Lee et al. Eq. 8) projection of a 3D face, the mean 3D 68-point face (shipped,
or the paper's from a 300W-LP folder, saved / loaded as JSON), and 300W-LP label helpers.

Axes are image axes: x to the right, y down, z into the screen (right-handed), the
camera looking along +z; a frontal face looks along -z (its nose tip has the most
negative z).

Pose vectors are (yaw, pitch, roll) in degrees. The rotation is

    R = Rx(-pitch) @ Ry(yaw) @ Rz(roll)

with the right-handed elementary rotations Rx(a) = [[1,0,0],[0,c,-s],[0,s,c]],
Ry(a) = [[c,0,s],[0,1,0],[-s,0,c]], Rz(a) = [[c,-s,0],[s,c,0],[0,0,1]]. A face
shape X (points as rows, [68, 3]) appears in the image, up to scale and
translation, at the x, y of R @ X[k].

This is the convention of the 300W-LP / AFLW2000-3D labels. Their ``Pose_Para[:3]``
= (pitch, yaw, roll) in radians come from 3DDFA's fitting, which places the model
(y up, z towards the viewer) with f * R3 @ X + t, R3 = Rx(pitch)^T Ry(yaw)^T Rz(roll)^T,
and then flips y to image rows. Writing that in image axes (conjugating with
diag(1, -1, -1)) gives exactly R above. HopeNet's ``draw_axis`` (the usual overlay
for these labels) draws rows 0-1 of the same matrix. Signs, as seen in the image:
  * yaw > 0: the nose turns to the image left (the subject turns to their right);
  * pitch > 0: the nose turns up (chin up);
  * roll > 0: the face rotates clockwise on screen (its image-right side goes down).

The same arithmetic runs inside the CUDA/C++ kernels (csrc/include/pyface/
geometry_math.h); tests check that the two agree.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from pyface.data_files.mean_shape_68 import IBUG68_FLIP, MEAN_SHAPE_68

__all__ = ["IBUG68_FLIP", "default_mean_shape", "euler_to_matrix", "load_mean_shape", "matrix_to_euler",
           "mean_shape_from_300wlp", "normalize_shape", "pose_from_pose_para", "pose_para_from_pose",
           "project_perspective", "project_shape", "save_mean_shape"]

NUM_LANDMARKS = 68


def _as_float_tensor(name: str, x, last: tuple[int, ...]) -> torch.Tensor:
    t = torch.as_tensor(x)
    if not t.is_floating_point():
        t = t.to(torch.get_default_dtype())
    if tuple(t.shape[t.dim() - len(last):]) != last or t.dim() < len(last):
        want = "[..., " + ", ".join(map(str, last)) + "]"
        raise ValueError(f"{name} must have shape {want}, got {list(t.shape)}")
    return t


def euler_to_matrix(pose) -> torch.Tensor:
    """Rotation matrices [..., 3, 3] from poses [..., 3] = (yaw, pitch, roll) in degrees
    (see the module docstring for the convention). Differentiable."""
    p = _as_float_tensor("pose", pose, (3,))
    r = torch.deg2rad(p)
    sy, cy = torch.sin(r[..., 0]), torch.cos(r[..., 0])
    sp, cp = torch.sin(r[..., 1]), torch.cos(r[..., 1])
    sr, cr = torch.sin(r[..., 2]), torch.cos(r[..., 2])
    # Rx(-pitch) @ Ry(yaw) @ Rz(roll), expanded (same expressions as geometry_math.h).
    rows = [
        cy * cr, -cy * sr, sy,
        cp * sr - sp * sy * cr, cp * cr + sp * sy * sr, sp * cy,
        -sp * sr - cp * sy * cr, -sp * cr + cp * sy * sr, cp * cy,
    ]
    return torch.stack(rows, dim=-1).reshape(*p.shape[:-1], 3, 3)


def matrix_to_euler(R) -> torch.Tensor:
    """Poses [..., 3] = (yaw, pitch, roll) in degrees from rotation matrices [..., 3, 3];
    the exact inverse of :func:`euler_to_matrix` for |yaw| < 90 and |pitch|, |roll| < 180."""
    m = _as_float_tensor("R", R, (3, 3))
    yaw = torch.atan2(m[..., 0, 2], torch.hypot(m[..., 0, 0], m[..., 0, 1]))
    pitch = torch.atan2(m[..., 1, 2], m[..., 2, 2])
    roll = torch.atan2(-m[..., 0, 1], m[..., 0, 0])
    return torch.rad2deg(torch.stack([yaw, pitch, roll], dim=-1))


def pose_from_pose_para(pose_para) -> torch.Tensor:
    """(yaw, pitch, roll) in degrees [..., 3] from 300W-LP / AFLW2000-3D ``Pose_Para``
    ([..., 7] or [..., 3]: pitch, yaw, roll in radians first)."""
    t = torch.as_tensor(np.asarray(pose_para, dtype=np.float64) if not isinstance(pose_para, torch.Tensor)
                        else pose_para)
    if t.shape[-1] < 3:
        raise ValueError(f"pose_para must have at least 3 entries in its last dimension, got {list(t.shape)}")
    return torch.rad2deg(torch.stack([t[..., 1], t[..., 0], t[..., 2]], dim=-1))


def pose_para_from_pose(pose) -> torch.Tensor:
    """Inverse of :func:`pose_from_pose_para`: (pitch, yaw, roll) in radians [..., 3]."""
    p = _as_float_tensor("pose", pose, (3,))
    r = torch.deg2rad(p)
    return torch.stack([r[..., 1], r[..., 0], r[..., 2]], dim=-1)


def default_mean_shape(dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """The mean 3D 68-point face shipped with pyface: [68, 3], image axes, centred, in cm.

    Derived from MediaPipe's canonical face model (see pyface/data_files/mean_shape_68.py
    and tools/derive_mean_shape.py for the source and every step)."""
    return torch.tensor(MEAN_SHAPE_68, dtype=dtype, device=device)


def project_shape(shape3d, pose) -> torch.Tensor:
    """Orthographic projection [B, 68, 2] (x, y of R @ X) of a 3D shape rotated by each pose.

    shape3d: [N, 3] (shared) or [B, N, 3]; pose: [B, 3] (yaw, pitch, roll) degrees, or [3].
    No scale or translation is applied (the shape's own units and origin)."""
    X = _as_float_tensor("shape3d", shape3d, (3,))
    R = euler_to_matrix(torch.as_tensor(pose, device=X.device).to(X.dtype))
    if X.dim() == 2:
        return torch.einsum("...ij,nj->...ni", R[..., :2, :], X)
    return torch.einsum("...ij,...nj->...ni", R[..., :2, :], X)


def project_perspective(shape3d, pose, *, fx: float, fy: float, cx: float, cy: float,
                        distance: float) -> torch.Tensor:
    """Eq. 8 of Lee et al. as a pinhole camera: [B, N, 2] pixels of R @ X for each pose.

    The rotated shape X' = R @ X (image axes, centred at the shape's origin) sits
    ``distance`` (the shape's units) in front of a camera looking along +z:
    ``x = fx * x' / (z' + distance) + cx``, ``y = fy * y' / (z' + distance) + cy``. The
    literal 2 x 3 matrix of Eq. 8, ``[[fx, 0, cx], [0, fy, cy]] @ X'``, omits the division
    by depth (its cx * z' term shears the face by its depth); docs/papers.md discusses
    both. As ``distance`` grows this tends to :func:`project_shape` up to scale and shift.
    shape3d: [N, 3] or [B, N, 3]; pose: [B, 3] or [3] (yaw, pitch, roll) degrees."""
    X = _as_float_tensor("shape3d", shape3d, (3,))
    R = euler_to_matrix(torch.as_tensor(pose, device=X.device).to(X.dtype))
    Xr = torch.einsum("...ij,nj->...ni", R, X) if X.dim() == 2 else torch.einsum("...ij,...nj->...ni", R, X)
    depth = Xr[..., 2] + float(distance)
    if bool((depth <= 0).any()):
        raise ValueError(f"distance {distance} puts points of the shape behind the camera (need z' + distance > 0)")
    return torch.stack([fx * Xr[..., 0] / depth + cx, fy * Xr[..., 1] / depth + cy], dim=-1)


def normalize_shape(shape: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """N(shape): centred at its centroid and divided by its Frobenius norm ([..., N, D])."""
    c = shape - shape.mean(dim=-2, keepdim=True)
    return c / c.flatten(-2).norm(dim=-1).clamp_min(eps)[..., None, None]


# --------------------------------------------------------------------------- 300W-LP


def _load_landmarks(mat_path: Path) -> np.ndarray | None:
    """[68, 2] image landmarks of a 300W-LP sample: the projected 3D landmarks
    (landmarks/<subset>/<stem>_pts.mat, ``pts_3d``) when present, else ``pt2d``/``pt3d_68``
    from the sample's own .mat."""
    from scipy.io import loadmat

    root = mat_path.parent.parent
    side = root / "landmarks" / mat_path.parent.name / f"{mat_path.stem}_pts.mat"
    if side.is_file():
        d = loadmat(side)
        if "pts_3d" in d:
            return np.asarray(d["pts_3d"], dtype=np.float64).reshape(68, 2)
    d = loadmat(mat_path)
    for key in ("pt3d_68", "pt2d"):
        if key in d:
            a = np.asarray(d[key], dtype=np.float64)
            a = a if a.shape[0] == 68 else a.T
            return a[:, :2]
    return None


def mean_shape_from_300wlp(root: str | os.PathLike, *, max_angle_deg: float = 20.0, max_samples: int | None = None,
                           iters: int = 20, flips: bool = False, return_samples: bool = False):
    """The paper's mean 3D face: the mean 3D landmarks of the 300W-LP samples whose
    |yaw|, |pitch| and |roll| are all below ``max_angle_deg``, aligned for scale and
    translation. Returns float64 [68, 3] in image axes, centred, scaled to the Frobenius
    norm of :func:`default_mean_shape` (so the two are interchangeable).

    300W-LP ships 2D projections of the 3D landmarks plus the pose of each fit, so the
    shape X is the least-squares solution of p_i = s_i * (R_i @ X^T)[:2]^T + t_i over the
    selected samples (known R_i from Pose_Para; s_i, t_i re-fitted each iteration,
    alternating). Depth (z) is identified by the pose spread inside the window: a window
    near 0 degrees leaves z poorly determined, hence the default of 20 degrees.
    ``root`` holds the subset folders (AFW, HELEN, IBUG, LFPW, ...) of ``<image>.mat``
    files; ``*_Flip`` folders are skipped unless ``flips``. Needs scipy. With
    ``return_samples``: (shape, number of samples used). ``pyface data mean-shape`` writes
    it for ``tasks.fld.mean_shape``.
    """
    try:
        from scipy.io import loadmat
    except ImportError as exc:  # pragma: no cover
        raise ImportError("mean_shape_from_300wlp needs scipy (pip install scipy)") from exc
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"root {str(root)!r} is not a directory")
    files = sorted(p for p in root.glob("*/*.mat")
                   if p.parent.name != "landmarks" and not p.stem.endswith("_pts")
                   and (flips or not p.parent.name.endswith("_Flip")))
    pts, rots = [], []
    for f in files:
        d = loadmat(f)
        if "Pose_Para" not in d:
            continue
        pose = pose_from_pose_para(np.asarray(d["Pose_Para"], dtype=np.float64).reshape(-1))
        if bool((pose.abs() >= max_angle_deg).any()):
            continue
        lm = _load_landmarks(f)
        if lm is None:
            continue
        pts.append(lm)
        rots.append(euler_to_matrix(pose.to(torch.float64)).numpy())
        if max_samples is not None and len(pts) >= max_samples:
            break
    if len(pts) < 2:
        raise ValueError(f"found {len(pts)} 300W-LP samples under {str(root)!r} with |angles| < {max_angle_deg}; "
                         "need at least 2")
    P = np.stack(pts)  # [M, 68, 2]
    A = np.stack(rots)[:, :2, :]  # [M, 2, 3]
    X = default_mean_shape(torch.float64).numpy()
    target_norm = np.linalg.norm(X)
    for _ in range(iters):
        proj = np.einsum("mij,nj->mni", A, X)  # [M, 68, 2]
        pc = proj - proj.mean(axis=1, keepdims=True)
        qc = P - P.mean(axis=1, keepdims=True)
        s = (pc * qc).sum(axis=(1, 2)) / np.maximum((pc * pc).sum(axis=(1, 2)), 1e-12)
        t = P.mean(axis=1) - s[:, None] * proj.mean(axis=1)  # [M, 2]
        # Normal equations per point: sum_i s_i^2 A_i^T A_i X_k = sum_i s_i A_i^T (p_ik - t_i).
        lhs = np.einsum("m,mji,mjk->ik", s * s, A, A)
        rhs = np.einsum("m,mji,mnj->ni", s, A, P - t[:, None, :])
        X = np.linalg.solve(lhs, rhs.T).T
        X = X - X.mean(axis=0)
        X = X * (target_norm / np.linalg.norm(X))
    return (torch.from_numpy(X), len(pts)) if return_samples else torch.from_numpy(X)


# --------------------------------------------------------------------------- mean-shape files
MEAN_SHAPE_FORMAT = "pyface.mean_shape/1"


def save_mean_shape(path: str | os.PathLike, shape, **meta) -> Path:
    """Write a [68, 3] mean 3D face (image axes) as JSON (atomic), with ``meta`` (e.g. its
    source folder, sample count, angle window) beside it; read it with :func:`load_mean_shape`."""
    import json

    from pyface.io import write_text_atomic

    a = np.asarray(shape, dtype=np.float64)
    if a.shape != (NUM_LANDMARKS, 3) or not np.isfinite(a).all():
        raise ValueError(f"shape must be a finite [{NUM_LANDMARKS}, 3] array, got {a.shape}")
    head = {"format": MEAN_SHAPE_FORMAT, "axes": "image: x right, y down, z into the screen",
            "order": "iBUG 68, 0-based", **meta}
    lines = [f" {json.dumps(k)}: {json.dumps(v, default=str)}," for k, v in head.items()]
    rows = ",\n".join(f"  [{x:.6f}, {y:.6f}, {z:.6f}]" for x, y, z in a)  # one point per line
    return Path(write_text_atomic(path, "{\n" + "\n".join(lines) + '\n "mean_shape_68": [\n' + rows + "\n ]\n}\n"))


def load_mean_shape(path: str | os.PathLike, *, what: str = "mean_shape") -> torch.Tensor:
    """A [68, 3] float64 mean 3D face from a file of :func:`save_mean_shape` (``pyface data
    mean-shape``). Errors are :class:`~pyface.errors.ConfigError` naming ``what`` and the file."""
    import json

    from pyface.errors import ConfigError

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{what}: {str(p)!r} does not exist (write one with `pyface data mean-shape`)")
    try:
        doc = json.loads(p.read_text())
        a = np.asarray(doc["mean_shape_68"], dtype=np.float64)
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{what}: {str(p)!r} is not a mean-shape file of `pyface data mean-shape` ({exc})") from exc
    if a.shape != (NUM_LANDMARKS, 3) or not np.isfinite(a).all():
        raise ConfigError(f"{what}: {str(p)!r} must hold a finite [{NUM_LANDMARKS}, 3] mean_shape_68, got {a.shape}")
    return torch.from_numpy(a)
