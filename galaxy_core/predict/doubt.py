"""Per-galaxy uncertainty where astronomers look: a model's (or an ensemble's) spread for some galaxies of a cache,
and the scale factor the dashboard shows it with, fitted on the labelled galaxies of that cache that no member
learnt from.

The statistics are :mod:`galaxy_core.predict.uncertainty`'s and the words :mod:`galaxy_core.predict.plusminus`'; this
module only chooses the galaxies, predicts and hands each its part. One model's spread is that of its :data:`VIEWS`
dihedral views, an ensemble's that of its members (each averaged over as many views). The scale is the one factor c of
``uncertainty.held_out_scale``: on the shipped model's validation galaxies the views' spread is about ten times smaller
than the actual errors, and c = 10.5 makes the ±1 coverage right on held-out galaxies but not the ±2 one (89.5 % for
95.45 %; ``docs/uncertainty.md``). Where a cache has too few such galaxies there is no c, and the pages show the raw
spread and say it is uncalibrated.

Predictions go through ``prediction.predict_cache``, so the calibration galaxies' views are kept with the cache
(``store``) and a later visit or restart reads them back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from galaxy_core import tree
from galaxy_core.data.cache import GalaxyCache, subsample
from galaxy_core.models import registry
from galaxy_core.predict import evaluation, plusminus, prediction, uncertainty
from galaxy_core.progress import Progress

VIEWS = 8
"""Dihedral views each model's answer is averaged over and, for one model, the spread is taken across: all eight,
as ``--tta 8`` and the measurement in ``docs/uncertainty.md``."""
SCALE_SAMPLE = 1000
"""Most held-out labelled galaxies the scale is fitted and checked on (a seeded random subset when a cache has
more; 500 each way): the measurement's factor was fitted on 372, and predicting 8 views of 1,000 galaxies takes about
a minute on two busy CPU cores (745 took 28-52 s), once per model and data."""


def unseen_by_all(members: Sequence[registry.GalaxyModel], cache: GalaxyCache) -> evaluation.Unseen:
    """The labelled galaxies of ``cache`` that no member learnt from (``evaluation.unseen_labelled`` of each
    member's folder, intersected), how many labelled ones that leaves out, and whether every member's training
    galaxies are known. A member without a folder (built in memory) leaves out nothing, and makes ``known``
    False."""
    labelled = cache.indices("labelled")
    rows, known = labelled, True
    for m in members:
        folder = getattr(m, "folder", None)
        if folder is None:  # evaluation.unseen_labelled(None) would be the default model's galaxies
            known = False
            continue
        unseen = evaluation.unseen_labelled(folder, cache)
        rows, known = np.intersect1d(rows, unseen.rows), known and unseen.known
    return evaluation.Unseen(rows, len(labelled) - len(rows), known)


def spread_of(members: Sequence[registry.GalaxyModel], cache: GalaxyCache, rows, tta: int = VIEWS,
              progress: Progress | None = None, store: bool = True) -> uncertainty.Spread:
    """The value and spread of ``rows`` of ``cache`` (cache rows, in that order): across one model's ``tta``
    views, or across several members' answers. ``store``: keep the predictions with the cache
    (``prediction.predict_cache``); leave it off for the handful of galaxies a gallery shows, each handful a file
    otherwise. No rows give an empty Spread without predicting."""
    rows = np.asarray(rows, np.int64)
    if not len(rows):
        empty = np.zeros((0, tree.N_ANSWERS), np.float32)
        return uncertainty.Spread(empty, empty, "views" if len(members) == 1 else "ensemble", len(members), tta)
    model = list(members) if len(members) > 1 else members[0]
    return prediction.predict_cache(model, cache, rows, tta=tta, progress=progress, store=store, uncertainty=True)


class GalaxySpreads:
    """The values and spreads of single galaxies of one cache by one model (or ensemble), kept as they are
    predicted, so that a gallery predicts only the galaxies no gallery before it showed: Discover's galleries move
    by a few galaxies at each click, and 8 views of 24 galaxies take about a second on two busy CPU cores."""

    def __init__(self) -> None:
        self._known: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._kind: tuple[str, int, int] | None = None  # kind, members, views of the first prediction

    def missing(self, rows) -> np.ndarray:
        """Those of ``rows`` (cache rows) not predicted yet, each once, in their first order."""
        return np.array([r for r in dict.fromkeys(int(r) for r in rows) if r not in self._known], np.int64)

    def add(self, rows, spread: uncertainty.Spread) -> None:
        """Keep the prediction ``spread`` of ``rows`` (in that order)."""
        self._kind = self._kind or (spread.kind, spread.members, spread.views)
        for k, r in enumerate(rows):
            self._known[int(r)] = (spread.value[k], spread.spread[k])

    def of(self, rows) -> uncertainty.Spread:
        """The kept prediction of ``rows``, in their order; KeyError for a row not kept (see :meth:`missing`)."""
        kind, members, views = self._kind or ("views", 1, VIEWS)
        pairs = [self._known[int(r)] for r in rows]
        value = np.array([v for v, _ in pairs], np.float32).reshape(-1, tree.N_ANSWERS)
        spread = np.array([s for _, s in pairs], np.float32).reshape(-1, tree.N_ANSWERS)
        return uncertainty.Spread(value, spread, kind, members, views)


@dataclass(frozen=True)
class Calibration:
    """A model's spread on the held-out labelled galaxies of a cache and the scale fitted there: ``rows`` (cache
    rows), ``spread`` (their :class:`uncertainty.Spread`), ``truth`` and ``mask`` (the volunteers' answers, (N, 37)),
    ``scale`` (``uncertainty.held_out_scale``) and ``unseen`` (all such galaxies, of which ``rows`` may be a
    sample)."""

    rows: np.ndarray
    spread: uncertainty.Spread
    truth: np.ndarray
    mask: np.ndarray
    scale: plusminus.Scale
    unseen: evaluation.Unseen

    def meaning(self) -> str:
        """What "±" means on a page (``plusminus.plus_minus_meaning``), with a warning when the galaxies it was
        fitted on may include some the model learnt from."""
        text = plusminus.plus_minus_meaning(self.scale, self.spread.members, self.spread.views)
        if self.scale.factor is not None and not self.unseen.known:
            text += (" This model does not list the galaxies it trained on, so some of those may be among them and "
                     "c too small.")
        return text

    def error_bins(self, column: str | None = None, bins: int = 10) -> pd.DataFrame:
        """``uncertainty.error_by_spread`` of one answer (a Kaggle column), or of all 37 pooled (None): the RMS
        error against the RMS raw spread in ``bins`` equal-count bins of the known (galaxy, answer) pairs."""
        j = slice(None) if column is None else tree.column_index(column)
        return uncertainty.error_by_spread(self.spread.value[:, j], self.spread.spread[:, j], self.truth[:, j],
                                           self.mask[:, j], bins)

    def ranking(self, column: str | None = None) -> dict[str, float]:
        """Spearman's ρ of |error| with the spread (``spread``), with sqrt(v (1 - v)) of the value (``value``, the
        rival that needs no spread) and the spread's with that held fixed (``partial``): over every known pair when
        ``column`` is None, else within one answer (NaN where too few know it). Empty without a report (fewer than
        ``uncertainty.MIN_SCALE_GALAXIES`` galaxies)."""
        r = self.scale.report
        if r is None:
            return {}
        if column is None:
            return {"spread": r["spearman"], "value": r["spearman_value"], "partial": r["spearman_partial"]}
        j = tree.column_index(column)
        return {k: float(r[f"spearman_per_answer{s}"][j]) for k, s in (("spread", ""), ("value", "_value"),
                                                                        ("partial", "_partial"))}


def calibrate(members: Sequence[registry.GalaxyModel], cache: GalaxyCache, limit: int | None = SCALE_SAMPLE,
              seed: int = 0, tta: int = VIEWS, progress: Progress | None = None) -> Calibration:
    """The spread of ``members`` (one model, or an ensemble) on the labelled galaxies of ``cache`` that none of them
    learnt from (:func:`unseen_by_all`; a seeded ``limit`` of them when there are more), and the scale factor fitted
    and checked there (``uncertainty.held_out_scale``, halves drawn with ``seed``). The predictions are kept with
    the cache. Without such galaxies, or too few, the scale has no factor and says why."""
    unseen = unseen_by_all(members, cache)
    rows = subsample(unseen.rows, limit, seed)
    spread = spread_of(members, cache, rows, tta, progress)
    truth, mask = cache.labels[rows], cache.mask[rows]
    scale = uncertainty.held_out_scale(spread.value, spread.spread, truth, mask, seed,
                                       what="labelled galaxies here that the model never learnt from")
    return Calibration(rows, spread, truth, mask, scale, unseen)


def count_above(spread: uncertainty.Spread, scale: plusminus.Scale, column: str, threshold: float,
                seed: int = 0) -> dict:
    """The probabilistic count of the galaxies whose ``column`` (a Kaggle column) lies above ``threshold``: each
    galaxy's probability from its value and scaled spread (``plusminus.probability_above``), added up with its
    intervals (``plusminus.probabilistic_count``). Raises ValueError for no galaxies."""
    j = tree.column_index(column)
    p = plusminus.probability_above(spread.value[:, j], scale.apply(spread.spread[:, j]), threshold)
    return plusminus.probabilistic_count(p, seed=seed)
