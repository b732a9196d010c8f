"""Evaluation metrics (and, later, the benchmark suites)."""
from pyface.eval.metrics import landmark_bbox_size, nme, pose_mae, verification_accuracy, verification_pairs

__all__ = ["landmark_bbox_size", "nme", "pose_mae", "verification_accuracy", "verification_pairs"]
