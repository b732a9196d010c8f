"""Optimisers (a registry: a recipe names one, the trainer builds it) and the lr schedule."""
from __future__ import annotations

import math

import torch

from pyface.registry import Registry

#: name -> ``fn(param_groups, optim_cfg) -> torch.optim.Optimizer``.
OPTIMIZERS: Registry = Registry("optimizer")
_KEYS: dict[str, dict] = {}


def register_optimizer(name: str, keys: dict | None = None):
    """``@register_optimizer("adam")`` on ``fn(param_groups, optim_cfg) -> torch.optim.Optimizer``;
    ``optim_cfg`` is the config's ``optim`` section (lr, weight_decay, momentum, kwargs...).
    ``keys``: settings this optimizer adds to the ``optim`` section (name ->
    :class:`pyface.schema.Key`), e.g. ``{"betas": Key([0.9, 0.999], list, items=float)}``."""
    _KEYS[name] = dict(keys or {})
    return OPTIMIZERS.register(name)


def optimizer_keys(name: str) -> dict:
    """The ``optim`` settings optimizer ``name`` adds (see :func:`register_optimizer`)."""
    return dict(_KEYS.get(name, {}))


@register_optimizer("sgd")
def _sgd(groups, o):
    return torch.optim.SGD(groups, lr=o["lr"], momentum=o["momentum"], weight_decay=o["weight_decay"],
                           **(o.get("kwargs") or {}))


@register_optimizer("adamw")
def _adamw(groups, o):
    return torch.optim.AdamW(groups, lr=o["lr"], weight_decay=o["weight_decay"], **(o.get("kwargs") or {}))


SCHEDULES = ("exp", "cosine", "constant", "multistep")


def lr_factor(step: int, steps_per_epoch: int, total_steps: int, o: dict) -> float:
    """Multiplier of the base lr at ``step``: linear warmup (``warmup_steps``, or
    ``warmup_epochs`` epochs when that is 0), then "exp" (gamma ** epoch,
    the paper's 0.9 per epoch), "multistep" (gamma ** number of ``milestones`` epochs
    passed), "cosine" (to min_lr_ratio at total_steps) or "constant"."""
    w = (o.get("warmup_steps", 0) or 0) or (o.get("warmup_epochs", 0) or 0) * steps_per_epoch
    if step < w:
        return (step + 1) / w
    epoch = step // steps_per_epoch
    if o["schedule"] == "exp":
        return o["gamma"] ** epoch
    if o["schedule"] == "multistep":
        return o["gamma"] ** sum(epoch >= m for m in (o.get("milestones") or ()))
    if o["schedule"] == "cosine":
        t = min(1.0, (step - w) / max(1, total_steps - w))
        lo = o.get("min_lr_ratio", 0.0)
        return lo + (1 - lo) * 0.5 * (1 + math.cos(math.pi * t))
    return 1.0
