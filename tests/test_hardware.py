"""Tests for galaxy_core.hardware: bf16 only where the hardware multiplies it natively (or where forced), the device
by name, and the allocator setting that must change no result."""

from __future__ import annotations

import pytest
import torch

from galaxy_core import hardware


def test_keep_freed_memory_is_harmless():
    assert hardware.keep_freed_memory() in (True, False)
    x = torch.randn(256, 256)
    assert torch.equal(x @ torch.eye(256), x)


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
