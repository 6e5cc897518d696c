"""Astronomers' tables in and out: CSV, FITS binary tables, VOTable and Parquet, chosen by the file's extension.

Reading gives a pandas frame with each column's unit (FITS ``TUNITn``, VOTable ``unit``, the units astropy keeps in
Parquet and ECSV metadata); CSV is read with pandas, which is the fastest of the four. Writing keeps the units, adds
the table's provenance (``provenance``: the command, model, checkpoint hash, field of view and date) to the file's
metadata (FITS header cards, VOTable ``INFO`` elements, Parquet and ECSV metadata), gives the sky columns their
IVOA UCDs in a VOTable (``pos.eq.ra;meta.main`` ..., so that TOPCAT finds the positions by itself), and is atomic
(``atomic.atomic_write_bytes``): a killed write leaves the previous file or none, never half of one.

Plain CSV carries neither units nor provenance: it stays the Kaggle submission format that other tools read. ECSV
(astropy's CSV with a YAML header) is CSV with both.
"""

from __future__ import annotations

import datetime
import io
import os
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from galaxy_core import tree
from galaxy_core.atomic import atomic_write_bytes
from galaxy_core.errors import DataError

FORMATS = {".csv": "csv", ".ecsv": "ecsv", ".fits": "fits", ".fit": "fits", ".fts": "fits", ".fits.gz": "fits",
           ".vot": "votable", ".votable": "votable", ".xml": "votable", ".parquet": "parquet", ".pq": "parquet"}
"""File extensions (lower case) and the table format each means."""
DOWNLOADS = {"CSV": "csv", "FITS": "fits", "VOTable": "votable", "Parquet": "parquet"}
"""The formats a dashboard offers for download, by the name a user knows."""
EXTENSION = {"csv": "csv", "ecsv": "ecsv", "fits": "fits", "votable": "vot", "parquet": "parquet"}
"""The file extension each format is written with."""
ANSWER_UNIT = ""
"""Vote fractions are dimensionless (a fraction of the volunteers who answered, cumulative through the tree)."""
SKY_UCDS = {"ra": "pos.eq.ra;meta.main", "dec": "pos.eq.dec;meta.main", "GalaxyID": "meta.id;meta.main"}
"""IVOA UCD1+ words (Preite Martinez et al. 2007) that tell TOPCAT and Aladin which columns are the position."""


def table_format(path: str | os.PathLike) -> str:
    """``"csv"``, ``"ecsv"``, ``"fits"``, ``"votable"`` or ``"parquet"`` from a file name's extension (case-
    insensitive; ``.fits.gz`` is FITS). Raises DataError naming the extensions known for any other."""
    name = Path(path).name.lower()
    for ext in sorted(FORMATS, key=len, reverse=True):
        if name.endswith(ext):
            return FORMATS[ext]
    raise DataError(f"{path}: unknown table format; name the file with one of {', '.join(sorted(FORMATS))}")


def is_table(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an existing file with a table extension (:data:`FORMATS`)."""
    try:
        table_format(path)
    except DataError:
        return False
    return Path(path).is_file()


@dataclass
class SkyTable:
    """A table as read: the frame, each column's unit (astropy's string, only for columns that have one) and the
    file's metadata (FITS header keywords, VOTable INFO, Parquet/ECSV meta)."""

    frame: pd.DataFrame
    units: dict[str, str] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)


def csv_header(path: str | os.PathLike) -> list[str]:
    """The column names of a CSV file (stripped of spaces), read from its first line alone."""
    try:
        return [str(c).strip() for c in pd.read_csv(path, nrows=0, encoding="utf-8-sig").columns]
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise DataError(f"{path}: not a readable CSV table ({e})") from e


def read_table(path: str | os.PathLike, text_columns: tuple[str, ...] = ()) -> SkyTable:
    """Read a CSV, FITS (the first table HDU), VOTable (the first table) or Parquet file by its extension.

    ``text_columns`` (names, case-insensitive) are read as text exactly as written: ids such as ``"007"`` stay
    ``"007"`` in a CSV, and integer ids of a FITS table become their decimal text. Byte strings become ``str``;
    masked (null) cells become NaN in number columns and ``""`` in text columns. Columns of several values per row
    (FITS vectors, VOTable arrays) cannot be a frame's column and are left out, named in ``meta["dropped"]``.

    Raises DataError naming the file for a missing or unreadable file and for an unknown extension.
    """
    path = Path(path)
    fmt = table_format(path)
    if not path.is_file():
        raise DataError(f"table {path} does not exist")
    text = {c.lower() for c in text_columns}
    try:
        if fmt == "csv":
            header = csv_header(path)
            frame = pd.read_csv(path, encoding="utf-8-sig", skipinitialspace=True,
                                dtype={c: str for c in header if c.lower() in text},
                                keep_default_na=True)
            frame.columns = [str(c).strip() for c in frame.columns]
            return SkyTable(frame, {}, {})
        from astropy.table import Table

        with warnings.catch_warnings():
            # Unknown unit strings and VOTable spec quibbles are warnings; the unit is kept as written.
            warnings.simplefilter("ignore")
            if fmt == "votable":  # parsed by hand to keep the table's INFO elements, which Table.read drops
                from astropy.io.votable import parse_single_table

                vot = parse_single_table(path)
                table = vot.to_table()
                table.meta.update({i.name.upper(): i.value for i in vot.infos})
            else:
                table = Table.read(path, format=fmt)
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001 - astropy and pyarrow raise many kinds; the user needs the file and why
        raise DataError(f"{path}: not a readable {fmt.upper()} table ({type(e).__name__}: {e})") from e
    return _from_astropy(table, text)


def _from_astropy(table, text: set[str]) -> SkyTable:
    units, data, dropped = {}, {}, []
    for name in table.colnames:
        col = table[name]
        if col.ndim > 1:
            dropped.append(name)
            continue
        if col.unit is not None:
            units[name] = col.unit.to_string()
        masked = getattr(col, "mask", None) is not None and bool(np.any(col.mask))
        if masked and col.dtype.kind in "fiu":  # a null number is NaN, as pandas has it
            values = np.where(np.asarray(col.mask), np.nan, np.asarray(col.filled(0), dtype=np.float64))
        elif masked and col.dtype.kind == "b":  # a null flag stays unknown: pandas' nullable boolean
            values = pd.array(np.asarray(col.filled(False)), dtype="boolean")
            values[np.asarray(col.mask)] = pd.NA
        else:  # a null text cell is empty
            values = np.asarray(col.filled("" if col.dtype.kind in "SU" else None) if masked else col)
        if values.dtype.kind == "S":
            values = np.char.decode(values, "utf-8", "replace")
        if isinstance(values, np.ndarray) and values.dtype.byteorder not in "=|":  # FITS is big-endian
            values = values.astype(values.dtype.newbyteorder("="))
        if name.lower() in text:
            values = np.asarray(values).astype(str)
        elif values.dtype.kind == "U":
            values = values.astype(object)
        data[name] = values
    meta = {k: v for k, v in table.meta.items() if isinstance(v, (str, int, float, bool))}
    if dropped:
        meta["dropped"] = dropped
    return SkyTable(pd.DataFrame(data), units, meta)


# --------------------------------------------------------------------------------------------------------------------
# Columns by their usual names


def find_column(columns, names: tuple[str, ...], given: str | None = None, what: str = "column",
                source: str = "the table") -> str | None:
    """The column of ``columns`` that ``given`` names (case-insensitive; DataError with a "did you mean" when there
    is none), else the first of ``names`` present (case-insensitive, in the order of ``names``), else None."""
    by_lower = {str(c).lower(): str(c) for c in columns}
    if given is not None:
        if given.lower() in by_lower:
            return by_lower[given.lower()]
        import difflib

        # A close spelling, else a column that starts with the name (RA for RAJ2000 or RA_deg).
        close = difflib.get_close_matches(given.lower(), list(by_lower), n=1) or \
            [c for c in by_lower if c.startswith(given.lower())][:1]
        hint = f"; did you mean {by_lower[close[0]]!r}?" if close else ""
        raise DataError(f"{source} has no {what} column {given!r} (columns: {', '.join(map(str, columns))}){hint}")
    return next((by_lower[n.lower()] for n in names if n.lower() in by_lower), None)


def insert_columns(frame: pd.DataFrame, columns: pd.DataFrame, after: str = "GalaxyID") -> pd.DataFrame:
    """``frame`` with ``columns`` (row for row) inserted after its column ``after``. A column whose name ``frame``
    has already is left out where it holds the same values as text (a catalogue's own ``GalaxyID``), and is
    otherwise kept as ``<name>_cat``, so that no table has two columns of one name."""
    columns = columns.reset_index(drop=True)
    keep = {}
    for c in columns.columns:
        if c not in frame.columns:
            keep[c] = c
        elif not columns[c].astype(str).reset_index(drop=True).equals(frame[c].astype(str).reset_index(drop=True)):
            keep[c] = f"{c}_cat"
    at = list(frame.columns).index(after) + 1
    return pd.concat([frame.iloc[:, :at].reset_index(drop=True), columns[list(keep)].rename(columns=keep),
                      frame.iloc[:, at:].reset_index(drop=True)], axis=1)


# --------------------------------------------------------------------------------------------------------------------
# Writing


def provenance(command: str | None = None, model: str | None = None, checkpoint_hash: str | None = None,
               fov: float | None = None, source: str | None = None, **more) -> dict:
    """What a written table records of how it was made: the command (default: this process's command line), the
    model, the hash of its weights, the field of view (fraction of the 424 px Kaggle frame), the data it was made
    from, the date (UTC, ISO 8601) and galaxy_core's version. None values are left out."""
    from . import __version__

    command = command if command is not None else " ".join(["python -m galaxy_core", *sys.argv[1:]])
    d = {"creator": f"galaxy_core {__version__}", "date": datetime.datetime.now(datetime.timezone.utc)
         .strftime("%Y-%m-%dT%H:%M:%SZ"), "command": command, "model": model, "ckpthash": checkpoint_hash,
         "fov": fov, "source": source, **more}
    return {k: v for k, v in d.items() if v is not None}


def answer_units(frame: pd.DataFrame) -> dict[str, str]:
    """The unit of every Galaxy Zoo answer column in ``frame`` (dimensionless) and ``*_std`` beside them."""
    answers = set(tree.COLUMNS)
    return {c: ANSWER_UNIT for c in frame.columns if c in answers or (c.endswith("_std") and c[:-4] in answers)}


def _to_astropy(frame: pd.DataFrame, units: dict[str, str], meta: dict):
    from astropy import units as u
    from astropy.table import Column, MaskedColumn, Table

    table = Table(meta={_meta_key(k): _meta_value(v) for k, v in meta.items()})
    names = {c: f"Galaxy Zoo 2 vote fraction: {tree.question_of(c).text} {n.split('--')[-1]}"
             for c, n in tree.NAMES.items()}
    for name in frame.columns:
        series, mask = frame[name], None
        if not isinstance(series.dtype, np.dtype) and series.dtype.kind in "iufb":
            # pandas' nullable Int64/boolean/Float64 (a crossmatch's unmatched rows): a masked column of the same
            # type; to_numpy() would give floats (an int64 id above 2**53 rounded) or, for booleans, text.
            mask = series.isna().to_numpy()
            values = series.to_numpy(dtype=series.dtype.numpy_dtype, na_value=False if series.dtype.kind == "b" else 0)
        else:
            values = series.to_numpy()
        if values.dtype == object:  # text (ids, names, paths): astropy needs a fixed-width str column
            values = np.array(["" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
                               for v in values], dtype=str)
        unit = units.get(name)
        col = (MaskedColumn(values, mask=mask, name=str(name), description=names.get(name)) if mask is not None
               else Column(values, name=str(name), description=names.get(name)))
        if unit is not None:
            col.unit = u.Unit(unit, parse_strict="silent") if unit else u.dimensionless_unscaled
        table.add_column(col)
    return table


def _meta_key(k: str) -> str:
    return str(k).upper() if len(str(k)) <= 8 else str(k)  # longer keys: FITS HIERARCH cards, as given


def _meta_value(v):
    return v if isinstance(v, (str, int, float, bool)) else str(v)


def write_table(frame: pd.DataFrame, path: str | os.PathLike, *, units: dict[str, str] | None = None,
                meta: dict | None = None, float_format: str | None = None,
                sky: tuple[str, str] | None = None) -> Path:
    """Write ``frame`` atomically as the format ``path``'s extension names (:func:`table_format`).

    ``units``: column -> astropy unit string (the answer columns are dimensionless by default); ``meta``: the
    provenance (:func:`provenance`) and anything else to record, as FITS header cards (keys of up to 8 characters
    upper-cased, longer ones as HIERARCH cards), VOTable INFO elements, or Parquet/ECSV metadata. Plain CSV keeps
    neither (``float_format`` applies to it, e.g. ``"%.6f"`` for the Kaggle format). ``sky``: the RA and Dec
    columns (degrees, ICRS), given their UCDs in a VOTable (default: columns named ``ra`` and ``dec``). Returns the
    path written.
    """
    path = Path(path)
    atomic_write_bytes(path, table_bytes(frame, table_format(path), units, meta, float_format, sky,
                                         gzip=path.name.lower().endswith(".gz")))
    return path


def table_bytes(frame: pd.DataFrame, fmt: str, units: dict[str, str] | None = None, meta: dict | None = None,
                float_format: str | None = None, sky: tuple[str, str] | None = None, gzip: bool = False) -> bytes:
    """The file :func:`write_table` writes, as bytes, for ``fmt`` (``"csv"``, ``"ecsv"``, ``"fits"``,
    ``"votable"`` or ``"parquet"``): for a download button, or a message."""
    units = {**answer_units(frame), **(units or {})}
    meta = dict(meta or {})
    if fmt == "csv":
        return frame.to_csv(index=False, float_format=float_format, lineterminator="\n").encode("utf-8")
    table = _to_astropy(frame, units, meta)
    with warnings.catch_warnings():
        # Long metadata keys become HIERARCH cards, which astropy announces with a warning each.
        warnings.simplefilter("ignore")
        if fmt == "votable":
            data = _votable_bytes(table, sky)
        elif fmt in ("fits", "ecsv"):
            buf = io.BytesIO() if fmt == "fits" else io.StringIO()
            table.write(buf, format="fits" if fmt == "fits" else "ascii.ecsv")
            data = buf.getvalue() if fmt == "fits" else buf.getvalue().encode("utf-8")
            if gzip:
                import gzip as gz

                data = gz.compress(data, mtime=0)
        else:  # parquet: pyarrow writes to a path only
            with tempfile.TemporaryDirectory() as tmp:
                table.write(Path(tmp) / "t.parquet", format="parquet")
                data = (Path(tmp) / "t.parquet").read_bytes()
    return data


def _votable_bytes(table, sky: tuple[str, str] | None) -> bytes:
    from astropy.io.votable import from_table
    from astropy.io.votable.tree import Info

    meta = dict(table.meta)
    table.meta.clear()
    vot = from_table(table)
    resource = vot.resources[0]
    for k, v in meta.items():
        resource.tables[0].infos.append(Info(name=str(k).lower(), value=str(v)))
    ucds = {"galaxyid": SKY_UCDS["GalaxyID"]}
    ra, dec = sky or ("ra", "dec")
    ucds.update({ra.lower(): SKY_UCDS["ra"], dec.lower(): SKY_UCDS["dec"]})
    for fld in resource.tables[0].fields:
        if fld.name.lower() in ucds:
            fld.ucd = ucds[fld.name.lower()]
    buf = io.BytesIO()
    # BINARY2 (VOTable 1.3, which TOPCAT, Aladin and astropy read) rather than TABLEDATA: a tenth of the time to
    # write, and the nulls of every column type survive.
    vot.to_xml(buf, tabledata_format="binary2")
    return buf.getvalue()
