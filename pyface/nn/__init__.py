"""torch.nn modules over pyface.ops."""
from pyface.nn.lpmc import LPMCLoss

__all__ = ["LPMCLoss"]
