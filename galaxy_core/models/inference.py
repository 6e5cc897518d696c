"""Running a trained network over many images: an inference copy with BatchNorm folded into the convolutions, and
batched, optionally multi-view prediction or embedding of a whole image array. Shared by training (validation),
evaluation, prediction and the embeddings, so that all of them score a galaxy the same way.
"""

from __future__ import annotations

import copy
from typing import Callable, Iterable

import numpy as np
import torch
from torch.nn.utils.fusion import fuse_conv_bn_eval

from galaxy_core import hardware
from galaxy_core.models.transforms import dihedral, fit_view


def fold_batchnorm(model: torch.nn.Module) -> torch.nn.Module:
    """An inference copy of ``model``, in eval mode, with every ``BatchNorm2d`` that follows a ``Conv2d`` folded into
    the convolution's weights and bias. In eval mode BatchNorm is a fixed affine map per channel (Ioffe & Szegedy
    2015), so the outputs agree up to rounding and each folded layer saves a pass over its activations. "Follows"
    means the next module registered in the same parent, which is the order they run in ``nn.Sequential`` and
    ``layers.BasicBlock``; ``tests/models/test_inference.py`` checks every registered model's outputs. ``model`` is not
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
          indices: Iterable[int] | None = None, amp: bool = True, features: bool = False,
          views: bool = False) -> np.ndarray:
    """Run ``model`` over ``images`` and return (N, 37) float32 predictions in [0, 1], or with ``features`` its
    (N, D) embeddings (``forward_features``: the backbone before the head), averaged over the views as well.

    With ``views``, each view's output is returned instead of their mean: (N, tta, 37) (or (N, tta, D)), view ``k``
    being :func:`transforms.dihedral` ``k``, as the network gave it (not clamped to [0, 1]), so that
    ``uncertainty.from_views`` can form exactly the mean this function returns without ``views`` and the views'
    spread about it.

    ``images``: a uint8 array or tensor (N, 3, H, W), on the CPU (a memory map is fine: it is read batch by batch)
    or already on ``device``. ``crop``: the fraction of each image the model sees, resampled to ``size`` px
    (:func:`transforms.fit_view`). ``indices`` selects rows. ``tta``: how many dihedral views to average (1 = none, 8 =
    all rotations by quarter turns and their mirror images); ValueError outside 1-8. Runs an eval-mode copy with
    BatchNorm folded into the convolutions (:func:`fold_batchnorm`; ``model`` itself is left as it is) under
    ``torch.no_grad``, with bf16 autocast where :func:`hardware.fast_math` says so. ``progress(done, total)`` is
    called after every batch.
    """
    if not 1 <= tta <= 8:
        raise ValueError(f"tta must be between 1 and 8 views, got {tta}")
    device = torch.device(device) if device is not None else hardware.device_of(model)
    rows = np.arange(len(images)) if indices is None else np.fromiter(indices, dtype=np.int64)
    width = model.embed_dim if features else 37
    out = np.empty((len(rows), tta, width) if views else (len(rows), width), dtype=np.float32)
    bf16, channels_last = hardware.fast_math(device, amp)
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
            if views:  # a branch of its own, so that the mean's path stays as it was, view by view
                each = [forward(dihedral(xb, k)).float() for k in range(tta)]
                out[s:s + len(ix)] = torch.stack(each, 1).cpu().numpy()
            else:
                pred = sum(forward(dihedral(xb, k)).float() for k in range(tta)) / tta
                out[s:s + len(ix)] = (pred if features else pred.clamp_(0, 1)).cpu().numpy()
            if progress:
                progress(min(s + batch_size, len(rows)), len(rows))
    return out
