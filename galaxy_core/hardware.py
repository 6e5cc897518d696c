"""The machine a network runs on: which device, whether its CPU multiplies bfloat16 natively, the precision and
memory layout to run in there, and the C allocator's handling of freed memory on a CPU.

Training, evaluation, prediction and the cost estimate all choose their device and fast-math settings here, so a
run and its estimate agree on what the hardware can do. No package imports: every other stage may import it.
"""

from __future__ import annotations

import functools
import os

import torch


@functools.cache
def cpu_has_native_bf16() -> bool:
    """True when this CPU multiplies bfloat16 in hardware (x86 AVX512-BF16 or AMX-BF16, read from
    ``/proc/cpuinfo``), where oneDNN's bf16 convolutions are faster than float32: the CPU recipe's training loop
    ran 1.76 times as fast on a 2-core AMD EPYC (Zen 5; docs/cpu-training.md). Elsewhere bf16 is emulated and
    slower, so float32 stays. ``GALAXY_CORE_CPU_BF16=0`` (or ``1``) overrides the detection."""
    forced = os.environ.get("GALAXY_CORE_CPU_BF16")
    if forced in ("0", "1"):
        return forced == "1"
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return False
    return bool({"avx512_bf16", "amx_bf16"} & set(flags)) and torch.backends.mkldnn.is_available()


def keep_freed_memory() -> bool:
    """Ask glibc's allocator to keep freed memory for reuse rather than hand every large block back to the kernel.

    A CPU training step allocates and frees hundreds of megabytes of activations; by default glibc serves blocks
    over its mmap threshold with fresh ``mmap`` calls, so every step pays page faults to zero new pages (a third of
    the CPU time went to the kernel in a 64 px run). Raising the mmap and trim thresholds (``mallopt``, as the
    ``MALLOC_MMAP_THRESHOLD_`` variables would) keeps those pages mapped: about 10 % faster on a 2-core CPU. The
    cost is that the process's resident size stays at its peak. Returns False, changing nothing, where there is no
    glibc (macOS, Windows, musl)."""
    import ctypes
    import ctypes.util

    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
    settings = ((m_mmap_threshold, 2**31 - 1), (m_trim_threshold, 2**31 - 1), (m_top_pad, 2**30))
    return all(mallopt(k, v) == 1 for k, v in settings)


def fast_math(device: torch.device | str, amp: bool = True) -> tuple[bool, bool]:
    """``(bf16, channels_last)`` for running a network on ``device``: bf16 autocast on CUDA and on CPUs with native
    bf16 (when ``amp``), and channels-last tensors on both (the layout that cuDNN's tensor-core kernels and oneDNN's
    blocked convolutions want; 1.15 times as fast through the CPU recipe's training loop). Autocast keeps weights,
    the loss and the decision-tree products in float32, so only the convolutions' and matrix products' inputs are
    rounded."""
    kind = torch.device(device).type
    bf16 = amp and (kind == "cuda" or (kind == "cpu" and cpu_has_native_bf16()))
    return bf16, kind in ("cuda", "cpu")


def pick_device(name: str = "auto") -> torch.device:
    """The torch device for ``name``: ``auto`` takes CUDA when torch sees a GPU, else the CPU. Raises RuntimeError
    when ``cuda`` is asked for and there is none (rather than failing later, mid-run)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' asked for, but torch sees no CUDA GPU; use --device cpu or auto")
    return dev


def device_of(model: torch.nn.Module) -> torch.device:
    """The device a model's weights (or, for a model without any, its buffers) are on; the CPU for neither."""
    return next((p.device for p in model.parameters()), next((b.device for b in model.buffers()),
                                                             torch.device("cpu")))
