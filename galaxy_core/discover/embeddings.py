"""Embeddings: one vector per galaxy from a model's feature extractor (the backbone before the decision-tree head),
for finding galaxies like a given one and galaxies unlike any other (:mod:`galaxy_core.discover.similarity`).

A cache's embeddings are kept in its folder, ``embeddings/<key>/``, keyed by the model's weights and config, the
cache's fingerprint and the views averaged (``prediction_store.store_key``), and written in parts of
:data:`PART_ROWS` galaxies, each atomically: an interrupted run keeps the parts it finished and the next one computes
only the rest. Embeddings are averaged over the dihedral views (``tta``), so a galaxy and its rotated or mirrored
copy embed alike, as the volunteers would classify them alike.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from galaxy_core import hardware
from galaxy_core.atomic import atomic_write_npy
from galaxy_core.data import images
from galaxy_core.data.cache import GalaxyCache
from galaxy_core.errors import ImageError
from galaxy_core.models import inference, registry
from galaxy_core.predict.prediction_store import store_key
from galaxy_core.progress import Progress

STORE_DIR = "embeddings"
PART_ROWS = 4096
"""Galaxies per stored part: about 4 MB of float32 at the shipped model's 256 dimensions."""


def embed_cache(model: registry.GalaxyModel, cache: GalaxyCache, tta: int = 4, batch_size: int = 256,
                progress: Progress | None = None, store: bool = True) -> np.ndarray:
    """(N, D) float32 embeddings of every galaxy of ``cache`` by ``model`` (D = ``model.embed_dim``), each averaged
    over ``tta`` dihedral views, computed once and kept with the cache (see the module's docstring).
    ``progress(done, total)`` counts galaxies, those read back from stored parts included. A cache folder that
    cannot be written to is computed in full every time; ``store=False`` neither reads nor keeps parts (for a
    model made for the moment, such as a fine-tuned copy). Raises ValueError for a model with no features (the mean
    baseline) or one that looks at more of the frame than the cache holds."""
    if not model.embed_dim:
        raise ValueError(f"the {model.config['name']} model has no image features to embed with")
    fov, size = float(model.config["fov"]), int(model.config["input_size"])
    if fov > cache.fov + 1e-6:
        raise ValueError(f"the model looks at {fov:.3f} of the frame but the cache {cache.path} holds only "
                         f"{cache.fov:.3f}")
    folder = cache.path / STORE_DIR / store_key(model, cache, np.arange(len(cache)), tta)
    parts = []
    for start in range(0, len(cache), PART_ROWS):
        rows = np.arange(start, min(start + PART_ROWS, len(cache)))
        path = folder / f"part-{start // PART_ROWS:05d}.npy"
        part = _read(path, (len(rows), model.embed_dim)) if store else None
        if part is None:
            part = inference.infer(model, cache.images, fov / cache.fov, size, batch_size=batch_size, tta=tta,
                                   device=hardware.device_of(model), indices=rows, features=True,
                                   progress=progress and (lambda done, _, s=start: progress(s + done, len(cache))))
            if store:
                _write(path, part)
        elif progress:
            progress(start + len(rows), len(cache))
        parts.append(part)
    return np.concatenate(parts) if parts else np.zeros((0, model.embed_dim), np.float32)


def _read(path, shape: tuple[int, int]) -> np.ndarray | None:
    try:
        part = np.load(path)
    except (OSError, ValueError):
        return None  # absent, or damaged by a crash mid-write elsewhere: computed again
    return part if part.shape == shape and part.dtype == np.float32 else None


def _write(path, part: np.ndarray) -> None:
    try:
        atomic_write_npy(path, part)
    except OSError:
        pass  # a read-only cache: recomputed next time


def embed_images(model: registry.GalaxyModel, images: np.ndarray, crop: float, tta: int = 4) -> np.ndarray:
    """(N, D) embeddings of decoded uint8 images (N, 3, S, S) showing ``crop`` x the model's field (1.0: exactly
    its field), for a galaxy that is not in a cache (an uploaded image or FITS file)."""
    return inference.infer(model, images, crop, int(model.config["input_size"]), tta=tta,
                           device=hardware.device_of(model), features=True)


def embed_file(model: registry.GalaxyModel, path: str | os.PathLike, cache: GalaxyCache, *,
               source_fov: float | None = None, tta: int = 4) -> np.ndarray:
    """The (D,) embedding of one image file (JPEG, PNG or FITS), decoded as ``cache``'s galaxies were (its field and
    size), so that it can be compared with theirs. ``source_fov``: the part of the 424 px frame the image shows
    (default: its folder's ``galaxy_core.json``, else a 424 px original). Raises ImageError for an unusable image,
    DataError for undeclared images of another size."""
    path = Path(path)
    source_fov = images.resolve_source_fov(path.parent, [path], source_fov)
    [(_, res)] = list(images.decode_images([path], cache.fov / source_fov, cache.size, workers=1,
                                           source_fov=source_fov))
    if isinstance(res, str):
        raise ImageError(path, res)
    return embed_images(model, res[None], float(model.config["fov"]) / cache.fov, tta)[0]
