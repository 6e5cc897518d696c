"""Predicting the 37 answers: for rows of a prepared cache (kept in the cache's prediction store, ``store``), for
image files and for a folder of them, written in the Kaggle submission format (GalaxyID + Class1.1 ... Class11.6).
Which model to use and how to load it is ``modelchoice``'s job.

Images are decoded exactly as ``prepare`` decodes them for the cache the model was trained on (same field of view,
same size, same Lanczos resampling), then cropped and resized on the device as in training, so predictions on
424 px originals and on pre-cropped packs agree with what the model saw.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import (catalog, data, distributed, fitsimages, hardware, images, inference, modelchoice, models, settings,
               tables, tree)
from . import store as prediction_store
from .files import Progress, atomic_write_text
from .sky import ColumnNames


def predict_cache(model: models.GalaxyModel, cache: data.GalaxyCache, rows: np.ndarray | None = None, tta: int = 1,
                  batch_size: int = 256, progress: Progress | None = None, store: bool = True) -> np.ndarray:
    """Predictions (N, 37) for rows of a prepared cache (all rows when None).

    With ``store``, the result is also kept in the cache folder (``store.stored_path``, keyed by
    ``store.store_key``) and read back the next time the same model meets the same rows, in this process or a later
    one: on a CPU the first evaluation of 6,000 galaxies takes seconds, the second a few milliseconds. A cache
    folder that cannot be written to is simply not used for this."""
    fov, size = float(model.config["fov"]), int(model.config["input_size"])
    if fov > cache.fov + 1e-6:
        raise ValueError(f"the model looks at {fov:.3f} of the frame but the cache {cache.path} holds only "
                         f"{cache.fov:.3f}")
    rows = np.arange(len(cache)) if rows is None else np.asarray(rows, np.int64)
    stored = prediction_store.stored_path(cache, prediction_store.store_key(model, cache, rows, tta)) if store else None
    if stored is not None:
        pred = prediction_store.read(stored, (len(rows), tree.N_ANSWERS))
        if pred is not None:
            return pred
    pred = inference.infer(model, cache.images, fov / cache.fov, size, batch_size=batch_size, tta=tta,
                           device=hardware.device_of(model), progress=progress, indices=rows)
    if stored is not None:
        prediction_store.write(stored, pred)
    return pred


def predict_answer(model: models.GalaxyModel, cache: data.GalaxyCache, column: str, rows: np.ndarray | None = None,
                   tta: int = 1, progress: Progress | None = None) -> np.ndarray:
    """One answer (a Kaggle column such as ``Class8.6``, or its descriptive name) for rows of a prepared cache
    (all rows when None), as float64 in [0, 1]: :func:`predict_cache`, stored and reused alike. ``progress(done,
    total)`` is called after each batch of galaxies predicted (not at all when the stored result is read back)."""
    y = predict_cache(model, cache, rows, tta=tta, progress=progress)
    return np.asarray(y[:, tree.column_index(column)], dtype=np.float64)


def predict_paths(model: models.GalaxyModel, paths: list[str | os.PathLike], source_fov: float = 1.0, tta: int = 1,
                  batch_size: int = 256, workers: int | None = None, progress: Progress | None = None,
                  fits: fitsimages.FitsSettings | None = None,
                  ids: list[str] | None = None) -> tuple[pd.DataFrame, list[dict]]:
    """Predict the 37 answers for image files. ``source_fov`` is the fraction of the 424 px Kaggle frame the images
    show (1.0 for originals); FITS cutouts whose headers give their own field are cropped by it instead, with the
    ``frame_arcsec`` and composite of ``fits`` (``images.load_image``). Returns (a frame of GalaxyID + 37 columns,
    the skipped files with their reasons); ids are ``ids`` (one per path, e.g. a catalogue's), else the file names
    without extension (and, for the r file of a FITS triple, without the band suffix)."""
    fov, size = modelchoice.input_geometry(model)
    if fov > source_fov + 1e-6:
        raise catalog.DataError(f"the model needs {fov:.3f} of the 424 px frame but these images show only "
                                f"{source_fov:.3f}")
    crop = float(model.config["fov"]) / fov
    paths = [Path(p) for p in paths]
    names = [fitsimages.galaxy_id(p) for p in paths] if ids is None else [str(i) for i in ids]
    device = hardware.device_of(model)
    net = inference.fold_batchnorm(model)  # once here, not once per batch in inference.infer
    found, preds, skipped, batch = [], [], [], []

    def flush() -> None:
        if batch:
            x = torch.from_numpy(np.stack([a for _, a in batch]))
            preds.append(inference.infer(net, x, crop, int(model.config["input_size"]), batch_size, tta, device))
            found.extend(names[i] for i, _ in batch)
            batch.clear()

    for i, res in images.decode_images(paths, fov / source_fov, size, workers, progress, source_fov=source_fov,
                                       fits=fits):
        if isinstance(res, str):
            skipped.append({"GalaxyID": names[i], "path": str(paths[i]), "reason": res})
            continue
        batch.append((i, res))
        if len(batch) == batch_size:
            flush()
    flush()
    y = np.concatenate(preds) if preds else np.zeros((0, tree.N_ANSWERS), np.float32)
    frame = pd.DataFrame(y, columns=list(tree.COLUMNS))
    frame.insert(0, "GalaxyID", found)
    return frame, skipped


def image_paths(folder: str | os.PathLike) -> list[Path]:
    """The images to predict in ``folder``: those directly in it, else those of its Kaggle-layout subfolders."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist")
    found = catalog.list_images(folder)
    if not found:
        for sub in (settings.LABELLED_DIR, settings.UNLABELLED_DIR):
            found.update(catalog.list_images(folder / sub))
    if not found:
        raise catalog.DataError(f"no .jpg, .jpeg or .png images, nor FITS files (.fits, .fit, .fts, .fits.gz), in "
                                f"{folder}")
    return [Path(found[i]) for i in catalog.sort_ids(list(found))]


@dataclass
class FolderPrediction:
    """What :func:`predict_folder` found: the answers, the files it skipped and the field of view it used."""

    frame: pd.DataFrame
    """GalaxyID + the 37 answer columns, one row per predicted image, in id order."""
    skipped: list[dict]
    """The unreadable files: ``GalaxyID``, ``path`` and ``reason`` each."""
    source_fov: float
    """The fraction of the 424 px frame the images were taken to show (``images.resolve_field``)."""
    fov_origin: str
    """Where that field came from, in words for a user (``images.source_fov_origin``)."""
    paths: list[Path]
    """The images listed in the folder, predicted or skipped."""
    columns: pd.DataFrame | None = None
    """The catalogue's own columns, one row per row of ``frame``; None without a catalogue."""
    units: dict | None = None
    """The unit of each catalogue column that has one."""
    sky: ColumnNames | None = None
    """The catalogue's id, image file, RA and Dec columns."""
    ids: list[str] | None = None
    """The id of each of ``paths`` where they are not the file names (a catalogue's)."""

    def table(self) -> pd.DataFrame:
        """``GalaxyID``, the catalogue's own columns (where there is a catalogue) and the 37 answers: the table an
        astronomer keeps (:func:`write`)."""
        if self.columns is None:
            return self.frame
        return tables.insert_columns(self.frame, self.columns)

    def digest(self) -> str:
        """A hash of the answers and the galaxies they are for: the same for the same prediction (a cache key)."""
        h = hashlib.sha1(pd.util.hash_pandas_object(self.frame, index=False).to_numpy().tobytes())
        if self.columns is not None:
            h.update(pd.util.hash_pandas_object(self.columns, index=False).to_numpy().tobytes())
        return h.hexdigest()

    def to_bytes(self, fmt: str, meta: dict | None = None) -> bytes:
        """The file :meth:`write` writes for a table format (``tables.FORMATS``' values), for a download."""
        if self.columns is None and fmt == "csv":
            return self.csv().encode("utf-8")
        return tables.table_bytes(self._rounded(), fmt, units=self.units, meta=meta, sky=self._sky())

    def sky_table(self, meta: dict | None = None) -> tables.SkyTable:
        """:meth:`table` with its units and ``meta``, as ``samp.send_table`` takes it."""
        return tables.SkyTable(self._rounded(), dict(self.units or {}), dict(meta or {}))

    def _rounded(self) -> pd.DataFrame:
        frame = self.table()
        answers = list(tree.COLUMNS)
        frame[answers] = frame[answers].round(6)  # the Kaggle precision; more digits would only be noise
        return frame

    def _sky(self) -> tuple[str, str] | None:
        return (self.sky.ra, self.sky.dec) if self.sky is not None and self.sky.ra else None

    def write(self, out: str | os.PathLike, meta: dict | None = None) -> Path:
        """Write the answers by ``out``'s extension (``tables``): a ``.csv`` without a catalogue is the Kaggle
        submission format (:meth:`csv`); otherwise the catalogue's columns come along with their units, and FITS,
        VOTable, Parquet and ECSV carry ``meta`` (the provenance) too. Atomic, as every output."""
        if self.columns is None and tables.table_format(out) == "csv":
            atomic_write_text(out, self.csv())
            return Path(out)
        return tables.write_table(self._rounded(), out, units=self.units, meta=meta, sky=self._sky())

    def path_of(self, galaxy_id: str) -> Path:
        """The image file of one galaxy (for a FITS triple, its r file); KeyError for an id not listed."""
        ids = self.ids if self.ids is not None else [fitsimages.galaxy_id(p) for p in self.paths]
        for i, p in zip(ids, self.paths):
            if i == str(galaxy_id):
                return p
        raise KeyError(galaxy_id)

    def answers(self, galaxy_id: str) -> np.ndarray:
        """The 37 answers (float64, in ``tree.COLUMNS`` order) of one predicted galaxy; KeyError for another id."""
        rows = np.flatnonzero(self.frame["GalaxyID"].to_numpy() == str(galaxy_id))
        if not len(rows):
            raise KeyError(galaxy_id)
        return self.frame[list(tree.COLUMNS)].to_numpy(dtype=np.float64)[rows[0]]

    def csv(self) -> str:
        """The answers in the Kaggle submission format (:func:`to_csv`)."""
        return to_csv(self.frame["GalaxyID"].to_numpy(), self.frame[list(tree.COLUMNS)].to_numpy())


def folder_listing(folder: str | os.PathLike) -> tuple[tuple[str, int], ...]:
    """The images :func:`image_paths` lists, each as (path, modification time in ns): a key that changes when an
    image is added, removed or rewritten, whose paths can be handed to :func:`predict_folder` (``paths``) so that
    it does not list the folder again."""
    if tables.is_table(folder):  # a catalogue: the table itself (its rows name the images)
        return ((str(folder), Path(folder).stat().st_mtime_ns),)
    return tuple((str(p), p.stat().st_mtime_ns) for p in image_paths(folder))


def predict_folder(folder: str | os.PathLike, model: str | os.PathLike | models.GalaxyModel | None = None,
                   out: str | os.PathLike | None = None, source_fov: float | None = None, tta: int = 1,
                   batch_size: int = 256, device: str = "auto", workers: int | None = None,
                   progress: Progress | None = None, frame_arcsec: float | None = None,
                   paths: list[str | os.PathLike] | None = None, names: ColumnNames | None = None,
                   meta: dict | None = None) -> FolderPrediction:
    """Predict every image of a folder, or of a catalogue table, and, with ``out``, write the answers.

    ``folder`` may be a catalogue table (``sky``; ``names`` says which of its columns are the id, image file, RA and
    Dec): the answers then carry its ids and its own columns (:meth:`FolderPrediction.table`), and ``out`` is
    written in the format its extension names (:meth:`FolderPrediction.write`, with ``meta`` as its provenance).
    Without a catalogue, a ``.csv`` ``out`` is the Kaggle submission format.

    The CSV is written to a temporary file beside ``out`` and renamed over it (``files.atomic_write_text``): a killed
    prediction leaves the previous file under that name, or none, never part of one, and a full disk raises
    ``files.DiskFull`` with the old file intact. Unreadable images are skipped and returned with their reasons.

    ``model``: a loaded model, a run or checkpoint folder, or None for the shipped checkpoint. ``source_fov``: the
    fraction of the 424 px frame the images show; by default from the folder's ``galaxy_core.json``, else the images
    must be 424 px originals. FITS cutouts may carry their own field instead (``fitsimages``): ``frame_arcsec`` is
    the GZ2 frame's width in arcsec for those without a ``PETROR90`` card (default: the folder's
    ``galaxy_core.json``). ``paths``: the folder's images as :func:`image_paths` lists them, when the caller has
    listed them already (listed here when None).
    """
    # A catalogue names the galaxies and brings their columns; a plain or Kaggle-layout folder is listed as it is.
    with_table = tables.is_table(folder) or settings.folder_catalogue(folder) is not None
    cat = catalog.read_catalog(folder, source_fov, frame_arcsec, names) if with_table else None
    if cat is not None:
        paths, ids = [Path(p) for p in cat.paths], list(cat.ids)
    else:
        paths, ids = (image_paths(folder) if paths is None else [Path(p) for p in paths]), None
    if not isinstance(model, torch.nn.Module):
        model = modelchoice.load_model(model, distributed.device_for(hardware.pick_device(device)))
    fov, fits = (cat.source_fov, cat.fits) if cat is not None else \
        images.resolve_field(folder, paths, source_fov, frame_arcsec)
    world = distributed.start(hardware.device_of(model))
    if world.size > 1 and workers is None:  # the machine's cores, shared by its processes
        workers = max(1, (os.cpu_count() or 1) // world.local_size)
    # Each process predicts its contiguous part of the sorted files; the parts, gathered in rank order, are in id
    # order. When any process fails, every one raises and no CSV is written.
    parts = distributed.all_ok(lambda: predict_paths(
        model, distributed.shard(paths, world), fov, tta, batch_size, workers, progress if world.main else None,
        fits, None if ids is None else distributed.shard(ids, world)))
    frame = pd.concat([f for f, _ in parts], ignore_index=True) if len(parts) > 1 else parts[0][0]
    origin = images.source_fov_origin(cat.root if cat is not None else folder, source_fov, paths)
    result = FolderPrediction(frame, [s for _, part in parts for s in part], fov, origin, paths, ids=ids)
    if cat is not None and cat.columns is not None:
        row = pd.Series(np.arange(len(cat.ids)), index=cat.ids)
        result.columns = cat.columns.iloc[row.loc[frame["GalaxyID"]].to_numpy()].reset_index(drop=True)
        result.units, result.sky = cat.units, cat.sky
    if out is not None and world.main:
        result.write(out, meta)
    distributed.barrier()  # no process returns before the CSV is in place
    return result


def to_csv(ids: np.ndarray, y: np.ndarray) -> str:
    """The Kaggle submission format: a header ``GalaxyID,Class1.1,...,Class11.6`` and one row per galaxy, 6
    decimals."""
    frame = pd.DataFrame(np.asarray(y, np.float64), columns=list(tree.COLUMNS))
    frame.insert(0, "GalaxyID", np.asarray(ids).astype(str))
    buf = io.StringIO()
    frame.to_csv(buf, index=False, float_format="%.6f", lineterminator="\n")
    return buf.getvalue()
