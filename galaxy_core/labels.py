"""Your own labels: a yes/no question Galaxy Zoo never asked (rings, lenses, tidal features ...), learnt from a few
galaxies a user marks, on the frozen embeddings of a model (:mod:`galaxy_core.embeddings`).

The head is a logistic regression on standardised embeddings with an L2 penalty, fitted by L-BFGS in float64 in
a second or less on a CPU, with the two classes weighted equally however few of one there are (King & Zeng 2001 on
rare events). It ranks every galaxy of a cache by the probability of "yes", and asks next about the galaxies it is
least sure of (uncertainty sampling, Lewis & Gale 1994). A set of labels, its head and its ranking are kept in a
folder of their own (:func:`save`), never in the 37-answer model.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import models
from .files import DataError, atomic_write_json, atomic_write_text, building_dir, read_json
from .runs import is_plain_name

HEAD_FILE, LABELS_FILE, RANKED_FILE = "head.json", "labels.csv", "ranked.csv"
TUNED_DIR = "model"
"""Where a discovery folder keeps a fine-tuned copy of the model (:mod:`galaxy_core.finetune`), if it has one."""


@dataclass
class Head:
    """A fitted logistic regression: ``p(yes) = sigmoid(((x - mean) / scale) @ weights + bias)``."""

    weights: list[float]
    bias: float
    mean: list[float]
    scale: list[float]
    l2: float
    n_yes: int
    n_no: int

    def logit(self, x: np.ndarray) -> np.ndarray:
        """log(p / (1 - p)) for each row of ``x`` (N, D): what ranks the galaxies, since p itself rounds to 1.0 for
        every galaxy far on the 'yes' side when a few labels make the answer look easy."""
        z = ((np.asarray(x, np.float64) - np.asarray(self.mean)) / np.asarray(self.scale)) @ np.asarray(self.weights)
        return z + self.bias

    def probability(self, x: np.ndarray) -> np.ndarray:
        """p(yes) for each row of ``x`` (N, D), float64 in [0, 1]."""
        return sigmoid(self.logit(x))


def sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-z)) without overflow: a head fitted to a few labels can put a galaxy's logit below -709, where
    exp(-z) overflows float64 (the answer, 0, is right, but numpy warns)."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, np.float64)))


def fit(x: np.ndarray, y: np.ndarray, l2: float = 1.0, iterations: int = 200) -> Head:
    """Fit :class:`Head` to embeddings ``x`` (N, D) and answers ``y`` (N,) of 0/1 (or False/True). Raises ValueError
    unless both answers occur: a head needs at least one galaxy of each."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if len(x) != len(y) or not len(y):
        raise ValueError(f"need as many answers as embeddings, and some: {len(x)} embeddings, {len(y)} answers")
    n_yes, n_no = int((y > 0.5).sum()), int((y <= 0.5).sum())
    if not n_yes or not n_no:
        raise ValueError(f"need at least one 'yes' and one 'no' to learn from: {n_yes} yes, {n_no} no")
    mean, scale = x.mean(0), x.std(0)
    scale[scale < 1e-8] = 1.0  # a feature that never changes carries no information: left unscaled
    xs = torch.from_numpy((x - mean) / scale)
    target = torch.from_numpy(y)
    weight = torch.where(target > 0.5, len(y) / (2.0 * n_yes), len(y) / (2.0 * n_no))
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=iterations, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = (weight * torch.nn.functional.binary_cross_entropy_with_logits(xs @ w + b, target, reduction="none")
                ).mean() + 0.5 * l2 * (w @ w) / len(y)
        loss.backward()
        return loss

    opt.step(closure)
    return Head(w.detach().tolist(), float(b.detach()), mean.tolist(), scale.tolist(), float(l2), n_yes, n_no)


def roc_auc(score: np.ndarray, y: np.ndarray) -> float:
    """The area under the ROC curve: the chance that a random 'yes' scores above a random 'no' (ties count half;
    the Mann-Whitney U statistic over the product of the class sizes). NaN when one class is missing."""
    score, y = np.asarray(score, np.float64), np.asarray(y, bool)
    n_yes, n_no = int(y.sum()), int((~y).sum())
    if not n_yes or not n_no:
        return float("nan")
    ranks = pd.Series(score).rank(method="average").to_numpy()
    return float((ranks[y].sum() - n_yes * (n_yes + 1) / 2) / (n_yes * n_no))


def ask_next(probability: np.ndarray, answered: np.ndarray, n: int = 12) -> np.ndarray:
    """The ``n`` rows not yet ``answered`` whose p(yes) is nearest 0.5, most uncertain first."""
    candidates = np.flatnonzero(~np.asarray(answered, bool))
    order = np.argsort(np.abs(np.asarray(probability)[candidates] - 0.5), kind="stable")
    return candidates[order[:n]]


def first_offer(unusual: np.ndarray, answered: np.ndarray, n: int = 12, seed: int = 0) -> np.ndarray:
    """What to ask about before there is a head to rank by (no yes and no answer yet): the most unusual galaxies by
    ``unusual`` (an anomaly score per row), where rare kinds gather, and as many random ones, the rare and the
    common; rows already ``answered`` left out, at most ``n``, in that order."""
    answered = np.asarray(answered, bool)
    half = (n + 1) // 2
    odd = np.argsort(-np.asarray(unusual), kind="stable")[:half]
    rand = np.random.default_rng(seed).choice(len(answered), min(n - half, len(answered)), replace=False)
    offer = [r for r in dict.fromkeys(np.r_[odd, rand].tolist()) if not answered[r]]
    return np.array(offer[:n], np.int64)


def marked(row_of, answers: dict[str, bool]) -> tuple[np.ndarray, np.ndarray]:
    """The rows (``row_of(GalaxyID)``, e.g. ``GalaxyCache.row_of``) and answers of galaxies marked yes (True) or no
    (False), in the order they were marked."""
    return (np.array([row_of(g) for g in answers], np.int64).reshape(-1),
            np.array(list(answers.values()), bool).reshape(-1))


def answered(n: int, rows: np.ndarray) -> np.ndarray:
    """A mask over ``n`` galaxies, True at the ``rows`` already answered."""
    mask = np.zeros(int(n), bool)
    mask[np.asarray(rows, np.int64)] = True
    return mask


def answers_frame(answers: dict[str, bool]) -> pd.DataFrame:
    """Marked galaxies as the ``GalaxyID,label`` table that :func:`save` writes and :func:`read_labels` reads."""
    return pd.DataFrame({"GalaxyID": [str(g) for g in answers], "label": list(answers.values())})


def read_labels(path: str | os.PathLike) -> pd.DataFrame:
    """A CSV of ``GalaxyID,label`` (label: 1/0, yes/no, true/false) as a frame of text ids and bool labels; the last
    answer of a galaxy given twice wins. Raises DataError naming the file and the lines it cannot read."""
    path = Path(path)
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    if [c.strip().lower() for c in frame.columns[:2]] != ["galaxyid", "label"]:
        raise DataError(f"{path}: expected the columns GalaxyID,label, found {', '.join(frame.columns)}")
    values = frame.iloc[:, 1].str.strip().str.lower()
    known = {"1": True, "yes": True, "true": True, "y": True, "0": False, "no": False, "false": False, "n": False}
    bad = [i + 2 for i, v in enumerate(values) if v not in known]
    if bad:
        raise DataError(f"{path}: labels must be yes/no, 1/0 or true/false; lines {bad[:10]} are not")
    out = pd.DataFrame({"GalaxyID": frame.iloc[:, 0].str.strip(), "label": values.map(known).astype(bool)})
    return out.drop_duplicates("GalaxyID", keep="last").reset_index(drop=True)


def rank(head: Head, ids: np.ndarray, x: np.ndarray) -> pd.DataFrame:
    """Every galaxy by p(yes), highest first (ordered by the logit, which does not round off): ``rank``,
    ``GalaxyID``, ``p_yes``, ``logit``."""
    z = head.logit(x)
    order = np.argsort(-z, kind="stable")
    return pd.DataFrame({"rank": np.arange(1, len(order) + 1), "GalaxyID": np.asarray(ids)[order],
                         "p_yes": sigmoid(z[order]), "logit": z[order]})


def candidates(ranked: pd.DataFrame, answered_ids, n: int | None = None) -> pd.DataFrame:
    """The galaxies of a :func:`rank` table not among ``answered_ids``, most likely yes first (the first ``n``)."""
    fresh = ranked[~ranked["GalaxyID"].isin([str(g) for g in answered_ids])]
    return fresh if n is None else fresh.head(n)


def save(folder: str | os.PathLike, question: str, labels: pd.DataFrame, head: Head, ranked: pd.DataFrame,
         model: str, cache: str, tuned: models.GalaxyModel | None = None) -> Path:
    """Write a discovery folder whole or not at all: ``labels.csv``, ``head.json`` (the question, the head, and
    which model's embeddings of which cache it works on) and ``ranked.csv``; with ``tuned`` (a fine-tuned copy of
    ``model`` whose embeddings the head reads) also that model, in ``model/`` (safetensors and JSON, as any model).
    Raises ValueError for a folder whose name is not a plain name (``runs.is_plain_name``: it may come from a
    dashboard's text box)."""
    folder = Path(folder)
    if not is_plain_name(folder.name):
        raise ValueError(f"{folder.name!r} is not a plain folder name (letters, digits, '.', '_', '-')")
    with building_dir(folder) as tmp:
        atomic_write_text(tmp / LABELS_FILE, labels.to_csv(index=False, lineterminator="\n"))
        atomic_write_json(tmp / HEAD_FILE, {"question": question, "model": model, "cache": cache,
                                            "fine_tuned": tuned is not None, "head": asdict(head)})
        if tuned is not None:
            models.save_model(tuned, tmp / TUNED_DIR, extra=getattr(tuned, "extra", None))
        atomic_write_text(tmp / RANKED_FILE, ranked.to_csv(index=False, lineterminator="\n"))
    return folder


def load(folder: str | os.PathLike) -> tuple[dict, Head, pd.DataFrame]:
    """A discovery folder written by :func:`save`: (its settings, its head, its labels). The embeddings the head
    reads are those of ``settings["model"]``, or of the fine-tuned model in ``folder / TUNED_DIR`` when
    ``settings["fine_tuned"]`` (load it with ``models.load_model_folder``)."""
    folder = Path(folder)
    settings = read_json(folder / HEAD_FILE)
    return settings, Head(**settings["head"]), read_labels(folder / LABELS_FILE)
