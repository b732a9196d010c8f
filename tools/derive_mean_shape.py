"""Regenerates pyface/data_files/mean_shape_68.py from MediaPipe's canonical face model.

Usage: python tools/derive_mean_shape.py path/to/canonical_face_model.obj > pyface/data_files/mean_shape_68.py

Source: google/mediapipe, mediapipe/modules/face_geometry/data/canonical_face_model.obj
(Apache-2.0): 468 vertices in centimetres, x to the viewer's right, y up, z towards
the viewer, the face looking along +z.

Steps:
1. 468 -> 68: each iBUG point is one MediaPipe vertex or the mean of two
   (MP_TO_IBUG68 below; the correspondence published by Peizhi Yan,
   github.com/PeizhiYan/Mediapipe_2_Dlib_Landmarks).
2. Mirror-symmetrise: point k becomes the mean of itself and the x-mirrored
   image of its left/right partner (IBUG68_FLIP); the published map is not
   exactly symmetric around the jaw (points 3/13).
3. Image axes: (x, y, z) -> (x, -y, -z), so x right, y down and z into the
   screen (right-handed); the nose tip then has the most negative z.
4. Centre at the centroid of the 68 points. Units stay centimetres.
"""
from __future__ import annotations

import sys

import numpy as np

from pyface.data_files.mediapipe_68 import MP_TO_IBUG68  # one table, shared with the labeler

IBUG68_FLIP = (list(range(16, -1, -1)) + list(range(26, 16, -1)) + [27, 28, 29, 30] + [35, 34, 33, 32, 31]
               + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]
               + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55] + [64, 63, 62, 61, 60, 67, 66, 65])


def load_obj_vertices(path: str) -> np.ndarray:
    with open(path) as f:
        v = [[float(t) for t in line.split()[1:4]] for line in f if line.startswith("v ")]
    return np.asarray(v, dtype=np.float64)


def derive(vertices: np.ndarray) -> np.ndarray:
    assert vertices.shape == (468, 3), vertices.shape
    pts = np.stack([vertices[idx].mean(axis=0) for idx in MP_TO_IBUG68])
    mirrored = pts[IBUG68_FLIP] * np.array([-1.0, 1.0, 1.0])
    pts = 0.5 * (pts + mirrored)
    pts = pts * np.array([1.0, -1.0, -1.0])
    return pts - pts.mean(axis=0)


def main() -> None:
    pts = derive(load_obj_vertices(sys.argv[1]))
    print('"""Mean 3D 68-point face shipped with pyface (data only; see tools/derive_mean_shape.py).')
    print()
    print("Derived from MediaPipe's canonical face model (canonical_face_model.obj, google/mediapipe,")
    print("Apache-2.0) through the 468->68 map of github.com/PeizhiYan/Mediapipe_2_Dlib_Landmarks,")
    print("mirror-symmetrised, in image axes (x right, y down, z into the screen: the nose tip has the")
    print("most negative z), centred at the centroid, in centimetres. iBUG 68-point order, 0-based.")
    print('"""')
    print()
    print("MEAN_SHAPE_68 = (")
    for k, p in enumerate(pts):
        print(f"    ({p[0]: .4f}, {p[1]: .4f}, {p[2]: .4f}),  # {k}")
    print(")")
    print()
    print("# Left/right partner of every iBUG point (horizontal image flip).")
    print(f"IBUG68_FLIP = {tuple(IBUG68_FLIP)}")


if __name__ == "__main__":
    main()
