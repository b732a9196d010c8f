"""The eye-blink task and the ``eyeblink`` recipe (Lee et al. 2024, Sec. 3.1.2, Fig. 4):
binary open/closed classification of eye crops with a ResNet18, the ``net_eye`` of
Algorithm 1 (its P(closed) drives AdjustUpperEyes in pyface.label).

Data: eye crops with an ``eye_closed`` label (1 closed, 0 open): an image folder
``open/`` + ``closed/`` (:class:`pyface.data.EyeFolder`, the CEW layout), or the embedded
default :class:`pyface.data.SyntheticEyes` (crops of SyntheticFaces with closed eyes).
Example::

    recipe: eyeblink
    data: {train: {type: EyeFolder, root: /data/cew}, val: {type: EyeFolder, root: /data/cew_val}}
"""
from __future__ import annotations

import numpy as np
import torch

from pyface.train.config import register_recipe
from pyface.train.tasks import Task, _zero, register_task

__all__ = ["EyeBlinkTask"]


@register_task("eyeblink")
class EyeBlinkTask(Task):
    """Binary cross-entropy on the ``eye_closed`` logit over rows with a finite label.
    Metrics: accuracy (threshold 0.5) and the majority-class baseline."""

    head = "eyeblink"
    defaults = {"weight": 1.0}
    label_keys = ("eye_closed",)

    def loss(self, outputs, batch):
        logit, y = outputs["eye_closed"].float(), batch["eye_closed"].float()
        ok = torch.isfinite(y)
        if not ok.any():
            return _zero(logit)
        return torch.nn.functional.binary_cross_entropy_with_logits(logit[ok], y[ok])

    def metrics(self, pred):
        if "eye_closed" not in pred or "eye_closed_gt" not in pred:
            return {}
        y = np.asarray(pred["eye_closed_gt"], np.float64)
        ok = np.isfinite(y)
        if not ok.any():
            return {}
        closed = np.asarray(pred["eye_closed"])[ok] > 0
        y = y[ok] > 0.5
        return {"eyeblink_accuracy": float((closed == y).mean()), "eyeblink_baseline": float(max(y.mean(),
                                                                                                1 - y.mean()))}


register_recipe("eyeblink", tasks=("eyeblink",), preset="resnet18-eyeblink", defaults={
    "data": {"train": {"type": "SyntheticEyes", "num_identities": 400, "images_per_identity": 4, "seed": 0},
             "val": {"type": "SyntheticEyes", "num_identities": 50, "images_per_identity": 4, "seed": 1,
                     "identity_offset": 100000}},
    "optim": {"lr": 0.05, "schedule": "cosine", "epochs": 6},
})
