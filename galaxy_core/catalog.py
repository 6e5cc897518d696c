"""Stage 1, reading a data folder: its images, labels and settings, a summary of it, and decoding its images.

A data folder follows the Kaggle "Galaxy Zoo - The Galaxy Challenge" layout::

    images_training_rev1/<GalaxyID>.jpg     labelled galaxies (JPEG or PNG, any size, any colour mode)
    images_test_rev1/<GalaxyID>.jpg         unlabelled galaxies (optional)
    training_solutions_rev1.csv             GalaxyID + the 37 vote fractions Class1.1 ... Class11.6
    training_solutions_*.csv                more label files (optional), e.g. with only some of the 37 columns

Absent or blank label cells are *unknown*, never 0: they are masked out of losses and metrics.

Decoding runs on a pool of *spawned* processes, which import the caller's main module again: a script that calls
``data.prepare`` or ``summarize`` needs the usual ``if __name__ == "__main__":`` guard.

Field of view. Every crop is a fraction of the original 424 x 424 Kaggle frame (GZ2 scales each cutout to
0.02 x petroR90 arcsec per pixel, so a galaxy's R90 radius is about 50 px of it). A folder of images that are
themselves a central crop of that frame declares so with ``source_fov`` (the fraction they show), passed as an
argument or written in ``galaxy_core.json`` in the folder (``{"source_fov": 0.6038}``). The packs in
``../shared/data/gz2-kaggle-96*`` are the central 256 px of the originals: ``source_fov = 256 / 424``. A model that
looks at a field ``fov`` then crops ``fov / source_fov`` of each image, so one model serves originals and packs.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from . import tree
from .files import Progress, read_json

PROJECT_ROOT = Path(__file__).resolve().parent.parent
KAGGLE_FRAME = 424
"""Side of the original Kaggle/GZ2 cutouts in pixels; every field of view is a fraction of it."""
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
LABELLED_DIR, UNLABELLED_DIR = "images_training_rev1", "images_test_rev1"
LABEL_CSV = "training_solutions_rev1.csv"
FOLDER_CONFIG = "galaxy_core.json"
# Kaggle's fractions are rounded to 6 decimals; anything further outside [0, 1] is a broken file.
_LABEL_TOLERANCE = 1e-4


class DataError(ValueError):
    """Bad input data: the message says what is wrong and where."""


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
    paths: list[Path]
    labels: np.ndarray  # (N, 37) float32, NaN = unknown
    source_fov: float
    label_files: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

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


def list_images(folder: str | os.PathLike) -> dict[str, Path]:
    """Images directly in ``folder`` by id (file name without extension). Raises DataError on a duplicate id."""
    out: dict[str, Path] = {}
    folder = Path(folder)
    if not folder.is_dir():
        return out
    for entry in os.scandir(folder):
        stem, ext = os.path.splitext(entry.name)
        if ext.lower() not in IMAGE_EXTENSIONS or not entry.is_file() or stem.startswith("."):
            continue
        if stem in out:
            raise DataError(f"two images with id {stem!r} in {folder}: {out[stem].name} and {entry.name}")
        out[stem] = Path(entry.path)
    return out


def read_labels(path: str | os.PathLike) -> pd.DataFrame:
    """Read one label CSV into a frame indexed by GalaxyID (str) with all 37 columns (NaN where absent or blank).

    Raises DataError, naming the file and the offending ids or columns, for a missing GalaxyID column, an unknown
    column, a non-numeric or out-of-range value ([0, 1] within 1e-4) or a repeated id.
    """
    path = Path(path)
    try:
        df = pd.read_csv(path, dtype={"GalaxyID": str}, keep_default_na=True)
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not a readable CSV ({e})") from e
    df.columns = [str(c).strip() for c in df.columns]
    if "GalaxyID" not in df.columns:
        raise DataError(f"{path}: no 'GalaxyID' column (columns are {list(df.columns)[:8]}...)")
    unknown = [c for c in df.columns if c != "GalaxyID" and c not in tree.NAMES]
    if unknown:
        raise DataError(f"{path}: unknown column(s) {unknown}; expected GalaxyID and the 37 answers "
                        f"{tree.COLUMNS[0]} ... {tree.COLUMNS[-1]}")
    ids = df["GalaxyID"].astype(str).str.strip()
    if ids.isna().any() or (ids == "").any():
        rows = (np.flatnonzero(ids.isna() | (ids == "")) + 2)[:5].tolist()
        raise DataError(f"{path}: empty GalaxyID on line(s) {rows}")
    dup = ids[ids.duplicated()].unique()
    if len(dup):
        raise DataError(f"{path}: GalaxyID repeated: {list(dup[:5])}")
    values = df.drop(columns="GalaxyID")
    numeric = values.apply(pd.to_numeric, errors="coerce")
    bad = numeric.isna() & values.notna() & (values.astype(str).apply(lambda s: s.str.strip()) != "")
    if bad.any().any():
        r, c = np.argwhere(bad.to_numpy())[0]
        raise DataError(f"{path}: non-numeric value {values.iat[r, c]!r} for GalaxyID {ids.iat[r]} "
                        f"in column {values.columns[c]}")
    arr = numeric.to_numpy(dtype=np.float64)
    out_of_range = (arr < -_LABEL_TOLERANCE) | (arr > 1 + _LABEL_TOLERANCE)
    if out_of_range.any():
        r, c = np.argwhere(out_of_range)[0]
        raise DataError(f"{path}: value {arr[r, c]} outside [0, 1] for GalaxyID {ids.iat[r]} "
                        f"in column {values.columns[c]} ({int(out_of_range.sum())} such values)")
    full = pd.DataFrame(np.nan, index=pd.Index(ids.to_numpy(), name="GalaxyID"), columns=list(tree.COLUMNS))
    full[list(numeric.columns)] = np.clip(arr, 0.0, 1.0)
    return full


def folder_source_fov(root: str | os.PathLike, source_fov: float | None = None) -> float | None:
    """The fraction of the 424 px Kaggle frame that a folder's images show: the argument, else ``galaxy_core.json``.

    Returns None when neither declares it (the caller then checks that the images are 424 px originals).
    """
    if source_fov is not None:
        if not 0 < source_fov <= 1:
            raise DataError(f"source_fov must be in (0, 1], got {source_fov}")
        return float(source_fov)
    cfg = Path(root) / FOLDER_CONFIG
    if cfg.is_file():
        value = read_json(cfg).get("source_fov")
        if value is not None:
            return folder_source_fov(root, float(value))
    return None


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


def resolve_source_fov(root: str | os.PathLike, samples: list, source_fov: float | None = None) -> float:
    """The fraction of the 424 px frame a folder's images show: declared (argument or ``galaxy_core.json``), else 1.0
    if the first readable of ``samples`` is a 424 x 424 original. Raises DataError for undeclared images of another
    size, since guessing would silently give the model the wrong field of view, and when none of the first 20
    samples can be opened (unreadable images are otherwise reported and skipped by whoever decodes them)."""
    fov = folder_source_fov(root, source_fov)
    if fov is not None:
        return fov
    for sample in list(samples)[:20]:
        try:
            with Image.open(sample) as im:
                size = im.size
        except Exception:  # noqa: BLE001 - an unreadable image is skipped later, with its reason
            continue
        if size == (KAGGLE_FRAME, KAGGLE_FRAME):
            return 1.0
        raise DataError(
            f"{sample} is {size[0]}x{size[1]} px, not a 424x424 Kaggle original: say which part of the 424 px "
            f"frame these images show with source_fov (for example --source-fov 0.6038 for the central 256 px, as in "
            f"the gz2-kaggle-96 packs, or 1.0 for whole frames at another resolution), or write "
            f"{{\"source_fov\": ...}} into {Path(root) / FOLDER_CONFIG}")
    raise DataError(f"none of the first images in {root} can be opened, so their field of view is unknown")


def source_fov_origin(root: str | os.PathLike, source_fov: float | None = None) -> str:
    """Where :func:`resolve_source_fov` takes a folder's field of view from, in words for a user: ``"as given"``,
    ``"from galaxy_core.json"`` or ``"424 px originals"`` (the assumption for an undeclared folder)."""
    if source_fov is not None:
        return "as given"
    if folder_source_fov(root) is not None:
        return f"from {FOLDER_CONFIG}"
    return "424 px originals"


def read_catalog(root: str | os.PathLike, source_fov: float | None = None) -> Catalog:
    """Read a data folder in the Kaggle layout (see the module docstring).

    Images in ``images_training_rev1`` without a label row are kept as unlabelled; label rows without an image are
    skipped. Both are listed in ``Catalog.problems``. Raises DataError when the folder holds no images, or when two
    label files give the same galaxy.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist")
    train_images, test_images = list_images(root / LABELLED_DIR), list_images(root / UNLABELLED_DIR)
    both = set(train_images) & set(test_images)
    if both:
        raise DataError(f"{len(both)} ids are in both {LABELLED_DIR} and {UNLABELLED_DIR}, e.g. {sorted(both)[:3]}")
    if not train_images and not test_images:
        raise DataError(f"no images in {root / LABELLED_DIR} or {root / UNLABELLED_DIR} "
                        f"(expected <GalaxyID>.jpg files in the Kaggle layout)")
    problems: list[str] = []
    label_files = [p for p in [root / LABEL_CSV] if p.is_file()]
    label_files += sorted(p for p in root.glob("training_solutions_*.csv") if p.name != LABEL_CSV)
    frames = [read_labels(p) for p in label_files]
    labels = pd.concat(frames) if frames else pd.DataFrame(columns=list(tree.COLUMNS), dtype=float)
    if labels.index.duplicated().any():
        dup = labels.index[labels.index.duplicated()].unique()
        raise DataError(f"GalaxyID(s) {list(dup[:5])} appear in more than one of "
                        f"{[p.name for p in label_files]}; keep each galaxy in one label file")
    orphans = labels.index.difference(pd.Index(list(train_images)))
    if len(orphans):
        problems.append(f"{len(orphans)} label rows have no image in {LABELLED_DIR} and were skipped "
                        f"(e.g. {list(orphans[:5])})")
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
    fov = resolve_source_fov(root, paths, source_fov)
    return Catalog(root, np.array(ids, dtype=str), paths, y, fov, label_files, problems)


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


def _headers(paths: list[str]) -> list[tuple[int, int, str] | str]:
    out: list[tuple[int, int, str] | str] = []
    for path in paths:
        try:
            with Image.open(path) as im:
                out.append((im.size[0], im.size[1], im.mode))
        except Exception as e:  # noqa: BLE001 - any reason an image cannot be opened is reported, not raised
            out.append(f"{type(e).__name__}: {e}")
    return out


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


def summarize(root: str | os.PathLike, source_fov: float | None = None, workers: int | None = None) -> dict:
    """Everything a user wants to know about a data folder before training on it.

    Counts (full, partial, unlabelled), image dimensions (every header is read), bytes on disk, the memory needed to
    hold the images as uint8 and float32 at their own size, the decision-tree consistency check, and the problems
    found. Unreadable images are listed under ``unreadable``.
    """
    cat = read_catalog(root, source_fov)
    headers = [h for res in _imap(_headers, _chunks(cat.paths, 256), workers) for h in res]
    sizes: dict[str, int] = {}
    modes: dict[str, int] = {}
    unreadable = []
    pixels = 0
    for i, h in zip(cat.ids, headers):
        if isinstance(h, str):
            unreadable.append({"GalaxyID": str(i), "reason": h})
            continue
        sizes[f"{h[0]}x{h[1]}"] = sizes.get(f"{h[0]}x{h[1]}", 0) + 1
        modes[h[2]] = modes.get(h[2], 0) + 1
        pixels += h[0] * h[1]
    full = cat.kind == "full"
    return {
        "root": str(cat.root), "n_images": len(cat), **{f"n_{k}": v for k, v in cat.counts().items()},
        "source_fov": cat.source_fov, "image_sizes": dict(sorted(sizes.items(), key=lambda kv: -kv[1])),
        "colour_modes": modes, "disk_bytes": int(sum(p.stat().st_size for p in cat.paths)),
        "memory": memory_needed(pixels),
        "label_files": [p.name for p in cat.label_files],
        "tree_check": tree_check(cat.ids[full], cat.labels[full]),
        "label_mean": _label_mean(cat.labels),
        "unreadable": unreadable, "problems": cat.problems,
    }


# --------------------------------------------------------------------------------------------------------------------
# Decoding


def load_image(path: str | os.PathLike, crop: float, size: int) -> np.ndarray:
    """Decode one image, keep the central ``crop`` fraction of its shorter side, resize to ``size`` px.

    Returns (3, size, size) uint8 RGB. Greyscale, palette, CMYK and alpha images are converted to RGB. JPEGs are
    decoded at a reduced scale (libjpeg's DCT scaling through Pillow's draft mode) whenever that still leaves at least
    ``size`` pixels across the crop, which makes decoding 424 px originals several times faster. Resampling is
    Lanczos, as used to make the shared packs. Raises whatever Pillow raises for an unreadable file.
    """
    if not 0 < crop <= 1:
        raise DataError(f"crop must be in (0, 1], got {crop} for {path}")
    with Image.open(path) as im:
        if im.format == "JPEG":
            w, h = im.size
            need = size / crop  # pixels across the whole image for `size` across the crop
            im.draft("RGB", (int(np.ceil(need * w / min(w, h))), int(np.ceil(need * h / min(w, h)))))
        im = im.convert("RGB")
        w, h = im.size
        c = crop * min(w, h)
        box = ((w - c) / 2, (h - c) / 2, (w + c) / 2, (h + c) / 2)
        out = im.resize((size, size), Image.Resampling.LANCZOS, box=box)
    return np.asarray(out, dtype=np.uint8).transpose(2, 0, 1)


def _decode_chunk(args: tuple[list[str], float, int]) -> list[np.ndarray | str]:
    paths, crop, size = args
    out: list[np.ndarray | str] = []
    for p in paths:
        try:
            out.append(load_image(p, crop, size))
        except Exception as e:  # noqa: BLE001 - reported per image by the caller, who skips it
            out.append(f"{type(e).__name__}: {e}")
    return out


def _imap(fn, jobs: list, workers: int | None):
    """Yield ``fn(job)`` for each job, in order, on a process pool when there is more than a little work.

    The pool uses spawn, not fork: the caller may hold torch or Streamlit threads, and forking those can deadlock.
    Leaving the loop early cancels the jobs not yet started."""
    workers = workers or os.cpu_count() or 1
    if workers <= 1 or len(jobs) <= 2:
        yield from map(fn, jobs)
        return
    pool = cf.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        yield from pool.map(fn, jobs)
    finally:
        pool.shutdown(cancel_futures=True)


def _chunks(paths: list, chunk: int) -> list[list[str]]:
    return [[str(p) for p in paths[s:s + chunk]] for s in range(0, len(paths), chunk)]


def decode_images(paths: list, crop: float, size: int, workers: int | None = None,
                  progress: Progress | None = None, chunk: int = 64):
    """Yield ``(i, array_or_reason)`` for each path in order: a (3, size, size) uint8 array, or a string saying why
    the image could not be read. Work is spread over ``workers`` processes (default: every core)."""
    jobs = [(c, crop, size) for c in _chunks(paths, chunk)]
    i = 0
    for res in _imap(_decode_chunk, jobs, workers):
        for r in res:
            yield i, r
            i += 1
        if progress:
            progress(i, len(paths))
