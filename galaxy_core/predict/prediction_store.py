"""The on-disk prediction store: predictions of a prepared cache kept in its folder (``predictions/<digest>.npy``),
keyed by everything they depend on, so that the same model meeting the same rows again, in this process or a later
one, reads them back instead of computing them (on a CPU, seconds become milliseconds for 6,000 galaxies).

A rebuilt cache starts with an empty store; a cache folder that cannot be written to simply keeps nothing.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from galaxy_core import hardware
from galaxy_core.atomic import atomic_write_npy

if TYPE_CHECKING:  # annotations only: the store reads a model's weights and a cache's fingerprint, builds neither
    from galaxy_core.data.cache import GalaxyCache
    from galaxy_core.models.registry import GalaxyModel

STORE_DIR = "predictions"
"""Where the store lives, inside the cache folder (rebuilt caches start empty)."""
STORE_KEEP = 64
"""How many stored prediction sets a cache folder keeps (the oldest go first)."""


def store_key(model: GalaxyModel, cache: GalaxyCache, rows: np.ndarray, tta: int, each_view: bool = False) -> str:
    """A digest of everything a prediction depends on: the weights and config, the cache's fingerprint, the rows,
    the views and the device type and precision (bf16 and float32 results differ in the last digits). With
    ``each_view``, the key of the views' individual predictions ((N, tta, 37), ``inference.infer(...,
    views=True)``), which never meets the key of their mean; without it, the key is what it always was, so the
    means stored before views were kept are still found."""
    h = hashlib.sha1()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().float().cpu().contiguous().numpy().tobytes())
    device = hardware.device_of(model)
    what = [model.config, cache.fingerprint, tta, device.type, hardware.fast_math(device)]
    h.update(json.dumps(what + (["each view"] if each_view else []), sort_keys=True, default=str).encode())
    h.update(np.ascontiguousarray(rows, np.int64).tobytes())
    return h.hexdigest()


def stored_path(cache: GalaxyCache, key: str) -> Path:
    """Where the predictions with digest ``key`` (:func:`store_key`) are kept for ``cache``."""
    return cache.path / STORE_DIR / f"{key}.npy"


def read(path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    """The stored predictions at ``path`` if there are some of this ``shape``; None when missing or damaged (a
    damaged file is then computed again and rewritten)."""
    if not path.is_file():
        return None
    try:
        pred = np.load(path)
    except (OSError, ValueError):
        return None
    return pred if pred.shape == shape else None


def write(path: Path, pred: np.ndarray) -> None:
    """Keep ``pred`` at ``path`` atomically, then drop all but the newest :data:`STORE_KEEP` sets of its folder. A
    read-only cache keeps nothing, silently: the predictions are recomputed next time."""
    try:
        atomic_write_npy(path, pred)
        for old in sorted(path.parent.glob("*.npy"), key=lambda f: f.stat().st_mtime)[:-STORE_KEEP]:
            old.unlink(missing_ok=True)
    except OSError:
        pass
