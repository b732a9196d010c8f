"""Weights of a torchvision ResNet (e.g. ImageNet's ``resnet50-0676ba61.pth``) for a
:class:`~pyface.models.MultiTaskNet` with a ``resnet*`` trunk: the "ImageNet"
initialisation of Pourmirzaei et al.'s Tables 2-3, read from a local file (pyface never
downloads weights; torchvision is not needed).

pyface's ResNet keeps torchvision's layout (``pyface.models.resnet``), so the map is by
name: ``conv1`` / ``bn1`` -> the stem ``shared.0.0`` / ``shared.0.1``; ``layer<k>.*`` ->
``shared.<k>.*`` when stage k is shared, else the stage-4 copy of every head that owns one
(``heads.<head>.stage4.*``, Lee et al.'s 3:1 split); ``fc`` (the 1000 ImageNet classes) is
dropped. pyface normalises inputs as ``(x - 127.5) / 128`` while torchvision's ImageNet
weights saw mean/std-normalised inputs: fine-tuning adapts (docs/papers.md).
"""
from __future__ import annotations

import re

import torch

__all__ = ["is_torchvision_resnet", "from_torchvision_resnet"]

_STEM = {"conv1.": "shared.0.0.", "bn1.": "shared.0.1."}
_LAYER = re.compile(r"^layer([1-4])\.(.*)$")


def is_torchvision_resnet(state: dict) -> bool:
    """Whether ``state`` looks like a torchvision ResNet state dict (``conv1.weight``,
    ``layer1.*``, no pyface ``shared.*`` keys)."""
    keys = [k for k in state if isinstance(k, str)]
    return ("conv1.weight" in keys and any(k.startswith("layer1.") for k in keys)
            and not any(k.startswith("shared.") for k in keys))


def from_torchvision_resnet(state: dict, model) -> dict[str, torch.Tensor]:
    """``state`` (a torchvision ResNet state dict) under ``model``'s parameter/buffer names
    (module docstring). Raises ValueError when ``model`` has no ResNet trunk or a shape
    differs (another depth or width)."""
    if getattr(model.config, "arch", "").startswith("iresnet") or not model.config.arch.startswith("resnet"):
        raise ValueError(f"torchvision ResNet weights need a resnet* trunk, the model's arch is {model.config.arch!r}")
    own = model.state_dict()
    shared = len(model.shared)  # stem + the stages up to the deepest branch point
    stage4_heads = [h for h in model.heads if any(k.startswith(f"heads.{h}.stage4.") for k in own)]
    out: dict[str, torch.Tensor] = {}
    for k, v in state.items():
        if k.startswith("fc."):
            continue
        targets = []
        for src, dst in _STEM.items():
            if k.startswith(src):
                targets = [dst + k[len(src):]]
        m = _LAYER.match(k)
        if m:
            stage, rest = int(m.group(1)), m.group(2)
            if stage < shared:
                targets = [f"shared.{stage}.{rest}"]
            elif stage == 4:
                targets = [f"heads.{h}.stage4.{rest}" for h in stage4_heads]
        for t in targets:
            if t not in own:
                raise ValueError(f"torchvision key {k!r} -> {t!r}: no such tensor in the model")
            if own[t].shape != v.shape:
                raise ValueError(f"torchvision key {k!r} has shape {list(v.shape)}, the model's {t!r} "
                                 f"{list(own[t].shape)} (another ResNet depth or width?)")
            out[t] = v
    if not out:
        raise ValueError("no torchvision ResNet tensor matched the model")
    return out
