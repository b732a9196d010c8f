"""The multitask loss of Eq. 1: L_total = L_FR + lambda1 * L_FLD + lambda2 * L_HPE.

- L_FR: :class:`pyface.nn.LPMCLoss` (owns the class centres), margins from the
  ground-truth pose; rows with unknown identity (-1) are ignored, rows with unknown
  pose get the base margin m1 (gamma_P = 0).
- L_FLD: Wing + lambda_P * MSE (Eq. 3-9) over rows whose 68 landmarks (and, for the
  dynamic lambda_P, pose) are known,
  on coordinates divided by the input side (``landmark_unit`` pixels; 1 = pixels).
  The paper's loss-convergence ratios (Table 10) put lambda1 * L_FLD at half of L_FR
  with lambda1 = 100, i.e. L_FLD ~ 1e-2: normalised coordinates, not pixels.
- L_HPE: MAE (Eq. 2) in degrees over rows whose pose is known.
``fused=True`` (default) calls pyface's C++/CUDA ops; ``fused=False`` the pure-PyTorch
references with the same arguments (A/B runs). A term with no usable row is 0.
"""
from __future__ import annotations

import torch
from torch import nn

from pyface.nn import LPMCLoss
from pyface.ops import landmark_loss, pose_loss
from pyface.ops.reference import landmark_loss_reference, pose_loss_reference

WING_W, WING_EPS = 10.0, 2.0
LAMBDA_FLD, LAMBDA_HPE = 100.0, 10.0


class MultiTaskLoss(nn.Module):
    """forward(outputs, batch) -> (total, parts) where outputs is MultiTaskNet's dict,
    batch holds "identity" [B] int64, "landmarks" [B, 68, 2], "pose" [B, 3] (NaN when
    unknown), and parts maps "fr"/"fld"/"hpe" to the detached unweighted terms."""

    def __init__(self, tasks, num_classes: int = 0, embedding_dim: int = 512, *, lambda_fld: float = LAMBDA_FLD,
                 lambda_hpe: float = LAMBDA_HPE, fused: bool = True, scale: float = 64.0, m1: float = 0.3,
                 m2: float = 0.7, margin_type: str = "cosine", landmark_unit: float = 1.0, wing_w: float = WING_W,
                 wing_eps: float = WING_EPS, lambda_p: float | str = "dynamic"):
        super().__init__()
        self.tasks, self.fused = tuple(tasks), fused
        self.lambda_fld, self.lambda_hpe = lambda_fld, lambda_hpe
        self.landmark_unit = float(landmark_unit)
        self.fld_kw = {"wing_w": wing_w, "wing_eps": wing_eps, "lambda_p": lambda_p}
        self.fr = None
        if "fr" in self.tasks:
            if num_classes < 1:
                raise ValueError(f"num_classes must be >= 1 when 'fr' is a task, got {num_classes}")
            self.fr = LPMCLoss(num_classes, embedding_dim, m1=m1, m2=m2, scale=scale, margin_type=margin_type,
                               ignore_index=-1, fused=fused)
        self._landmark = landmark_loss if fused else landmark_loss_reference
        self._pose = pose_loss if fused else pose_loss_reference

    def forward(self, outputs: dict, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        parts: dict[str, torch.Tensor] = {}
        pose_gt = batch["pose"].float()
        pose_known = torch.isfinite(pose_gt).all(1)
        # unknown pose -> (0, 0, 0): the base margin m1 (gamma_P = 0); the dynamic lambda_P
        # only ever reads rows whose pose is known (see `ok` below)
        pose_or_zero = torch.where(pose_known[:, None], pose_gt, torch.zeros_like(pose_gt))
        total = None

        def add(term, weight):
            nonlocal total
            total = term * weight if total is None else total + term * weight

        if self.fr is not None:
            emb = outputs["embedding"]
            ids = batch["identity"].long()
            loss = self.fr(emb.float().contiguous(), ids, pose_or_zero)
            parts["fr"] = loss.detach()
            add(loss, 1.0)
        if "fld" in self.tasks:
            pred = outputs["landmarks"].float() / self.landmark_unit
            gt = batch["landmarks"].float() / self.landmark_unit
            ok = torch.isfinite(gt).flatten(1).all(1)
            if self.fld_kw["lambda_p"] == "dynamic":  # lambda_P needs the gt pose
                ok = ok & pose_known
            loss = self._landmark(pred[ok].contiguous(), gt[ok].contiguous(), pose_or_zero[ok].contiguous(),
                                  **self.fld_kw) if ok.any() else pred.sum() * 0.0
            parts["fld"] = loss.detach()
            add(loss, self.lambda_fld)
        if "hpe" in self.tasks:
            pred = outputs["pose"].float()
            loss = self._pose(pred[pose_known].contiguous(), pose_gt[pose_known].contiguous()) if pose_known.any() \
                else pred.sum() * 0.0
            parts["hpe"] = loss.detach()
            add(loss, self.lambda_hpe)
        return total, parts
