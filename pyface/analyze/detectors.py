"""Face detectors behind one small interface, in a registry.

A detector is built by name (``make_detector("blazeface")``, ``pyface analyze
--detector NAME``) and maps an HxWx3 uint8 RGB image to a list of :class:`Detection`
(box in that image's pixels, score, optional key points). It also says how its boxes
relate to pyface's **face box** -- the square bounding box of the 68 landmarks
(:func:`pyface.data.transforms.face_box`), the box every crop convention of pyface is
defined on (training's face-area crops, the labeler's views): ``face_box_scale`` (face
box side / detector box side) and ``face_box_shift`` (centre offset in detector box
sides). Not calibrated yet: every detector has scale 1 and shift 0; ``pyface bench
analyze`` measures the detector's centre offset from the landmarks' face box on
SyntheticFaces (bench/results/analyze-cpu.json: blazeface median 0.09, p95 0.19 face-box
sides, recall 0.69 on the synthetic renders).

=====================  ==========================================================  ============
name                   what                                                        needs
=====================  ==========================================================  ============
``blazeface``          MediaPipe's short-range BlazeFace ported to PyTorch         nothing
                       (:mod:`pyface.analyze.blazeface`; weights shipped in pyface)
``mediapipe-short``    MediaPipe's own short-range detector (faces within ~2 m)    ``label`` extra
``mediapipe-full``     MediaPipe's full-range detector (smaller faces, ~5 m)       ``label`` extra
=====================  ==========================================================  ============

Nothing is downloaded: every model ships inside an installed wheel. Register another
with ``@register_detector("name")`` on a class with ``detect(image)`` (and, optionally,
a ``why_unavailable()`` classmethod).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pyface.errors import ConfigError
from pyface.registry import Registry

__all__ = ["DETECTORS", "Detection", "Detector", "available_detectors", "default_detector", "face_box",
           "make_detector", "register_detector"]

#: Detector classes by name (see the module docstring).
DETECTORS: Registry = Registry("detector")


def register_detector(name: str):
    """Class decorator: make a detector class buildable by ``name``."""
    return DETECTORS.register(name)


@dataclass
class Detection:
    """One face found by a detector: ``box`` [4] float64 ``(x0, y0, x1, y1)`` in pixels
    of the image given (continuous pixels, :mod:`pyface.data.sample`), ``score`` in
    [0, 1], ``keypoints`` [K, 2] pixels in the detector's ``keypoint_names`` order
    (None when it gives none)."""

    box: np.ndarray
    score: float
    keypoints: np.ndarray | None = None
    detector: str = ""

    def scaled(self, s: float) -> "Detection":
        """The same detection in an image ``s`` times larger."""
        return Detection(self.box * s, self.score, None if self.keypoints is None else self.keypoints * s,
                         self.detector)


class Detector:
    """Base of the detectors (the interface: ``detect``, ``describe`` and the face-box
    calibration; see the module docstring)."""

    name: str = ""
    keypoint_names: tuple[str, ...] = ()
    #: face box side / detector box side, and the face box centre minus the detector
    #: box centre in detector box sides (x, y): measured, see the module docstring.
    face_box_scale: float = 1.0
    face_box_shift: tuple[float, float] = (0.0, 0.0)

    def __init__(self, min_score: float = 0.5):
        if not 0.0 <= float(min_score) <= 1.0:
            raise ConfigError(f"detector min_score must be in [0, 1], got {min_score!r}")
        self.min_score = float(min_score)

    @classmethod
    def why_unavailable(cls) -> str | None:
        """None when the detector can run here, else why not (a missing extra)."""
        return None

    def detect(self, image: np.ndarray) -> list[Detection]:
        raise NotImplementedError

    def describe(self) -> dict:
        return {"name": self.name, "min_score": self.min_score}


def face_box(det: Detection, detector: Detector) -> tuple[float, float, float]:
    """pyface's face box ``(cx, cy, side)`` estimated from a detection through the
    detector's calibration (module docstring)."""
    x0, y0, x1, y1 = (float(v) for v in det.box)
    side = max(x1 - x0, y1 - y0)
    dx, dy = detector.face_box_shift
    return (x0 + x1) / 2 + dx * side, (y0 + y1) / 2 + dy * side, side * detector.face_box_scale


def _detections(boxes, scores, kps, name) -> list[Detection]:
    return [Detection(np.asarray(b, np.float64), float(s), np.asarray(k, np.float64), name)
            for b, s, k in zip(boxes, scores, kps)]


@register_detector("blazeface")
class BlazeFaceDetector(Detector):
    """MediaPipe's short-range BlazeFace in PyTorch (:mod:`pyface.analyze.blazeface`)."""

    name = "blazeface"
    face_box_scale = 1.0
    face_box_shift = (0.0, 0.0)

    def __init__(self, min_score: float = 0.5, device="cpu"):
        super().__init__(min_score)
        from pyface.analyze.blazeface import KEYPOINTS, BlazeFace

        self.keypoint_names = KEYPOINTS
        self._net = BlazeFace(self.min_score, device=device)

    def detect(self, image: np.ndarray) -> list[Detection]:
        return _detections(*self._net(image), self.name)


class _MediaPipeDetector(Detector):
    """``mediapipe.solutions.face_detection`` (the legacy API; its models ship in the
    mediapipe <= 0.10.21 wheel)."""

    model_selection = 0
    keypoint_names = ("right_eye", "left_eye", "nose_tip", "mouth_centre", "right_ear_tragion", "left_ear_tragion")

    @classmethod
    def why_unavailable(cls) -> str | None:
        from pyface.label.mediapipe import why_unavailable

        why = why_unavailable("face_detection")
        return f"{why}; pip install 'pyface-mtl[label]'" if why and "not installed" in why else why

    def __init__(self, min_score: float = 0.5):
        super().__init__(min_score)
        import mediapipe as mp

        self._fd = mp.solutions.face_detection.FaceDetection(model_selection=self.model_selection,
                                                             min_detection_confidence=self.min_score)

    def detect(self, image: np.ndarray) -> list[Detection]:
        h, w = image.shape[:2]
        res = self._fd.process(np.ascontiguousarray(image))
        out = []
        for d in res.detections or []:
            bb = d.location_data.relative_bounding_box
            box = np.array([bb.xmin * w, bb.ymin * h, (bb.xmin + bb.width) * w, (bb.ymin + bb.height) * h])
            kps = np.array([(p.x * w, p.y * h) for p in d.location_data.relative_keypoints], np.float64)
            out.append(Detection(box, float(d.score[0]), kps, self.name))
        return out

    def describe(self) -> dict:
        import mediapipe as mp

        return {**super().describe(), "mediapipe": mp.__version__}


@register_detector("mediapipe-short")
class MediaPipeShortRange(_MediaPipeDetector):
    name = "mediapipe-short"
    model_selection = 0


@register_detector("mediapipe-full")
class MediaPipeFullRange(_MediaPipeDetector):
    name = "mediapipe-full"
    model_selection = 1


def available_detectors() -> list[str]:
    """The registered detectors that can run in this environment."""
    return [n for n, cls in DETECTORS.items() if cls.why_unavailable() is None]


def default_detector() -> str:
    """``mediapipe-full`` with the ``label`` extra (it finds the smaller faces), else
    ``blazeface``."""
    return "mediapipe-full" if "mediapipe-full" in available_detectors() else "blazeface"


def make_detector(name: str | Detector | None = None, *, what: str = "detector", **options) -> Detector:
    """A detector by registry name (None or "auto": :func:`default_detector`), or an
    already built one. An unknown name or one that cannot run here (a missing extra) is a
    :class:`ConfigError` naming ``what`` and the reason."""
    if isinstance(name, Detector) or (name is not None and not isinstance(name, str) and hasattr(name, "detect")):
        return name
    if name is None or name == "auto":
        name = default_detector()
    cls = DETECTORS.get(name, what=what)
    why = cls.why_unavailable()
    if why is not None:
        raise ConfigError(f"{what}: {name!r} cannot run here: {why}; detectors available: "
                          f"{', '.join(available_detectors())}")
    return cls(**options)
