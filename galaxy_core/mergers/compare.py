"""The merger fraction checked every way the project knows, as the command line and the dashboard show it: several
methods on the same galaxies (the model, the volunteers, and the non-parametric morphology cuts of
:mod:`galaxy_core.mergers.morphology`), the choices the Mergers page and the ``mergers``/``morphology`` commands
share, and :func:`report`, which ties the estimates of :mod:`galaxy_core.mergers.fraction` to the calibration of
:mod:`galaxy_core.mergers.calibration`.

* :func:`compare_methods` and :func:`morphology_check`: each method's fraction (Wilson 1927 interval) and the
  overlap of what they flag; :func:`other_methods` names the verdicts beside the morphology cuts, the same way for
  the page and the command line; :func:`fractions_table`, :func:`overlap_shares` and :func:`cut_examples` shape them
  for display;
* :func:`default_subset` and :func:`most_confident`: which galaxies the page opens on and which flagged ones it shows;
* :func:`prediction_table` and :func:`read_predictions` (a predictions table in any format of
  :mod:`galaxy_core.tables`, with any catalogue columns it carries) and :func:`report` (a :class:`MergerReport`).

Units: fractions and vote fractions are in [0, 1]; rates are per galaxy per Gyr; timescales are in Gyr. The figures
are in :mod:`galaxy_core.show.figures`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

from galaxy_core import tables, tree
from galaxy_core.errors import DataError
from galaxy_core.mergers import morphology
from galaxy_core.mergers.calibration import VOLUNTEER_MERGER, calibrated_fraction, precision_recall
from galaxy_core.mergers.fraction import (
    DEFAULT_RATE_PER_GYR,
    MERGER_COLUMN,
    MORPHOLOGY_TIMESCALE_GYR,
    PROB_TOLERANCE,
    FractionEstimate,
    TheoryComparison,
    compare_with_theory,
    fraction_above,
    mean_probability,
    percent_text,
    wilson_interval,
)

FLAGGED_SHOWN = 24
"""How many of the flagged galaxies the Mergers page shows (:func:`most_confident`)."""
EXAMPLES_SHOWN = 12
"""How many random examples of each morphology cut the Mergers page shows (:func:`cut_examples`)."""


# --------------------------------------------------------------------------------------------------------------------
# Several methods on the same galaxies


def compare_methods(flags: dict[str, np.ndarray], level: float = 0.95) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The merger fraction by each method and how far their samples overlap, on the same galaxies.

    ``flags``: method name -> bool array, one entry per galaxy, the same galaxies in the same order for every
    method (e.g. the Gini-M20 and asymmetry criteria of :mod:`galaxy_core.mergers.morphology`, a model above a
    threshold, the volunteers' Class8.6 > 0.5), restricted to the galaxies every method could judge.

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
"""The merger flags of a :func:`galaxy_core.mergers.morphology.morphology_table`, by the names the check shows."""


def morphology_check(table: pd.DataFrame, others: dict[str, np.ndarray] | None = None, known=None,
                     level: float = 0.95) -> dict:
    """The independent check: the Gini-M20 and asymmetry merger fractions of a morphology table beside other
    methods' (a model above a threshold, the volunteers), on the galaxies that every method judges.

    ``table``: :func:`galaxy_core.mergers.morphology.morphology_table` (or ``cache_table``) rows; ``others``: name ->
    a bool per row of ``table``; ``known``: a bool per row, False where some method has no verdict (e.g. no volunteer
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


@dataclass(frozen=True)
class OtherMethods:
    """The verdicts that :func:`morphology_check` compares with the morphology cuts, for one set of galaxies.

    ``flags``: name -> a bool per galaxy; ``known``: a bool per galaxy, False where the volunteers' Class8.6 is
    unknown (None when no volunteer verdict is among the flags); ``marked``: the name of the model's verdict that
    the Gini-M20 plane marks (the calibrated one where there is one; None without a model).
    """

    flags: dict[str, np.ndarray]
    known: np.ndarray | None
    marked: str | None


def other_methods(cache, rows, threshold: float = 0.5, *, p=None, p_rows=None,
                  calibrated: float | None = None) -> OtherMethods:
    """The model's and the volunteers' merger verdicts on the galaxies ``rows`` of ``cache`` (a
    :class:`galaxy_core.data.cache.GalaxyCache`), named alike on the Mergers page and in the ``morphology`` command.

    ``p``: the model's Class8.6, one per row of ``p_rows`` (sorted cache rows that include ``rows``; default
    ``rows`` itself), or None for no model; the model flags ``p > threshold`` and, with ``calibrated`` (a matching
    threshold, :func:`~galaxy_core.mergers.calibration.matching_threshold`), ``p > calibrated`` too. The volunteers
    flag Class8.6 > :data:`~galaxy_core.mergers.calibration.VOLUNTEER_MERGER` when any of the galaxies has a known
    Class8.6; ``known`` then says which.
    """
    rows = np.asarray(rows, dtype=np.int64)
    flags: dict[str, np.ndarray] = {}
    marked = None
    if p is not None:
        p = np.asarray(p, dtype=np.float64)
        if p_rows is not None:
            p = p[np.searchsorted(np.asarray(p_rows), rows)]
        marked = f"model (Class8.6 > {threshold:g})"
        flags[marked] = p > threshold
        if calibrated is not None:
            marked = f"model, calibrated (Class8.6 > {calibrated:.3f})"
            flags[marked] = p > calibrated
    col = tree.column_index(MERGER_COLUMN)
    known = np.asarray(cache.mask[rows, col], dtype=bool)
    if not known.any():
        return OtherMethods(flags, None, marked)
    flags[f"volunteers (Class8.6 > {VOLUNTEER_MERGER:g})"] = cache.labels[rows, col] > VOLUNTEER_MERGER
    return OtherMethods(flags, known, marked)


def fractions_table(fractions: pd.DataFrame) -> pd.DataFrame:
    """The fractions of :func:`compare_methods` as the Mergers page lists them: ``method``, ``n_flagged``,
    ``fraction`` and the 95 % Wilson interval written out (:func:`~galaxy_core.mergers.fraction.percent_text`, so
    that small fractions keep two significant digits)."""
    interval = [f"{percent_text(a)} - {percent_text(b)}" for a, b in zip(fractions["lo"], fractions["hi"])]
    return fractions[["method", "n_flagged", "fraction"]].assign(**{"95 % interval": interval})


def overlap_shares(overlap: pd.DataFrame) -> pd.DataFrame:
    """The overlap of :func:`compare_methods` as shares: cell (a, b) is the share of a's mergers that b also flags,
    with the count in brackets, e.g. "40% (12)"; "-" where a flags none (no share to take)."""
    counts = overlap.to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        share = counts / np.diag(counts)[:, None]
    return pd.DataFrame([[("-" if np.isnan(v) else f"{v:.0%}") + f" ({c:,})" for v, c in zip(sv, cv)]
                         for sv, cv in zip(share, counts)], index=overlap.index, columns=overlap.columns)


def cut_examples(table: pd.DataFrame, k: int = EXAMPLES_SHOWN, seed: int = 0) -> dict[str, tuple[np.ndarray, int]]:
    """Random examples of what each morphology cut selects: for every :data:`MORPHOLOGY_METHODS` name, up to ``k``
    positions in ``table`` (sorted) of galaxies the cut flags, and how many it flags. Seeded (one generator drawn
    from in the order of :data:`MORPHOLOGY_METHODS`), so the same table shows the same examples on every run."""
    rng = np.random.default_rng(seed)
    out = {}
    for col, name in MORPHOLOGY_METHODS.items():
        flagged = np.flatnonzero(table[col].to_numpy(dtype=bool))
        out[name] = np.sort(rng.choice(flagged, min(k, len(flagged)), replace=False)), len(flagged)
    return out


# --------------------------------------------------------------------------------------------------------------------
# Which galaxies the Mergers page shows

SUBSETS = {"val": "validation (never trained on)", "labelled": "labelled", "unlabelled": "unlabelled"}
"""The Mergers page's choices of galaxies, with their labels. ``val`` means what the Evaluation page's validation
means for a checkpoint: the labelled galaxies the model never learnt from (``evaluation.unseen_labelled``)."""


def default_subset(cache, subsets) -> str:
    """The first of ``subsets`` (names of :meth:`galaxy_core.data.cache.GalaxyCache.indices`) with galaxies in
    ``cache``, else the first: a folder of unlabelled galaxies opens on them, not on an empty choice of labelled
    ones. ``val`` is counted as ``labelled``: it stands for the labelled galaxies a model never trained on
    (``evaluation.unseen_labelled``), which only the model narrows down."""
    return next((s for s in subsets if len(cache.indices("labelled" if s == "val" else s))), subsets[0])


def most_confident(p, threshold: float, limit: int = FLAGGED_SHOWN) -> np.ndarray:
    """Positions in ``p`` of the galaxies above ``threshold`` (strictly, as
    :func:`~galaxy_core.mergers.fraction.fraction_above` counts), highest first, at most ``limit``. Ties keep their
    order (a stable sort), so a gallery does not reshuffle from one run to the next."""
    p = np.asarray(p, dtype=np.float64)
    order = np.argsort(-p, kind="stable")
    return order[p[order] > threshold][:limit]


# --------------------------------------------------------------------------------------------------------------------
# Reading predictions, and the report of the command line and the dashboard


def prediction_table(path: str | os.PathLike) -> tables.SkyTable:
    """A predictions table (:func:`galaxy_core.tables.read_table`: CSV, FITS, VOTable or Parquet by its extension)
    with its columns' units: ``GalaxyID`` (as text, stripped), ``Class8.6`` (checked; its descriptive name
    ``odd_feature--merger`` is taken too, and renamed) and every other column it holds, e.g. the catalogue's own
    (``z``, masses, magnitudes), which :func:`~galaxy_core.mergers.evolution.column_values` reads for the fraction
    against a column.

    Raises DataError, naming the file, for an unreadable file or unknown extension, a missing column, no rows, or a
    Class8.6 that is blank, non-numeric or outside [0, 1].
    """
    table = tables.read_table(path, text_columns=("GalaxyID",))
    df = table.frame
    col = next((c for c in (MERGER_COLUMN, tree.NAMES[MERGER_COLUMN]) if c in df.columns), None)
    if "GalaxyID" not in df.columns or col is None:
        raise DataError(f"{path}: a predictions table needs the columns GalaxyID and {MERGER_COLUMN} "
                        f"(odd_feature--merger); found {list(df.columns)[:8]}")
    if df.empty:
        raise DataError(f"{path}: no rows")
    p = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=np.float64)
    bad = np.isnan(p) | (p < -PROB_TOLERANCE) | (p > 1 + PROB_TOLERANCE)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"{path}: {int(bad.sum())} {col} value(s) blank, non-numeric or outside [0, 1], e.g. "
                        f"{df[col].iloc[i]!r} for GalaxyID {df['GalaxyID'].iloc[i]}")
    df = df.rename(columns={col: MERGER_COLUMN}).assign(**{MERGER_COLUMN: np.clip(p, 0.0, 1.0)})
    df["GalaxyID"] = df["GalaxyID"].astype(str).str.strip()
    return tables.SkyTable(df, table.units, table.meta)


def read_predictions(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a predictions table (:func:`prediction_table`: the Kaggle CSV, or FITS, VOTable or Parquet with
    ``GalaxyID`` and at least ``Class8.6``) and return (ids as str, Class8.6 as float64); DataError as
    :func:`prediction_table` says."""
    df = prediction_table(path).frame
    return df["GalaxyID"].to_numpy(), df[MERGER_COLUMN].to_numpy(dtype=np.float64)


@dataclass(frozen=True)
class MergerReport:
    """Everything the command line (``mergers``) and the dashboard's Mergers page show for one set of predicted
    Class8.6 values (:func:`report`). Fractions are in [0, 1]; rates per galaxy per Gyr; timescales in Gyr."""

    threshold_estimate: FractionEstimate
    """The fraction above the threshold (:func:`~galaxy_core.mergers.fraction.fraction_above`), Wilson interval."""
    mean_estimate: FractionEstimate
    """The mean predicted Class8.6 (:func:`~galaxy_core.mergers.fraction.mean_probability`), bootstrap interval."""
    theory: TheoryComparison
    """``threshold_estimate`` against f = R x T (:func:`~galaxy_core.mergers.fraction.compare_with_theory`)."""
    theory_mean: TheoryComparison
    """``mean_estimate`` against f = R x T."""
    calibration: dict | None
    """The :func:`~galaxy_core.mergers.calibration.calibrate` dict given to :func:`report`, or None."""
    matched_estimate: FractionEstimate | None
    """The fraction at the calibration's matching threshold: the one the volunteers would have flagged if the model
    errs here as on the labelled galaxies; None without a calibration."""
    precision_recall: dict | None
    """:func:`~galaxy_core.mergers.calibration.precision_recall` on the labelled galaxies at the threshold; None
    without them."""

    @property
    def fraction(self) -> float:
        """The thresholded fraction, ``threshold_estimate.fraction``."""
        return self.threshold_estimate.fraction

    @property
    def lo(self) -> float:
        """Its Wilson interval's lower end."""
        return self.threshold_estimate.lo

    @property
    def hi(self) -> float:
        """Its Wilson interval's upper end."""
        return self.threshold_estimate.hi

    @property
    def n(self) -> int:
        """Galaxies counted."""
        return self.threshold_estimate.n

    @property
    def threshold(self) -> float:
        """The Class8.6 threshold, a galaxy being a merger above it."""
        return self.threshold_estimate.threshold

    def to_dict(self) -> dict:
        """The report as a JSON-ready dict, as the command line's ``--json`` prints it: the thresholded estimate's
        ``fraction``, ``lo``, ``hi``, ``n`` and ``threshold`` at the top level for scripts, then every field, the
        estimates and comparisons as dicts."""
        def plain(v):  # the estimates and comparisons as dicts; the calibration's dicts and None as they are
            return v.to_dict() if isinstance(v, (FractionEstimate, TheoryComparison)) else v

        return {"fraction": self.fraction, "lo": self.lo, "hi": self.hi, "n": self.n, "threshold": self.threshold,
                **{f.name: plain(getattr(self, f.name)) for f in fields(self)}}


def report(p, threshold: float = 0.5, *, rate_per_gyr: float = DEFAULT_RATE_PER_GYR,
           timescale_gyr: float = MORPHOLOGY_TIMESCALE_GYR, calibration: dict | None = None,
           n_boot: int = 2000, seed: int = 0, level: float = 0.95, labelled: tuple | None = None,
           mean: FractionEstimate | None = None, matched: FractionEstimate | None = None) -> MergerReport:
    """Everything the command line (``mergers``) and the dashboard's Mergers page show for one set of predicted
    Class8.6 values ``p`` (in [0, 1], one per galaxy), a galaxy being a merger above ``threshold``.

    Returns a :class:`MergerReport`: ``threshold_estimate`` and ``mean_estimate``, each against f = R x T
    (``rate_per_gyr`` x ``timescale_gyr``) as ``theory`` and ``theory_mean``; ``calibration`` (the
    :func:`~galaxy_core.mergers.calibration.calibrate` dict given, or None) and, with one, ``matched_estimate``:
    ``fraction_above`` at its matching threshold, the fraction the volunteers would have flagged if the model errs
    on these galaxies as on the labelled ones. With ``labelled`` = (p_pred, p_true) of the labelled galaxies
    (:func:`~galaxy_core.mergers.calibration.calibration_pairs`), ``matched_estimate`` comes from
    :func:`~galaxy_core.mergers.calibration.calibrated_fraction` instead, whose interval includes the threshold's
    uncertainty, and ``precision_recall`` is :func:`~galaxy_core.mergers.calibration.precision_recall` on them at
    ``threshold`` (the volunteers' merger: above the calibration's ``volunteer_threshold``, else 0.5); without
    ``labelled`` it is None. Intervals are at ``level`` from ``n_boot`` resamples seeded with ``seed``.

    ``mean`` and ``matched``: the ``mean_probability`` and ``calibrated_fraction`` results for these
    arguments, when already computed. Their bootstraps are the slow part and depend on neither the threshold, the
    rate nor the timescale, so the dashboard computes them once and passes them in as its sliders move.
    """
    boot = {"n_boot": n_boot, "seed": seed, "level": level}
    th = fraction_above(p, threshold, **boot)
    mean = mean_probability(p, **boot) if mean is None else mean
    matched_estimate = pr = None
    if labelled is not None:
        volunteer_threshold = calibration["volunteer_threshold"] if calibration else 0.5
        matched_estimate = (calibrated_fraction(p, *labelled, volunteer_threshold, **boot) if matched is None
                            else matched)
        pr = precision_recall(*labelled, threshold, volunteer_threshold)
    elif calibration is not None:
        matched_estimate = fraction_above(p, calibration["matching_threshold"], **boot)
    return MergerReport(threshold_estimate=th, mean_estimate=mean,
                        theory=compare_with_theory(th, rate_per_gyr, timescale_gyr),
                        theory_mean=compare_with_theory(mean, rate_per_gyr, timescale_gyr),
                        calibration=calibration, matched_estimate=matched_estimate, precision_recall=pr)
