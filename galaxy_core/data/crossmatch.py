"""Crossmatching by position: a second catalogue's columns (a spectroscopic redshift, a photometric flag) brought to
every galaxy of a first one that has a counterpart within a given separation.

The match is astropy's nearest neighbour on the sky (``SkyCoord.match_to_catalog_sky``: a KD-tree over unit vectors,
so RA wraps at 0/360 deg and the poles need no special case; the separation it reports is the great-circle angle by
Vincenty's formula), then a cut at ``max_sep``. It is a *left join*: every row of the left catalogue is kept, in its
order and with its index; a matched row gets the right catalogue's columns and the separation, an unmatched one gets
missing values (NaN for floats, ``<NA>`` for integers and booleans, which become pandas' nullable types so that a
64-bit id such as an SDSS objID is never rounded through a float).

Positions are RA and Dec in degrees, both catalogues in ICRS (FK5 J2000 differs from ICRS by well under 0.1 arcsec,
below any usual ``max_sep``); nothing is transformed and no proper motion is applied, so for stars from catalogues of
different epochs the separation includes the motion between them. Each left row takes its *nearest* right row: two left
rows can take the same right row (``MatchReport.matched_more_than_once`` counts such right rows; the joined table keeps
both rows), and a right row that is nobody's nearest is left out. This is TOPCAT's "best match for each Table 1 row" and
astropy's documented recipe (astropy docs, "Matching Catalogs", ``match_to_catalog_sky``), not a one-to-one assignment.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from numbers import Number
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from galaxy_core import tables
from galaxy_core.errors import DataError

if TYPE_CHECKING:  # astropy is imported where a match is made: it takes most of a second, and the dashboard
    from astropy import units as u  # and the command line import this module before they need it

SEP_COLUMN = "sep_arcsec"
"""The separation column added to the joined table: the great-circle angle to the match, in arcsec (NaN where none)."""


@dataclass(frozen=True)
class MatchReport:
    """What a crossmatch found. Left rows: ``matched + unmatched + no_position == n_left``.

    ``matched``: left rows whose nearest right row is within ``max_sep_arcsec`` (inclusive).
    ``unmatched``: left rows with a position but no right row within it (or an empty right catalogue).
    ``no_position``: left rows whose RA or Dec is missing or not finite; never matched, counted apart.
    ``matched_more_than_once``: right rows that are the match of two or more left rows (e.g. a close pair of left
    sources around one spectroscopic target); ``left_sharing`` the left rows involved.
    ``right_no_position``: right rows with a missing position, left out of the search.
    ``columns``: each right column brought over, mapped to its name in the joined table (the suffix added where it
    clashed); ``sep_column`` the separation's column (``sep_arcsec``, suffixed if the left table already had one).
    """

    n_left: int
    n_right: int
    matched: int
    unmatched: int
    no_position: int
    matched_more_than_once: int
    left_sharing: int
    right_no_position: int
    max_sep_arcsec: float
    columns: dict[str, str] = field(default_factory=dict)
    sep_column: str = SEP_COLUMN

    def summary(self) -> str:
        """The report in words, one count a line, as the command line prints it."""
        more = (f" (the match of {self.left_sharing:,} left rows)" if self.matched_more_than_once else "")
        return "\n".join([
            f"crossmatch within {self.max_sep_arcsec:g} arcsec, {self.n_left:,} left rows against "
            f"{self.n_right:,} right rows:",
            f"  matched:                {self.matched:,}",
            f"  unmatched:              {self.unmatched:,}",
            f"  no position:            {self.no_position:,}",
            f"  matched more than once: {self.matched_more_than_once:,} right rows{more}",
        ] + ([f"  right rows without a position (never matched): {self.right_no_position:,}"]
             if self.right_no_position else []))

    def as_dict(self) -> dict:
        return asdict(self)


def parse_max_sep(max_sep: str | u.Quantity) -> u.Quantity:
    """``max_sep`` as an angle Quantity: an astropy Quantity, or a string astropy parses ("1arcsec", "0.5 arcsec",
    "2 arcmin", "0.001 deg"). A bare number is refused, since 1 could mean 1 arcsec or 1 degree (3600 times more);
    so is a negative, NaN, dimensionless or non-angle value. Zero is allowed (exact coincidences only) and so is
    infinity (every positioned left row takes its nearest right row, however far)."""
    from astropy import units as u

    if isinstance(max_sep, (Number, np.number, np.ndarray)) and not isinstance(max_sep, u.Quantity):
        raise DataError(f"max_sep={max_sep!r} has no unit: say which, e.g. '{max_sep}arcsec' or '{max_sep}arcmin' "
                        f"(1 arcmin = 60 arcsec, 1 deg = 3600 arcsec)")
    try:
        q = u.Quantity(max_sep)
    except (TypeError, ValueError) as e:
        raise DataError(f"max_sep={max_sep!r} is not an angle such as '1arcsec', '0.5 arcsec' or '2 arcmin' "
                        f"({e})") from None
    if q.unit == u.dimensionless_unscaled:
        raise DataError(f"max_sep={max_sep!r} has no unit: say which, e.g. '{q.value:g}arcsec' or "
                        f"'{q.value:g}arcmin'")
    if not q.unit.is_equivalent(u.deg):
        raise DataError(f"max_sep={max_sep!r} is in {q.unit}, not an angle: give e.g. '1arcsec' or '2 arcmin'")
    if not q.isscalar:
        raise DataError(f"max_sep={max_sep!r} must be one angle, not {q.size}")
    if np.isnan(q.value) or q.value < 0:
        raise DataError(f"max_sep={max_sep!r} must be a separation of zero or more, e.g. '1arcsec'")
    return q.to(u.arcsec)


def column(frame: pd.DataFrame, name: str, which: str, what: str = "wanted") -> str:
    """The column of ``frame`` that ``name`` names: itself, else the one that differs only in case (``ra`` finds a
    FITS table's ``RA``; ``tables.find_column``); a DataError naming it, with "did you mean", when there is none."""
    if name in frame.columns:
        return name
    return tables.find_column(frame.columns, (), given=name, what=what, source=f"the {which} catalogue")


def positions(frame: pd.DataFrame, coords: tuple[str, str], which: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RA and Dec of ``frame`` in degrees as float arrays, and which rows have a position (both finite).

    Column names match exactly, else whatever the case (``column``). Raises DataError for a missing column (with
    "did you mean"), a column that is not numbers (sexagesimal strings
    such as "12:30:49.4" must be converted to degrees first) and a finite Dec outside [-90, 90] (its first rows
    named). RA is taken modulo 360, so -10 is 350."""
    if isinstance(coords, str) or len(coords) != 2:
        raise DataError(f"the {which} catalogue's coordinates must be two column names (RA, Dec), got {coords!r}")
    out, names = [], []
    for name, axis in zip(coords, ("RA", "Dec")):
        name = column(frame, name, which, axis)
        names.append(name)
        col = frame[name]
        if isinstance(col, pd.DataFrame):
            raise DataError(f"the {which} catalogue has more than one column named {name!r}")
        try:
            values = pd.to_numeric(col, errors="raise").to_numpy(dtype=float, na_value=np.nan)
        except (TypeError, ValueError):
            example = col.dropna().astype(str).head(1).tolist()
            raise DataError(f"the {which} catalogue's {axis} column {name!r} is not numbers in degrees "
                            f"(e.g. {example[0] if example else '?'!r}); convert it to decimal degrees "
                            f"first") from None
        out.append(values)
    ra, dec = out
    has = np.isfinite(ra) & np.isfinite(dec)
    bad = has & (np.abs(dec) > 90)
    if bad.any():
        rows = frame.index[bad][:5].tolist()
        raise DataError(f"the {which} catalogue's Dec column {names[1]!r} has {int(bad.sum()):,} values outside "
                        f"[-90, 90] deg (rows {rows}); are the columns in degrees, and RA and Dec not swapped?")
    return np.mod(ra, 360.0), dec, has


def _out_names(left: pd.DataFrame, wanted: list, suffix: str) -> tuple[dict[str, str], str]:
    """Each right column's name in the joined table and the separation's: the suffix added to a name the left
    table (or the separation) already uses; DataError if even the suffixed name is taken."""
    taken = set(left.columns)
    names = {}
    for c in wanted:
        name = c if c not in taken and c != SEP_COLUMN else f"{c}{suffix}"
        if name in taken or name in names.values():
            raise DataError(f"the right catalogue's column {c!r} would be {name!r} in the joined table, which "
                            f"already has one: choose another suffix (now {suffix!r})")
        names[c] = name
    taken |= set(names.values())
    sep = SEP_COLUMN if SEP_COLUMN not in taken else f"{SEP_COLUMN}{suffix}"
    if sep in taken:
        raise DataError(f"the joined table already has {SEP_COLUMN!r} and {sep!r}: choose another suffix")
    return names, sep


def _nullable(series: pd.Series) -> pd.api.extensions.ExtensionArray:
    """The column as an array that can hold a missing value without changing its numbers: integers and booleans
    become pandas' nullable Int64/UInt64/boolean (a float would round ids above 2**53), the rest as they are."""
    kind = series.dtype.kind if isinstance(series.dtype, np.dtype) else ""
    if kind == "b":
        return series.astype("boolean").array
    if kind in ("i", "u"):
        return series.astype(series.dtype.name.replace("uint", "UInt").replace("int", "Int")).array
    return series.array


def crossmatch(left: pd.DataFrame, right: pd.DataFrame, max_sep: str | u.Quantity = "1arcsec", *,
               left_coords: tuple[str, str] = ("ra", "dec"), right_coords: tuple[str, str] = ("ra", "dec"),
               columns: list[str] | None = None, suffix: str = "_2") -> tuple[pd.DataFrame, MatchReport]:
    """Every row of ``left`` with the columns of its nearest ``right`` row within ``max_sep`` (a left join).

    ``left_coords``/``right_coords``: the (RA, Dec) column names (exactly, else whatever the case: ``ra`` finds
    ``RA``), decimal degrees, ICRS. ``max_sep``: an angle with
    its unit, as ``parse_max_sep`` takes ("1arcsec", "2 arcmin", ``1 * u.arcsec``); a separation equal to it
    matches. ``columns``: the right columns to bring (default all, its coordinates included); a right column whose
    name the left table has gets ``suffix`` (``ra`` -> ``ra_2``). The joined table is ``left`` (same index, order
    and columns) followed by those columns and ``sep_arcsec``, the separation in arcsec; unmatched rows and rows
    without a position (NaN RA or Dec, on either side: never matched) hold missing values there.

    Returns ``(joined, MatchReport)``. Raises DataError for a missing column (with the nearest names), positions
    that are not numbers or a Dec beyond +-90 deg, and a ``max_sep`` without an angle unit or below zero.
    """
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    sep_limit = parse_max_sep(max_sep)
    lra, ldec, lhas = positions(left, left_coords, "left")
    rra, rdec, rhas = positions(right, right_coords, "right")
    wanted = list(right.columns) if columns is None else [column(right, c, "right") for c in columns]
    if len(set(wanted)) < len(wanted):
        raise DataError(f"columns names a right column twice: {wanted}")
    names, sep_column = _out_names(left, wanted, suffix)

    # Only rows with a position enter the search: a NaN would poison the KD-tree's distances.
    lrows, rrows = np.flatnonzero(lhas), np.flatnonzero(rhas)
    take = np.full(len(left), -1, np.int64)  # the right row (position in ``right``) each left row takes, -1 none
    sep = np.full(len(left), np.nan)
    if len(lrows) and len(rrows):
        here = SkyCoord(ra=lra[lrows], dec=ldec[lrows], unit="deg", frame="icrs")
        there = SkyCoord(ra=rra[rrows], dec=rdec[rrows], unit="deg", frame="icrs")
        idx, sep2d, _ = here.match_to_catalog_sky(there)
        s = sep2d.to_value(u.arcsec)
        ok = s <= sep_limit.value
        take[lrows[ok]] = rrows[idx[ok]]
        sep[lrows[ok]] = s[ok]

    matched = take >= 0
    counts = np.bincount(take[matched], minlength=len(right)) if len(right) else np.zeros(0, np.int64)
    brought = {names[c]: _nullable(right[c]).take(take, allow_fill=True) for c in wanted}
    extra = pd.DataFrame(brought | {sep_column: sep}, index=left.index)
    joined = pd.concat([left, extra], axis=1) if len(extra.columns) else left.copy()
    report = MatchReport(
        n_left=len(left), n_right=len(right), matched=int(matched.sum()),
        unmatched=int((lhas & ~matched).sum()), no_position=int((~lhas).sum()),
        matched_more_than_once=int((counts > 1).sum()), left_sharing=int(counts[counts > 1].sum()),
        right_no_position=int((~rhas).sum()), max_sep_arcsec=float(sep_limit.value), columns=names,
        sep_column=sep_column)
    return joined, report


def joined_units(left_units: dict | None, right_units: dict | None, report: MatchReport) -> dict[str, str]:
    """The units of the joined table's columns: the left table's as they were, each right column's under its new
    name, and arcsec for the separation. Units are given as ``{column: unit}`` (strings or astropy units; a
    missing or empty one means none)."""
    units = {str(k): str(v) for k, v in (left_units or {}).items() if v is not None and str(v) != ""}
    for name, new in report.columns.items():
        unit = (right_units or {}).get(name)
        if unit is not None and str(unit) != "":
            units[new] = str(unit)
    units[report.sep_column] = "arcsec"
    return units
