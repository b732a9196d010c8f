"""HMTL (Pourmirzaei et al., *How Self-Supervised Learning Can be Used for Fine-Grained
Head Pose Estimation?*) as peers of the trainer's registries: tasks, recipes and the
AdaBelief optimiser.

Tasks (``tasks:`` section of a config; options with their defaults below):

- ``hopenet``: HopeNet bins + expectation (Formula 2), head "hopenet" after stage 4.
- ``pose_regression``: MSE + RMSE of a plain regression head (Formula 3).
- ``ssl_puzzle`` / ``ssl_rotation`` / ``ssl_puzzle_rotation``: the self-supervised
  auxiliary heads at flag point ``flag`` on ``k`` x ``k`` tiles. Their ``prepare`` hook
  puzzles / rotates the training batch's images (:func:`pyface.ssl.tile_transform`) and
  writes the labels, so every head -- the supervised ones too -- sees the transformed
  image, as in the paper. Loss: the per-region cross-entropies summed over regions
  (and over puzzle + rotation), task weight 1 as in Formulas 1 and 3 (Tables 1 and 6);
  the ``hmtl`` recipe (Sec. 4.2, Tables 2-5) sets weight 50, the section's "all loss
  function of self-supervised heads ... were multiplied by 50". Validation images are
  not transformed (the trainer's ``predict`` skips the hooks).
- ``ssl_image_rotation``: whole-image 4-way rotation pre-training (a linear probe on the
  pooled trunk output).
- ``barlow_twins``: the Barlow Twins loss on the projector's outputs for the two views
  ``image`` / ``image_view2`` of :class:`pyface.data.transforms.BarlowTwinsViews`; both
  views go through the net as one batch of 2B (so BatchNorm statistics are shared by the
  two views, where the reference implementation runs them separately).

Recipes: ``hopenet`` (SL), ``hmtl`` (HopeNet + 3x3 puzzling at flag 3, SSL loss x 50, by
default -- Sec. 4.2; pick the SSL task, k, flag and weight in ``tasks:``), ``ssl-rotation``, ``ssl-puzzle``,
``barlow-twins``, ``linear-eval`` (frozen encoder from ``init.checkpoint``) and
``finetune`` (5 warm-up epochs). Defaults of the supervised recipes are the paper's:
AdaBelief, lr 1e-3 x 0.1 at epochs 20 and 100, 110 epochs, batch 64, AMP (bf16),
ResNet50 at 224 x 224.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from pyface.eval import metrics as M
from pyface.nn import hopenet_angles, hopenet_loss, num_bins, pose_regression_loss
from pyface.ssl import barlow_twins_loss, tile_transform
from pyface.train.config import register_recipe
from pyface.train.optim import register_optimizer
from pyface.train.tasks import MeanLabel, Task, _zero, register_task

__all__ = ["ANGLE_NAMES", "HopeNetTask", "PoseRegressionTask", "SSLTileTask", "BarlowTwinsTask"]

ANGLE_NAMES = ("yaw", "pitch", "roll")


def _angle_index(angles) -> list[int]:
    angles = list(angles)
    if not angles or any(a not in ANGLE_NAMES for a in angles) or len(set(angles)) != len(angles):
        raise ValueError(f"angles must be distinct names from {ANGLE_NAMES}, got {angles}")
    return [ANGLE_NAMES.index(a) for a in angles]


class _PoseMetrics(Task):
    """Shared by the two supervised pose tasks: MAE per angle over the chosen ``angles``
    (their mean is ``pose_mae_deg``), the mean-label baseline, and the "reduced" test set
    of the paper (rows with every |angle| <= ``eval_max_angle``, e.g. 99 for AFLW2000)."""

    label_keys = ("pose",)

    def __init__(self, options=None, context=None):
        super().__init__(options, context)
        self.idx = _angle_index(self.options["angles"])
        self.mean_label = MeanLabel((3,))

    def _targets(self, batch):
        """Labels of the chosen angles [B, A]; NaN for the others is never needed."""
        return batch["pose"].float()[:, self.idx]

    def observe(self, batch):
        self.mean_label.update(batch["pose"])

    def _angles(self, pred: dict) -> np.ndarray | None:
        raise NotImplementedError

    def metrics(self, pred):
        p = self._angles(pred)
        if p is None:
            return {}
        gt = pred["pose_gt"]
        lim = self.options["eval_max_angle"]
        if lim is not None:
            keep = np.abs(gt).max(1) <= lim
            p, gt = p[keep], gt[keep]
        r = M.pose_mae(p, gt)
        m = {f"{ANGLE_NAMES[i]}_mae_deg": r[ANGLE_NAMES[i]] for i in self.idx}
        m["pose_mae_deg"] = float(np.mean([r[ANGLE_NAMES[i]] for i in self.idx]))
        mean = self.mean_label.mean()
        if mean is not None:
            b = M.pose_mae(np.broadcast_to(mean, gt.shape), gt)
            m["pose_mae_baseline_deg"] = float(np.mean([b[ANGLE_NAMES[i]] for i in self.idx]))
        return m


@register_task("hopenet")
class HopeNetTask(_PoseMetrics):
    """Formula 2: per chosen angle CE over bins + alpha * RMSE of the softmax expectation
    (:func:`pyface.nn.hopenet_loss`). ``bin_width`` 3 (66 bins) or 1 (198 bins);
    ``out_of_range``: labels beyond +-99 degrees "clamp" (edge bin) or "exclude";
    ``angles``: the supervised angles (ETH-XGaze has only yaw and pitch)."""

    head = "hopenet"
    defaults = {"weight": 1.0, "bin_width": 3.0, "alpha": 2.0, "dropout": 0.5, "out_of_range": "clamp",
                "angles": list(ANGLE_NAMES), "eval_max_angle": None}

    @classmethod
    def head_options(cls, options):
        return {"num_bins": num_bins(options["bin_width"]), "dropout": options["dropout"]}

    def loss(self, outputs, batch):
        logits = outputs["pose_logits"][:, self.idx]
        return hopenet_loss(logits, self._targets(batch), self.options["bin_width"], self.options["alpha"],
                            out_of_range=self.options["out_of_range"])

    def _angles(self, pred):
        if "pose_logits" not in pred:
            return None
        return hopenet_angles(torch.from_numpy(pred["pose_logits"]), self.options["bin_width"]).numpy()


@register_task("pose_regression")
class PoseRegressionTask(_PoseMetrics):
    """Formula 3: MSE + RMSE per chosen angle of the plain regression head (degrees);
    ``mse_weight: 0`` gives Formula 1 (RMSE only, the flag search of Table 1)."""

    head = "pose_regression"
    defaults = {"weight": 1.0, "dropout": 0.4, "angles": list(ANGLE_NAMES), "eval_max_angle": None,
                "mse_weight": 1.0}

    @classmethod
    def head_options(cls, options):
        return {"dropout": options["dropout"]}

    def loss(self, outputs, batch):
        return pose_regression_loss(outputs["pose"][:, self.idx], self._targets(batch), self.options["mse_weight"])

    def _angles(self, pred):
        return pred.get("pose")


class SSLTileTask(Task):
    """Self-supervised tile task (Sec. 3.2): ``prepare`` transforms the batch images and
    stores ``ssl_perm`` / ``ssl_rot`` [B, k*k]; ``loss`` sums the per-region CEs."""

    mode = "puzzle"
    defaults = {"weight": 1.0, "k": 2, "flag": 3, "dropout": 0.2, "block": True}

    def __init__(self, options=None, context=None):
        super().__init__(options, context)
        k = self.options["k"]
        if not isinstance(k, int) or k < 2:
            raise ValueError(f"tasks.{self.name}.k must be an int >= 2, got {k!r}")
        if self.options["flag"] not in (1, 2, 3, 4):
            raise ValueError(f"tasks.{self.name}.flag must be 1, 2, 3 or 4, got {self.options['flag']!r}")

    @classmethod
    def head_options(cls, options):
        return {k: options[k] for k in ("k", "flag", "dropout", "block")}

    def prepare(self, batch, generator=None):
        if "ssl_perm" in batch:
            raise ValueError(f"task {self.name}: another enabled task already transformed the tiles; "
                             "enable one tile task at a time")
        out = dict(batch)
        # remainder="keep": 224 px with k = 3 tiles 222 px and leaves a 2 px border in place
        out["image"], out["ssl_perm"], out["ssl_rot"] = tile_transform(batch["image"], self.options["k"],
                                                                       self.mode, generator, remainder="keep")
        return out

    def loss(self, outputs, batch):
        logits = outputs[self.head].float()
        b, n, _ = logits.shape
        total = None
        for kind, labels in (("puzzle", batch["ssl_perm"]), ("rotation", batch["ssl_rot"])):
            if kind not in self.mode:
                continue
            sl = slice(0, n) if kind == "puzzle" else slice(logits.shape[2] - 4, logits.shape[2])
            # mean over the B*n region samples, times n: the sum over regions of each head's mean CE
            ce = F.cross_entropy(logits[..., sl].reshape(b * n, -1), labels.reshape(-1)) * n
            total = ce if total is None else total + ce
        return total


@register_task("ssl_puzzle")
class SSLPuzzleTask(SSLTileTask):
    """k x k jigsaw puzzle: region i's head predicts which original tile sits there."""
    head, mode = "ssl_puzzle", "puzzle"


@register_task("ssl_rotation")
class SSLRotationTask(SSLTileTask):
    """k x k per-tile rotation: region i's head predicts its quarter turns (4 classes)."""
    head, mode = "ssl_rotation", "rotation"


@register_task("ssl_puzzle_rotation")
class SSLPuzzleRotationTask(SSLTileTask):
    """Puzzle + rotation of at most two tiles; separate puzzle and rotation branches."""
    head, mode = "ssl_puzzle_rotation", "puzzle_rotation"


@register_task("ssl_image_rotation")
class SSLImageRotationTask(Task):
    """Whole-image rotation by a random multiple of 90 degrees, a 4-way classification
    (Gidaris et al.); the transform is the 1 x 1 case of the tile rotation."""

    head = "ssl_image_rotation"
    defaults = {"weight": 1.0}

    def prepare(self, batch, generator=None):
        out = dict(batch)
        out["image"], _, out["ssl_rot"] = tile_transform(batch["image"], 1, "rotation", generator)
        return out

    def loss(self, outputs, batch):
        return F.cross_entropy(outputs[self.head].float().reshape(-1, 4), batch["ssl_rot"].reshape(-1))


@register_task("barlow_twins")
class BarlowTwinsTask(Task):
    """Barlow Twins (Sec. 4.3): needs ``image_view2`` in the batch (the dataset's transform
    :class:`pyface.data.transforms.BarlowTwinsViews`); the two views are stacked into one
    2B batch in ``prepare`` and split again in ``loss``."""

    head = "barlow_twins"
    defaults = {"weight": 1.0, "lambd": 0.0051, "dim": 2048}

    @classmethod
    def head_options(cls, options):
        return {"dim": options["dim"]}

    def prepare(self, batch, generator=None):
        if "image_view2" not in batch:
            raise ValueError("task barlow_twins needs two views per sample: give the training set the "
                             "transform BarlowTwinsViews (batch key 'image_view2')")
        out = dict(batch)
        out["image"] = torch.cat([batch["image"], batch["image_view2"].to(batch["image"].dtype)])
        return out

    def loss(self, outputs, batch):
        z1, z2 = outputs["bt_projection"].float().chunk(2)
        if z1.shape[0] < 2:
            return _zero(z1)
        return barlow_twins_loss(z1, z2, self.options["lambd"])


@register_optimizer("adabelief")
def _adabelief(groups, o):
    """AdaBelief (Zhuang et al. 2020) from pytorch-optimizer, the paper's optimiser."""
    from pytorch_optimizer import AdaBelief

    return AdaBelief(groups, lr=o["lr"], weight_decay=o["weight_decay"], **(o.get("kwargs") or {}))


# ---------------------------------------------------------------------- recipes
#: Sec. 4.2: AdaBelief, lr 1e-3 x 0.1 at epochs 20 and 100, 110 epochs, batch 64, AMP.
PAPER_OPTIM = {"name": "adabelief", "lr": 1e-3, "weight_decay": 0.0, "schedule": "multistep", "gamma": 0.1,
               "milestones": [20, 100], "epochs": 110}
_SL = {"optim": PAPER_OPTIM, "amp": "bf16", "data": {"batch_size": 64}}
#: Sec. 4.3: batch 64, 64 epochs, lr 1e-3 with cosine decay (pre-training recipes).
_PRETRAIN = {"optim": {**PAPER_OPTIM, "schedule": "cosine", "milestones": None, "epochs": 64}, "amp": "bf16",
             "data": {"batch_size": 64, "val": None}}

register_recipe("hopenet", tasks=("hopenet",), preset="resnet50-hopenet", defaults=_SL)
#: Sec. 4.2's weight of every self-supervised loss ("multiplied by 50"); Formulas 1-3 have none.
SEC42_SSL_WEIGHT = 50.0
register_recipe("hmtl", tasks=("hopenet", "ssl_puzzle"), preset="resnet50-hopenet",
                defaults={**_SL, "tasks": {"ssl_puzzle": {"k": 3, "flag": 3}}},
                task_options={t: {"weight": SEC42_SSL_WEIGHT} for t in ("ssl_puzzle", "ssl_rotation",
                                                                        "ssl_puzzle_rotation")})
register_recipe("ssl-rotation", tasks=("ssl_rotation",), preset="resnet50-hopenet",
                defaults={**_PRETRAIN, "tasks": {"ssl_rotation": {"weight": 1.0, "flag": 4}}})
register_recipe("ssl-puzzle", tasks=("ssl_puzzle",), preset="resnet50-hopenet",
                defaults={**_PRETRAIN, "tasks": {"ssl_puzzle": {"weight": 1.0, "flag": 4}}})
register_recipe("barlow-twins", tasks=("barlow_twins",), preset="resnet50-hopenet", defaults=_PRETRAIN)
register_recipe("linear-eval", tasks=("hopenet",), preset="resnet50-hopenet",
                defaults={**_SL, "model": {"frozen": ["shared"]}})
register_recipe("finetune", tasks=("hopenet",), preset="resnet50-hopenet",
                defaults={**_SL, "optim": {**PAPER_OPTIM, "warmup_epochs": 5}})
