"""LPMC loss head (Eq. 10), single-process or with its class centres sharded by class
across the ranks of a torch.distributed process group (Partial FC style).

Sharded: rank r owns rows [start_r, start_r + n_r) of the C x D class-centre matrix,
n_r = C // W + (r < C % W), start_r = r * (C // W) + min(r, C % W). A forward step
all-gathers the embeddings (with autograd), the labels and the margins of every rank
(local batches may differ in size), runs the fused chunk kernels on the local shard
(pyface.ops.lpmc_shard_stats), combines the per-row max and sum of exponentials across
ranks (all-reduce MAX, then SUM of the rescaled sums, together with the target logit,
which only the owning rank has), and returns the mean over the global batch on every
rank. Backward runs pyface.ops.lpmc_shard_backward with the global log-sum-exp, and a
reduce-scatter sums the embedding-gradient parts of all shards and hands each rank the
rows of its own samples, times W: DDP then averages the backbone gradients over W ranks, which
reproduces single-process training. No B x C tensor exists on any rank.
"""
from __future__ import annotations

import math

import torch
import torch.distributed as dist
from torch import nn

from pyface.ops import lpmc_loss, pose_margin
from pyface.ops.lpmc import (
    GAMMA_READINGS,
    POSE_MARGIN_M1,
    POSE_MARGIN_M2,
    check_label_values,
    lpmc_shard_backward,
    lpmc_shard_stats,
    rescale_row_sum,
)
from pyface.ops.reference import lpmc_loss_reference

__all__ = ["LPMCLoss", "class_shard", "init_class_centres"]

# Class centres are drawn in fixed blocks of rows, each from its own seeded generator,
# so that any sharding (and one process) produces the same matrix.
_INIT_BLOCK = 1 << 14


def class_shard(num_classes: int, world_size: int, rank: int) -> tuple[int, int]:
    """(start_r, n_r) of rank ``rank``: sizes differ by at most one, lower ranks larger."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
    base, extra = divmod(num_classes, world_size)
    return rank * base + min(rank, extra), base + (rank < extra)


def init_class_centres(num_classes: int, embedding_dim: int, seed: int, start: int = 0,
                       count: int | None = None) -> torch.Tensor:
    """Rows [start, start + count) of the N(0, 1/D) initial class-centre matrix of ``seed``
    (float32, CPU); the same rows whatever the sharding."""
    count = num_classes - start if count is None else count
    out = torch.empty(count, embedding_dim)
    std = 1.0 / math.sqrt(embedding_dim)
    for b in range(start // _INIT_BLOCK, -(-(start + count) // _INIT_BLOCK)):
        b0 = b * _INIT_BLOCK
        g = torch.Generator().manual_seed(seed * 1_000_003 + b)
        block = torch.randn(min(_INIT_BLOCK, num_classes - b0), embedding_dim, generator=g) * std
        lo, hi = max(start, b0), min(start + count, b0 + block.shape[0])
        out[lo - start:hi - start] = block[lo - b0:hi - b0]
    return out


# Newer torch names it reduce_scatter_single (reduce_scatter_tensor warns); same signature.
_reduce_scatter = getattr(dist, "reduce_scatter_single", None) or dist.reduce_scatter_tensor


def _gather_rows(t: torch.Tensor, sizes: list[int], group) -> torch.Tensor:
    """Concatenation over ranks of t [n_r, ...] (n_r = sizes[r]); padded to max(sizes)
    on the wire because all_gather wants equal shapes."""
    bmax = max(sizes)
    pad = t.new_zeros((bmax,) + tuple(t.shape[1:]))
    pad[: t.shape[0]] = t
    parts = [torch.empty_like(pad) for _ in sizes]
    dist.all_gather(parts, pad, group=group)
    return torch.cat([p[:n] for p, n in zip(parts, sizes)])


class _ShardedLPMC(torch.autograd.Function):
    """Per-row losses [B_global] of the class-sharded LPMC loss (identical on all ranks)."""

    @staticmethod
    def forward(ctx, x_local, w, labels_all, margins_all, sizes, group, rank, class_offset, num_classes, kw):
        world = len(sizes)
        x_all = _gather_rows(x_local.detach(), sizes, group) if group is not None else x_local.detach()
        st = lpmc_shard_stats(x_all, w, labels_all, margins_all, class_offset=class_offset, num_classes=num_classes,
                              **kw)
        gmax = st.row_max.clone()
        if world > 1:
            dist.all_reduce(gmax, op=dist.ReduceOp.MAX, group=group)
        sums = torch.stack([rescale_row_sum(st.row_max, st.row_sum, gmax), st.target])
        if world > 1:
            dist.all_reduce(sums, op=dist.ReduceOp.SUM, group=group)
        lse = gmax + torch.log(sums[0])
        valid = labels_all != kw["ignore_index"]
        rows = torch.where(valid, lse - sums[1], torch.zeros_like(lse))
        ctx.save_for_backward(x_all, w, labels_all, margins_all, lse, st.inv_norm_x, st.inv_norm_w)
        ctx.args = (sizes, group, rank, class_offset, num_classes, kw, x_local.dtype)
        return rows

    @staticmethod
    def backward(ctx, grad_rows):
        x_all, w, labels_all, margins_all, lse, inx, inw = ctx.saved_tensors
        sizes, group, rank, class_offset, num_classes, kw, x_dtype = ctx.args
        dx, dw = lpmc_shard_backward(grad_rows.contiguous(), x_all, w, labels_all, margins_all, lse,
                                     class_offset=class_offset, num_classes=num_classes, inv_norm_x=inx,
                                     inv_norm_w=inw, **kw)
        world = len(sizes)
        if world > 1:
            # Sum the shards' parts in the accumulation type and keep this rank's rows:
            # a reduce-scatter over the padded [W * max(sizes), D] layout. x W: each
            # rank's loss is the global mean and DDP divides the backbone gradient by W
            # (Partial FC does the same).
            bmax = max(sizes)
            rows = torch.cat([torch.arange(n, device=dx.device) + r * bmax for r, n in enumerate(sizes)])
            pad = dx.new_zeros((world * bmax, dx.shape[1])).index_copy_(0, rows, dx)
            mine = dx.new_empty((bmax, dx.shape[1]))
            _reduce_scatter(mine, pad, op=dist.ReduceOp.SUM, group=group)
            dx = mine[:sizes[rank]] * world
        return dx.to(x_dtype), dw, None, None, None, None, None, None, None, None


class LPMCLoss(nn.Module):
    """Large-pose margin cosine loss head (Eq. 10): owns the class centres W [C, D].

    forward(embeddings [B, D], labels [B], pose [B, 3] (yaw, pitch, roll) degrees)
    -> scalar loss; the margin of sample i is m1 + m2 * gamma_P(pose_i), gamma_P by the
    reading ``gamma`` ("sum" or "mean", :func:`pyface.ops.pose_margin`).
    ``fused=False`` computes the same loss with the pure-PyTorch reference (A/B runs;
    single-process only).

    ``process_group``: shard the class centres over its ranks (see the module
    docstring): ``weight`` is this rank's [n_r, D] block, starting at class
    ``class_start``; the loss is the mean over the global batch on every rank; after
    backward ``weight.grad`` holds those rows of the single-process gradient and the
    embeddings' gradient is W times the single-process rows of this rank's samples.
    Every rank of the group must call forward (collectives inside).

    ``sample_rate`` < 1 (Partial FC's class sampling; training mode only): each step,
    every rank keeps the positive classes of the global batch that it owns and a seeded
    random share of its other classes, at least ceil(sample_rate * n_r) in all. The
    softmax normaliser then runs over the sampled classes only: an approximation of
    the loss, and centres left out get no gradient that step. Off (1.0) by default.
    The sampling depends on (sample_seed, step counter, rank); the counter is a buffer,
    so resuming from a state dict continues the same sequence.
    """

    def __init__(self, num_classes: int, embedding_dim: int, m1: float = POSE_MARGIN_M1, m2: float = POSE_MARGIN_M2,
                 scale: float = 64.0, margin_type: str = "cosine", *, ignore_index: int = -1,
                 chunk_size: int | None = None, fused: bool = True, process_group=None, sample_rate: float = 1.0,
                 sample_seed: int = 0, init_seed: int | None = None, gamma: str = "sum"):
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if embedding_dim < 1:
            raise ValueError(f"embedding_dim must be >= 1, got {embedding_dim}")
        if margin_type not in ("cosine", "arc"):
            raise ValueError(f"margin_type must be 'cosine' or 'arc', got {margin_type!r}")
        if not (isinstance(sample_rate, (int, float)) and 0.0 < sample_rate <= 1.0):
            raise ValueError(f"sample_rate must be in (0, 1], got {sample_rate!r}")
        if process_group is not None and not fused:
            raise ValueError("fused=False (the reference) is single-process only; use process_group=None")
        self.num_classes, self.embedding_dim = num_classes, embedding_dim
        if gamma not in GAMMA_READINGS:
            raise ValueError(f"gamma must be one of {list(GAMMA_READINGS)}, got {gamma!r}")
        self.m1, self.m2, self.scale, self.margin_type, self.gamma = m1, m2, scale, margin_type, gamma
        self.ignore_index, self.chunk_size, self.fused = ignore_index, chunk_size, fused
        self.process_group, self.sample_rate, self.sample_seed = process_group, float(sample_rate), int(sample_seed)
        if process_group is not None:
            self.world_size, self.rank = dist.get_world_size(process_group), dist.get_rank(process_group)
        else:
            self.world_size, self.rank = 1, 0
        self.class_start, self.num_local = class_shard(num_classes, self.world_size, self.rank)
        if init_seed is None:  # from the global RNG: ranks seeded alike draw the same matrix
            init_seed = int(torch.randint(0, 2**31 - 1, ()).item())
        self.weight = nn.Parameter(init_class_centres(num_classes, embedding_dim, init_seed, self.class_start,
                                                      self.num_local))
        if self.sharded:  # (start, rows, total rows): read by the trainer's checkpoint split
            self.weight.pyface_shard = (self.class_start, self.num_local, num_classes)
        self.register_buffer("sample_step", torch.zeros((), dtype=torch.int64))

    @property
    def sharded(self) -> bool:
        return self.process_group is not None

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
        margins = pose_margin(pose, self.m1, self.m2, self.gamma).to(embeddings.device)
        w = self.weight if self.weight.dtype == embeddings.dtype else self.weight.to(embeddings.dtype)
        sampling = self.sample_rate < 1.0 and self.training
        if not self.sharded and not sampling:
            kw = dict(scale=self.scale, margin_type=self.margin_type, ignore_index=self.ignore_index)
            if self.fused:
                return lpmc_loss(embeddings, w, labels, margins, chunk_size=self.chunk_size, **kw)
            return lpmc_loss_reference(embeddings, w, labels, margins, **kw)
        return self._sharded_forward(embeddings, w, labels, margins, sampling)

    def _sharded_forward(self, x, w, labels, margins, sampling):
        if x.ndim != 2 or labels.ndim != 1 or labels.shape[0] != x.shape[0]:
            raise ValueError(f"embeddings [B, D] and labels [B] must agree, got {list(x.shape)} and "
                             f"{list(labels.shape)}")
        if labels.dtype != torch.int64:
            raise TypeError(f"labels must be int64, got {labels.dtype}")
        group = self.process_group
        if group is not None:
            n = torch.tensor([x.shape[0]], dtype=torch.int64, device=x.device)
            parts = [torch.empty_like(n) for _ in range(self.world_size)]
            dist.all_gather(parts, n, group=group)
            sizes = [int(p.item()) for p in parts]
            labels_all = _gather_rows(labels, sizes, group)
            margins_all = _gather_rows(margins.float(), sizes, group)
        else:
            sizes, labels_all, margins_all = [x.shape[0]], labels, margins.float()
        count = (labels_all != self.ignore_index).sum().clamp(min=1)
        if sampling:  # labels are remapped below; check them against C first
            check_label_values(labels_all, margins_all, self.num_classes, self.ignore_index)
        if sum(sizes) == 0:
            return (x.sum() + w.sum()) * 0.0
        offset, num_classes, local_labels = self.class_start, self.num_classes, labels_all
        if sampling:
            w, local_labels, num_classes = self._sample(w, labels_all)
            offset = 0
        kw = dict(scale=self.scale, margin_type=self.margin_type, ignore_index=self.ignore_index,
                  chunk_size=self.chunk_size)
        rows = _ShardedLPMC.apply(x, w, local_labels, margins_all, sizes, group, self.rank, offset, num_classes, kw)
        return rows.sum() / count

    def _sample(self, w, labels_all):
        """(sampled centres, labels in the sampled index space, its class count). Labels of
        classes this rank does not own map to one extra index past the sample."""
        valid = labels_all != self.ignore_index
        local = labels_all - self.class_start
        owned = valid & (local >= 0) & (local < self.num_local)
        positive = torch.unique(local[owned]).cpu()
        k = min(self.num_local, max(math.ceil(self.sample_rate * self.num_local), positive.numel()))
        g = torch.Generator().manual_seed((self.sample_seed * 1_000_003 + int(self.sample_step) * 7919
                                           + self.rank * 104_729) % (2**63 - 1))
        score = torch.rand(self.num_local, generator=g)
        score[positive] = 2.0  # positives always kept
        index = torch.topk(score, k).indices.sort().values.to(w.device)
        self.sample_step += 1
        mapped = torch.searchsorted(index, local.clamp(0, max(self.num_local - 1, 0)))
        elsewhere = k if k != self.ignore_index else k + 1
        local_labels = torch.where(owned, mapped, torch.full_like(mapped, elsewhere))
        local_labels = torch.where(valid, local_labels, labels_all)
        return w.index_select(0, index), local_labels, elsewhere + 1

    def extra_repr(self) -> str:
        s = (f"num_classes={self.num_classes}, embedding_dim={self.embedding_dim}, m1={self.m1}, m2={self.m2}, "
             f"gamma={self.gamma!r}, scale={self.scale}, margin_type={self.margin_type!r}, fused={self.fused}")
        if self.sharded:
            s += f", shard=[{self.class_start}, {self.class_start + self.num_local}) of {self.world_size} ranks"
        if self.sample_rate < 1.0:
            s += f", sample_rate={self.sample_rate}"
        return s
