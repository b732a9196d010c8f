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

A dataset spec names a dataset type of ``pyface.data.DATASETS`` in ``type``; the other
keys are its keyword arguments. The model's heads follow from the enabled tasks.

Every setting is declared once in :data:`SCHEMA` (a :class:`pyface.schema.Key`: default,
type, range, whether a resumed run may change it); :func:`resolve` checks a whole config
against it before anything is opened or written, naming every bad key in one line.
Adding a setting is one line there (or in the registry entry that owns it: a task's
``defaults``, ``register_optimizer(..., keys=)``, ``register_recipe(..., keys=)``).
"""
from __future__ import annotations

import copy
import re
from dataclasses import MISSING, dataclass, field
from pathlib import Path
from typing import Callable

import yaml

from pyface import schema as S
from pyface.errors import ConfigError
from pyface.registry import Registry, did_you_mean
from pyface.schema import ANY, Key
from pyface.train.monitor import MONITOR_DEFAULTS
from pyface.train.optim import OPTIMIZERS, SCHEDULES, optimizer_keys
from pyface.train.tasks import TASKS


@dataclass(frozen=True)
class Recipe:
    name: str
    tasks: tuple[str, ...]
    preset: str | None = None
    defaults: dict = field(default_factory=dict)  # config overrides applied under the user's config
    keys: dict = field(default_factory=dict)      # extra top-level settings (schema Keys) of this recipe
    # options for tasks of the recipe *when enabled* (under the user's tasks section), e.g. the
    # HMTL recipe's weight 50 for whichever self-supervised task the user picks (Sec. 4.2)
    task_options: dict = field(default_factory=dict)


#: name -> :class:`Recipe` (``RECIPES.names()``, ``RECIPES.get(name)``).
RECIPES: Registry[Recipe] = Registry("recipe")


def register_recipe(name: str, *, tasks, preset: str | None = None, defaults: dict | None = None,
                    keys: dict | None = None, task_options: dict | None = None) -> Recipe:
    """A recipe: the tasks it trains, its model preset, the config defaults it sets, the
    settings it adds (``keys``: name -> :class:`pyface.schema.Key` or section) and the
    options of tasks it applies only to enabled ones (``task_options``)."""
    return RECIPES.register(name, Recipe(name, tuple(tasks), preset, dict(defaults or {}), dict(keys or {}),
                                         dict(task_options or {})))


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


def _device_name(v) -> str | None:
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", v.strip().lower()):
        return f"{v!r} is not a device (use auto, cpu, cuda or cuda:N)"
    return None


def _registered(registry: Registry) -> Callable[[str], str | None]:
    def check(v):
        return None if v in registry else (f"unknown {registry.kind} {v!r}{did_you_mean(v, registry.names())}; "
                                           f"known {registry.plural}: {', '.join(registry.names())}")
    return check


#: ``init.format``: how ``init.checkpoint`` is read (pyface.models.torchvision_weights).
INIT_FORMATS = ("auto", "pyface", "torchvision")

_BN = "BatchNorm needs at least 2 samples per batch on each rank"

#: The whole configuration, one :class:`pyface.schema.Key` per setting (type, range,
#: whether a resumed run may change it). Tasks declare their options in their registry
#: entries (``Task.defaults``), optimizers and recipes may add keys (register_optimizer /
#: register_recipe ``keys=``), dataset specs are checked against their class's arguments.
SCHEMA: dict = {
    "recipe": Key("mtl", str, check=_registered(RECIPES)),
    "out_dir": Key("runs/train", str, may_change=True, doc="the run folder"),
    "seed": Key(0, int, ge=0),
    "device": Key("auto", str, check=_device_name, may_change=True),  # auto | cpu | cuda | cuda:N
    "amp": Key("none", choices=("none", "bf16", "fp16")),
    "model": {"preset": Key(None, str)},  # + the ModelConfig fields (_model_schema); heads come from the tasks
    "tasks": Key(None, (dict, list)),     # {task: options | false} over the recipe's tasks, or a list of tasks
    "data": {
        # a {type: ...} spec is checked in resolve() (pyface.data.spec.check_spec); a path or a
        # dataset given to the Trainer when it is opened
        "train": Key(None, ANY),
        "val": Key(None, ANY, may_change=True),
        "batch_size": Key(64, int, ge=2, why=_BN),  # per rank
        "num_workers": Key(0, int, ge=0, may_change=True),
        "val_batch_size": Key(128, int, ge=1, may_change=True),
    },
    "loss": {"fused": Key(True, bool, may_change=True)},  # False: the pure-PyTorch reference ops (A/B runs)
    "optim": {
        "name": Key("sgd", str, check=_registered(OPTIMIZERS)),
        "lr": Key(0.01, float, gt=0),
        "momentum": Key(0.9, float, ge=0),
        "weight_decay": Key(5e-4, float, ge=0),
        "epochs": Key(20, int, ge=1, may_change=True),
        "max_steps": Key(None, int, ge=1, may_change=True),
        "schedule": Key("exp", choices=SCHEDULES),
        "gamma": Key(0.9, float, gt=0),
        "milestones": Key(None, list, items=int),
        "warmup_steps": Key(0, int, ge=0),
        "warmup_epochs": Key(0, float, ge=0),
        "min_lr_ratio": Key(0.0, float, ge=0, le=1),
        "grad_clip": Key(None, float, gt=0),
        "head_lr_mult": Key(1.0, float, ge=0),
        "kwargs": Key({}, dict),  # passed to the optimizer's constructor
    },
    "init": {"checkpoint": Key(None, str, may_change=True),   # start from these weights (model.pt or a
             "modules": Key(["shared"], list, items=str, may_change=True),  # checkpoint); only these prefixes
             # auto | pyface | torchvision (a torchvision ResNet state dict, e.g. ImageNet)
             "format": Key("auto", choices=INIT_FORMATS, may_change=True)},
    # .bin verification sets evaluated during training (pyface.train.monitor.VerificationMonitor):
    # it watches the run and changes nothing in it, so a resumed run may change it
    "monitor": {
        "bins": Key(MONITOR_DEFAULTS["bins"], list, items=str, may_change=True),
        "every": Key(MONITOR_DEFAULTS["every"], int, ge=1, may_change=True),
        "best": Key(MONITOR_DEFAULTS["best"], str, may_change=True),  # null | <set name> | "mean" (model_best.pt)
        "batch_size": Key(MONITOR_DEFAULTS["batch_size"], int, ge=1, may_change=True),
    },
    "checkpoint_every": Key(500, int, ge=1, may_change=True),  # steps; also at every epoch end
    "log_every": Key(10, int, ge=1, may_change=True),
    "val_every_epochs": Key(1, int, ge=1, may_change=True),
    "val_pairs": Key(3000, int, ge=1, may_change=True),
    "tensorboard": Key(True, bool, may_change=True),
    "progress": Key(True, bool, may_change=True),
}

#: The defaults of every setting (plain data; :data:`SCHEMA` is where they are declared).
DEFAULTS: dict = S.defaults(SCHEMA)

# Where the per-task loss options of the first releases went (clear errors for old configs).
_MOVED = {"lambda_fld": "tasks.fld.weight", "lambda_hpe": "tasks.hpe.weight", "scale": "tasks.fr.scale",
          "m1": "tasks.fr.m1", "m2": "tasks.fr.m2", "margin_type": "tasks.fr.margin_type",
          "num_classes": "tasks.fr.num_classes", "landmark_unit": "tasks.fld.unit", "wing_w": "tasks.fld.wing_w",
          "wing_eps": "tasks.fld.wing_eps", "lambda_p": "tasks.fld.lambda_p"}


def _model_schema() -> dict:
    """model: a preset name + overrides of the ModelConfig fields (types from its defaults)."""
    from dataclasses import fields

    from pyface.models.multitask import ModelConfig

    keys = {"preset": SCHEMA["model"]["preset"]}
    for f in fields(ModelConfig):
        default = getattr(ModelConfig, f.name, None) if f.default_factory is MISSING else f.default_factory()
        keys[f.name] = Key(None, S.infer_key(default).type)  # None: the preset's value
    keys["layers"] = Key(None, list, items=int)
    return keys


def schema(recipe: Recipe | None = None, optimizer: str | None = None) -> dict:
    """:data:`SCHEMA` with what the recipe and the optimizer add."""
    out = {**SCHEMA, "model": _model_schema(), **(recipe.keys if recipe is not None else {})}
    if optimizer in OPTIMIZERS:
        out["optim"] = {**SCHEMA["optim"], **optimizer_keys(optimizer)}
    return out


def merge(base: dict, over: dict | None) -> dict:
    """Recursive dict merge (``over`` wins). A mapping that names another ``type`` than
    the one it overrides (a dataset spec: the recipe's SyntheticEyes, the config's
    EyeFolder) replaces it whole: the old type's arguments mean nothing to the new one."""
    out = {k: copy.deepcopy(v) for k, v in base.items()}
    for k, v in (over or {}).items():
        if (isinstance(v, dict) and isinstance(out.get(k), dict)
                and v.get("type", out[k].get("type")) == out[k].get("type")):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _tasks(recipe: Recipe, spec) -> dict[str, dict]:
    """The enabled tasks with their resolved options (checked against each task's keys)."""
    if spec is None:
        chosen = {t: {} for t in recipe.tasks}
    elif isinstance(spec, (list, tuple)):
        chosen = {t: {} for t in spec}
    else:  # a mapping (the schema checked the type)
        chosen = {t: {} for t in recipe.tasks}
        for t, o in spec.items():
            if o is False:
                chosen.pop(t, None)
            elif o is None or o is True or isinstance(o, dict):
                chosen[t] = {**chosen.get(t, {}), **(o if isinstance(o, dict) else {})}
            else:
                raise ConfigError(f"tasks.{t}: expected a mapping of options, true or false, got {o!r}")
    for t in chosen:
        TASKS.get(t, what="tasks")  # an unknown task: ConfigError suggesting the close names
    chosen = {t: {**recipe.task_options.get(t, {}), **o} for t, o in chosen.items()}
    if not chosen:
        raise ConfigError("tasks: no task is enabled")
    problems, out = [], {}
    for t, o in chosen.items():
        try:
            out[t] = TASKS.get(t).resolve_options(o)
        except ConfigError as exc:
            problems.append(str(exc))
    S.raise_problems(problems)
    return out


def resolve(cfg: dict | None = None) -> dict:
    """DEFAULTS + the recipe's defaults + cfg, validated as a whole against the schema
    (types, ranges, unknown keys at every level: one ConfigError line naming every bad
    key), with the enabled tasks' options and the model's heads filled in. Nothing is
    opened or written here."""
    cfg = cfg or {}
    if not isinstance(cfg, dict):
        raise ConfigError(f"the config must be a mapping, got {type(cfg).__name__}")
    name = cfg.get("recipe", DEFAULTS["recipe"])
    recipe = RECIPES.get(name, what="recipe")
    loss = cfg.get("loss") if isinstance(cfg.get("loss"), dict) else {}
    moved = sorted(set(loss) & set(_MOVED))
    if moved:
        raise ConfigError("per-task options moved to the tasks section: "
                          + ", ".join(f"loss.{k} -> {_MOVED[k]}" for k in moved))
    merged = merge(merge(S.defaults(schema(recipe)), recipe.defaults), cfg)
    optim = merged["optim"].get("name") if isinstance(merged.get("optim"), dict) else None
    if isinstance(optim, str) and optimizer_keys(optim):  # that optimizer's own keys get their defaults too
        merged = merge(merge(S.defaults(schema(recipe, optim)), recipe.defaults), cfg)
    cfg = S.check(merged, schema(recipe, optim))
    if cfg["model"].get("tasks") is not None and not isinstance(cfg["model"]["tasks"], (list, tuple)):
        raise ConfigError(f"model.tasks: expected a list, got {cfg['model']['tasks']!r}")
    cfg["tasks"] = _tasks(recipe, cfg["tasks"])
    heads = [TASKS.get(t).head for t in cfg["tasks"] if TASKS.get(t).head]
    if cfg["model"].get("tasks") not in (None, heads, tuple(heads)):
        raise ConfigError(f"model.tasks follows from the enabled tasks ({heads}); set `tasks:` instead")
    cfg["model"]["tasks"] = heads
    head_opts = {TASKS.get(t).head: TASKS.get(t).head_options(o) for t, o in cfg["tasks"].items()
                 if TASKS.get(t).head}
    for h, o in (cfg["model"].get("head_options") or {}).items():
        head_opts[h] = {**head_opts.get(h, {}), **o}
    cfg["model"]["head_options"] = {h: o for h, o in head_opts.items() if o}
    if cfg["model"].get("preset") is None:
        cfg["model"]["preset"] = recipe.preset
    _check_model(cfg["model"])
    if cfg["data"]["train"] is None:
        raise ConfigError("data.train: must name a dataset (e.g. {type: SyntheticFaces, ...})")
    for part in ("train", "val"):
        if isinstance(cfg["data"][part], dict) and cfg["data"][part]:  # {}: datasets given to the Trainer
            from pyface.data.spec import check_spec

            check_spec(cfg["data"][part], what=f"data.{part}")
    return ResolvedConfig(cfg)


def _check_model(m: dict) -> None:
    """model_config's own checks (preset, arch, heads, sizes), named as model keys."""
    from pyface.models import model_config

    o = dict(m)
    try:
        model_config(o.pop("preset"), **o)
    except (TypeError, ValueError) as exc:
        msg = str(exc)
        first, _, rest = msg.partition(" ")
        if msg.startswith("model."):
            raise ConfigError(msg) from None
        if first in m or first == "tasks":  # "input_size must be in [32, 448], got 3"
            raise ConfigError(f"model.{first}: {rest}") from None
        raise ConfigError(f"model: {msg}") from None


def resume_problems(saved: dict, cfg: dict) -> list[str]:
    """The keys of ``cfg`` that a run resumed from a checkpoint written under the
    configuration ``saved`` must keep but changes (``"optim.lr (0.01 -> 0.02)"``); keys
    declared ``may_change`` (max_steps, log/checkpoint intervals, device, ...) are free.
    A key the saved configuration predates compares as its default."""
    recipe = RECIPES.get(cfg["recipe"], what="recipe") if cfg.get("recipe") in RECIPES else None
    sch = schema(recipe, (cfg.get("optim") or {}).get("name"))
    a, b = S.fixed_part(dict(saved), sch), S.fixed_part(dict(cfg), sch)
    return [f"{k} ({_short(x)} -> {_short(y)})" for k, x, y in _diff(a, b, S.defaults(sch))]


def may_change_on_resume() -> list[str]:
    return S.may_change(SCHEMA)


def _short(v) -> str:
    t = repr(v)
    return t if len(t) <= 60 else t[:57] + "..."


def _diff(a, b, defaults, prefix: str = ""):
    for k in sorted(set(a) | set(b), key=str):
        d = defaults.get(k) if isinstance(defaults, dict) else None
        va, vb = a.get(k, d), b.get(k, d)
        if isinstance(va, dict) and isinstance(vb, dict):
            yield from _diff(va, vb, d if isinstance(d, dict) else {}, f"{prefix}{k}.")
        elif _plain(va) != _plain(vb):
            yield f"{prefix}{k}", va, vb


def _plain(v):
    """Lists and tuples compare alike (YAML round trips); numbers as numbers."""
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


def load(path: str | Path, overrides: dict | None = None) -> dict:
    """The YAML file ``path`` (with ``overrides``) resolved; a file that cannot be read
    or parsed is a ConfigError naming it."""
    try:
        with open(path) as f:
            cfg = yaml.safe_load(f) or {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config ({exc.strerror or exc})") from exc
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where is not None else ""
        raise ConfigError(f"{path}: not valid YAML{at} ({getattr(exc, 'problem', None) or exc})") from exc
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path}: the config must be a YAML mapping")
    try:
        return resolve(merge(cfg, overrides))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
