"""Worker processes that never outlive their parent: the one place for it.

A DataLoader worker (or any helper process pyface starts: a MediaPipe pool, a decoder)
must end when the job that started it ends, however that ends -- ``kill -9`` included.
torch's own worker watchdog only looks at its parent between items, so a worker inside
a long or stuck ``__getitem__`` (a futex held by a decoder thread, a hung read) stays
alive, reparented to init, holding its memory. Here the kernel ends it instead:

- on Linux, ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` in the child: the kernel sends SIGKILL
  the moment the parent dies, whatever the child is doing; the parent's pid is checked
  once after the call (it may have died before);
- elsewhere, a daemon thread in the child polls its parent's pid every second and ends
  the process when the parent is gone.

Use::

    DataLoader(..., worker_init_fn=procs.worker_init_fn())          # or procs.worker_init_fn(my_init)
    multiprocessing.Pool(k, initializer=procs.die_with_parent, initargs=(os.getpid(),))

The death signal is tied to the parent *thread* that created the child; pyface creates
its workers from the job's main thread (DataLoader iterators, pools), which lives as
long as the job.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import signal
import sys
import threading
import time

__all__ = ["die_with_parent", "worker_init_fn"]

_PR_SET_PDEATHSIG = 1


def _prctl_pdeathsig(sig: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent: int, interval: float) -> None:
    while True:
        time.sleep(interval)
        if os.getppid() != parent:
            os._exit(1)


def die_with_parent(parent: int | None = None, *, interval: float = 1.0) -> None:
    """Make the calling (child) process end when ``parent`` (default: its current
    parent) ends -- SIGKILL from the kernel on Linux, a watchdog thread elsewhere."""
    parent = os.getppid() if parent is None else int(parent)
    if not _prctl_pdeathsig(signal.SIGKILL):
        threading.Thread(target=_watch, args=(parent, interval), name="pyface-parent-watchdog", daemon=True).start()
    if os.getppid() != parent:  # the parent died before the death signal was armed
        os._exit(1)


def _init(worker_id: int, parent: int, then) -> None:
    die_with_parent(parent)
    if then is not None:
        then(worker_id)


def worker_init_fn(then=None):
    """A DataLoader ``worker_init_fn`` that ties each worker to this process (see the
    module docstring), then calls ``then(worker_id)`` if given. Picklable (spawn)."""
    return functools.partial(_init, parent=os.getpid(), then=then)
