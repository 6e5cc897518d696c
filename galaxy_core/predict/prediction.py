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

from galaxy_core import distributed, hardware, tables, tree
from galaxy_core.atomic import atomic_write_text
from galaxy_core.data import catalog, fitsimages, images, layout
from galaxy_core.data.cache import GalaxyCache
from galaxy_core.data.catalogue_table import ColumnNames
from galaxy_core.errors import DataError
from galaxy_core.models import inference, registry
from galaxy_core.predict import modelchoice
from galaxy_core.predict import prediction_store as prediction_store
from galaxy_core.predict import uncertainty as spreads
from galaxy_core.progress import Progress

Models = registry.GalaxyModel | list[registry.GalaxyModel]
"""One model, or several: an ensemble, whose answer is its members' mean."""


def predict_cache(model: Models, cache: GalaxyCache, rows: np.ndarray | None = None, tta: int = 1,
                  batch_size: int = 256, progress: Progress | None = None, store: bool = True,
                  uncertainty: bool = False) -> np.ndarray | spreads.Spread:
    """Predictions (N, 37) for rows of a prepared cache (all rows when None).

    With ``store``, the result is also kept in the cache folder (``prediction_store.stored_path``, keyed by
    ``prediction_store.store_key``) and read back the next time the same model meets the same rows, in this process or a
    later one: on a CPU the first evaluation of 6,000 galaxies takes seconds, the second a few milliseconds. A cache
    folder that cannot be written to is simply not used for this.

    ``model`` may be a list of models, an ensemble (members of one input geometry, ``uncertainty.check_members``):
    the answers are then the mean of its members' ``tta``-view predictions (each stored as one model's would be).
    With ``uncertainty``, an ``uncertainty.Spread`` is returned instead of the array: its ``value`` is the
    prediction and its ``spread`` the standard deviation across an ensemble's members, or, for one model, across
    its ``tta`` views (2-8; DataError for 1). The views' individual predictions are stored under a key of their own
    (``prediction_store.store_key(..., each_view=True)``), their mean under the plain prediction's key."""
    members = list(model) if isinstance(model, (list, tuple)) else [model]
    if uncertainty:
        spreads.label_for(len(members), tta)  # a clear error before any galaxy is predicted
    if len(members) > 1:
        spreads.check_members(members)
        each = [_cache_one(m, cache, rows, tta, batch_size, progress, store) for m in members]
        ensemble = spreads.from_members(each, tta)
        return ensemble if uncertainty else ensemble.value
    if uncertainty:
        return spreads.from_views(_cache_one(members[0], cache, rows, tta, batch_size, progress, store, True))
    return _cache_one(members[0], cache, rows, tta, batch_size, progress, store)


def _cache_one(model: registry.GalaxyModel, cache: GalaxyCache, rows: np.ndarray | None, tta: int,
               batch_size: int, progress: Progress | None, store: bool, each_view: bool = False) -> np.ndarray:
    """One model's predictions for rows of a cache, stored and reused: the views' mean (N, 37), or with
    ``each_view`` every view's raw output (N, tta, 37), whose mean is then stored as the plain prediction too."""
    fov, size = float(model.config["fov"]), int(model.config["input_size"])
    if fov > cache.fov + 1e-6:
        raise ValueError(f"the model looks at {fov:.3f} of the frame but the cache {cache.path} holds only "
                         f"{cache.fov:.3f}")
    rows = np.arange(len(cache)) if rows is None else np.asarray(rows, np.int64)
    shape = (len(rows), tta, tree.N_ANSWERS) if each_view else (len(rows), tree.N_ANSWERS)
    stored = prediction_store.stored_path(cache, prediction_store.store_key(model, cache, rows, tta, each_view)) \
        if store else None
    if stored is not None:
        pred = prediction_store.read(stored, shape)
        if pred is not None:
            return pred
    pred = inference.infer(model, cache.images, fov / cache.fov, size, batch_size=batch_size, tta=tta,
                           device=hardware.device_of(model), progress=progress, indices=rows, views=each_view)
    if stored is not None:
        prediction_store.write(stored, pred)
        if each_view:  # the mean is the plain prediction, bit for bit (uncertainty.from_views): keep it as that
            mean = prediction_store.stored_path(cache, prediction_store.store_key(model, cache, rows, tta))
            if not mean.is_file():
                prediction_store.write(mean, spreads.from_views(pred).value)
    return pred


def predict_answer(model: registry.GalaxyModel, cache: GalaxyCache, column: str, rows: np.ndarray | None = None,
                   tta: int = 1, progress: Progress | None = None) -> np.ndarray:
    """One answer (a Kaggle column such as ``Class8.6``, or its descriptive name) for rows of a prepared cache
    (all rows when None), as float64 in [0, 1]: :func:`predict_cache`, stored and reused alike. ``progress(done,
    total)`` is called after each batch of galaxies predicted (not at all when the stored result is read back)."""
    y = predict_cache(model, cache, rows, tta=tta, progress=progress)
    return np.asarray(y[:, tree.column_index(column)], dtype=np.float64)


def predict_paths(model: Models, paths: list[str | os.PathLike], source_fov: float = 1.0, tta: int = 1,
                  batch_size: int = 256, workers: int | None = None, progress: Progress | None = None,
                  fits: fitsimages.FitsSettings | None = None, ids: list[str] | None = None,
                  uncertainty: bool = False) -> tuple[pd.DataFrame, list[dict]]:
    """Predict the 37 answers for image files. ``source_fov`` is the fraction of the 424 px Kaggle frame the images
    show (1.0 for originals); FITS cutouts whose headers give their own field are cropped by it instead, with the
    ``frame_arcsec`` and composite of ``fits`` (``images.load_image``). Returns (a frame of GalaxyID + 37 columns,
    the skipped files with their reasons); ids are ``ids`` (one per path, e.g. a catalogue's), else the file names
    without extension (and, for the r file of a FITS triple, without the band suffix).

    ``model`` may be a list, an ensemble: each image is decoded once for all members (which must share their input
    geometry) and the answers are their mean. With ``uncertainty``, each answer's column is followed by its spread
    (``Class8.6_std``; ``uncertainty.answer_frame``): across the members, or across one model's ``tta`` views."""
    members = list(model) if isinstance(model, (list, tuple)) else [model]
    if uncertainty:
        spreads.label_for(len(members), tta)
    fov, size = spreads.check_members(members)
    if fov > source_fov + 1e-6:
        raise DataError(f"the model needs {fov:.3f} of the 424 px frame but these images show only "
                                f"{source_fov:.3f}")
    paths = [Path(p) for p in paths]
    names = [fitsimages.galaxy_id(p) for p in paths] if ids is None else [str(i) for i in ids]
    device = hardware.device_of(members[0])
    nets = [inference.fold_batchnorm(m) for m in members]  # once here, not once per batch in inference.infer
    each_view = uncertainty and len(members) == 1
    found, skipped, batch = [], [], []
    preds: list[list[np.ndarray]] = [[] for _ in members]

    def flush() -> None:
        if batch:
            x = torch.from_numpy(np.stack([a for _, a in batch]))
            for m, net, out in zip(members, nets, preds):
                out.append(inference.infer(net, x, float(m.config["fov"]) / fov, int(m.config["input_size"]),
                                           batch_size, tta, device, views=each_view))
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
    shape = (0, tta, tree.N_ANSWERS) if each_view else (0, tree.N_ANSWERS)
    y = [np.concatenate(p) if p else np.zeros(shape, np.float32) for p in preds]
    if each_view:
        answers = spreads.from_views(y[0])
    elif len(members) > 1:
        answers = spreads.from_members(y, tta)
        answers = answers if uncertainty else answers.value
    else:
        answers = y[0]
    frame = spreads.answer_frame(answers)
    frame.insert(0, "GalaxyID", found)
    return frame, skipped


def image_paths(folder: str | os.PathLike) -> list[Path]:
    """The images to predict in ``folder``: those directly in it, else those of its Kaggle-layout subfolders."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist")
    found = catalog.list_images(folder)
    if not found:
        for sub in (layout.LABELLED_DIR, layout.UNLABELLED_DIR):
            found.update(catalog.list_images(folder / sub))
    if not found:
        raise DataError(f"no .jpg, .jpeg or .png images, nor FITS files (.fits, .fit, .fts, .fits.gz), in "
                                f"{folder}")
    return [Path(found[i]) for i in catalog.sort_ids(list(found))]


@dataclass
class FolderPrediction:
    """What :func:`predict_folder` found: the answers, the files it skipped and the field of view it used."""

    frame: pd.DataFrame
    """GalaxyID + the 37 answer columns (each followed by its ``_std`` spread column when :attr:`spread` is set),
    one row per predicted image, in id order."""
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
    spread: str | None = None
    """What the ``_std`` columns are the spread of (``uncertainty.label_for``: ``views:8``, ``ensemble:3x8``);
    None without them."""

    @property
    def answer_columns(self) -> list[str]:
        """The 37 answer columns of :attr:`frame`, each followed by its spread column when there are spreads."""
        return spreads.columns(self.spread is not None)

    def meta(self, meta: dict | None = None) -> dict:
        """``meta`` (a table's provenance) with the kind of spread added where there are spread columns."""
        return {**(meta or {}), **({"spread": self.spread} if self.spread else {})}

    def table(self) -> pd.DataFrame:
        """``GalaxyID``, the catalogue's own columns (where there is a catalogue) and the 37 answers (each followed
        by its spread when there are spreads): the table an astronomer keeps (:func:`write`)."""
        if self.columns is None:
            return self.frame
        return tables.insert_columns(self.frame, self.columns)  # the answers' spreads come along, if any

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
        return tables.table_bytes(self._rounded(), fmt, units=self.units, meta=self.meta(meta), sky=self._sky())

    def sky_table(self, meta: dict | None = None) -> tables.SkyTable:
        """:meth:`table` with its units and ``meta``, as ``samp.send_table`` takes it."""
        return tables.SkyTable(self._rounded(), dict(self.units or {}), self.meta(meta))

    def _rounded(self) -> pd.DataFrame:
        frame = self.table()
        answers = self.answer_columns
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
        return tables.write_table(self._rounded(), out, units=self.units, meta=self.meta(meta), sky=self._sky())

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

    def spreads(self, galaxy_id: str) -> np.ndarray:
        """The 37 spreads (float64, vote fractions, in ``tree.COLUMNS`` order) of one predicted galaxy; KeyError for
        another id, ValueError when the prediction has no spreads."""
        if self.spread is None:
            raise ValueError("this prediction has no spreads: predict with uncertainty=True")
        rows = np.flatnonzero(self.frame["GalaxyID"].to_numpy() == str(galaxy_id))
        if not len(rows):
            raise KeyError(galaxy_id)
        return self.frame[[spreads.std_column(c) for c in tree.COLUMNS]].to_numpy(dtype=np.float64)[rows[0]]

    def csv(self) -> str:
        """The answers in the Kaggle submission format (:func:`to_csv`); with spreads, each answer's column is
        followed by its ``_std`` column, in the same format."""
        return to_csv(self.frame["GalaxyID"].to_numpy(), self.frame[self.answer_columns].to_numpy(),
                      self.answer_columns)


def folder_listing(folder: str | os.PathLike) -> tuple[tuple[str, int], ...]:
    """The images :func:`image_paths` lists, each as (path, modification time in ns): a key that changes when an
    image is added, removed or rewritten, whose paths can be handed to :func:`predict_folder` (``paths``) so that
    it does not list the folder again."""
    if tables.is_table(folder):  # a catalogue: the table itself (its rows name the images)
        return ((str(folder), Path(folder).stat().st_mtime_ns),)
    return tuple((str(p), p.stat().st_mtime_ns) for p in image_paths(folder))


ModelChoice = str | os.PathLike | registry.GalaxyModel | None
"""A loaded model, a run, checkpoint or ensemble folder, or None for the shipped checkpoint."""


def predict_folder(folder: str | os.PathLike, model: ModelChoice | list[ModelChoice] = None,
                   out: str | os.PathLike | None = None, *, source_fov: float | None = None, tta: int = 1,
                   batch_size: int = 256, device: str = "auto", workers: int | None = None,
                   progress: Progress | None = None, frame_arcsec: float | None = None,
                   paths: list[str | os.PathLike] | None = None, names: ColumnNames | None = None,
                   meta: dict | None = None, uncertainty: bool = False) -> FolderPrediction:
    """Predict every image of a folder, or of a catalogue table, and, with ``out``, write the answers.

    ``folder`` may be a catalogue table (``sky``; ``names`` says which of its columns are the id, image file, RA and
    Dec): the answers then carry its ids and its own columns (:meth:`FolderPrediction.table`), and ``out`` is
    written in the format its extension names (:meth:`FolderPrediction.write`, with ``meta`` as its provenance).
    Without a catalogue, a ``.csv`` ``out`` is the Kaggle submission format.

    The CSV is written to a temporary file beside ``out`` and renamed over it (``atomic.atomic_write_text``): a killed
    prediction leaves the previous file under that name, or none, never part of one, and a full disk raises
    ``atomic.DiskFull`` with the old file intact. Unreadable images are skipped and returned with their reasons.

    ``model``: a loaded model, a run or checkpoint folder, or None for the shipped checkpoint. ``source_fov``: the
    fraction of the 424 px frame the images show; by default from the folder's ``galaxy_core.json``, else the images
    must be 424 px originals. FITS cutouts may carry their own field instead (``fitsimages``): ``frame_arcsec`` is
    the GZ2 frame's width in arcsec for those without a ``PETROR90`` card (default: the folder's
    ``galaxy_core.json``). ``paths``: the folder's images as :func:`image_paths` lists them, when the caller has
    listed them already (listed here when None).

    ``model`` may also be a list of these, or an ensemble folder (``modelchoice.member_folders``): several models
    are an ensemble, whose answers are the members' means. ``uncertainty`` adds a spread column beside each answer
    (``Class8.6_std``: across the members, or across one model's ``tta`` views, which must then be 2-8) and the
    kind of spread to the written table's metadata (``spread``: ``views:8``, ``ensemble:2x8``); without it the
    output is exactly what it was before spreads existed.
    """
    # A catalogue names the galaxies and brings their columns; a plain or Kaggle-layout folder is listed as it is.
    with_table = tables.is_table(folder) or layout.folder_catalogue(folder) is not None
    cat = catalog.read_catalog(folder, source_fov, frame_arcsec, names) if with_table else None
    if cat is not None:
        paths, ids = [Path(p) for p in cat.paths], list(cat.ids)
    else:
        paths, ids = (image_paths(folder) if paths is None else [Path(p) for p in paths]), None
    chosen = model if isinstance(model, (list, tuple)) else [model]
    on = distributed.process_device(device)
    members = [m for c in chosen for m in ([c] if isinstance(c, torch.nn.Module) else modelchoice.load_models([c], on))]
    spreads.check_members(members)
    spread = spreads.label_for(len(members), tta) if uncertainty else None  # before the minutes predicting take
    model = members[0] if len(members) == 1 else members
    fov, fits = (cat.source_fov, cat.fits) if cat is not None else \
        images.resolve_field(folder, paths, source_fov, frame_arcsec)
    world = distributed.start(hardware.device_of(members[0]))
    if world.size > 1 and workers is None:  # the machine's cores, shared by its processes
        workers = max(1, (os.cpu_count() or 1) // world.local_size)
    # Each process predicts its contiguous part of the sorted files; the parts, gathered in rank order, are in id
    # order. When any process fails, every one raises and no CSV is written.
    parts = distributed.all_ok(lambda: predict_paths(
        model, distributed.shard(paths, world), fov, tta, batch_size, workers, progress if world.main else None,
        fits, None if ids is None else distributed.shard(ids, world), uncertainty))
    frame = pd.concat([f for f, _ in parts], ignore_index=True) if len(parts) > 1 else parts[0][0]
    origin = images.source_fov_origin(cat.root if cat is not None else folder, source_fov, paths)
    result = FolderPrediction(frame, [s for _, part in parts for s in part], fov, origin, paths, ids=ids,
                              spread=spread)
    if cat is not None and cat.columns is not None:
        row = pd.Series(np.arange(len(cat.ids)), index=cat.ids)
        result.columns = cat.columns.iloc[row.loc[frame["GalaxyID"]].to_numpy()].reset_index(drop=True)
        result.units, result.sky = cat.units, cat.sky
    if out is not None and world.main:
        result.write(out, meta)
    distributed.barrier()  # no process returns before the CSV is in place
    return result


def to_csv(ids: np.ndarray, y: np.ndarray, columns: list[str] | None = None) -> str:
    """The Kaggle submission format: a header ``GalaxyID,Class1.1,...,Class11.6`` and one row per galaxy, 6
    decimals. ``columns`` names the columns of ``y`` when they are others (the answers with their spreads)."""
    frame = pd.DataFrame(np.asarray(y, np.float64), columns=list(tree.COLUMNS) if columns is None else columns)
    frame.insert(0, "GalaxyID", np.asarray(ids).astype(str))
    buf = io.StringIO()
    frame.to_csv(buf, index=False, float_format="%.6f", lineterminator="\n")
    return buf.getvalue()
