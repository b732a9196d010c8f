"""Committing files and owning folders: the one way pyface writes an output.

- :func:`atomic_path` / :func:`atomic_write`: a file is written under a temporary name
  in its own folder (``.<name>.<pid>.<random>.tmp``), flushed and fsynced, then renamed
  over the target (and the folder fsynced), so a reader -- or a resumed job -- sees the
  old file or the new one, never a torn one. On any error the temporary file is removed
  and a full disk is reported as one line naming the file.
- :func:`remove_stale_temps`: temporary files that killed writers left behind (their
  process is gone), removed when a job (re)opens its folder.
- :func:`file_digest` / :class:`DigestMemo`: a content digest of a file (SHA-256,
  streamed), remembered between runs by the file's identity -- device, inode, size,
  mtime and ctime, all in nanoseconds -- so unchanged inputs are not read again. Why that
  identity is enough: every write to a file, and every rename onto its name, changes its
  ctime (or inode), and unlike mtime a user cannot set ctime back (``touch -d``,
  ``cp -p`` and ``rsync -t`` restore mtime only). Caches keyed on these digests
  (``pyface eval``'s) serve a result only for the same bytes.
- :func:`FolderLock`: an exclusive lock on an output folder held for a job's lifetime
  (``flock``: released by the kernel when the process dies, so a kill never leaves a
  stale lock); a second job gets an error naming the holder.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import secrets
import socket
import sys
import time
from pathlib import Path

from pyface.errors import OutputError

__all__ = ["DigestMemo", "FolderLock", "atomic_path", "atomic_write", "file_digest", "fsync_dir", "job_lock",
           "remove_stale_temps", "write_bytes_atomic", "write_json_atomic", "write_text_atomic"]

#: The lock file :class:`FolderLock` keeps in a locked folder (not an output: a run's
#: content is everything else).
LOCK_FILE = ".pyface.lock"
_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp(\.[A-Za-z0-9]+)?$")


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


def _no_space(exc: BaseException | None) -> OSError | None:
    """The ENOSPC/EDQUOT error behind ``exc`` -- itself or a cause in its chain (torch's
    zip writer reports a failed write as "unexpected pos ..." with the OSError chained)."""
    seen = 0
    while exc is not None and seen < 20:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, fsync: bool = True, keep_suffix: bool = False):
    """Yield a temporary path beside ``path``; when the block ends without an error the
    file written there replaces ``path`` atomically. For writers that want a file name
    (pyarrow, cv2, ``np.savez`` given a file object). The parent folder must exist.
    ``keep_suffix``: the temporary name ends in ``path``'s extension too, for writers that
    choose the format by it (cv2.VideoWriter's container)."""
    path = Path(path)
    tail = path.suffix if keep_suffix and re.fullmatch(r"\.[A-Za-z0-9]+", path.suffix) else ""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp{tail}")
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        full = _no_space(exc)
        if full is not None:
            raise OutputError(f"{path}: no space left on the device ({full.strerror}); the previous file, if any, "
                              "is unchanged and the partial one removed") from exc
        if isinstance(exc, (PermissionError, IsADirectoryError, NotADirectoryError)):
            raise OutputError(f"{path}: cannot write ({exc.strerror})") from exc
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


def write_json_atomic(path: str | os.PathLike, obj, *, fsync: bool = True, **dump_kw) -> Path:
    """JSON (indent 2, sorted keys, ``default=str`` unless given) committed atomically."""
    dump_kw = {"indent": 2, "sort_keys": True, "default": str, **dump_kw}
    with atomic_write(path, "w", fsync=fsync, encoding="utf-8") as f:
        f.write(json.dumps(obj, **dump_kw) + "\n")
    return Path(path)


_CHUNK = 1 << 20


def file_digest(path: str | os.PathLike, memo: "DigestMemo | None" = None) -> str:
    """SHA-256 (hex) of the file's bytes, streamed; with ``memo``, reused while the file's
    identity (device, inode, size, mtime_ns, ctime_ns) is unchanged (module docstring)."""
    path = os.path.abspath(path)
    st = os.stat(path)
    ident = [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]
    if memo is not None:
        hit = memo.get(path, ident)
        if hit is not None:
            return hit
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    digest = h.hexdigest()
    if memo is not None:
        memo.put(path, ident, digest)
    return digest


class DigestMemo:
    """File digests remembered by file identity (see :func:`file_digest`), kept in a JSON
    file (committed atomically by :meth:`save`; an unreadable one is ignored)."""

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path is not None else None
        self._entries: dict[str, list] = {}
        self._dirty = False
        if self.path is not None and self.path.is_file():
            try:
                data = json.loads(self.path.read_text())
                self._entries = {k: v for k, v in data.items() if isinstance(v, list) and len(v) == 6}
            except (OSError, ValueError):
                self._entries = {}

    def get(self, path: str, ident: list) -> str | None:
        e = self._entries.get(path)
        return e[5] if e is not None and e[:5] == ident else None

    def put(self, path: str, ident: list, digest: str) -> None:
        self._entries[path] = [*ident, digest]
        self._dirty = True

    def save(self) -> None:
        if self.path is not None and self._dirty:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(self.path, self._entries, indent=None, fsync=False)
            self._dirty = False


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

    The lock is an ``flock`` on ``<folder>/.pyface.lock`` (:data:`LOCK_FILE`), so the kernel drops it when
    the process ends (however it ends): a killed job never leaves a stale lock. The file
    records the holder (pid, host, command, start time) for the error a second job gets.
    Once locked, the temporary files killed writers left anywhere in the folder are
    removed (:func:`remove_stale_temps`; ``clean=False`` keeps them).
    Re-entrant within one process (a nested lock on the same folder is a no-op).
    ``lock_file``: another lock file in the same folder, for jobs that share a folder on
    purpose (the parts of a job array: :meth:`pyface.work_split.WorkSplit.lock`).
    """

    _held: dict[str, int] = {}

    def __init__(self, folder: str | os.PathLike, what: str = "job", *, clean: bool = True,
                 lock_file: str = LOCK_FILE):
        self.folder = Path(folder)
        self.what = what
        self.clean = clean
        self.lock_file = lock_file
        self._fd: int | None = None
        self._key = ""
        self._created = False

    def acquire(self) -> "FolderLock":
        created = not self.folder.exists()
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            if not self.folder.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, "not a folder")
        except OSError as exc:
            raise OutputError(f"{self.folder}: cannot use it as the output folder ({exc.strerror or exc})") from exc
        self._key = f"{self.folder.resolve()}/{self.lock_file}"
        if self._key in FolderLock._held:
            FolderLock._held[self._key] += 1
            return self
        path = self.folder / self.lock_file
        while True:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise OutputError(f"{self.folder}: cannot write in the output folder ({exc.strerror or exc})") from exc
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                try:
                    holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip() or f"{self.what} (pid unknown)"
                finally:
                    os.close(fd)
                raise OutputError(f"{self.folder} is in use by another pyface {holder}; wait for it "
                                  "to finish or choose another output folder") from None
            try:  # a holder removes the lock file when it is done: hold the file that is in place
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        info = (f"{self.what} (pid {os.getpid()} on {socket.gethostname()}, started "
                f"{time.strftime('%Y-%m-%d %H:%M:%S')}: "
                + " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))[:300] + ")")
        os.ftruncate(fd, 0)
        os.pwrite(fd, info.encode() + b"\n", 0)
        self._fd = fd
        self._created = created
        FolderLock._held[self._key] = 1
        if self.clean:  # the job (re)opens its folder: a killed writer's temporary files go
            remove_stale_temps(self.folder, recursive=True)
        return self

    def release(self) -> None:
        """Unlock and remove the lock file (a killed holder leaves it behind, unlocked:
        harmless); a folder this lock created and the job left empty is removed too (a
        job that failed before writing anything leaves no trace)."""
        if not self._key or self._key not in FolderLock._held:
            return
        FolderLock._held[self._key] -= 1
        if FolderLock._held[self._key] == 0:
            del FolderLock._held[self._key]
            if self._fd is not None:
                with contextlib.suppress(OSError):  # while still held: acquire() checks the inode it locked
                    os.unlink(self.folder / self.lock_file)
                    if self._created and not os.listdir(self.folder):
                        os.rmdir(self.folder)
                fcntl.flock(self._fd, fcntl.LOCK_UN)
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def job_lock(folder: str | os.PathLike, what: str = "job"):
    """The lock of a job's output folder: :class:`FolderLock` in a single process and on
    rank 0 of a torchrun launch (``RANK`` / ``WORLD_SIZE`` in the environment); a no-op
    on the other ranks, which share rank 0's folder -- a multi-rank job makes them wait
    (a barrier) until rank 0 holds the lock before they write, so a second job's ranks
    never write into a folder in use (pyface.train.Trainer.fit does)."""
    if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1 and int(os.environ.get("RANK", "0") or 0) != 0:
        return contextlib.nullcontext()
    return FolderLock(folder, what)
