"""The networks the labeler runs: the landmark + pose net and the eye-blink net.

Both come from ``pyface train`` outputs -- ``model.pt``, a training checkpoint
(``checkpoints/last.pt``) or a run folder, loaded by :func:`pyface.runtime.load_model`
(safely, legacy weights upgraded) -- or are an already built ``torch.nn.Module``.
"""
from __future__ import annotations

import os

import torch
from torch import nn

from pyface import runtime

__all__ = ["load_model", "LandmarkPoseNet", "EyeBlinkNet", "EYEBLINK_OUTPUT"]

#: Output key of the eye-blink head: one logit per crop, > 0 = closed.
EYEBLINK_OUTPUT = "eye_closed"


def load_model(path: str | os.PathLike, what: str) -> nn.Module:
    """A MultiTaskNet (CPU, eval mode) from a ``pyface train`` output; ``what`` names the
    argument in errors (:func:`pyface.runtime.load_model`)."""
    return runtime.load_model(path, what=what)


class LandmarkPoseNet(nn.Module):
    """uint8 [B, 3, S, S] -> (landmarks [B, 68, 2] input pixels, pose [B, 3] degrees), float32."""

    def __init__(self, net: nn.Module | str | os.PathLike):
        super().__init__()
        model = runtime.load_model(net, what="net", heads=("fld", "hpe"),
                                   purpose="the labeler needs both 'fld' (landmarks) and 'hpe' (pose), e.g. a "
                                           "checkpoint of the pretrain-fld-hpe recipe")
        self.model = model.eval()
        self.input_size = int(model.config.input_size)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model(images)
        return out["landmarks"].float(), out["pose"].float()


class EyeBlinkNet(nn.Module):
    """uint8 eye crops [N, 3, s, s] -> P(closed) [N] float32. ``net`` may also be any
    module returning the logit (or a dict with "eye_closed"); input size 32 then."""

    def __init__(self, net: nn.Module | str | os.PathLike):
        super().__init__()
        cfg = getattr(net, "config", None)
        heads = ("eyeblink",) if cfg is not None or not isinstance(net, nn.Module) else None
        model = runtime.load_model(net, what="eye_net", heads=heads,
                                   purpose="train the eyeblink recipe for the eye-blink net")
        self.model = model.eval()
        self.input_size = int(getattr(getattr(model, "config", None), "input_size", 32))

    @torch.no_grad()
    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        out = self.model(crops)
        logit = out[EYEBLINK_OUTPUT] if isinstance(out, dict) else out
        return torch.sigmoid(logit.float().reshape(-1))
