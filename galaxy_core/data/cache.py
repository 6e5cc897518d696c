"""The cache: every image of a data folder decoded once into a memory-mapped uint8 array, with its labels,
mask of known answers and a seeded train/validation split, so that training never decodes a JPEG.

``prepare`` (:mod:`galaxy_core.data.prepare`) reads the folder (``catalog``), decodes it at one field of view and size,
and writes the cache folder atomically; ``GalaxyCache`` opens it; ``split_rows`` says which rows a run trains and
validates on.

The default field is 256/424 (0.604): about 2.5 R90 across, the whole galaxy with sky around it, and all that the
96 px packs hold. The Kaggle winner (Dieleman et al. 2015) used the central 207 px (0.488); the seed paper a 5 %
border crop (0.90). The default size is 80 px (3.2 original pixels per cache pixel): a ResNet-18-sized net at
80 px reached 0.086 RMSE on the 96 px pack where the same family at 69 px did worse (../shared/README.md), and
80 px keeps the full 61,578-image cache at 1.2 GB, small enough to sit on a GPU. Models that want another input size
resample the cache on the device.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from galaxy_core.atomic import read_json
from galaxy_core.data.catalogue_table import ColumnNames
from galaxy_core.data.layout import DEFAULT_FOV, cache_root, folder_is_synthetic
from galaxy_core.errors import DataError
from galaxy_core.tables import insert_columns
from galaxy_core.tree import galaxy_kind

if TYPE_CHECKING:  # annotations only: a TrainConfig is passed in, data never builds one
    import pandas as pd

    from galaxy_core.models.config import TrainConfig

DEFAULT_SIZE = 80
CACHE_VERSION = 1
CATALOGUE_FILE = "catalogue.parquet"
"""The catalogue's own columns in a cache folder, one row per cached galaxy (absent for data without a table)."""
SPLIT_TRAIN, SPLIT_VAL, SPLIT_UNLABELLED = 0, 1, 2
SPLIT_NAMES = {"train": SPLIT_TRAIN, "val": SPLIT_VAL, "unlabelled": SPLIT_UNLABELLED}
SUBSET_NAMES = {"all": "all galaxies", "labelled": "labelled", "train": "training split", "val": "validation split",
                "unlabelled": "unlabelled"}
"""The subsets :meth:`GalaxyCache.indices` knows, as the dashboard names them."""


# --------------------------------------------------------------------------------------------------------------------
# Split


def subsample(rows: np.ndarray, limit: int | None, seed: int = 0) -> np.ndarray:
    """``rows``, or a seeded random ``limit`` of them kept in their order (the same ones for the same seed);
    ``limit`` None, or at least ``len(rows)``, keeps them all."""
    if limit is None or limit >= len(rows):
        return rows
    return np.sort(np.random.default_rng(seed).choice(rows, limit, replace=False))


def split_rows(cache: "GalaxyCache", cfg: "TrainConfig") -> tuple[np.ndarray, np.ndarray]:
    """The cache rows a run trains and validates on: the cache's stored split, or the one that ``cfg``'s
    ``val_fraction`` and ``split_seed`` give; without ``cfg.partial`` only fully labelled galaxies train;
    ``cfg.max_train`` keeps a seeded random subset of the training rows (:func:`subsample`)."""
    split = cache.split
    fraction = cache.meta["val_fraction"] if cfg.val_fraction is None else cfg.val_fraction
    seed = cache.meta["seed"] if cfg.split_seed is None else cfg.split_seed
    if (fraction, seed) != (cache.meta["val_fraction"], cache.meta["seed"]):
        split = make_split(cache.ids, cache.kind, fraction, seed)
    train_rows = np.flatnonzero(split == SPLIT_TRAIN)
    if not cfg.partial:
        train_rows = train_rows[cache.mask[train_rows].all(1)]
    train_rows = subsample(train_rows, cfg.max_train, cfg.seed)
    return train_rows, np.flatnonzero(split == SPLIT_VAL)


def make_split(ids: np.ndarray, kind: np.ndarray, val_fraction: float = 0.1, seed: int = 0) -> np.ndarray:
    """Deterministic train/validation split: ``round(val_fraction * n_full)`` fully labelled galaxies go to
    validation, chosen by a seeded hash of their ids (so the choice does not depend on file order); partially
    labelled galaxies always train (validation scores are over all 37 answers); unlabelled ones are marked so.

    Returns int8 codes: 0 train, 1 validation, 2 unlabelled.
    """
    if not 0 <= val_fraction < 1:
        raise DataError(f"val_fraction must be in [0, 1), got {val_fraction}")
    split = np.where(kind == "unlabelled", SPLIT_UNLABELLED, SPLIT_TRAIN).astype(np.int8)
    full = np.flatnonzero(kind == "full")
    keys = [hashlib.blake2b(f"{seed}:{i}".encode(), digest_size=8).digest() for i in ids[full]]
    order = sorted(range(len(full)), key=keys.__getitem__)
    n_val = int(round(val_fraction * len(full)))
    split[full[order[:n_val]]] = SPLIT_VAL
    return split


# --------------------------------------------------------------------------------------------------------------------
# Cache


@dataclass
class GalaxyCache:
    """A prepared cache: images as a read-only (N, 3, S, S) uint8 memory map, with ids, labels, mask and split.

    ``labels`` hold 0 where unknown; ``mask`` says which are known. ``meta`` is the cache's ``meta.json``.
    """

    path: Path
    meta: dict
    images: np.ndarray
    ids: np.ndarray
    labels: np.ndarray
    mask: np.ndarray
    split: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def size(self) -> int:
        return int(self.meta["size"])

    @property
    def fov(self) -> float:
        return float(self.meta["fov"])

    @property
    def synthetic(self) -> bool:
        """Whether the galaxies are synthetic (the built-in demo); caches made before this was recorded ask their
        source folder."""
        if "synthetic" in self.meta:
            return bool(self.meta["synthetic"])
        return folder_is_synthetic(self.meta["source"]) if Path(self.meta["source"]).is_dir() else False

    @property
    def fingerprint(self) -> str:
        return str(self.meta["fingerprint"])

    def indices(self, split: str) -> np.ndarray:
        """Row numbers of ``"train"``, ``"val"``, ``"unlabelled"``, ``"labelled"`` (train + val) or ``"all"``."""
        if split == "all":
            return np.arange(len(self))
        if split == "labelled":
            return np.flatnonzero(self.split != SPLIT_UNLABELLED)
        if split not in SPLIT_NAMES:
            raise KeyError(f"unknown split {split!r}: use train, val, unlabelled, labelled or all")
        return np.flatnonzero(self.split == SPLIT_NAMES[split])

    @property
    def kind(self) -> np.ndarray:
        """Per galaxy ``"full"``, ``"partial"`` or ``"unlabelled"`` (see :func:`galaxy_kind`)."""
        return galaxy_kind(self.mask)

    def image(self, i: int) -> np.ndarray:
        """One cached image as (S, S, 3) uint8, ready for display."""
        return np.asarray(self.images[i]).transpose(1, 2, 0)

    @property
    def columns(self) -> "pd.DataFrame | None":
        """The catalogue's own columns (RA and Dec in degrees, redshift ...), one row per cached galaxy in row
        order, or None when the data had no catalogue table. Read once, on first use."""
        if "_columns" not in self.__dict__:
            f = self.path / CATALOGUE_FILE
            import pandas as pd

            self.__dict__["_columns"] = pd.read_parquet(f) if f.is_file() else None
        return self.__dict__["_columns"]

    @property
    def sky(self) -> ColumnNames:
        """The catalogue's id, image file, RA and Dec columns (None where it has none, and for data without one)."""
        return ColumnNames(**self.meta.get("catalogue", {}).get("names", {}))

    @property
    def units(self) -> dict[str, str]:
        """The unit of each catalogue column that has one."""
        return dict(self.meta.get("catalogue", {}).get("units", {}))

    def positions(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Every cached galaxy's RA and Dec in degrees (ICRS; NaN where unknown), or None without coordinates."""
        names, columns = self.sky, self.columns
        if columns is None or names.ra is None:
            return None
        return (columns[names.ra].to_numpy(dtype=np.float64), columns[names.dec].to_numpy(dtype=np.float64))

    def with_catalogue(self, frame: "pd.DataFrame") -> "pd.DataFrame":
        """``frame`` (a table with a ``GalaxyID`` column, such as ``similar``'s) with the catalogue's own columns of
        those galaxies inserted after it (``tables.insert_columns``); ``frame`` as it is without a catalogue."""
        columns = self.columns
        if columns is None:
            return frame
        import pandas as pd

        row = pd.Series(np.arange(len(self)), index=self.ids)
        return insert_columns(frame, columns.iloc[row.loc[frame["GalaxyID"].astype(str)].to_numpy()])

    def row_of(self, galaxy_id: str) -> int:
        hits = np.flatnonzero(self.ids == str(galaxy_id))
        if not len(hits):
            raise KeyError(f"GalaxyID {galaxy_id} is not in the cache {self.path}")
        return int(hits[0])


def default_cache_dir(root: str | os.PathLike, fov: float = DEFAULT_FOV, size: int = DEFAULT_SIZE) -> Path:
    """Where a data folder's cache goes unless one is named: ``<cache root>/<folder name>-<8 hex digits of its
    resolved path>/fov0.604-80px`` (``settings.cache_root``: ``$GALAXY_CACHE_DIR``, else ``~/.cache/galaxy_core``),
    so nothing is written into the data folder and two folders of one name get two caches. For a catalogue table,
    ``<...its folder...>/<table name>-fov0.604-80px``, so that two tables in one folder get two caches."""
    root = Path(root).resolve()
    name = f"fov{fov:.3f}-{size}px"
    if root.is_file():
        root, name = root.parent, f"{root.name}-{name}"
    return cache_root() / f"{root.name}-{hashlib.sha1(str(root).encode()).hexdigest()[:8]}" / name


def folder_caches(root: str | os.PathLike) -> list[GalaxyCache]:
    """The complete caches prepared from the data folder ``root`` in the cache root, at any field and size (the
    folders beside :func:`default_cache_dir`'s), for rebuilding them when the folder is remade."""
    found = []
    for meta in sorted(default_cache_dir(root).parent.glob("*/meta.json")):
        try:
            found.append(open_cache(meta.parent))
        except (FileNotFoundError, ValueError, OSError):  # unfinished or from another version: nothing to keep
            pass
    return found


def open_cache(path: str | os.PathLike) -> GalaxyCache:
    """Open a prepared cache read-only. Raises FileNotFoundError for a missing or incomplete cache (a cache is
    complete only once its ``meta.json`` exists, which ``prepare`` writes last)."""
    path = Path(path)
    meta_path = path / "meta.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{path} is not a prepared cache (no meta.json); run `python -m galaxy_core prepare`")
    meta = read_json(meta_path)
    if meta.get("version") != CACHE_VERSION:
        raise FileNotFoundError(f"{path} was made by another version of galaxy_core ({meta.get('version')}); "
                                f"prepare it again")
    n, s = int(meta["n"]), int(meta["size"])
    images = np.memmap(path / "images.u8", dtype=np.uint8, mode="r", shape=(n, 3, s, s)) if n else \
        np.zeros((0, 3, s, s), np.uint8)
    ids = np.load(path / "ids.npy", allow_pickle=False)
    labels = np.load(path / "labels.npy", allow_pickle=False)
    mask = np.load(path / "mask.npy", allow_pickle=False)
    split = np.load(path / "split.npy", allow_pickle=False)
    if not (len(ids) == len(labels) == len(mask) == len(split) == n):
        raise FileNotFoundError(f"{path}: cache arrays disagree in length; prepare it again")
    return GalaxyCache(path, meta, images, ids, labels, mask, split)


