"""Loading the networks the labeler runs: the landmark + pose net and the eye-blink net.

Both come from ``pyface train`` outputs: ``model.pt`` (``{"model", "model_config"}``)
or a training checkpoint (``checkpoints/last.pt``: the same two keys among others),
or an already built ``torch.nn.Module``.
"""
from __future__ import annotations

import os

import torch
from torch import nn

__all__ = ["load_model", "LandmarkPoseNet", "EyeBlinkNet", "EYEBLINK_OUTPUT"]

#: Output key of the eye-blink head: one logit per crop, > 0 = closed.
EYEBLINK_OUTPUT = "eye_closed"


def load_model(path: str | os.PathLike, what: str) -> nn.Module:
    """A MultiTaskNet from a ``pyface train`` output file; ``what`` names the argument in errors."""
    from pyface.models import MultiTaskNet, model_config

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what}: checkpoint not found: {path}")
    try:
        st = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file
        raise ValueError(f"{what}: cannot read checkpoint {path}: {exc}") from exc
    if not isinstance(st, dict) or "model" not in st or "model_config" not in st:
        raise ValueError(f"{what}: {path} is not a pyface train checkpoint (needs 'model' and 'model_config')")
    cfg = dict(st["model_config"])
    model = MultiTaskNet(model_config(None, **cfg))
    model.load_state_dict(st["model"])
    return model.eval()


def _tasks(model: nn.Module) -> tuple[str, ...]:
    cfg = getattr(model, "config", None)
    return tuple(getattr(cfg, "tasks", ()) or ())


class LandmarkPoseNet(nn.Module):
    """uint8 [B, 3, S, S] -> (landmarks [B, 68, 2] input pixels, pose [B, 3] degrees), float32."""

    def __init__(self, net: nn.Module | str | os.PathLike):
        super().__init__()
        model = net if isinstance(net, nn.Module) else load_model(net, "net")
        tasks = _tasks(model)
        if not {"fld", "hpe"} <= set(tasks):
            src = "the given module" if isinstance(net, nn.Module) else os.fspath(net)
            raise ValueError(f"net: {src} has heads {list(tasks)}; the labeler needs both 'fld' (landmarks) and "
                             "'hpe' (pose), e.g. a checkpoint of the pretrain-fld-hpe recipe")
        self.model = model.eval()
        self.input_size = int(model.config.input_size)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model(images)
        return out["landmarks"].float(), out["pose"].float()


class EyeBlinkNet(nn.Module):
    """uint8 eye crops [N, 3, s, s] -> P(closed) [N] float32."""

    def __init__(self, net: nn.Module | str | os.PathLike):
        super().__init__()
        model = net if isinstance(net, nn.Module) else load_model(net, "eye_net")
        tasks = _tasks(model)
        if tasks and "eyeblink" not in tasks:
            src = "the given module" if isinstance(net, nn.Module) else os.fspath(net)
            raise ValueError(f"eye_net: {src} has heads {list(tasks)}, not 'eyeblink' (train the eyeblink recipe)")
        self.model = model.eval()
        cfg = getattr(model, "config", None)
        self.input_size = int(getattr(cfg, "input_size", 32))

    @torch.no_grad()
    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        out = self.model(crops)
        logit = out[EYEBLINK_OUTPUT] if isinstance(out, dict) else out
        return torch.sigmoid(logit.float().reshape(-1))
