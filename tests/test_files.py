"""Tests for galaxy_core.files: atomic writes leave the old file or the new one and never a temporary file,
replace_dir swaps folders whole, and the text progress bar stays quiet unless asked."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest

from galaxy_core import files


def test_atomic_write_bytes_creates_parent_folders(tmp_path):
    target = tmp_path / "a" / "b" / "c.bin"
    files.atomic_write_bytes(target, b"\x00\x01hello")
    assert target.read_bytes() == b"\x00\x01hello"
    assert os.listdir(target.parent) == ["c.bin"]
    assert target.stat().st_mode & 0o777 == 0o644  # readable by others, unlike mkstemp's 0600


def test_atomic_write_replaces_content_and_leaves_no_temp_files(tmp_path):
    target = tmp_path / "out.txt"
    files.atomic_write_text(target, "old")
    files.atomic_write_text(target, "new é")
    assert target.read_text(encoding="utf-8") == "new é"
    assert sorted(os.listdir(tmp_path)) == ["out.txt"]


def test_atomic_write_json(tmp_path):
    target = tmp_path / "sub" / "x.json"
    obj = {"a": np.float32(0.5), "b": np.int64(3), "p": Path("/x/y"), "l": [1, 2]}
    files.atomic_write_json(target, obj)
    assert files.read_json(target) == {"a": 0.5, "b": 3, "p": "/x/y", "l": [1, 2]}
    assert target.read_text().endswith("\n")
    with pytest.raises(TypeError, match="cannot write object"):
        files.atomic_write_json(tmp_path / "bad.json", {"o": object()})
    assert sorted(os.listdir(tmp_path)) == ["sub"]  # the failed write left nothing behind


def test_failed_replace_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "keep.json"
    files.atomic_write_json(target, {"version": 1})

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(files.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        files.atomic_write_json(target, {"version": 2})
    monkeypatch.undo()
    assert json.loads(target.read_text()) == {"version": 1}
    assert sorted(os.listdir(tmp_path)) == ["keep.json"]


def test_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "keep.bin"
    files.atomic_write_bytes(target, b"good")
    with pytest.raises(TypeError):
        files.atomic_write_bytes(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"good"
    assert sorted(os.listdir(tmp_path)) == ["keep.bin"]


def test_replace_dir_into_new_place(tmp_path):
    src = tmp_path / "build"
    src.mkdir()
    (src / "f").write_text("new")
    files.replace_dir(src, tmp_path / "dst")
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
    files.replace_dir(src, dst)
    assert sorted(os.listdir(dst)) == ["f"]
    assert (dst / "f").read_text() == "new"
    assert sorted(os.listdir(tmp_path)) == ["dst"]  # no build folder, no .old-<pid> left


def test_text_progress_quiet_when_not_a_terminal():
    out = io.StringIO()  # isatty() is False
    p = files.TextProgress("decode", stream=out)
    assert not p.enabled
    p(1, 10)
    p(10, 10)
    assert out.getvalue() == ""


def test_text_progress_always(monkeypatch):
    clock = iter([100.0, 100.5, 100.55, 101.0])  # t0, then three calls
    monkeypatch.setattr(files.time, "perf_counter", lambda: next(clock))
    out = io.StringIO()
    p = files.TextProgress("decode", always=True, stream=out)
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
    from galaxy_core.files import format_bytes

    assert format_bytes(512) == "512.0 B"
    assert format_bytes(1536) == "1.5 KiB"
    assert format_bytes(33_210_739_584) == "30.9 GiB"  # the 61,578 Kaggle originals as uint8
    assert format_bytes(2**50) == "1,024.0 TiB"
