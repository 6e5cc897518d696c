"""Calibration of the merger fraction against the volunteers: the model and the volunteers on the same labelled
galaxies, which the model never learnt from (``evaluation.unseen_labelled``).

A model trained on vote fractions with a squared loss shrinks its predictions towards the population mean, so at
the volunteers' cut (Class8.6 > 0.5) it flags too few mergers. On enough labelled galaxies
(:func:`calibration_pairs`, :func:`calibration_shortfall`; never across synthetic and real galaxies,
:func:`synthetic_mismatch`) this module measures that: :func:`calibration_table`,
:func:`matching_threshold` (the threshold at which the model flags as many galaxies as the volunteers),
:func:`precision_recall`, :func:`reliability_curve` (on :data:`RELIABILITY_EDGES`, the bins the command line and
the dashboard share), :func:`calibrate`, and :func:`calibrated_fraction`, the fraction at the matching threshold
with an interval that includes the threshold's own uncertainty.

Units: predicted and volunteer Class8.6 are vote fractions in [0, 1], one per galaxy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from galaxy_core import tree
from galaxy_core.mergers.fraction import MERGER_COLUMN, FractionEstimate, as_probabilities, check_bootstrap

VOLUNTEER_MERGER = 0.5
"""The volunteers call a galaxy a merger when their Class8.6 is above this (the seed paper's cut)."""
MIN_CALIBRATION_GALAXIES = 50
"""The fewest galaxies with a known volunteer Class8.6 that :func:`calibration_pairs` calibrates on: the Evaluation
page's minimum (``evaluation.MIN_SCORED_GALAXIES``), so that both pages call the same sets too few. With the 1-3 %
of volunteer mergers in the Kaggle packs, :data:`MIN_CALIBRATION_MERGERS` usually binds first."""
MIN_CALIBRATION_MERGERS = 5
"""The fewest volunteer mergers (Class8.6 > :data:`VOLUNTEER_MERGER`) among them. Precision, recall and the matching
threshold (the k-th highest prediction) all rest on these k galaxies: at k = 5 the 95 % Wilson interval of a recall
of 3/5 is already 0.23-0.88, below 5 one galaxy moves recall by 25 points or more, and at k = 0 recall is undefined
and the threshold is just the highest prediction (the 424 px sample holds 30 galaxies the shipped model never
trained on, none a volunteer merger). Five is also the usual smallest count (n p >= 5) for which a binomial count is
treated as roughly normal."""
RELIABILITY_EDGES = (0.0, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0)
"""The bins of predicted Class8.6 that the reliability diagram of the command line and of the dashboard use. Uneven,
because Class8.6 is small for most galaxies: ten equal bins would put nearly all of them in the first."""


def _pair(p_pred, p_true) -> tuple[np.ndarray, np.ndarray]:
    a, b = as_probabilities(p_pred, "p_pred"), as_probabilities(p_true, "p_true")
    if a.shape != b.shape:
        raise ValueError(f"p_pred and p_true must be the same galaxies: lengths {len(a)} and {len(b)}")
    return a, b


def _thresholds(thresholds) -> np.ndarray:
    t = np.linspace(0.0, 1.0, 101) if thresholds is None else np.asarray(thresholds, dtype=np.float64).reshape(-1)
    if t.size == 0 or np.isnan(t).any():
        raise ValueError("thresholds must be a non-empty array without NaN")
    return t


def _frac_above(sorted_p: np.ndarray, t: np.ndarray) -> np.ndarray:
    # searchsorted 'right' counts values <= t, so what is left is the strict count p > t (divided last, so the
    # fraction is exactly k / n, as in fraction_above).
    return (len(sorted_p) - np.searchsorted(sorted_p, t, side="right")) / len(sorted_p)


# --------------------------------------------------------------------------------------------------------------------
# The galaxies that calibrate


@dataclass(frozen=True)
class CalibrationPairs:
    """The galaxies that calibrate the threshold: the model's and the volunteers' Class8.6 of each (equal-length
    float64 arrays), and whether they are the fallback's galaxies rather than the ones given."""

    p_pred: np.ndarray
    p_true: np.ndarray
    fallback: bool = False

    @property
    def pair(self) -> tuple[np.ndarray, np.ndarray]:
        """(p_pred, p_true), to pass on as ``calibrate(*pairs.pair)`` or
        ``compare.report(..., labelled=pairs.pair)``."""
        return self.p_pred, self.p_true


def _merger_values(a, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim == 2 and a.shape[1] == tree.N_ANSWERS:
        return a[:, tree.column_index(MERGER_COLUMN)]
    if a.ndim != 1:
        raise ValueError(f"{name} must be one Class8.6 per galaxy (N,) or all 37 answers (N, 37), got {a.shape}")
    return a


def calibration_counts(labels, mask, volunteer_threshold: float = VOLUNTEER_MERGER) -> tuple[int, int]:
    """(galaxies with a known volunteer Class8.6, volunteer mergers among them: Class8.6 > ``volunteer_threshold``).
    ``labels``, ``mask``: all 37 answers (N, 37) or the Class8.6 column alone (N,), as :func:`calibration_pairs`; a
    NaN label counts as unknown."""
    lab, ok = _merger_values(labels, "labels").astype(np.float64), _merger_values(mask, "mask").astype(bool)
    if len(lab) != len(ok):
        raise ValueError(f"labels and mask must be the same galaxies: lengths {len(lab)}, {len(ok)}")
    known = lab[ok & np.isfinite(lab)]
    return len(known), int((known > volunteer_threshold).sum())


def calibration_shortfall(n_galaxies: int, n_mergers: int, volunteer_threshold: float = VOLUNTEER_MERGER
                          ) -> str | None:
    """None when ``n_galaxies`` labelled galaxies with ``n_mergers`` volunteer mergers are enough to calibrate on
    (:data:`MIN_CALIBRATION_GALAXIES`, :data:`MIN_CALIBRATION_MERGERS`), else why not, e.g. "too few to calibrate:
    30 galaxies, 0 volunteer mergers (need at least 50 galaxies and 5 volunteer mergers, Class8.6 > 0.5)"."""
    if n_galaxies >= MIN_CALIBRATION_GALAXIES and n_mergers >= MIN_CALIBRATION_MERGERS:
        return None
    return (f"too few to calibrate: {n_galaxies:,} galaxies, {n_mergers:,} volunteer merger"
            f"{'' if n_mergers == 1 else 's'} (need at least {MIN_CALIBRATION_GALAXIES} galaxies and "
            f"{MIN_CALIBRATION_MERGERS} volunteer mergers, {MERGER_COLUMN} > {volunteer_threshold:g})")


def calibration_pairs(p_pred, labels, mask, fallback=None, volunteer_threshold: float = VOLUNTEER_MERGER
                      ) -> CalibrationPairs | None:
    """The (predicted, volunteer) Class8.6 pairs that calibrate the merger threshold, chosen by one rule.

    ``p_pred``: the model's answers for N galaxies; ``labels``, ``mask``: the volunteers' answers of the same
    galaxies and where they are known (a cache's ``labels[rows]``, ``mask[rows]``, or an evaluation's ``y_true``,
    ``mask``). Each is either all 37 answers, (N, 37), or the Class8.6 column alone, (N,). The caller chooses
    galaxies the model never learnt from (``evaluation.unseen_labelled``): on its training galaxies it looks better than
    it is.

    The rule: the galaxies given calibrate the threshold when at least :data:`MIN_CALIBRATION_GALAXIES` of them have
    a known volunteer Class8.6 and at least :data:`MIN_CALIBRATION_MERGERS` of those are volunteer mergers (above
    ``volunteer_threshold``), and only those take part. Otherwise the galaxies of ``fallback`` do, by the same
    test: ``fallback`` is a (p_pred, labels, mask) triple of other galaxies, or a function returning one, called
    only when it is needed. Returns None when neither has enough (:func:`calibration_shortfall` says why).
    """
    def known(pp, lab, m) -> tuple[np.ndarray, np.ndarray] | None:
        pp, lab = _merger_values(pp, "p_pred").astype(np.float64), _merger_values(lab, "labels").astype(np.float64)
        ok = _merger_values(m, "mask").astype(bool)
        if not len(pp) == len(lab) == len(ok):
            raise ValueError(f"p_pred, labels and mask must be the same galaxies: lengths {len(pp)}, {len(lab)}, "
                             f"{len(ok)}")
        ok &= np.isfinite(lab)
        short = calibration_shortfall(*calibration_counts(lab, ok, volunteer_threshold), volunteer_threshold)
        return (pp[ok], lab[ok]) if short is None else None

    own = known(p_pred, labels, mask)
    if own is not None:
        return CalibrationPairs(*own)
    if fallback is None:
        return None
    other = known(*(fallback() if callable(fallback) else fallback))
    return None if other is None else CalibrationPairs(*other, fallback=True)


def synthetic_mismatch(calibration_synthetic: bool, predicted_synthetic: bool,
                       where: str = "the calibration galaxies") -> str | None:
    """Why a threshold matched to the volunteers on ``where`` must not be applied to the predicted galaxies, or None
    when it may: the one rule for synthetic (the built-in demo's) and real galaxies that the ``mergers`` command
    and the Mergers page share. ``calibration_synthetic``: whether the galaxies calibrated on are synthetic;
    ``predicted_synthetic``: whether those the fraction is of are.

    Synthetic calibrating real, or real calibrating synthetic, is refused, not warned about: the demo's labels are
    made up, so the matched threshold and the calibrated fraction would be numbers without meaning, and a number
    shown beside a warning gets quoted anyway (a user read a 17 % merger fraction this way). The uncalibrated
    estimates do not depend on the calibration and stand. The sentence returned says what is refused and why; the
    caller adds what to do (the command line's ``--data``, the page's folder box)."""
    if bool(calibration_synthetic) == bool(predicted_synthetic):
        return None
    kinds = ("synthetic demo", "real") if calibration_synthetic else ("real", "synthetic demo")
    return (f"{where} are {kinds[0]} ones and the predicted galaxies {kinds[1]} ones: a threshold matched on one "
            f"says nothing about the other, so no calibration is made")


def calibration_on(p_pred, labels, mask, *, threshold: float = 0.5) -> dict:
    """The model's Class8.6 calibrated against the volunteers' on labelled galaxies it never learnt from, as the
    command line and the Mergers page report it (arguments as :func:`calibration_pairs`, without a fallback).

    Returns ``n`` and ``n_mergers`` (:func:`calibration_counts`), ``too_few`` (:func:`calibration_shortfall`: None
    when there are enough), and, when there are, ``pairs`` (:class:`CalibrationPairs`) and ``calibration``
    (:func:`calibrate`, a galaxy being a merger above ``threshold``); both None otherwise. Whether there are enough
    is counted with volunteer mergers above :data:`VOLUNTEER_MERGER`, whatever ``threshold``.
    """
    n, n_mergers = calibration_counts(labels, mask)
    pairs = calibration_pairs(p_pred, labels, mask)
    return {"n": n, "n_mergers": n_mergers, "too_few": calibration_shortfall(n, n_mergers), "pairs": pairs,
            "calibration": None if pairs is None else calibrate(*pairs.pair, volunteer_threshold=threshold)}


def calibration_table(p_pred, p_true, thresholds=None) -> pd.DataFrame:
    """For each threshold t, the fraction of galaxies the model flags (``p_pred > t``) and the fraction the
    volunteers flag (``p_true > t``), on the same labelled galaxies (e.g. a run's validation split).

    A model that shrinks towards the mean shows ``predicted_fraction`` below ``volunteer_fraction`` at high t.
    """
    a, b = _pair(p_pred, p_true)
    t = _thresholds(thresholds)
    return pd.DataFrame({"threshold": t, "predicted_fraction": _frac_above(np.sort(a), t),
                         "volunteer_fraction": _frac_above(np.sort(b), t)})


def matching_threshold(p_pred, p_true, volunteer_threshold: float = 0.5) -> float:
    """The threshold t on ``p_pred`` at which the model flags as many galaxies as the volunteers do at
    ``volunteer_threshold`` (``p_pred > t`` counted as ``p_true > volunteer_threshold``).

    Computed exactly from order statistics, not on a grid: with k galaxies flagged by volunteers and the predictions
    sorted in decreasing order s_1 >= s_2 >= ..., every t in [s_(k+1), s_k) flags exactly k; the midpoint is
    returned. When s_k = s_(k+1) (a tie at the boundary) no threshold flags exactly k and the returned t flags fewer.
    k = 0 returns max(p_pred) (nothing is flagged); k = n returns the float just below min(p_pred). Apply the result
    to unlabelled galaxies with :func:`~galaxy_core.mergers.fraction.fraction_above` to get a fraction calibrated to
    the volunteers' count.
    """
    a, b = _pair(p_pred, p_true)
    n, k = len(a), int((b > volunteer_threshold).sum())
    s = np.sort(a)[::-1]
    if k == 0:
        return float(s[0])
    if k == n:
        return float(np.nextafter(s[-1], -np.inf))
    return float((s[k - 1] + s[k]) / 2)


def precision_recall(p_pred, p_true, threshold: float = 0.5, volunteer_threshold: float = 0.5) -> dict:
    """Precision and recall of the model's mergers (``p_pred > threshold``) against the volunteers' (``p_true >
    volunteer_threshold``).

    Returns ``precision`` = tp / (tp + fp), ``recall`` = tp / (tp + fn), ``f1`` (their harmonic mean), the counts
    ``tp``, ``fp``, ``fn``, ``tn``, ``n_true`` (volunteer mergers), ``n_pred`` (model mergers) and ``n``. Precision is
    NaN when the model flags nothing, recall NaN when the volunteers flag nothing, and f1 NaN when either is; f1 is 0
    when both are defined and tp = 0.
    """
    a, b = _pair(p_pred, p_true)
    pred, true = a > threshold, b > volunteer_threshold
    tp, fp = int((pred & true).sum()), int((pred & ~true).sum())
    fn, tn = int((~pred & true).sum()), int((~pred & ~true).sum())
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    if math.isnan(precision) or math.isnan(recall):
        f1 = float("nan")
    else:
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": fp, "fn": fn, "tn": tn,
            "n_true": tp + fn, "n_pred": tp + fp, "n": len(a), "threshold": float(threshold),
            "volunteer_threshold": float(volunteer_threshold)}


def reliability_curve(p_pred, p_true, bins=10) -> pd.DataFrame:
    """A reliability diagram: galaxies binned by ``p_pred``; per bin the mean prediction and the volunteers' mean.

    ``bins``: a number of equal-width bins on [0, 1] (a prediction of exactly 1 goes in the last bin), or an
    increasing sequence of bin edges (values outside the edges are left out). In a calibrated model
    ``mean_volunteer`` is close to ``mean_predicted`` in every bin; below it means the model is under-confident
    there. Columns ``bin_lo``, ``bin_hi``, ``mean_predicted``, ``mean_volunteer``, ``n``; empty bins have n = 0 and
    NaN means. Class8.6 is small for most galaxies, so uneven edges such as ``[0, 0.02, 0.05, 0.1, 0.2, 0.5, 1]``
    often read better than ten equal bins.
    """
    a, b = _pair(p_pred, p_true)
    if np.ndim(bins) == 0:
        if int(bins) < 1:
            raise ValueError(f"bins must be at least 1, got {bins}")
        edges = np.linspace(0.0, 1.0, int(bins) + 1)
    else:
        edges = np.asarray(bins, dtype=np.float64)
        if edges.ndim != 1 or len(edges) < 2 or not (np.diff(edges) > 0).all():
            raise ValueError("bin edges must be an increasing sequence of at least two values")
    nb = len(edges) - 1
    idx = np.searchsorted(edges, a, side="right") - 1
    idx[a == edges[-1]] = nb - 1  # the last edge belongs to the last bin
    keep = (idx >= 0) & (idx < nb)
    n = np.bincount(idx[keep], minlength=nb)
    sp = np.bincount(idx[keep], weights=a[keep], minlength=nb)
    st = np.bincount(idx[keep], weights=b[keep], minlength=nb)
    with np.errstate(invalid="ignore", divide="ignore"):
        mp, mt = np.where(n > 0, sp / n, np.nan), np.where(n > 0, st / n, np.nan)
    return pd.DataFrame({"bin_lo": edges[:-1], "bin_hi": edges[1:], "mean_predicted": mp, "mean_volunteer": mt,
                         "n": n})


def calibrated_fraction(p, p_pred_val, p_true_val, volunteer_threshold: float = 0.5, *, n_boot: int = 2000,
                        seed: int = 0, level: float = 0.95) -> FractionEstimate:
    """The merger fraction of ``p`` at the threshold calibrated on labelled galaxies (:func:`matching_threshold`),
    with an interval that includes the calibration's own uncertainty.

    Each bootstrap replicate resamples the labelled pairs (``p_pred_val``, ``p_true_val``), finds their matching
    threshold, counts the k galaxies of ``p`` above it, and draws the fraction from the Jeffreys posterior
    Beta(k + 1/2, n - k + 1/2) of a binomial proportion (Brown, Cai & DasGupta 2001, Stat. Sci. 16, 101). A binomial
    redraw of k/n, which is what resampling galaxies gives, would collapse to zero width at k = 0; the Jeffreys
    draw keeps a non-zero upper limit there, like :func:`~galaxy_core.mergers.fraction.wilson_interval`. With ten or
    so volunteer mergers in a validation split, the threshold's scatter dominates the interval;
    :func:`~galaxy_core.mergers.fraction.fraction_above` at a fixed threshold would hide it.

    Returns a :class:`~galaxy_core.mergers.fraction.FractionEstimate` with ``method`` "calibrated", ``interval``
    "bootstrap + Jeffreys", ``threshold`` the matching threshold of the full labelled set, ``n_flagged`` the
    galaxies of ``p`` above it, and ``threshold_lo``/``threshold_hi`` the threshold's own interval (no Wilson or
    plain bootstrap interval: None).
    """
    check_bootstrap(n_boot, level)
    x = np.sort(as_probabilities(p))
    a, b = _pair(p_pred_val, p_true_val)
    t = matching_threshold(a, b, volunteer_threshold)
    rng = np.random.default_rng(seed)
    ts = np.array([matching_threshold(a[i], b[i], volunteer_threshold)
                   for i in rng.integers(0, len(a), size=(n_boot, len(a)))])
    n = len(x)
    k_boot = np.round(_frac_above(x, ts) * n)
    fracs = rng.beta(k_boot + 0.5, n - k_boot + 0.5)
    q = [(1 - level) / 2, (1 + level) / 2]
    lo, hi = np.quantile(fracs, q)
    t_lo, t_hi = np.quantile(ts, q)
    k = int((x > t).sum())
    return FractionEstimate(fraction=k / n, lo=float(lo), hi=float(hi), interval="bootstrap + Jeffreys", n=n,
                            n_flagged=k, threshold=t, threshold_lo=float(t_lo), threshold_hi=float(t_hi),
                            level=level, n_boot=n_boot, method="calibrated")


def calibrate(p_pred_val, p_true_val, volunteer_threshold: float = 0.5) -> dict:
    """How the model's merger count compares with the volunteers' on labelled galaxies (a validation split).

    Returns ``n``; ``volunteer_threshold``; ``volunteer_fraction`` and ``predicted_fraction`` (the volunteers' and
    the model's fractions above ``volunteer_threshold``, 0.5 by default); ``matching_threshold``
    (:func:`matching_threshold`) and ``predicted_fraction_matched`` (the model's fraction at it); ``mean_predicted``
    and ``mean_volunteer``; ``precision``, ``recall``, ``f1``, ``tp``, ``fp``, ``fn`` with the model thresholded at
    ``volunteer_threshold`` too; and ``precision_matched``, ``recall_matched`` at the matching threshold. All plain
    floats and ints, ready for JSON.
    """
    a, b = _pair(p_pred_val, p_true_val)
    t = matching_threshold(a, b, volunteer_threshold)
    pr = precision_recall(a, b, volunteer_threshold, volunteer_threshold)
    pm = precision_recall(a, b, t, volunteer_threshold)
    return {"n": len(a), "volunteer_threshold": float(volunteer_threshold),
            "volunteer_fraction": float((b > volunteer_threshold).mean()),
            "predicted_fraction": float((a > volunteer_threshold).mean()),
            "matching_threshold": t, "predicted_fraction_matched": float((a > t).mean()),
            "mean_predicted": float(a.mean()), "mean_volunteer": float(b.mean()),
            **{k: pr[k] for k in ("precision", "recall", "f1", "tp", "fp", "fn")},
            "precision_matched": pm["precision"], "recall_matched": pm["recall"]}


