"""Atomic outputs: files and whole folders written to a temporary name beside the target and renamed, locks, and
JSON read back.

A killed process leaves either the old output or the new one, never half of one. Temporary names carry the
writer's process id (``<name>.tmp-<pid>-XXXX``), so that the next write of the same target removes what a killed
writer left behind without touching the work of one still running (on the same machine: process ids mean nothing
across hosts sharing a network folder). A full disk raises :class:`DiskFull`, naming the target
and its folder, and leaves the previous output as it was.
"""

from __future__ import annotations

import errno
import glob
import io
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

try:
    import fcntl
except ImportError:  # Windows: file_lock does nothing there
    fcntl = None  # type: ignore[assignment]

class DiskFull(OSError):
    """No space left on the device while writing an output (errno ENOSPC); the message names the output and its
    folder. Whatever was there before is left as it was."""


def _disk_full(target: Path, cause: OSError) -> DiskFull:
    try:
        free = f", {shutil.disk_usage(target.parent).free / 2**30:,.1f} GiB free"
    except OSError:
        free = ""
    return DiskFull(errno.ENOSPC, f"no space left on device writing {target.name} in {target.parent}{free}; "
                                  f"nothing was replaced (the previous {target.name}, if any, is intact): free some "
                                  f"space and run it again ({cause.strerror or cause})")


def _is_disk_full(e: BaseException) -> bool:
    return isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT)


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (a zombie counts: its parent has not yet reaped it)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _dead_writer(name: str, prefix: str) -> bool:
    """Whether ``name`` (``<prefix><pid>-...`` or ``<prefix><pid>``) was left by a process that no longer runs.
    Names without a process id (from older versions) are never claimed: their writer cannot be told dead."""
    pid = name[len(prefix):].split("-", 1)[0].split(".", 1)[0]
    return pid.isdigit() and not _alive(int(pid))


def recover(dst: str | os.PathLike) -> None:
    """Tidy what killed writers left beside ``dst`` (a file or a folder written by this module): their temporary
    files and ``<dst>.tmp-<pid>-*`` folders are removed, and an old ``dst`` moved aside as ``<dst>.old-<pid>`` by
    a swap killed between its two renames is put back when ``dst`` is missing (else removed). Leftovers of a
    process still running are left alone. Called by every atomic write before it writes; safe to call any time,
    also on a read-only folder (what cannot be removed stays)."""
    dst = Path(dst)
    if not dst.parent.is_dir():
        return
    name = glob.escape(dst.name)
    for p in dst.parent.glob(f".{name}.*.tmp"):
        if _dead_writer(p.name, f".{dst.name}."):
            try:
                p.unlink(missing_ok=True)
            except OSError:
                pass  # a read-only folder: nothing written there can be half-written by this process either
    for p in dst.parent.glob(f"{name}.tmp-*"):
        if _dead_writer(p.name, f"{dst.name}.tmp-"):
            shutil.rmtree(p, ignore_errors=True)
    for p in dst.parent.glob(f"{name}.old-*"):
        if not _dead_writer(p.name, f"{dst.name}.old-"):
            continue
        if not dst.exists():
            try:
                os.replace(p, dst)  # the previous complete folder: better than none
                continue
            except OSError:
                pass  # another process restored or replaced it first
        shutil.rmtree(p, ignore_errors=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``. Raises
    :class:`DiskFull` when the disk fills up, leaving the old file as it was and no temporary file behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    recover(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; outputs are meant to be read by others (the dashboard, CI)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if _is_disk_full(e) and not isinstance(e, DiskFull):
            raise _disk_full(path, e) from e
        raise


def atomic_write_npy(path: str | os.PathLike, array) -> None:
    """Write a numpy array as ``.npy`` with :func:`atomic_write_bytes`: a reader finds the old file or the whole
    new one."""
    buf = io.BytesIO()
    np.save(buf, array)
    atomic_write_bytes(path, buf.getvalue())


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    # numpy scalars and paths turn up in configs and summaries; everything else is a bug worth seeing.
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, os.PathLike):
        return os.fspath(o)
    raise TypeError(f"cannot write {type(o).__name__} to JSON")


def replace_dir(src: str | os.PathLike, dst: str | os.PathLike, replace: bool = True) -> None:
    """Move the finished folder ``src`` to ``dst``, replacing an old ``dst`` (with ``replace=False`` a non-empty
    ``dst`` raises FileExistsError instead, also when another process puts one there first).

    Two renames: the old ``dst`` to ``<dst>.old-<pid>``, then ``src`` to ``dst``. A reader never sees a half-written
    folder, but one that looks in the instant between the renames finds no ``dst`` at all; a crash there leaves the
    old folder as ``<dst>.old-<pid>``, which is restored when the second rename fails."""
    src, dst = Path(src), Path(dst)
    if not replace and dst.is_dir() and any(dst.iterdir()):
        raise FileExistsError(f"{dst} exists and is not empty")
    old = dst.with_name(f"{dst.name}.old-{os.getpid()}")
    if dst.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(dst, old)
    try:
        os.replace(src, dst)
    except OSError as e:
        if old.exists() and not dst.exists():
            os.replace(old, dst)
        elif not replace and dst.exists():  # another process renamed its folder in between (POSIX: ENOTEMPTY)
            raise FileExistsError(f"{dst} appeared while this folder was being written") from e
        raise
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def building_dir(dst: str | os.PathLike, replace: bool = True) -> Iterator[Path]:
    """Write a folder atomically: yields a fresh temporary folder beside ``dst`` (``<dst>.tmp-<pid>-XXXX``, unique
    per call, so two threads never share one) and, when the block ends without error, moves it to ``dst`` with
    :func:`replace_dir`; on any error, or when interrupted, the temporary folder is removed and ``dst`` is left as
    it was. A process killed outright (SIGKILL, power loss) cannot remove its temporary folder: the next
    ``building_dir`` for the same ``dst`` does (:func:`recover`). A full disk raises :class:`DiskFull` naming
    ``dst``. Caches, checkpoints, run snapshots and the demo data set are all written this way."""
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    recover(dst)
    tmp = Path(tempfile.mkdtemp(prefix=f"{dst.name}.tmp-{os.getpid()}-", dir=dst.parent))
    try:
        os.chmod(tmp, 0o755)  # mkdtemp makes 0700; outputs are meant to be read by others
        yield tmp
        replace_dir(tmp, dst, replace)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if _is_disk_full(e):
            raise _disk_full(dst, e) from e
        raise


@contextmanager
def file_lock(path: str | os.PathLike) -> Iterator[bool]:
    """Hold an exclusive lock on the file ``path`` (created if needed, and never removed: removing a lock file lets
    two processes lock two different files of one name) for the block; yields whether it had to wait for another
    holder. Works between processes and between threads of one process (each call opens the file anew), through
    ``fcntl.flock``: POSIX only; where there is no ``fcntl`` (Windows) the block runs without a lock. The lock goes
    with the process, so a holder that is killed never leaves it stuck."""
    if fcntl is None:
        yield False
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            waited = False
        except BlockingIOError:
            fcntl.flock(fd, fcntl.LOCK_EX)
            waited = True
        yield waited
    finally:
        os.close(fd)  # releases the lock


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)
