"""The merger fraction: how many galaxies a model calls mergers, with honest error bars, checked against volunteers
and against theory.

The seed paper ran its model on the Kaggle test images, called a galaxy a merger when the predicted ``Class8.6``
(``odd_feature--merger``) exceeded 0.5, found 0.033, and compared that with "a z=0 merger rate of about 0.05" from
Lotz et al. (2011). A rate (per galaxy per Gyr) is not a fraction: the fraction of galaxies *seen* merging is the
rate times the time a merger stays visible, f = R x T_obs. This module does the comparison properly:

* estimates of the fraction with confidence intervals: the thresholded count (:func:`fraction_above`, bootstrap and
  Wilson 1927 intervals) and the mean predicted vote fraction (:func:`mean_probability`);
* calibration on labelled galaxies the model never learnt from (``evaluation.unseen_labelled``; model vs volunteers on
  the same images), when there are enough of them (:func:`calibration_pairs`, :func:`calibration_shortfall`):
  :func:`calibration_table`, :func:`matching_threshold`, :func:`precision_recall`, :func:`reliability_curve`,
  :func:`calibrate`, :func:`calibrated_fraction`;
* the conversion to theory, :func:`expected_fraction` and :func:`compare_with_theory`, with a small table of
  literature values, :data:`LITERATURE`;
* several methods on the same galaxies, their fractions and the overlap of what they flag (:func:`compare_methods`);
* reading a predictions CSV (:func:`read_predictions`), everything at once, as the command line and the dashboard
  show it (:func:`report`), and the numbers written for them (:func:`percent_text`, :func:`ratio_text`).

The independent, model-free check with non-parametric morphology (Gini, M20, asymmetry) measured on the images by
statmorph is :mod:`galaxy_core.morphology`; the figures are in :mod:`galaxy_core.figures`. This module is about 780
lines, over the package's usual 500, because it is one chain read top to bottom: each estimate is calibrated and
compared with theory by the functions after it, and :func:`report` ties them together.

Units throughout: fractions and vote fractions are in [0, 1]; rates are per galaxy per Gyr; timescales are in Gyr.
``Class8.6`` is a *cumulative* Kaggle vote fraction, P(odd) x P(merger | odd) (:mod:`galaxy_core.tree`), so it is
small for most galaxies even when volunteers agree that something is odd.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd

from . import catalog, morphology, tree

MERGER_COLUMN = "Class8.6"
"""The Kaggle column of the merger answer, ``odd_feature--merger`` (cumulative: P(odd) x P(merger | odd))."""

DEFAULT_RATE_PER_GYR = 0.05
"""The z~0 merger rate as the seed paper quoted Lotz et al. (2011), per galaxy per Gyr (see :data:`LITERATURE`)."""
MORPHOLOGY_TIMESCALE_GYR = 0.3
"""Default observability timescale of Gini-M20 and asymmetry mergers, Gyr (about 0.2-0.4; Lotz et al. 2008, 2010)."""
PAIR_TIMESCALE_GYR = 1.0
"""Default observability timescale of close pairs, Gyr (about 1 Gyr or more; Lotz et al. 2011)."""
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


@dataclass(frozen=True)
class CalibrationPairs:
    """The galaxies that calibrate the threshold: the model's and the volunteers' Class8.6 of each (equal-length
    float64 arrays), and whether they are the fallback's galaxies rather than the ones given."""

    p_pred: np.ndarray
    p_true: np.ndarray
    fallback: bool = False

    @property
    def pair(self) -> tuple[np.ndarray, np.ndarray]:
        """(p_pred, p_true), to pass on as ``calibrate(*pairs.pair)`` or ``report(..., labelled=pairs.pair)``."""
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
    # Small fractions with their significant digits: "0.0000" beside "0.0029 times the expectation" contradicts it.
    text = (f"f = R x T = {rate_per_gyr:g} per galaxy per Gyr x {timescale_gyr:g} Gyr = {expected:.4g} "
            f"({percent_text(expected)} of galaxies seen merging). Observed ({how}): {number_text(f)} "
            f"({level:.0%} {interval} interval {number_text(lo)}-{number_text(hi)})"
            f", {ratio_text(ratio)} times the expectation, which lies {'inside' if inside else 'outside'} the "
            f"interval.")
    if t > 0:
        text += f" With T = {t:g} Gyr the observed fraction implies R = {implied[0]:.3g} per galaxy per Gyr."
    if expected > 0.1:
        text += " R x T is not << 1, so f = R x T over-estimates."
    return {"observed": f, "lo": lo, "hi": hi, "level": level, "method": fraction_result.get("method"),
            "rate_per_gyr": float(rate_per_gyr), "timescale_gyr": t, "expected": expected, "ratio": ratio,
            "inside": inside, "implied_rate_per_gyr": implied[0], "implied_rate_lo": implied[1],
            "implied_rate_hi": implied[2], "text": text}


# --------------------------------------------------------------------------------------------------------------------
# Several methods on the same galaxies


def compare_methods(flags: dict[str, np.ndarray], level: float = 0.95) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The merger fraction by each method and how far their samples overlap, on the same galaxies.

    ``flags``: method name -> bool array, one entry per galaxy, the same galaxies in the same order for every
    method (e.g. the Gini-M20 and asymmetry criteria of :mod:`galaxy_core.morphology`, a model above a threshold,
    the volunteers' Class8.6 > 0.5), restricted to the galaxies every method could judge.

    Returns ``fractions`` (columns ``method``, ``n_flagged``, ``n``, ``fraction``, ``lo``, ``hi``: the Wilson 1927
    interval at ``level``) and ``overlap``, a square frame of counts: cell (a, b) is the number of galaxies flagged
    by both a and b, so the diagonal holds each method's own count and (a, b) / (a, a) is the share of a's sample
    that b also flags. Raises ValueError for no methods, unequal lengths or no galaxies.
    """
    if not flags:
        raise ValueError("no methods to compare")
    names = list(flags)
    if len({np.size(v) for v in flags.values()}) > 1:
        raise ValueError("every method must judge the same galaxies: lengths "
                         + ", ".join(f"{k} {np.size(v)}" for k, v in flags.items()))
    f = np.stack([np.asarray(flags[k], dtype=bool).reshape(-1) for k in names])
    n = f.shape[1]
    if n == 0:
        raise ValueError("no galaxies to compare")
    rows = []
    for name, row in zip(names, f):
        k = int(row.sum())
        lo, hi = wilson_interval(k, n, level)
        rows.append({"method": name, "n_flagged": k, "n": n, "fraction": k / n, "lo": lo, "hi": hi})
    both = f.astype(np.int64) @ f.T.astype(np.int64)
    return pd.DataFrame(rows), pd.DataFrame(both, index=names, columns=names)


MORPHOLOGY_METHODS = {"gm20_merger": "Gini-M20 (Lotz et al. 2008)", "asym_merger": "A > 0.35 (Conselice 2003)"}
"""The merger flags of a :func:`galaxy_core.morphology.morphology_table`, by the names the check shows."""


def morphology_check(table: pd.DataFrame, others: dict[str, np.ndarray] | None = None, known=None,
                     level: float = 0.95) -> dict:
    """The independent check: the Gini-M20 and asymmetry merger fractions of a morphology table beside other
    methods' (a model above a threshold, the volunteers), on the galaxies that every method judges.

    ``table``: :func:`galaxy_core.morphology.morphology_table` (or ``cache_table``) rows; ``others``: name -> a bool
    per row of ``table``; ``known``: a bool per row, False where some method has no verdict (e.g. no volunteer
    Class8.6). Rows whose measurement is not usable (statmorph's flag over 1, or no measurement) are dropped and
    counted by reason. Returns ``fractions`` and ``overlap`` (:func:`compare_methods`), ``used`` (the rows of
    ``table`` compared), ``n_measured`` and ``dropped`` (reason -> count, with "no verdict from every method" for
    usable rows outside ``known``). Raises ValueError when no row is left.
    """
    good = morphology.usable(table)
    use = good if known is None else good & np.asarray(known, dtype=bool)
    if not use.any():
        raise ValueError(f"none of the {len(table):,} galaxies has a usable measurement and a verdict from every "
                         f"method")
    flags = {name: table[col].to_numpy(dtype=bool)[use] for col, name in MORPHOLOGY_METHODS.items()}
    flags.update({name: np.asarray(v, dtype=bool)[use] for name, v in (others or {}).items()})
    fractions, overlap = compare_methods(flags, level)
    lost = morphology.dropped(table)
    if (good & ~use).any():
        lost["no verdict from every method"] = int((good & ~use).sum())
    return {"fractions": fractions, "overlap": overlap, "used": np.flatnonzero(use), "n_measured": len(table),
            "dropped": lost}


# --------------------------------------------------------------------------------------------------------------------
# Glue with the rest of the package


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
        raise catalog.DataError(f"{path}: not a readable CSV ({e})") from e
    df.columns = [str(c).strip() for c in df.columns]
    col = next((c for c in (MERGER_COLUMN, tree.NAMES[MERGER_COLUMN]) if c in df.columns), None)
    if "GalaxyID" not in df.columns or col is None:
        raise catalog.DataError(f"{path}: a predictions CSV needs the columns GalaxyID and {MERGER_COLUMN} "
                                f"(odd_feature--merger); found {list(df.columns)[:8]}")
    if df.empty:
        raise catalog.DataError(f"{path}: no rows")
    p = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=np.float64)
    bad = np.isnan(p) | (p < -_PROB_TOLERANCE) | (p > 1 + _PROB_TOLERANCE)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise catalog.DataError(f"{path}: {int(bad.sum())} {col} value(s) blank, non-numeric or outside [0, 1], e.g. "
                                f"{df[col].iloc[i]!r} for GalaxyID {df['GalaxyID'].iloc[i]}")
    return df["GalaxyID"].astype(str).str.strip().to_numpy(), np.clip(p, 0.0, 1.0)


def _decimals(x: float, at_least: int, significant: int = 2) -> int:
    """Decimals that show ``x`` with ``significant`` significant digits, but never fewer than ``at_least``."""
    if x == 0 or not math.isfinite(x):
        return at_least
    return max(at_least, significant - 1 - math.floor(math.log10(abs(x))))


def percent_text(fraction: float, decimals: int = 2) -> str:
    """A fraction in [0, 1] as a percentage with ``decimals`` decimals, more for small values so that two
    significant digits show: 0.033 -> '3.30%', 0.0029 -> '0.29%', 0.00015 -> '0.015%', 0 -> '0.00%', NaN -> 'n/a'.
    (``f"{x:.2%}"`` shows 0.00015 as '0.00%', which reads as none at all beside a non-zero ratio.)"""
    x = float(fraction)
    if not math.isfinite(x):
        return "n/a"
    return f"{x:.{_decimals(100 * x, decimals)}%}"


def number_text(x: float, decimals: int = 4) -> str:
    """A fraction or ratio with ``decimals`` decimals, more for small values so that two significant digits show,
    and no exponent: 0.033 -> '0.0330', 4.35e-5 -> '0.000043'; 'inf' and 'n/a' (NaN) for the others."""
    x = float(x)
    if math.isnan(x):
        return "n/a"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.{_decimals(x, decimals)}f}"


def ratio_text(ratio: float) -> str:
    """An observed / expected ratio with two significant digits and no exponent: 2.2, 0.0029, 15, 1,234; 'inf' or
    'n/a' where the expectation is 0 (see :func:`compare_with_theory`)."""
    r = float(ratio)
    if math.isfinite(r) and abs(r) >= 100:
        return f"{r:,.0f}"
    return number_text(r, 0)


def report(p, threshold: float = 0.5, rate_per_gyr: float = DEFAULT_RATE_PER_GYR,
           timescale_gyr: float = MORPHOLOGY_TIMESCALE_GYR, calibration: dict | None = None,
           n_boot: int = 2000, seed: int = 0, level: float = 0.95, labelled: tuple | None = None, *,
           mean: dict | None = None, matched: dict | None = None) -> dict:
    """Everything the command line (``mergers``) and the dashboard's Mergers page show for one set of predicted
    Class8.6 values.

    Returns ``fraction``, ``lo``, ``hi``, ``n``, ``threshold`` (the thresholded estimate, repeated at the top level
    for scripts); ``threshold_estimate`` (:func:`fraction_above`), ``mean_estimate`` (:func:`mean_probability`);
    ``theory`` and ``theory_mean`` (:func:`compare_with_theory` of each); ``calibration`` (the :func:`calibrate`
    dict given, or None) and, with one, ``matched_estimate``: :func:`fraction_above` at its matching threshold,
    the fraction the volunteers would have flagged if the model errs on these galaxies as on the labelled ones.
    With ``labelled`` = (p_pred, p_true) of the labelled galaxies (:func:`calibration_pairs`), ``matched_estimate``
    comes from :func:`calibrated_fraction` instead, whose interval includes the threshold's uncertainty, and
    ``precision_recall`` is :func:`precision_recall` on them at ``threshold`` (the volunteers' merger: above the
    calibration's ``volunteer_threshold``, else 0.5); without ``labelled`` it is None.

    ``mean`` and ``matched``: the :func:`mean_probability` and :func:`calibrated_fraction` results for these
    arguments, when already computed. Their bootstraps are the slow part and depend on neither the threshold, the
    rate nor the timescale, so the dashboard computes them once and passes them in as its sliders move.
    """
    th = fraction_above(p, threshold, n_boot, seed, level)
    mean = mean_probability(p, n_boot, seed, level) if mean is None else mean
    out = {"fraction": th["fraction"], "lo": th["lo"], "hi": th["hi"], "n": th["n"], "threshold": float(threshold),
           "threshold_estimate": th, "mean_estimate": mean,
           "theory": compare_with_theory(th, rate_per_gyr, timescale_gyr),
           "theory_mean": compare_with_theory(mean, rate_per_gyr, timescale_gyr),
           "calibration": calibration, "matched_estimate": None, "precision_recall": None}
    if labelled is not None:
        volunteer_threshold = calibration["volunteer_threshold"] if calibration else 0.5
        out["matched_estimate"] = matched or calibrated_fraction(p, *labelled, volunteer_threshold, n_boot, seed,
                                                                 level)
        out["precision_recall"] = precision_recall(*labelled, threshold, volunteer_threshold)
    elif calibration is not None:
        out["matched_estimate"] = fraction_above(p, calibration["matching_threshold"], n_boot, seed, level)
    return out
