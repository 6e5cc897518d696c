"""Evaluation: RMSE overall, per answer and per question, true-vs-predicted arrays and top-k galleries.

RMSE is the Kaggle Galaxy Challenge metric: the square root of the mean squared difference over all 37 answers of
all galaxies (Dieleman, Willett & Dambre 2015). Unknown answers (partially labelled galaxies) are left out.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from galaxy_core import hardware, tree
from galaxy_core.atomic import atomic_write_text, read_json
from galaxy_core.data import layout
from galaxy_core.data.cache import GalaxyCache, open_cache, split_rows, subsample
from galaxy_core.data.prepare import resolve_cache
from galaxy_core.models.config import TrainConfig
from galaxy_core.predict import metrics, modelchoice, prediction


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
    n_excluded: int = 0
    """Labelled galaxies left out because the model learnt from them."""

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

    def index_of(self, galaxy_id: str) -> int:
        """The position of the galaxy with GalaxyID ``galaxy_id`` in these arrays; IndexError when it is not here."""
        return int(np.flatnonzero(self.ids == galaxy_id)[0])

    @property
    def scorable(self) -> bool:
        """Whether there are enough galaxies for the RMSE to be a result (:data:`MIN_SCORED_GALAXIES`)."""
        return len(self) >= MIN_SCORED_GALAXIES

    def summary(self) -> dict:
        return {"name": self.name, "rmse": self.rmse() if self.scorable else None, "n": len(self),
                "n_excluded": self.n_excluded}

    def save_predictions(self, path: str | os.PathLike) -> None:
        """Write the predictions as a Kaggle submission CSV (GalaxyID + the 37 columns)."""
        atomic_write_text(path, prediction.to_csv(self.ids, self.y_pred))


def _run_config(run: Path) -> TrainConfig:
    return TrainConfig.from_dict(read_json(run / "config.json")["train"])


MIN_SCORED_GALAXIES = 50
"""Fewest galaxies an RMSE is shown for: below it the pages and the command line say "too few to score". Bootstrapped
from the shipped model's per-galaxy errors on its 745 validation galaxies of gz2-kaggle-96 (RMSE 0.0843), the
RMSE's relative standard error is 9.1 % over 30 galaxies (all that the 424 px sample holds unseen by that model),
7.1 % over 50, 5.1 % over 100 and 0.7 % over 5,000. 50 keeps a run on the built-in demo (60 validation galaxies)
scorable while refusing the smallest sets."""


SPLITS = {"val": "validation (never trained on)", "labelled": "all labelled", "train": "trained on (not a test)"}
"""The galaxies :func:`evaluate` can score (its ``split``), as the dashboard names them; the validation split is the
fair test."""

EVALUATION_SAMPLE = 5000
"""Galaxies the Evaluation page scores by default (a fixed random subset when a split holds more): the overall RMSE
over 5,000 has a relative standard error of about 0.7 % (see :data:`MIN_SCORED_GALAXIES`)."""


def model_choices(runs: list[dict], checkpoints: list[dict], data_path: str) -> dict[str, dict]:
    """The models to evaluate, by the name a chooser shows, in the order it lists them: the runs trained on the data
    at ``data_path`` first, then the shipped checkpoints, then the runs on other data. ``runs`` and ``checkpoints``
    are dicts with ``name`` (runs also ``data``, the cache they trained on, compared as strings). Without a run on
    this data, the first is the default checkpoint when it leads ``checkpoints``."""
    ours = [r for r in runs if r["data"] == str(data_path)]
    options = {f"run {r['name']}": r for r in ours}
    options.update({f"checkpoint {c['name']} (shipped)": c for c in checkpoints})
    options.update({f"run {r['name']}": r for r in runs if r not in ours})
    return options


def trained_ids(folder: str | os.PathLike | None) -> set[str] | None:
    """The GalaxyIDs a model learnt from: a checkpoint's ``galaxies.json`` training ids, or a run's training rows of
    the cache it trained on (when that cache is on this machine); None when they are not known. ``folder`` None is
    the default model (``modelchoice.default_model``)."""
    run = modelchoice.model_dir(folder)
    if modelchoice.is_run(run):
        try:
            trained = model_cache(run)
        except ValueError:  # its cache is not on this machine
            return None
        return {str(i) for i in trained.ids[split_rows(trained, _run_config(run))[0]]}
    return (modelchoice.checkpoint_galaxies(run) or {}).get("train")


def trained_mask(folder: str | os.PathLike | None, cache: GalaxyCache, rows: np.ndarray) -> np.ndarray:
    """For each of ``rows`` of ``cache``: whether the model at ``folder`` learnt from that galaxy (matched by
    GalaxyID, so it holds in any cache of the same galaxies); all False when that is not known."""
    learnt = trained_ids(folder)
    if not learnt:
        return np.zeros(len(rows), bool)
    return np.isin(cache.ids[rows], list(learnt))


def model_cache(folder: Path) -> GalaxyCache:
    """The cache a run or checkpoint was trained on, when it is still on this machine; ValueError, naming only the
    model's folder, when it is not."""
    config = read_json(folder / "config.json")
    if modelchoice.is_run(folder):
        places = [config["cache"].get("path")]
    else:  # a checkpoint: where it was exported, else its portable record (relative to the project folder)
        local = read_json(folder / modelchoice.LOCAL_FILE) if (folder / modelchoice.LOCAL_FILE).is_file() else {}
        recorded = (config.get("extra", {}).get("train_cache") or {}).get("path")
        places = [local.get("cache"), recorded and str(layout.PROJECT_ROOT / recorded)]  # absolute stays itself
    for place in places:
        if place and (Path(place) / "meta.json").is_file():
            return open_cache(place)
    # Only the folder's name: a recorded path is the training machine's, which means nothing here.
    raise ValueError(f"say which labelled galaxies to evaluate {folder.name} on (--data FOLDER on the command "
                     f"line): the cache it was trained on is not on this machine")


def split_of(folder: str | os.PathLike | None, cache: GalaxyCache, split: str = "val",
             include_trained: bool = False) -> tuple[np.ndarray, int]:
    """The cache rows a model is scored on, and how many labelled galaxies were left out because it learnt from them.

    ``val``: for a run on the cache it trained on, its own validation split; otherwise the labelled galaxies it never
    learnt from (:func:`trained_mask`: a checkpoint's ``galaxies.json``, a run's training rows, matched by id).
    ``train``: those it learnt from (not a fair test). ``labelled``: all labelled galaxies but those it learnt from,
    unless ``include_trained``. Raises KeyError for another split."""
    if split not in ("val", "train", "labelled"):
        raise KeyError(f"unknown split {split!r}: use val, train or labelled")
    labelled = cache.indices("labelled")
    run = modelchoice.model_dir(folder)
    if modelchoice.is_run(run) and read_json(run / "config.json")["cache"].get("fingerprint") == cache.fingerprint:
        train, val = split_rows(cache, _run_config(run))
    else:
        seen = trained_mask(run, cache, labelled)
        train, val = labelled[seen], labelled[~seen]
    if split != "labelled":
        return (val if split == "val" else train), 0
    keep = labelled if include_trained else labelled[~np.isin(labelled, train)]
    return keep, len(labelled) - len(keep)


@dataclass(frozen=True)
class Unseen:
    """The labelled galaxies of a cache that a model never learnt from: ``rows`` (cache rows, increasing),
    ``n_trained`` (labelled galaxies left out because it learnt from them) and ``known`` (whether its training
    galaxies are known at all: when they are not, nothing could be left out)."""

    rows: np.ndarray
    n_trained: int
    known: bool


def unseen_labelled(folder: str | os.PathLike | None, cache: GalaxyCache) -> Unseen:
    """:func:`split_of`'s ``labelled`` galaxies, with whether the model's training galaxies are known: what a merger
    threshold is calibrated on, since on its training galaxies a model agrees with the volunteers better than on any
    other. For a checkpoint these are the validation galaxies of :func:`evaluate`."""
    rows, n_trained = split_of(folder, cache, "labelled")
    return Unseen(rows, n_trained, trained_ids(folder) is not None)


def evaluate(run: str | os.PathLike | None, cache: GalaxyCache | str | os.PathLike | None = None,
             split: str = "val", tta: int = 1, batch_size: int = 256, device: str = "auto",
             weights: str | os.PathLike | None = None, limit: int | None = None, include_trained: bool = False,
             source_fov: float | None = None) -> Evaluation:
    """Evaluate a run's best model or a checkpoint folder (None: the default model, ``modelchoice.default_model``)
    on a split of a cache (:func:`split_of`; the galaxies it learnt from are never scored unless asked for).

    ``cache`` defaults to the one the model was trained on, when it is on this machine (ValueError otherwise); a
    folder is prepared with ``source_fov``. ``tta`` dihedral views are averaged (1-8). ``weights``: a model folder
    to evaluate in place of the run's best (for example the run exported as a checkpoint) on the run's galaxies.
    ``limit``: a seeded random subset of at most that many galaxies (the same every time; the shipped checkpoint's
    "validation" on the whole Kaggle set is 50,000 galaxies, a minute of a 2-core CPU; 5,000 give the RMSE with a
    standard error of 0.7 %, from the spread of the shipped model's per-galaxy errors on its validation split).
    The result's ``n_excluded`` counts the labelled galaxies left out as trained on (split ``labelled``).
    """
    run_dir = modelchoice.model_dir(run)
    if cache is None:
        cache = model_cache(run_dir)
    elif not isinstance(cache, GalaxyCache):
        fov = _run_config(run_dir).source_fov if modelchoice.is_run(run_dir) and source_fov is None else source_fov
        cache = resolve_cache(cache, source_fov=fov)
    rows, excluded = split_of(run_dir, cache, split, include_trained)
    rows = subsample(rows, limit)
    model = modelchoice.load_model(weights if weights is not None else run_dir, device=hardware.pick_device(device))
    pred = prediction.predict_cache(model, cache, rows, tta=tta, batch_size=batch_size)
    return Evaluation(run_dir.name, cache.ids[rows], rows, cache.labels[rows], pred, cache.mask[rows], excluded)
