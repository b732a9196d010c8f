"""``FaceAnalyzer``: a picture in, its faces out (insightface's ``FaceAnalysis`` shape:
detector -> alignment -> models -> faces).

For every face the detector finds (on a copy of at most ``detect_size`` pixels a side):

* **without a checkpoint** (needs the ``label`` extra for the landmarks): MediaPipe's
  face mesh on a crop around the detection, 468 -> 68 points through pyface's index
  map (:mod:`pyface.label.mediapipe`), and the pose fitted to those points
  (:func:`pyface.analyze.pose.pose_from_landmarks`). Without MediaPipe the faces carry
  the detection only (box, score, the detector's key points).
* **with a checkpoint** (or any :class:`~pyface.analyze.backend.ModelBackend`): the
  face-area crop the net was trained on (:mod:`pyface.analyze.crops`) from the
  detection, the net's landmarks and pose; with a landmark head a second pass on the
  crop defined by those landmarks (``refine``), as in training and evaluation. With a
  recognition head, the embedding of the 5-point aligned crop (the ArcFace template at
  the net's input size, :func:`pyface.data.align.align_face`) as the flip-sum
  (:func:`pyface.analyze.backend.flip_sum`), L2-normalised; the five points come from
  the landmarks, else from the detector's eyes, nose and mouth. What the net has no head
  for is absent (None), never zeros.

Coordinates are pixels of the picture given (continuous pixels, :mod:`pyface.data.sample`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from pyface.analyze import crops as C
from pyface.analyze.backend import flip_sum
from pyface.analyze.detectors import Detection, face_box, make_detector
from pyface.analyze.images import LoadedImage, load_image, to_rgb8
from pyface.analyze.pose import pose_from_landmarks
from pyface.errors import ConfigError

__all__ = ["Face", "FaceAnalyzer", "MESH_CROP_AREA", "MESH_SIZE"]

#: Crop MediaPipe's face mesh sees: this many face-box areas, at MESH_SIZE pixels (the
#: mesh runs its own detector inside it, so the framing only needs to hold the face).
MESH_CROP_AREA = 3.0
MESH_SIZE = 256
#: Mouth corners from the detector's mouth centre: +- this times the eye-to-eye vector
#: (the ArcFace template's mouth width / eye distance, 29.2 / 35.2, halved).
MOUTH_HALF_WIDTH = 0.414


@dataclass
class Face:
    """One face. ``box`` [4] (x0, y0, x1, y1) and ``score`` from the detector,
    ``keypoints`` [K, 2] its key points (``keypoint_names``); ``landmarks`` [68, 2]
    iBUG-68 pixels; ``pose`` [3] (yaw, pitch, roll) degrees (pyface's convention);
    ``embedding`` [D] unit-norm flip-sum embedding; ``aligned`` the 5-point aligned
    crop (S x S x 3 uint8 RGB) it was computed on. Each is None when not available.
    ``sources`` says where landmarks and pose came from ("net", "mediapipe", "pnp")."""

    box: np.ndarray
    score: float
    keypoints: np.ndarray | None = None
    keypoint_names: tuple[str, ...] = ()
    landmarks: np.ndarray | None = None
    pose: np.ndarray | None = None
    embedding: np.ndarray | None = None
    aligned: np.ndarray | None = None
    sources: dict = field(default_factory=dict)

    @property
    def bbox(self) -> np.ndarray:  # insightface's name
        return self.box

    @property
    def normed_embedding(self) -> np.ndarray | None:  # insightface's name
        return self.embedding

    def to_dict(self, embedding: bool = True) -> dict:
        """JSON-able: what the face has (absent keys for what it has not)."""
        d = {"box": [round(float(v), 2) for v in self.box], "score": round(float(self.score), 4)}
        if self.keypoints is not None:
            d["keypoints"] = {n: [round(float(x), 2), round(float(y), 2)]
                              for n, (x, y) in zip(self.keypoint_names, self.keypoints)}
        if self.landmarks is not None:
            d["landmarks"] = [[round(float(x), 2), round(float(y), 2)] for x, y in self.landmarks]
        if self.pose is not None:
            d["pose"] = dict(zip(("yaw", "pitch", "roll"), (round(float(v), 3) for v in self.pose)))
        if self.embedding is not None and embedding:
            d["embedding"] = [round(float(v), 6) for v in self.embedding]
        if self.sources:
            d["sources"] = dict(self.sources)
        return d


def _five_from_keypoints(kps: np.ndarray) -> np.ndarray:
    """ArcFace's five points (image-left eye, image-right eye, nose, mouth corners) from
    MediaPipe-style key points (subject's right eye, left eye, nose tip, mouth centre)."""
    re, le, nose, mouth = kps[0], kps[1], kps[2], kps[3]
    half = MOUTH_HALF_WIDTH * (le - re)
    return np.stack([re, le, nose, mouth - half, mouth + half])


class FaceAnalyzer:
    """Detect, align and analyse the faces of a picture (module docstring).

    ``checkpoint``: a ``pyface train`` checkpoint / run folder / MultiTaskNet (the
    PyTorch backend), or None; ``backend``: any :class:`~pyface.analyze.backend.ModelBackend`
    instead (e.g. the ONNX one). ``detector``: a name of
    :data:`pyface.analyze.detectors.DETECTORS` (None / "auto": MediaPipe's full-range
    detector with the ``label`` extra, else the PyTorch BlazeFace) or a detector object.
    ``min_score``: the detector's threshold; ``max_faces``: keep the best N (None: all);
    ``detect_size``: the longest side the detector sees (larger pictures are shrunk for
    detection only); ``crop_area``: the net's face-area framing (None: the checkpoint's
    own, :func:`pyface.analyze.crops.training_crop_area`); ``refine``: the second,
    landmark-defined crop; ``mesh``: MediaPipe's face mesh for the landmarks when no net
    gives them (None: when installed; True: required); ``device``, ``amp``: the
    runtime's (:func:`pyface.runtime.resolve_device`, :func:`pyface.runtime.autocast`).
    """

    def __init__(self, checkpoint=None, *, backend=None, detector=None, min_score: float = 0.5,
                 max_faces: int | None = None, detect_size: int = 1024, crop_area: float | None = None,
                 refine: bool = True, mesh: bool | None = None, index_map=None, device=None, amp=True,
                 batch_size: int = 64):
        if checkpoint is not None and backend is not None:
            raise ConfigError("give a checkpoint or a backend, not both")
        if max_faces is not None and int(max_faces) < 1:
            raise ConfigError(f"max_faces must be >= 1 or None, got {max_faces!r}")
        if int(detect_size) < 64:
            raise ConfigError(f"detect_size must be >= 64 pixels, got {detect_size!r}")
        self.detector = make_detector(detector, min_score=min_score)
        if checkpoint is not None:
            from pyface.analyze.torch_backend import TorchBackend

            backend = TorchBackend(checkpoint, device, amp=amp, batch_size=batch_size, crop_area=crop_area)
        self.backend = backend
        self.max_faces, self.detect_size, self.refine = max_faces, int(detect_size), bool(refine)
        self.outputs = frozenset(backend.outputs) if backend is not None else frozenset()
        if backend is not None:
            area = crop_area if crop_area is not None else getattr(backend, "crop_area", None)
            self.crop_area = float(area) if area is not None else C.DEFAULT_CROP_AREA
            if not (math.isfinite(self.crop_area) and self.crop_area > 0):
                raise ConfigError(f"crop_area must be a positive number, got {crop_area!r}")
        else:
            self.crop_area = None
        self.mesh = None
        if "landmarks" not in self.outputs and backend is None and mesh is not False:
            from pyface.label import mediapipe as M

            if M.available():
                self.mesh = M.FaceMesh68(index_map)
            elif mesh:
                raise ConfigError(f"mesh: MediaPipe's face mesh is not usable ({M.why_unavailable()}); "
                                  "install it with pip install 'pyface-mtl[label]'")

    # ------------------------------------------------------------------ description
    def describe(self) -> dict:
        """What determines the results (recorded beside them; hashed by resume checks)."""
        return {"detector": self.detector.describe(), "detect_size": self.detect_size, "max_faces": self.max_faces,
                "backend": None if self.backend is None else self.backend.describe(),
                "crop_area": self.crop_area, "refine": self.refine,
                "mesh": None if self.mesh is None else self.mesh.config()}

    # ------------------------------------------------------------------ stages
    def detect(self, image: np.ndarray) -> list[Detection]:
        """The detector on a copy of at most ``detect_size`` pixels a side; boxes in
        ``image``'s pixels, best first, at most ``max_faces``."""
        h, w = image.shape[:2]
        s = min(1.0, self.detect_size / max(h, w))
        small = image if s == 1.0 else cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))),
                                                  interpolation=cv2.INTER_AREA)
        sx = w / small.shape[1]
        dets = [d.scaled(sx) if s != 1.0 else d for d in self.detector.detect(small)]
        dets.sort(key=lambda d: -d.score)
        return dets[:self.max_faces] if self.max_faces else dets

    def _net_pass(self, image, boxes):
        S = self.backend.input_size
        want = tuple(o for o in ("landmarks", "pose") if o in self.outputs)
        x, A = C.crop_faces(image, boxes, self.crop_area, S)
        out = self.backend.predict(x, want)
        lm = C.unmap(out["landmarks"], A, S) if "landmarks" in out else None
        return lm, out.get("pose")

    def _mesh_pass(self, image, boxes) -> np.ndarray:
        x, A = C.crop_faces(image, boxes, MESH_CROP_AREA, MESH_SIZE)
        return C.unmap(self.mesh(x), A, MESH_SIZE)

    def get(self, image: np.ndarray, detections: list[Detection] | None = None) -> list[Face]:
        """The faces of an HxWx3 RGB picture (uint8; uint16, float [0, 1], gray or RGBA
        are converted), best detection first; ``detections`` skips the detector (e.g. a
        tracker's). A picture without a face gives []."""
        image = to_rgb8(image)
        dets = self.detect(image) if detections is None else list(detections)
        faces = [Face(d.box, d.score, d.keypoints, tuple(getattr(self.detector, "keypoint_names", ())))
                 for d in dets]
        if not faces:
            return faces
        boxes = np.array([face_box(d, self.detector) for d in dets])
        lm = pose = None
        if self.backend is not None and {"landmarks", "pose"} & self.outputs:
            lm, pose = self._net_pass(image, boxes)
            if lm is not None and self.refine:
                lm, pose = self._net_pass(image, C.face_box_from_landmarks(lm))
            src = "net"
        elif self.mesh is not None:
            lm = self._mesh_pass(image, boxes)
            pose = pose_from_landmarks(lm)
            src = None
        for k, f in enumerate(faces):
            if lm is not None and np.isfinite(lm[k]).all():
                f.landmarks = lm[k].astype(np.float32)
                f.sources["landmarks"] = src or "mediapipe"
            if pose is not None and np.isfinite(pose[k]).all():
                f.pose = np.asarray(pose[k], np.float32)
                f.sources["pose"] = src or "pnp"
        if "embedding" in self.outputs:
            self._embed(image, faces)
        return faces

    __call__ = get

    def _embed(self, image, faces) -> None:
        S = self.backend.input_size
        todo, crops = [], []
        from pyface.data.align import five_points_from_68

        for f in faces:
            p5 = None
            if f.landmarks is not None:
                p5 = five_points_from_68(f.landmarks)
                # an unusable landmark set (e.g. an untrained landmark head's collapsed points)
                # gives no alignment: fall back on the detector's key points
                if not np.linalg.norm(np.asarray(p5[1]) - np.asarray(p5[0])) >= 1.0:
                    p5 = None
            if p5 is None and f.keypoints is not None and len(f.keypoints) >= 4:
                p5 = _five_from_keypoints(np.asarray(f.keypoints, np.float64))
            if p5 is None:
                continue
            from pyface.data.align import align_face

            crops.append(align_face(image, p5, S))
            todo.append(f)
        if not todo:
            return
        x = np.ascontiguousarray(np.stack(crops).transpose(0, 3, 1, 2))
        e = flip_sum(self.backend, x)
        e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
        for f, v, c in zip(todo, e, crops):
            f.embedding, f.aligned = v.astype(np.float32), c

    # ------------------------------------------------------------------ files
    def analyze_file(self, path, max_pixels: int | None = None) -> tuple[LoadedImage, list[Face]]:
        """(the loaded picture, its faces in full-size picture pixels) for an image file
        (:func:`pyface.analyze.images.load_image`: EXIF orientation, bounded memory)."""
        from pyface.analyze.images import DEFAULT_MAX_PIXELS

        img = load_image(path, max_pixels or DEFAULT_MAX_PIXELS)
        faces = self.get(img.rgb)
        if img.scale != 1.0:
            for f in faces:
                f.box = f.box * img.scale
                if f.keypoints is not None:
                    f.keypoints = f.keypoints * img.scale
                if f.landmarks is not None:
                    f.landmarks = (f.landmarks * img.scale).astype(np.float32)
        return img, faces

    def draw_on(self, image: np.ndarray, faces, scale: float = 1.0) -> np.ndarray:
        """``image`` with the faces drawn (:func:`pyface.analyze.draw.draw_faces`)."""
        from pyface.analyze.draw import draw_faces

        return draw_faces(to_rgb8(image), faces, scale=scale)
