"""Training configuration: nested dict with defaults, loaded from YAML, and the recipes.

A config file only needs what differs from DEFAULTS and the recipe's defaults, e.g.::

    recipe: mtl                      # see RECIPES (register_recipe adds more)
    out_dir: runs/mtl
    model: {preset: iresnet50-multi}
    tasks:                           # options per task (pyface.train.tasks); the recipe
      fr: {scale: 64, m1: 0.3}       # enables its tasks, `name: false` disables one,
      fld: {weight: 100}             # a list names exactly the tasks to train
    data:
      train: {type: SyntheticFaces, num_identities: 1000, images_per_identity: 20, image_size: 112}
      val: {type: SyntheticFaces, num_identities: 100, images_per_identity: 10, image_size: 112,
            identity_offset: 100000, seed: 1}
      batch_size: 64
    optim: {epochs: 20}              # SGD lr 0.01 x 0.9 per epoch by default
    amp: bf16                        # none | bf16 | fp16 (fp16 uses a grad scaler)

A dataset spec names a class or factory of ``pyface.data`` in ``type``; the other keys
are its keyword arguments. The model's heads follow from the enabled tasks.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from pyface.errors import ConfigError
from pyface.registry import Registry, did_you_mean
from pyface.train.monitor import MONITOR_DEFAULTS
from pyface.train.optim import OPTIMIZERS, SCHEDULES
from pyface.train.tasks import TASKS


@dataclass(frozen=True)
class Recipe:
    name: str
    tasks: tuple[str, ...]
    preset: str | None = None
    defaults: dict = field(default_factory=dict)  # config overrides applied under the user's config
    # options for tasks of the recipe *when enabled* (under the user's tasks section), e.g. the
    # HMTL recipe's weight 50 for whichever self-supervised task the user picks (Sec. 4.2)
    task_options: dict = field(default_factory=dict)


#: name -> :class:`Recipe` (``RECIPES.names()``, ``RECIPES.get(name)``).
RECIPES: Registry[Recipe] = Registry("recipe")


def register_recipe(name: str, *, tasks, preset: str | None = None, defaults: dict | None = None,
                    task_options: dict | None = None) -> Recipe:
    """A recipe: the tasks it trains, its model preset, the config defaults it sets and the
    options of tasks it applies only to enabled ones (``task_options``)."""
    return RECIPES.register(name, Recipe(name, tuple(tasks), preset, dict(defaults or {}), dict(task_options or {})))


class ResolvedConfig(dict):
    """What :func:`resolve` returns: a plain dict (YAML- and JSON-able) that the Trainer
    takes as it is; any other mapping is resolved first. :func:`merge` returns plain
    dicts, so overrides merged into a resolved config are resolved again."""


yaml.SafeDumper.add_representer(ResolvedConfig, yaml.representer.SafeRepresenter.represent_dict)


# Lee et al. 2024: the MTL model, its single-task rows (Table 8) and the labeling net.
register_recipe("mtl", tasks=("fr", "fld", "hpe"), preset="iresnet50-multi")
register_recipe("stl-fr", tasks=("fr",), preset="iresnet50-multi")
register_recipe("stl-fld", tasks=("fld",), preset="iresnet50-multi")
register_recipe("stl-hpe", tasks=("hpe",), preset="iresnet50-multi")
register_recipe("pretrain-fld-hpe", tasks=("fld", "hpe"), preset="resnet50-fld-hpe")

DEFAULTS: dict = {
    "recipe": "mtl",
    "out_dir": "runs/train",
    "seed": 0,
    "device": "auto",               # auto | cpu | cuda | cuda:N
    "amp": "none",                  # none | bf16 | fp16
    "model": {"preset": None},      # preset name + ModelConfig overrides (heads come from the tasks)
    "tasks": None,                  # {task: options | false} over the recipe's tasks, or a list of tasks
    "data": {"train": None, "val": None, "batch_size": 64, "num_workers": 0, "val_batch_size": 128},
    "loss": {"fused": True},        # False: the pure-PyTorch reference ops (A/B runs)
    "optim": {"name": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4, "epochs": 20, "max_steps": None,
              "schedule": "exp", "gamma": 0.9, "milestones": None, "warmup_steps": 0, "warmup_epochs": 0,
              "min_lr_ratio": 0.0,
              "grad_clip": None, "head_lr_mult": 1.0, "kwargs": {}},
    "init": {"checkpoint": None,    # start from these weights (model.pt or a checkpoint), e.g. an SSL
             "modules": ["shared"],  # pre-trained encoder; only parameters under these prefixes
             "format": "auto"},     # auto | pyface | torchvision (a torchvision ResNet state dict, e.g. ImageNet)
    # .bin verification sets evaluated during training (pyface.train.monitor.VerificationMonitor):
    # bins: [paths], every: steps, best: null | <set name> | "mean" (model_best.pt), batch_size
    "monitor": dict(MONITOR_DEFAULTS),
    "checkpoint_every": 500,        # steps; also at every epoch end
    "log_every": 10,
    "val_every_epochs": 1,
    "val_pairs": 3000,
    "tensorboard": True,
    "progress": True,
}

#: ``init.format``: how ``init.checkpoint`` is read (pyface.models.torchvision_weights).
INIT_FORMATS = ("auto", "pyface", "torchvision")

# Where the per-task loss options of the first releases went (clear errors for old configs).
_MOVED = {"lambda_fld": "tasks.fld.weight", "lambda_hpe": "tasks.hpe.weight", "scale": "tasks.fr.scale",
          "m1": "tasks.fr.m1", "m2": "tasks.fr.m2", "margin_type": "tasks.fr.margin_type",
          "num_classes": "tasks.fr.num_classes", "landmark_unit": "tasks.fld.unit", "wing_w": "tasks.fld.wing_w",
          "wing_eps": "tasks.fld.wing_eps", "lambda_p": "tasks.fld.lambda_p"}


def merge(base: dict, over: dict | None) -> dict:
    """Recursive dict merge (``over`` wins); unknown top-level sections are rejected."""
    out = {k: copy.deepcopy(v) for k, v in base.items()}
    for k, v in (over or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _tasks(recipe: Recipe, spec) -> dict[str, dict]:
    """The enabled tasks with their resolved options."""
    if spec is None:
        chosen = {t: {} for t in recipe.tasks}
    elif isinstance(spec, (list, tuple)):
        chosen = {t: {} for t in spec}
    elif isinstance(spec, dict):
        chosen = {t: {} for t in recipe.tasks}
        for t, o in spec.items():
            if o is False:
                chosen.pop(t, None)
            elif o is None or o is True or isinstance(o, dict):
                chosen[t] = {**chosen.get(t, {}), **(o if isinstance(o, dict) else {})}
            else:
                raise ValueError(f"tasks.{t} must be a mapping of options, true or false, got {o!r}")
    else:
        raise ValueError(f"tasks must be a mapping or a list of task names, got {spec!r}")
    for t in chosen:
        TASKS.get(t, what="tasks")  # an unknown task: ConfigError suggesting the close names
    chosen = {t: {**recipe.task_options.get(t, {}), **o} for t, o in chosen.items()}
    if not chosen:
        raise ValueError("no task is enabled")
    return {t: TASKS.get(t).resolve_options(o) for t, o in chosen.items()}


def resolve(cfg: dict | None = None) -> dict:
    """DEFAULTS + the recipe's defaults + cfg, validated, with the enabled tasks' options
    and the model's heads filled in."""
    name = (cfg or {}).get("recipe", DEFAULTS["recipe"])
    recipe = RECIPES.get(name, what="recipe")
    cfg = merge(merge(DEFAULTS, recipe.defaults), cfg or {})
    unknown = set(cfg) - set(DEFAULTS)
    if unknown:
        hints = "".join(did_you_mean(k, DEFAULTS) for k in sorted(unknown))
        raise ConfigError(f"unknown config keys {sorted(unknown)}{hints}; known: {sorted(DEFAULTS)}")
    moved = sorted(set(cfg["loss"]) & set(_MOVED))
    if moved:
        raise ValueError("per-task options moved to the tasks section: "
                         + ", ".join(f"loss.{k} -> {_MOVED[k]}" for k in moved))
    cfg["tasks"] = _tasks(recipe, cfg["tasks"])
    heads = [TASKS.get(t).head for t in cfg["tasks"] if TASKS.get(t).head]
    if cfg["model"].get("tasks") not in (None, heads, tuple(heads)):
        raise ValueError(f"model.tasks follows from the enabled tasks ({heads}); set `tasks:` instead")
    cfg["model"]["tasks"] = heads
    head_opts = {TASKS.get(t).head: TASKS.get(t).head_options(o) for t, o in cfg["tasks"].items()
                 if TASKS.get(t).head}
    for h, o in (cfg["model"].get("head_options") or {}).items():
        head_opts[h] = {**head_opts.get(h, {}), **o}
    cfg["model"]["head_options"] = {h: o for h, o in head_opts.items() if o}
    if cfg["model"].get("preset") is None:
        cfg["model"]["preset"] = recipe.preset
    if cfg["amp"] not in ("none", "bf16", "fp16"):
        raise ValueError(f"amp must be none, bf16 or fp16, got {cfg['amp']!r}")
    OPTIMIZERS.get(cfg["optim"]["name"], what="optim.name")
    if cfg["optim"]["schedule"] not in SCHEDULES:
        raise ValueError(f"optim.schedule must be one of {SCHEDULES}, got {cfg['optim']['schedule']!r}")
    bad = set(cfg["monitor"] or {}) - set(MONITOR_DEFAULTS)
    if bad:
        raise ConfigError(f"unknown monitor keys {sorted(bad)}; known: {sorted(MONITOR_DEFAULTS)}")
    if cfg["init"].get("format", "auto") not in INIT_FORMATS:
        raise ConfigError(f"init.format must be one of {list(INIT_FORMATS)}, got {cfg['init']['format']!r}")
    if cfg["data"]["train"] is None:
        raise ValueError("data.train must name a dataset (e.g. {type: SyntheticFaces, ...})")
    for k in ("batch_size", "checkpoint_every", "log_every"):
        v = cfg["data"][k] if k == "batch_size" else cfg[k]
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{k} must be a positive int, got {v!r}")
    return ResolvedConfig(cfg)


def load(path: str | Path, overrides: dict | None = None) -> dict:
    with open(path) as f:
        cfg = yaml.safe_load(f) or {}
    if not isinstance(cfg, dict):
        raise ValueError(f"{path}: the config must be a YAML mapping")
    return resolve(merge(cfg, overrides))
