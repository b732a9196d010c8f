"""Committing files and owning folders: the one way pyface writes an output.

- :func:`atomic_path` / :func:`atomic_write`: a file is written under a temporary name
  in its own folder (``.<name>.<pid>.<random>.tmp``), flushed and fsynced, then renamed
  over the target (and the folder fsynced), so a reader -- or a resumed job -- sees the
  old file or the new one, never a torn one. On any error the temporary file is removed
  and a full disk is reported as one line naming the file.
- :func:`remove_stale_temps`: temporary files that killed writers left behind (their
  process is gone), removed when a job (re)opens its folder.
- :func:`FolderLock`: an exclusive lock on an output folder held for a job's lifetime
  (``flock``: released by the kernel when the process dies, so a kill never leaves a
  stale lock); a second job gets an error naming the holder.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import secrets
import socket
import sys
import time
from pathlib import Path

from pyface.errors import OutputError

__all__ = ["FolderLock", "atomic_path", "atomic_write", "fsync_dir", "remove_stale_temps", "write_bytes_atomic",
           "write_json_atomic", "write_text_atomic"]

_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$")


def fsync_dir(folder: str | os.PathLike) -> None:
    """Make a rename in ``folder`` durable (best effort: some file systems refuse)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _no_space(exc: OSError) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, fsync: bool = True):
    """Yield a temporary path beside ``path``; when the block ends without an error the
    file written there replaces ``path`` atomically. For writers that want a file name
    (pyarrow, cv2, ``np.savez`` given a file object). The parent folder must exist."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        if _no_space(exc):
            raise OutputError(f"{path}: no space left on the device ({exc.strerror}); nothing was written") from exc
        raise
    if fsync:
        fsync_dir(path.parent)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", *, fsync: bool = True, encoding: str | None = None):
    """``with atomic_write(p, "w") as f: ...`` -- an open file whose content replaces
    ``p`` atomically when the block ends without an error (see :func:`atomic_path`)."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write mode must be 'w' or 'wb', got {mode!r}")
    with atomic_path(path, fsync=False) as tmp:
        with open(tmp, mode, encoding=encoding if "b" not in mode else None) as f:
            yield f
            f.flush()
            if fsync:
                os.fsync(f.fileno())
    if fsync:
        fsync_dir(Path(path).parent)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_write(path, "wb") as f:
        f.write(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    with atomic_write(path, "w", encoding="utf-8") as f:
        f.write(text)
    return Path(path)


def write_json_atomic(path: str | os.PathLike, obj, **dump_kw) -> Path:
    """JSON (indent 2, sorted keys, ``default=str`` unless given) committed atomically."""
    dump_kw = {"indent": 2, "sort_keys": True, "default": str, **dump_kw}
    return write_text_atomic(path, json.dumps(obj, **dump_kw) + "\n")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(folder: str | os.PathLike, recursive: bool = False, which=None) -> list[Path]:
    """Remove the temporary files of :func:`atomic_path` in ``folder`` whose writer
    process is gone (a killed job's; they can hold a full disk's last gigabytes).
    Returns the removed paths. Temporary files of live processes are left alone.
    ``which(name)``: only temporary files of targets so named (a job-array part cleans
    its own shards' and leaves alone those another machine's process may be writing)."""
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    walk = os.walk(folder) if recursive else [(str(folder), [], os.listdir(folder))]
    for dirpath, _, files in walk:
        for f in files:
            m = _TEMP.match(f)
            if m and (which is None or which(m.group("name"))) and not _pid_alive(int(m.group("pid"))):
                p = Path(dirpath) / f
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
                    removed.append(p)
    return removed


class FolderLock:
    """Exclusive lock on an output folder for a job's lifetime::

        with FolderLock(out_dir, "training run"):
            ...

    The lock is an ``flock`` on ``<folder>/.pyface.lock``, so the kernel drops it when
    the process ends (however it ends): a killed job never leaves a stale lock. The file
    records the holder (pid, host, command, start time) for the error a second job gets.
    Re-entrant within one process (a nested lock on the same folder is a no-op).
    """

    _held: dict[str, int] = {}

    def __init__(self, folder: str | os.PathLike, what: str = "job"):
        self.folder = Path(folder)
        self.what = what
        self._fd: int | None = None
        self._key = ""

    def acquire(self) -> "FolderLock":
        self.folder.mkdir(parents=True, exist_ok=True)
        self._key = str(self.folder.resolve())
        if self._key in FolderLock._held:
            FolderLock._held[self._key] += 1
            return self
        path = self.folder / ".pyface.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip() or "another process"
            finally:
                os.close(fd)
            raise OutputError(f"{self.folder} is in use by another pyface {self.what} ({holder}); wait for it to "
                              "finish or choose another output folder") from None
        info = (f"pid {os.getpid()} on {socket.gethostname()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}: "
                + " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))[:300])
        os.ftruncate(fd, 0)
        os.pwrite(fd, info.encode() + b"\n", 0)
        self._fd = fd
        FolderLock._held[self._key] = 1
        return self

    def release(self) -> None:
        if not self._key or self._key not in FolderLock._held:
            return
        FolderLock._held[self._key] -= 1
        if FolderLock._held[self._key] == 0:
            del FolderLock._held[self._key]
            if self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
