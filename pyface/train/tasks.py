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
    """L_FR: :class:`pyface.nn.LPMCLoss` (owns the class centres) with margins from the
    ground-truth pose; identity -1 is ignored. Metric: 10-fold verification accuracy over
    pairs of the validation identities. Under torchrun the class centres are sharded over
    the ranks; ``sample_rate`` < 1 turns on Partial FC class sampling (an approximation)."""

    head = "fr"
    defaults = {"weight": 1.0, "scale": 64.0, "m1": 0.3, "m2": 0.7, "margin_type": "cosine",
                "num_classes": Key(None, int, ge=1), "sample_rate": Key(1.0, float, gt=0, le=1)}
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
                           sample_rate=o["sample_rate"])
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


@register_task("fld")
class LandmarkTask(Task):
    """L_FLD: Wing + lambda_P * MSE (Eq. 3-9) over rows whose 68 landmarks (and, for the
    dynamic lambda_P, pose) are known, on coordinates divided by ``unit`` pixels (default:
    the model input side). The paper's loss ratios (Table 10) put 100 * L_FLD at half of
    L_FR, i.e. L_FLD ~ 1e-2: normalised coordinates, not pixels. Metric: NME normalised
    by the ground-truth landmark box, and the mean-landmark baseline."""

    head = "fld"
    defaults = {"weight": 100.0, "unit": None, "wing_w": 10.0, "wing_eps": 2.0, "lambda_p": "dynamic"}
    label_keys = ("landmarks", "pose")

    def __init__(self, options=None, context: TaskContext | None = None):
        super().__init__(options, context)
        from pyface.ops import landmark_loss
        from pyface.ops.reference import landmark_loss_reference

        ctx = context or TaskContext(None)
        o = self.options
        self.unit = float(o["unit"] or (ctx.model_config.input_size if ctx.model_config is not None else 1.0))
        self.kw = {"wing_w": o["wing_w"], "wing_eps": o["wing_eps"], "lambda_p": o["lambda_p"]}
        self._loss = landmark_loss if ctx.fused else landmark_loss_reference
        self.mean_label = MeanLabel((68, 2))

    def loss(self, outputs, batch):
        pred = outputs["landmarks"].float() / self.unit
        gt = batch["landmarks"].float() / self.unit
        ok = torch.isfinite(gt).flatten(1).all(1)
        if self.kw["lambda_p"] == "dynamic":  # lambda_P needs the gt pose
            ok = ok & pose_known(batch)
        if not ok.any():
            return _zero(pred)
        return self._loss(pred[ok].contiguous(), gt[ok].contiguous(), pose_or_zero(batch)[ok].contiguous(), **self.kw)

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
            total = term * t.weight if total is None else total + term * t.weight
        return total, parts

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
