"""Minimal reproducer (torch only) of the exit abort in docs/torch-gloo-exit-abort.md.

Two gloo ranks (multiprocessing "spawn", TCP store on the loopback) each run 5 steps of
an autograd Function that shards a loss across ranks the way Partial FC does (all-gather
and all-reduces in forward, a reduce-scatter in backward), then destroy the process
group and exit. ``torch._dynamo`` is imported after the group exists, as the first call
of any ``torch.library`` custom op (or ``torch.compile``) does; through
``torch.distributed.nn.functional`` it pins the group in default arguments.

    for i in $(seq 30); do python torch_gloo_exit_abort_repro.py || echo ABORT; done        # 13/30 aborted
    for i in $(seq 30); do python torch_gloo_exit_abort_repro.py fixed || echo ABORT; done  # 0/30

(AMD EPYC Zen 4, 2 cores, torch 2.13.0+cpu.) "fixed": ``torch.distributed.nn.functional``
imported before the group exists, a barrier, and a collection after
``destroy_process_group`` -- the group object is freed and its destructor joins gloo's
worker threads while the interpreter is alive (what pyface.distributed does).
"""
import os
import socket
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


class Sharded(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        parts = [torch.empty_like(x) for _ in range(2)]
        dist.all_gather(parts, x.detach())
        xa = torch.cat(parts)
        m = xa.amax(1)
        dist.all_reduce(m, op=dist.ReduceOp.MAX)
        s = torch.stack([m, xa.sum(1)])
        dist.all_reduce(s)
        ctx.save_for_backward(xa)
        return s[1].sum()
    @staticmethod
    def backward(ctx, g):
        (xa,) = ctx.saved_tensors
        pad = torch.ones_like(xa) * g
        mine = pad.new_empty(pad.shape[0] // 2, pad.shape[1])
        dist.reduce_scatter_tensor(mine, pad)
        return mine

def worker(rank, port, fixed):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    if fixed:  # bind torch.distributed.nn.functional's default arguments before the group exists
        __import__("torch.distributed.nn.functional")
    dist.init_process_group("gloo", init_method="env://", rank=rank, world_size=2)
    __import__("torch._dynamo")  # what a first custom-op call does
    g = torch.Generator().manual_seed(rank)
    for _ in range(5):
        x = torch.randn(6, 16, generator=g).requires_grad_()
        Sharded.apply(x).backward()
    if fixed:
        dist.barrier()
    dist.destroy_process_group()
    if fixed:  # the group is freed now: ~ProcessGroupGloo joins the worker threads
        __import__("gc").collect()

if __name__ == "__main__":
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    fixed = sys.argv[1:] == ["fixed"]
    ps = [ctx.Process(target=worker, args=(r, port, fixed)) for r in range(2)]
    for p in ps:
        p.start()
    for p in ps:
        p.join(120)
    codes = [p.exitcode for p in ps]
    print("exit codes", codes)
    sys.exit(0 if codes == [0, 0] else 1)
