"""Training: the task and recipe registries, config, trainer, the embedded demo."""
from pyface.train.config import RECIPES, Recipe, load as load_config, register_recipe, resolve as resolve_config
from pyface.train.optim import OPTIMIZERS, register_optimizer
from pyface.train.tasks import TASKS, MultiTaskLoss, Task, TaskContext, register_task
from pyface.train.trainer import Trainer
from pyface.train import eyeblink as _eyeblink  # noqa: F401,E402 - registers the eyeblink task and recipe

__all__ = ["OPTIMIZERS", "RECIPES", "TASKS", "MultiTaskLoss", "Recipe", "Task", "TaskContext", "Trainer",
           "load_config", "register_optimizer", "register_recipe", "register_task", "resolve_config"]
