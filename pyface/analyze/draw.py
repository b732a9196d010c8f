"""Annotated pictures: box and score, the 68 landmarks, and the head's axes.

The axes are the columns of the pose's rotation (:func:`pyface.geometry.euler_to_matrix`;
x red: the face's left-to-right, y green: downwards, z blue: into the picture for a
frontal face -- the overlay of HopeNet's ``draw_axis`` and
:func:`pyface.train.plots.plot_prediction_grid`), drawn from the nose tip.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

__all__ = ["draw_faces"]

_AXES = ((255, 0, 0), (0, 200, 0), (40, 80, 255))  # RGB


def draw_faces(image: np.ndarray, faces, *, scale: float = 1.0) -> np.ndarray:
    """A copy of the HxWx3 uint8 RGB ``image`` with ``faces`` (:class:`pyface.analyze.Face`)
    drawn on it; ``scale``: image pixels per face-coordinate pixel (for a reduced copy)."""
    from pyface.geometry import euler_to_matrix

    out = np.ascontiguousarray(image.copy())
    h, w = out.shape[:2]
    t = max(1, round(max(h, w) / 400))
    for f in faces:
        x0, y0, x1, y1 = (np.asarray(f.box) / scale).tolist()
        side = max(x1 - x0, y1 - y0)
        cv2.rectangle(out, (round(x0), round(y0)), (round(x1), round(y1)), (255, 220, 0), t, cv2.LINE_AA)
        cv2.putText(out, f"{f.score:.2f}", (round(x0), max(0, round(y0) - 3)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.4 * t, (255, 220, 0), max(1, t // 2), cv2.LINE_AA)
        centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
        if f.landmarks is not None:
            lm = np.asarray(f.landmarks) / scale
            for x, y in lm:
                cv2.circle(out, (round(x), round(y)), t, (255, 255, 0), -1, cv2.LINE_AA)
            centre = lm[30]
        if f.pose is not None:
            R = euler_to_matrix(torch.as_tensor(np.asarray(f.pose, np.float64)[None]))[0].numpy()
            length = 0.5 * side
            for j, col in enumerate(_AXES):
                tip = centre + R[:2, j] * length
                cv2.arrowedLine(out, (round(centre[0]), round(centre[1])), (round(tip[0]), round(tip[1])), col,
                                t + 1, cv2.LINE_AA, tipLength=0.15)
            yaw, pitch, roll = f.pose
            cv2.putText(out, f"y{yaw:.0f} p{pitch:.0f} r{roll:.0f}", (round(x0), min(h - 2, round(y1) + 12 * t)),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.4 * t, (255, 220, 0), max(1, t // 2), cv2.LINE_AA)
    return out
