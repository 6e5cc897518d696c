"""Non-parametric morphology of the cached cutouts with statmorph, the field's reference implementation
(Rodriguez-Gomez et al. 2019, MNRAS 483, 4140), and the classic merger criteria drawn on it.

The chain for one cutout, each step a function here:

1. :func:`linear_flux`: the 8-bit asinh colour composite back towards linear flux. SDSS made its gri JPEGs with the
   Lupton et al. (2004, PASP 116, 133) asinh stretch; SDSS says "with some modifications" and publishes no parameters
   for the cutouts. The inversion assumes the stretch of ``astropy.visualization.make_lupton_rgb`` with the
   softening ``q`` = :data:`LUPTON_Q` that :mod:`galaxy_core.data.fitsimages` uses to build SDSS-like composites.
2. :func:`sky`: sky level and noise from a border frame, subtracted (statmorph requires a background-subtracted
   image).
3. :func:`segment`: photutils segmentation of the smoothed image; the segment under the centre is the galaxy, the
   other sources are masked. Not deblended: a merging pair must stay one source, as in Lotz et al. (2004).
4. :func:`measure`: statmorph's Gini and M20 (Lotz, Primack & Madau 2004, AJ 128, 163), concentration, asymmetry
   and smoothness (Conselice 2003, ApJS 147, 1), with its quality flag.

:func:`morphology_table` runs it over many cutouts on a process pool; :func:`cache_table` keeps the results in the
cache folder, so each galaxy of a cache is measured once. The merger criteria are :func:`gini_m20_merger`,
G > -0.14 M20 + 0.33 (Lotz et al. 2008, ApJ 672, 177), and :func:`asymmetry_merger`, A > 0.35 (Conselice 2003).

statmorph, photutils and astropy are imported only when a galaxy is measured: importing this module stays cheap.
Image coordinates are pixels of the cache (80 px across 0.604 of the 424 px GZ2 frame for the shared packs). The
project had its own batched Gini, M20 and asymmetry; it was removed because it disagreed with statmorph on real
galaxies beyond any useful tolerance (docs/mergers.md, "Morphology check").
"""

from __future__ import annotations

import functools
import hashlib
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from galaxy_core.atomic import atomic_write_text
from galaxy_core.data import fitsimages
from galaxy_core.data.images import imap
from galaxy_core.progress import Progress

__all__ = ["ASYMMETRY_MERGER", "COLUMNS", "GM20_INTERCEPT", "GM20_SLOPE", "LUPTON_Q", "asymmetry_merger",
           "cache_table", "dropped", "gini_m20_merger", "linear_flux", "measure", "measuring_seconds",
           "morphology_table", "rows_of", "segment", "sky", "stored", "unmeasured", "usable"]

GM20_SLOPE, GM20_INTERCEPT = -0.14, 0.33
"""Lotz et al. (2008, ApJ 672, 177) merger line: a merger has G > -0.14 M20 + 0.33."""
ASYMMETRY_MERGER = 0.35
"""Conselice (2003, ApJS 147, 1) merger criterion: A > 0.35."""
LUPTON_Q = fitsimages.LUPTON_Q
"""The asinh softening assumed when inverting a composite: 4.623, the curve of the SDSS-like composites that
:mod:`galaxy_core.data.fitsimages` makes (D. Lang's ``sdss_rgb``, f(I) = asinh(20 I) / sqrt(20)); see
:func:`linear_flux`. How much Q moves the statistics is measured in docs/mergers.md ("Morphology check")."""
MAX_FLAG = 1
"""statmorph's flags: 0 good, 1 suspect, 2 bad, 4 catastrophic. Measurements with a larger flag are dropped."""
STATS = ("gini", "m20", "concentration", "asymmetry", "smoothness")
"""The non-parametric statistics :func:`measure` keeps (dimensionless)."""
MEASURED = (*STATS, "rpetro_circ", "sn_per_pixel")
"""Every quantity :func:`measure` takes from statmorph, besides its flag: :data:`STATS`, the circular Petrosian
radius (px) and the signal-to-noise per pixel."""
COLUMNS = ("GalaxyID", *MEASURED, "n_pixels", "flag", "problem", "gm20_merger", "asym_merger")
"""The columns of :func:`morphology_table`."""
SETTINGS = {"q": LUPTON_Q, "nsigma": 1.5, "n_pixels": 10, "smooth_sigma": 1.0, "skybox_size": 16, "version": 1}
"""The settings :func:`cache_table` measures with; stored results are keyed by them and the cache's fingerprint."""
STORE_DIR = "morphology"
GALAXIES_PER_SECOND_PER_CORE = 4.0
"""statmorph's speed on 80 px cutouts per core with every core at work: 8.1 galaxies/s on a 2-core AMD EPYC (5.0 on
one core alone; docs/mergers.md, "Morphology check"). For the time estimates the dashboard shows before it measures."""


# --------------------------------------------------------------------------------------------------------------------
# One cutout: linear flux, sky, segmentation, statmorph


def linear_flux(images, q: float = LUPTON_Q) -> np.ndarray:
    """The total intensity of asinh colour composites, back on a linear scale (arbitrary units).

    ``images``: (N, 3, S, S) or (3, S, S) uint8 RGB, as in a cache. Returns (N, S, S) or (S, S) float64.

    The Lupton et al. (2004) composite, as ``make_lupton_rgb`` draws it, scales the three bands of each pixel by the
    same factor f(I) / I, where I is their mean and f(I) = asinh(Q I / stretch) x 0.1 / asinh(0.1 Q); so the mean of
    the three displayed values is f(I), and I = (stretch / Q) sinh(v asinh(0.1 Q) / 0.1) for the displayed mean v
    in [0, 1]. Gini, M20, concentration, asymmetry and smoothness do not change when an image is multiplied by a
    constant, so ``stretch`` drops out and only ``q`` matters; ``q`` = 0 returns v itself (a linear display). The
    mean of the bands (g + r + i) / 3 stands in for a single band.

    Approximate, and the docstrings downstream say so: SDSS's own parameters for these cutouts are not published
    (it says Lupton et al. 2004 "with some modifications"); pixels clipped at 255 in any band (the centres of about
    6 % of the shared pack's galaxies) and at 0 cannot be recovered; JPEG compression and the cache's resampling
    acted on the stretched values. Raises ValueError for a negative ``q`` or a wrong shape.
    """
    a = np.asarray(images)
    if a.ndim not in (3, 4) or a.shape[-3] != 3:
        raise ValueError(f"images must be (N, 3, S, S) or (3, S, S) RGB, got shape {a.shape}")
    if q < 0:
        raise ValueError(f"q must be >= 0, got {q}")
    v = a.astype(np.float64).mean(axis=-3) / 255.0
    return np.sinh(v * np.arcsinh(0.1 * q) / 0.1) if q > 0 else v


def sky(image: np.ndarray) -> tuple[float, float]:
    """The sky level (median) and noise (1.4826 x the median absolute deviation, a robust sigma) of a border frame
    S/8 wide of an (S, S) image. The noise is at least 1e-6 of the image's largest value, so that a noiseless
    synthetic image still gets a positive weight map."""
    s = image.shape[-1]
    w = max(1, s // 8)
    frame = np.concatenate([image[:w].ravel(), image[-w:].ravel(), image[w:-w, :w].ravel(), image[w:-w, -w:].ravel()])
    level = float(np.median(frame))
    sigma = 1.4826 * float(np.median(np.abs(frame - level)))
    return level, max(sigma, 1e-6 * float(np.abs(image).max()), 1e-12)


def segment(image: np.ndarray, sigma: float, nsigma: float = SETTINGS["nsigma"],
            n_pixels: int = SETTINGS["n_pixels"], smooth_sigma: float = SETTINGS["smooth_sigma"]) -> np.ndarray:
    """photutils segmentation of a sky-subtracted (S, S) image: sources are ``n_pixels`` or more connected pixels
    (8-connectivity) whose Gaussian-smoothed value (``smooth_sigma`` px) is over ``nsigma`` x the sky noise
    ``sigma``. Returns an int32 label map (0 is sky), as ``photutils.segmentation.detect_sources`` makes it, or all
    zeros when nothing is detected. Not deblended (see the module docstring)."""
    from astropy.convolution import Gaussian2DKernel, convolve
    from photutils.segmentation import detect_sources
    from photutils.utils.exceptions import NoDetectionsWarning

    kernel = Gaussian2DKernel(smooth_sigma)
    kernel.normalize()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoDetectionsWarning)  # an empty map says so
        seg = detect_sources(convolve(image, kernel), nsigma * sigma, n_pixels=n_pixels)
    return np.zeros(image.shape, np.int32) if seg is None else seg.data.astype(np.int32)


def _central_label(segmap: np.ndarray) -> int:
    """The label under the centre of the cutout, else the nearest one within S/8 px of it, else 0."""
    s = segmap.shape[0]
    c = (s - 1) / 2
    label = int(segmap[s // 2, s // 2])
    if label:
        return label
    yy, xx = np.nonzero(segmap)
    if not len(yy):
        return 0
    d2 = (yy - c) ** 2 + (xx - c) ** 2
    k = int(np.argmin(d2))
    return int(segmap[yy[k], xx[k]]) if d2[k] <= (s / 8) ** 2 else 0


@functools.lru_cache(maxsize=1)
def _statmorph_class():
    """statmorph's SourceMorphology, computing only what this module keeps.

    statmorph evaluates every quantity it knows when an object is made, including a Sersic fit and the MID
    statistics, which the merger check does not use; on 80 px cutouts that took 60 % of the time. This subclass
    evaluates Gini, M20, concentration, asymmetry, smoothness, the Petrosian radius and S/N (with every flag their
    computation sets) and keeps statmorph's check of the Gini against the MID segmentation (flag 1). It overrides
    a private method, so requirements.txt pins statmorph's minor version.
    """
    import statmorph

    class CoreMorphology(statmorph.SourceMorphology):
        def _calculate_morphology(self):
            for q in MEASURED:
                _ = self[q]

    return CoreMorphology


def _empty(problem: str, n_pixels: int = 0) -> dict:
    return {**{k: np.nan for k in MEASURED}, "n_pixels": n_pixels, "flag": -1, "problem": problem}


def measure(image, q: float = SETTINGS["q"], nsigma: float = SETTINGS["nsigma"],
            n_pixels: int = SETTINGS["n_pixels"], smooth_sigma: float = SETTINGS["smooth_sigma"],
            skybox_size: int = SETTINGS["skybox_size"]) -> dict:
    """statmorph's morphology of the galaxy at the centre of one (3, S, S) uint8 colour cutout.

    :func:`linear_flux` (``q``), minus the :func:`sky` level; :func:`segment` (``nsigma``, ``n_pixels``,
    ``smooth_sigma``), the central segment measured and the other sources masked; a weight map equal to the sky
    noise everywhere (the gain of a JPEG is unknown, so the galaxy's own Poisson noise is left out, which statmorph
    uses only for S/N and its error estimates). ``skybox_size``: statmorph's sky box in px; its default of 32 does
    not fit in the corners of an 80 px cutout beside a galaxy.

    Returns ``gini``, ``m20``, ``concentration``, ``asymmetry``, ``smoothness`` (dimensionless), ``rpetro_circ``
    (px), ``sn_per_pixel``, ``n_pixels`` (the segment's size), ``flag`` (statmorph's: 0 good, 1 suspect, 2 bad,
    4 catastrophic; -1 when statmorph did not run) and ``problem`` ("" or why it did not run or what statmorph
    warned of). Never raises for a bad image: a cutout without a source at its centre, or one statmorph fails on,
    comes back with NaNs and the reason.
    """
    x = linear_flux(np.asarray(image), q)
    level, sigma = sky(x)
    x = x - level
    segmap = segment(x, sigma, nsigma, n_pixels, smooth_sigma)
    label = _central_label(segmap)
    if not label:
        return _empty("no source at the centre")
    n = int((segmap == label).sum())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            m = _statmorph_class()(x, segmap, label, mask=(segmap > 0) & (segmap != label),
                                   weightmap=np.full(x.shape, sigma), skybox_size=skybox_size)
        except Exception as e:  # noqa: BLE001 - statmorph's failure on this galaxy, reported in its row
            return _empty(f"statmorph failed: {type(e).__name__}: {e}", n)
    # statmorph's own notes (AstropyUserWarning, e.g. "Asymmetry center drifted too far away from the centroid");
    # NumPy's RuntimeWarnings from inside it say nothing a user could act on.
    said = sorted({str(w.message) for w in caught if not issubclass(w.category, RuntimeWarning)})
    out = {k: float(m[k]) for k in MEASURED}
    return {**out, "n_pixels": n, "flag": int(m.flag), "problem": "; ".join(said)}


# --------------------------------------------------------------------------------------------------------------------
# Many cutouts


def gini_m20_merger(gini, m20):
    """Lotz et al. (2008, ApJ 672, 177) merger selection: G > -0.14 M20 + 0.33.

    Scalars give a bool, arrays a bool array; NaN gives False. The line was drawn for HST images of galaxies at
    0.2 < z < 1.2 with Petrosian segmentation; on other images (such as SDSS colour JPEGs) it is a rough guide.
    """
    g, m = np.asarray(gini, dtype=np.float64), np.asarray(m20, dtype=np.float64)
    out = g > GM20_SLOPE * m + GM20_INTERCEPT
    return bool(out) if out.ndim == 0 else out


def asymmetry_merger(a):
    """Conselice (2003, ApJS 147, 1) merger selection: A > 0.35. Scalars give a bool, arrays a bool array."""
    out = np.asarray(a, dtype=np.float64) > ASYMMETRY_MERGER
    return bool(out) if out.ndim == 0 else out


def usable(table: pd.DataFrame) -> np.ndarray:
    """Which rows of a :func:`morphology_table` hold a measurement to use: statmorph ran and its flag is at most
    :data:`MAX_FLAG` (0 good, 1 suspect)."""
    return table["flag"].between(0, MAX_FLAG).to_numpy()


def dropped(table: pd.DataFrame) -> dict[str, int]:
    """Why the rows that :func:`usable` leaves out were dropped, with how many each: statmorph's flag 2 (bad) or
    4 (catastrophic), or the reason statmorph did not run (no source at the centre, an error)."""
    flag = table["flag"].to_numpy()
    out: dict[str, int] = {}
    for f, name in ((2, "statmorph flag 2 (bad)"), (4, "statmorph flag 4 (catastrophic)")):
        if (flag == f).any():
            out[name] = int((flag == f).sum())
    other = (flag > MAX_FLAG) & (flag != 2) & (flag != 4)
    if other.any():
        out["statmorph flag over 1"] = int(other.sum())
    for reason, n in table.loc[flag < 0, "problem"].value_counts().items():
        out[str(reason)] = int(n)
    return out


def _measure_chunk(args: tuple[np.ndarray, dict]) -> list[dict]:
    images, settings = args
    return [measure(im, **settings) for im in images]


def morphology_table(images, ids, rows=None, workers: int | None = None, progress: Progress | None = None,
                     chunk: int = 16, **settings) -> pd.DataFrame:
    """:func:`measure` for many cutouts, on a pool of ``workers`` processes (default: every core), with the merger
    flags.

    ``images``: (N, 3, S, S) uint8 (a cache's memory map is fine); ``ids``: N galaxy ids aligned with ``images``;
    ``rows``: which to measure (default all); ``settings``: passed to :func:`measure`. ``progress(done, total)`` is
    called after each ``chunk`` of galaxies. Returns :data:`COLUMNS`, one row per measured galaxy in the order of
    ``rows``; ``gm20_merger`` and ``asym_merger`` are False wherever the flag is over :data:`MAX_FLAG` (the
    measurement is not used). The pool spawns processes (``images.imap``), which never run the calling script again.
    Speed at 80 px: 5.0 galaxies/s on one core of a 2-core AMD EPYC, 8.1 on both (docs/mergers.md, "Morphology check").
    """
    ids = np.asarray(ids)
    if len(ids) != len(images):
        raise ValueError(f"ids ({len(ids)}) must be aligned with images ({len(images)})")
    rows = np.arange(len(images)) if rows is None else np.asarray(rows, dtype=np.int64).reshape(-1)
    jobs = [(np.asarray(images[rows[s:s + chunk]]), settings) for s in range(0, len(rows), chunk)]
    found: list[dict] = []
    for res in imap(_measure_chunk, jobs, workers, min_jobs=2):
        found.extend(res)
        if progress:
            progress(len(found), len(rows))
    out = pd.DataFrame(found, columns=list(COLUMNS[1:-2]))
    out.insert(0, "GalaxyID", ids[rows].astype(str))
    good = usable(out)
    out["gm20_merger"] = gini_m20_merger(out["gini"].to_numpy(), out["m20"].to_numpy()) & good
    out["asym_merger"] = asymmetry_merger(out["asymmetry"].to_numpy()) & good
    return out


def store_path(cache) -> Path:
    """Where :func:`cache_table` keeps a cache's measurements: ``<cache>/morphology/<key>.csv``."""
    key = hashlib.sha256(f"{cache.fingerprint}|{sorted(SETTINGS.items())}".encode()).hexdigest()[:16]
    return cache.path / STORE_DIR / f"{key}.csv"


def stored(cache) -> pd.DataFrame:
    """What :func:`cache_table` has measured of a cache so far, with a ``row`` column (empty when nothing, or when
    the file cannot be read: it is then measured again and rewritten)."""
    try:
        return pd.read_csv(store_path(cache), dtype={"GalaxyID": str, "problem": str}, keep_default_na=False,
                           na_values={c: ["", "nan", "NaN"] for c in MEASURED})
    except (OSError, ValueError, pd.errors.ParserError):
        return pd.DataFrame(columns=["row", *COLUMNS])


def unmeasured(table: pd.DataFrame, rows) -> np.ndarray:
    """The cache rows among ``rows`` that a :func:`stored` table does not hold yet (sorted, unique)."""
    return np.setdiff1d(np.asarray(rows, dtype=np.int64), table["row"].to_numpy(dtype=np.int64))


def rows_of(table: pd.DataFrame, rows) -> pd.DataFrame:
    """The measurements of a :func:`stored` table for the cache rows ``rows``, in that order, with the ``row``
    column first; KeyError when one is not measured (:func:`unmeasured` says which)."""
    return table.set_index("row").loc[np.asarray(rows, dtype=np.int64)].reset_index()


def measuring_seconds(n_galaxies: int, cores: int | None = None) -> tuple[float, int]:
    """How long measuring ``n_galaxies`` takes on ``cores`` cores (default: every core of this machine), in seconds,
    at :data:`GALAXIES_PER_SECOND_PER_CORE`; returns (seconds, cores)."""
    cores = cores or os.cpu_count() or 1
    return n_galaxies / (GALAXIES_PER_SECOND_PER_CORE * cores), cores


def cache_table(cache, rows=None, *, workers: int | None = None, progress: Progress | None = None,
                save_every: int = 512) -> pd.DataFrame:
    """:func:`morphology_table` for rows of a prepared cache (all when None), each galaxy measured once.

    Results are kept in the cache folder (``morphology/<key>.csv``, the key made of the cache's fingerprint and
    :data:`SETTINGS`), with a ``row`` column; galaxies already there are read back, and only the others measured.
    The file is rewritten atomically after every ``save_every`` galaxies, so an interrupted run keeps what it had
    measured. A cache folder that cannot be written to is measured each time. Returns the rows asked for, in order,
    with a ``row`` column first.
    """
    rows = np.arange(len(cache)) if rows is None else np.asarray(rows, dtype=np.int64).reshape(-1)
    path = store_path(cache)
    done = stored(cache)
    todo = np.setdiff1d(rows, done["row"].to_numpy(dtype=np.int64))
    settings = {k: v for k, v in SETTINGS.items() if k != "version"}
    for s in range(0, len(todo), save_every):
        idx = todo[s:s + save_every]

        def step(i, n, base=s):
            if progress:
                progress(base + i, len(todo))
        new = morphology_table(cache.images, cache.ids, idx, workers, step, **settings)
        new.insert(0, "row", idx)
        done = pd.concat([t for t in (done, new) if len(t)], ignore_index=True)  # pandas warns on an empty part
        try:
            atomic_write_text(path, done.to_csv(index=False, lineterminator="\n"))
        except OSError:
            pass  # a read-only cache: measured again next time
    by_row = done.drop_duplicates("row").set_index("row")
    out = by_row.loc[rows].reset_index()
    for c in ("gm20_merger", "asym_merger"):
        out[c] = out[c].astype(bool)
    out["flag"] = out["flag"].astype(int)
    out["n_pixels"] = out["n_pixels"].astype(int)
    return out
