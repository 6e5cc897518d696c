"""Packaging: a run's best model as a checkpoint folder that ships with the project (``checkpoints/default``).

A checkpoint is ``model.safetensors`` (float16 weights by default) and ``config.json``, which records where the
model came from: the run and its summary, its training settings and cache, the machine and the date; and
``galaxies.json``, the ids it trained and validated on, so that evaluation can keep to the galaxies it never saw.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from . import data, metrics, models, prediction, runs, views
from .config import TrainConfig
from .evaluation import GALAXIES_FILE
from .files import atomic_write_json, building_dir, read_json

CHECKPOINT_MAX_BYTES = 25 * 10**6
"""The largest checkpoint the project ships (25 MB): a ResNet-18-sized net fits with float16 weights."""


def export_checkpoint(run: str | os.PathLike, out: str | os.PathLike = prediction.CHECKPOINTS / "default",
                      half: bool = True, tta: int = 8, device: str = "auto") -> dict:
    """Write a run's best model as a checkpoint folder (``checkpoints/default`` is the one prediction and the
    dashboard use when no run is chosen), with float16 weights when ``half`` (see ``models.model_state``).

    The run's model is loaded once. The checkpoint is written beside ``out`` and renamed into place
    (``files.building_dir``) only after it has been read back from disk and scored on the run's validation galaxies
    beside the run's model, so a failed export (a full disk: ``files.DiskFull`` naming the folder) never replaces a
    working checkpoint. Returns the validation RMSE of the run's model and of the checkpoint (with ``tta`` views),
    their largest difference on any answer, and the size of the weights in bytes. Raises ValueError, writing
    nothing, when the weights would exceed ``CHECKPOINT_MAX_BYTES``.
    """
    run, out = Path(run), Path(out)
    dev = views.pick_device(device)
    model = prediction.load_model(run, dev)
    summary = read_json(run / "summary.json") if (run / "summary.json").is_file() else {}
    status = runs.read_status(run)
    if "wall_seconds" not in summary and status.get("state") == "finished" and "started" in status:
        # A run made before summaries kept wall time: its status file spans it, if it was never resumed.
        summary = {**summary, "wall_seconds": status["updated"] - status["started"]}
    config = read_json(run / "config.json")
    cfg = TrainConfig.from_dict(config["train"])
    cache = data.resolve_cache(config["cache"]["path"], source_fov=cfg.source_fov)
    train_rows, val_rows = data.split_rows(cache, cfg)
    # Whether it learnt from the synthetic demo travels with the checkpoint (runs made before models recorded it).
    extra = {**model.extra, "data": {**model.extra.get("data", {}), "synthetic": cache.synthetic},
             "exported_from": run.name, "exported": time.strftime("%Y-%m-%d"),
             "weights": "float16" if half else "float32", "train_summary": summary,
             "train_config": config["train"], "train_cache": config["cache"],
             "precision": config.get("precision"),
             # Runs made before configs recorded their machine were exported where they trained.
             "machine": config.get("machine") or runs.machine_description(config.get("device", "cpu"))}
    with building_dir(out) as tmp:
        models.save_model(model, tmp, extra, half=half)
        atomic_write_json(tmp / GALAXIES_FILE, {"train": cache.ids[train_rows].tolist(),
                                                "val": cache.ids[val_rows].tolist()})
        size = (tmp / models.WEIGHTS_FILE).stat().st_size
        if size > CHECKPOINT_MAX_BYTES:
            raise ValueError(f"{run}'s weights take {size / 1e6:.1f} MB, more than the "
                             f"{CHECKPOINT_MAX_BYTES / 1e6:.0f} MB a shipped checkpoint may; export with half "
                             f"precision or train a narrower model")
        before = prediction.predict_cache(model, cache, val_rows, tta=tta)
        after = prediction.predict_cache(prediction.load_model(tmp, dev), cache, val_rows, tta=tta)
    y, m = cache.labels[val_rows], cache.mask[val_rows]
    return {"checkpoint": str(out), "run": str(run), "bytes": size, "weights": extra["weights"], "tta": tta,
            "n": len(val_rows), "val_rmse_run": metrics.rmse(before, y, m),
            "val_rmse_checkpoint": metrics.rmse(after, y, m),
            "max_abs_difference": float(np.abs(before - after).max()) if len(val_rows) else 0.0}
