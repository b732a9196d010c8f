"""Five-point similarity alignment to the ArcFace 112x112 template (insightface
``eval_ijbc.py`` ``Embedding.get``: skimage ``SimilarityTransform.estimate`` = Umeyama's
least-squares similarity, then ``cv2.warpAffine`` with black borders).

Points are in OpenCV's pixel-centre-at-integer coordinates, as in the IJB-C
``ijbc_name_5pts_score.txt`` file and insightface. For an output size other than 112 the
template is scaled by ``size / 112`` (pyface models may have smaller inputs).
"""
from __future__ import annotations

import cv2
import numpy as np

__all__ = ["ARCFACE_TEMPLATE", "umeyama", "align_face", "five_points_from_68"]

#: left eye, right eye, nose tip, left and right mouth corner in a 112x112 crop
ARCFACE_TEMPLATE = np.array([[30.2946, 51.6963], [65.5318, 51.5014], [48.0252, 71.7366],
                             [33.5493, 92.3655], [62.7299, 92.2041]], dtype=np.float64) + np.array([8.0, 0.0])


def umeyama(src, dst) -> np.ndarray:
    """2x3 similarity (rotation, uniform scale, translation) minimising the squared
    distances from the mapped ``src`` [K, 2] to ``dst`` [K, 2] (Umeyama 1991, with the
    reflection correction), as skimage's ``SimilarityTransform.estimate``."""
    s, d = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    if s.shape != d.shape or s.ndim != 2 or s.shape[1] != 2 or len(s) < 2:
        raise ValueError(f"src and dst must both be [K >= 2, 2], got {s.shape} and {d.shape}")
    ms, md = s.mean(0), d.mean(0)
    sc, dc = s - ms, d - md
    cov = dc.T @ sc / len(s)
    u, sig, vt = np.linalg.svd(cov)
    e = np.eye(2)
    if np.linalg.det(cov) < 0:
        e[1, 1] = -1
    r = u @ e @ vt
    var = (sc ** 2).sum() / len(s)
    if var == 0:
        raise ValueError("src points are all identical")
    scale = (sig * np.diag(e)).sum() / var
    t = md - scale * r @ ms
    return np.concatenate([scale * r, t[:, None]], 1)


def align_face(image: np.ndarray, points5, size: int = 112) -> np.ndarray:
    """HxWx3 image -> size x size crop aligned on the five points [5, 2]."""
    m = umeyama(np.asarray(points5, np.float64).reshape(5, 2), ARCFACE_TEMPLATE * (size / 112.0))
    return cv2.warpAffine(image, m, (size, size), borderValue=0.0)


def five_points_from_68(lm68) -> np.ndarray:
    """The five template points from iBUG-68 landmarks (eye centres from the corners
    36/39 and 42/45, nose tip 30, mouth corners 48/54), as insightface does."""
    lm = np.asarray(lm68, np.float64).reshape(68, 2)
    return np.stack([(lm[36] + lm[39]) / 2, (lm[42] + lm[45]) / 2, lm[30], lm[48], lm[54]])
