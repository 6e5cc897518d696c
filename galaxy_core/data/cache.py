"""The cache: every image of a data folder decoded once into a memory-mapped uint8 array, with its labels,
mask of known answers and a seeded train/validation split, so that training never decodes a JPEG.

``prepare`` reads the folder (``catalog``), decodes it at one field of view and size, and writes the cache folder
atomically; ``GalaxyCache`` opens it; ``split_rows`` says which rows a run trains and validates on.

The default field is 256/424 (0.604): about 2.5 R90 across, the whole galaxy with sky around it, and all that the
96 px packs hold. The Kaggle winner (Dieleman et al. 2015) used the central 207 px (0.488); the seed paper a 5 %
border crop (0.90). The default size is 80 px (3.2 original pixels per cache pixel): a ResNet-18-sized net at
80 px reached 0.086 RMSE on the 96 px pack where the same family at 69 px did worse (../shared/README.md), and
80 px keeps the full 61,578-image cache at 1.2 GB, small enough to sit on a GPU. Models that want another input size
resample the cache on the device.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from galaxy_core.data.catalog import Catalog, galaxy_kind, read_catalog
from galaxy_core.errors import DataError
from galaxy_core.errors import DiskFull
from galaxy_core.progress import Progress, format_bytes, part
from galaxy_core.atomic import atomic_write_json, building_dir, file_lock, read_json, recover
from galaxy_core.data.fitsimages import FitsSettings, galaxy_files
from galaxy_core.data.images import decode_images
from galaxy_core.data.layout import DEFAULT_FOV, cache_root, folder_is_synthetic
from galaxy_core.data.catalogue_table import ColumnNames
from galaxy_core.tables import insert_columns

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


def fingerprint(cat: Catalog, fov: float, size: int, val_fraction: float, seed: int) -> str:
    """A hash of everything a cache is made from: image names, sizes and modification times (all three files of a
    FITS g, r, i triple), the label files' bytes and the preparation settings (with the folder's FITS settings when
    it has any). A different fingerprint means a stale cache."""
    h = hashlib.sha1(f"v{CACHE_VERSION}|{fov:.6f}|{size}|{cat.source_fov:.6f}|{val_fraction}|{seed}".encode())
    if cat.fits != FitsSettings():  # only then, so that the fingerprints of existing caches stay as they were
        h.update(repr(cat.fits).encode())
    if cat.columns is not None:  # likewise: the catalogue's column roles and values (a table that galaxy_core.json
        h.update(repr(cat.sky).encode())  # names is no label file, so its bytes are not hashed below)
        import pandas as pd

        h.update(pd.util.hash_pandas_object(cat.columns, index=False).to_numpy().tobytes())
        h.update(repr(list(cat.columns.columns)).encode())
    for i, p in zip(cat.ids, cat.paths):
        for f in galaxy_files(p):
            name = os.path.basename(f)
            try:
                st = os.stat(f)
                h.update(f"{i}|{name}|{st.st_size}|{st.st_mtime_ns}\n".encode())
            except OSError as e:  # a dangling link or a symlink loop: skipped by decoding, with its reason
                h.update(f"{i}|{name}|{e.errno}\n".encode())
    for p in cat.label_files:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


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


def lock_path(cache_dir: str | os.PathLike) -> Path:
    """The lock file that :func:`prepare` holds while it checks and builds ``cache_dir``: ``<cache_dir>.lock``
    beside it (left in place: it is empty, and removing it would let two builders lock two different files)."""
    cache_dir = Path(cache_dir)
    return cache_dir.with_name(cache_dir.name + ".lock")


def _fresh_cache(cache_dir: Path, fp: str) -> GalaxyCache | None:
    """The cache in ``cache_dir`` if it is complete and made from inputs with fingerprint ``fp``, else None."""
    try:  # open_cache raises FileNotFoundError for a folder without meta.json, i.e. not (yet) a complete cache
        cache = open_cache(cache_dir)
    except (FileNotFoundError, ValueError, OSError):
        return None  # unreadable or from another version: rebuilt
    return cache if cache.fingerprint == fp else None


def _meta_stamp(cache_dir: Path) -> tuple[int, int] | None:
    try:
        st = (cache_dir / "meta.json").stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


def _reserve(path: Path, nbytes: int) -> None:
    """Create ``path`` with ``nbytes`` allocated on disk, so that a disk too small fails here with ENOSPC rather
    than later as SIGBUS, which is how writing into a sparse memory map on a full disk ends."""
    with open(path, "wb") as f:
        try:
            os.posix_fallocate(f.fileno(), 0, nbytes)
        except AttributeError:  # no posix_fallocate (macOS): a sparse file, as np.memmap would make
            f.truncate(nbytes)
        except OSError as e:
            if e.errno not in (errno.EINVAL, errno.EOPNOTSUPP):
                raise
            f.truncate(nbytes)  # a file system that cannot preallocate


def prepare(root: str | os.PathLike, cache_dir: str | os.PathLike | None = None, fov: float = DEFAULT_FOV,
            size: int = DEFAULT_SIZE, source_fov: float | None = None, val_fraction: float = 0.1, seed: int = 0,
            workers: int | None = None, progress: Progress | None = None, force: bool = False,
            shard: tuple[int, int] | None = None, frame_arcsec: float | None = None,
            names: ColumnNames | None = None) -> GalaxyCache:
    """Decode every image of a data folder once into a memory-mapped uint8 cache, with ids, labels, mask and split.

    ``fov`` is the field to keep as a fraction of the 424 px Kaggle frame and ``size`` the output side in pixels.
    An existing cache whose fingerprint matches is returned as is (unless ``force``); a stale one is rebuilt.
    Unreadable images are skipped and listed in ``meta["skipped"]`` with their id, path and reason.

    The cache is built in a temporary folder beside its destination and renamed into place only when complete, so a
    killed ``prepare`` never leaves a cache that looks complete; what a killed one left behind is removed by the
    next (``files.recover``). Builds of one cache folder take turns through a lock file beside it
    (:func:`lock_path`; POSIX ``flock``, so between processes on one machine and between the dashboard's threads):
    one that waited for another finds the cache that one made and returns it instead of building it again (with
    ``force`` too, when the other finished while it waited). A full disk raises ``files.DiskFull`` naming the
    folder and the space the cache needs, and leaves the previous cache as it was.

    ``shard=(i, k)`` prepares only the ``i``-th of ``k`` contiguous parts of the folder's galaxies (in id order),
    into :func:`shard_dir` beside the cache: ``k`` shards can run at once, on machines that share the folder, and
    :func:`merge_shards` then joins them into the cache one ``prepare`` would have made.

    FITS cutouts are decoded by ``fitsimages``; ``frame_arcsec`` is the GZ2 frame's width in arcsec for those
    without a ``PETROR90`` card (default: the folder's ``galaxy_core.json``, see ``images.folder_fits_settings``).

    ``root`` may also be a plain folder of cutouts or a catalogue table (``catalog.read_catalog``; ``names`` says
    which of its columns are the id, image file, RA and Dec). The catalogue's own columns are kept with the cache
    (:attr:`GalaxyCache.columns`), for every table written from it.
    """
    cat = read_catalog(root, source_fov, frame_arcsec, names)
    if not 0 < fov <= cat.source_fov + 1e-9:
        raise DataError(f"fov {fov:.4f} of the 424 px frame is more than the {cat.source_fov:.4f} that the images "
                        f"in {cat.root} show")
    if size < 8:
        raise DataError(f"size must be at least 8 px, got {size}")
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir(cat.table or cat.root, fov, size)
    fp = fingerprint(cat, fov, size, val_fraction, seed)
    rows = np.arange(len(cat))
    if shard is not None:
        i, k = shard
        if not 0 <= i < k:
            raise DataError(f"shard {i}/{k}: the index must be 0 to {k - 1}")
        cache_dir, rows, fp = shard_dir(cache_dir, i, k), rows[part(len(cat), i, k)], f"{fp}/shard-{i}-of-{k}"
    recover(cache_dir)  # what killed builds left beside it; a cache a killed swap left aside is put back
    cache = None if force else _fresh_cache(cache_dir, fp)
    if cache is not None:
        return cache  # without the lock: a read-only cache (in ../shared) cannot hold a lock file
    if cache_dir.is_dir() and any(cache_dir.iterdir()) and not (cache_dir / "meta.json").is_file():
        raise DataError(f"{cache_dir} exists and is not a galaxy_core cache; refusing to replace it (choose another "
                        f"--out or remove it)")
    seen = _meta_stamp(cache_dir)
    with file_lock(lock_path(cache_dir)) as waited:
        recover(cache_dir)  # again: the builder this one waited for may have been killed
        if not force or (waited and _meta_stamp(cache_dir) != seen):
            cache = _fresh_cache(cache_dir, fp)  # made by the process this one waited for
            if cache is not None:
                return cache
        try:
            _build(cat, cache_dir, fp, fov, size, val_fraction, seed, workers, progress, rows)
        except DiskFull as e:
            need = len(rows) * 3 * size * size
            raise DiskFull(errno.ENOSPC, f"{e.strerror}; the cache needs about {format_bytes(need)}") from e
        return open_cache(cache_dir)  # under the lock: no other build swaps it meanwhile


def _build(cat: Catalog, cache_dir: Path, fp: str, fov: float, size: int, val_fraction: float, seed: int,
           workers: int | None, progress: Progress | None, rows: np.ndarray) -> None:
    """Decode the galaxies ``rows`` of ``cat`` into a new cache folder ``cache_dir`` (see :func:`prepare`), swapped
    in whole."""
    t0 = time.perf_counter()
    # building_dir: a fresh temporary folder per call, so two dashboard sessions never share one.
    with building_dir(cache_dir) as tmp:
        _reserve(tmp / "images.u8", max(len(rows), 1) * 3 * size * size)
        kept, skipped = np.zeros(len(rows), dtype=bool), []
        crop = fov / cat.source_fov
        # Plain sequential writes rather than a memory map: the pages then belong to the file cache, not to this
        # process, whose memory stays flat however many images there are.
        with open(tmp / "images.u8", "r+b") as f:
            for j, res in decode_images([cat.paths[r] for r in rows], crop, size, workers, progress,
                                        source_fov=cat.source_fov, fits=cat.fits):
                if isinstance(res, str):
                    i = rows[j]
                    skipped.append({"GalaxyID": str(cat.ids[i]), "path": str(cat.paths[i]), "reason": res})
                    continue
                f.write(np.ascontiguousarray(res).data)
                kept[j] = True
            # Skipped images leave no gap: rows were written densely, so the file is cut to the rows kept.
            f.truncate(int(kept.sum()) * 3 * size * size)
        keep = rows[kept]
        _write_tables(tmp, cat, fp, fov, size, val_fraction, seed, cat.ids[keep], cat.labels[keep], skipped,
                      time.perf_counter() - t0,
                      columns=None if cat.columns is None else cat.columns.iloc[keep].reset_index(drop=True))


def _write_tables(tmp: Path, cat: Catalog, fp: str, fov: float, size: int, val_fraction: float, seed: int,
                  ids: np.ndarray, y: np.ndarray, skipped: list[dict], seconds: float, columns=None,
                  **extra) -> None:
    """Everything of a cache but its images: ids, labels (NaN as 0), mask of known answers, the split of these
    galaxies, the catalogue's ``columns`` of these galaxies (``catalogue.parquet``) and ``meta.json``, written
    last."""
    if columns is not None:
        columns.to_parquet(tmp / CATALOGUE_FILE, index=False)
        extra["catalogue"] = {"table": str(cat.table or cat.root), "names": dataclasses.asdict(cat.sky),
                              "units": cat.units}
    kind = galaxy_kind(~np.isnan(y))
    split = make_split(ids, kind, val_fraction, seed)
    np.save(tmp / "ids.npy", ids)
    np.save(tmp / "mask.npy", ~np.isnan(y))
    np.save(tmp / "labels.npy", np.nan_to_num(y, nan=0.0).astype(np.float32, copy=False))
    np.save(tmp / "split.npy", split)
    meta = {
        "version": CACHE_VERSION, "source": str(cat.table or cat.root), "source_fov": cat.source_fov, "fov": fov,
        "size": size, "n": len(ids), "n_full": int((kind == "full").sum()),
        "n_partial": int((kind == "partial").sum()), "n_unlabelled": int((kind == "unlabelled").sum()),
        "n_train": int((split == SPLIT_TRAIN).sum()), "n_val": int((split == SPLIT_VAL).sum()),
        "val_fraction": val_fraction, "seed": seed, "fingerprint": fp, "synthetic": folder_is_synthetic(cat.root),
        "skipped": skipped, "problems": cat.problems, "seconds": round(seconds, 2),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **extra,
    }
    atomic_write_json(tmp / "meta.json", meta)


def shard_dir(cache_dir: str | os.PathLike, i: int, k: int) -> Path:
    """Where ``prepare(..., shard=(i, k))`` writes its part: ``<cache>.shard-<i>-of-<k>`` beside the cache."""
    cache_dir = Path(cache_dir)
    return cache_dir.with_name(f"{cache_dir.name}.shard-{i}-of-{k}")


def merge_shards(root: str | os.PathLike, k: int, cache_dir: str | os.PathLike | None = None,
                 fov: float = DEFAULT_FOV, size: int = DEFAULT_SIZE, source_fov: float | None = None,
                 val_fraction: float = 0.1, seed: int = 0, frame_arcsec: float | None = None,
                 names: ColumnNames | None = None) -> GalaxyCache:
    """Join the ``k`` shards that ``prepare(..., shard=(i, k))`` made of a folder into its cache: the same images,
    arrays and split (over all the galaxies) as one ``prepare`` with the same settings makes, byte for byte, and one
    fingerprint. Refuses, naming them, shards that are missing or were made from another state of the folder or
    with other settings. The shards are left in place (remove them once the cache is checked)."""
    if k < 1:
        raise DataError(f"merge needs 1 or more shards, got {k}")
    t0 = time.perf_counter()
    cat = read_catalog(root, source_fov, frame_arcsec, names)  # names: a catalogue table's columns
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir(cat.table or cat.root, fov, size)
    fp = fingerprint(cat, fov, size, val_fraction, seed)
    shards = [_fresh_cache(shard_dir(cache_dir, i, k), f"{fp}/shard-{i}-of-{k}") for i in range(k)]
    bad = [str(shard_dir(cache_dir, i, k)) for i, shard in enumerate(shards) if shard is None]
    if bad:
        raise DataError(f"{len(bad)} of the {k} shards are missing, unfinished or made from another state of "
                        f"{cat.root} or other settings: {', '.join(bad[:4])}; prepare them (again) with --shard")
    with file_lock(lock_path(cache_dir)), building_dir(cache_dir) as tmp:
        with open(tmp / "images.u8", "wb") as out:
            for shard in shards:
                with open(shard.path / "images.u8", "rb") as f:
                    shutil.copyfileobj(f, out, 2**24)
        y = np.concatenate([np.where(sh.mask, sh.labels, np.nan) for sh in shards])
        columns = None
        if cat.columns is not None:
            import pandas as pd

            columns = pd.concat([sh.columns for sh in shards], ignore_index=True)
        _write_tables(tmp, cat, fp, fov, size, val_fraction, seed, np.concatenate([sh.ids for sh in shards]),
                      y.astype(np.float32), [s for sh in shards for s in sh.meta["skipped"]],
                      time.perf_counter() - t0 + sum(sh.meta["seconds"] for sh in shards), columns=columns,
                      shards=k)
    return open_cache(cache_dir)


def resolve_cache(path: str | os.PathLike, source_fov: float | None = None, fov: float = DEFAULT_FOV,
                  size: int = DEFAULT_SIZE, progress: Progress | None = None,
                  names: ColumnNames | None = None) -> GalaxyCache:
    """Open ``path`` as a cache if it is one, else treat it as a data folder, plain folder of cutouts or catalogue
    table and prepare (or reuse) its cache."""
    path = Path(path)
    if (path / "meta.json").is_file():
        return open_cache(path)
    return prepare(path, fov=fov, size=size, source_fov=source_fov, progress=progress, names=names)
