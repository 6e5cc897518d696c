"""What a model sees: the crop and resize from cached pixels to the model's input, the training augmentation and
the test-time views. Shared by training, evaluation and prediction (through ``inference``) so that all three see
the galaxy the same way.

All functions take uint8 or [0, 1] float image batches shaped (B, 3, H, W) and run on the batch's device, so the
augmentation costs a single ``grid_sample`` on the GPU rather than a CPU worker pool.

Geometry: a batch covers ``src_fov`` of the 424 px Kaggle frame (``layout.KAGGLE_FRAME``); a model wants ``fov``
of it at ``size`` pixels. The crop fraction of the batch is ``fov / src_fov``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

ZOOM = 1.1
"""Largest random zoom factor (and its inverse the smallest): galaxy sizes at fixed R90 scaling vary far more than
this, so the labels do not depend on it."""
SHIFT = 0.04
"""Largest random shift as a fraction of the view: GZ2 cutouts are centred on the galaxy to within a few pixels."""


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
