"""Stage 4, evaluation: RMSE overall, per answer and per question, true-vs-predicted arrays, top-k galleries, and
several runs side by side.

RMSE is the Kaggle Galaxy Challenge metric: the square root of the mean squared difference over all 37 answers of
all galaxies (Dieleman, Willett & Dambre 2015). Unknown answers (partially labelled galaxies) are left out.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import data, metrics, prediction, tree, views
from .config import TrainConfig
from .files import atomic_write_text, read_json


@dataclass
class Evaluation:
    """True and predicted answers of a set of galaxies: ``y_true``/``y_pred``/``mask`` are (N, 37); ``rows`` are the
    galaxies' rows in the cache they came from."""

    name: str
    ids: np.ndarray
    rows: np.ndarray
    y_true: np.ndarray
    y_pred: np.ndarray
    mask: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    def rmse(self) -> float:
        return metrics.rmse(self.y_pred, self.y_true, self.mask)

    def per_answer(self) -> pd.DataFrame:
        """RMSE of each of the 37 answers, with its descriptive name, question, mean true and predicted value (NaN
        for an answer no galaxy here knows)."""
        n = self.mask.sum(0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_true = (self.y_true * self.mask).sum(0) / n
        return pd.DataFrame({"column": tree.COLUMNS, "name": [tree.NAMES[c] for c in tree.COLUMNS],
                             "question": [tree.question_of(c).key for c in tree.COLUMNS],
                             "rmse": metrics.masked_rmse(self.y_pred, self.y_true, self.mask, axis=0),
                             "mean_true": mean_true, "mean_pred": self.y_pred.mean(0), "n": n})

    def per_question(self) -> pd.DataFrame:
        """RMSE over the answers of each question, and how many galaxies answer it."""
        r = metrics.per_question_rmse(self.y_pred, self.y_true, self.mask)
        return pd.DataFrame([{"question": q.key, "text": q.text, "rmse": float(r[i]),
                              "n": int(self.mask[:, s].any(1).sum())}
                             for i, (q, s) in enumerate(zip(tree.QUESTIONS, tree.QUESTION_SLICES))])

    def per_galaxy(self) -> np.ndarray:
        """RMSE of each galaxy over its known answers (NaN for a galaxy with none)."""
        return metrics.masked_rmse(self.y_pred, self.y_true, self.mask, axis=1)

    def top_k(self, column: str, k: int = 5) -> dict[str, pd.DataFrame]:
        """The ``k`` galaxies with the highest true and the highest predicted value of one answer (a Kaggle column
        or a descriptive name): ``{"actual": ..., "predicted": ...}``, each with GalaxyID, row, true and predicted."""
        j = tree.column_index(column)
        true = np.where(self.mask[:, j], self.y_true[:, j], -np.inf)

        def table(order: np.ndarray) -> pd.DataFrame:
            order = order[:k]
            return pd.DataFrame({"GalaxyID": self.ids[order], "row": self.rows[order],
                                 "true": self.y_true[order, j], "predicted": self.y_pred[order, j]})

        return {"actual": table(np.argsort(-true, kind="stable")),
                "predicted": table(np.argsort(-self.y_pred[:, j], kind="stable"))}

    def worst(self, k: int = 10) -> pd.DataFrame:
        """The ``k`` galaxies predicted worst (highest per-galaxy RMSE)."""
        g = self.per_galaxy()
        order = np.argsort(-np.nan_to_num(g, nan=-1), kind="stable")[:k]
        return pd.DataFrame({"GalaxyID": self.ids[order], "row": self.rows[order], "rmse": g[order]})

    def summary(self) -> dict:
        return {"name": self.name, "rmse": self.rmse(), "n": len(self)}

    def save_predictions(self, path: str | os.PathLike) -> None:
        """Write the predictions as a Kaggle submission CSV (GalaxyID + the 37 columns)."""
        atomic_write_text(path, prediction.to_csv(self.ids, self.y_pred))


GALAXIES_FILE = "galaxies.json"
"""In an exported checkpoint: the ids of the galaxies its run trained on and validated on, so that it can be
evaluated on the galaxies it never learnt from in any data set (the shipped model's pack is a subset of Kaggle's
61,578 training galaxies, so a user's full Kaggle folder holds its training galaxies too)."""


def _run_config(run: Path) -> TrainConfig:
    return TrainConfig.from_dict(read_json(run / "config.json")["train"])


def is_run(folder: str | os.PathLike) -> bool:
    """True for a training run folder (a config.json with its training settings), False for a checkpoint."""
    path = Path(folder) / "config.json"
    return path.is_file() and "train" in read_json(path)


def checkpoint_galaxies(folder: str | os.PathLike) -> dict[str, set[str]] | None:
    """``{"train": ids, "val": ids}`` of an exported checkpoint (see ``GALAXIES_FILE``), None when not recorded."""
    path = Path(folder) / GALAXIES_FILE
    if not path.is_file():
        return None
    d = read_json(path)
    return {k: {str(i) for i in d.get(k, [])} for k in ("train", "val")}


def evaluate_checkpoint(folder: str | os.PathLike | None, cache: data.GalaxyCache | str | os.PathLike | None = None,
                        split: str = "val", tta: int = 1, batch_size: int = 256,
                        device: str = "auto", limit: int | None = None) -> Evaluation:
    """Evaluate a checkpoint folder (None: the shipped ``checkpoints/default``) on the labelled galaxies of a cache.

    ``split``: ``val`` means the galaxies the model never learnt from (its own validation galaxies and any the
    checkpoint's ``galaxies.json`` does not list as training ones; all labelled galaxies when it lists none),
    ``train`` those it learnt from, ``labelled`` all. ``cache`` defaults to the cache the model was trained on, when
    that still exists on this machine."""
    folder = prediction.model_folder(folder)
    model = prediction.load_model(folder, device=views.pick_device(device))
    if cache is None:
        recorded = (model.extra.get("train_cache") or {}).get("path")
        if not recorded or not Path(recorded).exists():
            raise ValueError(f"say which data to evaluate {folder} on: the cache it was trained on "
                             f"({recorded or 'not recorded'}) is not on this machine")
        cache = recorded
    if not isinstance(cache, data.GalaxyCache):
        cache = data.resolve_cache(cache)
    labelled = cache.indices("labelled")
    learnt = (checkpoint_galaxies(folder) or {}).get("train", set())
    seen = np.isin(cache.ids[labelled], list(learnt)) if learnt else np.zeros(len(labelled), bool)
    rows = {"val": labelled[~seen], "train": labelled[seen], "labelled": labelled}.get(split)
    if rows is None:
        raise KeyError(f"unknown split {split!r}: use val, train or labelled")
    rows = data.subsample(rows, limit)
    pred = prediction.predict_cache(model, cache, rows, tta=tta, batch_size=batch_size)
    return Evaluation(folder.name, cache.ids[rows], rows, cache.labels[rows], pred, cache.mask[rows])


def evaluate(run: str | os.PathLike | None, cache: data.GalaxyCache | str | os.PathLike | None = None,
             split: str = "val", tta: int = 1, batch_size: int = 256, device: str = "auto",
             weights: str | os.PathLike | None = None, limit: int | None = None) -> Evaluation:
    """Evaluate a run's best model on a split of a cache (default: the cache and validation split the run used).

    ``split`` is ``val`` (the run's own validation galaxies), ``train``, or ``labelled`` (all labelled galaxies of
    the cache). ``tta`` dihedral views are averaged (1-8). ``weights``: a model folder to evaluate in place of the
    run's best (for example the run exported as a checkpoint) on the run's galaxies. ``limit``: evaluate a seeded
    random subset of at most that many galaxies (the same every time; the shipped checkpoint's "validation" on the
    whole Kaggle set is 50,000 galaxies, a minute of a 2-core CPU; 5,000 give the RMSE with a standard error of
    0.7 %, from the spread of the shipped model's per-galaxy errors on its validation split). A
    checkpoint folder, or None for the shipped one, goes to :func:`evaluate_checkpoint`.
    """
    if run is None or not is_run(run):
        return evaluate_checkpoint(run, cache, split, tta, batch_size, device, limit)
    run = Path(run)
    cfg = _run_config(run)
    if cache is None:
        cache = read_json(run / "config.json")["cache"]["path"]
    if not isinstance(cache, data.GalaxyCache):
        cache = data.resolve_cache(cache, source_fov=cfg.source_fov)
    train_rows, val_rows = data.split_rows(cache, cfg)
    rows = {"val": val_rows, "train": train_rows, "labelled": cache.indices("labelled")}.get(split)
    if rows is None:
        raise KeyError(f"unknown split {split!r}: use val, train or labelled")
    rows = data.subsample(rows, limit)
    model = prediction.load_model(weights if weights is not None else run, device=views.pick_device(device))
    pred = prediction.predict_cache(model, cache, rows, tta=tta, batch_size=batch_size)
    return Evaluation(run.name, cache.ids[rows], rows, cache.labels[rows], pred, cache.mask[rows])


def compare_runs(runs: list[str | os.PathLike], cache: data.GalaxyCache | str | os.PathLike | None = None,
                 tta: int = 1, device: str = "auto") -> pd.DataFrame:
    """Several runs side by side: each scored on its own validation galaxies (its saved split) of one cache, the
    first run's unless ``cache`` is given, with RMSE and, from each run's summary, its parameters and training
    time. Runs trained on the same cache and split are thus scored on the same galaxies."""
    if not runs:
        return pd.DataFrame(columns=["run", "model", "rmse", "n"])
    if cache is None:
        first = Path(runs[0])
        cache = data.resolve_cache(read_json(first / "config.json")["cache"]["path"])
    elif not isinstance(cache, data.GalaxyCache):
        cache = data.resolve_cache(cache)
    out = []
    for r in runs:
        r = Path(r)
        ev = evaluate(r, cache, tta=tta, device=device)
        s = read_json(r / "summary.json") if (r / "summary.json").is_file() else {}
        out.append({"run": r.name, "model": _run_config(r).model, "rmse": ev.rmse(), "n": len(ev),
                    "parameters": s.get("parameters"), "train_seconds": s.get("train_seconds")})
    return pd.DataFrame(out).sort_values("rmse", ignore_index=True)


