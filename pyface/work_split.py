"""How a job's work units are divided among processes: the ranks of a ``torchrun``
launch, the parts of a job array (``--part k/N``), or both (a job array of torchrun jobs).

A labeling or evaluation job cuts its input into fixed units (the shards of ``pyface label
landmarks``, the embedding units of ``pyface label identities``, the inference shards of
``pyface eval``); unit ``u`` always covers the same images, whatever the number of
processes, so the files a unit produces do not depend on who computed it.

- Job-array part ``k/N`` (:class:`Part`, 1-based on the command line) owns the units
  ``u`` with ``u % N == k - 1`` -- a fixed assignment, because parts do not talk to each
  other; ``pyface label finalize OUT`` joins them.
- Within a part (or the whole job), the units still to do are listed once by rank 0 and
  dealt round-robin to the ranks (:meth:`WorkSplit.take`): a resumed job rebalances the
  work that is left, whichever ranks were killed.

Collectives (:meth:`WorkSplit.broadcast`, :meth:`WorkSplit.on_leader`,
:meth:`WorkSplit.gather`) are the identity in a single process, so the jobs have one code
path. The process group itself is set up and ended by :mod:`pyface.distributed`.
"""
from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass

from pyface.errors import UsageError

__all__ = ["Part", "WorkSplit", "parse_part"]

_PART = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Part:
    """Part ``index`` (0-based) of ``count`` of a job array; printed 1-based (``2/4``)."""

    index: int
    count: int

    def __post_init__(self):
        if not (self.count >= 1 and 0 <= self.index < self.count):
            raise ValueError(f"part index must be in [0, {self.count}), got {self.index}")

    def __str__(self) -> str:
        return f"{self.index + 1}/{self.count}"

    def owns(self, unit: int) -> bool:
        return unit % self.count == self.index

    def units(self, n: int) -> list[int]:
        return list(range(self.index, n, self.count))


def parse_part(text: str | None, flag: str = "--part") -> Part | None:
    """``"k/N"`` (1 <= k <= N) -> :class:`Part`; None stays None. UsageError naming ``flag``."""
    if text is None:
        return None
    m = _PART.match(str(text))
    if not m:
        raise UsageError(f"{flag} must be k/N (this task's part k of N, e.g. 1/8), got {text!r}")
    k, n = int(m.group(1)), int(m.group(2))
    if not 1 <= k <= n:
        raise UsageError(f"{flag}: k must be in 1..N, got {text!r}")
    return Part(k - 1, n)


@dataclass
class WorkSplit:
    """This process's place in a job's division of work: ``ctx`` (rank / world size of the
    process group from :func:`pyface.distributed.setup`) and ``part`` (job array, or
    None). ``WorkSplit()`` is one process doing everything -- never an implicit use of a
    process group that exists for another reason (a training job's validation)."""

    ctx: object = None
    part: Part | None = None

    def __post_init__(self):
        if self.ctx is None:
            from pyface.distributed import DistContext

            self.ctx = DistContext()

    # ------------------------------------------------------------------ who
    @property
    def rank(self) -> int:
        return self.ctx.rank

    @property
    def world_size(self) -> int:
        return self.ctx.world_size

    @property
    def distributed(self) -> bool:
        return self.ctx.world_size > 1

    @property
    def leader(self) -> bool:
        """Rank 0 of this part (or of the job): sets up the output folder, lists the work."""
        return self.ctx.rank == 0

    @property
    def writes_final(self) -> bool:
        """Whether this process writes the job's final files (manifest, summary, report):
        rank 0 of a job that is not a job-array part (the parts leave that to finalize)."""
        return self.part is None and self.leader

    def describe(self) -> str:
        who = f"rank {self.rank}/{self.world_size}" if self.distributed else "one process"
        return who + (f", part {self.part}" if self.part else "")

    # ------------------------------------------------------------------ what
    def part_units(self, n: int) -> list[int]:
        """The units of this part (all ``n`` without a part), ascending."""
        return self.part.units(n) if self.part is not None else list(range(n))

    def take(self, todo: list[int]) -> list[int]:
        """This rank's share of ``todo`` (the same list on every rank): round-robin."""
        return list(todo)[self.rank::self.world_size]

    # ------------------------------------------------------------------ collectives
    @contextlib.contextmanager
    def lock(self, folder, what: str = "job"):
        """The output folder's lock for the job's lifetime (:class:`pyface.io.FolderLock`),
        taken by the leader while the other ranks wait; a refusal (the folder is in use)
        is raised on every rank. A job-array part locks ``.pyface.lock.part-K-of-N``
        instead: the parts share the folder on purpose, each refuses a second copy of
        itself, and none removes temporary files (another part may be writing them; the
        finalize run, which takes the folder's own lock, does)."""
        from pyface.io import LOCK_FILE, FolderLock

        held = None
        if self.part is None:
            held = FolderLock(folder, what)
        else:
            held = FolderLock(folder, f"{what}, part {self.part}", clean=False,
                              lock_file=f"{LOCK_FILE}.part-{self.part.index + 1}-of-{self.part.count}")
        self.on_leader(lambda: held.acquire() and None)
        try:
            yield
        finally:
            if self.leader:
                held.release()

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    def broadcast(self, obj=None):
        """Rank 0's ``obj`` on every rank (any picklable object)."""
        if not self.distributed:
            return obj
        import torch.distributed as dist

        box = [obj if self.rank == 0 else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def on_leader(self, fn, *args, **kwargs):
        """``fn(*args, **kwargs)`` on rank 0, its result on every rank; an exception it
        raises is raised on every rank (the same exception), so a bad folder or
        configuration ends every rank with the same one-line error instead of leaving
        the others waiting in a collective."""
        result = error = None
        if self.leader:
            try:
                result = fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - re-raised below, on every rank
                error = exc
        if self.distributed:
            result, error = self.broadcast((result, error))
        if error is not None:
            raise error
        return result

    def agree(self, fn, *args, **kwargs):
        """``fn(*args, **kwargs)`` on every rank; when it raises on any rank, every rank
        raises (its own exception, or that of the lowest failing rank)."""
        result = error = None
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - re-raised below
            error = exc
        if self.distributed:
            errors = self.all_gather(error)
            first = next((e for e in errors if e is not None), None)
            if error is None and first is not None:
                error = first
        if error is not None:
            raise error
        return result

    def all_gather(self, obj) -> list:
        """Every rank's ``obj``, in rank order, on every rank."""
        if not self.distributed:
            return [obj]
        import torch.distributed as dist

        out = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def gather(self, obj) -> list | None:
        """Every rank's ``obj`` in rank order on rank 0; None on the others."""
        if not self.distributed:
            return [obj]
        import torch.distributed as dist

        out = [None] * self.world_size if self.rank == 0 else None
        dist.gather_object(obj, out, dst=0)
        return out
