"""A catalogue of galaxies on the sky: a table (CSV, FITS, VOTable or Parquet, ``tables``) naming each galaxy's id
and image file, with optional RA and Dec and any other columns (redshift, mass, magnitudes), as astronomers keep
them and as Zoobot's catalogues (``id_str``, ``file_loc``) and galaxy-datasets' ``CatalogDataset`` read them.

Columns are found by their usual names, case-insensitively, unless named (``--id-column`` ... on the command line,
``id_column`` ... in the table folder's ``galaxy_core.json``):

====== =========================================== ==========================================================
role   usual names                                 what it holds
====== =========================================== ==========================================================
id     ``id``, ``GalaxyID``, ``objid``, ``id_str``  unique per row; read as text exactly as written
file   ``file``, ``file_loc``, ``path``             the image (JPEG, PNG or FITS), relative to the table's folder
ra     ``ra``                                      right ascension, ICRS, degrees (or radians or sexagesimal)
dec    ``dec``                                     declination, ICRS, degrees (or radians or sexagesimal)
====== =========================================== ==========================================================

Any of the 37 Galaxy Zoo answer columns (``Class1.1`` ...) in the same table are the galaxies' labels. Positions
given in radians (a column unit ``rad``) or as sexagesimal text (``"12:30:49.4"``, ``"+12d23m28s"``) are converted
to degrees with astropy; RA outside [0, 360] or Dec outside [-90, 90] is refused naming the rows, since it means the
wrong units or a broken table; a row without a position (NaN) is kept, classified, and left off the sky map.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from galaxy_core import tables, tree
from galaxy_core.atomic import read_json
from galaxy_core.data.layout import FOLDER_CONFIG
from galaxy_core.errors import DataError

ID_NAMES = ("id", "GalaxyID", "objid", "id_str")
FILE_NAMES = ("file", "file_loc", "path")
RA_NAMES, DEC_NAMES = ("ra",), ("dec",)
_LABEL_TOLERANCE = 1e-4  # as catalog's: Kaggle rounds fractions to 6 decimals


@dataclass(frozen=True)
class ColumnNames:
    """Which columns hold the id, the image file, RA and Dec: as named by the user (None: found by the usual
    names), or, once a table is read, as found (None: the table has no such column)."""

    id: str | None = None
    file: str | None = None
    ra: str | None = None
    dec: str | None = None

    def merged(self, other: "ColumnNames") -> "ColumnNames":
        """These names, with ``other``'s where these are None (the command line over ``galaxy_core.json``)."""
        return ColumnNames(**{k: v if v is not None else getattr(other, k) for k, v in asdict(self).items()})

    @staticmethod
    def from_settings(folder: str | os.PathLike) -> "ColumnNames":
        """The ``id_column``, ``file_column``, ``ra_column`` and ``dec_column`` of ``folder``'s galaxy_core.json."""
        cfg = Path(folder) / FOLDER_CONFIG
        d = read_json(cfg) if cfg.is_file() else {}
        return ColumnNames(*(d.get(f"{k}_column") for k in ("id", "file", "ra", "dec")))


@dataclass
class SkyCatalogue:
    """A catalogue table as read: per galaxy (row) its id, image path ('' where the table names none), the 37
    labels (NaN where unknown) and the table's own columns (RA and Dec in degrees), with what was noticed."""

    path: Path
    ids: np.ndarray  # (N,) str
    paths: list[str]
    labels: np.ndarray  # (N, 37) float32
    columns: pd.DataFrame
    units: dict[str, str]
    names: ColumnNames
    problems: list[str] = field(default_factory=list)


def _rows(index: np.ndarray, ids=None) -> str:
    """``row 3 (id 42), row 7 (id 9)`` (1-based data rows) for the first five, and how many more."""
    index = np.asarray(index)
    shown = ", ".join(f"row {k + 1}" + (f" (id {ids[k]})" if ids is not None else "") for k in index[:5])
    return shown + (f" and {len(index) - 5} more" if len(index) > 5 else "")


def read_sky_catalogue(path: str | os.PathLike, names: ColumnNames | None = None) -> SkyCatalogue:
    """Read a catalogue table (see the module docstring). Rows whose image file is missing are skipped and listed in
    ``problems``; so are rows without a position, which are kept.

    Raises DataError naming the table, rows and column for: no id column (and no file column to name the galaxies
    by), an empty or repeated id, a named column that is missing (with a "did you mean"), RA or Dec out of range or
    not readable as an angle, a unit that is not an angle, and a label that is not a number in [0, 1].
    """
    path = Path(path)
    names = (names or ColumnNames()).merged(ColumnNames.from_settings(path.parent))
    if tables.table_format(path) == "csv":  # the id column is read as text, exactly as written ("007")
        id_col = tables.find_column(tables.csv_header(path), ID_NAMES, names.id, "id", str(path))
        read = tables.read_table(path, text_columns=tuple(c for c in (id_col,) if c))
    else:
        read = tables.read_table(path)
        id_col = tables.find_column(read.frame.columns, ID_NAMES, names.id, "id", str(path))
    frame, units, problems = read.frame, dict(read.units), []
    if read.meta.get("dropped"):
        problems.append(f"{path.name}: column(s) of several values per row left out: {read.meta['dropped']}")
    cols = frame.columns
    file_col = tables.find_column(cols, FILE_NAMES, names.file, "image file", str(path))
    ra_col = tables.find_column(cols, RA_NAMES, names.ra, "RA", str(path))
    dec_col = tables.find_column(cols, DEC_NAMES, names.dec, "Dec", str(path))
    if (ra_col is None) != (dec_col is None):
        raise DataError(f"{path}: has {'RA' if ra_col else 'Dec'} column {ra_col or dec_col!r} but no "
                        f"{'Dec' if ra_col else 'RA'} column (name it with --{'dec' if ra_col else 'ra'}-column)")
    if id_col is None and file_col is None:
        raise DataError(f"{path}: no id column (one of {', '.join(ID_NAMES)}, or name it with --id-column) and no "
                        f"image file column (one of {', '.join(FILE_NAMES)}); columns: {', '.join(map(str, cols))}")
    files = None if file_col is None else frame[file_col].astype(object).to_numpy()
    if id_col is None:
        ids = np.array([Path(str(f)).name.split(".")[0] for f in files], dtype=str)
        problems.append(f"{path.name}: no id column; each galaxy is named by its image file")
    else:
        column = frame[id_col]
        if column.dtype.kind == "f" and np.all(np.isfinite(column)) and np.all(column == np.round(column)):
            column = column.astype(np.int64)  # integer ids that a table stored as floats: 100008, not "100008.0"
        ids = column.astype(object).fillna("").astype(str).str.strip().to_numpy(dtype=object).astype(str)
    empty = np.flatnonzero(ids == "")
    if len(empty):
        raise DataError(f"{path}: empty id in column {id_col!r} on {_rows(empty)}")
    seen = pd.Series(ids).duplicated(keep=False).to_numpy()
    if seen.any():
        raise DataError(f"{path}: {len(set(ids[seen]))} id(s) repeated in column {id_col or file_col!r}: "
                        f"{_rows(np.flatnonzero(seen), ids)}")
    if ra_col is not None:
        ra, dec = (_angles(frame[c], units.get(c), c, what, path, ids)
                   for c, what in ((ra_col, "ra"), (dec_col, "dec")))
        frame[ra_col], frame[dec_col] = ra, dec
        units[ra_col] = units[dec_col] = "deg"
        nowhere = np.flatnonzero(np.isnan(ra) | np.isnan(dec))
        if len(nowhere):
            problems.append(f"{len(nowhere)} galaxies of {path.name} have no RA/Dec ({_rows(nowhere, ids)}): they are "
                            f"classified but left off the sky map and crossmatches")
    labels = _labels(frame, path, ids)
    # The volunteers' answers are the labels, not columns to carry: they would clash with the model's answers.
    answers = {c.lower() for c in tree.COLUMNS}
    frame = frame[[c for c in frame.columns if str(c).lower() not in answers]]
    units = {c: u for c, u in units.items() if c in frame.columns}
    paths = [""] * len(ids)
    if files is not None:
        paths, missing = _image_paths(files, path.parent)
        if len(missing):
            problems.append(f"{len(missing)} rows of {path.name} name no image file that exists and were skipped "
                            f"({_rows(missing, ids)}; e.g. {files[missing[0]]!r} in column {file_col!r}, relative "
                            f"to {path.parent})")
    return SkyCatalogue(path, ids, paths, labels, frame, units, ColumnNames(id_col, file_col, ra_col, dec_col),
                        problems)


def _image_paths(files: np.ndarray, folder: Path) -> tuple[list[str], np.ndarray]:
    """Image paths ('' where none exists; relative ones joined to ``folder``) and the rows without one. Each folder
    the table names is listed once, and the paths are matched against the listings as whole strings, with no
    per-row Python: at 100,000 rows one ``stat`` per file took most of the read. A name that is there but is no
    readable image (a folder, a broken link) is left to decoding, which reports it with its reason."""
    names = pd.Series(files, dtype=object).map(lambda f: f.strip() if isinstance(f, str) else "").astype(str)
    relative = (names != "") & ~names.map(os.path.isabs) if os.sep != "/" else \
        (names != "") & ~names.str.startswith("/")
    full = names.where(~relative, str(folder) + os.sep + names)
    where = full.str.rpartition(os.sep)[0]
    present = set()
    for d in where[full != ""].unique():
        try:
            present.update(f"{d}{os.sep}{n}" for n in os.listdir(d or os.sep))
        except OSError:  # no such folder, or not one: every file named in it is missing
            pass
    found = full.isin(present).to_numpy()
    return full.where(found, "").tolist(), np.flatnonzero(~found)


def _angles(values: pd.Series, unit: str | None, column: str, what: str, path: Path, ids: np.ndarray) -> np.ndarray:
    """RA or Dec in degrees from numbers (degrees, or radians by the column's unit) or sexagesimal text."""
    numbers = np.array(pd.to_numeric(values, errors="coerce"), dtype=np.float64)  # a copy: filled in below
    text = values.astype(object).to_numpy()
    words = [k for k in np.flatnonzero(np.isnan(numbers)) if not _blank(text[k])]
    if len(words) or (unit is not None and unit.strip()):
        # Only then: astropy takes about a second to import, which plain degrees (the demo's) need not wait for.
        from astropy import units as u
        from astropy.coordinates import Angle
    if len(words):  # sexagesimal text, e.g. "12:30:49.4" or "12h30m49.4s"
        default = u.hourangle if what == "ra" else u.deg
        for k in words:
            s = str(text[k]).strip()
            try:
                numbers[k] = Angle(s, unit=None if any(c in s for c in "hdms°") else default).deg
            except (ValueError, u.UnitsError) as e:
                raise DataError(f"{path}: {_rows([k], ids)} column {column!r} = {s!r} is not an angle ({e})") from e
    elif unit is not None and unit.strip():
        try:
            scale = u.Unit(unit).to(u.deg)
        except (ValueError, u.UnitsError) as e:
            raise DataError(f"{path}: column {column!r} has unit {unit!r}, not an angle (deg, rad or hourangle): "
                            f"give RA and Dec in degrees") from e
        numbers = numbers * scale
    low, high = (0.0, 360.0) if what == "ra" else (-90.0, 90.0)
    with np.errstate(invalid="ignore"):
        bad = np.flatnonzero((numbers < low) | (numbers > high))
    if len(bad):
        raise DataError(f"{path}: {len(bad)} value(s) of {what.upper()} column {column!r} outside [{low:g}, {high:g}] "
                        f"degrees: {_rows(bad, ids)} (e.g. {numbers[bad[0]]:g}); give ICRS degrees, or a column "
                        f"unit such as 'rad'")
    return numbers


def _blank(v) -> bool:
    """Whether a cell means "unknown": empty, None, NaN, or text such as "NaN", "null", "N/A" or "--"."""
    return v is None or (isinstance(v, float) and np.isnan(v)) or str(v).strip().lower() in \
        ("", "nan", "na", "n/a", "null", "--")


def _labels(frame: pd.DataFrame, path: Path, ids: np.ndarray) -> np.ndarray:
    """The 37 answers of every row (NaN where the table has no such column or the cell is blank)."""
    y = np.full((len(frame), tree.N_ANSWERS), np.nan, np.float32)
    by_lower = {c.lower(): c for c in tree.COLUMNS}
    for col in frame.columns:
        answer = by_lower.get(str(col).lower())
        if answer is None:
            continue
        raw = frame[col]
        values = np.array(pd.to_numeric(raw, errors="coerce"), dtype=np.float64)
        text = raw.astype(object).to_numpy()
        bad = np.zeros(len(values), bool)
        bad[[k for k in np.flatnonzero(np.isnan(values)) if not _blank(text[k])]] = True
        with np.errstate(invalid="ignore"):
            bad |= (values < -_LABEL_TOLERANCE) | (values > 1 + _LABEL_TOLERANCE)
        if bad.any():
            k = np.flatnonzero(bad)
            raise DataError(f"{path}: column {col!r} must hold vote fractions in [0, 1] (blank = unknown): "
                            f"{_rows(k, ids)}, e.g. {text[k[0]]!r}")
        y[:, tree.column_index(answer)] = np.clip(values, 0.0, 1.0)
    return y
