"""The CPU half of a labeler batch in worker processes (``--cpu-workers K``).

On a GPU the landmark and eye nets are cheap and the per-view CPU work is the
bottleneck: MediaPipe's face mesh (CPU only, ~4.5 ms per 112 px view on one core), the
affine warps that render the views, and the validity checks of MediaPipe's samples.
:class:`CpuPool` runs that work for one image per task (:func:`view_work`) in ``K``
processes, so one rank feeds its GPU while ``K`` cores run the face mesh; with
``K = 0`` the labeler calls the same :func:`view_work` in its own process, so the
results are identical by construction (each output depends on its image only:
``cv2.warpAffine`` per pixel, MediaPipe per view in static-image mode, the validity
checks exact per sample).

Workers never outlive their parent (a ``kill -9`` of the rank, or torchrun ending it
after another rank failed, must not leave K processes running the face mesh):
:func:`die_with_parent` asks the kernel for ``SIGKILL`` when the parent ends
(``PR_SET_PDEATHSIG``, Linux) and, wherever that is not available, a watchdog thread
ends the worker when its parent process id changes.
"""
from __future__ import annotations

import contextlib
import os
import signal
import threading
import time

import numpy as np

__all__ = ["CpuPool", "die_with_parent", "view_work"]

_PR_SET_PDEATHSIG = 1
#: The worker's face mesh (:func:`_init_worker`), or the labeler's own in-process one.
_MESH = None


def die_with_parent(parent_pid: int, poll_s: float = 0.5) -> None:
    """End this process when ``parent_pid`` ends: ``PR_SET_PDEATHSIG(SIGKILL)`` where
    Linux has it, plus a daemon thread that polls the parent id (covers the race where
    the parent died before the prctl, and systems without it)."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent was gone before the prctl took effect
        os._exit(1)

    def watch():
        while True:
            time.sleep(poll_s)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="pyface-parent-watchdog", daemon=True).start()


def _init_worker(parent_pid: int, mesh_args: tuple | None) -> None:
    die_with_parent(parent_pid)
    import cv2
    import torch

    # one core per worker: K workers are K cores, not K x (all cores)
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    global _MESH
    if mesh_args is not None:
        from pyface.label.mediapipe import FaceMesh68

        _MESH = FaceMesh68(*mesh_args)


def view_work(image: np.ndarray, a_net, s_net: int, a_mp, s_mp: int, views, validity, mesh=None) -> dict:
    """The CPU work of one image: its views for the net (``a_net`` [V, 2, 3] at ``s_net``
    px, uint8 [V, 3, s, s]) and MediaPipe's samples on its views at ``s_mp`` px (``a_mp``;
    [V, 68, 2] float32 view pixels and their validity codes [V] int64, ``no_face`` where
    the mesh found none). ``mesh``: the face mesh to use (default: this worker's). Also
    the seconds spent per stage ("warp", "mediapipe")."""
    import torch

    from pyface.label import views as V
    from pyface.label.validity import SAMPLE_CAUSES

    out = {"warp": 0.0, "mediapipe": 0.0}
    t0 = time.perf_counter()
    if a_net is not None:
        out["net_views"] = V.warp_views(image, a_net, views, s_net)
    if a_mp is not None:
        x = V.warp_views(image, a_mp, views, s_mp)
        t1 = time.perf_counter()
        out["warp"] += t1 - t0
        lm = torch.from_numpy((mesh or _MESH)(x)).float()
        c = validity.check(lm, None, s_mp)
        c = torch.where(torch.isnan(lm).all(-1).all(-1), torch.full_like(c, SAMPLE_CAUSES.index("no_face") + 1), c)
        out["mp_landmarks"], out["mp_cause"] = lm.numpy(), c.numpy()
        out["mediapipe"] += time.perf_counter() - t1
    else:
        out["warp"] += time.perf_counter() - t0
    return out


class CpuPool:
    """``workers`` processes (spawned: no CUDA state or locks inherited from the rank)
    that run :func:`view_work`; ``mesh_args`` ``(index_map, min_detection_confidence)``
    builds each worker's face mesh (None: no MediaPipe)."""

    def __init__(self, workers: int, mesh_args: tuple | None = None):
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        if int(workers) < 1:
            raise ValueError(f"cpu_workers must be >= 1 for a pool, got {workers}")
        self.workers = int(workers)
        self._ex = ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                                       initargs=(os.getpid(), mesh_args))

    def submit(self, *args):
        return self._ex.submit(view_work, *args)

    def pids(self) -> list[int]:
        return [p.pid for p in (self._ex._processes or {}).values()]

    def close(self, wait: bool = True) -> None:
        ex, self._ex = self._ex, None
        if ex is not None:
            ex.shutdown(wait=wait, cancel_futures=True)
