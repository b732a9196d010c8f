"""pyface kernels: validated Python entry points over the C++/CUDA extension,
registered as torch.library custom ops (autograd, torch.compile, opcheck); the
backends (pyface/ops/backends/) register their kernels with PyTorch's dispatcher."""
from pyface.ops import backends  # noqa: F401  (the registry the op modules declare their implementations in)
from pyface.ops._ext import cuda_available
from pyface.ops.backends import cpu as _cpu_backend  # noqa: F401  (register themselves)
from pyface.ops.backends import cuda as _cuda_backend  # noqa: F401
from pyface.ops.cosine_dups import cosine_duplicates
from pyface.ops.landmark import landmark_loss, pose_loss
from pyface.ops.lpmc import default_chunk_size, lpmc_loss, lpmc_shard_backward, lpmc_shard_stats, pose_margin
from pyface.ops.selective_fit import selective_fit

__all__ = ["cosine_duplicates", "cuda_available", "default_chunk_size", "landmark_loss", "lpmc_loss",
           "lpmc_shard_backward", "lpmc_shard_stats", "pose_loss", "pose_margin", "selective_fit"]
