"""Stage 1, reading a data folder: its images, labels and settings, and a summary of it.

A data folder follows the Kaggle "Galaxy Zoo - The Galaxy Challenge" layout::

    images_training_rev1/<GalaxyID>.jpg     labelled galaxies (JPEG or PNG, any size, any colour mode; or FITS)
    images_test_rev1/<GalaxyID>.jpg         unlabelled galaxies (optional)
    training_solutions_rev1.csv             GalaxyID + the 37 vote fractions Class1.1 ... Class11.6
    training_solutions_*.csv                more label files (optional), e.g. with only some of the 37 columns

Absent or blank label cells are *unknown*, never 0: they are masked out of losses and metrics.

Images are decoded by ``images`` (on a pool of *spawned* processes: a script that calls ``data.prepare`` or
``summarize`` needs the usual ``if __name__ == "__main__":`` guard).

Field of view. Every crop is a fraction of the original 424 x 424 Kaggle frame (GZ2 scales each cutout to
0.02 x petroR90 arcsec per pixel, so a galaxy's R90 radius is about 50 px of it). A folder of images that are
themselves a central crop of that frame declares so with ``source_fov`` (the fraction they show), passed as an
argument or written in ``galaxy_core.json`` in the folder (``{"source_fov": 0.6038}``). The packs in
``../shared/data/gz2-kaggle-96*`` are the central 256 px of the originals: ``source_fov = 256 / 424``. A model that
looks at a field ``fov`` then crops ``fov / source_fov`` of each image, so one model serves originals and packs.

FITS cutouts (``fitsimages``: ``<GalaxyID>.fits``, or ``<GalaxyID>_g/_r/_i.fits`` triples listed as one galaxy) can
carry their own field instead: a pixel scale in their header (a celestial WCS), and the frame's width in arcsec,
8.48 x a ``PETROR90`` card in the header or the folder's ``frame_arcsec`` (``{"frame_arcsec": 84.8}`` in
``galaxy_core.json``, or the argument). Each such file is then cropped to the model's field by what its own header
says, and the folder needs no ``source_fov``.

At about 570 lines this is over the package's 500-line mark: FITS cutouts made the listing (band files as one
galaxy) and the field of view (a field per file) longer, and those rules read best beside the JPEG ones they extend.
"""

from __future__ import annotations

import csv
import dataclasses
import difflib
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from . import fitsimages, tree
from .files import DataError, read_json
from .fitsimages import FitsSettings
from .images import KAGGLE_FRAME, ImageError, chunks, imap, open_image, read_headers, stat_reason

PROJECT_ROOT = Path(__file__).resolve().parent.parent
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
"""Raster images listed; FITS files (``fitsimages.FITS_EXTENSIONS``, ``.fits.gz`` among them) are listed too."""
LABELLED_DIR, UNLABELLED_DIR = "images_training_rev1", "images_test_rev1"
LABEL_CSV = "training_solutions_rev1.csv"
FOLDER_CONFIG = "galaxy_core.json"
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


def galaxy_kind(known: np.ndarray) -> np.ndarray:
    """Per galaxy, from its (N, 37) boolean mask of known answers: ``"full"`` (all 37 known), ``"partial"`` (some,
    as in ``training_solutions_partial.csv``) or ``"unlabelled"`` (none). Returns an (N,) str array."""
    known = np.asarray(known, bool)
    return np.where(known.all(1), "full", np.where(known.any(1), "partial", "unlabelled")).astype(str)


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


def _read_label_file(path: Path) -> tuple[pd.DataFrame, np.ndarray, list[str]]:
    """:func:`read_labels`'s work: the frame, each of its rows' line number in the file (1-based, the header is
    line 1), and the notes on what was repaired or dropped."""
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
    return full, lines[keep], notes


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
    missing GalaxyID column, an unknown or repeated column (with a "did you mean"), a row with too few or too many
    cells, an empty id, a non-numeric or out-of-range value ([0, 1] within 1e-4; values within it are clipped) or
    an id repeated with different answers.

    Notes on what was repaired (case-insensitive column names, decimal ids, identical repeats) are appended to
    ``problems`` when given, else issued as :class:`DataWarning`.
    """
    frame, _, notes = _read_label_file(Path(path))
    if problems is None:
        for note in notes:
            warnings.warn(note, DataWarning, stacklevel=2)
    else:
        problems.extend(notes)
    return frame


def settings_file(root: str | os.PathLike) -> Path:
    """A folder's ``galaxy_core.json``; for one of a data folder's image folders (``images_training_rev1``,
    ``images_test_rev1``) without its own, the data folder's, which speaks for its images."""
    root = Path(root)
    own = root / FOLDER_CONFIG
    if not own.is_file() and root.name in (LABELLED_DIR, UNLABELLED_DIR) and (root.parent / FOLDER_CONFIG).is_file():
        return root.parent / FOLDER_CONFIG
    return own


def folder_source_fov(root: str | os.PathLike, source_fov: float | None = None) -> float | None:
    """The fraction of the 424 px Kaggle frame that a folder's images show: the argument, else ``galaxy_core.json``.

    Returns None when neither declares it (the caller then checks that the images are 424 px originals).
    """
    if source_fov is not None:
        if not 0 < source_fov <= 1:
            raise DataError(f"source_fov must be in (0, 1], got {source_fov}")
        return float(source_fov)
    cfg = settings_file(root)
    if cfg.is_file():
        value = read_json(cfg).get("source_fov")
        if value is not None:
            return folder_source_fov(root, float(value))
    return None


def folder_fits_settings(root: str | os.PathLike, frame_arcsec: float | None = None) -> FitsSettings:
    """What a folder says about its FITS cutouts (``fitsimages.FitsSettings``): the GZ2 frame's width in arcsec, for
    files without a ``PETROR90`` card, from the argument, else ``frame_arcsec`` in ``galaxy_core.json``; and the
    composite's parameters, ``fits_composite`` there (any of ``q``, ``stretch``, ``minimum`` and ``scales``, the
    last a list of the g, r and i multipliers). Raises DataError, naming the file, for a value that is not a
    number of the right sign or an unknown key."""
    if frame_arcsec is not None:
        FitsSettings(frame_arcsec)  # checks it, with a message naming frame_arcsec
    cfg = settings_file(root)
    try:
        return fitsimages.settings_from(read_json(cfg) if cfg.is_file() else {}, frame_arcsec)
    except DataError as e:
        raise DataError(f"{cfg}: {e}") from e


def folder_is_synthetic(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` (a data folder, an image folder inside one, or a prepared cache) holds synthetic galaxies:
    its own or its parent's ``galaxy_core.json`` says ``"synthetic": true`` (as the built-in demo's does), or a
    cache's ``meta.json`` does. Missing files mean real data; so does an unreadable one (reading the folder's field
    of view reports it)."""
    folder = Path(folder)
    for f in (folder, folder.parent):
        for name in (FOLDER_CONFIG, "meta.json"):
            if (f / name).is_file():
                try:
                    return bool(read_json(f / name).get("synthetic", False))
                except (OSError, ValueError, AttributeError):
                    return False
    return False


def resolve_source_fov(root: str | os.PathLike, samples: list, source_fov: float | None = None,
                       frame_arcsec: float | None = None) -> float:
    """The fraction of the 424 px frame a folder's images show: declared (argument or ``galaxy_core.json``), else 1.0
    if the first readable of ``samples`` is a 424 x 424 original. Raises DataError for undeclared images of another
    size, since guessing would silently give the model the wrong field of view, and when none of the first 20
    samples can be used (unusable images, see :func:`images.load_image`, are passed over here: whoever decodes them
    reports and skips them).

    A FITS cutout whose header gives its own field (a pixel scale, and ``PETROR90`` or the folder's
    ``frame_arcsec``, see :func:`folder_fits_settings`) needs no declaration: when the first readable sample is one,
    this returns 1.0, the whole frame, and each such file is cropped to the model's field by its own header when
    decoded (refused if it shows less). A FITS file without them is treated like a JPEG of its size."""
    return resolve_field(root, samples, source_fov, frame_arcsec)[0]


PACK_FOV = 256 / KAGGLE_FRAME
"""The field of the central 256 px of a 424 px original (0.6038), what the 96 px Galaxy Zoo packs show."""


class FieldUnknown(DataError):
    """A folder of images that are not 424 px originals and do not say which part of the frame they show: ``sample``
    (one image's path) and its ``size`` (width, height) in px, for a user interface that asks for the field."""

    def __init__(self, sample, size: tuple[int, int], message: str):
        super().__init__(message)
        self.sample, self.size = sample, size


def resolve_field(root: str | os.PathLike, samples: list, source_fov: float | None = None,
                  frame_arcsec: float | None = None) -> tuple[float, FitsSettings]:
    """:func:`resolve_source_fov` and :func:`folder_fits_settings` of a folder together, for decoding it. When the
    field came from a FITS sample's own header, the settings refuse FITS files without one (``own_field_only``):
    with no declared ``source_fov``, cropping them as whole GZ2 frames would be a silent guess."""
    fits = folder_fits_settings(root, frame_arcsec)
    fov = folder_source_fov(root, source_fov)
    if fov is not None:
        return fov, fits
    reasons = []
    for sample in list(samples)[:20]:
        lacks = ""
        try:
            if fitsimages.is_fits(sample):
                own = fitsimages.read_field(sample, fits)
                if own.source_fov is not None:
                    return 1.0, dataclasses.replace(fits, own_field_only=True)
                size, lacks = (own.width, own.height), own.unknown
            else:
                with open_image(sample) as im:
                    size = im.size
        except ImageError as e:  # an unusable image is skipped later, with its reason
            reasons.append(str(e))
            continue
        if size == (KAGGLE_FRAME, KAGGLE_FRAME):
            return 1.0, fits
        fits_hint = (f"; or let FITS cutouts carry their own field: a celestial WCS in each header and the GZ2 "
                     f"frame's width, a PETROR90 card (arcsec) in each header or the folder's frame_arcsec "
                     f"(--frame-arcsec, or {{\"frame_arcsec\": ...}} in {FOLDER_CONFIG}) -- "
                     f"{Path(sample).name} has no {lacks}") if lacks else ""
        raise FieldUnknown(
            sample, size,
            f"{sample} is {size[0]}x{size[1]} px, not a 424x424 Kaggle original: say which part of the 424 px "
            f"frame these images show with source_fov (for example --source-fov 0.6038 for the central 256 px, as in "
            f"the gz2-kaggle-96 packs, or 1.0 for whole frames at another resolution), or write "
            f"{{\"source_fov\": ...}} into {settings_file(root)}{fits_hint}")
    raise DataError(f"none of the first images in {root} can be opened, so their field of view is unknown "
                    f"(e.g. {reasons[0] if reasons else 'no images'})")


def source_fov_origin(root: str | os.PathLike, source_fov: float | None = None, samples: list = ()) -> str:
    """Where :func:`resolve_source_fov` takes a folder's field of view from, in words for a user: ``"as given"``,
    ``"from galaxy_core.json"``, ``"each FITS file's own header"`` (when the first of ``samples`` is a FITS file)
    or ``"424 px originals"`` (the assumption for an undeclared folder of other images)."""
    if source_fov is not None:
        return "as given"
    if folder_source_fov(root) is not None:
        return f"from {FOLDER_CONFIG}"
    if len(samples) and fitsimages.is_fits(samples[0]):
        return "each FITS file's own header: its pixel scale and PETROR90, or the folder's frame_arcsec"
    return "424 px originals"


def read_catalog(root: str | os.PathLike, source_fov: float | None = None,
                 frame_arcsec: float | None = None) -> Catalog:
    """Read a data folder in the Kaggle layout (see the module docstring). ``frame_arcsec`` is for FITS cutouts
    (:func:`folder_fits_settings`).

    Images in ``images_training_rev1`` without a label row are kept as unlabelled; label rows without an image are
    skipped; broken symbolic links are skipped. All are listed in ``Catalog.problems``, with what :func:`read_labels`
    repaired. A galaxy in several label files with identical answers is kept once, with a note; with different
    answers it raises DataError naming the files, lines and ids. Raises DataError too when the folder holds no
    images, and for what :func:`read_labels` refuses. Unreadable images are kept here: decoding reports and skips
    them (``summarize``'s ``unreadable``, ``data.prepare``'s ``skipped``).
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist")
    problems: list[str] = []
    train_images = list_images(root / LABELLED_DIR, problems)
    test_images = list_images(root / UNLABELLED_DIR, problems)
    both = set(train_images) & set(test_images)
    if both:
        raise DataError(f"{len(both)} ids are in both {LABELLED_DIR} and {UNLABELLED_DIR}, e.g. {sorted(both)[:3]}")
    if not train_images and not test_images:
        try:  # images put in the folder itself, a common first attempt: say where they belong
            loose = list_images(root)
        except DataError:
            loose = {}
        raise DataError(f"no images in {root / LABELLED_DIR} or {root / UNLABELLED_DIR} "
                        f"(expected <GalaxyID>.jpg, .png or .fits files in the Kaggle layout)" +
                        (f"; the {len(loose)} images in {root} itself belong in {UNLABELLED_DIR}/ (unlabelled) or "
                         f"{LABELLED_DIR}/" if loose else "") +
                        (f"; {'; '.join(problems)}" if problems else ""))
    label_files = [p for p in [root / LABEL_CSV] if p.is_file()]
    label_files += sorted(p for p in root.glob("training_solutions_*.csv") if p.name != LABEL_CSV)
    frames, where = [], []
    for p in label_files:
        frame, lines, notes = _read_label_file(p)
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
    return Catalog(root, np.array(ids, dtype=str), paths, y, fov, label_files, problems, fits)


# --------------------------------------------------------------------------------------------------------------------
# Summary


def memory_needed(pixels: int, channels: int = 3) -> dict:
    """Bytes needed to hold images of ``pixels`` pixels in all (sum of width x height) in memory, as uint8 and as
    float32, with ``channels`` colour channels.

    The seed paper's "31,672 MB" for the 61,578 Kaggle training images is the uint8 figure in MiB
    (61,578 x 424 x 424 x 3 bytes = 31,672 MiB); as float32 it is four times that.
    """
    n = int(pixels) * channels
    return {"uint8_bytes": n, "float32_bytes": 4 * n, "uint8_mib": n / 2**20, "float32_mib": 4 * n / 2**20}


_TREE_NOISE = 1e-5  # Kaggle's 6-decimal labels, summed over up to 7 answers and read as float32, miss by ~3e-6


def tree_check(ids: np.ndarray, labels: np.ndarray, worst: int = 10) -> dict:
    """Decision-tree consistency of cumulative labels: per question the largest |sum(answers) - parent answer|,
    and the ``worst`` violations (galaxy, question, value) beyond rounding (1e-5). Unknown answers (NaN) are left
    out. ``consistent`` is True when no violation exceeds 1e-3."""
    mask = ~np.isnan(labels)
    v = tree.tree_violations(np.nan_to_num(labels), mask)
    per_q = np.abs(v).max(axis=0) if len(v) else np.zeros(len(tree.QUESTIONS))
    flat = np.argsort(-np.abs(v), axis=None)[:worst]
    rows = [{"GalaxyID": str(ids[r]), "question": tree.QUESTIONS[q].key, "violation": float(v[r, q])}
            for r, q in zip(*np.unravel_index(flat, v.shape)) if abs(v[r, q]) > _TREE_NOISE]
    return {"max_abs_violation": {q.key: float(x) for q, x in zip(tree.QUESTIONS, per_q)},
            "worst": rows, "consistent": bool(per_q.max(initial=0) < 1e-3)}


def _label_mean(labels: np.ndarray) -> dict[str, float | None]:
    """Mean of each answer over the galaxies that have it; None for an answer no galaxy has."""
    known = ~np.isnan(labels)
    n = known.sum(0)
    total = np.where(known, labels, 0.0).sum(0, dtype=np.float64)
    return {c: (float(t / k) if k else None) for c, t, k in zip(tree.COLUMNS, total, n)}


def summarize(root: str | os.PathLike, source_fov: float | None = None, workers: int | None = None,
              frame_arcsec: float | None = None) -> dict:
    """Everything a user wants to know about a data folder before training on it.

    Counts (full, partial, unlabelled), image dimensions (every header is read), bytes on disk, the memory needed to
    hold the images as uint8 and float32 at their own size, the decision-tree consistency check, and the problems
    found. Images that :func:`images.load_image` would refuse for what their header shows (not a JPEG or PNG, empty,
    unreadable, too many pixels, under 8 px) are listed under ``unreadable`` with GalaxyID, path and reason, and
    left out of the sizes and memory; a damaged body (a truncated JPEG) shows only when decoding. FITS galaxies count
    with the colour mode ``FITS-gri`` or ``FITS-1band`` and all their files on disk.
    """
    cat = read_catalog(root, source_fov, frame_arcsec)
    # Headers read fast (~27,000 a second on one core of a 2-core EPYC): two processes only broke even at 22,740
    # files, and took 0.55 s instead of 0.02 for the 700 of the demo, so the pool waits for 100 chunks.
    headers = [h for res in imap(read_headers, chunks(cat.paths, 256), workers, min_jobs=100) for h in res]
    sizes: dict[str, int] = {}
    modes: dict[str, int] = {}
    unreadable = []
    pixels = 0
    for i, p, h in zip(cat.ids, cat.paths, headers):
        if isinstance(h, str):
            unreadable.append({"GalaxyID": str(i), "path": str(p), "reason": h})
            continue
        sizes[f"{h[0]}x{h[1]}"] = sizes.get(f"{h[0]}x{h[1]}", 0) + 1
        modes[h[2]] = modes.get(h[2], 0) + 1
        pixels += h[0] * h[1]
    full = cat.kind == "full"
    return {
        "root": str(cat.root), "n_images": len(cat), **{f"n_{k}": v for k, v in cat.counts().items()},
        "source_fov": cat.source_fov, "image_sizes": dict(sorted(sizes.items(), key=lambda kv: -kv[1])),
        "colour_modes": modes,
        "disk_bytes": int(sum(os.stat(f).st_size for p in cat.paths for f in fitsimages.galaxy_files(p))),
        "memory": memory_needed(pixels),
        "label_files": [p.name for p in cat.label_files],
        "tree_check": tree_check(cat.ids[full], cat.labels[full]),
        "label_mean": _label_mean(cat.labels),
        "unreadable": unreadable, "problems": cat.problems,
    }

