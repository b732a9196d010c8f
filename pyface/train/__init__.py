"""Multitask training: config, loss, trainer, the embedded demo."""
from pyface.train.config import RECIPES, load as load_config, resolve as resolve_config
from pyface.train.losses import MultiTaskLoss
from pyface.train.trainer import Trainer

__all__ = ["RECIPES", "MultiTaskLoss", "Trainer", "load_config", "resolve_config"]
