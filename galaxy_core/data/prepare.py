"""Preparing the cache: every image of a data folder decoded once, cropped and resized into the memory-mapped uint8
array that :mod:`galaxy_core.data.cache` reads, with its labels, mask, split and catalogue columns; written
atomically, reused while its inputs are unchanged, rebuilt when they change, and built in shards on several
machines when asked.

Nothing here runs during training: the training loop reads only the cache."""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import os
import shutil
import time
from pathlib import Path

import numpy as np

from galaxy_core.atomic import DiskFull, atomic_write_json, building_dir, file_lock, recover
from galaxy_core.data.cache import (
    CACHE_VERSION,
    CATALOGUE_FILE,
    DEFAULT_SIZE,
    SPLIT_TRAIN,
    SPLIT_VAL,
    GalaxyCache,
    default_cache_dir,
    make_split,
    open_cache,
)
from galaxy_core.data.catalog import Catalog, read_catalog
from galaxy_core.data.catalogue_table import ColumnNames
from galaxy_core.data.fitsimages import FitsSettings, galaxy_files
from galaxy_core.data.images import decode_images
from galaxy_core.data.layout import DEFAULT_FOV, folder_is_synthetic
from galaxy_core.errors import DataError
from galaxy_core.progress import Progress, format_bytes, part
from galaxy_core.tree import galaxy_kind


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
    next (``atomic.recover``). Builds of one cache folder take turns through a lock file beside it
    (:func:`lock_path`; POSIX ``flock``, so between processes on one machine and between the dashboard's threads):
    one that waited for another finds the cache that one made and returns it instead of building it again (with
    ``force`` too, when the other finished while it waited). A full disk raises ``atomic.DiskFull`` naming the
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
