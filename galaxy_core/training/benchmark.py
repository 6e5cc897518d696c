"""The benchmark table: every model trained with its recipe on the same cache and split, side by side.

Each model in ``BENCHMARK_MODELS`` trains with its recipe for the device (``config.config_for``; the epochs are
those of ``config.RECIPES``, scaled), is scored on the run's validation galaxies with one view and with 8
(``evaluation.evaluate``), and becomes one row of the table (``python -m galaxy_core benchmark``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from galaxy_core.atomic import read_json
from galaxy_core.data.cache import GalaxyCache
from galaxy_core.data.prepare import resolve_cache
from galaxy_core.models.config import RECIPES, config_for
from galaxy_core.predict.evaluation import evaluate
from galaxy_core.training import loop

BENCHMARK_MODELS = ("mean", "seed-cnn", "resnet18", "galaxynet")
DISTILLED = "galaxynet-distilled"
"""The benchmark's name for ``galaxynet`` trained again with the benchmark's ``galaxynet`` run as its teacher."""


def benchmark(cache: GalaxyCache | str | os.PathLike, out: str | os.PathLike, models: tuple[str, ...] =
              BENCHMARK_MODELS, *, epochs_scale: float = 1.0, max_train: int | None = None, device: str = "auto",
              source_fov: float | None = None, callback=None, unlabelled: str | os.PathLike | None = None,
              compile: bool = False) -> pd.DataFrame:
    """Train each model with its recipe (``config.config_for``) on the same cache and split, and compare them.

    Returns one row per model: validation RMSE without and with 8-view test-time averaging, parameters, training
    seconds, training images/s and the device. ``epochs_scale`` multiplies every recipe's epochs (at least 1) and
    ``max_train`` caps the training galaxies: both only for quick looks, since they change the results. Runs are
    written to ``out/<model>``. With ``unlabelled`` (a cache or folder of unlabelled galaxies) and ``galaxynet``
    among the models, a last row, ``galaxynet-distilled``, trains ``galaxynet`` again with the first ``galaxynet``
    run as its teacher (its targets for the unknown answers of partially labelled galaxies and for the unlabelled
    ones); its training seconds include the teacher's. ``compile`` runs every network under ``torch.compile``.
    """
    if not isinstance(cache, GalaxyCache):
        cache = resolve_cache(cache, source_fov=source_fov)
    jobs = [(name, name, {}) for name in models]
    if unlabelled is not None and "galaxynet" in models:
        jobs.append((DISTILLED, "galaxynet", {"teacher": [str(Path(out) / "galaxynet")],
                                              "unlabelled": str(unlabelled)}))
    rows = []
    for label, name, more in jobs:
        epochs = max(1, round(RECIPES.get(name, {}).get("epochs", 30) * epochs_scale))
        cfg = config_for(name, data=str(cache.path), out=str(out), name=label, epochs=epochs,
                         max_train=max_train, device=device, tta=1, compile=compile and name != "mean",
                         **more)
        run = loop.train(cfg, callback)
        summary = read_json(run / "summary.json")
        tta = evaluate(run, cache, tta=8, device=device).rmse() if name != "mean" else summary["val_rmse"]
        seconds = summary["train_seconds"] + (rows[models.index("galaxynet")]["train_seconds"] if more else 0.0)
        rows.append({"model": label, "val_rmse": summary["val_rmse"], "val_rmse_tta8": tta,
                     "parameters": summary["parameters"], "epochs": epochs, "train_seconds": seconds,
                     "images_per_s": summary["images_per_s"], "device": summary["device"]})
    return pd.DataFrame(rows)
