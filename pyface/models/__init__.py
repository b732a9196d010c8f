"""Backbones (ResNet, IResNet), the multitask network of Lee et al. 2024 and the HMTL
heads of Pourmirzaei et al. (pyface.models.hmtl, registered as peers of the others)."""
from pyface.models import eyeblink as _eyeblink  # noqa: F401 - registers the "eyeblink" head
from pyface.models import hmtl  # noqa: F401  (registers the HopeNet / SSL / Barlow Twins heads)
from pyface.models.heads import HEADS, register_head
from pyface.models.multitask import PRESETS, TASKS, ModelConfig, MultiTaskNet, build_model, model_config
from pyface.models.resnet import IResNet, ResNet, iresnet18, iresnet50, iresnet100, resnet18, resnet50

__all__ = ["HEADS", "register_head", "PRESETS", "TASKS", "ModelConfig", "MultiTaskNet", "build_model",
           "model_config", "IResNet", "ResNet", "iresnet18", "iresnet50", "iresnet100", "resnet18", "resnet50"]
