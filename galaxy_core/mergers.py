"""The merger fraction: how many galaxies a model calls mergers, with honest error bars, checked against volunteers,
against theory and against non-parametric morphology.

The seed paper ran its model on the Kaggle test images, called a galaxy a merger when the predicted ``Class8.6``
(``odd_feature--merger``) exceeded 0.5, found 0.033, and compared that with "a z=0 merger rate of about 0.05" from
Lotz et al. (2011). A rate (per galaxy per Gyr) is not a fraction: the fraction of galaxies *seen* merging is the
rate times the time a merger stays visible, f = R x T_obs. This module does the comparison properly:

* estimates of the fraction with confidence intervals: the thresholded count (:func:`fraction_above`, bootstrap and
  Wilson 1927 intervals) and the mean predicted vote fraction (:func:`mean_probability`);
* calibration on labelled galaxies (model vs volunteers on the same images, e.g. a run's validation split):
  :func:`calibration_table`, :func:`matching_threshold`, :func:`precision_recall`, :func:`reliability_curve`,
  :func:`calibrate`;
* the conversion to theory, :func:`expected_fraction` and :func:`compare_with_theory`, with a small table of
  literature values, :data:`LITERATURE`;
* an independent, model-free check with non-parametric morphology (Gini, M20, asymmetry; Lotz, Primack & Madau 2004;
  Conselice 2003) measured on the images: :func:`morphology_table`. On stretched 8-bit colour JPEGs these are
  *approximate*; see the notes in :func:`morphology_table`.

Units throughout: fractions and vote fractions are in [0, 1]; rates are per galaxy per Gyr; timescales are in Gyr;
image coordinates are pixels. ``Class8.6`` is a *cumulative* Kaggle vote fraction, P(odd) x P(merger | odd)
(:mod:`galaxy_core.tree`), so it is small for most galaxies even when volunteers agree that something is odd.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd

from . import data, tree

MERGER_COLUMN = "Class8.6"
"""The Kaggle column of the merger answer, ``odd_feature--merger`` (cumulative: P(odd) x P(merger | odd))."""

DEFAULT_RATE_PER_GYR = 0.05
"""The z~0 merger rate as the seed paper quoted Lotz et al. (2011), per galaxy per Gyr (see :data:`LITERATURE`)."""
MORPHOLOGY_TIMESCALE_GYR = 0.3
"""Default observability timescale of Gini-M20 and asymmetry mergers, Gyr (about 0.2-0.4; Lotz et al. 2008, 2010)."""
PAIR_TIMESCALE_GYR = 1.0
"""Default observability timescale of close pairs, Gyr (about 1 Gyr or more; Lotz et al. 2011)."""

GM20_SLOPE, GM20_INTERCEPT = -0.14, 0.33
"""Lotz et al. (2008, ApJ 672, 177) merger line: a merger has G > -0.14 M20 + 0.33."""
ASYMMETRY_MERGER = 0.35
"""Conselice (2003, ApJS 147, 1) merger criterion: A > 0.35."""

_PROB_TOLERANCE = 1e-6


# --------------------------------------------------------------------------------------------------------------------
# Literature


@dataclass(frozen=True)
class LiteratureValue:
    """One number from the literature, with where it comes from and what to be careful of.

    ``value`` is a float, a ``(low, high)`` range, or None where the paper gives no single number that can be
    quoted without its context (read ``note``). Every value here is approximate.
    """

    name: str
    value: float | tuple[float, float] | None
    units: str
    reference: str
    note: str


LITERATURE: tuple[LiteratureValue, ...] = (
    LiteratureValue(
        "galaxy merger rate at z~0 (as quoted by the seed paper)", 0.05, "per galaxy per Gyr",
        "Lotz et al. 2011, ApJ 742, 103",
        "This is how the seed paper quoted Lotz et al. (2011): 'a z=0 merger rate of about 0.05'. It is a rate, not "
        "a fraction. The rate depends on the mass ratio counted (major or minor mergers), the stellar-mass range and "
        "how mergers are selected (close pairs or disturbed morphology); treat 0.05 as an order of magnitude."),
    LiteratureValue(
        "observability timescale, Gini-M20", (0.2, 0.4), "Gyr",
        "Lotz et al. 2008, MNRAS 391, 1137; Lotz et al. 2010a,b, MNRAS 404, 575 and 590; summarised in Lotz et al. "
        "2011, ApJ 742, 103",
        "How long a simulated merger stays above the Gini-M20 merger line: about 0.2-0.4 Gyr. This module's default "
        "morphological timescale is 0.3 Gyr."),
    LiteratureValue(
        "observability timescale, asymmetry", (0.2, 0.4), "Gyr",
        "Lotz et al. 2008, MNRAS 391, 1137; Lotz et al. 2010a,b, MNRAS 404, 575 and 590; summarised in Lotz et al. "
        "2011, ApJ 742, 103",
        "About 0.2-0.4 Gyr for gas-poor to moderately gas-rich major mergers; shorter for minor mergers and longer for "
        "very gas-rich ones (Lotz et al. 2010a,b)."),
    LiteratureValue(
        "observability timescale, close pairs", 1.0, "Gyr",
        "Lotz et al. 2011, ApJ 742, 103 (from the simulations of Lotz et al. 2008, 2010a,b)",
        "About 1 Gyr or more, growing with the maximum projected separation of the pair selection. This module's "
        "default pair timescale is 1.0 Gyr."),
    LiteratureValue(
        "major-merger rate at z~0, Illustris", None, "per galaxy per Gyr",
        "Rodriguez-Gomez et al. 2015, MNRAS 449, 49",
        "Approximate: major mergers (stellar mass ratio above 1/4) at a few hundredths per galaxy per Gyr at z~0 for "
        "stellar masses of about 1e10-1e11 Msun. The paper gives a fitting formula in mass, mass ratio and redshift; "
        "read it there rather than quoting one number."),
    LiteratureValue(
        "fraction of Galaxy Zoo 1 galaxies that are merging", (0.01, 0.03), "fraction of galaxies",
        "Darg et al. 2010, MNRAS 401, 1043",
        "1-3 % of Galaxy Zoo 1 galaxies are merging (volunteer merger votes, SDSS, 0.005 < z < 0.1), about 1.5 times "
        "more after correcting for incompleteness. A fraction, directly comparable with this module's estimates, "
        "though the Galaxy Zoo 1 merger question and selection differ from the GZ2 Class8.6 answer."),
)
"""Literature values for the theory comparison; every one is approximate (see each ``note``)."""


def literature_table() -> pd.DataFrame:
    """:data:`LITERATURE` as a frame (value ranges written ``low-high``), for display."""
    rows = []
    for v in LITERATURE:
        r = asdict(v)
        val = v.value
        r["value"] = "-" if val is None else (f"{val[0]:g}-{val[1]:g}" if isinstance(val, tuple) else f"{val:g}")
        rows.append(r)
    return pd.DataFrame(rows, columns=["name", "value", "units", "reference", "note"])


# --------------------------------------------------------------------------------------------------------------------
# Input checks


def _probabilities(p, name: str = "p") -> np.ndarray:
    """``p`` as a 1-D float64 array of values in [0, 1]; ValueError when empty, not 1-D, NaN or out of range."""
    a = np.asarray(p, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of probabilities, got shape {np.shape(p)}")
    if a.size == 0:
        raise ValueError(f"{name} is empty: no galaxies to count")
    bad = np.isnan(a)
    if bad.any():
        raise ValueError(f"{name} has {int(bad.sum())} NaN value(s) (first at index {int(np.flatnonzero(bad)[0])}); "
                         f"drop or fill them first")
    out = (a < -_PROB_TOLERANCE) | (a > 1 + _PROB_TOLERANCE)
    if out.any():
        i = int(np.flatnonzero(out)[0])
        raise ValueError(f"{name} must lie in [0, 1]: {int(out.sum())} value(s) outside, e.g. {a[i]} at index {i}")
    return a


def _pair(p_pred, p_true) -> tuple[np.ndarray, np.ndarray]:
    a, b = _probabilities(p_pred, "p_pred"), _probabilities(p_true, "p_true")
    if a.shape != b.shape:
        raise ValueError(f"p_pred and p_true must be the same galaxies: lengths {len(a)} and {len(b)}")
    return a, b


def _check_boot(n_boot: int, level: float) -> None:
    if int(n_boot) < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")


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
# The fraction and its uncertainty


def wilson_interval(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson (1927, JASA 22, 209) score interval for a binomial proportion k/n at confidence ``level``.

    Unlike the normal-approximation (Wald) interval it stays inside [0, 1] and does not collapse to zero width when
    k = 0 or k = n, which matters for rare classes such as mergers.
    """
    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n > 0, got k={k}, n={n}")
    z = NormalDist().inv_cdf(0.5 + level / 2)
    f = k / n
    denom = 1 + z * z / n
    centre = (f + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(f * (1 - f) / n + z * z / (4 * n * n))
    # At k = 0 (k = n) the lower (upper) limit is exactly 0 (1); computed, it is off by a rounding error.
    return (0.0 if k == 0 else centre - half), (1.0 if k == n else centre + half)


def fraction_above(p, threshold: float = 0.5, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> dict:
    """The fraction of galaxies with ``p > threshold`` (strictly: a galaxy exactly at the threshold is not counted),
    with the analytic Wilson (1927) score interval and, beside it, a percentile bootstrap interval (Efron 1979).

    ``p``: predicted (or volunteer) vote fractions in [0, 1], one per galaxy. The interval reported as ``lo``/``hi``
    is Wilson's: it is right in the small-number limit, where the bootstrap's is not (with k = 0 flagged galaxies
    every resample has none too, and the bootstrap interval collapses to [0, 0]). Resampling n galaxies with
    replacement from a sample with k flagged ones gives a flagged count that is exactly Binomial(n, k/n), so the
    bootstrap draws that count directly, in O(n_boot) time; once k is more than a handful the two intervals agree.

    Returns ``fraction``, ``lo``, ``hi`` (Wilson, also as ``wilson_lo``, ``wilson_hi``), ``interval`` (its name, for
    display), ``boot_lo``, ``boot_hi`` (bootstrap), ``n``, ``n_flagged``, ``threshold``, ``level``, ``n_boot``,
    ``method`` = ``"threshold"``. Raises ValueError for empty input, NaN or values outside [0, 1].
    """
    p = _probabilities(p)
    _check_boot(n_boot, level)
    n, k = len(p), int((p > threshold).sum())
    rng = np.random.default_rng(seed)
    boot = rng.binomial(n, k / n, size=int(n_boot)) / n
    a = (1 - level) / 2
    lo, hi = np.quantile(boot, [a, 1 - a])
    wlo, whi = wilson_interval(k, n, level)
    return {"fraction": k / n, "lo": wlo, "hi": whi, "interval": "Wilson", "wilson_lo": wlo, "wilson_hi": whi,
            "boot_lo": float(lo), "boot_hi": float(hi), "n": n, "n_flagged": k, "threshold": float(threshold),
            "level": level, "n_boot": int(n_boot), "method": "threshold"}


def mean_probability(p, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> dict:
    """The probabilistic merger fraction: the mean of ``p`` over the galaxies, with a percentile bootstrap interval.

    Why it is less biased than thresholding. A model trained on vote fractions with a squared loss predicts the
    expected vote fraction given the image, and when it is uncertain that expectation is pulled towards the
    population mean (a few per cent for Class8.6). Thresholding such shrunk predictions at 0.5 under-counts a rare
    class: galaxies that volunteers would put above 0.5 come out at 0.3 and are not counted, and nothing makes up for
    them. The mean is not hurt by the shrinkage: if the model is calibrated (among galaxies predicted p, the
    volunteers' mean is p; see :func:`reliability_curve`), the mean prediction equals the volunteers' mean vote
    fraction on average. Note that it estimates a different quantity from :func:`fraction_above`: the expected
    fraction if each galaxy is a merger with probability equal to its vote fraction, not the fraction of galaxies
    with a volunteer majority.

    Returns the keys of :func:`fraction_above`, with ``method`` = ``"mean"``, ``expected_count`` = sum(p) and
    ``threshold``, ``n_flagged``, ``wilson_lo``, ``wilson_hi`` set to None (they do not apply). A constant input gives
    a zero-width interval. Raises ValueError for empty input, NaN or values outside [0, 1].
    """
    p = _probabilities(p)
    _check_boot(n_boot, level)
    n, n_boot = len(p), int(n_boot)
    rng = np.random.default_rng(seed)
    # Resample in blocks of about 4 million draws so 20,000 galaxies x 2,000 resamples stays within ~100 MB.
    block = max(1, 4_000_000 // n)
    boot = np.concatenate([p[rng.integers(0, n, size=(min(block, n_boot - s), n))].mean(axis=1)
                           for s in range(0, n_boot, block)])
    a = (1 - level) / 2
    lo, hi = np.quantile(boot, [a, 1 - a])
    return {"fraction": float(p.mean()), "lo": float(lo), "hi": float(hi), "interval": "bootstrap",
            "wilson_lo": None, "wilson_hi": None, "boot_lo": float(lo), "boot_hi": float(hi), "n": n,
            "n_flagged": None, "expected_count": float(p.sum()), "threshold": None, "level": level,
            "n_boot": n_boot, "method": "mean"}


def fraction_curve(p, thresholds=None) -> pd.DataFrame:
    """The fraction of galaxies with ``p > t`` for each threshold t (default 0, 0.01, ..., 1): columns ``threshold``
    and ``fraction``, for a slider or a plot. Strict >, as in :func:`fraction_above`."""
    s = np.sort(_probabilities(p))
    t = _thresholds(thresholds)
    return pd.DataFrame({"threshold": t, "fraction": _frac_above(s, t)})


# --------------------------------------------------------------------------------------------------------------------
# Calibration against volunteers


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
    to unlabelled galaxies with :func:`fraction_above` to get a fraction calibrated to the volunteers' count.
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


def calibrated_fraction(p, p_pred_val, p_true_val, volunteer_threshold: float = 0.5, n_boot: int = 2000,
                        seed: int = 0, level: float = 0.95) -> dict:
    """The merger fraction of ``p`` at the threshold calibrated on labelled galaxies (:func:`matching_threshold`),
    with an interval that includes the calibration's own uncertainty.

    Each bootstrap replicate resamples the labelled pairs (``p_pred_val``, ``p_true_val``), finds their matching
    threshold, counts the k galaxies of ``p`` above it, and draws the fraction from the Jeffreys posterior
    Beta(k + 1/2, n - k + 1/2) of a binomial proportion (Brown, Cai & DasGupta 2001, Stat. Sci. 16, 101). A binomial
    redraw of k/n, which is what resampling galaxies gives, would collapse to zero width at k = 0; the Jeffreys
    draw keeps a non-zero upper limit there, like :func:`wilson_interval`. With ten or so volunteer mergers in a
    validation split, the threshold's scatter dominates the interval; :func:`fraction_above` at a fixed threshold
    would hide it.

    Returns the keys of :func:`fraction_above` (``method`` "calibrated", ``interval`` "bootstrap + Jeffreys",
    ``threshold`` the matching threshold of the full labelled set) plus ``threshold_lo``/``threshold_hi``, the
    threshold's own interval.
    """
    _check_boot(n_boot, level)
    x = np.sort(_probabilities(p))
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
    return {"fraction": k / n, "lo": float(lo), "hi": float(hi), "interval": "bootstrap + Jeffreys", "n": n,
            "n_flagged": k, "threshold": t,
            "threshold_lo": float(t_lo), "threshold_hi": float(t_hi), "level": level, "n_boot": n_boot,
            "method": "calibrated"}


def calibrate(p_pred_val, p_true_val, volunteer_threshold: float = 0.5) -> dict:
    """How the model's merger count compares with the volunteers' on labelled galaxies (a validation split).

    Returns ``n``; ``volunteer_fraction`` and ``predicted_fraction`` (the fractions above 0.5, or
    ``volunteer_threshold``); ``matching_threshold`` (:func:`matching_threshold`) and ``predicted_fraction_matched``
    (the model's fraction at it); ``mean_predicted`` and ``mean_volunteer``; ``precision``, ``recall``, ``f1``,
    ``tp``, ``fp``, ``fn`` at 0.5; and ``precision_matched``, ``recall_matched`` at the matching threshold. All plain
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


# --------------------------------------------------------------------------------------------------------------------
# Theory


def expected_fraction(rate_per_gyr: float, timescale_gyr: float) -> float:
    """The fraction of galaxies expected to be *seen* merging: f = R x T_obs.

    ``rate_per_gyr`` R: mergers per galaxy per Gyr; ``timescale_gyr`` T_obs: how long a merger stays detectable by
    the method used (Gyr; about 0.2-0.4 for Gini-M20 and asymmetry, about 1 or more for close pairs; Lotz et al.
    2008, 2010a,b, 2011). This is the relation Lotz et al. (2011) invert to turn observed fractions into rates. It
    holds while R x T << 1 (a galaxy rarely has two visible mergers at once); above about 0.1 it over-estimates.
    Conventions (per galaxy or per merger; a pair counts both members) differ by factors of order 2, so compare
    like with like. Raises ValueError for negative or non-finite inputs.
    """
    r, t = float(rate_per_gyr), float(timescale_gyr)
    if not (math.isfinite(r) and math.isfinite(t)) or r < 0 or t < 0:
        raise ValueError(f"rate and timescale must be finite and non-negative, got {rate_per_gyr} per Gyr and "
                         f"{timescale_gyr} Gyr")
    return r * t


def compare_with_theory(fraction_result: dict, rate_per_gyr: float = DEFAULT_RATE_PER_GYR,
                        timescale_gyr: float = MORPHOLOGY_TIMESCALE_GYR) -> dict:
    """An observed fraction (a result of :func:`fraction_above` or :func:`mean_probability`) against f = R x T.

    Returns ``observed``, ``lo``, ``hi``, ``level``, ``method``; ``rate_per_gyr``, ``timescale_gyr``, ``expected``
    (:func:`expected_fraction`); ``ratio`` = observed / expected (inf when expected is 0 and observed is not, NaN
    when both are); ``inside``: whether the expectation lies in [lo, hi]; ``implied_rate_per_gyr`` (with
    ``implied_rate_lo``/``_hi``): the rate the observation implies for this timescale, observed / T; and ``text``,
    the conversion written out for display. The comparison carries the uncertainty of R and T (factors of ~2, see
    :data:`LITERATURE`), which the interval does not include.
    """
    f, lo, hi = (float(fraction_result[k]) for k in ("fraction", "lo", "hi"))
    expected = expected_fraction(rate_per_gyr, timescale_gyr)
    if expected > 0:
        ratio = f / expected
    else:
        ratio = float("inf") if f > 0 else float("nan")
    inside = bool(lo <= expected <= hi)
    t = float(timescale_gyr)
    implied = [x / t if t > 0 else float("nan") for x in (f, lo, hi)]
    level = fraction_result.get("level", 0.95)
    how = (f"p > {fraction_result['threshold']:g}" if fraction_result.get("method") == "threshold"
           else "mean predicted probability")
    interval = fraction_result.get("interval", "bootstrap")
    text = (f"f = R x T = {rate_per_gyr:g} per galaxy per Gyr x {timescale_gyr:g} Gyr = {expected:.4g} "
            f"({expected:.2%} of galaxies seen merging). Observed ({how}): {f:.4f} ({level:.0%} {interval} interval "
            f"{lo:.4f}-{hi:.4f})"
            f", {ratio:.2g} times the expectation, which lies {'inside' if inside else 'outside'} the interval.")
    if t > 0:
        text += f" With T = {t:g} Gyr the observed fraction implies R = {implied[0]:.3g} per galaxy per Gyr."
    if expected > 0.1:
        text += " R x T is not << 1, so f = R x T over-estimates."
    return {"observed": f, "lo": lo, "hi": hi, "level": level, "method": fraction_result.get("method"),
            "rate_per_gyr": float(rate_per_gyr), "timescale_gyr": t, "expected": expected, "ratio": ratio,
            "inside": inside, "implied_rate_per_gyr": implied[0], "implied_rate_lo": implied[1],
            "implied_rate_hi": implied[2], "text": text}


# --------------------------------------------------------------------------------------------------------------------
# Non-parametric morphology
#
# Batched over (B, S, S) arrays so that tens of thousands of small cutouts take seconds; the scalar functions call the
# same code with a batch of one.


def _gini_rows(v: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Gini of each row of ``v`` (B, P) >= 0, whose selected pixels number ``n`` (B,) and whose other entries are 0.

    After an ascending sort the zeros sit first, so the selected pixel at overall position j has rank
    i = j - (P - n) within its selection; zero-valued selected pixels add nothing wherever they fall.
    """
    v = np.sort(v, axis=1)
    p = v.shape[1]
    total = v.sum(axis=1)
    weighted = v @ np.arange(1, p + 1, dtype=np.float64)
    num = 2 * weighted - (2 * (p - n) + n + 1) * total
    with np.errstate(invalid="ignore", divide="ignore"):
        g = num / (total * (n - 1))
    g[(n < 2) | (total <= 0)] = np.nan
    return g


def gini(values) -> float:
    """The Gini coefficient of pixel values (Lotz, Primack & Madau 2004, AJ 128, 163; after Glasser 1962)::

        G = 1 / (mean(|X|) n (n - 1)) * sum_i (2 i - n - 1) |X_i|,   X sorted by |X| ascending, i = 1..n

    0 when every pixel holds the same flux; 1 when all the flux is in one pixel, for any n (the n - 1 in the
    denominator is Glasser's correction that makes the maximum exactly 1); 1/3 for the values 1, 2, ..., n.
    Unchanged when all values are multiplied by a constant. Pass the pixels of the segmentation
    (``image[mask]``), sky-subtracted. Raises ValueError for fewer than 2 values, NaN, or zero total flux.
    """
    v = np.abs(np.asarray(values, dtype=np.float64).reshape(-1))
    if v.size < 2:
        raise ValueError(f"Gini needs at least 2 values, got {v.size}")
    if np.isnan(v).any():
        raise ValueError("Gini of values with NaN is undefined; mask them out first")
    if v.sum() <= 0:
        raise ValueError("Gini of values that are all 0 is undefined")
    return float(_gini_rows(v[None, :], np.array([v.size]))[0])


def _centroids(f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flux-weighted centroid (y, x) in pixels of each (S, S) image of ``f`` >= 0 (NaN where the flux is 0)."""
    s = f.shape[-1]
    grid = np.arange(s, dtype=np.float64)
    tot = f.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (f.sum(axis=2) @ grid) / tot, (f.sum(axis=1) @ grid) / tot


def _m20_batch(f: np.ndarray, yc: np.ndarray, xc: np.ndarray) -> np.ndarray:
    """M20 of each (S, S) image of ``f`` >= 0 (0 outside the segmentation) about centres (yc, xc)."""
    b, s, _ = f.shape
    grid = np.arange(s, dtype=np.float64)
    r2 = (grid[None, :, None] - yc[:, None, None]) ** 2 + (grid[None, None, :] - xc[:, None, None]) ** 2
    f, r2 = f.reshape(b, -1), r2.reshape(b, -1)
    mtot = (f * r2).sum(axis=1)
    fs = np.sort(f, axis=1)[:, ::-1]
    total = fs.sum(axis=1)
    target = 0.2 * total
    before = np.cumsum(fs, axis=1) - fs
    # The pixel value at which the running sum (brightest first) reaches 20 %: pixels above it count whole, and the
    # pixels equal to it share what is left of the 20 % equally. So the flux counted is exactly 20 % however many
    # pixels tie at the boundary (symmetric images have rings of equal pixels), without an argsort.
    k = np.maximum((before < target[:, None]).sum(axis=1) - 1, 0)
    cut = fs[np.arange(b), k]
    above = f > cut[:, None]
    tied = (f == cut[:, None]) & (f > 0)
    rest = target - (f * above).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.clip(rest / (cut * tied.sum(axis=1)), 0.0, 1.0)
    share = np.nan_to_num(share)
    num = (f * r2 * above).sum(axis=1) + share * (f * r2 * tied).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.log10(num / mtot)
    out[~(mtot > 0)] = np.nan
    return out


def m20(image, mask=None) -> float:
    """M20 (Lotz, Primack & Madau 2004, AJ 128, 163): the second-order moment of the brightest 20 % of the
    flux, normalised by the total second-order moment, as log10.

    M_tot = sum_i f_i r_i^2 about the centre that minimises it, which is the flux-weighted centroid; the brightest
    pixels are summed in decreasing order until their flux is exactly 20 % of the total, the pixel(s) at the boundary
    counted in part (Lotz et al. stop at the last whole pixel below 20 %, statmorph at the first above; the three
    differ by less than one pixel's flux, but only this one is exact for images with rings of equal pixels).
    Dimensionless; about -2 to -2.5 for concentrated galaxies, above about -1 for double nuclei. A 2-D Gaussian gives
    log10(1 - 0.8 (1 + ln 1.25)) = -1.668 whatever its width; two equal, well separated blobs tend to
    log10(0.2) = -0.70.

    ``image``: (S, S) sky-subtracted flux; ``mask``: (S, S) bool segmentation (None: every pixel). Negative pixels
    (sky noise) are set to 0. Returns NaN when the segmentation holds no positive flux, -inf when the brightest 20 %
    lies entirely in a pixel at the centroid. Raises ValueError for NaN in the image or mismatched shapes.
    """
    x, m = _image_and_mask(image, mask)
    f = np.where(m, np.clip(x, 0, None), 0.0)[None]
    yc, xc = _centroids(f)
    return float(_m20_batch(f, yc, xc)[0])


def _asymmetry_batch(x: np.ndarray, m: np.ndarray, cy2: np.ndarray, cx2: np.ndarray,
                     background: np.ndarray) -> np.ndarray:
    """Rotational asymmetry of each (S, S) image of ``x`` over ``m`` | its rotation, about centres at half-pixel
    positions (``cy2``, ``cx2`` are twice the centre, integers), minus ``background`` x pixels / flux."""
    b, s, _ = x.shape
    grid = np.arange(s)
    iy, ix = cy2[:, None] - grid[None, :], cx2[:, None] - grid[None, :]
    vy, vx = (iy >= 0) & (iy < s), (ix >= 0) & (ix < s)
    iy, ix = np.clip(iy, 0, s - 1), np.clip(ix, 0, s - 1)
    bi = np.arange(b)[:, None, None]
    valid = vy[:, :, None] & vx[:, None, :]
    # Pixels rotated in from outside the image count as sky (0 after sky subtraction).
    rot = np.where(valid, x[bi, iy[:, :, None], ix[:, None, :]], 0.0)
    region = m | (m[bi, iy[:, :, None], ix[:, None, :]] & valid)
    num = (np.abs(x - rot) * region).sum(axis=(1, 2))
    den = (np.abs(x) * region).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        a = (num - background * region.sum(axis=(1, 2))) / den
    a[~(den > 0)] = np.nan
    return a


def _half_pixel_centres(f: np.ndarray, center: str) -> tuple[np.ndarray, np.ndarray]:
    b, s, _ = f.shape
    if center == "image":
        return np.full(b, s - 1), np.full(b, s - 1)
    if center != "centroid":
        raise ValueError(f"center must be 'centroid' or 'image', got {center!r}")
    yc, xc = _centroids(f)
    # A rotation about a half-pixel position maps pixels exactly onto pixels: no interpolation to blur the residual.
    yc, xc = np.where(np.isnan(yc), (s - 1) / 2, yc), np.where(np.isnan(xc), (s - 1) / 2, xc)
    return np.rint(2 * yc).astype(np.int64), np.rint(2 * xc).astype(np.int64)


def asymmetry(image, mask=None, center: str = "centroid", background: float = 0.0) -> float:
    """Rotational asymmetry (Conselice, Bershady & Jangren 2000, ApJ 529, 886; Conselice 2003, ApJS 147, 1)::

        A = sum |I - I_180| / sum |I|  -  background x (number of pixels) / sum |I|

    summed over the segmentation and its 180-degree rotation (the whole image when ``mask`` is None). 0 for a
    symmetric galaxy, up to 2 for flux with no counterpart at all; mergers typically have A > 0.35.

    ``center``: ``"centroid"`` (default) rotates about the flux-weighted centroid of the segmentation, rounded to
    the nearest half pixel so the rotation maps pixels exactly onto pixels; ``"image"`` rotates about the centre of
    the array. Conselice instead searches for the centre that minimises A, which gives slightly lower values.
    ``background``: the mean |B - B_180| per pixel of the sky (same units as the image); its contribution is
    subtracted as in Conselice et al. (2000). Default 0: no correction (a noise-free image).
    ``image``: (S, S) sky-subtracted flux. Returns NaN when the region holds no flux. Raises ValueError for NaN in
    the image or mismatched shapes.
    """
    x, m = _image_and_mask(image, mask)
    f = np.where(m, np.clip(x, 0, None), 0.0)[None]
    cy2, cx2 = _half_pixel_centres(f, center)
    return float(_asymmetry_batch(x[None], m[None], cy2, cx2, np.array([float(background)]))[0])


def _image_and_mask(image, mask) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(image, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] != x.shape[1]:
        raise ValueError(f"image must be a square 2-D array, got shape {x.shape}")
    if np.isnan(x).any():
        raise ValueError("image has NaN pixels; fill or mask them first")
    m = np.ones(x.shape, bool) if mask is None else np.asarray(mask, dtype=bool)
    if m.shape != x.shape:
        raise ValueError(f"mask shape {m.shape} does not match image shape {x.shape}")
    return x, m


def gini_m20_merger(gini, m20):
    """Lotz et al. (2008, ApJ 672, 177) merger selection: G > -0.14 M20 + 0.33.

    Scalars give a bool, arrays a bool array; NaN gives False. The line was drawn for HST images of galaxies at
    0.2 < z < 1.2 with Petrosian segmentation; on other images (such as SDSS colour JPEGs) it is a rough guide.
    """
    g, m = np.asarray(gini, dtype=np.float64), np.asarray(m20, dtype=np.float64)
    out = g > GM20_SLOPE * m + GM20_INTERCEPT
    return bool(out) if out.ndim == 0 else out


def asymmetry_merger(a):
    """Conselice (2003, ApJS 147, 1) merger selection: A > 0.35. Scalars give a bool, arrays a bool array."""
    out = np.asarray(a, dtype=np.float64) > ASYMMETRY_MERGER
    return bool(out) if out.ndim == 0 else out


def _dilate8(m: np.ndarray) -> np.ndarray:
    """3 x 3 binary dilation of each (S, S) mask of ``m`` (B, S, S): one step of an 8-connected flood fill."""
    d = m.copy()
    d[:, 1:] |= m[:, :-1]
    d[:, :-1] |= m[:, 1:]
    e = d.copy()
    e[:, :, 1:] |= d[:, :, :-1]
    e[:, :, :-1] |= d[:, :, 1:]
    return e


def connected_region(mask, seed) -> np.ndarray:
    """The pixels of ``mask`` 8-connected to the ``seed`` pixels: a breadth-first flood fill, done for a whole batch
    at once by growing the region one ring of neighbours per step until it stops changing.

    ``mask`` and ``seed``: bool arrays of shape (S, S) or (B, S, S). Seeds outside ``mask`` are ignored.
    """
    allowed = np.asarray(mask, dtype=bool)
    region = np.asarray(seed, dtype=bool) & allowed
    single = allowed.ndim == 2
    if single:
        allowed, region = allowed[None], region[None]
    active = np.flatnonzero(region.any(axis=(1, 2)))
    # Only images still growing are worked on, so one large region does not slow down the rest of the batch.
    while len(active):
        cur = region[active]
        grown = _dilate8(cur) & allowed[active]
        changed = (grown != cur).any(axis=(1, 2))
        region[active] = grown
        active = active[changed]
    return region[0] if single else region


def _box3(x: np.ndarray) -> np.ndarray:
    """3 x 3 box mean of each (S, S) image of ``x`` (B, S, S), edges padded by repetition."""
    p = np.pad(x, ((0, 0), (1, 1), (1, 1)), mode="edge")
    s = x.shape[-1]
    return sum(p[:, i:i + s, j:j + s] for i in range(3) for j in range(3)) / 9.0


def _border(s: int) -> np.ndarray:
    w = max(1, s // 8)
    b = np.ones((s, s), bool)
    b[w:s - w, w:s - w] = False
    return b


def _segment_batch(x: np.ndarray, nsigma: float) -> dict:
    """Sky level and noise from the border, sky subtraction, detection on a 3 x 3 smoothed image, and the region
    connected to the brightest detected pixel near the centre. ``x`` (B, S, S) float64."""
    b, s, _ = x.shape
    border = _border(s)
    sky = np.median(x[:, border], axis=1)
    x = x - sky[:, None, None]
    sm = _box3(x)
    edge = sm[:, border]
    sigma = 1.4826 * np.median(np.abs(edge - np.median(edge, axis=1, keepdims=True)), axis=1)
    # Where the sky has no measurable noise (synthetic images) a floor of 0.1 % of the peak keeps every positive
    # Gaussian tail from joining all sources into one.
    level = np.maximum(nsigma * sigma, 1e-3 * sm.reshape(b, -1).max(axis=1))
    detected = sm > level[:, None, None]
    r = max(1, s // 16)
    c0, c1 = (s - 1) // 2 - r, s // 2 + r + 1
    core = np.full(sm.shape, -np.inf)
    core[:, c0:c1, c0:c1] = np.where(detected[:, c0:c1, c0:c1], sm[:, c0:c1, c0:c1], -np.inf)
    flat = core.reshape(b, -1)
    best = flat.argmax(axis=1)
    seed = np.zeros((b, s * s), bool)
    has = np.isfinite(flat[np.arange(b), best])
    seed[np.arange(b)[has], best[has]] = True
    mask = connected_region(detected, seed.reshape(b, s, s))
    # Sky asymmetry per pixel, mean |B - B_180|, from the border frame (which maps onto itself under a rotation about
    # the array centre), over pixels where neither the pixel nor its rotated twin holds a detection. (On the 96 px
    # pack this separates volunteer mergers better than a median over the whole border or a noise-based estimate.)
    flip = x[:, ::-1, ::-1]
    ok = border & ~detected & ~detected[:, ::-1, ::-1]
    cnt = ok.sum(axis=(1, 2))
    bkg = (np.abs(x - flip) * ok).sum(axis=(1, 2)) / np.maximum(cnt, 1)
    return {"image": x, "mask": mask, "sky": sky, "sigma": sigma, "background": bkg}


def _grey(images: np.ndarray) -> np.ndarray:
    a = np.asarray(images)
    if a.ndim == 4:
        return a.astype(np.float64).mean(axis=1)
    if a.ndim == 3:
        return a.astype(np.float64)
    raise ValueError(f"images must be (N, C, S, S) or (N, S, S), got shape {a.shape}")


def segment(image, nsigma: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """The galaxy's pixels in one cutout: returns (sky-subtracted image, segmentation mask), both (S, S).

    ``image``: (S, S) grey, or (C, S, S) colour (channels are averaged; in SDSS gri colour cutouts the green channel
    is roughly the r band). The sky level is the median of a border frame S/8 wide, its noise sigma 1.4826 x the MAD
    of that frame after a 3 x 3 box smoothing; pixels whose smoothed value is more than ``nsigma`` sigma above the
    sky are detected (at least 0.1 % of the peak, for noise-free images), and the mask is the detected region
    8-connected to the brightest detected pixel within S/16 of the centre (empty when there is none). A simple
    stand-in for the Petrosian segmentation of Lotz et al. (2004).
    """
    a = np.asarray(image)
    batch = a[None] if a.ndim == 3 else (a[None, None] if a.ndim == 2 else None)
    if batch is None or batch.shape[-1] != batch.shape[-2]:
        raise ValueError(f"image must be (S, S) or (C, S, S), got shape {a.shape}")
    seg = _segment_batch(_grey(batch), nsigma)
    return seg["image"][0], seg["mask"][0]


def morphology_table(images, ids, rows=None, nsigma: float = 2.0, chunk: int = 256) -> pd.DataFrame:
    """Gini, M20 and asymmetry of many cutouts, with the Lotz et al. (2008) and Conselice (2003) merger flags.

    ``images``: (N, 3, S, S) uint8 (a cache's memory map is fine) or (N, S, S); ``ids``: N galaxy ids aligned with
    ``images``; ``rows``: which images to measure (default all). Each image is made grey (mean of the channels),
    segmented with :func:`segment` (``nsigma``), and measured on its sky-subtracted pixels: :func:`gini`,
    :func:`m20` about the flux-weighted centroid, and :func:`asymmetry` about that centroid with the sky
    correction estimated from the border. Returns columns GalaxyID, gini, m20, asymmetry, gm20_merger, asym_merger
    and n_pixels (segmentation size); measurements are NaN and flags False where the segmentation is empty.

    Approximate, by construction. These statistics were defined on linear, sky-subtracted CCD images with Petrosian
    segmentation. SDSS colour JPEGs are asinh-stretched (Lupton et al. 2004, PASP 116, 133), 8-bit and compressed:
    the stretch flattens bright cores (lowering Gini and raising M20) and lifts faint tidal features (raising
    asymmetry), so values are not on the scale of the papers' thresholds and the merger flags are a rough guide,
    best used to rank galaxies or to compare groups measured the same way. On the 7,452 labelled galaxies of the
    96 px pack (at 80 px), galaxies with volunteer Class8.6 > 0.5 have higher asymmetry and M20 than the rest (the
    probability that a random merger ranks above a random non-merger is about 0.74 for A and 0.79 for M20) but
    *lower* Gini (0.33), and A > 0.35 flags about a quarter of all galaxies: use the flags to compare groups, not
    as a merger fraction. Vectorised in chunks of ``chunk`` images: 20,000 80 px cutouts take about 35 s on one
    CPU core.
    """
    ids = np.asarray(ids)
    n_all = len(images)
    if len(ids) != n_all:
        raise ValueError(f"ids ({len(ids)}) must be aligned with images ({n_all})")
    rows = np.arange(n_all) if rows is None else np.asarray(rows, dtype=np.int64).reshape(-1)
    if len(rows) == 0:
        raise ValueError("no images to measure (rows is empty)")
    cols: dict[str, list] = {"gini": [], "m20": [], "asymmetry": [], "n_pixels": []}
    for s in range(0, len(rows), chunk):
        idx = rows[s:s + chunk]
        seg = _segment_batch(_grey(images[idx]), nsigma)
        x, m = seg["image"], seg["mask"]
        f = np.where(m, np.clip(x, 0, None), 0.0)
        n = m.sum(axis=(1, 2))
        cols["gini"].append(_gini_rows(np.abs(np.where(m, x, 0.0)).reshape(len(idx), -1), n))
        yc, xc = _centroids(f)
        cols["m20"].append(_m20_batch(f, yc, xc))
        cy2, cx2 = _half_pixel_centres(f, "centroid")
        cols["asymmetry"].append(_asymmetry_batch(x, m, cy2, cx2, seg["background"]))
        cols["n_pixels"].append(n)
    out = pd.DataFrame({"GalaxyID": ids[rows].astype(str), **{k: np.concatenate(v) for k, v in cols.items()}})
    out["gm20_merger"] = gini_m20_merger(out["gini"].to_numpy(), out["m20"].to_numpy())
    out["asym_merger"] = asymmetry_merger(out["asymmetry"].to_numpy())
    return out[["GalaxyID", "gini", "m20", "asymmetry", "gm20_merger", "asym_merger", "n_pixels"]]


# --------------------------------------------------------------------------------------------------------------------
# Glue with the rest of the package


def predict_merger_probabilities(model, cache: data.GalaxyCache, rows=None, tta: int = 1) -> np.ndarray:
    """The model's Class8.6 for rows of a prepared cache (all rows when None), as float64 in [0, 1]."""
    from . import prediction  # imports torch; the statistics above do not need it

    y = prediction.predict_cache(model, cache, rows, tta=tta)
    return np.asarray(y[:, tree.column_index(MERGER_COLUMN)], dtype=np.float64)


def read_predictions(csv_path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a Kaggle-format predictions CSV (``GalaxyID`` and at least ``Class8.6``, or its descriptive name
    ``odd_feature--merger``) and return (ids as str, Class8.6 as float64).

    Raises DataError, naming the file, for a missing column, an empty file, or a value that is blank, non-numeric
    or outside [0, 1].
    """
    path = Path(csv_path)
    try:
        df = pd.read_csv(path, dtype={"GalaxyID": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise data.DataError(f"{path}: not a readable CSV ({e})") from e
    df.columns = [str(c).strip() for c in df.columns]
    col = next((c for c in (MERGER_COLUMN, tree.NAMES[MERGER_COLUMN]) if c in df.columns), None)
    if "GalaxyID" not in df.columns or col is None:
        raise data.DataError(f"{path}: a predictions CSV needs the columns GalaxyID and {MERGER_COLUMN} "
                             f"(odd_feature--merger); found {list(df.columns)[:8]}")
    if df.empty:
        raise data.DataError(f"{path}: no rows")
    p = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=np.float64)
    bad = np.isnan(p) | (p < -_PROB_TOLERANCE) | (p > 1 + _PROB_TOLERANCE)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise data.DataError(f"{path}: {int(bad.sum())} {col} value(s) blank, non-numeric or outside [0, 1], e.g. "
                             f"{df[col].iloc[i]!r} for GalaxyID {df['GalaxyID'].iloc[i]}")
    return df["GalaxyID"].astype(str).str.strip().to_numpy(), np.clip(p, 0.0, 1.0)


def report(p, threshold: float = 0.5, rate_per_gyr: float = DEFAULT_RATE_PER_GYR,
           timescale_gyr: float = MORPHOLOGY_TIMESCALE_GYR, calibration: dict | None = None,
           n_boot: int = 2000, seed: int = 0, level: float = 0.95, labelled: tuple | None = None) -> dict:
    """Everything the CLI and the dashboard show for one set of predicted Class8.6 values.

    Returns ``fraction``, ``lo``, ``hi``, ``n``, ``threshold`` (the thresholded estimate, repeated at the top level
    for scripts); ``threshold_estimate`` (:func:`fraction_above`), ``mean_estimate`` (:func:`mean_probability`);
    ``theory`` and ``theory_mean`` (:func:`compare_with_theory` of each); ``calibration`` (the :func:`calibrate`
    dict given, or None) and, with one, ``matched_estimate``: :func:`fraction_above` at its matching threshold,
    the fraction the volunteers would have flagged if the model errs on these galaxies as on the labelled ones.
    With ``labelled`` = (p_pred, p_true) of the labelled galaxies, ``matched_estimate`` comes from
    :func:`calibrated_fraction` instead, whose interval includes the threshold's uncertainty.
    """
    th = fraction_above(p, threshold, n_boot, seed, level)
    mean = mean_probability(p, n_boot, seed, level)
    out = {"fraction": th["fraction"], "lo": th["lo"], "hi": th["hi"], "n": th["n"], "threshold": float(threshold),
           "threshold_estimate": th, "mean_estimate": mean,
           "theory": compare_with_theory(th, rate_per_gyr, timescale_gyr),
           "theory_mean": compare_with_theory(mean, rate_per_gyr, timescale_gyr),
           "calibration": calibration, "matched_estimate": None}
    if labelled is not None:
        out["matched_estimate"] = calibrated_fraction(p, *labelled, calibration["volunteer_threshold"]
                                                      if calibration else 0.5, n_boot, seed, level)
    elif calibration is not None:
        out["matched_estimate"] = fraction_above(p, calibration["matching_threshold"], n_boot, seed, level)
    return out


def histogram_figure(p, threshold: float = 0.5):
    """A plotly histogram of predicted Class8.6 (log counts) with the threshold marked and the flagged fraction in
    the title."""
    import plotly.graph_objects as go

    p = _probabilities(p)
    k = int((p > threshold).sum())
    fig = go.Figure(go.Histogram(x=p, xbins={"start": 0.0, "end": 1.0, "size": 0.02}, name="galaxies"))
    fig.add_vline(x=threshold, line_dash="dash", line_color="firebrick",
                  annotation_text=f"threshold {threshold:g}", annotation_position="top right")
    fig.update_layout(title=f"{k:,} of {len(p):,} galaxies above {threshold:g} ({k / len(p):.2%})",
                      xaxis_title=f"predicted {MERGER_COLUMN} (merger vote fraction)", yaxis_title="galaxies",
                      yaxis_type="log", bargap=0.05, showlegend=False)
    # Ticks at whole decades only: plotly's default log ticks (2, 5, 20, 50 ...) overlap over four decades.
    fig.update_yaxes(dtick=1, tickformat=",d")
    return fig


def calibration_figure(table: pd.DataFrame):
    """A plotly figure of a calibration table: from :func:`calibration_table`, the fractions flagged by the model
    and by volunteers against the threshold; from :func:`reliability_curve`, the reliability diagram with the
    diagonal a calibrated model follows."""
    import plotly.graph_objects as go

    cols = set(table.columns)
    fig = go.Figure()
    if {"mean_predicted", "mean_volunteer"} <= cols:
        t = table[table["n"] > 0]
        fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "grey"},
                                 name="calibrated"))
        fig.add_trace(go.Scatter(x=t["mean_predicted"], y=t["mean_volunteer"], mode="lines+markers", name="model",
                                 text=[f"n = {n:,}" for n in t["n"]]))
        fig.update_layout(title="Reliability of predicted Class8.6", xaxis_title="mean predicted",
                          yaxis_title="mean volunteer vote fraction")
    elif {"threshold", "predicted_fraction", "volunteer_fraction"} <= cols:
        fig.add_trace(go.Scatter(x=table["threshold"], y=table["volunteer_fraction"], name="volunteers"))
        fig.add_trace(go.Scatter(x=table["threshold"], y=table["predicted_fraction"], name="model"))
        fig.update_layout(title="Fraction of galaxies above a threshold", xaxis_title="threshold on Class8.6",
                          yaxis_title="fraction above threshold")
    else:
        raise ValueError(f"not a calibration table or reliability curve: columns {sorted(cols)}")
    return fig
