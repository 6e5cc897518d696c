"""The merger fraction: how many galaxies a model calls mergers, with honest error bars, and what theory expects.

The seed paper ran its model on the Kaggle test images, called a galaxy a merger when the predicted ``Class8.6``
(``odd_feature--merger``) exceeded 0.5, found 0.033, and compared that with "a z=0 merger rate of about 0.05" from
Lotz et al. (2011). A rate (per galaxy per Gyr) is not a fraction: the fraction of galaxies *seen* merging is the
rate times the time a merger stays visible, f = R x T_obs. This module holds:

* estimates of the fraction with confidence intervals, each a :class:`FractionEstimate`: the thresholded count
  (:func:`fraction_above`, bootstrap and Wilson 1927 intervals) and the mean predicted vote fraction
  (:func:`mean_probability`);
* the conversion to theory, :func:`expected_fraction` and :func:`compare_with_theory` (a :class:`TheoryComparison`),
  with a small table of literature values, :data:`LITERATURE`;
* the numbers written for display (:func:`percent_text`, :func:`number_text`, :func:`ratio_text`).

Calibration against the volunteers is :mod:`galaxy_core.mergers.calibration`; the comparison of methods and the
report that ties everything together, :mod:`galaxy_core.mergers.compare`.

Units throughout: fractions and vote fractions are in [0, 1]; rates are per galaxy per Gyr; timescales are in Gyr.
``Class8.6`` is a *cumulative* Kaggle vote fraction, P(odd) x P(merger | odd) (:mod:`galaxy_core.tree`), so it is
small for most galaxies even when volunteers agree that something is odd.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import NormalDist

import numpy as np
import pandas as pd

MERGER_COLUMN = "Class8.6"
"""The Kaggle column of the merger answer, ``odd_feature--merger`` (cumulative: P(odd) x P(merger | odd))."""

DEFAULT_RATE_PER_GYR = 0.05
"""The z~0 merger rate as the seed paper quoted Lotz et al. (2011), per galaxy per Gyr (see :data:`LITERATURE`)."""
MORPHOLOGY_TIMESCALE_GYR = 0.3
"""Default observability timescale of Gini-M20 and asymmetry mergers, Gyr (about 0.2-0.4; Lotz et al. 2008, 2010)."""

PROB_TOLERANCE = 1e-6
"""How far outside [0, 1] a probability may stray by rounding (e.g. a float32 model output) and still be taken
as in range."""


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


def as_probabilities(p, name: str = "p") -> np.ndarray:
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
    out = (a < -PROB_TOLERANCE) | (a > 1 + PROB_TOLERANCE)
    if out.any():
        i = int(np.flatnonzero(out)[0])
        raise ValueError(f"{name} must lie in [0, 1]: {int(out.sum())} value(s) outside, e.g. {a[i]} at index {i}")
    return a


def check_bootstrap(n_boot: int, level: float) -> None:
    """ValueError unless ``n_boot`` is at least 1 and ``level`` lies in (0, 1)."""
    if int(n_boot) < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")


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


@dataclass(frozen=True, kw_only=True)
class FractionEstimate:
    """A merger fraction with its interval: what :func:`fraction_above` (``method`` "threshold"),
    :func:`mean_probability` ("mean") and :func:`~galaxy_core.mergers.calibration.calibrated_fraction`
    ("calibrated") return, and what :func:`compare_with_theory` takes. Fractions are in [0, 1]; a field that does
    not apply to the method is None."""

    fraction: float
    """The estimate, in [0, 1]: the share of galaxies above ``threshold``, or (``mean``) the mean vote fraction."""
    lo: float
    """Lower end of the interval reported, at ``level``: Wilson's for "threshold", the bootstrap's for "mean",
    bootstrap + Jeffreys for "calibrated" (``interval`` names it)."""
    hi: float
    """Upper end of that interval."""
    interval: str
    """The name of the interval ``lo``-``hi`` is, for display: "Wilson", "bootstrap" or "bootstrap + Jeffreys"."""
    wilson_lo: float | None = None
    """Wilson (1927) score interval, lower end ("threshold" only)."""
    wilson_hi: float | None = None
    """Wilson (1927) score interval, upper end ("threshold" only)."""
    boot_lo: float | None = None
    """Percentile bootstrap interval, lower end ("threshold" and "mean")."""
    boot_hi: float | None = None
    """Percentile bootstrap interval, upper end ("threshold" and "mean")."""
    n: int
    """Galaxies counted."""
    n_flagged: int | None = None
    """Galaxies above ``threshold`` (strictly); None for "mean", which flags none."""
    expected_count: float | None = None
    """The expected number of mergers, sum(p) ("mean" only)."""
    threshold: float | None = None
    """The Class8.6 threshold counted above (for "calibrated", the matching threshold of all the labelled
    galaxies); None for "mean"."""
    threshold_lo: float | None = None
    """The matching threshold's own interval at ``level``, lower end ("calibrated" only)."""
    threshold_hi: float | None = None
    """The matching threshold's own interval, upper end ("calibrated" only)."""
    level: float
    """Confidence level of the intervals, in (0, 1), e.g. 0.95."""
    n_boot: int
    """Bootstrap resamples drawn."""
    method: str
    """"threshold", "mean" or "calibrated": which function made it."""

    def to_dict(self) -> dict:
        """The estimate as a JSON-ready dict, with the keys the functions returned before it was a dataclass (the
        command line's ``--json`` prints these): the fields that do not apply to the method are left out, except
        those "mean" always gave as None."""
        return {k: v for k, v in asdict(self).items() if k not in _NOT_IN_DICT[self.method]}


# The fields each method's dict never had; "mean" gave the thresholded ones as None, and still does.
_NOT_IN_DICT = {"threshold": {"expected_count", "threshold_lo", "threshold_hi"},
                "mean": {"threshold_lo", "threshold_hi"},
                "calibrated": {"wilson_lo", "wilson_hi", "boot_lo", "boot_hi", "expected_count"}}


def fraction_above(p, threshold: float = 0.5, *, n_boot: int = 2000, seed: int = 0,
                   level: float = 0.95) -> FractionEstimate:
    """The fraction of galaxies with ``p > threshold`` (strictly: a galaxy exactly at the threshold is not counted),
    with the analytic Wilson (1927) score interval and, beside it, a percentile bootstrap interval (Efron 1979).

    ``p``: predicted (or volunteer) vote fractions in [0, 1], one per galaxy. The interval reported as ``lo``/``hi``
    is Wilson's: it is right in the small-number limit, where the bootstrap's is not (with k = 0 flagged galaxies
    every resample has none too, and the bootstrap interval collapses to [0, 0]). Resampling n galaxies with
    replacement from a sample with k flagged ones gives a flagged count that is exactly Binomial(n, k/n), so the
    bootstrap draws that count directly, in O(n_boot) time; once k is more than a handful the two intervals agree.

    Returns a :class:`FractionEstimate` with ``method`` "threshold": ``lo``, ``hi`` are Wilson's (also as
    ``wilson_lo``, ``wilson_hi``), ``boot_lo``, ``boot_hi`` the bootstrap's, ``n_flagged`` the count. Raises
    ValueError for empty input, NaN or values outside [0, 1].
    """
    p = as_probabilities(p)
    check_bootstrap(n_boot, level)
    n, k = len(p), int((p > threshold).sum())
    rng = np.random.default_rng(seed)
    boot = rng.binomial(n, k / n, size=int(n_boot)) / n
    a = (1 - level) / 2
    lo, hi = np.quantile(boot, [a, 1 - a])
    wlo, whi = wilson_interval(k, n, level)
    return FractionEstimate(fraction=k / n, lo=wlo, hi=whi, interval="Wilson", wilson_lo=wlo, wilson_hi=whi,
                            boot_lo=float(lo), boot_hi=float(hi), n=n, n_flagged=k, threshold=float(threshold),
                            level=level, n_boot=int(n_boot), method="threshold")


def mean_probability(p, *, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> FractionEstimate:
    """The probabilistic merger fraction: the mean of ``p`` over the galaxies, with a percentile bootstrap interval.

    Why it is less biased than thresholding. A model trained on vote fractions with a squared loss predicts the
    expected vote fraction given the image, and when it is uncertain that expectation is pulled towards the
    population mean (a few per cent for Class8.6). Thresholding such shrunk predictions at 0.5 under-counts a rare
    class: galaxies that volunteers would put above 0.5 come out at 0.3 and are not counted, and nothing makes up for
    them. The mean is not hurt by the shrinkage: if the model is calibrated (among galaxies predicted p, the
    volunteers' mean is p; see :func:`~galaxy_core.mergers.calibration.reliability_curve`), the mean prediction equals
    the volunteers' mean vote fraction on average. Note that it estimates a different quantity from
    :func:`fraction_above`: the expected fraction if each galaxy is a merger with probability equal to its vote
    fraction, not the fraction of galaxies with a volunteer majority.

    Returns a :class:`FractionEstimate` with ``method`` "mean", ``expected_count`` = sum(p), ``lo``, ``hi`` (also
    ``boot_lo``, ``boot_hi``) the bootstrap's, and ``threshold``, ``n_flagged``, ``wilson_lo``, ``wilson_hi`` None
    (they do not apply). A constant input gives a zero-width interval. Raises ValueError for empty input, NaN or
    values outside [0, 1].
    """
    p = as_probabilities(p)
    check_bootstrap(n_boot, level)
    n, n_boot = len(p), int(n_boot)
    rng = np.random.default_rng(seed)
    # Resample in blocks of about 4 million draws so 20,000 galaxies x 2,000 resamples stays within ~100 MB.
    block = max(1, 4_000_000 // n)
    boot = np.concatenate([p[rng.integers(0, n, size=(min(block, n_boot - s), n))].mean(axis=1)
                           for s in range(0, n_boot, block)])
    a = (1 - level) / 2
    lo, hi = np.quantile(boot, [a, 1 - a])
    return FractionEstimate(fraction=float(p.mean()), lo=float(lo), hi=float(hi), interval="bootstrap",
                            boot_lo=float(lo), boot_hi=float(hi), n=n, expected_count=float(p.sum()), level=level,
                            n_boot=n_boot, method="mean")

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


@dataclass(frozen=True)
class TheoryComparison:
    """An observed merger fraction against the expectation f = R x T (:func:`compare_with_theory`). Fractions are
    in [0, 1], rates per galaxy per Gyr, timescales in Gyr."""

    observed: float
    """The observed fraction (the estimate's ``fraction``)."""
    lo: float
    """Lower end of its interval, at ``level``."""
    hi: float
    """Upper end of its interval."""
    level: float
    """Confidence level of the interval, e.g. 0.95."""
    method: str
    """The estimate's method: "threshold", "mean" or "calibrated"."""
    rate_per_gyr: float
    """The merger rate R assumed, per galaxy per Gyr."""
    timescale_gyr: float
    """The observability timescale T assumed, Gyr."""
    expected: float
    """f = R x T (:func:`expected_fraction`)."""
    ratio: float
    """observed / expected; inf when expected is 0 and observed is not, NaN when both are."""
    inside: bool
    """Whether the expectation lies in [lo, hi]."""
    implied_rate_per_gyr: float
    """The rate the observation implies for this timescale, observed / T (NaN for T = 0)."""
    implied_rate_lo: float
    """lo / T."""
    implied_rate_hi: float
    """hi / T."""
    text: str
    """The conversion written out for display."""

    def to_dict(self) -> dict:
        """The comparison as a JSON-ready dict (the command line's ``--json``)."""
        return asdict(self)


def compare_with_theory(estimate: FractionEstimate, rate_per_gyr: float = DEFAULT_RATE_PER_GYR,
                        timescale_gyr: float = MORPHOLOGY_TIMESCALE_GYR) -> TheoryComparison:
    """An observed fraction (a :class:`FractionEstimate` of :func:`fraction_above`, :func:`mean_probability` or
    ``calibrated_fraction``) against f = R x T.

    Returns a :class:`TheoryComparison`: the estimate and its interval; ``expected`` (:func:`expected_fraction`);
    ``ratio`` = observed / expected; ``inside``: whether the expectation lies in [lo, hi]; the rate the observation
    implies for this timescale, observed / T, with its interval; and ``text``, the conversion written out for
    display. The comparison carries the uncertainty of R and T (factors of ~2, see :data:`LITERATURE`), which the
    interval does not include.
    """
    f, lo, hi = float(estimate.fraction), float(estimate.lo), float(estimate.hi)
    expected = expected_fraction(rate_per_gyr, timescale_gyr)
    if expected > 0:
        ratio = f / expected
    else:
        ratio = float("inf") if f > 0 else float("nan")
    inside = bool(lo <= expected <= hi)
    t = float(timescale_gyr)
    implied = [x / t if t > 0 else float("nan") for x in (f, lo, hi)]
    if estimate.method == "mean":
        how = "mean predicted probability"
    elif estimate.method == "calibrated":
        how = f"p > {estimate.threshold:.3f}, the threshold matched to the volunteers"
    else:
        how = f"p > {estimate.threshold:g}"
    # Small fractions with their significant digits: "0.0000" beside "0.0029 times the expectation" contradicts it.
    text = (f"f = R x T = {rate_per_gyr:g} per galaxy per Gyr x {timescale_gyr:g} Gyr = {expected:.4g} "
            f"({percent_text(expected)} of galaxies seen merging). Observed ({how}): {number_text(f)} "
            f"({estimate.level:.0%} {estimate.interval} interval {number_text(lo)}-{number_text(hi)})"
            f", {ratio_text(ratio)} times the expectation, which lies {'inside' if inside else 'outside'} the "
            f"interval.")
    if t > 0:
        text += f" With T = {t:g} Gyr the observed fraction implies R = {implied[0]:.3g} per galaxy per Gyr."
    if expected > 0.1:
        text += " R x T is not << 1, so f = R x T over-estimates."
    return TheoryComparison(f, lo, hi, estimate.level, estimate.method, float(rate_per_gyr), t, expected, ratio,
                            inside, implied[0], implied[1], implied[2], text)


# --------------------------------------------------------------------------------------------------------------------
# The numbers written for display


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

