"""Training configuration: nested dict with defaults, loaded from YAML, and the recipes.

A config file only needs what differs from DEFAULTS, e.g.::

    recipe: mtl                      # mtl | stl-fr | stl-fld | stl-hpe | pretrain-fld-hpe
    out_dir: runs/mtl
    model: {preset: iresnet50-multi}
    data:
      train: {type: SyntheticFaces, num_identities: 1000, images_per_identity: 20, image_size: 112}
      val: {type: SyntheticFaces, num_identities: 100, images_per_identity: 10, image_size: 112,
            identity_offset: 100000, seed: 1}
      batch_size: 64
    optim: {epochs: 20}              # SGD lr 0.01 x 0.9 per epoch by default
    amp: bf16                        # none | bf16 | fp16 (fp16 uses a grad scaler)

A dataset spec names a class or factory of ``pyface.data`` in ``type``; the other keys
are its keyword arguments.
"""
from __future__ import annotations

import copy
from pathlib import Path

import yaml

RECIPES = {
    # recipe: (tasks, default model preset)
    "mtl": (("fr", "fld", "hpe"), "iresnet50-multi"),
    "stl-fr": (("fr",), "iresnet50-multi"),
    "stl-fld": (("fld",), "iresnet50-multi"),
    "stl-hpe": (("hpe",), "iresnet50-multi"),
    "pretrain-fld-hpe": (("fld", "hpe"), "resnet50-fld-hpe"),
}

DEFAULTS: dict = {
    "recipe": "mtl",
    "out_dir": "runs/train",
    "seed": 0,
    "device": "auto",               # auto | cpu | cuda | cuda:N
    "amp": "none",                  # none | bf16 | fp16
    "model": {"preset": None},      # preset name + ModelConfig overrides (tasks come from the recipe)
    "data": {"train": None, "val": None, "batch_size": 64, "num_workers": 0, "val_batch_size": 128},
    "loss": {"fused": True, "lambda_fld": 100.0, "lambda_hpe": 10.0, "scale": 64.0, "m1": 0.3, "m2": 0.7,
             "margin_type": "cosine", "num_classes": None, "landmark_unit": None,
             "wing_w": 10.0, "wing_eps": 2.0, "lambda_p": "dynamic"},
    "optim": {"lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4, "epochs": 20, "max_steps": None,
              "schedule": "exp", "gamma": 0.9, "warmup_steps": 0, "min_lr_ratio": 0.0, "grad_clip": None,
              "head_lr_mult": 1.0},
    "checkpoint_every": 500,        # steps; also at every epoch end
    "log_every": 10,
    "val_every_epochs": 1,
    "val_pairs": 3000,
    "tensorboard": True,
    "progress": True,
}


def merge(base: dict, over: dict | None) -> dict:
    """Recursive dict merge (``over`` wins); unknown top-level sections are rejected."""
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def resolve(cfg: dict | None = None) -> dict:
    """DEFAULTS + cfg, validated, with the recipe's tasks and preset filled in."""
    cfg = merge(DEFAULTS, cfg or {})
    unknown = set(cfg) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown config keys {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    if cfg["recipe"] not in RECIPES:
        raise ValueError(f"recipe must be one of {sorted(RECIPES)}, got {cfg['recipe']!r}")
    tasks, preset = RECIPES[cfg["recipe"]]
    cfg["model"].setdefault("tasks", list(tasks))
    if cfg["model"].get("tasks") is None:
        cfg["model"]["tasks"] = list(tasks)
    if cfg["model"].get("preset") is None:
        cfg["model"]["preset"] = preset
    if cfg["amp"] not in ("none", "bf16", "fp16"):
        raise ValueError(f"amp must be none, bf16 or fp16, got {cfg['amp']!r}")
    if cfg["optim"]["schedule"] not in ("exp", "cosine", "constant"):
        raise ValueError(f"optim.schedule must be exp, cosine or constant, got {cfg['optim']['schedule']!r}")
    if cfg["data"]["train"] is None:
        raise ValueError("data.train must name a dataset (e.g. {type: SyntheticFaces, ...})")
    for k in ("batch_size", "checkpoint_every", "log_every"):
        v = cfg["data"][k] if k == "batch_size" else cfg[k]
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{k} must be a positive int, got {v!r}")
    return cfg


def load(path: str | Path, overrides: dict | None = None) -> dict:
    with open(path) as f:
        cfg = yaml.safe_load(f) or {}
    if not isinstance(cfg, dict):
        raise ValueError(f"{path}: the config must be a YAML mapping")
    return resolve(merge(cfg, overrides))
