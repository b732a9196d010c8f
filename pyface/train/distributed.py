"""Distributed training plumbing on torch.distributed (one process per device, launched
by ``torchrun``): DDP around the model (the process group's set-up and teardown are
pyface.distributed's),
gradient bookkeeping for the parameters DDP does not own (the class-sharded LPMC
centres and any replicated loss parameters), and the per-rank checkpoint split.

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT; with WORLD_SIZE > 1 the
trainer initialises the default group (NCCL on CUDA, gloo on CPU), and runs one rank
per device (cuda:LOCAL_RANK). Without those variables everything is single-process
and this module does nothing.

What each rank holds: a full replica of the model (DDP averages its gradients) and
rows [start_r, start_r + n_r) of every class-sharded matrix (``LPMCLoss`` with the
process group) together with that shard's optimizer state.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from pyface.distributed import DistContext, setup  # noqa: F401 - re-exported (the trainer's Dist.setup)

__all__ = ["DistContext", "any_rank", "clip_grad_norm", "grad_scaler", "is_sharded", "mean_over_ranks", "merge_state",
           "setup", "sharded_params", "split_state", "sync_replicated_grads", "wrap_model"]


def wrap_model(model: nn.Module, ctx: DistContext, device: torch.device) -> nn.Module:
    """DDP around the model (backbone + heads) when distributed, else the model itself."""
    if not ctx.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [device.index] if device.type == "cuda" else None
    # Every head takes part in every step (a task without usable rows returns 0 * output).
    return DDP(model, device_ids=ids)


def is_sharded(p: torch.Tensor) -> bool:
    """Marked by its owner with ``pyface_shard = (start, rows, total_rows)`` (dim 0)."""
    return getattr(p, "pyface_shard", None) is not None


def sharded_params(module: nn.Module) -> dict[str, torch.Tensor]:
    """The parameters of ``module`` that are split by rank (marked by their owner)."""
    return {n: p for n, p in module.named_parameters() if is_sharded(p)}


def sync_replicated_grads(params, ctx: DistContext) -> None:
    """Average the gradients of loss parameters that every rank holds in full (DDP only
    covers the model); sharded parameters already have their exact gradient."""
    if not ctx.enabled:
        return
    grads = [p.grad for p in params if p.grad is not None and not is_sharded(p)]
    if grads:
        flat = torch.cat([g.reshape(-1).float() for g in grads])
        dist.all_reduce(flat, group=ctx.group)
        flat /= ctx.world_size
        i = 0
        for g in grads:
            g.copy_(flat[i:i + g.numel()].view_as(g))
            i += g.numel()


def clip_grad_norm(params, max_norm: float, ctx: DistContext) -> torch.Tensor:
    """clip_grad_norm_ over replicated parameters plus all ranks' shards: the norm of the
    single-process gradient."""
    params = [p for p in params if p.grad is not None]
    if not ctx.enabled:
        return torch.nn.utils.clip_grad_norm_(params, max_norm)
    rep = [p.grad.detach().float().pow(2).sum() for p in params if not is_sharded(p)]
    shard = [p.grad.detach().float().pow(2).sum() for p in params if is_sharded(p)]
    dev = params[0].grad.device if params else torch.device("cpu")
    sq_shard = torch.stack(shard).sum() if shard else torch.zeros((), device=dev)
    dist.all_reduce(sq_shard, group=ctx.group)
    sq = sq_shard + (torch.stack(rep).sum() if rep else 0.0)
    norm = sq.sqrt()
    coef = (max_norm / (norm + 1e-6)).clamp(max=1.0)
    for p in params:
        p.grad.mul_(coef.to(p.grad.dtype))
    return norm


def grad_scaler(device: torch.device, enabled: bool, ctx: DistContext):
    """fp16 loss scaling; distributed, the inf/nan check is all-reduced so that every rank
    skips the same steps (the sharded centres' gradients differ by rank)."""
    if ctx.enabled and enabled:
        from torch.distributed.fsdp.sharded_grad_scaler import ShardedGradScaler

        return ShardedGradScaler(device.type, enabled=True, process_group=ctx.group)
    return torch.amp.GradScaler(device.type, enabled=enabled)


def any_rank(flag: bool, ctx: DistContext, device: torch.device) -> bool:
    """True on every rank when ``flag`` is true on at least one."""
    if not ctx.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX, group=ctx.group)
    return bool(t.item())


# ----------------------------------------------------------------------------- checkpoints
# A distributed checkpoint is rank 0's trainer state without the loss module (model,
# optimizer state of the model's parameters, scheduler, scaler, logs, config) plus one
# shard file per rank: its loss-module state (the class-centre shard and the buffers),
# the optimizer state of the loss parameters keyed by name, and its RNG state.


def _param_index(optimizer) -> dict[int, int]:
    """id(param) -> its index in optimizer.state_dict() (parameters in group order)."""
    params = [p for g in optimizer.param_groups for p in g["params"]]
    return {id(p): i for i, p in enumerate(params)}


def split_state(state: dict, loss: nn.Module, optimizer, ctx: DistContext) -> tuple[dict, dict]:
    """(rank-0 part, this rank's shard) of the trainer's state dict."""
    index = _param_index(optimizer)
    loss_idx = {n: index[id(p)] for n, p in loss.named_parameters() if id(p) in index}
    opt = state["optimizer"]
    main = {k: v for k, v in state.items() if k != "loss"}
    main["optimizer"] = {"state": {i: s for i, s in opt["state"].items() if i not in loss_idx.values()},
                         "param_groups": opt["param_groups"]}
    main["world_size"] = ctx.world_size
    shard = {"step": state["step"], "rank": ctx.rank, "world_size": ctx.world_size, "loss": state["loss"],
             "optimizer": {n: opt["state"][i] for n, i in loss_idx.items() if i in opt["state"]},
             "optimizer_index": loss_idx, "rng": state["rng"],
             "shards": {n: tuple(p.pyface_shard) for n, p in sharded_params(loss).items()}}
    return main, shard


def merge_state(main: dict, shard: dict) -> dict:
    """The trainer state dict of one rank (or of one process) from the two parts."""
    if shard["step"] != main["step"]:
        raise ValueError(f"checkpoint shard of rank {shard['rank']} is from step {shard['step']}, "
                         f"the main checkpoint from step {main['step']}")
    st = {k: v for k, v in main.items() if k != "world_size"}
    opt_state = dict(main["optimizer"]["state"])
    for n, s in shard["optimizer"].items():
        opt_state[shard["optimizer_index"][n]] = s
    st["optimizer"] = {"state": opt_state, "param_groups": main["optimizer"]["param_groups"]}
    st["loss"], st["rng"] = shard["loss"], shard["rng"]
    return st


def mean_over_ranks(values: dict, ctx: DistContext) -> dict[str, float]:
    """Logged scalars averaged over the ranks (one all-reduce); floats out."""
    if not ctx.enabled or not values:
        return {k: float(v) for k, v in values.items()}
    keys = list(values)
    t = torch.stack([torch.as_tensor(values[k], dtype=torch.float64).detach().cpu() for k in keys])
    if ctx.backend == "nccl":
        t = t.cuda()
    dist.all_reduce(t, group=ctx.group)
    return {k: float(v) / ctx.world_size for k, v in zip(keys, t.tolist())}
