"""Tests for galaxy_core.hardware: bf16 only where the hardware multiplies it natively (or where forced), the device
by name, and the allocator setting that must change no result."""

from __future__ import annotations

import pytest
import torch

from galaxy_core import hardware


def test_keep_freed_memory_raises_glibcs_thresholds_or_changes_nothing(monkeypatch):
    """The project's side of the allocator setting: the three ``mallopt`` calls (mmap threshold, trim threshold, top
    pad) with their values, True only when glibc accepts all three, and False without glibc, where nothing is called
    (the C library is stood in for, so that the test process's own allocator is left alone)."""
    import ctypes

    calls = []

    class Libc:
        def __init__(self, accept: bool):
            self.accept = accept

        def mallopt(self, key: int, value: int) -> int:
            calls.append((key, value))
            return 1 if self.accept else 0

    monkeypatch.setattr(ctypes, "CDLL", lambda name: Libc(True))
    assert hardware.keep_freed_memory() is True
    assert calls == [(-3, 2**31 - 1), (-1, 2**31 - 1), (-2, 2**30)]
    monkeypatch.setattr(ctypes, "CDLL", lambda name: Libc(False))
    assert hardware.keep_freed_memory() is False

    def no_glibc(name):
        raise OSError("no such library")

    calls.clear()
    monkeypatch.setattr(ctypes, "CDLL", no_glibc)
    assert hardware.keep_freed_memory() is False and calls == []


def test_fast_math_takes_bf16_only_where_the_hardware_has_it(monkeypatch):
    assert hardware.fast_math("cuda") == (True, True)
    assert hardware.fast_math("cuda", amp=False) == (False, True)
    for forced, expected in (("0", False), ("1", True)):
        monkeypatch.setenv("GALAXY_CORE_CPU_BF16", forced)
        hardware.cpu_has_native_bf16.cache_clear()
        assert hardware.fast_math("cpu") == (expected, True)
        assert hardware.fast_math("cpu", amp=False) == (False, True)
    monkeypatch.delenv("GALAXY_CORE_CPU_BF16")
    hardware.cpu_has_native_bf16.cache_clear()


def test_pick_device_and_device_of():
    assert hardware.pick_device("cpu") == torch.device("cpu")
    assert hardware.pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA GPU"):
            hardware.pick_device("cuda")
    assert hardware.device_of(torch.nn.Linear(2, 2)) == torch.device("cpu")
    assert hardware.device_of(torch.nn.ReLU()) == torch.device("cpu")  # no weights, no buffers
