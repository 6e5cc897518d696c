"""How sure the model is of each galaxy's answers: a spread beside each of the 37 values, and whether that spread
means anything.

Two spreads, both in the answers' own unit (a vote fraction, 0-1):

- **views**: one model's eight dihedral views (``inference.infer(..., views=True)``). The network is not exactly
  rotation- and mirror-invariant, so its answers for the same galaxy turned and flipped differ; the spread is their
  standard deviation. It costs nothing beyond ``--tta 8``, but it measures only the network's sensitivity to the
  orientation, not what it never learnt.
- **ensemble**: several models trained apart (different seeds, say), each averaged over its views; the spread is
  the standard deviation across members and the value their mean. This is the deep ensemble of Lakshminarayanan,
  Pritzel & Blundell (2017, NeurIPS), the between-member part of its predictive variance.

Both are population standard deviations (``ddof=0``): the eight views are the whole dihedral group, and for two
members the spread is half their difference. Whether either is calibrated is a measurement, not an assumption:
:func:`spearman` (does a larger spread go with a larger error?), :func:`coverage` (how often the volunteers' value
lies within k spreads, against 68.27 % and 95.45 % for a Gaussian) and :func:`fit_scale` (the one factor that
would make the 1-spread coverage right), put together by :func:`calibration_report`; ``docs/uncertainty.md`` has
the shipped model's numbers. :func:`held_out_scale` fits and checks the factor the dashboard shows a spread with
(``plusminus`` writes it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from galaxy_core import tree
from galaxy_core.errors import DataError
from galaxy_core.models import registry
from galaxy_core.predict.plusminus import Scale

STD_SUFFIX = "_std"
"""A spread's column is its answer's name with this suffix: ``Class8.6_std`` beside ``Class8.6``."""
GAUSSIAN_COVERAGE = {1: 0.682689, 2: 0.954500}
"""P(|x - mu| <= k sigma) for a Gaussian, k = 1 and 2: what a calibrated spread's coverage would be."""
MIN_SCALE_GALAXIES = 50
"""Fewest labelled galaxies :func:`held_out_scale` fits and checks a factor on (half each): the floor of an RMSE
(``evaluation.MIN_SCORED_GALAXIES``), since the factor is a quantile of the same errors. Below it the pages show the
raw spread and say that it is uncalibrated."""


@dataclass(frozen=True)
class Spread:
    """The 37 answers of N galaxies with a spread beside each.

    ``value``: (N, 37) float32 in [0, 1], in ``tree.COLUMNS`` order; ``spread``: (N, 37) float32 >= 0 in the same
    unit (a vote fraction); ``kind``: ``"views"`` or ``"ensemble"``; ``members``: models (1 for views);
    ``views``: dihedral views each model's answer was averaged over (for ``"views"``, those the spread is taken
    across)."""

    value: np.ndarray
    spread: np.ndarray
    kind: str
    members: int
    views: int

    @property
    def label(self) -> str:
        """The kind in a few characters, for a table's metadata (:func:`label_for`)."""
        return label_for(self.members, self.views)

    def __len__(self) -> int:
        return len(self.value)

    def subset(self, rows: np.ndarray) -> Spread:
        """The same spread for some of the galaxies (rows of ``value``)."""
        return Spread(self.value[rows], self.spread[rows], self.kind, self.members, self.views)


def label_for(members: int, views: int) -> str:
    """What spread ``members`` models averaged over ``views`` dihedral views give, in a few characters for a
    table's metadata: ``views:8`` for one model (the spread across its views), ``ensemble:3x8`` for several
    (members x views each). Raises DataError for one model and one view, which have no spread: said before any
    galaxy is predicted."""
    if members < 1 or not 1 <= views <= 8:
        raise DataError(f"no spread for {members} models and {views} views")
    if members == 1:
        if views < 2:
            raise DataError("one model's spread comes from its dihedral views: ask for 2-8 views (--tta 8), or give "
                            "several models (--model A --model B) for an ensemble's spread")
        return f"views:{views}"
    return f"ensemble:{members}x{views}"


def std_column(column: str) -> str:
    """The name of an answer's spread column: ``Class8.6`` -> ``Class8.6_std``."""
    return column + STD_SUFFIX


def columns(with_spread: bool) -> list[str]:
    """The answer columns of a table in order: the 37 of ``tree.COLUMNS``, each followed by its spread column when
    ``with_spread``."""
    if not with_spread:
        return list(tree.COLUMNS)
    return [c for a in tree.COLUMNS for c in (a, std_column(a))]


def answer_frame(s: Spread | np.ndarray) -> pd.DataFrame:
    """The answers as a frame: 37 columns for plain values, 74 (each answer then its ``_std``) for a
    :class:`Spread`."""
    if not isinstance(s, Spread):
        return pd.DataFrame(np.asarray(s), columns=list(tree.COLUMNS))
    both = np.stack([s.value, s.spread], axis=2).reshape(len(s), 2 * tree.N_ANSWERS)
    return pd.DataFrame(both, columns=columns(True))


def from_views(views: np.ndarray) -> Spread:
    """The spread of one model's dihedral views: ``views`` (N, V, 37) as ``inference.infer(..., views=True)``
    returns them (raw network outputs, V >= 2).

    The value is the views' mean clamped to [0, 1], summed in the same order and precision as ``inference.infer``
    without ``views``, so it is the very number a plain prediction gives. The spread is the standard deviation
    (``ddof=0``) of the views each clamped to [0, 1] (an answer outside [0, 1] means nothing), in float64.
    Raises DataError for fewer than two views: one view has no spread."""
    views = np.asarray(views, np.float32)
    if views.ndim != 3 or views.shape[1] < 2:
        raise DataError(f"a spread over views needs at least 2 views per galaxy (--tta 2-8), got views of shape "
                        f"{views.shape}")
    v = views.shape[1]
    t = torch.from_numpy(views)
    value = (sum(t[:, k] for k in range(v)) / v).clamp_(0, 1).numpy()
    spread = np.clip(views, 0, 1).std(axis=1, dtype=np.float64).astype(np.float32)
    return Spread(np.ascontiguousarray(value), spread, "views", 1, v)


def from_members(predictions: Sequence[np.ndarray], views: int = 1) -> Spread:
    """The spread of an ensemble: ``predictions``, one (N, 37) array per member (each averaged over ``views``
    dihedral views), at least two. The value is the members' mean and the spread their standard deviation
    (``ddof=0``), both computed in float64, so identical members give a spread of exactly 0. Raises DataError for
    fewer than two members or arrays of different shapes."""
    if len(predictions) < 2:
        raise DataError(f"an ensemble's spread needs at least 2 members, got {len(predictions)}")
    shapes = {np.shape(p) for p in predictions}
    if len(shapes) != 1:
        raise DataError(f"the members' predictions differ in shape: {sorted(shapes)}")
    stack = np.stack([np.asarray(p, np.float64) for p in predictions])
    return Spread(stack.mean(0).astype(np.float32), stack.std(0).astype(np.float32), "ensemble", len(predictions),
                  views)


def check_members(members: Sequence[torch.nn.Module]) -> tuple[float, int]:
    """The input geometry (fov as a fraction of the 424 px frame, size in px; ``registry.input_geometry``) that
    every member of an ensemble shares, so that each image is decoded once for all of them. Raises DataError,
    naming each member's geometry and folder, when they differ, or when there is no member."""
    if not members:
        raise DataError("an ensemble needs at least one model")
    found = [registry.input_geometry(m) for m in members]
    if len(set(found)) > 1:
        said = "; ".join(f"{getattr(m, 'folder', f'member {i + 1}')}: fov {fov:.4f}, {size} px"
                         for i, (m, (fov, size)) in enumerate(zip(members, found)))
        raise DataError(f"the ensemble's members expect different images ({said}); use members trained on images "
                        f"of the same field of view and size")
    return found[0]


# --------------------------------------------------------------------------------------------------------------------
# Does the spread mean anything? Measured against the volunteers' answers.


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation of two 1-d samples (ties take their average rank): the Pearson correlation of
    the ranks. NaN for fewer than 3 pairs or a sample without variation."""
    x, y = np.asarray(x, np.float64).ravel(), np.asarray(y, np.float64).ravel()
    if len(x) < 3:
        return float("nan")
    rx, ry = pd.Series(x).rank().to_numpy(), pd.Series(y).rank().to_numpy()
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def partial_spearman(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> float:
    """Spearman's correlation of ``x`` and ``y`` with ``z`` held fixed: the partial correlation of the three
    rank correlations, (r_xy - r_xz r_yz) / sqrt((1 - r_xz^2)(1 - r_yz^2)) (Kendall & Stuart, The Advanced Theory
    of Statistics, vol. 2, ch. 27). Whether a spread ``x`` says anything about the error ``y`` that the value's
    own ``z`` = sqrt(v (1 - v)) does not. NaN where a correlation is undefined or ``z`` ranks exactly as ``x`` or
    ``y``."""
    rxy, rxz, ryz = spearman(x, y), spearman(x, z), spearman(y, z)
    den = np.sqrt((1 - rxz ** 2) * (1 - ryz ** 2))
    return float((rxy - rxz * ryz) / den) if den > 0 else float("nan")


def _known(value: np.ndarray, spread: np.ndarray, truth: np.ndarray, mask: np.ndarray | None):
    value, spread, truth = (np.asarray(a, np.float64) for a in (value, spread, truth))
    mask = np.ones(value.shape, bool) if mask is None else np.asarray(mask, bool)
    if not mask.any():
        raise DataError("no known answer to measure the spread against")
    return np.abs(truth - value)[mask], spread[mask]


def coverage(value: np.ndarray, spread: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None,
             k: float = 1.0, scale: float = 1.0) -> float:
    """The fraction of known answers (``mask``; all when None) whose true value lies within ``k * scale`` spreads
    of the predicted value (inclusive: a zero spread covers only an exact answer). 0.6827 for k = 1 and 0.9545 for
    k = 2 if the errors were Gaussian with the spread as their standard deviation."""
    err, s = _known(value, spread, truth, mask)
    return float(np.mean(err <= k * scale * s))


def fit_scale(value: np.ndarray, spread: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None,
              level: float = GAUSSIAN_COVERAGE[1]) -> float:
    """The single factor ``c`` such that ``c * spread`` covers a fraction ``level`` of the known answers at 1
    spread: the ``level`` quantile of |error| / spread (the inverted empirical CDF, no interpolation).

    A quantile rather than the Gaussian maximum-likelihood factor sqrt(mean((error / spread)^2)), because answers
    whose views agree almost exactly have spreads near 0 and would dominate a mean of squares; for Gaussian errors
    both estimate the same factor. A zero error over a zero spread counts as 0, a non-zero one as infinite, so the
    result is inf when more than ``1 - level`` of the answers have an error but no spread."""
    err, s = _known(value, spread, truth, mask)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(err == 0, 0.0, err / s)
    return float(np.quantile(z, level, method="inverted_cdf"))


def halves(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint halves of ``range(n)`` (sorted row numbers), drawn with ``seed``: a scale factor is fitted on
    the first and checked on the second."""
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[: n // 2]), np.sort(order[n // 2:])


def calibration_report(value: np.ndarray, spread: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None,
                       seed: int = 0) -> dict:
    """Whether ``spread`` means anything for these galaxies, against the volunteers' ``truth`` (N, 37) where
    ``mask`` knows it:

    - ``spearman``: the rank correlation between spread and absolute error over every known (galaxy, answer) pair;
      ``spearman_galaxy`` between a galaxy's RMS spread and its RMS error (over its known answers);
      ``spearman_per_answer``: (37,) within each answer (NaN where fewer than 3 galaxies know it). Beside each,
      the baseline a spread has to beat, ``*_value``: the same for sqrt(v (1 - v)) of the value v, which needs no
      spread at all (answers near 0 or 1 are easy); and ``*_partial``: the spread's correlation with the error
      with that baseline held fixed (:func:`partial_spearman`), what the spread adds.
    - ``raw``: coverage at 1 and 2 spreads on all the galaxies;
    - ``scale``: the factor :func:`fit_scale` finds on one seeded half of the galaxies, and ``held_out_raw`` /
      ``held_out_scaled``: coverage at 1 and 2 (scaled) spreads on the other half; ``held_out_scaled_per_answer``:
      the same for each answer alone ((37,) each; NaN where no galaxy of that half knows it).
    - ``median_spread``, ``median_error``: of the known pairs, in vote fractions; ``n`` galaxies, ``n_known``
      pairs."""
    value, spread, truth = (np.asarray(a, np.float64) for a in (value, spread, truth))
    mask = np.ones(value.shape, bool) if mask is None else np.asarray(mask, bool)
    err = np.abs(truth - value)
    base = np.sqrt(np.clip(value * (1 - value), 0, None))
    known = mask.any(1)
    with np.errstate(invalid="ignore", divide="ignore"):  # NaN for a galaxy without a known answer, left out
        g_err, g_spread, g_base = (np.sqrt((a ** 2 * mask).sum(1) / mask.sum(1)) for a in (err, spread, base))
    cols = [mask[:, j] for j in range(value.shape[1])]
    per_answer = np.array([spearman(spread[m, j], err[m, j]) for j, m in enumerate(cols)])
    per_value = np.array([spearman(base[m, j], err[m, j]) for j, m in enumerate(cols)])
    per_partial = np.array([partial_spearman(spread[m, j], err[m, j], base[m, j]) for j, m in enumerate(cols)])
    fit, check = halves(len(value), seed)
    scale = fit_scale(value[fit], spread[fit], truth[fit], mask[fit])

    def cov(rows: np.ndarray, c: float) -> dict[int, float]:
        return {k: coverage(value[rows], spread[rows], truth[rows], mask[rows], k, c) for k in (1, 2)}

    def cov_answer(j: int, k: int) -> float:
        m = mask[check, j]
        return coverage(value[check, j], spread[check, j], truth[check, j], m, k, scale) if m.any() else float("nan")

    return {"n": int(len(value)), "n_known": int(mask.sum()),
            "spearman": spearman(spread[mask], err[mask]),
            "spearman_galaxy": spearman(g_spread[known], g_err[known]),
            "spearman_value": spearman(base[mask], err[mask]),
            "spearman_partial": partial_spearman(spread[mask], err[mask], base[mask]),
            "spearman_galaxy_value": spearman(g_base[known], g_err[known]),
            "spearman_galaxy_partial": partial_spearman(g_spread[known], g_err[known], g_base[known]),
            "spearman_per_answer": per_answer, "spearman_per_answer_value": per_value,
            "spearman_per_answer_partial": per_partial,
            "raw": cov(np.arange(len(value)), 1.0), "scale": scale,
            "held_out_raw": cov(check, 1.0), "held_out_scaled": cov(check, scale),
            "held_out_scaled_per_answer": {k: np.array([cov_answer(j, k) for j in range(value.shape[1])])
                                           for k in (1, 2)},
            "median_spread": float(np.median(spread[mask])), "median_error": float(np.median(err[mask]))}


def error_by_spread(value: np.ndarray, spread: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None,
                    bins: int = 10) -> pd.DataFrame:
    """The known (galaxy, answer) pairs in ``bins`` equal-count bins of spread, smallest first: ``n``,
    ``spread`` (the bin's RMS spread) and ``rms_error`` (its RMS error against the volunteers), both in vote
    fractions. A calibrated spread has rms_error = spread in every bin; a meaningful but miscalibrated one at least
    grows with it. Fewer bins when there are fewer pairs than ``bins``."""
    err, s = _known(value, spread, truth, mask)
    order = np.argsort(s, kind="stable")
    parts = [p for p in np.array_split(order, min(bins, len(order))) if len(p)]
    return pd.DataFrame({"n": [len(p) for p in parts],
                         "spread": [float(np.sqrt(np.mean(s[p] ** 2))) for p in parts],
                         "rms_error": [float(np.sqrt(np.mean(err[p] ** 2))) for p in parts]})


def held_out_scale(value: np.ndarray, spread: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None,
                   seed: int = 0, what: str = "galaxies with volunteers' answers") -> Scale:
    """The factor c that makes ``spread`` cover 68.27 % of the volunteers' ``truth`` at ±1 c spread, fitted
    (:func:`fit_scale`) on a seeded half of the galaxies (:func:`halves`) and checked on the other: the numbers of
    :func:`calibration_report`, whose ``scale`` it is. Give it labelled galaxies the model never learnt from, all
    (N, 37) in vote fractions (``mask``: where the truth is known); ``what`` names them in ``Scale.why``.

    No factor (``Scale.factor`` None, with ``why``) for fewer than :data:`MIN_SCALE_GALAXIES` galaxies (read when
    called, so that a test can lower it), or when the fit is not a finite positive number: more than 31.73 % of the
    known answers have an error but a zero spread (c = inf), or more than 68.27 % are exact (c = 0)."""
    n, least = len(value), MIN_SCALE_GALAXIES
    if n < least:
        return Scale(None, why=f"{'no' if n == 0 else f'only {n:,}'} {what} to fit a scale on (at least {least:,} "
                               "needed)")
    with np.errstate(invalid="ignore"):  # c = inf times a zero spread: NaN, which covers nothing, as it should
        report = calibration_report(value, spread, truth, mask, seed)
    c = report["scale"]
    if not (math.isfinite(c) and c > 0):
        why = ("the spread is 0 where the volunteers disagree with the value" if c > 0 else
               "the values mostly equal the volunteers' exactly")
        return Scale(None, report=report, why=f"no factor fits: {why}")
    fit, check = halves(n, seed)
    return Scale(c, len(fit), len(check), dict(report["held_out_scaled"]), report)
