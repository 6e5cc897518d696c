"""The merger fraction against a catalogue column (redshift, stellar mass, magnitude), and what a merger rate that
evolves with redshift expects of it.

Astronomers compare merger fractions with merger rates as a function of redshift (Lotz et al. 2011, ApJ 742, 103,
"The Major and Minor Galaxy Merger Rates at z < 1.5"). This module holds:

* :func:`fraction_by`: the fraction of galaxies above a threshold in bins of any column, with the Wilson (1927) and
  bootstrap intervals of :func:`~galaxy_core.mergers.fraction.fraction_above` per bin, the calibrated fraction when
  a calibration is given, and a flag, with the reason, on bins too small to measure (:data:`MIN_BIN_GALAXIES`,
  :data:`MAX_ZERO_UPPER`);
* :data:`LOTZ_2011` and :func:`expected_fraction`: f(z) = R(z) x T_obs with R(z) = R0 (1 + z)^m, each choice of R0
  and m with where it comes from and what of it could not be verified;
* the columns: :func:`column_values` (one column of a table as numbers, or a clear error), :func:`numeric_columns`,
  :func:`catalogue_columns`, :func:`catalogue_values` and :func:`catalogue_unit` (a cache's own catalogue columns,
  aligned with its rows), :func:`column_label`, :func:`parse_bins` and :func:`is_redshift`;
* :func:`bins_table` and :func:`shown_table`: the per-bin table as the command line writes it and as it and the
  Mergers page show it.

Units: fractions in [0, 1]; rates per galaxy per Gyr; timescales in Gyr; the column in its own units.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from galaxy_core import tree
from galaxy_core.errors import DataError
from galaxy_core.mergers.calibration import calibrated_fraction, matching_threshold
from galaxy_core.mergers.fraction import (
    DEFAULT_RATE_PER_GYR,
    MORPHOLOGY_TIMESCALE_GYR,
    as_probabilities,
    check_bootstrap,
    fraction_above,
    percent_text,
)
from galaxy_core.mergers.fraction import expected_fraction as rate_times_timescale

MIN_BIN_GALAXIES = 50
"""A bin with fewer galaxies is too small to measure: one merger in 50 already has a 95 % Wilson interval of
0.35-10.5 %, wider than the 1-5 % that the fractions compared here span."""
MAX_ZERO_UPPER = 0.05
"""A bin with no merger is too small to measure when its 95 % Wilson upper limit is above this (5 %, which takes
fewer than 73 galaxies): it cannot tell a fraction of a few per cent from none, so it is an upper limit, not a
measurement."""


# --------------------------------------------------------------------------------------------------------------------
# The fraction in bins


@dataclass(frozen=True)
class BinFraction:
    """One bin of :func:`fraction_by`: edges ``lo``, ``hi`` and their midpoint ``centre`` (the column's units),
    ``n`` galaxies and ``n_mergers`` above the threshold, the ``fraction`` (NaN when the bin is empty) with its Wilson
    and percentile bootstrap intervals, the ``calibrated`` fraction and its interval (None without a calibration),
    and ``too_small`` with the ``reason`` ("" for a bin that is measured)."""

    lo: float
    hi: float
    centre: float
    n: int
    n_mergers: int
    fraction: float
    wilson_lo: float
    wilson_hi: float
    boot_lo: float
    boot_hi: float
    calibrated: float | None
    calibrated_lo: float | None
    calibrated_hi: float | None
    too_small: bool
    reason: str


@dataclass(frozen=True)
class FractionBy:
    """What :func:`fraction_by` found: the ``bins``, the ``edges`` used (for a count of equal-count bins, fewer
    than asked when values tie: ``requested_bins`` says how many were), the galaxies left out because their value is
    NaN or infinite (``n_missing``) or outside the edges (``n_outside``), the settings, and the calibrated threshold
    (None without a calibration) with how its interval was made."""

    bins: tuple[BinFraction, ...]
    edges: tuple[float, ...]
    requested_bins: int | None
    n_total: int
    n_missing: int
    n_outside: int
    threshold: float
    level: float
    min_galaxies: int
    max_upper: float
    calibrated_threshold: float | None
    calibrated_interval: str | None

    @property
    def rule(self) -> str:
        """The rule for bins too small to measure, in words."""
        return (f"a bin is too small to measure with fewer than {self.min_galaxies} galaxies, or with no merger and "
                f"a {self.level:.0%} upper limit above {self.max_upper:.0%}")

    @property
    def left_out(self) -> str:
        """The galaxies left out, in words ("" when none): "12 with no value, 3 outside the edges"."""
        return ", ".join(f"{n:,} {why}" for n, why in ((self.n_missing, "with no value"),
                                                       (self.n_outside, "outside the edges")) if n)

    @property
    def merged(self) -> str:
        """"" unless tied values merged equal-count bins: then, e.g., "2 equal-count bins of the 5 asked for: tied
        values merge bins"."""
        n = len(self.bins)
        if not self.requested_bins or self.requested_bins == n:
            return ""
        return (f"{n} equal-count bin{'' if n == 1 else 's'} of the {self.requested_bins} asked for: tied values "
                f"merge bins")

    def frame(self) -> pd.DataFrame:
        """One row per bin, the fields of :class:`BinFraction` as columns."""
        return pd.DataFrame([asdict(b) for b in self.bins], columns=list(BinFraction.__dataclass_fields__))


def _edges(finite: np.ndarray, edges) -> tuple[np.ndarray, int | None]:
    """Bin edges from explicit ``edges`` or a count (equal-count bins at the quantiles of ``finite``)."""
    if np.ndim(edges) == 0:
        if int(edges) != edges or int(edges) < 1:
            raise ValueError(f"a number of bins must be a whole number of at least 1, got {edges}")
        if not len(finite):
            raise ValueError("no finite values to place equal-count bins on")
        # Ties (e.g. many galaxies at one catalogue redshift) merge quantiles: fewer bins, none of them empty.
        e = np.unique(np.quantile(finite, np.linspace(0, 1, int(edges) + 1)))
        return (e if len(e) > 1 else np.r_[e, e]), int(edges)
    e = np.asarray(edges, dtype=np.float64)
    if e.ndim != 1 or len(e) < 2 or not np.isfinite(e).all() or not (np.diff(e) > 0).all():
        raise ValueError(f"bin edges must be an increasing sequence of at least two finite values, got {edges}")
    return e, None


def _calibration(calibration):
    """(threshold, labelled pairs or None) from a matched threshold or the labelled (p_pred, p_true) pairs."""
    if calibration is None:
        return None, None
    if isinstance(calibration, (int, float)):
        return float(calibration), None
    pairs = calibration.pair if hasattr(calibration, "pair") else tuple(calibration)
    if len(pairs) != 2:
        raise ValueError("calibration must be a matched threshold or the labelled (p_pred, p_true) pairs")
    return matching_threshold(*pairs), pairs


def fraction_by(values, p, edges, threshold: float = 0.5, *, n_boot: int = 2000, seed: int = 0,
                level: float = 0.95, min_galaxies: int = MIN_BIN_GALAXIES, max_upper: float = MAX_ZERO_UPPER,
                calibration=None) -> FractionBy:
    """The merger fraction (``p > threshold``, strictly, as :func:`~galaxy_core.mergers.fraction.fraction_above`
    counts) in bins of a catalogue column, e.g. redshift, to compare with merger rates against redshift (Lotz et
    al. 2011, ApJ 742, 103).

    ``values``: the column, one value per galaxy (any units); ``p``: the galaxies' Class8.6 in [0, 1], every one
    known. ``edges``: increasing bin edges, or a number of equal-count bins (edges at the quantiles of the values;
    tied values can merge bins, and ``requested_bins`` then says how many were asked for). Bins are [lo, hi), the
    last one [lo, hi]. Galaxies whose value is NaN or infinite are left out and counted (``n_missing``), as are
    those outside the edges (``n_outside``).

    Each bin has the fraction with the Wilson (1927) interval and the percentile bootstrap of
    :func:`~galaxy_core.mergers.fraction.fraction_above` (bin i seeded with ``seed + i``); an empty bin has NaN.
    ``calibration``: None; a threshold matched to the volunteers
    (:func:`~galaxy_core.mergers.calibration.matching_threshold`, e.g. ``calibrate(...)["matching_threshold"]``),
    whose per-bin fraction gets the Wilson interval with the threshold held fixed; or the labelled (p_pred, p_true)
    pairs (a :class:`~galaxy_core.mergers.calibration.CalibrationPairs`), whose per-bin fraction comes from
    :func:`~galaxy_core.mergers.calibration.calibrated_fraction`, the interval including the threshold's
    uncertainty (slower: ``n_boot`` thresholds per bin).

    A bin is too small to measure (``too_small``, ``reason`` in words) when it has fewer than ``min_galaxies``
    galaxies, or no merger and a Wilson upper limit above ``max_upper`` (:data:`MIN_BIN_GALAXIES`,
    :data:`MAX_ZERO_UPPER`); its numbers are still given. Raises ValueError for mismatched lengths, p outside
    [0, 1] or NaN, bad edges, or (with a count) no finite value.
    """
    v = np.asarray(values, dtype=np.float64)
    p = as_probabilities(p)
    check_bootstrap(n_boot, level)
    if v.ndim != 1 or len(v) != len(p):
        raise ValueError(f"values and p must be one per galaxy: shapes {np.shape(values)} and {p.shape}")
    finite = np.isfinite(v)
    e, requested = _edges(v[finite], edges)
    nb = len(e) - 1
    idx = np.full(len(v), -1)
    idx[finite] = np.searchsorted(e, v[finite], side="right") - 1
    idx[finite & (v == e[-1])] = nb - 1  # the last edge belongs to the last bin
    inside = finite & (idx >= 0) & (idx < nb)
    t_cal, pairs = _calibration(calibration)
    bins = []
    for b in range(nb):
        q = p[inside & (idx == b)]
        lo, hi = float(e[b]), float(e[b + 1])
        if not len(q):
            nan = float("nan")
            cal_nan = None if t_cal is None else nan
            bins.append(BinFraction(lo, hi, (lo + hi) / 2, 0, 0, nan, nan, nan, nan, nan, cal_nan, cal_nan, cal_nan,
                                    True, "no galaxies"))
            continue
        boot = {"n_boot": n_boot, "seed": seed + b, "level": level}
        r = fraction_above(q, threshold, **boot)
        cal = (None if t_cal is None else calibrated_fraction(q, *pairs, **boot)
               if pairs is not None else fraction_above(q, t_cal, **boot))
        if r.n < min_galaxies:
            reason = f"fewer than {min_galaxies} galaxies ({r.n})"
        elif r.n_flagged == 0 and r.hi > max_upper:
            reason = (f"no merger, and the {level:.0%} upper limit {percent_text(r.hi)} is above "
                      f"{max_upper:.0%}: an upper limit, not a measurement")
        else:
            reason = ""
        bins.append(BinFraction(lo, hi, (lo + hi) / 2, r.n, r.n_flagged, r.fraction, r.wilson_lo, r.wilson_hi,
                                r.boot_lo, r.boot_hi,
                                *((None, None, None) if cal is None else (cal.fraction, cal.lo, cal.hi)),
                                bool(reason), reason))
    interval = None if t_cal is None else ("bootstrap + Jeffreys, with the threshold's uncertainty" if pairs is not None
                                           else "Wilson, the threshold held fixed")
    return FractionBy(tuple(bins), tuple(float(x) for x in e), requested, len(v), int((~finite).sum()),
                      int((finite & ~inside).sum()), float(threshold), level, int(min_galaxies), float(max_upper),
                      t_cal, interval)


# --------------------------------------------------------------------------------------------------------------------
# What merger rates expect: Lotz et al. (2011)


@dataclass(frozen=True)
class RateEvolution:
    """A merger rate per galaxy that evolves as R(z) = ``r0`` (1 + z)^``m``, R0 in mergers per galaxy per Gyr at
    z = 0, with the ``mass_ratio`` and ``selection`` it holds for, where each number comes from (``source``) and
    what of it was not verified (``unverified``, "" when all was)."""

    label: str
    r0: float
    m: float
    m_err: float | None
    mass_ratio: str
    selection: str
    source: str
    unverified: str


LOTZ_ABSTRACT = "Lotz et al. 2011, ApJ 742, 103, abstract (arXiv:1108.2508)"
_MAJOR_R0 = ("R0: the seed paper's 'z=0 merger rate of about 0.05' quoted from Lotz et al. 2011 stands in; the "
             "paper's own fitted R0 for this selection (in its body) could not be read here and is not verified")
_PER_VOLUME = ("the abstract's exponent is for the rate per unit comoving volume; for a constant-mass or passively "
               "evolving selection the number density changes little at z < 1, so it is taken as the per-galaxy "
               "exponent (an approximation)")

LOTZ_2011: dict[str, RateEvolution] = {
    "seed": RateEvolution(
        "constant: the seed paper's z~0 rate", DEFAULT_RATE_PER_GYR, 0.0, None, "not stated", "not stated",
        "R0: the seed paper quoting Lotz et al. 2011 ('a z=0 merger rate of about 0.05'; the command line's "
        "--rate and the Mergers page's rate replace it); m = 0: no evolution, this project's default",
        "R0 is the seed paper's quote, not a value read in Lotz et al. 2011"),
    "major-mass": RateEvolution(
        "major mergers, constant stellar mass", DEFAULT_RATE_PER_GYR, 0.1, 0.4, "1:4 and closer (major)",
        "constant stellar mass (mass range not verified here)",
        f"m = 0.1 +/- 0.4: {LOTZ_ABSTRACT}, 'samples selected with constant stellar mass or passively evolving "
        f"luminosity (~ (1+z)^(+0.1 +/- 0.4))'", f"{_MAJOR_R0}; {_PER_VOLUME}"),
    "major-luminosity": RateEvolution(
        "major mergers, passively evolving luminosity", DEFAULT_RATE_PER_GYR, 0.1, 0.4, "1:4 and closer (major)",
        "passively evolving luminosity (luminosity limit not verified here)",
        f"m = 0.1 +/- 0.4: {LOTZ_ABSTRACT}, the same exponent as for constant stellar mass",
        f"{_MAJOR_R0}; {_PER_VOLUME}"),
    "major-density": RateEvolution(
        "major mergers, constant number density", DEFAULT_RATE_PER_GYR, 3.0, 1.1, "1:4 and closer (major)",
        "constant comoving number density (the density not verified here)",
        f"m = 3.0 +/- 1.1: {LOTZ_ABSTRACT}, 'samples selected with constant number density ... (1+z)^(+3.0 +/- "
        f"1.1)'", f"{_MAJOR_R0}; per unit comoving volume, and at constant number density that is per galaxy too"),
    # The abstract: the minor rate is ~3 times the major rate at z ~ 0.7 and shows little evolution. So R0 is 3 x
    # the major (constant-mass) rate at z = 0.7, and m = 0 stands for "little evolution".
    "minor": RateEvolution(
        "minor mergers (1:4 to 1:10)", 3 * DEFAULT_RATE_PER_GYR * 1.7 ** 0.1, 0.0, None,
        "1:4 to about 1:10 (minor)", "the G-M20 'total' rate minus the close-pair major rate",
        f"{LOTZ_ABSTRACT}: 'the implied minor merger rate is ~3 times the major merger rate at z ~ 0.7, and shows "
        f"little evolution with redshift'; R0 = 3 x 0.05 x 1.7^0.1 = 0.158 per Gyr, m = 0",
        "m = 0 stands for 'little evolution' (no fitted exponent verified); R0 carries the unverified major R0"),
}
"""The choices of R0 and m for :func:`expected_fraction`, by name. Only the exponents and the minor-to-major ratio
were verified, from the paper's abstract; no fitted R0 could be (see each ``unverified``)."""

DEFAULT_CHOICE = "seed"
"""The choice the command line and the Mergers page use unless told: the seed paper's constant 0.05 per Gyr."""


def rate_choice(choice: str | RateEvolution) -> RateEvolution:
    """A :data:`LOTZ_2011` choice by name (or a :class:`RateEvolution` as it is); ValueError naming the choices."""
    if isinstance(choice, RateEvolution):
        return choice
    if choice not in LOTZ_2011:
        raise ValueError(f"unknown merger-rate choice {choice!r}: choose one of {', '.join(LOTZ_2011)}")
    return LOTZ_2011[choice]


def constant_rate(rate_per_gyr: float) -> RateEvolution:
    """A rate that does not evolve, R(z) = ``rate_per_gyr`` (e.g. the ``--rate`` of the command line)."""
    return RateEvolution(f"constant {rate_per_gyr:g} per Gyr", float(rate_per_gyr), 0.0, None, "not stated",
                         "not stated", "given", "")


def expected_fraction(z, choice: str | RateEvolution = DEFAULT_CHOICE,
                      timescale: float = MORPHOLOGY_TIMESCALE_GYR):
    """The fraction of galaxies expected to be seen merging at redshift ``z``: f(z) = R(z) x T_obs, with R(z) = R0
    (1 + z)^m (Lotz et al. 2011, ApJ 742, 103) for a :data:`LOTZ_2011` ``choice`` and ``timescale`` T_obs in Gyr
    (0.3 for morphology, about 1 for close pairs). At z = 0 it is R0 x T.

    ``z``: a number or an array (NaN gives NaN); z <= -1 raises ValueError. The fits cover z < 1.5: beyond, it is an
    extrapolation. Like :func:`~galaxy_core.mergers.fraction.expected_fraction` it holds while R x T << 1.
    """
    c = rate_choice(choice)
    zz = np.asarray(z, dtype=np.float64)
    if (zz <= -1).any():
        raise ValueError(f"redshift must be above -1, got {np.min(zz)}")
    f = rate_times_timescale(c.r0, timescale) * (1 + zz) ** c.m
    return float(f) if np.ndim(z) == 0 else f


def expected_curve(lo: float, hi: float, choice: str | RateEvolution = DEFAULT_CHOICE,
                   timescale: float = MORPHOLOGY_TIMESCALE_GYR, n: int = 50) -> pd.DataFrame:
    """:func:`expected_fraction` on ``n`` redshifts from ``lo`` to ``hi`` (columns ``z``, ``expected``), for a
    figure."""
    z = np.linspace(lo, hi, n)
    return pd.DataFrame({"z": z, "expected": expected_fraction(z, choice, timescale)})


@dataclass(frozen=True)
class Expectation:
    """What a merger rate expects over a range of redshift: the ``choice`` (:class:`RateEvolution`), the
    ``timescale`` T_obs in Gyr, the ``curve`` (:func:`expected_curve`) and its ``name`` for a legend."""

    choice: RateEvolution
    timescale: float
    curve: pd.DataFrame
    name: str


def expectation_for(column: str, lotz: str | None, *, rate_per_gyr: float, timescale: float, lo: float,
                    hi: float) -> Expectation | None:
    """The expectation the command line and the Mergers page draw beside the fraction against ``column``, from
    redshift ``lo`` to ``hi``: the :data:`LOTZ_2011` choice ``lotz``, where :data:`DEFAULT_CHOICE` (or None, for a
    column named like a redshift, :func:`is_redshift`) stands for the constant rate ``rate_per_gyr`` that the page
    and the command line already take (0.05 per Gyr unless changed). None when ``lotz`` is None and the column is
    not a redshift: a rate against redshift says nothing of a mass or a magnitude."""
    if lotz is None and not is_redshift(column):
        return None
    c = constant_rate(rate_per_gyr) if lotz in (None, DEFAULT_CHOICE) else rate_choice(lotz)
    name = f"R x T = {c.r0:.3g} (1 + z)^{c.m:g} per Gyr x {timescale:g} Gyr" + ("" if c.m == 0 and lotz in (
        None, DEFAULT_CHOICE) else f" (Lotz et al. 2011, {c.label})")
    return Expectation(c, float(timescale), expected_curve(lo, hi, c, timescale), name)


# --------------------------------------------------------------------------------------------------------------------
# The columns


REDSHIFT_NAMES = frozenset({"z", "redshift", "zspec", "z_spec", "specz", "spec_z", "zphot", "z_phot", "photoz",
                            "photo_z", "zbest", "z_best"})
"""Column names (compared in lower case) taken as a redshift, against which the expectation is drawn unasked."""
NOT_CATALOGUE = frozenset({"GalaxyID", *tree.COLUMNS, *tree.NAMES.values()})
"""Columns that are not the catalogue's own: the id and the 37 answers (by Kaggle and by descriptive name)."""


def is_redshift(column: str) -> bool:
    """Whether ``column`` is named like a redshift (:data:`REDSHIFT_NAMES`)."""
    return str(column).strip().lower() in REDSHIFT_NAMES


def numeric_columns(frame: pd.DataFrame) -> list[str]:
    """The catalogue columns of ``frame`` one can bin by: numeric (not boolean), with at least one finite value,
    and not the id or the 37 answers (:data:`NOT_CATALOGUE`), in the frame's order."""
    out = []
    for c in frame.columns:
        s = frame[c]
        if (str(c) not in NOT_CATALOGUE and pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)
                and np.isfinite(s.to_numpy(dtype=np.float64)).any()):
            out.append(str(c))
    return out


def column_values(frame: pd.DataFrame, column: str, source: str = "the table") -> np.ndarray:
    """Column ``column`` of ``frame`` as float64; blank cells become NaN (left out and counted by
    :func:`fraction_by`). DataError, naming ``source``, when the column is missing (with the columns there are and
    the closest names) or holds values that are not numbers."""
    if column not in frame.columns:
        names = [str(c) for c in frame.columns]
        lower = {n.lower(): n for n in names}
        close = ([lower[column.lower()]] if column.lower() in lower else
                 difflib.get_close_matches(column, names, n=3, cutoff=0.5))
        shown = [n for n in names if n not in NOT_CATALOGUE] or names
        raise DataError(f"{source}: no column {column!r}"
                        + (f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else "")
                        + f"; its columns are {', '.join(shown[:20])}"
                        + (f" and {len(shown) - 20} more" if len(shown) > 20 else "")
                        + ("" if shown is names else ", GalaxyID and the answers"))
    s = frame[column]
    if pd.api.types.is_bool_dtype(s):
        raise DataError(f"{source}: column {column!r} is true/false, not a number to bin by")
    v = pd.to_numeric(s, errors="coerce")
    blank = s.isna() | s.astype(str).str.strip().eq("")
    bad = v.isna() & ~blank
    if bad.any():
        raise DataError(f"{source}: column {column!r} is not numeric: {int(bad.sum()):,} value(s) such as "
                        f"{s[bad].iloc[0]!r}")
    return v.to_numpy(dtype=np.float64)


def catalogue_columns(cache) -> list[str]:
    """The numeric catalogue columns (:func:`numeric_columns`) of a cache's ``columns`` frame (the catalogue's own
    columns aligned with its rows); [] when the cache has none."""
    frame = getattr(cache, "columns", None)
    return [] if frame is None else numeric_columns(frame)


def catalogue_values(cache, rows, column: str) -> np.ndarray:
    """Catalogue column ``column`` of a cache for its rows ``rows`` (:func:`column_values`), aligned with
    predictions made for those rows. DataError when the cache has no catalogue or it is not one row a galaxy."""
    frame = getattr(cache, "columns", None)
    if frame is None:
        raise DataError(f"{cache.path}: this data has no catalogue columns")
    if len(frame) != len(cache):
        raise DataError(f"{cache.path}: the catalogue has {len(frame):,} rows for {len(cache):,} galaxies")
    return column_values(frame, column, "the catalogue")[np.asarray(rows, dtype=np.int64)]


def catalogue_unit(cache, column: str) -> str | None:
    """The unit of a cache's catalogue column (its ``units``, from a FITS, VOTable or Parquet catalogue), or None."""
    return (getattr(cache, "units", None) or {}).get(column) or None


def column_label(column: str, unit: str | None = None) -> str:
    """A column's name with its unit for an axis or a heading: "z", "r_mag (mag)"."""
    return f"{column} ({unit})" if unit else column


def parse_bins(text: str) -> int | list[float]:
    """Bins as typed: a whole number of equal-count bins ("5") or comma-separated edges ("0,0.05,0.1,0.2").
    ValueError saying which form is wanted."""
    parts = [s.strip() for s in str(text).split(",") if s.strip()]
    try:
        if len(parts) == 1 and parts[0].isdigit() and int(parts[0]) >= 1:
            return int(parts[0])
        edges = [float(s) for s in parts]
    except ValueError:
        edges = []
    if len(edges) >= 2 and all(math.isfinite(x) for x in edges) and all(a < b for a, b in zip(edges, edges[1:])):
        return edges
    raise ValueError(f"bins {text!r}: give a number of equal-count bins (e.g. 5) or increasing comma-separated "
                     f"edges (e.g. 0,0.05,0.1,0.2)")


# --------------------------------------------------------------------------------------------------------------------
# The table, as written and as shown


def bins_table(result: FractionBy, column: str, *, expected: str | RateEvolution | None = None,
               timescale: float = MORPHOLOGY_TIMESCALE_GYR) -> pd.DataFrame:
    """The per-bin table the command line writes (``--out``): ``column`` names the edges' and centre's columns
    (``<column>_lo``, ``<column>_hi``, ``<column>_centre``), then :class:`BinFraction`'s numbers, ``expected``
    (:func:`expected_fraction` at the bin centre, when a choice is given) and ``flag`` (the reason a bin is too
    small, "" when measured). The calibrated columns appear only with a calibration."""
    f = result.frame().rename(columns={"lo": f"{column}_lo", "hi": f"{column}_hi", "centre": f"{column}_centre"})
    if result.calibrated_threshold is None:
        f = f.drop(columns=["calibrated", "calibrated_lo", "calibrated_hi"])
    if expected is not None:
        f["expected"] = expected_fraction(f[f"{column}_centre"].to_numpy(), expected, timescale)
    flag = f.pop("reason")  # last, after the expectation
    return f.drop(columns=["too_small"]).assign(flag=flag)


def shown_table(table: pd.DataFrame, column: str) -> pd.DataFrame:
    """:func:`bins_table` written for reading: the bin as "lo - hi", the fractions as percentages with two
    significant digits (:func:`~galaxy_core.mergers.fraction.percent_text`), each interval as "lo - hi"."""
    def pct(x) -> str:
        return "-" if x is None or not math.isfinite(x) else percent_text(x)

    def interval(lo, hi) -> list[str]:
        return [f"{pct(a)} - {pct(b)}" if a is not None and math.isfinite(a) else "-" for a, b in zip(lo, hi)]

    # Four significant digits: equal-count edges fall anywhere (0.000240091 - 0.0720151 reads as 0.0002401 - 0.07202).
    out = pd.DataFrame({column: [f"{a:.4g} - {b:.4g}" for a, b in zip(table[f"{column}_lo"], table[f"{column}_hi"])],
                        "galaxies": table["n"], "mergers": table["n_mergers"],
                        "fraction": [pct(x) for x in table["fraction"]],
                        "95 % Wilson": interval(table["wilson_lo"], table["wilson_hi"]),
                        "bootstrap": interval(table["boot_lo"], table["boot_hi"])})
    if "calibrated" in table:
        out["calibrated"] = [f"{pct(f)} ({i})" if i != "-" else "-" for f, i in
                             zip(table["calibrated"], interval(table["calibrated_lo"], table["calibrated_hi"]))]
    if "expected" in table:
        out["expected"] = [pct(x) for x in table["expected"]]
    out["flag"] = table["flag"]
    return out
