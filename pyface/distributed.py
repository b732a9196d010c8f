"""The lifetime of a pyface process under torch.distributed (torchrun): one process group
per job, set up from torchrun's environment and torn down so that the process can end
cleanly however the job ends.

Why the teardown is this careful (issue 16, docs/torch-gloo-exit-abort.md): a gloo work
can hold Python objects -- the ``contextvars`` copy that ``torch.autograd.backward``
keeps in the thread-local state (which every work started inside backward copies: the
class-sharded LPMC loss's reduce-scatter, DDP's gradient all-reduces), and the Python
objects of its input/output tensors, which torch keeps alive while C++ still refers to
them. The gloo worker thread that ran a work often drops the last reference to it;
releasing those Python objects needs the GIL. If that happens after the interpreter
began finalizing -- the worker was descheduled long enough for the main thread to get
there, common on a loaded 2-core machine -- CPython ends the worker with
``pthread_exit`` inside a ``noexcept`` destructor and the process aborts ("terminate
called without an active exception").

So the worker threads must be gone before finalization, which only happens when the
gloo process group object is destroyed (``destroy_process_group`` and ``shutdown``
do not join them). :func:`shutdown` makes that so on success: every rank reaches a
barrier (no work in flight), the group is destroyed, the objects that referred to it
(the job's model, DDP, loss modules) are already gone with the job's stack frame, and
the collector runs; it then checks that no gloo worker thread is left. Two things keep
the group alive otherwise, both handled here: ``torch.distributed.nn.functional``
(imported lazily by ``torch._dynamo``, so usually after the group exists) binds
``group=group.WORLD`` as default arguments of ten functions -- :func:`setup` imports it
before creating the group, so those defaults are ``None``; and the job's objects, which
is why :func:`run_job` runs the job in its own frame and tears down after it returned.

When the job fails, the other ranks may be blocked in a collective that will never
complete: waiting for them (barrier) or for this rank's worker threads could hang the
whole job. :func:`run_job` then reports the error and ends the process at once with
``os._exit`` (outputs are committed atomically, so nothing is lost that a resume needs);
torchrun sees the failure and stops the other ranks.
"""
from __future__ import annotations

import contextlib
import gc
import os
import sys
import traceback
import warnings
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

__all__ = ["DistContext", "GLOO_WORKER_THREAD", "exit_process", "gloo_worker_threads", "init_process_group", "run_job",
           "setup", "shutdown"]

#: Name (``/proc/<pid>/task/<tid>/comm``) of the threads that run gloo's works.
GLOO_WORKER_THREAD = "pt_gloo_runloop"


@dataclass
class DistContext:
    """This process's place in the job: rank, world size, local rank (GPU index), the
    default process group (None when single-process) and its backend."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    group: object = None
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


def setup(device: torch.device) -> tuple[DistContext, torch.device]:
    """Initialise the default process group from torchrun's environment (once) and pick
    this rank's device: ``cuda`` / ``auto`` become cuda:LOCAL_RANK. Single-process when
    WORLD_SIZE is unset or 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext(), device
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    init_process_group(backend, device if device.type == "cuda" else None)
    return DistContext(rank, world, local, dist.group.WORLD, backend), device


def init_process_group(backend: str, device_id: torch.device | None = None) -> None:
    """The default process group from the environment (env://), once; what :func:`setup`
    does after choosing the backend and device."""
    if dist.is_initialized():
        return
    # Before the default group exists, so that the default arguments this module binds
    # at import are None, not the group (module docstring).
    import torch.distributed.nn.functional  # noqa: F401

    # Rank 0 validates and writes plots while the others wait in the next collective:
    # a timeout well above a validation pass.
    minutes = float(os.environ.get("PYFACE_DIST_TIMEOUT_MIN", "60"))
    dist.init_process_group(backend, timeout=timedelta(minutes=minutes), device_id=device_id)


def gloo_worker_threads() -> int:
    """How many gloo worker threads this process has (Linux; 0 where unknown)."""
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return 0
    n = 0
    for t in tids:
        with contextlib.suppress(OSError):
            with open(f"/proc/self/task/{t}/comm") as f:
                n += f.read().strip() == GLOO_WORKER_THREAD
    return n


def shutdown() -> None:
    """After a successful job on every rank: barrier, destroy the process groups, collect,
    and check that gloo's worker threads ended (module docstring). Call it once the
    objects that refer to the group (models, DDP, sharded losses) are gone -- as
    :func:`run_job` does. A no-op when no process group exists."""
    if not dist.is_initialized():
        return
    dist.barrier()
    dist.destroy_process_group()
    gc.collect()
    left = gloo_worker_threads()
    if left:
        warnings.warn(f"{left} gloo worker thread(s) outlived the process group: something still refers to it, and "
                      "the process may abort at exit (docs/torch-gloo-exit-abort.md)", RuntimeWarning, stacklevel=2)


def exit_process(code: int) -> None:
    """End the process now with ``code``: stdout/stderr flushed, no interpreter
    finalization (module docstring: used when a rank failed)."""
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def _report(exc: BaseException) -> int:
    traceback.print_exception(exc)
    return 1


def run_job(job, *args, on_error=_report, **kwargs):
    """Run one rank's job ``job(*args, **kwargs)`` and end its process group as the
    module docstring says: on success :func:`shutdown` after ``job``'s frame (and the
    model, DDP, losses it held) is gone, returning ``job``'s result. On an exception
    while a process group exists, ``on_error(exc)`` reports it and gives the exit code
    (default: the traceback, 1; ``SystemExit`` keeps its code), and the process ends at
    once with it -- torchelastic's error file, if ``job`` is wrapped in ``record``, is
    written by then. Single-process, an exception simply propagates."""
    try:
        result = job(*args, **kwargs)
    except SystemExit as exc:
        if not dist.is_initialized():
            raise
        exit_process(exc.code if isinstance(exc.code, int) else 1)
    except BaseException as exc:
        if not dist.is_initialized():
            raise
        exit_process(on_error(exc))
    shutdown()
    return result
