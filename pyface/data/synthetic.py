"""``SyntheticFaces``: a deterministic, seedable generator of multi-identity face images
with exact 68 landmarks, pose and identity; the embedded default dataset and the test
fixture of the readers.

Each identity has its own 3D face (pyface's mean shape, :func:`pyface.geometry.default_mean_shape`,
deformed by per-identity offsets: face width/length, jaw, eye spacing and size, nose,
mouth, brows), skin tone, hair (colour, volume, length, hairline; or bald), eye and lip
colour, brow thickness, optional beard/moustache/glasses and a few moles. Each image
draws a pose (rotation by :func:`pyface.geometry.euler_to_matrix`), scale, shift, light
direction/ambient/colour, mouth opening and a cluttered background, then renders the
face as a Lambert-shaded triangle mesh with OpenCV (painter's algorithm, back faces
culled). The landmarks are the exact orthographic projections of the image's 68 3D
points (self-occluded ones included, as in 300W-LP).

Image ``i`` shows identity ``identity_offset + i // images_per_identity``; everything
about it is a function of ``(seed, identity)`` and ``(seed, identity, i %
images_per_identity)`` only, so two datasets with the same seed and disjoint identity
ranges (``identity_offset``) share no identity and the same population.
"""
from __future__ import annotations

import math

import cv2
import numpy as np
import torch

from pyface import geometry
from pyface.data.sample import make_sample
from pyface.data.spec import register_dataset

__all__ = ["SyntheticFaces"]

_SHIFT = 4  # OpenCV sub-pixel bits
_ONE = 1 << _SHIFT

# -- the 3D template: pyface's mean shape + forehead / head points (cm, image axes) ------
_MEAN = geometry.default_mean_shape(torch.float64).numpy()
_THETA = np.linspace(0.0, math.pi, 9)[1:-1]  # 7 points over the forehead, left to right
_JAW_TOP_Y = _MEAN[0, 1]


def _forehead(height: float) -> np.ndarray:
    """Hairline arc from above point 0 to above point 16 (7 points)."""
    c, s = np.cos(_THETA), np.sin(_THETA)
    return np.stack([-_MEAN[16, 0] * c, _JAW_TOP_Y - height * s, _MEAN[16, 2] - (_MEAN[16, 2] + 1.0) * s], 1)


def _head_top(height: float) -> np.ndarray:
    c, s = np.cos(_THETA), np.sin(_THETA)
    return np.stack([-(_MEAN[16, 0] + 0.6) * c, _JAW_TOP_Y - height * s, _MEAN[16, 2] + 0.5 - 3.5 * s], 1)


def _mesh() -> np.ndarray:
    from scipy.spatial import Delaunay

    pts = np.concatenate([_MEAN, _forehead(5.5)])[:, :2]
    tris = Delaunay(pts).simplices.astype(np.int64)
    a, b, c = pts[tris[:, 0]], pts[tris[:, 1]], pts[tris[:, 2]]
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    tris = tris[np.abs(area) > 1e-6]
    area = area[np.abs(area) > 1e-6]
    tris[area < 0] = tris[area < 0][:, [0, 2, 1]]  # all counter-clockwise (positive) frontally
    # drop triangles inside the eyes and the mouth: features are drawn there
    inner = [set(range(36, 42)), set(range(42, 48)), set(range(60, 68)), set(range(48, 60)) | set(range(60, 68))]
    keep = [not any(set(t.tolist()) <= g for g in inner) for t in tris]
    return tris[np.array(keep)]


_TRIS = _mesh()
_NOSE = set(range(27, 36))
_IS_NOSE = np.array([sum(int(v) in _NOSE for v in t) >= 2 for t in _TRIS])
_SKIN_TRIS = _TRIS[~_IS_NOSE]
_FACE_OUTLINE = np.array(list(range(17)) + list(range(68, 75)))  # jaw + forehead points

# depth of the feature groups: eyes, brows, mouth, beard anchor, moustache anchor
_GROUPS = np.zeros((7, 68))
for _g, _idx in enumerate([range(36, 42), range(42, 48), range(17, 22), range(22, 27), range(48, 60),
                           [4, 8, 12], [31, 33, 35]]):
    _GROUPS[_g, list(_idx)] = 1.0 / len(_idx)

# a fixed bank of unit Gaussian noise; an image takes a random window of it
_NOISE = np.random.default_rng(12345).standard_normal(1 << 18).astype(np.float32)

_HAIR_COLOURS = np.array([[25, 20, 18], [60, 40, 25], [110, 75, 40], [200, 165, 100], [150, 60, 25],
                          [160, 160, 160], [235, 225, 200], [80, 55, 45]], np.float64)
_EYE_COLOURS = np.array([[60, 40, 25], [90, 60, 30], [60, 110, 160], [70, 130, 90], [120, 120, 130],
                         [30, 25, 20]], np.float64)


def _skin(rng) -> np.ndarray:
    t = rng.uniform()
    light, dark = np.array([250.0, 215, 190]), np.array([85.0, 55, 40])
    return (1 - t) * light + t * dark + rng.normal(0, 8, 3)


class _Identity:
    """Per-identity 3D shape (68 points + extra points) and appearance."""

    def __init__(self, rng: np.random.Generator):
        u = rng.uniform
        x = _MEAN.copy()
        # global proportions
        x[:, 0] *= u(0.86, 1.14)
        x[:, 1] *= u(0.88, 1.12)
        x[:, 2] *= u(0.85, 1.15)
        jaw = u(0.8, 1.15)  # lower jaw width
        for k in range(17):
            w = max(0.0, min(1.0, x[k, 1] / 8.0))  # 0 above the mouth line, 1 at the chin
            x[k, 0] *= 1 + (jaw - 1) * w
        chin = u(-0.6, 0.8)  # chin length
        x[8, 1] += chin
        x[[7, 9], 1] += 0.3 * chin
        # eyes: spacing, size, height, tilt
        spacing, size, height, tilt = u(-0.6, 0.6), u(0.75, 1.3), u(-0.5, 0.5), u(-0.25, 0.25)
        for eye, sign in ((range(36, 42), -1), (range(42, 48), 1)):
            idx = list(eye)
            c = x[idx].mean(0)
            x[idx] = c + (x[idx] - c) * np.array([size, size * u(0.85, 1.25), 1.0])
            x[idx, 0] += sign * spacing
            x[idx, 1] += height + sign * tilt * (x[idx, 0] - c[0]) / 3.0
        # brows: height, arch
        bh, arch = u(-0.7, 0.5), u(-0.4, 0.5)
        for brow in (range(17, 22), range(22, 27)):
            idx = list(brow)
            x[idx, 1] += bh
            x[idx[2], 1] -= arch
        # nose: length, width, protrusion
        nl, nw, npz = u(-0.6, 0.8), u(0.75, 1.4), u(0.7, 1.35)
        x[30:36, 1] += nl
        x[29, 1] += nl * 0.6
        x[31:36, 0] *= nw
        x[27:36, 2] = _MEAN[27:36, 2] * npz
        # mouth: width, height, lip thickness
        mw, mh, lip = u(0.8, 1.25), u(-0.4, 0.5), u(0.6, 1.5)
        mc = x[48:68].mean(0)
        x[48:68, 0] = mc[0] + (x[48:68, 0] - mc[0]) * mw
        x[48:68, 1] += mh
        cy = x[48:68, 1].mean()
        lips = list(range(49, 54)) + list(range(55, 60))  # outer lip, without the corners
        x[lips, 1] = cy + (x[lips, 1] - cy) * lip
        # small per-point asymmetry
        x += rng.normal(0, 0.12, x.shape)
        self.shape = x
        fh = u(4.5, 6.8)
        self.forehead = _forehead(fh)
        self.head_top = _head_top(fh + u(1.5, 3.5))
        # appearance
        self.skin = _skin(rng)
        hc = _HAIR_COLOURS[rng.integers(len(_HAIR_COLOURS))] + rng.normal(0, 12, 3)
        self.hair = np.clip(hc, 0, 255)
        self.bald = u() < 0.1
        self.hair_volume = u(0.95, 1.3)
        self.long_hair = u() < 0.35
        self.eye = np.clip(_EYE_COLOURS[rng.integers(len(_EYE_COLOURS))] + rng.normal(0, 10, 3), 0, 255)
        self.lip = np.clip(self.skin * np.array([0.85, 0.55, 0.55]) + rng.normal(0, 10, 3), 0, 255)
        self.brow = np.clip(self.hair * u(0.5, 1.0), 0, 255)
        self.brow_thick = u(0.25, 0.75)
        self.beard = u() < 0.25
        self.moustache = self.beard or u() < 0.12
        self.glasses = u() < 0.2
        self.glasses_colour = rng.uniform(0, 120, 3)
        # moles: (triangle, barycentric) on the skin mesh, radius cm
        self.moles = [(int(rng.integers(len(_SKIN_TRIS))), rng.dirichlet([2, 2, 2]), u(0.18, 0.35))
                      for _ in range(int(rng.integers(0, 3)))]


@register_dataset
class SyntheticFaces(torch.utils.data.Dataset):
    """Procedural multi-identity faces with exact labels, generated on the fly.

    ``len = num_identities * images_per_identity``; sample ``i`` has identity
    ``identity_offset + i // images_per_identity`` (the returned label). Pose is drawn
    uniformly within ``max_yaw``/``max_pitch``/``max_roll`` degrees; ``face_scale`` is the
    range of the face width (ear to ear) as a fraction of ``image_size``;
    ``max_shift`` the face-centre shift as a fraction of ``image_size``.

    ``eye_closed_prob``: per-eye probability that an image shows that eye (nearly)
    closed, eyelid openness ~ U(0, 0.25) (else 1, fully open). The landmarks follow the
    eyelid: each upper-lid point (37, 38 / 43, 44) moves toward its lower-lid partner
    (41, 40 / 47, 46) by ``(1 - openness) * (partner - point)``, so a closed eye has its
    upper-lid points on the lower lid. :meth:`eye_openness` returns the openness of the
    eyes (points 36-41, 42-47) of sample ``i``; its draw has a
    random stream of its own, so ``eye_closed_prob=0`` renders exactly the images of
    earlier versions.
    """

    source = "synthetic"

    def __init__(self, num_identities: int, images_per_identity: int, image_size: int = 112, seed: int = 0,
                 identity_offset: int = 0, max_yaw: float = 65.0, max_pitch: float = 30.0, max_roll: float = 25.0,
                 face_scale: tuple[float, float] = (0.48, 0.66), max_shift: float = 0.07, noise: float = 4.0,
                 transform=None, eye_closed_prob: float = 0.0):
        if num_identities < 1 or images_per_identity < 1:
            raise ValueError("num_identities and images_per_identity must be >= 1")
        if image_size < 16:
            raise ValueError(f"image_size must be >= 16, got {image_size}")
        if identity_offset < 0:
            raise ValueError(f"identity_offset must be >= 0, got {identity_offset}")
        self.num_identities, self.images_per_identity = int(num_identities), int(images_per_identity)
        self.image_size, self.seed, self.identity_offset = int(image_size), int(seed), int(identity_offset)
        self.max_yaw, self.max_pitch, self.max_roll = float(max_yaw), float(max_pitch), float(max_roll)
        self.face_scale, self.max_shift, self.noise = tuple(face_scale), float(max_shift), float(noise)
        if not 0.0 <= float(eye_closed_prob) <= 1.0:
            raise ValueError(f"eye_closed_prob must be in [0, 1], got {eye_closed_prob}")
        self.eye_closed_prob = float(eye_closed_prob)
        self.transform = transform
        self._cache: dict[int, _Identity] = {}

    def __len__(self) -> int:
        return self.num_identities * self.images_per_identity

    def identity_of(self, index: int) -> int:
        return self.identity_offset + index // self.images_per_identity

    def _identity(self, ident: int) -> _Identity:
        got = self._cache.get(ident)
        if got is None:
            if len(self._cache) > 4096:
                self._cache.clear()
            got = self._cache[ident] = _Identity(np.random.default_rng([self.seed, 0, ident]))
            # the poses of all this identity's images at once (one batched rotation call)
            lim = np.array([self.max_yaw, self.max_pitch, self.max_roll])
            got.poses = np.random.default_rng([self.seed, 2, ident]).uniform(-1, 1, (self.images_per_identity, 3)) * lim
            got.rotations = geometry.euler_to_matrix(torch.from_numpy(got.poses)).numpy()
        return got

    def __getitem__(self, index: int) -> dict:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for SyntheticFaces of length {n}")
        index %= n
        ident = self.identity_of(index)
        k = index % self.images_per_identity
        rng = np.random.default_rng([self.seed, 1, ident, k])
        image, landmarks, pose = self.render(self._identity(ident), k, rng, self.eye_openness(index))
        sample = make_sample(image, landmarks, pose, ident, self.source)
        return self.transform(sample) if self.transform is not None else sample

    def eye_openness(self, index: int) -> tuple[float, float]:
        """Eyelid openness (0 closed .. 1 open) of the two eyes (36-41, 42-47) of sample ``index``."""
        if self.eye_closed_prob == 0.0:
            return 1.0, 1.0
        index %= len(self)
        r = np.random.default_rng([self.seed, 3, self.identity_of(index), index % self.images_per_identity])
        closed, amount = r.uniform(size=2) < self.eye_closed_prob, r.uniform(0.0, 0.25, 2)
        return tuple(float(a) if c else 1.0 for c, a in zip(closed, amount))

    # ------------------------------------------------------------------ rendering
    def render(self, idn: _Identity, k: int, rng: np.random.Generator, openness=(1.0, 1.0)):
        S = self.image_size
        u = rng.uniform
        pose, R = idn.poses[k], idn.rotations[k]
        scale = u(*self.face_scale) * S / (2 * _MEAN[16, 0])
        centre = S / 2 + rng.uniform(-self.max_shift, self.max_shift, 2) * S
        # per-image expression: mouth opening
        shape = idn.shape.copy()
        if u() < 0.5:
            op = u(0.0, 1.2)
            shape[[56, 57, 58, 65, 66, 67], 1] += op
            shape[[55, 59], 1] += op * 0.5
        for o, upper, lower in zip(openness, ([37, 38], [43, 44]), ([41, 40], [47, 46])):
            if o < 1.0:
                shape[upper] += (1.0 - o) * (shape[lower] - shape[upper])
        pts3 = np.concatenate([shape, idn.forehead, idn.head_top])
        rot = pts3 @ R.T  # rows: R @ X[k]
        xy = rot[:, :2] * scale + centre  # image pixels (continuous)
        z = rot[:, 2]
        ipts = np.round((xy - 0.5) * _ONE).astype(np.int32)  # OpenCV integer-centre, fixed point
        img = self._background(rng)
        light = np.array([u(-0.8, 0.8), u(-0.8, 0.6), -1.0])
        light /= np.linalg.norm(light)
        ambient = u(0.45, 0.75)
        tint = np.array([u(0.85, 1.1), u(0.9, 1.05), u(0.85, 1.1)]) * u(0.75, 1.15)

        def shade(colour, normal_z_dot):
            return np.clip(colour * tint * (ambient + (1 - ambient) * normal_z_dot), 0, 255)

        face_n = R @ np.array([0.0, 0.0, -1.0])
        front = max(0.0, float(face_n @ light))
        # hair behind the head and the neck
        hair = idn.skin * 0.9 if idn.bald else idn.hair
        if idn.long_hair and not idn.bald:
            self._ellipsoid(img, np.array([0.0, 4.5, 6.5]), np.array([9.5, 9.0, 6.0]) * idn.hair_volume, R, scale,
                            centre, shade(hair, front))
        neck = np.array([[-4.6, 5.0, 5.0], [4.6, 5.0, 5.0], [5.2, 30.0, 5.5], [-5.2, 30.0, 5.5]])
        nxy = np.round(((neck @ R.T)[:, :2] * scale + centre - 0.5) * _ONE).astype(np.int32)
        cv2.fillConvexPoly(img, nxy, shade(idn.skin * 0.8, front).tolist(), cv2.LINE_8, _SHIFT)
        self._ellipsoid(img, np.array([0.0, -3.0, 4.0]), np.array([8.4, 10.0, 9.0]) * np.array(
            [idn.hair_volume, idn.hair_volume, 1.0]), R, scale, centre, shade(hair, front))

        # the mesh: back faces culled, Lambert-shaded, skin first (far to near), then the
        # nose sorted with the features so that it hides a far eye
        tri_xy = xy[_TRIS]
        a, b, c = tri_xy[:, 0], tri_xy[:, 1], tri_xy[:, 2]
        vis = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]) > 0
        tri3 = rot[_TRIS]
        e1, e2 = tri3[:, 1] - tri3[:, 0], tri3[:, 2] - tri3[:, 0]
        # positive image-plane area (x right, y down) is a +z cross product: the outward
        # normal, towards the camera, is its negative
        nrm = -np.stack([e1[:, 1] * e2[:, 2] - e1[:, 2] * e2[:, 1], e1[:, 2] * e2[:, 0] - e1[:, 0] * e2[:, 2],
                         e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]], 1)
        lam = np.clip((nrm @ light) / (np.sqrt((nrm * nrm).sum(1)) + 1e-12), 0, 1)
        cols = shade(idn.skin, lam[:, None]).tolist()
        depth = tri3[:, :, 2].mean(1)
        tri_pts = ipts[_TRIS]
        skin = np.flatnonzero(vis & ~_IS_NOSE)
        # under-fill the face silhouette so that rasterisation seams between triangles show skin
        hull = cv2.convexHull(ipts[_FACE_OUTLINE])
        cv2.fillConvexPoly(img, hull, shade(idn.skin, np.median(lam[vis]) if vis.any() else 0.5).tolist(),
                           cv2.LINE_8, _SHIFT)
        for k in skin[np.argsort(-depth[skin])].tolist():
            cv2.fillConvexPoly(img, tri_pts[k], cols[k], cv2.LINE_8, _SHIFT)
        for tri, bary, rad in idn.moles:
            t = _SKIN_TRIS[tri]
            if _signed_area(xy[t]) > 0:
                p = bary @ xy[t]
                cv2.circle(img, tuple(np.round((p - 0.5) * _ONE).astype(int).tolist()),
                           max(1, int(rad * scale * _ONE)), (40, 28, 22), -1, cv2.LINE_AA, _SHIFT)
        items = [(depth[k], "nose", k) for k in np.flatnonzero(vis & _IS_NOSE).tolist()]
        gz = (_GROUPS @ z[:68]).tolist()
        items += [(gz[0], "eye", 36), (gz[1], "eye", 42), (gz[2], "brow", 17), (gz[3], "brow", 22),
                  (gz[4], "mouth", 48)]
        if idn.beard:
            items.append((gz[5] + 0.5, "beard", 0))
        if idn.moustache:
            items.append((gz[6] + 0.2, "moustache", 0))
        items.sort(key=lambda t: -t[0])
        for _, kind, k in items:
            if kind == "nose":
                cv2.fillConvexPoly(img, tri_pts[k], cols[k], cv2.LINE_8, _SHIFT)
            elif kind == "eye":
                self._eye(img, ipts, xy, k, idn, shade, front, openness[0 if k == 36 else 1])
            elif kind == "brow":
                self._brow(img, k, idn, R, scale, centre, shade, front)
            elif kind == "mouth":
                cv2.fillPoly(img, [ipts[48:60]], shade(idn.lip, front).tolist(), cv2.LINE_AA, _SHIFT)
                if shape[66, 1] - shape[62, 1] > 0.25:
                    cv2.fillPoly(img, [ipts[60:68]], shade(np.array([70.0, 25, 30]), front).tolist(),
                                 cv2.LINE_AA, _SHIFT)
            elif kind == "beard":
                poly = ipts[[2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 54, 55, 56, 57, 58, 59, 48]]
                cv2.fillPoly(img, [poly], shade(idn.hair * 0.9, front).tolist(), cv2.LINE_AA, _SHIFT)
            elif kind == "moustache":
                poly = ipts[[48, 31, 32, 33, 34, 35, 54, 53, 52, 51, 50, 49]]
                cv2.fillPoly(img, [poly], shade(idn.hair * 0.85, front).tolist(), cv2.LINE_AA, _SHIFT)
        # hair over the forehead (between the hairline and the top of the head)
        if not idn.bald:
            f0 = 68
            cap = np.concatenate([ipts[[0]], ipts[f0:f0 + 7], ipts[[16]], ipts[f0 + 7:f0 + 14][::-1]])
            cv2.fillPoly(img, [cap], shade(hair, front).tolist(), cv2.LINE_AA, _SHIFT)
        if idn.glasses:
            self._glasses(img, shape, R, scale, centre, idn)
        if self.noise > 0:
            sigma = u(0, self.noise)
            size = img.size
            if size < _NOISE.size:
                off = int(rng.integers(0, _NOISE.size - size))
                bank = _NOISE[off:off + size]
            else:
                bank = rng.standard_normal(size, dtype=np.float32)
            noisy = img.reshape(-1) + sigma * bank
            img = np.clip(noisy, 0, 255).astype(np.uint8).reshape(img.shape)
        return img, xy[:68].astype(np.float32), pose.astype(np.float32)

    def _background(self, rng) -> np.ndarray:
        S = self.image_size
        u = rng.uniform
        c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        ramp = np.linspace(0.0, 1.0, S)[:, None]
        grad = (c0 * (1 - ramp) + c1 * ramp).astype(np.uint8)  # [S, 3] along one axis
        img = np.ascontiguousarray(np.broadcast_to(grad[:, None, :] if u() < 0.5 else grad[None, :, :], (S, S, 3)))
        for _ in range(int(rng.integers(3, 8))):
            col = rng.uniform(0, 255, 3).tolist()
            kind = rng.integers(3)
            a, b = rng.uniform(-0.1, 1.1, 2) * S, rng.uniform(-0.1, 1.1, 2) * S
            if kind == 0:
                cv2.rectangle(img, (int(a[0]), int(a[1])), (int(b[0]), int(b[1])), col, -1)
            elif kind == 1:
                cv2.circle(img, (int(a[0]), int(a[1])), int(u(0.03, 0.25) * S), col, -1, cv2.LINE_AA)
            else:
                cv2.line(img, (int(a[0]), int(a[1])), (int(b[0]), int(b[1])), col, int(u(1, 0.05 * S + 2)),
                         cv2.LINE_AA)
        return img

    @staticmethod
    def _ellipsoid(img, c, radii, R, scale, centre, colour):
        """Filled orthographic silhouette of the ellipsoid (centre c, semi-axes radii)."""
        m = (R * radii ** 2) @ R.T  # R diag(r^2) R^T
        cov = m[:2, :2] * scale * scale
        w, v = np.linalg.eigh(cov)
        p = (R @ c)[:2] * scale + centre - 0.5
        ang = math.degrees(math.atan2(v[1, 1], v[0, 1]))
        axes = np.sqrt(np.maximum(w[::-1], 0))
        cv2.ellipse(img, tuple(np.round(p * _ONE).astype(int).tolist()),
                    tuple(np.round(axes * _ONE).astype(int).tolist()), ang, 0, 360, colour.tolist(), -1,
                    cv2.LINE_AA, _SHIFT)

    @staticmethod
    def _eye(img, ipts, xy, k, idn, shade, front, openness=1.0):
        idx = list(range(k, k + 6))
        if openness < 0.4:  # lid closed over the eye: skin, a lash line along the lid, no iris
            lid = ipts[[k, k + 1, k + 2, k + 3]]
            cv2.fillPoly(img, [ipts[idx]], shade(idn.skin * 0.8, front).tolist(), cv2.LINE_AA, _SHIFT)
            th = max(1, int(round(0.015 * img.shape[0])))
            cv2.polylines(img, [lid], False, shade(idn.hair * 0.4, front).tolist(), th, cv2.LINE_AA, _SHIFT)
            return
        cv2.fillPoly(img, [ipts[idx]], shade(np.array([235.0, 230, 225]), front).tolist(), cv2.LINE_AA, _SHIFT)
        iris = ipts[[k + 1, k + 2, k + 4, k + 5]]
        cv2.fillConvexPoly(img, iris, shade(idn.eye, front).tolist(), cv2.LINE_AA, _SHIFT)
        c = xy[idx].mean(0)
        r = 0.18 * float(np.linalg.norm(xy[k + 3] - xy[k]))
        cv2.circle(img, tuple(np.round((c - 0.5) * _ONE).astype(int).tolist()), max(1, int(r * _ONE)),
                   (15, 12, 12), -1, cv2.LINE_AA, _SHIFT)
        cv2.polylines(img, [ipts[idx]], True, shade(idn.skin * 0.45, front).tolist(), 1, cv2.LINE_AA, _SHIFT)

    @staticmethod
    def _brow(img, k, idn, R, scale, centre, shade, front):
        pts = idn.shape[k:k + 5]
        th = np.array([0.0, idn.brow_thick, 0.0])
        poly3 = np.concatenate([pts - th * 0.5, (pts + th * 0.5)[::-1]])
        p = (poly3 @ R.T)[:, :2] * scale + centre
        cv2.fillPoly(img, [np.round((p - 0.5) * _ONE).astype(np.int32)], shade(idn.brow, front).tolist(),
                     cv2.LINE_AA, _SHIFT)

    @staticmethod
    def _glasses(img, shape, R, scale, centre, idn):
        ang = np.linspace(0, 2 * math.pi, 12, endpoint=False)
        rims = []
        for eye in (range(36, 42), range(42, 48)):
            c = shape[list(eye)].mean(0) + np.array([0.0, 0.1, -1.0])
            ring = c + np.stack([1.7 * np.cos(ang), 1.2 * np.sin(ang), np.zeros_like(ang)], 1)
            p = (ring @ R.T)[:, :2] * scale + centre
            rims.append(np.round((p - 0.5) * _ONE).astype(np.int32))
        col = idn.glasses_colour.tolist()
        th = max(1, int(round(0.012 * img.shape[0])))
        cv2.polylines(img, rims, True, col, th, cv2.LINE_AA, _SHIFT)
        cv2.line(img, tuple(rims[0][0].tolist()), tuple(rims[1][6].tolist()), col, th, cv2.LINE_AA, _SHIFT)


def _signed_area(p: np.ndarray) -> float:
    return float((p[1, 0] - p[0, 0]) * (p[2, 1] - p[0, 1]) - (p[1, 1] - p[0, 1]) * (p[2, 0] - p[0, 0]))
