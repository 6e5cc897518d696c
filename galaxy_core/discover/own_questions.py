"""Your own labels: a yes/no question Galaxy Zoo never asked (rings, lenses, tidal features ...), learnt from a few
galaxies a user marks, on the frozen embeddings of a model (:mod:`galaxy_core.discover.embeddings`).

The head is a logistic regression on standardised embeddings with an L2 penalty chosen by cross-validation on the
marked galaxies themselves (:func:`fit`), the two answers weighted equally however few of one there are, fitted
exactly by Newton's method in well under a second on a CPU. It ranks every galaxy of a cache, and asks next about
the galaxies it is least sure of (uncertainty sampling, Lewis & Gale 1994).

Its p(yes) is a probability only as far as the marks allow. They are not a sample of the sky: a user marks many yes
among few (4 of 10 where 1 galaxy in 100 is a ring), so the head learns at even odds and p(yes) is moved to the base
rate (how common 'yes' is among all galaxies) by the prior correction of King & Zeng (2001), which needs that rate
to be given (the marks cannot tell it; estimates from the head's own odds, Saerens et al. 2002, were measured at 0
to 80 times the true rate) and the marks to be drawn at random among the yes and among the no. Measured against the
volunteers' answers (docs/discovery.md), p(yes) is shown only then, from :data:`MIN_YES` yes and enough no for the
base rate, and the rank otherwise (:func:`probability_shown`). A set of labels, its head and its ranking are kept
in a folder of their own (:func:`save`), never in the 37-answer model.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from galaxy_core.atomic import atomic_write_json, atomic_write_text, building_dir, read_json
from galaxy_core.errors import DataError
from galaxy_core.models import registry
from galaxy_core.models.runs import is_plain_name

HEAD_FILE, LABELS_FILE, RANKED_FILE = "head.json", "labels.csv", "ranked.csv"
TUNED_DIR = "model"
"""Where a discovery folder keeps a fine-tuned copy of the model (:mod:`galaxy_core.discover.finetune`), if it has
one."""

L2_GRID = tuple(10.0 ** (k / 2) for k in range(-2, 11))
"""The L2 strengths cross-validation chooses from, in half decades: from 0.1 (every marked galaxy fitted almost
exactly) to 1e5 (the weights all but zero, p(yes) the base rate for every galaxy: the right answer to a question the
embeddings cannot tell)."""
FOLDS = 5
"""Cross-validation folds, fewer where one answer has fewer marks (at least 2 of each are needed)."""
DEFAULT_L2 = 1.0
"""The penalty where there are too few marks to cross-validate (a single yes or no)."""
MIN_YES, MIN_NO, NO_PER_BASE = 40, 60, 5.0
"""p(yes) is shown as a probability from :data:`MIN_YES` yes and at least :data:`MIN_NO` no, and at least
:data:`NO_PER_BASE` / base rate no (466 for rings at 1.07 %), all drawn at random within each answer. Measured against
the volunteers' answers on the 96 px pack (docs/discovery.md): with 40 yes and 60 no, edge-on discs (9.4 % of
galaxies) were calibrated (every bin of p above 0.2 within 0.04 of the share of yes) but rings and mergers (1.1 and
1.4 %) were not (p 0.94-0.95 where 54-55 % were yes): the no's that look like yes are about as rare as the yes, and a
few dozen random no's hold none of them. With 1,000 no's both were (within 0.10)."""


@dataclass
class Head:
    """A fitted logistic regression: ``p(yes) = sigmoid(((x - mean) / scale) @ weights + bias + offset)``, where
    ``offset`` = log(base_rate / (1 - base_rate)) moves the even odds it was fitted at to the base rate (0 without
    one). ``l2_from``: how the penalty was chosen ("cross-validated", "given", "default" with too few marks to
    cross-validate, "fine-tuned" for :mod:`galaxy_core.discover.finetune`'s head). ``random_marks``: the marked galaxies
    were drawn at random among the yes and among the no (a catalogue's known examples, and others), which the prior
    correction assumes, rather than chosen from rankings and galleries as on Discover."""

    weights: list[float]
    bias: float
    mean: list[float]
    scale: list[float]
    l2: float
    n_yes: int
    n_no: int
    base_rate: float | None = None
    l2_from: str = "given"
    random_marks: bool = False

    def logit(self, x: np.ndarray) -> np.ndarray:
        """log(p / (1 - p)) at even odds (as if yes and no were equally common) for each row of ``x`` (N, D): what
        ranks the galaxies, since p itself rounds to 1.0 for every galaxy far on the 'yes' side."""
        z = ((np.asarray(x, np.float64) - np.asarray(self.mean)) / np.asarray(self.scale)) @ np.asarray(self.weights)
        return z + self.bias

    def even_odds(self, x: np.ndarray) -> np.ndarray:
        """p(yes) as if yes and no were equally common, for each row of ``x``: what uncertainty sampling asks about
        (nearest 0.5: the galaxies the head cannot tell)."""
        return sigmoid(self.logit(x))

    def probability(self, x: np.ndarray) -> np.ndarray:
        """p(yes) for each row of ``x`` (N, D), float64 in [0, 1]: at the base rate where one is given (the prior
        correction of King & Zeng 2001: the intercept shifted by log(tau / (1 - tau)) - log(ybar / (1 -
        ybar)), with ybar = 1/2 for answers weighted equally), else at even odds. Whether it may be read as a
        probability: :func:`probability_shown`."""
        return sigmoid(self.logit(x) + self.offset)

    @property
    def offset(self) -> float:
        """The prior correction added to the logit: log(tau / (1 - tau)) for a base rate tau, 0 without one."""
        return 0.0 if self.base_rate is None else math.log(self.base_rate / (1.0 - self.base_rate))

    def at(self, base_rate: float | None) -> Head:
        """The same head with p(yes) at another ``base_rate`` (a share of galaxies in (0, 1), or None: even odds).
        Raises ValueError outside (0, 1)."""
        return replace(self, base_rate=_base_rate(base_rate))


def _base_rate(base_rate: float | None) -> float | None:
    if base_rate is not None and not 0.0 < float(base_rate) < 1.0:
        raise ValueError(f"the base rate is a share of the galaxies, above 0 and below 1; got {base_rate}")
    return None if base_rate is None else float(base_rate)


def sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-z)) without overflow: a head fitted to a few labels can put a galaxy's logit below -709, where
    exp(-z) overflows float64 (the answer, 0, is right, but numpy warns)."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, np.float64)))


def fit(x: np.ndarray, y: np.ndarray, l2: float | None = None, base_rate: float | None = None,
        folds: int = FOLDS, random_marks: bool = False) -> Head:
    """Fit :class:`Head` to embeddings ``x`` (N, D) and answers ``y`` (N,) of 0/1 (or False/True).

    ``l2``: the penalty; None chooses it from :data:`L2_GRID` by ``folds``-fold cross-validation on these galaxies
    (:func:`cross_validated_l2`; :data:`DEFAULT_L2` with a single yes or no). ``base_rate``: the share of 'yes'
    among all galaxies, if known, which p(yes) is corrected to (:meth:`Head.probability`). ``random_marks``: the
    marks were drawn at random within each answer (kept in the head for :func:`probability_shown`). The embeddings
    are standardised on the marked galaxies. Raises ValueError unless both answers occur (a head needs at least one
    galaxy of each), for a penalty that is not positive or a base rate outside (0, 1)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64) > 0.5
    if len(x) != len(y) or not len(y):
        raise ValueError(f"need as many answers as embeddings, and some: {len(x)} embeddings, {len(y)} answers")
    n_yes, n_no = int(y.sum()), int((~y).sum())
    if not n_yes or not n_no:
        raise ValueError(f"need at least one 'yes' and one 'no' to learn from: {n_yes} yes, {n_no} no")
    if l2 is not None and not l2 > 0:
        raise ValueError(f"the L2 penalty must be positive, got {l2}")
    base_rate = _base_rate(base_rate)
    mean, scale = x.mean(0), x.std(0)
    scale[scale < 1e-8] = 1.0  # a feature that never changes carries no information: left unscaled
    xs = (x - mean) / scale
    # These matrices are small (marks x marks): BLAS threads cost more than they save, and on a busy CPU far more.
    with threadpool_limits(1, user_api="blas"):
        if l2 is not None:
            how = "given"
        elif min(folds, n_yes, n_no) >= 2:
            l2, how = cross_validated_l2(xs, y, folds)[0], "cross-validated"
        else:
            l2, how = DEFAULT_L2, "default"
        w, b = _newton(xs, y, float(l2))
    return Head(w.tolist(), float(b), mean.tolist(), scale.tolist(), float(l2), n_yes, n_no, base_rate, how,
                bool(random_marks))


def balanced_weights(y: np.ndarray) -> np.ndarray:
    """Each marked galaxy's weight N / (2 N_answer) for answers ``y`` (N,) bool, so that the yes and the no weigh
    alike however few of one there are (scikit-learn's ``class_weight="balanced"``): the fit's and its
    cross-validation's."""
    y = np.asarray(y, bool)
    return np.where(y, len(y) / (2.0 * y.sum()), len(y) / (2.0 * (~y).sum()))


def _newton(xs: np.ndarray, y: np.ndarray, l2: float, iterations: int = 100) -> tuple[np.ndarray, float]:
    """The weights and intercept minimising sum_i s_i logloss_i + l2 / 2 |w|^2, with s_i the
    :func:`balanced_weights`: the objective of scikit-learn's ``LogisticRegression(C=1 / l2,
    class_weight="balanced")``. Exact to rounding: Newton's method with a backtracking line search, in the span of
    the marked galaxies (the optimal w lies there; there are far fewer of them than dimensions)."""
    n = len(y)
    s = balanced_weights(y)
    t = y.astype(np.float64)
    u, sv, vt = np.linalg.svd(xs, full_matrices=False)
    a = np.c_[u * sv, np.ones(n)]  # xs @ w == (u * sv) @ c for w = vt.T @ c
    reg = np.r_[np.full(len(sv), l2), 1e-12]  # the intercept is not penalised (a trace keeps H invertible)
    theta = np.zeros(a.shape[1])

    def objective(th: np.ndarray) -> float:
        z = a @ th
        return float(s @ (np.logaddexp(0.0, z) - t * z) + 0.5 * reg @ (th * th))

    f = objective(theta)
    for _ in range(iterations):
        p = sigmoid(a @ theta)
        grad = a.T @ (s * (p - t)) + reg * theta
        step = np.linalg.solve((a * (s * p * (1.0 - p))[:, None]).T @ a + np.diag(reg), grad)
        decrement = float(grad @ step)
        if decrement < 1e-12 * max(1.0, f):
            break
        rate = 1.0
        while True:  # Armijo: Newton's full step can overshoot far from the optimum
            new = theta - rate * step
            f_new = objective(new)
            if f_new <= f - 0.25 * rate * decrement or rate < 1e-10:
                break
            rate *= 0.5
        theta, f = new, f_new
    return vt.T @ theta[:-1], float(theta[-1])


def cross_validated_l2(xs: np.ndarray, y: np.ndarray, folds: int = FOLDS) -> tuple[float, np.ndarray]:
    """The penalty of :data:`L2_GRID` with the lowest cross-validated log loss on standardised embeddings ``xs``
    (N, D) and answers ``y`` (N,) bool, the two answers weighted equally as in the fit; among equal losses the
    strongest. Stratified folds (``folds``, fewer if one answer has fewer marks), drawn with a fixed seed so that the
    same marks give the same head. Returns ``(l2, loss per grid value)``. Raises ValueError with fewer than 2 of
    either answer."""
    y = np.asarray(y, bool)
    k = min(int(folds), int(y.sum()), int((~y).sum()))
    if k < 2:
        raise ValueError(f"cross-validation needs at least 2 of each answer: {int(y.sum())} yes, {int((~y).sum())} no")
    rng = np.random.default_rng(0)
    fold = np.empty(len(y), np.int64)
    for answer in (True, False):
        rows = np.flatnonzero(y == answer)
        fold[rng.permutation(rows)] = np.arange(len(rows)) % k
    s = balanced_weights(y)
    losses = []
    for l2 in L2_GRID:
        z = np.empty(len(y))
        for f in range(k):
            train = fold != f
            w, b = _newton(xs[train], y[train], l2)
            z[~train] = xs[~train] @ w + b
        losses.append(float(s @ (np.logaddexp(0.0, z) - y * z)) / len(y))
    losses = np.array(losses)
    best = np.flatnonzero(losses <= losses.min() * (1 + 1e-9))[-1]
    return float(L2_GRID[best]), losses


def no_needed(base_rate: float | None) -> int:
    """How many no's drawn at random :func:`probability_shown` asks for at ``base_rate``: :data:`MIN_NO`, or
    :data:`NO_PER_BASE` / base rate where that is more."""
    return MIN_NO if base_rate is None else max(MIN_NO, math.ceil(NO_PER_BASE / base_rate - 1e-9))


def probability_shown(head: Head) -> tuple[bool, list[str]]:
    """Whether ``head``'s p(yes) may be shown as a probability, and why or why not: the reasons against it, the most
    fundamental first, or the one clause that says what it is. Shown only where it was measured calibrated against
    the volunteers' answers (docs/discovery.md, "Is p(yes) a probability?"): the base rate given, the marks drawn at
    random within each answer (the prior correction's assumption; marks chosen from rankings, as on Discover, put
    the top 24's p(yes) at 0.01-0.02 where 57 % were yes), at least :data:`MIN_YES` yes and :func:`no_needed` no,
    and a head cross-validated or given its penalty (a fine-tuned head was not measured).
    Otherwise the rank is what to show."""
    why = []
    if not head.random_marks:
        why.append("the marks were chosen, not drawn at random among the yes and among the no")
    if head.base_rate is None:
        why.append("no base rate is given (how common 'yes' is among all galaxies)")
    need = no_needed(head.base_rate)
    if head.n_yes < MIN_YES or head.n_no < need:
        why.append(f"{head.n_yes} yes and {head.n_no} no are too few (calibrated from {MIN_YES} yes and {need} no"
                   + (f" at a base rate of {head.base_rate:.2%})" if head.base_rate else ")"))
    if head.l2_from == "fine-tuned":
        why.append("a fine-tuned head's calibration was not measured")
    if why:
        return False, why
    return True, [f"p(yes) at a base rate of {head.base_rate:.2%}, from {head.n_yes} yes and {head.n_no} no drawn at "
                  f"random (L2 {head.l2:g}, {head.l2_from})"]


def captions(ranked: pd.DataFrame, shown: bool) -> list[str]:
    """Gallery captions for the rows of a :func:`rank` table: ``'GalaxyID · p 0.734'`` where p(yes) may be shown
    (:func:`probability_shown`), else ``'rank 3 · GalaxyID'`` (the rank among all galaxies, as in ``ranked.csv``)."""
    if shown:
        return [f"{g} · p {p:.3f}" for g, p in zip(ranked["GalaxyID"], ranked["p_yes"])]
    return [f"rank {r} · {g}" for r, g in zip(ranked["rank"], ranked["GalaxyID"])]


def ask_next(probability: np.ndarray, answered: np.ndarray, n: int = 12) -> np.ndarray:
    """The ``n`` rows not yet ``answered`` whose ``probability`` is nearest 0.5, most uncertain first: give p(yes)
    at even odds (:meth:`Head.even_odds`), where 0.5 is the boundary the head cannot tell."""
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


def offer(answered: np.ndarray, head: Head | None, x: np.ndarray | None, unusual: Callable[[], np.ndarray],
          n: int = 12) -> np.ndarray:
    """What to ask about next: at most ``n`` rows not yet ``answered`` (a mask over the galaxies, :func:`answered`).
    With a ``head``, those it is least sure of on the embeddings ``x`` (N, D) of every galaxy (:func:`ask_next`);
    without one (no yes and no answer yet), :func:`first_offer` of the anomaly scores that ``unusual()`` returns (one
    per galaxy), called only then: computing them may take seconds."""
    if head is None:
        return first_offer(unusual(), answered, n)
    return ask_next(head.even_odds(x), answered, n)


def mark(answers: dict[str, bool], gid: str, answer: bool | None) -> None:
    """Record, in place, ``answer`` (True yes, False no) for galaxy ``gid`` among a user's marks ``answers``
    (GalaxyID -> answer, in the order first marked: a changed answer keeps its place). The answer it already has,
    or None, takes the mark back: a second click on the chosen button undoes it."""
    if answer is None or answers.get(gid) == answer:
        answers.pop(gid, None)
    else:
        answers[gid] = bool(answer)


def tally(answers: dict[str, bool]) -> tuple[int, int]:
    """How many of the marks ``answers`` (GalaxyID -> True yes, False no) say yes and how many no. A head can be
    fitted (:func:`fit`) from one of each."""
    yes = sum(bool(a) for a in answers.values())
    return yes, len(answers) - yes


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
    ``GalaxyID``, ``p_yes`` (at the head's base rate, else at even odds: :meth:`Head.probability`), ``logit`` (at
    even odds)."""
    z = head.logit(x)
    order = np.argsort(-z, kind="stable")
    return pd.DataFrame({"rank": np.arange(1, len(order) + 1), "GalaxyID": np.asarray(ids)[order],
                         "p_yes": sigmoid(z[order] + head.offset), "logit": z[order]})


def candidates(ranked: pd.DataFrame, answered_ids, n: int | None = None) -> pd.DataFrame:
    """The galaxies of a :func:`rank` table not among ``answered_ids``, most likely yes first (the first ``n``)."""
    fresh = ranked[~ranked["GalaxyID"].isin([str(g) for g in answered_ids])]
    return fresh if n is None else fresh.head(n)


def save(folder: str | os.PathLike, question: str, labels: pd.DataFrame, head: Head, ranked: pd.DataFrame, *,
         model: str, cache: str, tuned: registry.GalaxyModel | None = None) -> Path:
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
            registry.save_model(tuned, tmp / TUNED_DIR, extra=getattr(tuned, "extra", None))
        atomic_write_text(tmp / RANKED_FILE, ranked.to_csv(index=False, lineterminator="\n"))
    return folder


def load(folder: str | os.PathLike) -> tuple[dict, Head, pd.DataFrame]:
    """A discovery folder written by :func:`save`: (its settings, its head, its labels). The embeddings the head
    reads are those of ``settings["model"]``, or of the fine-tuned model in ``folder / TUNED_DIR`` when
    ``settings["fine_tuned"]`` (load it with ``registry.load_model_folder``)."""
    folder = Path(folder)
    settings = read_json(folder / HEAD_FILE)
    return settings, Head(**settings["head"]), read_labels(folder / LABELS_FILE)
