"""torch.nn modules and losses over pyface.ops."""
from pyface.nn.hopenet import bin_centres, hopenet_angles, hopenet_bins, hopenet_loss, num_bins, pose_regression_loss
from pyface.nn.lpmc import LPMCLoss

__all__ = ["LPMCLoss", "bin_centres", "hopenet_angles", "hopenet_bins", "hopenet_loss", "num_bins",
           "pose_regression_loss"]
