"""pyface kernels: validated Python entry points over the C++/CUDA extension,
registered as torch.library custom ops (autograd, torch.compile, opcheck)."""
from pyface.ops._ext import cuda_available
from pyface.ops.lpmc import default_chunk_size, lpmc_loss, pose_margin
from pyface.ops.landmark import landmark_loss, pose_loss

__all__ = ["cuda_available", "default_chunk_size", "landmark_loss", "lpmc_loss", "pose_loss", "pose_margin"]
