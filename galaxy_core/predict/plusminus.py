"""What a page shows with a spread: "value ± c × spread" and the sentence that says what ± is, each galaxy's
probability of lying above a threshold and the count those probabilities add up to, and the galaxies with the
largest spread.

Plain numbers in, plain numbers out, and no PyTorch: the Dataset page ranks galaxies by their spread with this
module and still draws its first frame without PyTorch (~2 s to import; see app.py). The spreads themselves come
from :mod:`galaxy_core.predict.uncertainty` (one model's views, an ensemble's members) and the factor c from
``uncertainty.held_out_scale``; :mod:`galaxy_core.predict.doubt` puts the two together for a model and a cache.

Units: values, spreads and thresholds are vote fractions in [0, 1]; c is dimensionless.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from galaxy_core import tree
from galaxy_core.mergers import fraction

SURE = 1e-9
"""A probability within this of 0 or 1 counts as certain in :func:`probabilistic_count`'s draws: with 2,000 draws a
galaxy at 1e-9 changes some draw's count with odds of 1 in 500,000, and leaving the many galaxies far from the
threshold out of the draws makes them fast."""


@dataclass(frozen=True)
class Scale:
    """The one factor a spread is multiplied by before a page shows it as "±" (``uncertainty.held_out_scale``).

    ``factor``: c, dimensionless; None when there is none (``why`` says why) and the raw spread is shown.
    ``n_fit`` / ``n_check``: galaxies c was fitted on and checked on (disjoint halves). ``coverage``: on the
    checked half, the fraction of known answers within ±1 and ±2 c spreads (``{1: ..., 2: ...}``; empty without
    c). ``report``: ``uncertainty.calibration_report`` of all those galaxies (None when too few to fit on), whose
    rank correlations a page shows beside the plot of error against spread."""

    factor: float | None
    n_fit: int = 0
    n_check: int = 0
    coverage: dict = field(default_factory=dict)
    report: dict | None = None
    why: str = ""

    def apply(self, spread):
        """``spread`` times c (float64), or as it is without c."""
        return np.asarray(spread, np.float64) * (1.0 if self.factor is None else self.factor)


def _upper_tail(z: np.ndarray) -> np.ndarray:
    """P(Z > z) for a standard normal, elementwise and exact in the tails (erfc, not 1 - cdf)."""
    return 0.5 * np.vectorize(math.erfc, otypes=[np.float64])(np.asarray(z, np.float64) / math.sqrt(2.0))


def probability_above(value, spread, threshold: float) -> np.ndarray:
    """Each galaxy's probability that its answer lies above ``threshold`` (strictly), if the answer were
    N(value, spread²) clipped to [0, 1]: P = 1 - Φ((threshold - value) / spread). ``value`` and ``spread`` are one
    answer's vote fractions (1-d, or any shapes that broadcast), the spread as the page shows it (scaled).

    Clipped (the mass below 0 read as 0 and above 1 as 1, as the model's own answers are clamped) rather than
    truncated (renormalised inside [0, 1]): clipping leaves the probability of exceeding any threshold in [0, 1)
    exactly the normal one, so a galaxy whose value is the threshold is at 0.5 however near 0 or 1 it lies, where
    truncation would push galaxies near the edges inward. Hence 1 for a threshold below 0 and 0 for one at 1 or
    above (no vote fraction exceeds 1). A zero spread gives exactly 1 for value > threshold and 0 otherwise, as the
    all-or-nothing count (``fraction.fraction_above``) counts. float64; ValueError for a NaN value or
    spread, or a negative spread."""
    v, s = np.broadcast_arrays(np.asarray(value, np.float64), np.asarray(spread, np.float64))
    if np.isnan(v).any() or np.isnan(s).any() or (s < 0).any():
        raise ValueError("values and spreads must be numbers, and spreads not negative")
    t = float(threshold)
    if not 0 <= t < 1:
        return np.full(v.shape, 0.0 if t >= 1 else 1.0)
    out = np.array(v > t, np.float64)
    unsure = s > 0
    out[unsure] = _upper_tail((t - v[unsure]) / s[unsure])
    return out


def probabilistic_count(p, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> dict:
    """How many galaxies lie above a threshold when each does with its own probability ``p``
    (:func:`probability_above`): the expected count sum(p) and fraction mean(p), with two intervals for two
    questions.

    - ``lo``, ``hi``: the fraction in the population these galaxies were drawn from, the percentile bootstrap over
      galaxies of the mean probability (``fraction.mean_probability``, Efron 1979): it carries the sample's
      variance, var(p) / n.
    - ``count_lo``, ``count_hi``: the count among these very galaxies, each above or not by its own coin (the
      Poisson-binomial distribution, variance sum p (1 - p), whose root is ``count_sd``): the ``level`` quantiles
      of ``n_boot`` seeded draws. Galaxies within :data:`SURE` of 0 or 1 are counted as certain, not drawn.

    Shown side by side, not combined: the population's fraction does not depend on which of these galaxies happen
    to lie above (the two variances would add up to the binomial p̄ (1 - p̄) / n). Also returns ``n``, ``level``,
    ``n_boot``, ``interval`` ("bootstrap") and ``method`` ("probabilistic"). ValueError as ``mean_probability``
    raises it (no galaxies, NaN, outside [0, 1])."""
    p = fraction.as_probabilities(p)
    mean = fraction.mean_probability(p, n_boot=n_boot, seed=seed, level=level)
    sure = int((p >= 1 - SURE).sum())
    drawn = p[(p > SURE) & (p < 1 - SURE)]
    rng = np.random.default_rng(seed)
    block = max(1, 4_000_000 // max(len(drawn), 1))  # ~30 MB of draws at a time, as mean_probability resamples
    counts = np.concatenate([sure + (rng.random((min(block, n_boot - s), len(drawn))) < drawn).sum(axis=1)
                             for s in range(0, int(n_boot), block)])
    a = (1 - level) / 2
    count_lo, count_hi = np.quantile(counts, [a, 1 - a], method="inverted_cdf")
    return {"expected_count": float(p.sum()), "fraction": mean.fraction, "lo": mean.lo, "hi": mean.hi,
            "count_lo": int(count_lo), "count_hi": int(count_hi), "count_sd": float(np.sqrt((p * (1 - p)).sum())),
            "n": len(p), "level": level, "n_boot": int(n_boot), "interval": "bootstrap", "method": "probabilistic"}


def least_sure(spread, k: int) -> np.ndarray:
    """Positions of the ``k`` largest of ``spread`` (one answer's spread per galaxy, 1-d), largest first; ties keep
    their order (a stable sort), so a gallery does not reshuffle between runs. One answer rather than an average
    over the tree: the spread of an answer a galaxy's tree never reaches (a disk question for a smooth galaxy) is
    small because the value is, and would dilute the answer the page is about."""
    return np.argsort(-np.asarray(spread, np.float64), kind="stable")[: max(int(k), 0)]


WIDEST = 0.5
"""The largest standard deviation a vote fraction can have (half its values at 0, half at 1): :func:`plus_minus`
writes a wider scaled spread as "± >0.5", since the normal it stands for would say nothing about where in [0, 1] the
answer lies."""


def plus_minus(value: float, spread: float) -> str:
    """One value with its (scaled) spread for a one-line caption: ``0.83 ± 0.05``; a spread below 0.01 keeps two
    significant digits (``0.83 ± 0.0031``), which two decimals would show as a misleading ``± 0.00``; one above
    :data:`WIDEST` reads ``0.83 ± >0.5``."""
    if spread > WIDEST:
        return f"{value:.2f} ± >{WIDEST:g}"
    return f"{value:.2f} ± {spread:.2f}" if spread >= 0.01 else \
        f"{value:.2f} ± {fraction.number_text(spread, 2)}"


def plus_minus_texts(values, spreads, scale: Scale) -> list[str]:
    """:func:`plus_minus` of each galaxy: one answer's values and raw spreads, the spreads scaled by ``scale``."""
    return [plus_minus(float(v), float(s)) for v, s in zip(values, scale.apply(spreads))]


def answer_texts(spread, scale: Scale, column: str, values=None) -> list[str]:
    """:func:`plus_minus_texts` of one answer (a Kaggle column) for every galaxy of an ``uncertainty.Spread``;
    ``values`` (one per galaxy) in place of the spread's own, where a page shows another prediction of the same
    galaxies (its one-view answer, say) and the spread beside it."""
    j = tree.column_index(column)
    return plus_minus_texts(spread.value[:, j] if values is None else values, spread.spread[:, j], scale)


def ranking_text(rho: dict) -> str:
    """Spearman's ρ of the error with the spread and with sqrt(v (1 - v)) of the value alone, and the spread's
    partial ρ with the value held fixed (``doubt.Calibration.ranking``), in one sentence that says which ranks the
    errors better: a spread worth showing beats the value alone."""
    said = (f"Spearman's ρ of the error with the spread {rho['spread']:.2f}, with sqrt(v (1 - v)) of the value "
            f"alone {rho['value']:.2f}, and of the spread with the value held fixed {rho['partial']:.2f}")
    if not all(math.isfinite(rho[k]) for k in ("spread", "value")):
        return f"{said}: too few known answers to say."
    if rho["spread"] > rho["value"]:
        return f"{said}: the spread ranks the errors better than the value alone."
    return (f"{said}: the value alone ranks the errors as well or better, so the spread says little more than "
            "how near 0.5 an answer is.")


def spread_words(members: int, views: int) -> str:
    """What a raw spread is the spread of, in words: one model's views, or an ensemble's members."""
    if members > 1:
        return f"the {members} members' answers (each averaged over {views} views)"
    return f"the {views} views (the galaxy turned and mirrored)"


def plus_minus_meaning(scale: Scale, members: int, views: int) -> str:
    """The sentence a page puts once above values shown with "±": what ± is, the factor, how many galaxies it was
    fitted on and how often the volunteers' values lay within ±1 and ±2 on the others; or, without a factor, that
    the spread is raw and uncalibrated, and why."""
    what = spread_words(members, views)
    if scale.factor is None:
        small = (" On held-out galaxies the shipped model's views spread about ten times less than its errors "
                 "(docs/uncertainty.md): read it as a lower bound.") if members == 1 else ""
        return f"± is the raw spread of {what}, uncalibrated: {scale.why}.{small}"
    cov = scale.coverage
    return (f"± is c × the spread of {what}, c = {scale.factor:.3g} fitted on {scale.n_fit:,} held-out galaxies so "
            f"that 68 % of the volunteers' values lie within ±1; on the other {scale.n_check:,}, {100 * cov[1]:.0f} % "
            f"lie within ±1 and {100 * cov[2]:.0f} % within ±2 (95 % for a Gaussian).")
