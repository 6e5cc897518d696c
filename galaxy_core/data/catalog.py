"""Reading a data folder: which galaxies it holds, their image files and their labels.

A data folder follows the Kaggle "Galaxy Zoo - The Galaxy Challenge" layout (the names are in ``settings``)::

    images_training_rev1/<GalaxyID>.jpg     labelled galaxies (JPEG or PNG, any size, any colour mode; or FITS)
    images_test_rev1/<GalaxyID>.jpg         unlabelled galaxies (optional)
    training_solutions_rev1.csv             GalaxyID + the 37 vote fractions Class1.1 ... Class11.6
    training_solutions_*.csv                more label files (optional), e.g. with only some of the 37 columns

Absent or blank label cells are *unknown*, never 0: they are masked out of losses and metrics.

FITS cutouts (``fitsimages``: ``<GalaxyID>.fits``, or ``<GalaxyID>_g/_r/_i.fits`` triples) are listed as one galaxy
each. Which part of the 424 px frame the images show comes from ``images.resolve_field``; a summary of a folder
(sizes, memory, the decision-tree check) from ``explore.summarize``.
"""

from __future__ import annotations

import csv
import difflib
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from galaxy_core import tree
from galaxy_core.data import fitsimages
from galaxy_core.data.catalogue_table import ColumnNames, read_sky_catalogue
from galaxy_core.data.fitsimages import FitsSettings
from galaxy_core.data.images import resolve_field, stat_reason
from galaxy_core.data.layout import FOLDER_CONFIG, LABEL_CSV, LABELLED_DIR, UNLABELLED_DIR, folder_catalogue
from galaxy_core.errors import DataError
from galaxy_core.tables import is_table
from galaxy_core.tree import galaxy_kind

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
"""Raster images listed; FITS files (``fitsimages.FITS_EXTENSIONS``, ``.fits.gz`` among them) are listed too."""
# Kaggle's fractions are rounded to 6 decimals; anything further outside [0, 1] is a broken file.
_LABEL_TOLERANCE = 1e-4
# Label cells read as unknown (case-insensitive, after stripping spaces): blank, and what pandas and spreadsheets
# write for a missing value. Any other non-number is an error.
_UNKNOWN_CELLS = frozenset({"", "nan", "na", "n/a", "null"})


class DataWarning(UserWarning):
    """Something in the input data was repaired or dropped (e.g. an identical repeated label row): the message says
    what and where. Issued by :func:`read_labels` when the caller does not collect such notes itself."""


# --------------------------------------------------------------------------------------------------------------------
# Reading a folder


@dataclass
class Catalog:
    """The galaxies of one data folder: ids, image paths and labels (NaN where unknown).

    ``kind`` per galaxy: ``"full"`` (all 37 answers known), ``"partial"`` (some) or ``"unlabelled"``.
    ``problems`` lists what was skipped or looks wrong, for the user to read.
    """

    root: Path
    ids: np.ndarray  # (N,) str
    paths: list[str]
    labels: np.ndarray  # (N, 37) float32, NaN = unknown
    source_fov: float
    label_files: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    fits: FitsSettings = field(default_factory=FitsSettings)  # for FITS cutouts: frame_arcsec and the composite
    columns: pd.DataFrame | None = None
    """The catalogue's own columns (RA and Dec in degrees), one row per galaxy in ``ids`` order; None without one."""
    units: dict[str, str] = field(default_factory=dict)
    """The unit of each of ``columns`` that has one (astropy's string)."""
    sky: ColumnNames = field(default_factory=ColumnNames)
    """The catalogue's id, image file, RA and Dec columns (None where it has none)."""
    table: Path | None = None
    """The catalogue table the galaxies were read from, when they were (``root`` is then its folder)."""
    absent: dict[str, list[str]] = field(default_factory=dict)
    """Per label file (by name) that lacks some of the 37 answer columns, those columns: its galaxies' answers there
    are unknown. Only files of some answers are here (the full label file must have them all)."""

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def mask(self) -> np.ndarray:
        return ~np.isnan(self.labels)

    @property
    def kind(self) -> np.ndarray:
        return galaxy_kind(self.mask)

    def counts(self) -> dict[str, int]:
        return {k: int((self.kind == k).sum()) for k in ("full", "partial", "unlabelled")}


def sort_ids(ids: list[str]) -> list[str]:
    # Kaggle ids are integers; sort them as numbers so that "99999" comes before "100008".
    return sorted(ids, key=lambda s: (0, int(s), s) if s.isdigit() else (1, 0, s))


def list_images(folder: str | os.PathLike, problems: list[str] | None = None) -> dict[str, str]:
    """Paths of the images directly in ``folder`` by id (file name without extension), as strings (a ``Path`` takes
    about three times the memory, which counts at millions of files). Raises DataError on a duplicate id.

    FITS files are listed too (``fitsimages``): ``<id>.fits`` (``.fit``, ``.fts``, ``.fits.gz``, ...) as ``<id>``,
    and the band files ``<id>_g``, ``<id>_r`` and ``<id>_i`` as one galaxy ``<id>``, stored as the r file (the
    loader finds the other two). A galaxy with only some of its three band files is reported, never read as a
    single band: with a ``problems`` list it is skipped and the bands missing are named there; without one it is
    returned (as a band file it has), and decoding reports it.

    Folders, pipes and sockets with an image's name are not images and are passed over (opening a pipe would hang).
    A symbolic link that leads nowhere (to a missing file, or round a loop such as ``a.jpg -> b.jpg -> a.jpg``) is
    reported, never dropped silently: with a ``problems`` list it is skipped and described there; without one it is
    returned like any image, and decoding reports it as unreadable with its reason.
    """
    out: dict[str, str] = {}
    bands: dict[str, dict[str, str]] = {}  # the band files of each galaxy kept in g, r, i triples
    folder = Path(folder)
    if not folder.is_dir():
        return out
    with os.scandir(folder) as entries:  # closed also when a duplicate raises below
        for entry in entries:
            fits = fitsimages.split_name(entry.name)
            stem, ext = fits or os.path.splitext(entry.name)
            if (fits is None and ext.lower() not in IMAGE_EXTENSIONS) or stem.startswith("."):
                continue
            try:
                is_file = entry.is_file()
            except OSError:  # raised for a symbolic link loop
                is_file = False
            if not is_file:
                if not entry.is_symlink() or os.path.exists(entry.path):
                    continue
                if problems is not None:
                    problems.append(f"{entry.path} is a broken symbolic link and was skipped: "
                                    f"{stat_reason(entry.path)}")
                    continue
            gid, band = fitsimages.galaxy_of(stem) if fits else (stem, None)
            if band is not None:
                have = bands.setdefault(gid, {})
                if band in have:
                    raise DataError(f"two files for band {band} of galaxy {gid!r} in {folder}: "
                                    f"{os.path.basename(have[band])} and {entry.name}")
                have[band] = entry.path
                continue
            if stem in out:
                raise DataError(f"two images with id {stem!r} in {folder}: {os.path.basename(out[stem])} and "
                                f"{entry.name}")
            out[stem] = entry.path
    for gid, have in bands.items():
        missing = [b for b in fitsimages.BANDS if b not in have]
        if missing and problems is not None:
            problems.append(f"galaxy {gid} in {folder} has no {' or '.join(missing)} band file (it has "
                            f"{', '.join(sorted(os.path.basename(f) for f in have.values()))}; a galaxy in band "
                            f"files needs {gid}_g, {gid}_r and {gid}_i) and was skipped")
            continue
        if gid in out:
            raise DataError(f"two images with id {gid!r} in {folder}: {os.path.basename(out[gid])} and the band "
                            f"files {', '.join(sorted(os.path.basename(f) for f in have.values()))}")
        out[gid] = have.get("r") or next(iter(have.values()))
    return out


def _lines(where: list[tuple[int, str]]) -> str:
    """``line 3 (GalaxyID 42), line 7 (GalaxyID 9)`` for the first five, and how many more."""
    text = ", ".join(f"line {n} (GalaxyID {i})" for n, i in where[:5])
    return text + (f" and {len(where) - 5} more" if len(where) > 5 else "")


def _read_label_file(path: Path) -> tuple[pd.DataFrame, np.ndarray, list[str], list[str]]:
    """:func:`read_labels`'s work: the frame, each of its rows' line number in the file (1-based, the header is
    line 1), the notes on what was repaired or dropped, and the answer columns the file does not have.

    The Kaggle file (``layout.LABEL_CSV``) is the full label file: an answer column missing from it is refused,
    naming the column, because every galaxy in it would otherwise turn partially labelled without a word (out of
    the validation split, out of the decision-tree check). Other label files may hold any of the answers."""
    notes: list[str] = []
    try:
        # utf-8-sig drops a byte-order mark; newline="" lets csv read CRLF and quoted fields itself.
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f, skipinitialspace=True)
            header = next(reader, None)
            rows, lines = [], []
            for row in reader:
                if any(c.strip() for c in row):  # blank lines carry nothing
                    rows.append(row)
                    lines.append(reader.line_num)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{path}: not a readable CSV ({e})") from e
    if not header:
        raise DataError(f"{path}: empty file; expected a header line GalaxyID,{tree.COLUMNS[0]},...")
    # Column names are matched ignoring case and surrounding spaces, with a note when that made a difference.
    canon = {c.lower(): c for c in ("GalaxyID", *tree.COLUMNS)}
    names = [c.strip() for c in header]
    cols = [canon.get(c.lower()) for c in names]
    unknown = [n for n, c in zip(names, cols) if c is None]
    hints = {n: difflib.get_close_matches(n.lower(), canon, n=1) for n in unknown}
    hint = "; ".join(f"did you mean {canon[h[0]]!r} for {n!r}?" for n, h in hints.items() if h)
    hint = f" ({hint})" if hint else ""
    if "GalaxyID" not in cols:
        raise DataError(f"{path}: no 'GalaxyID' column (columns are {names[:8]}...){hint}")
    if unknown:
        raise DataError(f"{path}: unknown column(s) {unknown}; expected GalaxyID and some of the 37 answers "
                        f"{tree.COLUMNS[0]} ... {tree.COLUMNS[-1]}{hint}")
    twice = sorted({c for c in cols if cols.count(c) > 1})
    if twice:
        raise DataError(f"{path}: column(s) {twice} appear more than once in the header")
    absent = [c for c in tree.COLUMNS if c not in cols]
    if absent and path.name == LABEL_CSV:
        raise DataError(f"{path}: no column {', '.join(absent[:8])}" + (f" and {len(absent) - 8} more" if
                        len(absent) > 8 else "") + f": {LABEL_CSV} is the full label "
                        f"file and needs all 37 answers, {tree.COLUMNS[0]} ... {tree.COLUMNS[-1]}. Labels for "
                        f"only some of the answers go in a file of their own beside it, training_solutions_<name>"
                        f".csv, where the answers it lacks are unknown")
    renamed = [f"{n!r} as {c!r}" for n, c in zip(names, cols) if n != c]
    if renamed:
        notes.append(f"{path.name}: column(s) read ignoring case: {', '.join(renamed[:5])}")
    ragged = [(n, len(r)) for n, r in zip(lines, rows) if len(r) != len(cols)]
    if ragged:
        raise DataError(f"{path}: the header has {len(cols)} cells but line(s) "
                        f"{', '.join(f'{n} has {k}' for n, k in ragged[:5])}" +
                        (f" and {len(ragged) - 5} more" if len(ragged) > 5 else ""))
    lines = np.array(lines, dtype=np.int64)
    frame = pd.DataFrame(rows, columns=cols, dtype=object) if rows else pd.DataFrame(columns=cols, dtype=object)
    ids = frame.pop("GalaxyID").astype(object).map(str.strip)
    empty = np.flatnonzero((ids == "").to_numpy())
    if len(empty):
        raise DataError(f"{path}: empty GalaxyID on line(s) {lines[empty][:5].tolist()}")
    # A spreadsheet that took the ids for numbers writes 100008 as "100008.0"; the images are named 100008.jpg.
    floaty = ids.str.fullmatch(r"\d+\.0*").to_numpy(dtype=bool)
    if floaty.any():
        notes.append(f"{path.name}: GalaxyID written as a decimal number on {int(floaty.sum())} line(s), read as an "
                     f"integer: {_lines(list(zip(lines[floaty].tolist(), ids[floaty])))}")
        ids[floaty] = ids[floaty].str.replace(r"\.0*$", "", regex=True)
    ids = ids.to_numpy(dtype=object).astype(str)

    numeric = np.array(frame.apply(lambda s: pd.to_numeric(s, errors="coerce")), dtype=np.float64)
    # Only the few cells that are not numbers are looked at as text: blank and "NaN" are unknown, others errors.
    raw = frame.to_numpy(dtype=object)
    bad = np.isnan(numeric)
    bad[bad] = ~pd.Series(raw[bad], dtype=object).str.strip().str.lower().isin(_UNKNOWN_CELLS).to_numpy(dtype=bool)

    def cells(mask: np.ndarray) -> str:
        where = np.argwhere(mask)
        return "; ".join(f"line {lines[r]} (GalaxyID {ids[r]}) {frame.columns[c]} = {raw[r, c]!r}"
                         for r, c in where[:5]) + (f"; and {len(where) - 5} more" if len(where) > 5 else "")

    if bad.any():
        raise DataError(f"{path}: {int(bad.sum())} non-numeric value(s): {cells(bad)}")
    with np.errstate(invalid="ignore"):
        out_of_range = (numeric < -_LABEL_TOLERANCE) | (numeric > 1 + _LABEL_TOLERANCE)
    if out_of_range.any():
        raise DataError(f"{path}: {int(out_of_range.sum())} value(s) outside [0, 1]: {cells(out_of_range)}")

    keep = _collapse_repeats(ids, numeric, [f"line {n}" for n in lines], str(path), notes)
    full = pd.DataFrame(np.nan, index=pd.Index(ids[keep], name="GalaxyID"), columns=list(tree.COLUMNS))
    if len(frame.columns):
        full[list(frame.columns)] = np.clip(numeric[keep], 0.0, 1.0)
    return full, lines[keep], notes, absent


def _collapse_repeats(ids: np.ndarray, values: np.ndarray, where: list[str], source: str,
                      notes: list[str]) -> np.ndarray:
    """The rows to keep: each id's first. An id repeated with identical values (NaN equal to NaN) is kept once, with
    a note naming it; repeated with different values, it raises DataError naming the ids and ``where`` they are."""
    first: dict[str, int] = {}
    repeats: dict[str, list[int]] = {}
    for k, gid in enumerate(ids):
        if gid in first:
            repeats.setdefault(gid, [first[gid]]).append(k)
        else:
            first[gid] = k
    same, differ = [], []
    for gid, rows in repeats.items():
        agree = all(np.array_equal(values[rows[0]], values[r], equal_nan=True) for r in rows[1:])
        (same if agree else differ).append(f"GalaxyID {gid} on {', '.join(where[r] for r in rows)}")

    def more(xs: list[str]) -> str:
        return "; ".join(xs[:5]) + (f"; and {len(xs) - 5} more" if len(xs) > 5 else "")

    if differ:
        raise DataError(f"{source}: {len(differ)} GalaxyID(s) repeated with different answers: {more(differ)}")
    if same:
        notes.append(f"{source}: {len(same)} GalaxyID(s) repeated with identical answers, kept once: {more(same)}")
    return np.array(sorted(first.values()), dtype=np.int64)


def read_labels(path: str | os.PathLike, problems: list[str] | None = None) -> pd.DataFrame:
    """Read one label CSV into a frame indexed by GalaxyID (str) with all 37 columns (NaN where absent or unknown).

    Ids are read as text, exactly (no number parsing: "007" stays "007"), without CSV quotes and spaces; ids written
    as decimals ("100008.0") are read as the integer. A UTF-8 byte-order mark and Windows line ends are fine; column
    names match ignoring case ("galaxyid"); blank lines are skipped; a cell that is blank or "NaN", "NA", "N/A" or
    "null" is unknown. An id repeated with identical answers is kept once.

    Raises DataError, naming the file and the offending lines (1-based, the header is line 1), ids or columns, for a
    missing GalaxyID column, an unknown or repeated column (with a "did you mean"), an answer column missing from the
    full label file ``training_solutions_rev1.csv`` (other files may hold some answers), a row with too few or too many
    cells, an empty id, a non-numeric or out-of-range value ([0, 1] within 1e-4; values within it are clipped) or
    an id repeated with different answers.

    Notes on what was repaired (case-insensitive column names, decimal ids, identical repeats) are appended to
    ``problems`` when given, else issued as :class:`DataWarning`.
    """
    frame, _, notes, _ = _read_label_file(Path(path))
    if problems is None:
        for note in notes:
            warnings.warn(note, DataWarning, stacklevel=2)
    else:
        problems.extend(notes)
    return frame


def folder_signature(folder: str | os.PathLike) -> tuple:
    """A cheap stand-in for a folder's fingerprint (which reads every file's metadata): the modification times and
    sizes of its image folders, label files, settings, catalogue table and cache metadata (for a catalogue table, of
    it and its folder's settings). Adding or removing an image or editing a label file changes it; the real
    fingerprint, checked by ``prepare.prepare``, catches the rest when it reruns."""
    folder = Path(folder)
    if folder.is_file():  # a catalogue table: it, and the settings beside it
        paths = [folder, folder.parent / FOLDER_CONFIG]
    else:  # the folder itself too: for a plain folder of cutouts, adding or removing one changes its time
        names = [LABELLED_DIR, UNLABELLED_DIR, FOLDER_CONFIG, "meta.json"]
        paths = [folder] + [folder / n for n in names] + sorted(folder.glob("training_solutions*.csv"))
        table = folder_catalogue(folder)
        paths += [table] if table is not None else []
    return tuple((p.name, s.st_mtime_ns, s.st_size) for p in paths if p.exists() for s in [p.stat()])


def read_catalog(root: str | os.PathLike, source_fov: float | None = None,
                 frame_arcsec: float | None = None, names: ColumnNames | None = None) -> Catalog:
    """Read a data folder in the Kaggle layout (see the module docstring), a plain folder of cutouts (every galaxy
    unlabelled, named by its file), or a catalogue table (``sky``: CSV, FITS, VOTable or Parquet naming each
    galaxy's id and image file, with RA, Dec, labels and other columns; ``names`` says which columns are which).
    A Kaggle-layout folder whose ``galaxy_core.json`` names a ``"catalogue"`` table takes that table's columns by
    id (as the built-in demo does). ``frame_arcsec`` is for FITS cutouts (:func:`folder_fits_settings`).

    Images in ``images_training_rev1`` without a label row are kept as unlabelled; label rows without an image are
    skipped; broken symbolic links are skipped. All are listed in ``Catalog.problems``, with what :func:`read_labels`
    repaired. A galaxy in several label files with identical answers is kept once, with a note; with different
    answers it raises DataError naming the files, lines and ids. Raises DataError too when the folder holds no
    images, and for what :func:`read_labels` refuses. Unreadable images are kept here: decoding reports and skips
    them (``summarize``'s ``unreadable``, ``prepare.prepare``'s ``skipped``).
    """
    root = Path(root)
    if is_table(root):
        return _read_table_catalog(root, source_fov, frame_arcsec, names)
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist" if not root.suffix else
                        f"{root} is neither a data folder nor a catalogue table that exists")
    problems: list[str] = []
    train_images = list_images(root / LABELLED_DIR, problems)
    test_images = list_images(root / UNLABELLED_DIR, problems)
    if not train_images and not test_images and not (root / LABELLED_DIR).is_dir():
        train_images = {}
        test_images = list_images(root, problems)  # a plain folder of cutouts: every galaxy unlabelled
    both = set(train_images) & set(test_images)
    if both:
        raise DataError(f"{len(both)} ids are in both {LABELLED_DIR} and {UNLABELLED_DIR}, e.g. {sorted(both)[:3]}")
    if not train_images and not test_images:
        try:  # images put in the folder itself, a common first attempt: say where they belong
            loose = list_images(root)
        except DataError:
            loose = {}
        raise DataError(f"no images in {root}, {root / LABELLED_DIR} or {root / UNLABELLED_DIR} "
                        f"(expected <GalaxyID>.jpg, .png or .fits files, in the folder itself or in the Kaggle "
                        f"layout; or give a catalogue table)" +
                        (f"; the {len(loose)} images in {root} itself are not read beside a {LABELLED_DIR}/ "
                         f"folder: move them into {UNLABELLED_DIR}/" if loose else "") +
                        (f"; {'; '.join(problems)}" if problems else ""))
    label_files = [p for p in [root / LABEL_CSV] if p.is_file()]
    label_files += sorted(p for p in root.glob("training_solutions_*.csv") if p.name != LABEL_CSV)
    frames, where, absent = [], [], {}
    for p in label_files:
        frame, lines, notes, lacks = _read_label_file(p)
        if lacks:
            absent[p.name] = lacks
        frames.append(frame)
        where += [f"{p.name} line {n}" for n in lines]
        problems += notes
    labels = pd.concat(frames) if frames else pd.DataFrame(columns=list(tree.COLUMNS), dtype=float)
    if len(frames) > 1:
        keep = _collapse_repeats(labels.index.to_numpy(dtype=str), labels.to_numpy(np.float64), where,
                                 f"{root}: label files", problems)
        labels, where = labels.iloc[keep], [where[k] for k in keep]
    images = pd.Index(list(train_images))
    orphans = np.flatnonzero(~labels.index.isin(images))
    if len(orphans):
        shown = ", ".join(f"{labels.index[k]!r} ({where[k]})" for k in orphans[:5])
        problems.append(f"{len(orphans)} label rows have no image in {LABELLED_DIR} and were skipped "
                        f"(e.g. {shown})")
    unlabelled_train = [i for i in train_images if i not in labels.index]
    if unlabelled_train and label_files:
        problems.append(f"{len(unlabelled_train)} images in {LABELLED_DIR} have no label row and are treated as "
                        f"unlabelled (e.g. {sort_ids(unlabelled_train)[:5]})")
    ids = sort_ids(list(train_images)) + sort_ids(list(test_images))
    paths = [train_images.get(i) or test_images[i] for i in ids]
    # Label rows count only for images_training_rev1: the Kaggle layout keeps images_test_rev1 unlabelled, and a row
    # for a test image is reported above as having no training image.
    y = labels.reindex(ids).to_numpy(dtype=np.float32, copy=True)
    y[len(train_images):] = np.nan
    fov, fits = resolve_field(root, paths, source_fov, frame_arcsec)
    cat = Catalog(root, np.array(ids, dtype=str), paths, y, fov, label_files, problems, fits, absent=absent)
    sky_table = folder_catalogue(root)
    return _with_sky_table(cat, sky_table, names) if sky_table else cat


def _read_table_catalog(path: Path, source_fov: float | None, frame_arcsec: float | None,
                        names: ColumnNames | None) -> Catalog:
    """A catalogue table (``catalogue_table.read_sky_catalogue``) as a Catalog: its rows with an image file, or, for a
    table without a file column, the images named by its ids in its folder (directly or in the Kaggle layout)."""
    sc = read_sky_catalogue(path, names)
    problems = list(sc.problems)
    paths = np.array(sc.paths, dtype=object)
    if sc.names.file is None:
        found = list_images(path.parent, problems)
        for sub in (LABELLED_DIR, UNLABELLED_DIR):
            found.update(list_images(path.parent / sub, problems))
        paths = np.array([found.get(i, "") for i in sc.ids], dtype=object)
        missing = np.flatnonzero(paths == "")
        if len(missing):
            problems.append(f"{len(missing)} rows of {path.name} have no image <id>.jpg, .png or .fits in "
                            f"{path.parent} and were skipped (e.g. id {sc.ids[missing[0]]})")
    keep = np.flatnonzero(paths != "")
    if not len(keep):
        raise DataError(f"{path}: none of its {len(sc.ids)} rows has an image file that exists"
                        + (f"; {problems[-1]}" if problems else ""))
    kept = [str(p) for p in paths[keep]]
    fov, fits = resolve_field(path.parent, kept, source_fov, frame_arcsec)
    columns = sc.columns.iloc[keep].reset_index(drop=True)
    return Catalog(path.parent, sc.ids[keep], kept, sc.labels[keep], fov, [path], problems, fits, columns,
                   sc.units, sc.names, path)


def _with_sky_table(cat: Catalog, table: Path, names: ColumnNames | None) -> Catalog:
    """``cat`` with the columns of the catalogue table its folder's galaxy_core.json names (``"catalogue"``),
    joined by id; galaxies the table lacks get empty cells, rows for galaxies the folder lacks are noted."""
    sc = read_sky_catalogue(table, names)
    row = pd.Series(np.arange(len(sc.ids)), index=sc.ids)
    where = row.reindex(cat.ids).to_numpy()
    lacking = int(np.isnan(where).sum())
    if lacking:
        cat.problems.append(f"{lacking} galaxies have no row in {table.name} (e.g. {cat.ids[np.isnan(where)][:3]})")
    extra = len(sc.ids) - (len(cat.ids) - lacking)
    if extra:
        cat.problems.append(f"{extra} rows of {table.name} name galaxies that are not in {cat.root}")
    columns = sc.columns.reindex(pd.Index(np.nan_to_num(where, nan=-1).astype(np.int64)))
    cat.columns, cat.units, cat.sky = columns.reset_index(drop=True), sc.units, sc.names
    cat.problems.extend(sc.problems)
    return cat
