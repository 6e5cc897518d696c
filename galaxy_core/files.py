"""Small file helpers shared by every stage: atomic writes and a text progress bar.

Outputs (caches, run folders, CSVs) are written to a temporary name beside the target and then renamed, so a killed
process leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; outputs are meant to be read by others (the dashboard, CI)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
    """Write a folder atomically: yields a fresh temporary folder beside ``dst`` (``<dst>.tmp-XXXX``, unique per
    call, so two threads never share one) and, when the block ends without error, moves it to ``dst`` with
    :func:`replace_dir`; on any error, or when interrupted, the temporary folder is removed and ``dst`` is left as
    it was. Caches, checkpoints, run snapshots and the demo data set are all written this way."""
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{dst.name}.tmp-", dir=dst.parent))
    try:
        os.chmod(tmp, 0o755)  # mkdtemp makes 0700; outputs are meant to be read by others
        yield tmp
        replace_dir(tmp, dst, replace)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def format_bytes(n: float) -> str:
    """``1536`` -> ``'1.5 KiB'`` (binary units, one decimal)."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} TiB"


Progress = Callable[[int, int], None]
"""A progress callback: ``progress(done, total)``."""


class TextProgress:
    """A one-line progress bar on stderr (rate and time left), redrawn at most every 0.2 s.

    Printed only when stderr is a terminal unless ``always`` is set, so that logs of headless runs stay short.
    """

    def __init__(self, label: str, always: bool = False, stream=None):
        self.label, self.stream = label, stream or sys.stderr
        self.enabled = always or self.stream.isatty()
        self.t0 = time.perf_counter()
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if not self.enabled or (now - self.last < 0.2 and done < total):
            return
        self.last = now
        rate = done / max(now - self.t0, 1e-9)
        left = (total - done) / rate if rate > 0 else float("inf")
        width = 30
        fill = int(width * done / max(total, 1))
        end = "\n" if done >= total else ""
        self.stream.write(f"\r{self.label} [{'#' * fill}{'.' * (width - fill)}] {done}/{total} "
                          f"{rate:,.0f}/s {left:,.0f}s left  {end}")
        self.stream.flush()
