"""Tests for galaxy_core.files: atomic writes leave the old file or the new one and never a temporary file,
replace_dir swaps folders whole, what killed writers leave behind is tidied by the next write, a full disk is a clear
error that keeps the old output, the lock makes builders take turns, and the text progress bar stays quiet unless
asked."""

from __future__ import annotations

import errno
import io
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from galaxy_core import atomic, progress


def test_atomic_write_bytes_creates_parent_folders(tmp_path):
    target = tmp_path / "a" / "b" / "c.bin"
    atomic.atomic_write_bytes(target, b"\x00\x01hello")
    assert target.read_bytes() == b"\x00\x01hello"
    assert os.listdir(target.parent) == ["c.bin"]
    assert target.stat().st_mode & 0o777 == 0o644  # readable by others, unlike mkstemp's 0600


def test_atomic_write_replaces_content_and_leaves_no_temp_files(tmp_path):
    target = tmp_path / "out.txt"
    atomic.atomic_write_text(target, "old")
    atomic.atomic_write_text(target, "new é")
    assert target.read_text(encoding="utf-8") == "new é"
    assert sorted(os.listdir(tmp_path)) == ["out.txt"]


def test_atomic_write_json(tmp_path):
    target = tmp_path / "sub" / "x.json"
    obj = {"a": np.float32(0.5), "b": np.int64(3), "p": Path("/x/y"), "l": [1, 2]}
    atomic.atomic_write_json(target, obj)
    assert atomic.read_json(target) == {"a": 0.5, "b": 3, "p": "/x/y", "l": [1, 2]}
    assert target.read_text().endswith("\n")
    with pytest.raises(TypeError, match="cannot write object"):
        atomic.atomic_write_json(tmp_path / "bad.json", {"o": object()})
    assert sorted(os.listdir(tmp_path)) == ["sub"]  # the failed write left nothing behind


def test_failed_replace_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "keep.json"
    atomic.atomic_write_json(target, {"version": 1})

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(atomic.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic.atomic_write_json(target, {"version": 2})
    monkeypatch.undo()
    assert json.loads(target.read_text()) == {"version": 1}
    assert sorted(os.listdir(tmp_path)) == ["keep.json"]


def test_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "keep.bin"
    atomic.atomic_write_bytes(target, b"good")
    with pytest.raises(TypeError):
        atomic.atomic_write_bytes(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"good"
    assert sorted(os.listdir(tmp_path)) == ["keep.bin"]


def test_replace_dir_into_new_place(tmp_path):
    src = tmp_path / "build"
    src.mkdir()
    (src / "f").write_text("new")
    atomic.replace_dir(src, tmp_path / "dst")
    assert (tmp_path / "dst" / "f").read_text() == "new"
    assert sorted(os.listdir(tmp_path)) == ["dst"]


def test_replace_dir_replaces_old_folder(tmp_path):
    dst = tmp_path / "dst"
    dst.mkdir()
    (dst / "old_only").write_text("old")
    (dst / "f").write_text("old")
    src = tmp_path / "build"
    src.mkdir()
    (src / "f").write_text("new")
    atomic.replace_dir(src, dst)
    assert sorted(os.listdir(dst)) == ["f"]
    assert (dst / "f").read_text() == "new"
    assert sorted(os.listdir(tmp_path)) == ["dst"]  # no build folder, no .old-<pid> left


def test_text_progress_quiet_when_not_a_terminal():
    out = io.StringIO()  # isatty() is False
    p = progress.TextProgress("decode", stream=out)
    assert not p.enabled
    p(1, 10)
    p(10, 10)
    assert out.getvalue() == ""


def test_text_progress_always(monkeypatch):
    clock = iter([100.0, 100.5, 100.55, 101.0])  # t0, then three calls
    monkeypatch.setattr(progress.time, "perf_counter", lambda: next(clock))
    out = io.StringIO()
    p = progress.TextProgress("decode", always=True, stream=out)
    p(5, 10)   # first call: drawn
    p(6, 10)   # 0.05 s later, not finished: skipped
    first = out.getvalue()
    assert first.startswith("\rdecode [") and "5/10" in first and "6/10" not in first
    assert "#" * 15 + "." * 15 in first  # half of the 30-character bar
    assert not first.endswith("\n")
    p(10, 10)  # finished: always drawn, ends the line
    last = out.getvalue()[len(first):]
    assert "10/10" in last and "#" * 30 in last and last.endswith("\n")


def test_format_bytes_uses_binary_units():
    from galaxy_core.progress import format_bytes

    assert format_bytes(512) == "512.0 B"
    assert format_bytes(1536) == "1.5 KiB"
    assert format_bytes(33_210_739_584) == "30.9 GiB"  # the 61,578 Kaggle originals as uint8
    assert format_bytes(2**50) == "1,024.0 TiB"


# --------------------------------------------------------------------------------------------------------------------
# What killed writers leave behind, a full disk, the lock


def dead_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_building_dir_removes_what_a_killed_writer_left_and_nothing_else(tmp_path):
    dst, dead = tmp_path / "last", dead_pid()
    (tmp_path / f"last.tmp-{dead}-abc123").mkdir()  # a save killed midway (SIGKILL: no cleanup ran)
    (tmp_path / f"last.tmp-{dead}-abc123" / "model.safetensors").write_bytes(b"half")
    (tmp_path / f".state.json.{dead}-x1y2.tmp").write_text("{")  # an atomic file write killed midway
    live = tmp_path / f"last.tmp-{os.getpid()}-busy"  # another save still running (here: this process)
    live.mkdir()
    legacy = tmp_path / "last.tmp-k3j4h5g6"  # written before names carried a process id: cannot be told dead
    legacy.mkdir()
    with atomic.building_dir(dst) as tmp:
        (tmp / "f").write_text("new")
        assert tmp.name.startswith(f"last.tmp-{os.getpid()}-")
    atomic.atomic_write_text(tmp_path / "state.json", "{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["last", live.name, legacy.name, "state.json"])
    assert (dst / "f").read_text() == "new"


def test_recover_puts_back_a_folder_left_aside_by_a_killed_swap(tmp_path):
    # replace_dir renames the old folder aside, then the new one into place: killed in between, neither is at dst.
    dst, dead = tmp_path / "best", dead_pid()
    aside = tmp_path / f"best.old-{dead}"
    aside.mkdir()
    (aside / "model.safetensors").write_bytes(b"previous")
    atomic.recover(dst)
    assert (dst / "model.safetensors").read_bytes() == b"previous" and not aside.exists()
    aside.mkdir()  # killed after the swap, while removing the old folder: dst is the new one, the rest goes
    (aside / "x").write_text("stale")
    atomic.recover(dst)
    assert sorted(os.listdir(tmp_path)) == ["best"] and (dst / "model.safetensors").read_bytes() == b"previous"
    atomic.recover(tmp_path / "missing" / "x")  # nothing to do, no error


def test_a_full_disk_is_a_clear_error_and_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "answers.csv"
    atomic.atomic_write_text(target, "old")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", full)
    with pytest.raises(atomic.DiskFull, match="no space left") as e:
        atomic.atomic_write_text(target, "new")
    assert e.value.errno == errno.ENOSPC and str(tmp_path) in str(e.value) and "answers.csv" in str(e.value)
    assert target.read_text() == "old" and sorted(os.listdir(tmp_path)) == ["answers.csv"]


def test_a_full_disk_while_building_a_folder_keeps_the_old_folder(tmp_path, monkeypatch):
    dst = tmp_path / "ckpt"
    with atomic.building_dir(dst) as tmp:
        atomic.atomic_write_text(tmp / "model", "old")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(atomic.DiskFull, match=f"no space left on device writing ckpt in {tmp_path}"):
        with atomic.building_dir(dst) as tmp:
            (tmp / "model").write_text("new, partly wri")
            full()
    assert (dst / "model").read_text() == "old" and sorted(os.listdir(tmp_path)) == ["ckpt"]


def test_file_lock_makes_threads_take_turns(tmp_path):
    lock = tmp_path / "cache.lock"
    held, order = threading.Event(), []

    def holder():
        with atomic.file_lock(lock) as waited:
            order.append(("holder", waited))
            held.set()
            time.sleep(0.3)
            order.append(("holder done", None))

    t = threading.Thread(target=holder)
    t.start()
    held.wait(5)
    with atomic.file_lock(lock) as waited:
        order.append(("second", waited))
    t.join()
    assert order == [("holder", False), ("holder done", None), ("second", True)]
    with atomic.file_lock(lock) as waited:  # free again; the lock file stays (removing it would be a race)
        assert not waited and lock.is_file()


def test_progress_text_counts_and_says_the_time_left():
    assert progress.progress_text(12000, 22740, 22.4) == "12,000 of 22,740 galaxies, about 20 s left"
    assert progress.progress_text(100, 22740, 60.0) == "100 of 22,740 galaxies, about 226 min left"
    # Nothing to estimate from before the first galaxy, nothing left after the last.
    assert progress.progress_text(0, 500, 3.0) == "0 of 500 galaxies"
    assert progress.progress_text(500, 500, 3.0, what="pairs") == "500 of 500 pairs"


def test_atomic_write_npy_round_trips_and_replaces_whole(tmp_path):
    import numpy as np

    path = tmp_path / "a.npy"
    atomic.atomic_write_npy(path, np.arange(6, dtype=np.float32).reshape(2, 3))
    atomic.atomic_write_npy(path, np.ones((4, 2), np.float32))
    back = np.load(path)
    assert back.shape == (4, 2) and back.dtype == np.float32 and (back == 1).all()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy"]


@pytest.mark.parametrize("n,k", [(10, 3), (2, 4), (0, 2), (7, 1), (61578, 8)])
def test_parts_cover_the_range_in_order_and_differ_by_at_most_one(n, k):
    parts = [progress.part(n, i, k) for i in range(k)]
    assert [x for p in parts for x in range(n)[p]] == list(range(n))
    lengths = [len(range(n)[p]) for p in parts]
    assert max(lengths) - min(lengths) <= 1 and lengths == sorted(lengths, reverse=True)
    assert lengths == [len(a) for a in np.array_split(np.arange(n), k)]
