"""Training: the task and recipe registries, config, trainer, the embedded demo."""
from pyface.train import eyeblink as _eyeblink  # noqa: F401,E402 - registers the eyeblink task and recipe
from pyface.train import hmtl  # noqa: E402,F401  (registers the HMTL tasks, recipes and AdaBelief)
from pyface.train.config import RECIPES, Recipe, register_recipe
from pyface.train.config import load as load_config
from pyface.train.config import resolve as resolve_config
from pyface.train.optim import OPTIMIZERS, register_optimizer
from pyface.train.tasks import TASKS, MultiTaskLoss, Task, TaskContext, register_task
from pyface.train.trainer import Trainer

__all__ = ["OPTIMIZERS", "RECIPES", "TASKS", "MultiTaskLoss", "Recipe", "Task", "TaskContext", "Trainer",
           "load_config", "register_optimizer", "register_recipe", "register_task", "resolve_config"]
