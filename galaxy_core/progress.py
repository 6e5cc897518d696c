"""How far work has got and how it is shared out: the progress callback type and a text bar, sizes and durations
as people read them, and a list of work cut into parts."""

from __future__ import annotations

import sys
import time
from typing import Callable


def part(n: int, i: int, k: int) -> slice:
    """The ``i``-th of ``k`` contiguous parts of ``range(n)``, whose lengths differ by at most one (the longer
    first, as ``numpy.array_split`` cuts): how the processes of a launch and the shards of a ``prepare`` share out
    ``n`` items. ``k`` must be positive; parts past ``n`` are empty."""
    q, r = divmod(n, k)
    start = i * q + min(i, r)
    return slice(start, start + q + (i < r))


def format_bytes(n: float) -> str:
    """``1536`` -> ``'1.5 KiB'`` (binary units, one decimal)."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} TiB"


def format_duration(seconds: float) -> str:
    """``2460`` -> ``'about 41 min'``: seconds under two minutes, hours and minutes over two hours (for estimates and
    time left, which are never exact)."""
    if seconds < 120:
        return f"about {max(seconds, 1):.0f} s"
    if seconds < 7200:
        return f"about {seconds / 60:.0f} min"
    return f"about {seconds // 3600:.0f} h {seconds % 3600 / 60:.0f} min"


Progress = Callable[[int, int], None]
"""A progress callback: ``progress(done, total)``."""


def progress_text(done: int, total: int, elapsed_s: float, what: str = "galaxies") -> str:
    """'12,000 of 22,740 galaxies, about 20 s left': the time left at the rate so far (nothing said about it before
    the first galaxy is done or after the last)."""
    text = f"{done:,} of {total:,} {what}"
    if 0 < done < total and elapsed_s > 0:
        left = elapsed_s * (total - done) / done
        text += f", about {left:.0f} s left" if left < 120 else f", about {left / 60:.0f} min left"
    return text


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
