"""The task registry: what the trainer trains, one peer per task.

A task knows its model head (a name in :data:`pyface.models.HEADS`), its loss, the batch
keys it needs and its validation metrics. The trainer iterates over the enabled tasks
and never names one. Register a new task with::

    @register_task("mytask")
    class MyTask(Task):
        head = "myhead"                       # or None: reads other heads' outputs
        defaults = {"weight": 1.0, "alpha": 2.0}
        label_keys = ("pose",)                # batch keys collected for metrics()

        def loss(self, outputs, batch): ...   # unweighted scalar
        def metrics(self, pred): ...          # {name: float} from outputs + "<key>_gt"

Hooks with defaults: ``prepare(batch, generator)`` transforms the device batch before the
forward pass (e.g. a self-supervised tile puzzle that writes its own labels);
``observe(batch)`` accumulates training-label statistics (the mean-prediction
baselines); ``head_options(options)`` maps task options to the head builder's keywords.
A task is an ``nn.Module``: its parameters (e.g. the LPMC class centres) are trained
and checkpointed with the model, its buffers checkpointed.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from pyface import schema as S
from pyface.errors import ConfigError
from pyface.eval import metrics as M
from pyface.registry import Registry
from pyface.schema import Key, infer_key

#: name -> Task class (``TASKS.names()``, ``TASKS.get(name)``; unknown names suggest close ones).
TASKS: Registry[type["Task"]] = Registry("task")


def register_task(name: str):
    """Class decorator: ``@register_task("fld")`` on a :class:`Task` subclass (sets its ``name``)."""

    def deco(cls):
        TASKS.register(name, cls)
        cls.name = name
        return cls

    return deco


@dataclass
class TaskContext:
    """What a task may need to build itself: the model config (input size, embedding
    size), the training set (class count), whether to use the fused ops, and the
    torch.distributed process group when training on several ranks (a task may shard
    its parameters over it, as the FR task does its class centres)."""

    model_config: Any
    train_set: Any = None
    fused: bool = True
    process_group: Any = None


class Task(nn.Module):
    name: ClassVar[str] = ""
    head: ClassVar[str | None] = None
    defaults: ClassVar[dict] = {"weight": 1.0}
    label_keys: ClassVar[tuple[str, ...]] = ()
    #: Diagnostic scalars a task sets in ``self.terms`` during ``loss`` (detached); the
    #: trainer logs them as ``<task>_<term>`` beside the task's loss.
    log_terms: ClassVar[tuple[str, ...]] = ()

    def __init__(self, options: dict | None = None, context: TaskContext | None = None):
        super().__init__()
        self.options = self.resolve_options(options)
        self.weight = float(self.options["weight"])
        self.context = context

    @classmethod
    def option_keys(cls) -> dict:
        """The task's settings as :class:`pyface.schema.Key` s: ``defaults`` holds plain
        values (the type is taken from the value) or Keys (ranges, choices); a loss
        weight is a number >= 0."""
        keys = {k: infer_key(v) for k, v in cls.defaults.items()}
        if "weight" in keys and not isinstance(cls.defaults["weight"], Key):
            keys["weight"] = Key(cls.defaults["weight"], float, ge=0)
        return keys

    @classmethod
    def resolve_options(cls, options: dict | None) -> dict:
        """Defaults + ``options``, checked (unknown keys with the closest name, types,
        ranges): a ConfigError naming ``tasks.<name>.<key>``."""
        keys = cls.option_keys()
        options = S.check(dict(options or {}), keys, f"tasks.{cls.name}")
        return {**S.defaults(keys), **options}

    @classmethod
    def head_options(cls, options: dict) -> dict:
        return {}

    def prepare(self, batch: dict, generator: torch.Generator | None = None) -> dict:
        return batch

    def observe(self, batch: dict) -> None:
        pass

    def loss(self, outputs: dict, batch: dict) -> torch.Tensor:
        raise NotImplementedError

    def metrics(self, pred: dict[str, np.ndarray]) -> dict[str, float]:
        return {}


def _zero(t: torch.Tensor) -> torch.Tensor:
    """A 0 that keeps the graph (a term with no usable row)."""
    return t.sum() * 0.0


def pose_known(batch: dict) -> torch.Tensor:
    return torch.isfinite(batch["pose"].float()).all(1)


def pose_or_zero(batch: dict) -> torch.Tensor:
    """Unknown pose -> (0, 0, 0): the base margin m1 (gamma_P = 0) for LPMC; the dynamic
    lambda_P only reads rows whose pose is known."""
    p = batch["pose"].float()
    return torch.where(pose_known(batch)[:, None], p, torch.zeros_like(p))


class MeanLabel(nn.Module):
    """Running mean of a label over the training samples seen (a persistent buffer, so
    it survives checkpoints): the mean-prediction baseline of a regression task
    (``self.mean_label = MeanLabel(shape)``, ``update(labels)`` in ``observe``,
    ``mean()`` in ``metrics``)."""

    def __init__(self, shape):
        super().__init__()
        self.register_buffer("total", torch.zeros(shape, dtype=torch.float64))
        self.register_buffer("count", torch.zeros((), dtype=torch.int64))

    def update(self, values: torch.Tensor) -> None:
        v = values.detach().double().to(self.total.device)
        ok = torch.isfinite(v).flatten(1).all(1)
        self.total += v[ok].sum(0)
        self.count += ok.sum()

    def mean(self) -> np.ndarray | None:
        return (self.total / self.count).float().cpu().numpy() if int(self.count) else None


@register_task("fr")
class FaceRecognitionTask(Task):
    """L_FR: :class:`pyface.nn.LPMCLoss` (owns the class centres) with margins
    m1 + m2 * gamma_P from the ground-truth pose (``gamma``: "sum" or "mean", the two
    readings of Sec. 3.2.2, docs/papers.md; ``m2: 0`` is a constant CosFace margin m1);
    identity -1 is ignored. Metric: 10-fold verification accuracy over
    pairs of the validation identities. Under torchrun the class centres are sharded over
    the ranks; ``sample_rate`` < 1 turns on Partial FC class sampling (an approximation)."""

    head = "fr"
    defaults = {"weight": 1.0, "scale": 64.0, "m1": 0.3, "m2": 0.7, "gamma": Key("sum", choices=("sum", "mean")),
                "margin_type": "cosine", "num_classes": Key(None, int, ge=1),
                "sample_rate": Key(1.0, float, gt=0, le=1)}
    label_keys = ("identity",)

    def __init__(self, options=None, context: TaskContext | None = None):
        super().__init__(options, context)
        from pyface.nn import LPMCLoss

        o, ctx = self.options, context or TaskContext(None)
        n = o["num_classes"] or _num_classes(ctx.train_set) or 0
        if n < 1:
            src = getattr(ctx.train_set, "path", None) or getattr(ctx.train_set, "root", None) or "data.train"
            raise ConfigError(f"tasks.fr: the training set ({src}) has no identity labels (every identity is -1, or "
                              "it does not report num_identities); face recognition needs them: set "
                              "tasks.fr.num_classes, or disable the task (tasks: {fr: false})")
        dim = ctx.model_config.embedding_dim if ctx.model_config is not None else 512
        _check_class_memory(n, dim, ctx)
        self.fr = LPMCLoss(n, dim, m1=o["m1"], m2=o["m2"], scale=o["scale"], margin_type=o["margin_type"],
                           ignore_index=-1, fused=ctx.fused, process_group=ctx.process_group,
                           sample_rate=o["sample_rate"], gamma=o["gamma"])
        self.num_pairs, self.seed = 3000, 0  # set by the trainer (val_pairs, seed)

    def loss(self, outputs, batch):
        return self.fr(outputs["embedding"].float().contiguous(), batch["identity"].long(), pose_or_zero(batch))

    def metrics(self, pred):
        if "embedding" not in pred:
            return {}
        pairs, issame = M.verification_pairs(pred["identity_gt"], self.num_pairs, seed=self.seed)
        if len(pairs) < 10 or not issame.any() or issame.all():
            ids = pred["identity_gt"][pred["identity_gt"] >= 0]
            _warn_once(f"validation: no verification accuracy: the validation set ({len(pred['identity_gt'])} "
                       f"images, {len(np.unique(ids))} identities) gives {int(issame.sum())} genuine and "
                       f"{int((~issame).sum())} impostor pairs; the FR metric needs at least 10 pairs of both kinds "
                       "(several images of several identities)")
            return {}
        v = M.verification_accuracy(pred["embedding"], pairs, issame)
        return {"verification_accuracy": v["accuracy"], "verification_std": v["std"],
                "verification_pairs": float(len(pairs))}


#: ``tasks.fld.units``: what the Wing and MSE terms of Eq. 3-5 see, and what L_FLD is divided
#: by (docs/papers.md, "Units of Eq. 3-5"). name -> (errors in pixels divided by the input
#: side?, L_FLD divided by the input side?).
LANDMARK_UNITS = {
    "pixels": (False, True),        # default: Wing/MSE on input-pixel errors, L_FLD / side
    "normalized": (True, False),    # errors / side (pyface before 0.2: Wing ~ 5 L1, lambda_P MSE ~ 1e-4 of it)
    "pixels-raw": (False, False),   # the literal reading: pixels, undivided (lambda_1 L_FLD then dominates)
}
PROJECTIONS = ("orthographic", "perspective")


def _lambda_p_problem(value) -> str | None:
    if value == "dynamic" or (isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0):
        return None
    return f"must be 'dynamic' or a number >= 0, got {value!r}"


@register_task("fld")
class LandmarkTask(Task):
    """L_FLD: Wing + lambda_P * MSE (Eq. 3-9) over rows whose 68 landmarks (and, for the
    dynamic lambda_P, pose) are known. Metric: NME normalised by the ground-truth landmark
    box, and the mean-landmark baseline.

    Options (docs/papers.md discusses each reading):

    - ``units`` (:data:`LANDMARK_UNITS`): "pixels" (default) evaluates Wing (w = 10, eps = 2
      pixels, as in Feng et al.) and the MSE on errors in pixels of the network input, so
      Wing's logarithmic part covers errors below ~10 px and lambda_P * MSE grows with the
      error ("focuses more on large errors"), and divides L_FLD by the input side, which
      keeps its size (and lambda_1 = 100's balance, Table 10) that of the paper's loss
      ratios. "normalized": errors divided by the side (Wing ~ 5 * L1, the MSE term
      negligible); "pixels-raw": pixels, undivided. Legacy ``unit: <px>`` (configs written
      before ``units``): errors divided by ``unit`` pixels (null: the side), undivided.
    - ``mean_shape``: the mean 3D face of Eq. 6, a JSON file written by
      ``pyface data mean-shape`` (the paper's frontal 300W-LP mean); null = the shipped
      MediaPipe-derived face (:func:`pyface.geometry.default_mean_shape`).
    - ``projection``: "orthographic" (default; the fused kernel) or "perspective" (Eq. 8
      as a pinhole camera ``camera: {fx, fy, cx, cy, distance}``, defaults f = side,
      c = side / 2, distance 60 in the mean shape's units (cm)).

    Logged each step beside ``fld`` (the unweighted L_FLD): ``fld_wing`` and
    ``fld_lambda_mse`` (its two terms, same units), ``fld_mse`` (L_MSE alone) and
    ``fld_lambda_p`` (the batch mean of lambda_P)."""

    head = "fld"
    defaults = {"weight": 100.0, "units": "pixels", "wing_w": 10.0, "wing_eps": 2.0,
                # "dynamic" (Eq. 5: from the gt pose) or a constant (Table 9's lambda_P = 0 / 1 rows)
                "lambda_p": Key("dynamic", S.ANY, check=_lambda_p_problem),
                "mean_shape": None, "projection": "orthographic", "camera": None}
    label_keys = ("landmarks", "pose")
    log_terms = ("wing", "lambda_mse", "mse", "lambda_p")
    _CAMERA = ("fx", "fy", "cx", "cy", "distance")

    @classmethod
    def resolve_options(cls, options):
        options = dict(options or {})
        legacy = "unit" in options
        unit = options.pop("unit", None)
        if legacy and "units" in options:
            raise ConfigError("tasks.fld: give units (pixels | normalized | pixels-raw) or the older unit, not both")
        o = super().resolve_options(options)
        if legacy:
            if unit is not None and not (isinstance(unit, (int, float)) and not isinstance(unit, bool) and unit > 0):
                raise ConfigError(f"tasks.fld.unit must be a positive number of pixels or null, got {unit!r} "
                                  "(newer configs use tasks.fld.units)")
            o["unit"] = unit
        if o["units"] not in LANDMARK_UNITS:
            raise ConfigError(f"tasks.fld.units must be one of {list(LANDMARK_UNITS)}, got {o['units']!r}")
        if o["projection"] not in PROJECTIONS:
            raise ConfigError(f"tasks.fld.projection must be one of {list(PROJECTIONS)}, got {o['projection']!r}")
        cam = o["camera"]
        if cam is not None and (not isinstance(cam, dict) or set(cam) - set(cls._CAMERA)):
            raise ConfigError(f"tasks.fld.camera must map some of {list(cls._CAMERA)} to numbers, got {cam!r}")
        return o

    def __init__(self, options=None, context: TaskContext | None = None):
        super().__init__(options, context)
        from pyface import geometry
        from pyface.ops import landmark_loss
        from pyface.ops.reference import landmark_loss_reference

        ctx = context or TaskContext(None)
        o = self.options
        side = float(ctx.model_config.input_size if ctx.model_config is not None else 1.0)
        if "unit" in o:  # legacy spelling: coordinates / unit (the side when null), L_FLD undivided
            self.coord_div, self.loss_div = float(o["unit"] or side), 1.0
        else:
            by_side, loss_by_side = LANDMARK_UNITS[o["units"]]
            self.coord_div, self.loss_div = (side if by_side else 1.0), (side if loss_by_side else 1.0)
        self.kw = {"wing_w": o["wing_w"], "wing_eps": o["wing_eps"], "lambda_p": o["lambda_p"]}
        self._loss = landmark_loss if ctx.fused else landmark_loss_reference
        self.mean_label = MeanLabel((68, 2))
        shape = (geometry.default_mean_shape(torch.float32) if o["mean_shape"] is None
                 else geometry.load_mean_shape(o["mean_shape"], what="tasks.fld.mean_shape").float())
        # not persistent: checkpoints keep their layout; the config names the file
        self.register_buffer("mean_shape", shape, persistent=False)
        cam = {"fx": side, "fy": side, "cx": side / 2, "cy": side / 2, "distance": 60.0, **(o["camera"] or {})}
        self.camera = {k: float(v) for k, v in cam.items()}
        self.terms: dict[str, torch.Tensor] = {}

    def _perspective_lambda(self, pred, pose):
        """lambda_P [b] of Eq. 8-9 with the pinhole projection (no gradient)."""
        from pyface import geometry

        with torch.no_grad():  # float64: a far camera (distance >> the face) loses float32's digits
            proj = geometry.project_perspective(self.mean_shape.double(), pose.double(), **self.camera)
            lam = (geometry.normalize_shape(proj) - geometry.normalize_shape(pred.double())).norm(dim=-1).mean(dim=-1)
            return lam.to(pred.dtype)

    def loss(self, outputs, batch):
        pred = outputs["landmarks"].float() / self.coord_div
        gt = batch["landmarks"].float() / self.coord_div
        ok = torch.isfinite(gt).flatten(1).all(1)
        if self.kw["lambda_p"] == "dynamic":  # lambda_P needs the gt pose
            ok = ok & pose_known(batch)
        if not ok.any():
            self.terms = {}
            return _zero(pred)
        p, g, pose = pred[ok].contiguous(), gt[ok].contiguous(), pose_or_zero(batch)[ok].contiguous()
        wing_kw = {"wing_w": self.kw["wing_w"], "wing_eps": self.kw["wing_eps"]}
        if self.kw["lambda_p"] == "dynamic" and self.options["projection"] == "perspective":
            lam = self._perspective_lambda(p.detach(), pose)
            mse = (p - g).pow(2).flatten(1).mean(1)
            rows = self._loss(p, g, pose, lambda_p=0.0, reduction="none", **wing_kw) + lam * mse
        else:
            rows, lam = self._loss(p, g, pose, mean_shape=self.mean_shape, lambda_p=self.kw["lambda_p"],
                                   reduction="none", return_lambda=True, **wing_kw)
            mse = (p.detach() - g).pow(2).flatten(1).mean(1)
        with torch.no_grad():
            d = self.loss_div
            lam_mse = lam.detach() * mse.detach()
            self.terms = {"wing": (rows.detach() - lam_mse).mean() / d, "lambda_mse": lam_mse.mean() / d,
                          "mse": mse.detach().mean() / d, "lambda_p": lam.detach().mean()}
        return rows.mean() / self.loss_div

    def observe(self, batch):
        self.mean_label.update(batch["landmarks"])

    def metrics(self, pred):
        if "landmarks" not in pred:
            return {}
        gt = pred["landmarks_gt"]
        m = {"nme": M.nme(pred["landmarks"], gt)}
        mean = self.mean_label.mean()
        if mean is not None:
            m["nme_baseline"] = M.nme(np.broadcast_to(mean, gt.shape), gt)
        return m


@register_task("hpe")
class PoseTask(Task):
    """L_HPE: MAE (Eq. 2) in degrees over rows whose pose is known. Metrics: yaw / pitch /
    roll / mean MAE and the mean-pose baseline."""

    head = "hpe"
    defaults = {"weight": 10.0}
    label_keys = ("pose",)

    def __init__(self, options=None, context: TaskContext | None = None):
        super().__init__(options, context)
        from pyface.ops import pose_loss
        from pyface.ops.reference import pose_loss_reference

        self._loss = pose_loss if (context is None or context.fused) else pose_loss_reference
        self.mean_label = MeanLabel((3,))

    def loss(self, outputs, batch):
        pred, ok = outputs["pose"].float(), pose_known(batch)
        if not ok.any():
            return _zero(pred)
        return self._loss(pred[ok].contiguous(), batch["pose"].float()[ok].contiguous())

    def observe(self, batch):
        self.mean_label.update(batch["pose"])

    def metrics(self, pred):
        if "pose" not in pred:
            return {}
        gt = pred["pose_gt"]
        r = M.pose_mae(pred["pose"], gt)
        m = {"pose_mae_deg": r["mae"], "yaw_mae_deg": r["yaw"], "pitch_mae_deg": r["pitch"], "roll_mae_deg": r["roll"]}
        mean = self.mean_label.mean()
        if mean is not None:
            m["pose_mae_baseline_deg"] = M.pose_mae(np.broadcast_to(mean, gt.shape), gt)["mae"]
        return m


_warned: set[str] = set()


def _warn_once(msg: str) -> None:
    if msg not in _warned:
        _warned.add(msg)
        warnings.warn(msg, RuntimeWarning, stacklevel=3)


def _check_class_memory(n: int, dim: int, ctx: "TaskContext") -> None:
    """The class-centre matrix (n x dim float32, plus as much optimizer state) must fit:
    an identity numbered 10^12 asks for a 10^12-row matrix, which fails deep in the
    allocator ("you tried to allocate 128 TB") -- say why here."""
    import os

    world = ctx.process_group.size() if ctx.process_group is not None else 1
    need = 2 * 4 * dim * -(-n // world)  # weights + momentum, one rank's shard
    try:
        have = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return
    if need > have:
        raise ConfigError(f"tasks.fr: {n} classes (the largest identity label + 1, or tasks.fr.num_classes) x {dim} "
                          f"dims need {need / 2**30:.0f} GiB of class centres per process, more than this machine's "
                          f"{have / 2**30:.0f} GiB; identities must be numbered 0..N-1 (renumber the labels)")


def _num_classes(dataset) -> int | None:
    for attr in ("num_classes", "num_identities"):
        v = getattr(dataset, attr, None)
        if isinstance(v, int) and v > 0:
            return v
    return None


class MultiTaskLoss(nn.Module):
    """The enabled tasks and their weighted sum (Eq. 1 for the paper's tasks:
    L_FR + 100 * L_FLD + 10 * L_HPE). ``tasks``: names (default options) or a mapping
    name -> options. forward(outputs, batch) -> (total, parts) with ``parts[name]`` the
    detached unweighted term."""

    def __init__(self, tasks, context: TaskContext | None = None):
        super().__init__()
        items = tasks.items() if isinstance(tasks, dict) else ((t, {}) for t in tasks)
        mods = {}
        for name, opts in items:
            mods[name] = TASKS.get(name, what="tasks")(opts, context)
        if not mods:
            raise ValueError("at least one task must be enabled")
        self.tasks = nn.ModuleDict(mods)

    def prepare(self, batch: dict, generator: torch.Generator | None = None) -> dict:
        for t in self.tasks.values():
            batch = t.prepare(batch, generator)
        return batch

    def observe(self, batch: dict) -> None:
        for t in self.tasks.values():
            t.observe(batch)

    def forward(self, outputs: dict, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        total, parts = None, {}
        for name, t in self.tasks.items():
            term = t.loss(outputs, batch)
            parts[name] = term.detach()
            terms = getattr(t, "terms", {})
            for k in t.log_terms:  # a term the task could not compute this step (no row) logs 0
                parts[f"{name}_{k}"] = terms.get(k, parts[name] * 0.0)
            total = term * t.weight if total is None else total + term * t.weight
        return total, parts

    @property
    def log_names(self) -> tuple[str, ...]:
        """The keys of ``forward``'s parts: each task's name and its ``<task>_<term>`` diagnostics."""
        return tuple(n for name, t in self.tasks.items() for n in (name, *(f"{name}_{k}" for k in t.log_terms)))

    @property
    def weights(self) -> dict[str, float]:
        return {n: t.weight for n, t in self.tasks.items()}

    @property
    def label_keys(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(k for t in self.tasks.values() for k in t.label_keys))

    def metrics(self, pred: dict[str, np.ndarray]) -> dict[str, float]:
        m: dict[str, float] = {}
        for t in self.tasks.values():
            m.update(t.metrics(pred))
        return m
