"""Packaging: a run's best model as a checkpoint folder (``checkpoints/<run name>``), and, only when asked, as the
one that ships with the project (``checkpoints/default``, :func:`replace_default`).

A checkpoint is ``model.safetensors`` (float16 weights by default) and ``config.json``, which records where the
model came from: the run and its summary, its training settings and cache, the machine and the date; and
``galaxies.json``, the ids it trained and validated on, so that evaluation can keep to the galaxies it never saw.
A checkpoint is made to be shipped, so its files name no folder of the machine it was made on (:func:`portable`):
where the run and its cache are on that machine goes into ``local.json`` (``modelchoice.LOCAL_FILE``), which git
ignores.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np

from galaxy_core import hardware
from galaxy_core.atomic import atomic_write_json, building_dir, read_json
from galaxy_core.data import layout
from galaxy_core.data.cache import split_rows
from galaxy_core.data.prepare import resolve_cache
from galaxy_core.models import registry, runs
from galaxy_core.models.config import TrainConfig
from galaxy_core.predict import evaluation, metrics, modelchoice, prediction
from galaxy_core.predict.evaluation import MIN_SCORED_GALAXIES
from galaxy_core.predict.modelchoice import GALAXIES_FILE, LOCAL_FILE

CHECKPOINT_MAX_BYTES = 25 * 10**6
"""The largest checkpoint the project ships (25 MB): a ResNet-18-sized net fits with float16 weights."""


def portable(value, root: str | os.PathLike | None = None):
    """``value`` (a checkpoint's record: dicts, lists, strings, numbers) with every absolute path made fit to ship:
    relative to the project folder ``root`` (default ``layout.PROJECT_ROOT``) when inside it (``runs``,
    ``data/demo``), None when outside it (a cache or data folder of the machine it was trained on means nothing on
    another). Relative paths are kept: commands run from the project folder, so they are relative to it already."""
    root = Path(layout.PROJECT_ROOT if root is None else root).resolve()
    if isinstance(value, dict):
        return {k: portable(v, root) for k, v in value.items()}
    if isinstance(value, list):
        return [portable(v, root) for v in value]
    if isinstance(value, str) and os.path.isabs(value):
        path = Path(os.path.normpath(value))
        return path.relative_to(root).as_posix() if path.is_relative_to(root) else None
    return value


def trained_on(extra: dict) -> str:
    """The data a checkpoint (its config's ``extra``) learnt from, as a user knows it: the data folder's or
    table's name and its split, ``'gz2-kaggle-96, its seeded 90/10 split'`` (with the seed when it is not the
    default 0); ``'unrecorded data'`` without a record of its source."""
    cache, train = extra.get("train_cache") or {}, extra.get("train_config") or {}
    source = cache.get("source_name") or cache.get("source")
    name = Path(source).name if source else "unrecorded data"
    fraction = train.get("val_fraction") if train.get("val_fraction") is not None else cache.get("val_fraction")
    seed = train.get("split_seed") if train.get("split_seed") is not None else cache.get("seed")
    if fraction is None:
        return name
    val = round(100 * fraction)
    return f"{name}, its seeded {100 - val}/{val} split" + (f" (seed {seed})" if seed else "")


def shipped_checkpoints() -> list[dict]:
    """The checkpoints in ``checkpoints/``, the default first, in the shape of ``runs.finished_runs``' entries
    (``kind`` "checkpoint", ``path``, ``name``, ``model``, ``summary``, ``train_config``) plus ``galaxies``: whether
    the checkpoint lists the galaxies it learnt from (``modelchoice.checkpoint_galaxies``), and ``data``: what it
    learnt from, in words (:func:`trained_on`)."""
    default = modelchoice.default_checkpoint()
    found = sorted((p.parent for p in modelchoice.CHECKPOINTS.glob(f"*/{layout.WEIGHTS_FILE}")),
                   key=lambda p: (p != default, p.name))
    out = []
    for folder in found:
        config = read_json(folder / registry.CONFIG_FILE)
        extra = config.get("extra") or {}
        out.append({"kind": "checkpoint", "path": folder, "name": folder.name, "model": config.get("name"),
                    "summary": extra.get("train_summary") or {}, "train_config": extra.get("train_config") or {},
                    "galaxies": modelchoice.checkpoint_galaxies(folder) is not None, "data": trained_on(extra)})
    return out


def export_checkpoint(run: str | os.PathLike, out: str | os.PathLike | None = None, half: bool = True, tta: int = 8,
                      device: str = "auto") -> dict:
    """Write a run's best model as a checkpoint folder, ``checkpoints/<run name>`` unless ``out``, with float16
    weights when ``half`` (see ``registry.model_state``). The shipped ``checkpoints/default`` is replaced only through
    :func:`replace_default`.

    The run's model is loaded once. The checkpoint is written beside ``out`` and renamed into place
    (``atomic.building_dir``) only after it has been read back from disk and scored on the run's validation galaxies
    beside the run's model, so a failed export (a full disk: ``atomic.DiskFull`` naming the folder) never replaces a
    working checkpoint. Returns the validation RMSE of the run's model and of the checkpoint (with ``tta`` views),
    their largest difference on any answer, and the size of the weights in bytes. Raises ValueError, writing
    nothing, when the weights would exceed ``CHECKPOINT_MAX_BYTES``.

    ``config.json`` records the run's settings and cache with :func:`portable` paths (the training cache with its
    data's name, its split's fraction and seed); ``local.json`` the run's and the cache's absolute paths here.
    """
    run = Path(run)
    out = modelchoice.CHECKPOINTS / run.name if out is None else Path(out)
    dev = hardware.pick_device(device)
    model = modelchoice.load_model(run, dev)
    summary = read_json(run / "summary.json") if (run / "summary.json").is_file() else {}
    status = runs.read_status(run)
    if "wall_seconds" not in summary and status.get("state") == "finished" and "started" in status:
        # A run made before summaries kept wall time: its status file spans it, if it was never resumed.
        summary = {**summary, "wall_seconds": status["updated"] - status["started"]}
    config = read_json(run / "config.json")
    cfg = TrainConfig.from_dict(config["train"])
    cache = resolve_cache(config["cache"]["path"], source_fov=cfg.source_fov)
    train_rows, val_rows = split_rows(cache, cfg)
    # Whether it learnt from the synthetic demo travels with the checkpoint (runs made before models recorded it).
    extra = {**model.extra, "data": {**model.extra.get("data", {}), "synthetic": cache.synthetic},
             "exported_from": run.name, "exported": time.strftime("%Y-%m-%d"),
             "weights": "float16" if half else "float32", "train_summary": summary,
             "train_config": config["train"],
             # The data's name stays when its path, outside the project folder, does not (portable).
             "train_cache": {**config["cache"], "source_name": Path(config["cache"]["source"]).name,
                             "val_fraction": cache.meta["val_fraction"], "seed": cache.meta["seed"]},
             "precision": config.get("precision"),
             # Runs made before configs recorded their machine were exported where they trained.
             "machine": config.get("machine") or runs.machine_description(config.get("device", "cpu"))}
    with building_dir(out) as tmp:
        registry.save_model(model, tmp, portable(extra), half=half)
        atomic_write_json(tmp / LOCAL_FILE, {"run": str(run.resolve()), "cache": str(cache.path.resolve())})
        atomic_write_json(tmp / GALAXIES_FILE, {"train": cache.ids[train_rows].tolist(),
                                                "val": cache.ids[val_rows].tolist()})
        size = (tmp / layout.WEIGHTS_FILE).stat().st_size
        if size > CHECKPOINT_MAX_BYTES:
            raise ValueError(f"{run}'s weights take {size / 1e6:.1f} MB, more than the "
                             f"{CHECKPOINT_MAX_BYTES / 1e6:.0f} MB a shipped checkpoint may; export with half "
                             f"precision or train a narrower model")
        before = prediction.predict_cache(model, cache, val_rows, tta=tta)
        after = prediction.predict_cache(modelchoice.load_model(tmp, dev), cache, val_rows, tta=tta)
    y, m = cache.labels[val_rows], cache.mask[val_rows]
    return {"checkpoint": str(out), "run": str(run), "bytes": size, "weights": extra["weights"], "tta": tta,
            "n": len(val_rows), "val_rmse_run": metrics.rmse(before, y, m),
            "val_rmse_checkpoint": metrics.rmse(after, y, m),
            "max_abs_difference": float(np.abs(before - after).max()) if len(val_rows) else 0.0}


def replace_default(checkpoint: str | os.PathLike, force: bool = False, tta: int = 8, device: str = "auto",
                    default: str | os.PathLike | None = None) -> dict:
    """Make an exported checkpoint the shipped default (``checkpoints/default``, which prediction, evaluation and
    the dashboard use when no model is named), keeping the old default beside it as ``default-replaced-<time>``.

    Refused (ValueError, nothing changed) unless ``force`` when the checkpoint learnt from the synthetic demo, or
    when it is worse than the current default: both are scored with ``tta`` views on the labelled galaxies of the
    checkpoint's training cache that neither learnt from; fewer than ``evaluation.MIN_SCORED_GALAXIES`` of them is
    refused too, as no comparison. Returns both RMSEs, the number of galaxies compared and where the old default
    went (None when there was none)."""
    checkpoint = Path(checkpoint)
    default = modelchoice.CHECKPOINTS / "default" if default is None else Path(default)
    if checkpoint.resolve() == default.resolve():
        raise ValueError(f"{checkpoint} is already the default")
    new = modelchoice.load_model(checkpoint)
    result = {"checkpoint": str(checkpoint), "default": str(default), "kept": None, "n": 0, "rmse_new": None,
              "rmse_old": None, "forced": force}
    refusal = None
    if modelchoice.trained_on_synthetic(new):
        refusal = f"{checkpoint} learnt from the synthetic demo: it would give wrong answers on real galaxies"
    elif (default / layout.WEIGHTS_FILE).is_file():
        try:
            cache = evaluation.model_cache(checkpoint)
        except ValueError:
            refusal = f"the cache {checkpoint} trained on is not on this machine, so it cannot be compared with " \
                      f"the current default"
        else:
            rows = cache.indices("labelled")
            rows = rows[~evaluation.trained_mask(checkpoint, cache, rows) & ~evaluation.trained_mask(default, cache,
                                                                                                        rows)]
            result["n"] = len(rows)
            if len(rows) < MIN_SCORED_GALAXIES:
                refusal = (f"only {len(rows)} labelled galaxies that neither model learnt from (at least "
                           f"{MIN_SCORED_GALAXIES} are needed to compare them)")
            else:
                dev = hardware.pick_device(device)
                y, m = cache.labels[rows], cache.mask[rows]
                result["rmse_new"], result["rmse_old"] = (
                    metrics.rmse(prediction.predict_cache(modelchoice.load_model(f, dev), cache, rows, tta=tta), y, m)
                    for f in (checkpoint, default))
                if result["rmse_new"] > result["rmse_old"]:
                    refusal = (f"{checkpoint} is worse than the current default on the {len(rows):,} galaxies "
                               f"neither learnt from: RMSE {result['rmse_new']:.4f} against {result['rmse_old']:.4f}")
    if refusal and not force:
        raise ValueError(f"not made the default: {refusal} (--force replaces it all the same, keeping the old one)")
    result["refusal_overridden"] = refusal
    with building_dir(default) as tmp:  # the new default appears whole or not at all
        shutil.copytree(checkpoint, tmp, dirs_exist_ok=True)
        if default.exists():
            kept = default.with_name(f"default-replaced-{time.strftime('%Y%m%d-%H%M%S')}")
            os.replace(default, kept)
            result["kept"] = str(kept)
    return result
