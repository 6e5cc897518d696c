"""Stage 5, prediction: the 37 answers for new images, from a run folder or the checkpoint shipped in
``checkpoints/``, written in the Kaggle submission format (GalaxyID + Class1.1 ... Class11.6).

Images are decoded exactly as ``prepare`` decodes them for the cache the model was trained on (same field of view,
same size, same Lanczos resampling), then cropped and resized on the device as in training, so predictions on
424 px originals and on pre-cropped packs agree with what the model saw.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import catalog, data, distributed, fitsimages, hardware, images, inference, models, runs, settings, tree
from .files import Progress, atomic_write_npy, atomic_write_text

CHECKPOINTS = settings.PROJECT_ROOT / "checkpoints"


def default_checkpoint() -> Path | None:
    """The model shipped with the project: ``checkpoints/default`` if present, else the first checkpoint folder
    (one holding ``model.safetensors``) in ``checkpoints/``; None when there is none."""
    if (CHECKPOINTS / "default" / models.WEIGHTS_FILE).is_file():
        return CHECKPOINTS / "default"
    found = sorted(p.parent for p in CHECKPOINTS.glob(f"*/{models.WEIGHTS_FILE}"))
    return found[0] if found else None


def default_model(runs_root: str | os.PathLike = "runs") -> tuple[Path, str]:
    """The model used when none is named, and why: the shipped checkpoint (:func:`default_checkpoint`), else the
    newest finished run under ``runs_root``. The command line and the dashboard both choose this way. Raises
    FileNotFoundError, naming the ``--model`` option, when there is neither."""
    found = default_checkpoint()
    if found is not None:
        return found, f"the shipped checkpoint {found.name}"
    run = runs.newest_finished_run(runs_root)
    if run is not None:
        return run, f"the newest finished run {run.name} (no checkpoint is shipped in {CHECKPOINTS})"
    raise FileNotFoundError(f"no model given (--model RUN_OR_CHECKPOINT), no checkpoint shipped in {CHECKPOINTS} and "
                            f"no finished run in {Path(runs_root)}; train one with `python -m galaxy_core train "
                            f"DATA` and pass its run folder with --model")


def model_folder(path: str | os.PathLike | None, runs_root: str | os.PathLike = "runs") -> Path:
    """Where the weights of ``path`` are: a checkpoint folder as is, a run folder's ``best/``, or (None) those of
    :func:`default_model`. Raises ValueError for a pickled checkpoint (``models.refuse_pickle``, which never opens
    it) and FileNotFoundError for a folder without a model."""
    if path is None:
        path = default_model(runs_root)[0]
    path = Path(path)
    models.refuse_pickle(path)
    if (path / models.WEIGHTS_FILE).is_file():
        return path
    if (path / "best" / models.WEIGHTS_FILE).is_file():
        return path / "best"
    raise FileNotFoundError(f"{path} holds no model: expected {models.WEIGHTS_FILE} in it or in its best/ folder")


def load_model(path: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> models.GalaxyModel:
    """Load a model from a run folder, a checkpoint folder, or (None) the shipped default checkpoint."""
    return models.load_model_folder(model_folder(path), device)


def input_geometry(model: models.GalaxyModel) -> tuple[float, int]:
    """(fov, size) of the images to decode for ``model``: those of the cache it was trained on when its config
    records them, else its own field and input size."""
    d = model.extra.get("data")
    if d:
        return float(d["fov"]), int(d["size"])
    return float(model.config["fov"]), int(model.config["input_size"])


def trained_on_synthetic(model: models.GalaxyModel) -> bool | None:
    """Whether ``model`` learnt from the synthetic demo (recorded in its config since training records it; for an
    older model, read from its training data folder if that still exists); None when unknown."""
    recorded = (model.extra.get("data") or {}).get("synthetic")
    if recorded is not None:
        return bool(recorded)
    source = (model.extra.get("train_cache") or {}).get("source")
    return settings.folder_is_synthetic(source) if source and Path(source).is_dir() else None


def domain_warning(model: models.GalaxyModel, images_synthetic: bool) -> str | None:
    """A sentence for the user when a model trained on the synthetic demo meets real galaxies or the reverse, else
    None. Neither pairing fails, but its answers mean little: the demo's galaxies and labels are made up."""
    trained = trained_on_synthetic(model)
    if trained is None or trained == images_synthetic:
        return None
    if trained:
        return ("this model was trained on the synthetic demo, not on real galaxies: its answers for real images are "
                "meaningless. Use the shipped checkpoint, or a model trained on real data.")
    return ("these are the synthetic demo's made-up galaxies, and the model was trained on real ones: expect its "
            "answers to disagree with the demo's invented labels.")


STORE_DIR = "predictions"
"""Where :func:`predict_cache` keeps what it computed, inside the cache folder (rebuilt caches start empty)."""
STORE_KEEP = 64
"""How many stored prediction sets a cache folder keeps (the oldest go first)."""


def store_key(model: models.GalaxyModel, cache: data.GalaxyCache, rows: np.ndarray, tta: int) -> str:
    """A digest of everything a prediction depends on: the weights and config, the cache's fingerprint, the rows,
    the views and the device type and precision (bf16 and float32 results differ in the last digits)."""
    h = hashlib.sha1()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().float().cpu().contiguous().numpy().tobytes())
    device = hardware.device_of(model)
    h.update(json.dumps([model.config, cache.fingerprint, tta, device.type, hardware.fast_math(device)],
                        sort_keys=True, default=str).encode())
    h.update(np.ascontiguousarray(rows, np.int64).tobytes())
    return h.hexdigest()


def predict_cache(model: models.GalaxyModel, cache: data.GalaxyCache, rows: np.ndarray | None = None, tta: int = 1,
                  batch_size: int = 256, progress: Progress | None = None, store: bool = True) -> np.ndarray:
    """Predictions (N, 37) for rows of a prepared cache (all rows when None).

    With ``store``, the result is also kept in the cache folder (``predictions/<digest>.npy``, see
    :func:`store_key`) and read back the next time the same model meets the same rows, in this process or a later
    one: on a CPU the first evaluation of 6,000 galaxies takes seconds, the second a few milliseconds. A cache
    folder that cannot be written to is simply not used for this."""
    fov, size = float(model.config["fov"]), int(model.config["input_size"])
    if fov > cache.fov + 1e-6:
        raise ValueError(f"the model looks at {fov:.3f} of the frame but the cache {cache.path} holds only "
                         f"{cache.fov:.3f}")
    rows = np.arange(len(cache)) if rows is None else np.asarray(rows, np.int64)
    stored = cache.path / STORE_DIR / f"{store_key(model, cache, rows, tta)}.npy" if store else None
    if stored is not None and stored.is_file():
        try:
            pred = np.load(stored)
            if pred.shape == (len(rows), tree.N_ANSWERS):
                return pred
        except (OSError, ValueError):
            pass  # damaged: computed again and rewritten
    pred = inference.infer(model, cache.images, fov / cache.fov, size, batch_size=batch_size, tta=tta,
                       device=hardware.device_of(model), progress=progress, indices=rows)
    if stored is not None:
        try:
            atomic_write_npy(stored, pred)
            for old in sorted(stored.parent.glob("*.npy"), key=lambda f: f.stat().st_mtime)[:-STORE_KEEP]:
                old.unlink(missing_ok=True)
        except OSError:
            pass  # a read-only cache: predictions are recomputed next time
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
                  fits: fitsimages.FitsSettings | None = None) -> tuple[pd.DataFrame, list[dict]]:
    """Predict the 37 answers for image files. ``source_fov`` is the fraction of the 424 px Kaggle frame the images
    show (1.0 for originals); FITS cutouts whose headers give their own field are cropped by it instead, with the
    ``frame_arcsec`` and composite of ``fits`` (``images.load_image``). Returns (a frame of GalaxyID + 37 columns,
    the skipped files with their reasons); ids are the file names without extension (and, for the r file of a
    FITS triple, without the band suffix)."""
    fov, size = input_geometry(model)
    if fov > source_fov + 1e-6:
        raise catalog.DataError(f"the model needs {fov:.3f} of the 424 px frame but these images show only "
                                f"{source_fov:.3f}")
    crop = float(model.config["fov"]) / fov
    paths = [Path(p) for p in paths]
    device = hardware.device_of(model)
    net = inference.fold_batchnorm(model)  # once here, not once per batch in inference.infer
    ids, preds, skipped, batch = [], [], [], []

    def flush() -> None:
        if batch:
            x = torch.from_numpy(np.stack([a for _, a in batch]))
            preds.append(inference.infer(net, x, crop, int(model.config["input_size"]), batch_size, tta, device))
            ids.extend(fitsimages.galaxy_id(paths[i]) for i, _ in batch)
            batch.clear()

    for i, res in images.decode_images(paths, fov / source_fov, size, workers, progress, source_fov=source_fov,
                                       fits=fits):
        if isinstance(res, str):
            skipped.append({"GalaxyID": fitsimages.galaxy_id(paths[i]), "path": str(paths[i]), "reason": res})
            continue
        batch.append((i, res))
        if len(batch) == batch_size:
            flush()
    flush()
    y = np.concatenate(preds) if preds else np.zeros((0, tree.N_ANSWERS), np.float32)
    frame = pd.DataFrame(y, columns=list(tree.COLUMNS))
    frame.insert(0, "GalaxyID", ids)
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


def predict_folder(folder: str | os.PathLike, model: str | os.PathLike | models.GalaxyModel | None = None,
                   out: str | os.PathLike | None = None, source_fov: float | None = None, tta: int = 1,
                   batch_size: int = 256, device: str = "auto", workers: int | None = None,
                   progress: Progress | None = None, frame_arcsec: float | None = None
                   ) -> tuple[pd.DataFrame, list[dict]]:
    """Predict every image of a folder and, with ``out``, write the Kaggle-format CSV.

    The CSV is written to a temporary file beside ``out`` and renamed over it (``files.atomic_write_text``): a killed
    prediction leaves the previous file under that name, or none, never part of one, and a full disk raises
    ``files.DiskFull`` with the old file intact. Unreadable images are skipped and returned with their reasons.

    ``model``: a loaded model, a run or checkpoint folder, or None for the shipped checkpoint. ``source_fov``: the
    fraction of the 424 px frame the images show; by default from the folder's ``galaxy_core.json``, else the images
    must be 424 px originals. FITS cutouts may carry their own field instead (``fitsimages``): ``frame_arcsec`` is
    the GZ2 frame's width in arcsec for those without a ``PETROR90`` card (default: the folder's
    ``galaxy_core.json``).
    """
    paths = image_paths(folder)
    if not isinstance(model, torch.nn.Module):
        model = load_model(model, distributed.device_for(hardware.pick_device(device)))
    fov, fits = images.resolve_field(folder, paths, source_fov, frame_arcsec)
    world = distributed.start(hardware.device_of(model))
    if world.size > 1 and workers is None:  # the machine's cores, shared by its processes
        workers = max(1, (os.cpu_count() or 1) // world.local_size)
    # Each process predicts its contiguous part of the sorted files; the parts, gathered in rank order, are in id
    # order. When any process fails, every one raises and no CSV is written.
    parts = distributed.all_ok(lambda: predict_paths(model, distributed.shard(paths, world), fov, tta, batch_size,
                                                     workers, progress if world.main else None, fits))
    frame = pd.concat([f for f, _ in parts], ignore_index=True) if len(parts) > 1 else parts[0][0]
    skipped = [s for _, part in parts for s in part]
    if out is not None and world.main:
        atomic_write_text(out, to_csv(frame["GalaxyID"].to_numpy(), frame[list(tree.COLUMNS)].to_numpy()))
    distributed.barrier()  # no process returns before the CSV is in place
    return frame, skipped


def to_csv(ids: np.ndarray, y: np.ndarray) -> str:
    """The Kaggle submission format: a header ``GalaxyID,Class1.1,...,Class11.6`` and one row per galaxy, 6
    decimals."""
    frame = pd.DataFrame(np.asarray(y, np.float64), columns=list(tree.COLUMNS))
    frame.insert(0, "GalaxyID", np.asarray(ids).astype(str))
    buf = io.StringIO()
    frame.to_csv(buf, index=False, float_format="%.6f", lineterminator="\n")
    return buf.getvalue()
