"""pyface.analyze: a photo or a video in, its faces out.

- :class:`FaceAnalyzer` (also ``pyface.FaceAnalyzer``): detector -> face-area crop /
  alignment -> model -> :class:`Face` (box, score, 68 landmarks, pose, embedding, aligned
  crop); ``pyface analyze PATH...`` on the command line (:mod:`pyface.analyze.job`).
- :func:`pose_from_landmarks`: (yaw, pitch, roll) from any 68 points (PnP against the mean
  3D face).
- Detectors (:mod:`pyface.analyze.detectors`): a registry; ``blazeface`` needs nothing,
  ``mediapipe-short`` / ``mediapipe-full`` the ``label`` extra.
- Model backends (:mod:`pyface.analyze.backend`): PyTorch checkpoints
  (:mod:`pyface.analyze.torch_backend`) and ONNX files behind one interface.
- Video (:mod:`pyface.analyze.video`): tracking, One-Euro smoothing, annotated MP4.

Layer: above pyface.label and pyface.eval (it uses the labeler's crops, MediaPipe mesh and
shard folders), below pyface.cli. Attributes load lazily.
"""
_LAZY = {"FaceAnalyzer": "analyzer", "Face": "analyzer", "pose_from_landmarks": "pose",
         "DETECTORS": "detectors", "Detection": "detectors", "make_detector": "detectors",
         "register_detector": "detectors", "ModelBackend": "backend", "TorchBackend": "torch_backend",
         "OnnxBackend": "onnx_backend",
         "OneEuroFilter": "video", "FaceTracker": "video", "analyze_video": "video", "load_image": "images"}
__all__ = list(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
