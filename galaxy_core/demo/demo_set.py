"""A small *synthetic* Galaxy Zoo 2 data set in the Kaggle "Galaxy Challenge" layout, for running without real data.

Nothing here is a real galaxy: each object's parameters and made-up labels come from ``synthetic``, its picture from
``render``. This module writes them as a data folder, names the demo's galaxies, and makes the built-in demo on first
use. The data are good for exercising the pipeline and the dashboard, and useless for science.

Layout written by :func:`make_demo_dataset` (the Kaggle one)::

    OUT/images_training_rev1/<GalaxyID>.jpg   labelled images
    OUT/images_test_rev1/<GalaxyID>.jpg       unlabelled images
    OUT/training_solutions_rev1.csv           GalaxyID + the 37 columns of tree.COLUMNS, 6 decimals
    OUT/catalogue.csv                         GalaxyID, file, ra, dec, z, made_up: a MADE-UP catalogue
    OUT/README.md                             says the data are synthetic, with the parameters and the seed
    OUT/galaxy_core.json                      {"source_fov": 1.0, "synthetic": true, "catalogue": "catalogue.csv"}:
                                              whole frames at any pixel size, not real galaxies, and the table
                                              whose columns the cache keeps (``catalog.read_catalog``)

The catalogue gives every galaxy a made-up position and redshift, so that the sky map, the viewer links and the
merger fraction against redshift have something to show (:func:`made_up_sky`). Nothing about them is real: the
positions are random points in a cap of sky like SDSS's northern footprint, the redshifts follow a made-up
magnitude-limited distribution, and the mergers are given higher redshifts on purpose, a planted trend.

Units: image sizes and the ``size`` argument are in pixels; labels are vote fractions in [0, 1]; RA and Dec in
degrees (ICRS, as a catalogue would give them), z dimensionless.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from galaxy_core import tree
from galaxy_core.atomic import atomic_write_text, building_dir
from galaxy_core.data.layout import LABEL_CSV, LABELLED_DIR, PROJECT_ROOT, UNLABELLED_DIR
from galaxy_core.demo.render import render_galaxy
from galaxy_core.demo.synthetic import KINDS, labels_from_params, sample_params

__all__ = [
    "DEFAULT_ROOT",
    "FIRST_ID",
    "ensure_demo_dataset",
    "is_complete_demo",
    "is_demo_id",
    "make_demo_dataset",
    "made_up_sky",
    "stands_for_demo",
]

FIRST_ID = 90_000_000
"""The demo's first GalaxyID. The Kaggle galaxies are 6-digit (100008 ... 999967): 8-digit demo ids can never be
taken for real ones, so a model's list of training galaxies never matches a demo galaxy."""
DATA_ROOT = PROJECT_ROOT / "data"
"""The project's own data folder: without images in it (a fresh clone's), it stands for the demo."""
DEFAULT_ROOT = DATA_ROOT / "demo"
"""Where :func:`ensure_demo_dataset` puts the built-in demo: ``<project>/data/demo``."""

CATALOGUE = "catalogue.csv"
"""The demo's catalogue table: made-up positions and redshifts (:func:`made_up_sky`)."""
CATALOGUE_HEADER = "GalaxyID,file,ra,dec,z,made_up"
SETTINGS = '{"source_fov": 1.0, "synthetic": true, "catalogue": "catalogue.csv"}\n'
"""The demo's ``galaxy_core.json``: whole frames at any pixel size, synthetic, and its made-up catalogue."""
_PLAIN_SETTINGS = '{"source_fov": 1.0, "synthetic": true}\n'  # a set made without the catalogue
SKY_CENTRE_DEG, SKY_RADIUS_DEG = (185.0, 32.5), 35.0
"""The made-up positions: uniform on the sphere within 35 degrees of RA 185, Dec +32.5, a cap about where SDSS's
northern footprint is (so that the viewer links lead to surveyed sky), holding no real galaxy of the demo."""
Z_RANGE, Z_SCALE, Z_MERGER_TILT = (0.02, 0.25), 0.07, 0.1
"""The made-up redshifts: n(z) ~ z^2 exp(-(z / 0.07)^1.5) on [0.02, 0.25] (a magnitude-limited survey's shape, peak
near 0.085, median near 0.1, like GZ2's SDSS galaxies), and for the demo's mergers that times exp(z / 0.1): a
planted rise of the merger fraction with redshift, about threefold from z = 0.05 to z = 0.2, steeper than any
measured merger rate, put there only so that the demo has a trend to show."""
_DEFAULTS = {"n_labelled": 600, "n_unlabelled": 100, "size": 424, "seed": 0, "quality": 90}
_LOCK = threading.RLock()


# ------------------------------------------------------------------------------------------------------ data set

def _seeds(seed: int, index: int) -> tuple[np.random.Generator, ...]:
    # Independent streams per object: the same seed gives the same objects whatever the thread order, and the labels
    # do not depend on the image size.
    ss = np.random.SeedSequence([seed, index])
    return tuple(np.random.default_rng(s) for s in ss.spawn(3))


def _to_micro(labels: np.ndarray) -> np.ndarray:
    """Round cumulative labels to integer millionths so that every question sums *exactly* to its parent.

    Plain rounding to 6 decimals leaves sums off by a few 1e-6; apportioning each parent's integer among its
    answers (largest remainders) keeps the CSV exactly on the tree.
    """
    unit = 10 ** 6
    out = np.zeros(tree.N_ANSWERS, np.int64)
    for s, parent in zip(tree.QUESTION_SLICES, tree.PARENT_INDEX):
        total = unit if parent is None else int(out[parent])
        v = np.clip(labels[s], 0.0, None)
        share = v / v.sum() * total if v.sum() > 0 else np.full(len(v), total / len(v))
        base = np.floor(share).astype(np.int64)
        rest = total - int(base.sum())
        order = np.argsort(-(share - base), kind="stable")
        base[order[:rest]] += 1
        out[s] = base
    return out


def _csv_row(gid: int, micro: np.ndarray) -> str:
    return f"{gid}," + ",".join(f"{int(k) // 10 ** 6}.{int(k) % 10 ** 6:06d}" for k in micro)


def _readme(n_labelled, n_unlabelled, size, seed, quality, catalogue: bool = True) -> str:
    kinds = ", ".join(f"{k.name} {k.fraction:.3g}" for k in KINDS.values())
    sky = (
        f"\n## The catalogue: made-up positions and redshifts\n\n"
        f"`{CATALOGUE}` (named in `galaxy_core.json`) gives every galaxy a MADE-UP right ascension and declination "
        f"(degrees; random points within {SKY_RADIUS_DEG:g} degrees of RA {SKY_CENTRE_DEG[0]:g}, Dec "
        f"{SKY_CENTRE_DEG[1]:+g}, about where SDSS's northern footprint is) and a MADE-UP redshift `z` "
        f"({Z_RANGE[0]:g} to {Z_RANGE[1]:g}), with `made_up` True on every row. No real galaxy is at these "
        f"positions: the sky viewers the dashboard links to show whatever real sky is there. The mergers were "
        f"given higher redshifts on purpose (their n(z) times exp(z / {Z_MERGER_TILT:g})), so that the merger "
        f"fraction rises about threefold from z = 0.05 to z = 0.2: a planted trend for the tools to show, not a "
        f"measurement.\n") if catalogue else ""
    return (
        "# Synthetic Galaxy Zoo demo data\n\n"
        "These images and labels are synthetic: they were made by `galaxy_core.demo.demo_set.make_demo_dataset` "
        f"(n_labelled={n_labelled}, n_unlabelled={n_unlabelled}, size={size} px, seed={seed}, "
        f"JPEG quality={quality}) from parametric galaxy models rendered like SDSS gri cutouts, not observed, and "
        f"the 37 vote fractions in `{LABEL_CSV}` were derived from the same parameters with simulated volunteer "
        f"disagreement, not voted by anyone. The layout mimics the Kaggle \"Galaxy Zoo - The Galaxy Challenge\" "
        f"data (`{LABELLED_DIR}/` labelled, `{UNLABELLED_DIR}/` unlabelled, GalaxyIDs from {FIRST_ID}) so the tools "
        f"run without real data; kinds and mixing fractions: {kinds}. Use it to exercise the software only, never to "
        f"draw conclusions about galaxies; the same parameters and seed rebuild it byte for byte.\n" + sky
    )


def _make_one(out: Path, index: int, gid: int, labelled: bool, size: int, seed: int,
              quality: int) -> tuple[str | None, str]:
    """Draw, render and save galaxy ``index``; its label CSV row (None when unlabelled) and its kind."""
    prng, lrng, rrng = _seeds(seed, index)
    params = sample_params(prng)
    img = render_galaxy(params, size, rrng)
    folder = LABELLED_DIR if labelled else UNLABELLED_DIR
    Image.fromarray(img).save(out / folder / f"{gid}.jpg", format="JPEG", quality=quality)
    return (_csv_row(gid, _to_micro(labels_from_params(params, lrng))) if labelled else None), params["kind"]


def made_up_sky(kinds, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MADE-UP right ascension, declination (degrees, ICRS) and redshift for galaxies of the given synthetic
    ``kinds`` (``synthetic.KINDS`` names), the same for the same kinds and seed.

    Positions are uniform on the sphere within :data:`SKY_RADIUS_DEG` of :data:`SKY_CENTRE_DEG`. Redshifts follow
    the n(z) of :data:`Z_RANGE` and :data:`Z_SCALE`, and for kind ``"merger"`` that n(z) times exp(z / 0.1)
    (:data:`Z_MERGER_TILT`), so that the merger fraction rises with z: a trend planted for the demo to show, not a
    measurement. Each group's redshifts are stratified (one draw per equal slice of its distribution, in a seeded
    order), so that the demo's few dozen mergers follow the planted rise instead of their own noise.
    """
    kinds = np.asarray(kinds, dtype=str)
    n = len(kinds)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,)))  # apart from the images' streams
    # A cap around the north pole (cos of the distance from its centre uniform), turned to the cap's centre.
    cos_t = rng.uniform(np.cos(np.radians(SKY_RADIUS_DEG)), 1.0, n)
    phi = rng.uniform(0.0, 2 * np.pi, n)
    sin_t = np.sqrt(1.0 - cos_t ** 2)
    x, y, z = sin_t * np.cos(phi), sin_t * np.sin(phi), cos_t
    ra0, dec0 = np.radians(SKY_CENTRE_DEG)
    tilt = np.pi / 2 - dec0
    x, z = x * np.cos(tilt) + z * np.sin(tilt), -x * np.sin(tilt) + z * np.cos(tilt)
    x, y = x * np.cos(ra0) - y * np.sin(ra0), x * np.sin(ra0) + y * np.cos(ra0)
    ra = np.degrees(np.arctan2(y, x)) % 360.0
    dec = np.degrees(np.arcsin(np.clip(z, -1.0, 1.0)))
    grid = np.linspace(*Z_RANGE, 4001)
    base = grid ** 2 * np.exp(-(grid / Z_SCALE) ** 1.5)
    redshift = np.empty(n)
    for group, density in ((kinds == "merger", base * np.exp(grid / Z_MERGER_TILT)), (kinds != "merger", base)):
        rows = np.flatnonzero(group)
        cdf = np.cumsum(density)
        cdf = (cdf - cdf[0]) / (cdf[-1] - cdf[0])
        u = (rng.permutation(len(rows)) + rng.random(len(rows))) / max(len(rows), 1)
        redshift[rows] = np.interp(u, cdf, grid)
    return ra, dec, redshift


def _catalogue_text(ids, labelled, kinds, seed: int) -> str:
    """The demo's ``catalogue.csv``: id, image file, made-up RA, Dec (6 decimals, 0.004 arcsec) and z (4), and
    ``made_up`` True on every row, so that no copy of the table can pass for a real one."""
    ra, dec, z = made_up_sky(kinds, seed)
    rows = [f"{gid},{LABELLED_DIR if lab else UNLABELLED_DIR}/{gid}.jpg,{a:.6f},{d:.6f},{r:.4f},True"
            for gid, lab, a, d, r in zip(ids, labelled, ra, dec, z)]
    return "\n".join([CATALOGUE_HEADER, *rows]) + "\n"


def _non_empty(path: Path) -> bool:
    return path.is_dir() and any(path.iterdir())


def make_demo_dataset(out_dir, n_labelled: int = 600, n_unlabelled: int = 100, size: int = 424, seed: int = 0,
                      quality: int = 90, progress: Callable[[int, int], None] | None = None, *,
                      overwrite: bool = False, workers: int | None = None, catalogue: bool = True) -> Path:
    """Write a synthetic data set in the Kaggle Galaxy Challenge layout to ``out_dir`` and return its path.

    ``n_labelled`` images go to ``images_training_rev1/`` with their labels in ``training_solutions_rev1.csv`` (GalaxyID
    and the 37 columns of :data:`tree.COLUMNS`, 6 decimals, every question summing exactly to its parent answer),
    ``n_unlabelled`` to ``images_test_rev1/``. GalaxyIDs are consecutive 8-digit integers from :data:`FIRST_ID`,
    labelled first. Images are ``size`` x ``size`` pixel RGB JPEGs (424 like Kaggle's). The result depends only on the
    arguments: the same seed gives byte-identical files. The data are synthetic (see ``README.md`` in the output).
    With ``catalogue`` (the default), ``catalogue.csv`` gives every galaxy a MADE-UP position and redshift
    (:func:`made_up_sky`) and ``galaxy_core.json`` names it, so that a prepared cache keeps them as its columns.

    The set is built in a sibling ``<out_dir>.tmp-*`` folder and renamed into place at the end
    (``atomic.building_dir``), so an interrupted run never leaves a folder that looks complete. An existing non-empty
    ``out_dir`` raises FileExistsError unless ``overwrite``. ``progress(done, total)`` is called after each image;
    ``workers`` threads render in parallel (default: the CPU count, at most 4).
    """
    out = Path(out_dir)
    n_labelled, n_unlabelled, size, seed, quality = (int(n_labelled), int(n_unlabelled), int(size), int(seed),
                                                     int(quality))
    if n_labelled < 0 or n_unlabelled < 0 or n_labelled + n_unlabelled > 900000:
        raise ValueError(f"need 0 <= n_labelled + n_unlabelled <= 900000 (GalaxyIDs from {FIRST_ID:,})")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels, got {size}")
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a folder")
    if _non_empty(out) and not overwrite:
        raise FileExistsError(f"{out} exists and is not empty; replace it with overwrite=True (on the command line: "
                              f"demo --overwrite)")
    total = n_labelled + n_unlabelled
    if workers is None:
        workers = min(4, os.cpu_count() or 1)
    workers = max(1, min(int(workers), max(total, 1)))

    with _LOCK, building_dir(out, replace=overwrite) as tmp:  # one build per process at a time: each is CPU-bound
        (tmp / LABELLED_DIR).mkdir(parents=True)
        (tmp / UNLABELLED_DIR).mkdir()
        jobs = [(i, FIRST_ID + i, i < n_labelled) for i in range(total)]
        rows: list[str | None] = []
        kinds: list[str] = []
        pool = ThreadPoolExecutor(max_workers=workers)
        try:
            futures = [pool.submit(_make_one, tmp, i, gid, lab, size, seed, quality) for i, gid, lab in jobs]
            # collected in submission order so that progress and the first error come out the same every run
            for done, fut in enumerate(futures, 1):
                row, kind = fut.result()
                rows.append(row)
                kinds.append(kind)
                if progress is not None:
                    progress(done, total)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        header = ",".join(["GalaxyID", *tree.COLUMNS])
        text = "\n".join([header, *(r for r in rows[:n_labelled] if r is not None)]) + "\n"
        with open(tmp / LABEL_CSV, "w", newline="", encoding="ascii") as f:
            f.write(text)
        if catalogue:
            with open(tmp / CATALOGUE, "w", newline="", encoding="ascii") as f:
                f.write(_catalogue_text([gid for _, gid, _ in jobs], [lab for _, _, lab in jobs], kinds, seed))
        with open(tmp / "README.md", "w", newline="", encoding="utf-8") as f:
            f.write(_readme(n_labelled, n_unlabelled, size, seed, quality, catalogue))
        # The images are whole frames at any `size`: declare it, so that galaxy_core.data.cache reads them as such;
        # and say they are synthetic, so that a model trained on them is not used on real galaxies unwarned.
        with open(tmp / "galaxy_core.json", "w", encoding="ascii") as f:
            f.write(SETTINGS if catalogue else _PLAIN_SETTINGS)
    return out


def is_complete_demo(root, n_labelled: int = _DEFAULTS["n_labelled"],
                     n_unlabelled: int = _DEFAULTS["n_unlabelled"], catalogue: bool = True) -> bool:
    """Whether ``root`` holds a finished data set: the CSV with the expected header and rows, an image for every row,
    the expected number of unlabelled images and, with ``catalogue``, the made-up catalogue with a row for every
    galaxy (a demo made before it had one is incomplete: ``ensure_demo_dataset`` remakes it). Images are counted,
    not decoded."""
    root = Path(root)
    csv = root / LABEL_CSV
    try:
        lines = csv.read_text(encoding="ascii").splitlines()
        train = {p.name for p in (root / LABELLED_DIR).iterdir() if p.suffix == ".jpg"}
        test = [p for p in (root / UNLABELLED_DIR).iterdir() if p.suffix == ".jpg"]
        sky = (root / CATALOGUE).read_text(encoding="ascii").splitlines() if catalogue else None
    except (OSError, UnicodeDecodeError):
        return False
    if not lines or lines[0] != ",".join(["GalaxyID", *tree.COLUMNS]) or len(lines) - 1 != n_labelled:
        return False
    if sky is not None and (not sky or sky[0] != CATALOGUE_HEADER or len(sky) - 1 != n_labelled + n_unlabelled):
        return False
    ids = {line.split(",", 1)[0] + ".jpg" for line in lines[1:]}
    # A demo made before FIRST_ID left the Kaggle id range is incomplete: ensure_demo_dataset rebuilds it.
    first = f"{FIRST_ID}.jpg" in train if n_labelled else True
    return first and len(ids) == n_labelled and ids == train and len(test) == n_unlabelled


def is_demo_id(ids) -> np.ndarray:
    """For each GalaxyID (text or number): whether it is one the demo gives (``FIRST_ID`` onwards, at most 900,000
    of them), which no Kaggle galaxy has."""
    out = []
    for i in np.asarray(ids).ravel():
        try:
            out.append(FIRST_ID <= int(str(i).strip()) < FIRST_ID + 900_000)
        except ValueError:
            out.append(False)
    return np.array(out, bool)


def stands_for_demo(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` is the project's own ``data/`` with no images and no cache in it: a fresh clone's, which
    the dashboard and the command line read as the built-in demo (``data/demo``, made on first use), so that
    every example runs before a user has data of their own."""
    folder = Path(folder).resolve()
    return (folder == DATA_ROOT.resolve() and not (folder / LABELLED_DIR).is_dir()
            and not (folder / UNLABELLED_DIR).is_dir() and not (folder / "meta.json").is_file())


def ensure_demo_dataset(root=None, progress: Callable[[int, int], None] | None = None) -> Path:
    """Return the built-in demo data set (``<project>/data/demo`` unless ``root``), making it on first use.

    A folder that already holds a complete demo (see :func:`is_complete_demo`, with the default 600 labelled and
    100 unlabelled 424 px images and the made-up catalogue) is returned untouched. An incomplete one that this
    module wrote (its README says so), such as a demo made before it had a catalogue, is rebuilt; any other
    non-empty folder is left alone and raises FileExistsError. The data are synthetic.
    """
    root = DEFAULT_ROOT if root is None else Path(root)
    counts = _DEFAULTS["n_labelled"], _DEFAULTS["n_unlabelled"]
    with _LOCK:
        if is_complete_demo(root, *counts):
            settings = root / "galaxy_core.json"
            if not settings.is_file() or settings.read_text(encoding="ascii", errors="replace") != SETTINGS:
                atomic_write_text(settings, SETTINGS)  # e.g. a demo made before its settings said "synthetic"
            return root
        ours = (root / "README.md").is_file() and "galaxy_core.demo.demo_set" in (root / "README.md").read_text(
            encoding="utf-8", errors="replace")
        try:
            return make_demo_dataset(root, **_DEFAULTS, progress=progress, overwrite=ours)
        except FileExistsError:
            if is_complete_demo(root, *counts):   # another process made it meanwhile
                return root
            raise
