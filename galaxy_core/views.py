"""What a model sees: the crop and resize from cached pixels to the model's input, the training augmentation, the
test-time views, and batched inference. Shared by training, evaluation and prediction so that all three see the
galaxy the same way.

All functions take uint8 or [0, 1] float image batches shaped (B, 3, H, W) and run on the batch's device, so the
augmentation costs a single ``grid_sample`` on the GPU rather than a CPU worker pool.

Geometry: a batch covers ``src_fov`` of the 424 px Kaggle frame (see ``galaxy_core.data``); a model wants ``fov``
of it at ``size`` pixels. The crop fraction of the batch is ``fov / src_fov``.
"""

from __future__ import annotations

import copy
import functools
import math
import os
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.utils.fusion import fuse_conv_bn_eval

ZOOM = 1.1
"""Largest random zoom factor (and its inverse the smallest): galaxy sizes at fixed R90 scaling vary far more than
this, so the labels do not depend on it."""
SHIFT = 0.04
"""Largest random shift as a fraction of the view: GZ2 cutouts are centred on the galaxy to within a few pixels."""


@functools.cache
def cpu_has_native_bf16() -> bool:
    """True when this CPU multiplies bfloat16 in hardware (x86 AVX512-BF16 or AMX-BF16, read from
    ``/proc/cpuinfo``), where oneDNN's bf16 convolutions are faster than float32: the CPU recipe's training loop
    ran 1.76 times as fast on a 2-core AMD EPYC (Zen 5), measured with ``tests/bench_training.py``. Elsewhere bf16
    is emulated and slower, so float32 stays. ``GALAXY_CORE_CPU_BF16=0`` (or ``1``) overrides the detection."""
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
    the CPU time went to the kernel in a 64 px run here). Raising the mmap and trim thresholds (``mallopt``, as the
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


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float32 [0, 1]; float input is returned as float32 unchanged."""
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()


def _sample(x: torch.Tensor, theta: torch.Tensor, size: int) -> torch.Tensor:
    grid = F.affine_grid(theta, [x.shape[0], x.shape[1], size, size], align_corners=False)
    # Reflection, not zeros: a rotated square view reaches past the cutout's corners, and mirrored sky looks like
    # sky to the network where black corners would be a feature it could learn from.
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def fit_view(x: torch.Tensor, crop: float, size: int) -> torch.Tensor:
    """The central ``crop`` fraction of each image resampled to ``size`` px (bilinear), as float [0, 1].

    The identity (crop 1, same size) is returned without resampling."""
    x = to_float(x)
    if abs(crop - 1.0) < 1e-9 and x.shape[-1] == size:
        return x
    theta = torch.zeros(x.shape[0], 2, 3, device=x.device)
    theta[:, 0, 0] = theta[:, 1, 1] = crop
    return _sample(x, theta, size)


def random_view(x: torch.Tensor, crop: float, size: int, generator: torch.Generator | None = None,
                rotate: bool = True, flip: bool = True, zoom: float = ZOOM, shift: float = SHIFT) -> torch.Tensor:
    """``fit_view`` with a random rotation (any angle), mirror flip, zoom in [1/zoom, zoom] and shift per image.

    Galaxy morphology does not depend on the orientation or handedness of the image on the sky, which is why
    Dieleman et al. (2015) trained on rotated and flipped views; the whole augmentation is one affine resampling.
    ``generator`` must live on the batch's device; with it the views are reproducible.
    """
    x = to_float(x)
    b, dev = x.shape[0], x.device

    def u(lo: float, hi: float) -> torch.Tensor:
        return torch.rand(b, device=dev, generator=generator) * (hi - lo) + lo

    angle = u(0, 2 * math.pi) if rotate else torch.zeros(b, device=dev)
    mirror = torch.where(u(0, 1) < 0.5, -1.0, 1.0) if flip else torch.ones(b, device=dev)
    scale = crop * torch.exp(u(-math.log(zoom), math.log(zoom)))
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    theta = torch.stack([torch.stack([cos * mirror, -sin, u(-shift, shift) * crop], 1),
                         torch.stack([sin * mirror, cos, u(-shift, shift) * crop], 1)], 1)
    return _sample(x, theta, size)


def dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """View ``k`` (0-7) of the dihedral group: rotation by ``k % 4`` quarter turns, mirrored when ``k >= 4``.
    These eight are exact (no resampling), so averaging over them costs no sharpness."""
    if k >= 4:
        x = x.flip(-1)
    return torch.rot90(x, k % 4, dims=(-2, -1))


def fold_batchnorm(model: torch.nn.Module) -> torch.nn.Module:
    """An inference copy of ``model``, in eval mode, with every ``BatchNorm2d`` that follows a ``Conv2d`` folded into
    the convolution's weights and bias. In eval mode BatchNorm is a fixed affine map per channel (Ioffe & Szegedy
    2015), so the outputs agree up to rounding and each folded layer saves a pass over its activations. "Follows"
    means the next module registered in the same parent, which is the order they run in ``nn.Sequential`` and
    ``models.BasicBlock``; ``tests/test_views.py`` checks every registered model's outputs. ``model`` is not
    changed. A copy this function made is returned as it is (copying costs ~25 ms for the shipped model, so a caller
    that runs many batches folds once)."""
    if getattr(model, "_folded_for_inference", False) and not model.training:
        return model
    net = copy.deepcopy(model).eval()
    net._folded_for_inference = True

    def fold(parent: torch.nn.Module) -> None:
        names = list(parent._modules)
        for a, b in zip(names, names[1:]):
            conv, bn = parent._modules[a], parent._modules[b]
            if isinstance(conv, torch.nn.Conv2d) and isinstance(bn, torch.nn.BatchNorm2d) and bn.track_running_stats:
                parent._modules[a] = fuse_conv_bn_eval(conv, bn)
                parent._modules[b] = torch.nn.Identity()
        for child in parent.children():
            fold(child)

    fold(net)
    return net


def infer(model: torch.nn.Module, images, crop: float, size: int, batch_size: int = 256, tta: int = 1,
          device: torch.device | str | None = None, progress: Callable[[int, int], None] | None = None,
          indices: Iterable[int] | None = None, amp: bool = True, features: bool = False) -> np.ndarray:
    """Run ``model`` over ``images`` and return (N, 37) float32 predictions in [0, 1], or with ``features`` its
    (N, D) embeddings (``forward_features``: the backbone before the head), averaged over the views as well.

    ``images``: a uint8 array or tensor (N, 3, H, W), on the CPU (a memory map is fine: it is read batch by batch)
    or already on ``device``. ``indices`` selects rows. ``tta``: how many dihedral views to average (1 = none, 8 =
    all rotations by quarter turns and their mirror images). Runs an eval-mode copy with BatchNorm folded into the
    convolutions (:func:`fold_batchnorm`; ``model`` itself is left as it is) under ``torch.no_grad``, with bf16
    autocast where :func:`fast_math` says so.
    """
    if not 1 <= tta <= 8:
        raise ValueError(f"tta must be between 1 and 8 views, got {tta}")
    device = torch.device(device) if device is not None else device_of(model)
    rows = np.arange(len(images)) if indices is None else np.fromiter(indices, dtype=np.int64)
    out = np.empty((len(rows), model.embed_dim if features else 37), dtype=np.float32)
    bf16, channels_last = fast_math(device, amp)
    net = fold_batchnorm(model)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    forward = net.forward_features if features else net
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        for s in range(0, len(rows), batch_size):
            ix = rows[s:s + batch_size]
            if isinstance(images, torch.Tensor):
                xb = images[torch.as_tensor(ix, device=images.device)]
            else:
                xb = torch.from_numpy(np.ascontiguousarray(images[ix]))
            xb = fit_view(xb.to(device, non_blocking=True), crop, size)
            if channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            pred = sum(forward(dihedral(xb, k)).float() for k in range(tta)) / tta
            out[s:s + len(ix)] = (pred if features else pred.clamp_(0, 1)).cpu().numpy()
            if progress:
                progress(min(s + batch_size, len(rows)), len(rows))
    return out
