"""Evaluation: metrics and the papers' benchmark protocols, pure functions of arrays
(readers and models stay outside them)."""
from pyface.eval.metrics import landmark_bbox_size, nme, pose_mae, verification_pairs
from pyface.eval.verification import DEFAULT_FARS, best_threshold, tar_at_far, verification_accuracy

__all__ = ["landmark_bbox_size", "nme", "pose_mae", "verification_pairs", "verification_accuracy",
           "best_threshold", "tar_at_far", "DEFAULT_FARS"]
