"""A small *synthetic* Galaxy Zoo 2 data set in the Kaggle "Galaxy Challenge" layout, for running without real data.

Nothing here is a real galaxy. The images are drawn from simple parametric models (Sersic spheroids, exponential
disks with bars, logarithmic spiral arms and rings, edge-on disks with bulges and dust lanes, merging pairs with
tidal tails, clumpy irregulars, stars and artefacts) rendered like SDSS gri colour cutouts: a dark but not black sky,
Gaussian PSF blur, Poisson-like and read noise, and an asinh stretch to 8 bits. The 37 labels are *made up* from the
same parameters: per-question answer distributions that follow from the model (a cigar-shaped elliptical is
"smooth, cigar-shaped", a merger is "odd, merger") blurred by a Dirichlet draw that mimics volunteer disagreement,
then turned into Kaggle's cumulative fractions with :func:`galaxy_core.tree.cumulative`, so they obey the decision
tree exactly. They are good for exercising the pipeline and the dashboard, and useless for science.

At about 860 lines this is the package's longest module, and one job: every kind of object needs its own light
profile and its own made-up vote distribution, all drawn from one parameter dict per galaxy; split apart, each piece
would need the others' parameters.

Layout written by :func:`make_demo_dataset` (the Kaggle one)::

    OUT/images_training_rev1/<GalaxyID>.jpg   labelled images
    OUT/images_test_rev1/<GalaxyID>.jpg       unlabelled images
    OUT/training_solutions_rev1.csv           GalaxyID + the 37 columns of tree.COLUMNS, 6 decimals
    OUT/README.md                             says the data are synthetic, with the parameters and the seed
    OUT/galaxy_core.json                      {"source_fov": 1.0, "synthetic": true}: whole frames at any pixel
                                              size, and not real galaxies

Units: image sizes and the ``size`` argument are in pixels. Lengths in the parameter dicts of
:func:`sample_params` are fractions of the image width (``r90 = 0.118`` is 50 px at 424 px, the scale of the GZ2
cutouts, which were made 0.02 * petroR90_r arcsec per pixel), angles are radians unless the key ends in ``_deg``,
brightnesses are surface brightnesses in units of the sky noise sigma, and labels are vote fractions in [0, 1].
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from . import tree
from .catalog import LABEL_CSV, LABELLED_DIR, PROJECT_ROOT, UNLABELLED_DIR
from .files import atomic_write_text, building_dir

__all__ = [
    "KINDS", "Kind", "DEFAULT_ROOT", "FIRST_ID",
    "make_demo_dataset", "ensure_demo_dataset", "is_complete_demo",
    "sample_params", "render_galaxy", "labels_from_params",
]

FIRST_ID = 90_000_000
"""The demo's first GalaxyID. The Kaggle galaxies are 6-digit (100008 ... 999967): 8-digit demo ids can never be
taken for real ones, so a model's list of training galaxies never matches a demo galaxy."""
DATA_ROOT = PROJECT_ROOT / "data"
"""The project's own data folder: without images in it (a fresh clone's), it stands for the demo."""
DEFAULT_ROOT = DATA_ROOT / "demo"
"""Where :func:`ensure_demo_dataset` puts the built-in demo: ``<project>/data/demo``."""

SETTINGS = '{"source_fov": 1.0, "synthetic": true}\n'
"""The demo's ``galaxy_core.json``: whole frames at any pixel size, and synthetic."""
_DEFAULTS = {"n_labelled": 600, "n_unlabelled": 100, "size": 424, "seed": 0, "quality": 90}

R90_FRAME = 50.0 / 424.0
"""Petrosian R90 of a GZ2 cutout's galaxy as a fraction of the frame (50 px at 424 px)."""


@dataclass(frozen=True)
class Kind:
    """One kind of synthetic object and the fraction of the sample drawn as it."""

    name: str
    fraction: float
    description: str


# Rough mixing fractions of the bright SDSS galaxies GZ2 classified, chosen so that the mean label vector comes out
# near the Kaggle training set's (Class1.1 ~ 0.43, Class1.2 ~ 0.54, Class1.3 ~ 0.03, Class6.2 ~ 0.80).
KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("elliptical", 0.32, "smooth Sersic n~4 spheroid, round to cigar-shaped, yellow-red"),
    Kind("disk", 0.42, "face-on or inclined exponential disk, bluer; bulge of varying prominence, bar in ~30%, "
                       "1 to more than 4 spiral arms of tight/medium/loose pitch in ~88%"),
    Kind("edge_on", 0.11, "thin elongated disk with a rounded, boxy or no bulge, a dust lane in ~35%"),
    Kind("merger", 0.045, "two galaxies close together with tidal tails and a bridge"),
    Kind("ring", 0.025, "disk or lenticular with a prominent ring (some collisional, off-centre)"),
    Kind("irregular", 0.065, "clumpy, asymmetric, blue"),
    Kind("star", 0.015, "artefact: a star with diffraction spikes, a satellite streak, or a saturated star"),
)}
assert abs(sum(k.fraction for k in KINDS.values()) - 1.0) < 1e-9

_LOCK = threading.RLock()

# Colours as (R, G, B) = (i, r, g) band weights, the SDSS colour-composite convention.
_RED = np.array([1.0, 0.74, 0.46], np.float32)      # old stars: ellipticals, bulges, bars
_DISK = np.array([0.80, 0.80, 0.82], np.float32)
_BLUE = np.array([0.55, 0.72, 1.0], np.float32)     # young stars: arms, knots, rings, tails
_DUST = np.array([0.55, 0.75, 1.0], np.float32)     # extinction per band: bluer light is absorbed more


# ---------------------------------------------------------------------------------------------------- parameters

def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def sample_params(rng: np.random.Generator, kind: str | None = None) -> dict:
    """Draw the generating parameters of one synthetic object.

    ``kind`` forces one of :data:`KINDS` (default: drawn with the mixing fractions). Returns a flat dict of plain
    Python values; every kind has every key (unused ones hold neutral values) so dicts can be tabulated. Lengths are
    fractions of the image width (``r90``: Petrosian-like 90%-light radius, about 0.118 +- 30%), ``pa`` and other
    angles are radians, ``pitch_deg`` degrees, ``brightness`` the surface brightness at the effective radius in
    units of the sky noise, ``bulge_frac`` the bulge's fraction of the light, ``q`` the projected axis ratio.
    """
    names = list(KINDS)
    if kind is None:
        kind = names[int(rng.choice(len(names), p=[KINDS[n].fraction for n in names]))]
    elif kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}: expected one of {names}")
    p: dict = {
        "kind": kind,
        "r90": R90_FRAME * _u(rng, 0.7, 1.3),
        "x0": float(np.clip(rng.normal(0.0, 0.005), -0.015, 0.015)),
        "y0": float(np.clip(rng.normal(0.0, 0.005), -0.015, 0.015)),
        "pa": _u(rng, 0.0, math.pi),
        "q": 1.0,
        "sersic_n": 1.0,
        "brightness": float(10 ** rng.uniform(math.log10(10.0), math.log10(45.0))),
        "psf": _u(rng, 1.0, 2.0) / 424.0,
        "sky": _u(rng, 0.025, 0.05),
        "colour": [float(c) for c in rng.normal(1.0, 0.04, 3)],
        "n_volunteers": int(rng.integers(25, 60)),
        "bulge_frac": 0.0, "bulge_shape": "none",
        "bar": False, "bar_len": 0.0, "bar_angle": 0.0,
        "n_arms": 0, "pitch_deg": 0.0, "arm_strength": 0.0,
        "ring": False, "ring_radius": 0.0, "collisional": False,
        "dust_lane": False,
        "companion_sep": 0.0, "companion_angle": 0.0, "companion_flux": 0.0, "companion_n": 1.0,
        "n_tails": 0, "tail_strength": 0.0, "bridge": False,
        "n_clumps": 0, "artefact": "none",
    }
    if kind == "elliptical":
        # Most ellipticals look round or in between; a long tail towards cigars.
        p["q"] = 1.0 - 0.75 * float(rng.beta(1.3, 3.0))
        p["sersic_n"] = _u(rng, 3.0, 5.0)
    elif kind in ("disk", "ring"):
        p["q"] = _u(rng, 0.32, 1.0)   # cos(inclination), isotropic orientations short of edge-on
        p["bulge_frac"] = float(rng.beta(1.4, 4.0))
        p["bar"] = bool(rng.random() < (0.3 if kind == "disk" else 0.5))
        p["bar_len"] = _u(rng, 0.3, 0.55) if p["bar"] else 0.0
        p["bar_angle"] = _u(rng, 0.0, math.pi)
        if rng.random() < (0.88 if kind == "disk" else 0.4):
            p["n_arms"] = int(rng.choice([1, 2, 3, 4, 5, 6], p=[0.07, 0.52, 0.16, 0.09, 0.10, 0.06]))
            p["pitch_deg"] = _u(rng, 6.0, 40.0)
            p["arm_strength"] = _u(rng, 0.35, 1.0)
        if kind == "ring":
            p["ring"] = True
            p["collisional"] = bool(rng.random() < 0.3)
            p["ring_radius"] = _u(rng, 0.45, 0.85)
    elif kind == "edge_on":
        p["q"] = _u(rng, 0.07, 0.2)
        p["bulge_shape"] = str(rng.choice(["rounded", "boxy", "none"], p=[0.55, 0.15, 0.30]))
        p["bulge_frac"] = 0.0 if p["bulge_shape"] == "none" else _u(rng, 0.1, 0.45)
        p["dust_lane"] = bool(rng.random() < 0.35)
    elif kind == "merger":
        p["q"] = _u(rng, 0.5, 1.0)
        p["sersic_n"] = _u(rng, 1.0, 4.0)
        p["companion_sep"] = _u(rng, 0.5, 1.3)          # in units of r90
        p["companion_angle"] = _u(rng, 0.0, 2 * math.pi)
        p["companion_flux"] = _u(rng, 0.35, 1.0)
        p["companion_n"] = _u(rng, 1.0, 4.0)
        p["n_tails"] = int(rng.choice([1, 2]))
        p["tail_strength"] = _u(rng, 0.2, 0.55)
        p["bridge"] = bool(rng.random() < 0.6)
    elif kind == "irregular":
        p["q"] = _u(rng, 0.4, 1.0)
        p["n_clumps"] = int(rng.integers(3, 11))
        p["bulge_frac"] = _u(rng, 0.0, 0.08)
    elif kind == "star":
        p["artefact"] = str(rng.choice(["star", "streak", "saturated"], p=[0.5, 0.2, 0.3]))
        p["brightness"] = float(10 ** rng.uniform(3.0, 3.8))
    return p


# ------------------------------------------------------------------------------------------------------- labels

def _vec(*v: float) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64)
    return a / a.sum()


def _soft(x: float, centres: tuple[float, ...], width: float) -> np.ndarray:
    """Soft one-hot of x over ordered categories: volunteers near a boundary split between neighbours."""
    w = np.exp(-0.5 * ((x - np.asarray(centres)) / width) ** 2) + 1e-3
    return w / w.sum()


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _ideal_answers(p: dict) -> dict[str, np.ndarray]:
    """Per-question answer distributions an attentive volunteer would give, before disagreement."""
    kind = p["kind"]
    a = {
        "Class1": _vec(0.45, 0.54, 0.01),
        "Class2": _vec(0.12, 0.88),
        "Class3": _vec(0.12, 0.88),
        "Class4": _vec(0.35, 0.65),
        "Class5": _vec(0.15, 0.50, 0.30, 0.05),
        "Class6": _vec(0.07, 0.93),
        "Class7": _roundness(p["q"]),
        # what the few who call an unremarkable galaxy odd pick
        "Class8": _vec(0.10, 0.14, 0.12, 0.12, 0.42, 0.05, 0.05),
        "Class9": _vec(0.50, 0.10, 0.40),
        "Class10": _vec(0.30, 0.40, 0.30),
        "Class11": _vec(0.15, 0.30, 0.08, 0.05, 0.07, 0.35),
    }
    # Small or faint galaxies look smoother to volunteers (GZ2's redshift bias): features fade towards "smooth".
    vis = float(np.clip(math.sqrt(p["brightness"] / 25.0) * p["r90"] / R90_FRAME, 0.5, 1.0))
    if kind == "elliptical":
        # small round ones are sometimes taken for stars
        star = 0.005 + 0.03 * max(0.0, p["q"] - 0.85) / 0.15 * (1.3 - p["r90"] / R90_FRAME) / 0.6
        a["Class1"] = _vec(0.86 - star, 0.14, star)
        a["Class2"] = _vec(0.1 + 0.6 * _sigmoid((0.42 - p["q"]) / 0.06), 0.9 - 0.6 * _sigmoid((0.42 - p["q"]) / 0.06))
        a["Class4"] = _vec(0.15, 0.85)
        a["Class5"] = _vec(0.05, 0.25, 0.45, 0.25)
    elif kind in ("disk", "ring"):
        feat = 0.45 + 0.5 * p["arm_strength"] + (0.12 if p["bar"] else 0.0) + (0.2 if p["ring"] else 0.0)
        feat = min(0.94, feat) * (0.7 + 0.3 * vis)
        a["Class1"] = _vec(0.99 - feat, feat, 0.01)
        edge = _sigmoid((0.3 - p["q"]) / 0.06)
        a["Class2"] = _vec(0.03 + 0.9 * edge, 0.97 - 0.9 * edge)
        a["Class3"] = _vec(0.85, 0.15) if p["bar"] else _vec(0.07, 0.93)
        if p["n_arms"] > 0:
            s = p["arm_strength"] * vis
            a["Class4"] = _vec(0.3 + 0.68 * s, 0.7 - 0.68 * s)
            a["Class10"] = _soft(p["pitch_deg"], (10.0, 20.0, 32.0), 5.0)
            m = min(p["n_arms"], 5) - 1
            n = np.full(6, 0.01)
            n[m] = 1.0
            if m > 0:
                n[m - 1] += 0.15
            if m < 4:
                n[m + 1] += 0.15
            n /= n.sum()
            # Tight, many or faint arms are hard to count.
            cant = 0.08 + 0.2 * (1 - vis) + (0.15 if m == 4 else 0.0) + (0.1 if p["pitch_deg"] < 12 else 0.0)
            n *= 1 - cant
            n[5] += cant
            a["Class11"] = n
        else:
            a["Class4"] = _vec(0.12, 0.88)
        a["Class5"] = _soft(p["bulge_frac"], (0.0, 0.12, 0.32, 0.6), 0.09)
        a["Class9"] = _vec(0.7, 0.05, 0.25) if p["bulge_frac"] > 0.1 else _vec(0.2, 0.05, 0.75)
        if p["ring"]:
            a["Class6"] = _vec(0.78, 0.22)
            a["Class8"] = _vec(0.76, 0.10, 0.04, 0.02, 0.06, 0.01, 0.01)
    elif kind == "edge_on":
        a["Class1"] = _vec(0.26, 0.73, 0.01)
        a["Class2"] = _vec(0.9, 0.1)
        a["Class7"] = _vec(0.02, 0.22, 0.76)
        a["Class9"] = {"rounded": _vec(0.80, 0.06, 0.14), "boxy": _vec(0.25, 0.62, 0.13),
                       "none": _vec(0.10, 0.04, 0.86)}[p["bulge_shape"]]
        if p["dust_lane"]:
            a["Class6"] = _vec(0.55, 0.45)
            a["Class8"] = _vec(0.03, 0.04, 0.06, 0.04, 0.10, 0.01, 0.72)
    elif kind == "merger":
        a["Class1"] = _vec(0.33, 0.66, 0.01)
        a["Class2"] = _vec(0.06, 0.94)
        a["Class4"] = _vec(0.3 + 0.3 * p["tail_strength"], 0.7 - 0.3 * p["tail_strength"])
        a["Class6"] = _vec(0.9, 0.1)
        a["Class8"] = _vec(0.01, 0.02, 0.16, 0.05, 0.03, 0.72, 0.01)
        a["Class7"] = _vec(0.2, 0.6, 0.2)
    elif kind == "irregular":
        a["Class1"] = _vec(0.30, 0.69, 0.01)
        a["Class2"] = _vec(0.08, 0.92)
        a["Class3"] = _vec(0.06, 0.94)
        a["Class4"] = _vec(0.18, 0.82)
        a["Class5"] = _vec(0.55, 0.33, 0.10, 0.02)
        a["Class6"] = _vec(0.75, 0.25)
        a["Class8"] = _vec(0.02, 0.02, 0.30, 0.52, 0.08, 0.05, 0.01)
    elif kind == "star":
        a["Class1"] = {"star": _vec(0.14, 0.04, 0.82), "saturated": _vec(0.12, 0.06, 0.82),
                       "streak": _vec(0.25, 0.20, 0.55)}[p["artefact"]]
        a["Class7"] = _vec(0.85, 0.12, 0.03) if p["artefact"] != "streak" else _vec(0.3, 0.3, 0.4)
        a["Class6"] = _vec(0.3, 0.7)
        a["Class8"] = _vec(0.05, 0.15, 0.06, 0.04, 0.66, 0.02, 0.02)
    return a


def _roundness(q: float) -> np.ndarray:
    """Q7 from the projected axis ratio: round above ~0.8, cigar below ~0.45."""
    return _soft(q, (0.95, 0.66, 0.33), 0.1)


def labels_from_params(params: dict, rng: np.random.Generator) -> np.ndarray:
    """The 37 cumulative Kaggle vote fractions of one synthetic object (order of :data:`tree.COLUMNS`).

    Each question's answers start from the distribution the parameters imply, are blurred by a little confusion
    (everyone misclicks) and then replaced by a Dirichlet draw centred on them whose concentration is the number of
    volunteers who reached the question (``n_volunteers`` times the parent's fraction), like sampling that many
    votes: clear-cut answers near 1 are possible but rare, and rarely reached questions are noisy. The conditional
    fractions of every question sum to 1 and :func:`tree.cumulative` multiplies them down the tree, so the result
    obeys the tree exactly (Q1 and Q6 sum to 1). Fractions in [0, 1]; synthetic, not real votes.
    """
    ideal = _ideal_answers(params)
    cond = np.zeros(tree.N_ANSWERS)
    cum = np.zeros(tree.N_ANSWERS)
    n_vol = float(params["n_volunteers"])
    for q, s, parent in zip(tree.QUESTIONS, tree.QUESTION_SLICES, tree.PARENT_INDEX):
        p = ideal[q.key]
        p = 0.97 * p + 0.03 / len(p)
        reach = 1.0 if parent is None else cum[parent]
        kappa = max(2.0, n_vol * reach)
        c = rng.dirichlet(kappa * p + 0.02)
        c = np.where(np.isfinite(c), c, 0.0)
        c = c / c.sum() if c.sum() > 0 else p
        cond[s] = c
        cum[s] = c * reach
    return tree.cumulative(cond[None])[0]


# ---------------------------------------------------------------------------------------------------- rendering

@lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    c = np.arange(size, dtype=np.float32) + 0.5
    return np.broadcast_to(c[None, :], (size, size)), np.broadcast_to(c[:, None], (size, size))


def _fft_size(size: int) -> int:
    """Smallest 2-3-5-smooth length with a margin: FFTs of 424 (= 8 x 53) are slow, and the margin stops the blur
    wrapping light from one edge to the other."""
    n = size + 8
    while True:
        m = n
        for f in (2, 3, 5):
            while m % f == 0:
                m //= f
        if m == 1:
            return n
        n += 1


@lru_cache(maxsize=8)
def _freq2(n: int) -> np.ndarray:
    fy = np.fft.fftfreq(n)[:, None]
    fx = np.fft.rfftfreq(n)[None, :]
    return (fx * fx + fy * fy).astype(np.float32)


def _b_n(n: float) -> float:
    # Ciotti & Bertin (1999) expansion: b_n so that r_e encloses half the light.
    return 2.0 * n - 1.0 / 3.0 + 4.0 / (405.0 * n) + 46.0 / (25515.0 * n * n)


def _sersic_lum(re: float, n: float, q: float) -> float:
    """Total flux of a Sersic profile with unit surface brightness at r_e."""
    b = _b_n(n)
    return 2 * math.pi * n * q * re * re * math.exp(b) * b ** (-2 * n) * math.gamma(2 * n)


def _r90_over_re(n: float) -> float:
    # Petrosian R90/R_e: ~2.3 for an exponential, ~2.9 for de Vaucouleurs (Petrosian apertures miss the n=4 wings).
    return 2.3 + 0.2 * (min(max(n, 1.0), 4.0) - 1.0)


def _ell(x, y, cx, cy, pa, q, c=2.0):
    """Coordinates along/across the major axis (across stretched by 1/q) and the elliptical radius, in pixels."""
    dx, dy = x - cx, y - cy
    cs, sn = math.cos(pa), math.sin(pa)
    u = dx * cs + dy * sn
    v = (dy * cs - dx * sn) * (1.0 / q)
    if c == 2.0:
        r = np.sqrt(u * u + v * v)
    else:   # c > 2 makes boxy isophotes
        r = (np.abs(u) ** c + np.abs(v) ** c) ** (1.0 / c)
    return u, v, r


def _sersic(r, re: float, n: float) -> np.ndarray:
    b = _b_n(n)
    # a half-pixel core keeps the n~4 cusp finite without changing the look after the PSF
    x = np.sqrt(r * r + 0.25) * (1.0 / re)
    if n == 1.0:
        return np.exp(-b * (x - 1.0))
    return np.exp(-b * (x ** (1.0 / n) - 1.0))


def _window(size: int, cx: float, cy: float, rad: float):
    x0, x1 = max(int(cx - rad), 0), min(int(cx + rad) + 2, size)
    y0, y1 = max(int(cy - rad), 0), min(int(cy + rad) + 2, size)
    if x0 >= x1 or y0 >= y1:
        return None
    return slice(y0, y1), slice(x0, x1)


def _add_local(img, cx, cy, rad, sed, fn) -> None:
    """Add ``fn(x, y)`` times a colour only inside a box around (cx, cy): most sources are small."""
    size = img.shape[1]
    w = _window(size, cx, cy, rad)
    if w is None:
        return
    x, y = _grid(size)
    img[:, w[0], w[1]] += sed[:, None, None] * fn(x[w], y[w])[None]


def _gauss_blob(img, cx, cy, sigma, amp, sed) -> None:
    sigma = max(sigma, 0.5)
    _add_local(img, cx, cy, 4 * sigma, sed,
               lambda x, y: amp * np.exp(((x - cx) ** 2 + (y - cy) ** 2) * (-0.5 / sigma ** 2)))


def _lowres_noise(rng, size: int, cells: int, power: float = 1.0) -> np.ndarray:
    """Smooth positive random field (mean ~1) for clumpy star formation and patchy dust."""
    small = rng.random((cells, cells), dtype=np.float32) ** power
    big = Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC)
    f = np.asarray(big, dtype=np.float32)
    return np.clip(f, 0.0, None) * (1.0 / max(float(small.mean()), 1e-3))


def _spiral(u, v, m: int, pitch_deg: float, phase: float, sharp: float):
    """Logarithmic spiral arm pattern in [0, 1] (1 on an arm) in the disk plane."""
    theta = np.arctan2(v, u)
    lnr = np.log(np.sqrt(u * u + v * v) + 1.0)
    k = m / math.tan(math.radians(pitch_deg))
    return (0.5 + 0.5 * np.cos(m * theta - k * lnr + phase)) ** sharp


def _spheroid(img, x, y, cx, cy, r90, n, q, pa, amp, sed, c=2.0):
    re = r90 / _r90_over_re(n)
    _, _, r = _ell(x, y, cx, cy, pa, q, c)
    img += sed[:, None, None] * (amp * _sersic(r, re, n))[None]


def _render_disk(img, p, x, y, cx, cy, R, rng) -> None:
    q, pa, amp = p["q"], p["pa"], p["brightness"]
    re = R / _r90_over_re(1.0)
    u, v, r = _ell(x, y, cx, cy, pa, q)
    disk = _sersic(r, re, 1.0)
    bt = p["bulge_frac"]
    if bt > 0:
        bre = re * _u(rng, 0.15, 0.3)
        bn = _u(rng, 2.0, 4.0)
        # bulge amplitude from the light ratio B/T = L_b / (L_b + L_d)
        bamp = amp * bt / (1 - bt) * _sersic_lum(re, 1.0, q) / _sersic_lum(bre, bn, min(1.0, q + 0.3))
        _, _, rb = _ell(x, y, cx, cy, pa, min(1.0, q + 0.3))
        img += _RED[:, None, None] * (bamp * _sersic(rb, bre, bn))[None]
    base = 1.0 - 0.55 * p["arm_strength"]
    img += _DISK[:, None, None] * (amp * base * disk)[None]
    inner = re * (2.2 * p["bar_len"] if p["bar"] else _u(rng, 0.4, 0.8))
    if p["n_arms"] > 0:
        m = p["n_arms"]
        sharp = 3.0 if m <= 2 else 2.0
        pat = _spiral(u, v, m, p["pitch_deg"], _u(rng, 0, 2 * math.pi), sharp)
        if m >= 5:
            # flocculent: many short arm segments rather than grand design
            pat = pat * _lowres_noise(rng, img.shape[1], 10, 2.0)
        taper = 1.0 - np.exp(-(r * (1.0 / inner)) ** 2)
        knots = 0.6 + 0.4 * _lowres_noise(rng, img.shape[1], 24, 3.0)
        arms = (amp * 2.2 * p["arm_strength"]) * _sersic(r, re * 1.15, 1.0) * pat * taper * knots
        img += _BLUE[:, None, None] * arms[None]
    if p["bar"]:
        L = p["bar_len"] * R
        ub, vb, _ = _ell(u, v, 0.0, 0.0, p["bar_angle"], 1.0)
        rb2 = (ub * (1.0 / L)) ** 2 + (vb * (1.0 / (0.28 * L))) ** 2
        bar = np.clip(1.0 - rb2, 0.0, None) ** 2
        img += _RED[:, None, None] * (amp * _u(rng, 2.5, 4.0) * bar)[None]
    if p["ring"]:
        Rr = p["ring_radius"] * R
        w = Rr * _u(rng, 0.08, 0.16)
        if p["collisional"]:
            # the intruder shifts the nucleus off the ring's centre
            u = u + _u(rng, -0.3, 0.3) * Rr
            v = v + _u(rng, -0.3, 0.3) * Rr
        rr = np.sqrt(u * u + v * v)
        ring = np.exp(-0.5 * ((rr - Rr) * (1.0 / w)) ** 2) * (0.5 + 0.5 * _lowres_noise(rng, img.shape[1], 16, 2.0))
        img += _BLUE[:, None, None] * (amp * _u(rng, 1.2, 2.2) * ring)[None]


def _render_edge_on(img, p, x, y, cx, cy, R, rng) -> None:
    amp, pa, q = p["brightness"] * 1.6, p["pa"], p["q"]
    re = R / _r90_over_re(1.0)
    u, v, r = _ell(x, y, cx, cy, pa, q)
    img += _DISK[:, None, None] * (amp * _sersic(r, re, 1.0))[None]
    if p["bulge_shape"] != "none":
        bt = p["bulge_frac"]
        boxy = p["bulge_shape"] == "boxy"
        bq, bn, c = (0.8, 1.5, 3.5) if boxy else (_u(rng, 0.65, 0.9), _u(rng, 2.5, 4.0), 2.0)
        bre = re * _u(rng, 0.3, 0.45)
        bamp = amp * bt / (1 - bt) * _sersic_lum(re, 1.0, q) / _sersic_lum(bre, bn, bq)
        _spheroid(img, x, y, cx, cy, bre * _r90_over_re(bn), bn, bq, pa, bamp, _RED, c)
    if p["dust_lane"]:
        # the lane sits a little off the midplane because no disk is exactly edge-on
        off = _u(rng, -0.3, 0.3)
        w = _u(rng, 0.25, 0.45)
        tau = _u(rng, 1.0, 2.5) * np.exp(-0.5 * ((v - off) * (1.0 / w)) ** 2) * np.exp(-np.abs(u) * (1.0 / (1.5 * R)))
        tau = tau * (0.7 + 0.3 * _lowres_noise(rng, img.shape[1], 20))
        img *= np.exp(-_DUST[:, None, None] * tau[None])


def _tail(img, x, y, cx, cy, R, strength, amp, rng) -> None:
    """A curved tidal tail: one loose spiral arm starting outside the body, clumpy and blue."""
    q = _u(rng, 0.5, 1.0)
    u, v, r = _ell(x, y, cx, cy, _u(rng, 0, math.pi), q)
    pat = _spiral(u, v, 1, _u(rng, 25.0, 40.0), _u(rng, 0, 2 * math.pi), 6.0)
    radial = np.exp(-r * (1.0 / (0.9 * R))) * (1.0 - np.exp(-(r * (1.0 / (0.6 * R))) ** 2))
    t = amp * strength * 3.0 * pat * radial * _lowres_noise(rng, img.shape[1], 14, 1.5)
    img += _BLUE[:, None, None] * t[None]


def _render_merger(img, p, x, y, cx, cy, R, rng) -> None:
    amp = p["brightness"]
    ang = p["companion_angle"]
    d = p["companion_sep"] * R
    cx2, cy2 = cx + d * math.cos(ang), cy + d * math.sin(ang)
    r1, r2 = 0.7 * R, 0.7 * R * math.sqrt(p["companion_flux"])
    col1 = _RED if p["sersic_n"] > 2.5 else 0.5 * (_RED + _DISK)
    col2 = _RED if p["companion_n"] > 2.5 else 0.5 * (_DISK + _BLUE)
    _spheroid(img, x, y, cx, cy, r1, p["sersic_n"], p["q"], p["pa"], amp, col1)
    _spheroid(img, x, y, cx2, cy2, r2, p["companion_n"], _u(rng, 0.5, 1.0), _u(rng, 0, math.pi),
              amp * p["companion_flux"], col2)
    _tail(img, x, y, cx, cy, R, p["tail_strength"], amp, rng)
    if p["n_tails"] > 1:
        _tail(img, x, y, cx2, cy2, R, p["tail_strength"], amp, rng)
    if p["bridge"]:
        dx, dy = cx2 - cx, cy2 - cy
        t = np.clip(((x - cx) * dx + (y - cy) * dy) * (1.0 / (dx * dx + dy * dy + 1e-6)), 0.0, 1.0)
        dist2 = (x - cx - t * dx) ** 2 + (y - cy - t * dy) ** 2
        w = 0.12 * R
        img += _BLUE[:, None, None] * (amp * 0.5 * p["tail_strength"] * np.exp(dist2 * (-0.5 / w ** 2)))[None]


def _render_irregular(img, p, x, y, cx, cy, R, rng) -> None:
    amp = p["brightness"] * 0.7
    re = R / _r90_over_re(1.0)
    # an asymmetric, lumpy low-surface-brightness body
    _, _, r = _ell(x, y, cx + _u(rng, -0.15, 0.15) * R, cy + _u(rng, -0.15, 0.15) * R, p["pa"], p["q"])
    body = amp * _sersic(r, re, 1.0) * (0.4 + 0.6 * _lowres_noise(rng, img.shape[1], 8, 1.5))
    img += (0.5 * (_DISK + _BLUE))[:, None, None] * body[None]
    for _ in range(p["n_clumps"]):
        ox, oy = rng.normal(0.0, 0.45 * R, 2)
        _gauss_blob(img, cx + ox, cy + oy, _u(rng, 0.04, 0.12) * R, amp * _u(rng, 1.0, 5.0), _BLUE)


def _render_elliptical(img, p, x, y, cx, cy, R, rng) -> None:
    # spheroids have high surface brightness: without the boost their n~4 wings vanish into the sky by R90
    _spheroid(img, x, y, cx, cy, R, p["sersic_n"], p["q"], p["pa"], 2.5 * p["brightness"], _RED)


def _star_colour(rng) -> np.ndarray:
    t = _u(rng, 0.0, 1.0)   # cool (red) ... hot (blue)
    return ((1 - t) * np.array([1.0, 0.8, 0.55]) + t * np.array([0.8, 0.88, 1.0])).astype(np.float32)


def _point(img, cx, cy, flux, sed, core: float = 0.5) -> None:
    """A star before the PSF: a small core (the blur gives it its shape) and, if bright, a scattered-light halo."""
    _gauss_blob(img, cx, cy, core, flux, sed)
    if flux > 800:
        a = max(3.0 * img.shape[1] / 424.0, core)
        _add_local(img, cx, cy, 30 * a, sed,
                   lambda x, y: 0.01 * flux / (1.0 + ((x - cx) ** 2 + (y - cy) ** 2) * (1.0 / a ** 2)) ** 1.5)


def _spikes(img, cx, cy, flux, pa, length, sed) -> None:
    k = img.shape[1] / 424.0
    w, l0 = max(0.5, 1.2 * k), max(1.0, 6.0 * k)
    for ang in (pa, pa + math.pi / 2):
        def fn(x, y, ang=ang):
            u, v, _ = _ell(x, y, cx, cy, ang, 1.0)
            return 0.05 * flux * np.exp(-0.5 * (v * (1.0 / w)) ** 2) / (1.0 + np.abs(u) * (1.0 / l0)) ** 1.3
        _add_local(img, cx, cy, length, sed, fn)


def _render_star(img, p, x, y, cx, cy, R, rng) -> None:
    # GZ2 cut each object out at a scale set by its own size, so a star's frame is zoomed in and the star fills a
    # good part of it: its PSF is drawn here on the scale of r90, not of the frame's pixels.
    size = img.shape[1]
    k = size / 424.0
    flux = p["brightness"]
    sed = _star_colour(rng)
    core = _u(rng, 0.12, 0.22) * R
    if p["artefact"] == "star":
        _point(img, cx, cy, flux, sed, core)
        _spikes(img, cx, cy, flux * 0.3, p["pa"], 0.45 * size, sed)
    elif p["artefact"] == "saturated":
        # a flat-topped core and a bleed trail along the CCD columns, as a saturated star leaves them
        rad = 1.5 * core
        _add_local(img, cx, cy, 4 * rad, sed, lambda x, y: np.minimum(
            1500.0, flux * np.exp(-0.5 * ((x - cx) ** 2 + (y - cy) ** 2) * (1.0 / rad ** 2))))
        _point(img, cx, cy, flux, sed, core)
        length = _u(rng, 0.15, 0.4) * size
        wb = max(0.6, 2.5 * k)
        _add_local(img, cx, cy, length, np.ones(3, np.float32), lambda x, y: 1200.0 * np.exp(
            -0.5 * ((x - cx) * (1.0 / wb)) ** 2) * (np.abs(y - cy) < length))
        _spikes(img, cx, cy, flux * 0.3, p["pa"], 0.4 * size, sed)
    else:
        # a faint compact galaxy crossed by a satellite trail; the gri bands were exposed at different moments, so
        # the trail lands at a different offset in each colour channel
        _spheroid(img, x, y, cx, cy, 0.4 * R, 2.0, _u(rng, 0.6, 1.0), p["pa"], 25.0, _RED)
        ang = p["pa"]
        d0 = _u(rng, -0.05, 0.05) * size
        step = _u(rng, 3.0, 8.0) * k
        w = max(0.5, 1.0 * k)
        dist = (x - cx) * math.sin(ang) - (y - cy) * math.cos(ang)
        bands = [0, 1, 2] if rng.random() < 0.6 else [int(rng.integers(0, 3))]
        for c in bands:
            img[c] += _u(rng, 15.0, 60.0) * np.exp(-0.5 * ((dist - d0 - c * step) * (1.0 / w)) ** 2)


_RENDERERS = {
    "elliptical": _render_elliptical, "disk": _render_disk, "ring": _render_disk, "edge_on": _render_edge_on,
    "merger": _render_merger, "irregular": _render_irregular, "star": _render_star,
}


def _field(img, p, cx, cy, R, rng) -> None:
    """Foreground stars and small background galaxies, kept clear of the target so labels stay about it."""
    size = img.shape[1]

    def spot():
        for _ in range(20):
            fx, fy = rng.uniform(0, size, 2)
            if math.hypot(fx - cx, fy - cy) > 1.6 * R:
                break
        return float(fx), float(fy)

    for _ in range(int(rng.poisson(3.0))):
        fx, fy = spot()
        _point(img, fx, fy, float(10 ** rng.uniform(1.0, 3.3)), _star_colour(rng))
    for _ in range(int(rng.poisson(2.0))):
        fx, fy = spot()
        n = _u(rng, 1.0, 4.0)
        r90 = _u(rng, 0.008, 0.025) * size
        sed = _RED if n > 2.5 else _DISK
        amp = _u(rng, 3.0, 15.0)
        q, pa = _u(rng, 0.3, 1.0), _u(rng, 0, math.pi)
        re = r90 / _r90_over_re(n)
        _add_local(img, fx, fy, 3 * r90, sed,
                   lambda xx, yy: amp * _sersic(_ell(xx, yy, fx, fy, pa, q)[2], re, n))


def _native_size(size: int) -> int:
    # GZ2 cutouts were resampled from SDSS frames to 0.02 petroR90 per pixel, about twice finer than the 0.396"
    # camera pixels for a typical galaxy: the Kaggle images carry about half their pixel count in detail, and their
    # noise is correlated over ~2 px. Rendering at half size and enlarging reproduces that, at a quarter of the cost.
    return size // 2 if size >= 200 else size


def render_galaxy(params: dict, size: int = 424, rng: np.random.Generator | None = None) -> np.ndarray:
    """Render one synthetic object as an SDSS-like gri colour cutout: a (size, size, 3) uint8 RGB array.

    ``size`` is in pixels; the object's scale follows ``params['r90']`` as a fraction of the frame, so a smaller
    ``size`` gives the same picture at lower resolution. ``rng`` draws the details the parameters leave open (star
    forming knots, field stars, noise), so the same params and seed give the same pixels. Flux is in units of the
    sky noise; the PSF is Gaussian (``params['psf']``, 1-2 px at 424 px); noise is read noise plus a Poisson-like
    term growing with the flux; the asinh stretch (Lupton et al. 2004) keeps colours and leaves the sky dark grey.
    From 200 px up the picture is drawn at half size (the "camera" resolution of GZ2 cutouts) and enlarged.
    """
    if rng is None:
        rng = np.random.default_rng()
    size = int(size)
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels, got {size}")
    n = _native_size(size)
    x, y = _grid(n)
    img = np.zeros((3, n, n), np.float32)
    cx, cy = n / 2 + params["x0"] * n, n / 2 + params["y0"] * n
    R = params["r90"] * n
    _RENDERERS[params["kind"]](img, params, x, y, cx, cy, R, rng)
    img *= np.asarray(params["colour"], np.float32)[:, None, None]
    _field(img, params, cx, cy, R, rng)

    sigma = params["psf"] * n
    if sigma > 0.2:
        m = _fft_size(n)
        tf = np.exp(_freq2(m) * np.float32(-2 * math.pi ** 2 * sigma ** 2))
        spec = np.fft.rfft2(img, s=(m, m), axes=(1, 2)) * tf
        img = np.fft.irfft2(spec, s=(m, m), axes=(1, 2))[:, :n, :n].astype(np.float32)

    # Sky-subtracted noise: unit sky+read noise plus a photon term for the source (gain ~ 10 sky-sigma units).
    noise = rng.standard_normal((3, n, n), dtype=np.float32)
    img += noise * np.sqrt(1.0 + np.clip(img, 0.0, None) * 0.1)

    soft, top = 4.0, 500.0
    t = img.mean(axis=0) * (1.0 / soft)
    t = np.where(np.abs(t) < 1e-4, np.float32(1e-4), t)
    scale = np.arcsinh(t) / (t * (soft * math.asinh(top / soft)))
    out = img * scale[None] + np.float32(params["sky"])
    out = (np.clip(out, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8).transpose(1, 2, 0)
    if n != size:
        return np.asarray(Image.fromarray(np.ascontiguousarray(out)).resize(
            (size, size), Image.Resampling.BICUBIC))
    return np.ascontiguousarray(out)


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


def _readme(n_labelled, n_unlabelled, size, seed, quality) -> str:
    kinds = ", ".join(f"{k.name} {k.fraction:.3g}" for k in KINDS.values())
    return (
        "# Synthetic Galaxy Zoo demo data\n\n"
        "These images and labels are synthetic: they were made by `galaxy_core.demo.make_demo_dataset` "
        f"(n_labelled={n_labelled}, n_unlabelled={n_unlabelled}, size={size} px, seed={seed}, "
        f"JPEG quality={quality}) from parametric galaxy models rendered like SDSS gri cutouts, not observed, and "
        f"the 37 vote fractions in `{LABEL_CSV}` were derived from the same parameters with simulated volunteer "
        f"disagreement, not voted by anyone. The layout mimics the Kaggle \"Galaxy Zoo - The Galaxy Challenge\" "
        f"data (`{LABELLED_DIR}/` labelled, `{UNLABELLED_DIR}/` unlabelled, GalaxyIDs from {FIRST_ID}) so the tools "
        f"run without real data; kinds and mixing fractions: {kinds}. Use it to exercise the software only, never to "
        f"draw conclusions about galaxies; the same parameters and seed rebuild it byte for byte.\n"
    )


def _make_one(out: Path, index: int, gid: int, labelled: bool, size: int, seed: int, quality: int):
    prng, lrng, rrng = _seeds(seed, index)
    params = sample_params(prng)
    img = render_galaxy(params, size, rrng)
    folder = LABELLED_DIR if labelled else UNLABELLED_DIR
    Image.fromarray(img).save(out / folder / f"{gid}.jpg", format="JPEG", quality=quality)
    return _csv_row(gid, _to_micro(labels_from_params(params, lrng))) if labelled else None


def _non_empty(path: Path) -> bool:
    return path.is_dir() and any(path.iterdir())


def make_demo_dataset(out_dir, n_labelled: int = 600, n_unlabelled: int = 100, size: int = 424, seed: int = 0,
                      quality: int = 90, progress: Callable[[int, int], None] | None = None, *,
                      overwrite: bool = False, workers: int | None = None) -> Path:
    """Write a synthetic data set in the Kaggle Galaxy Challenge layout to ``out_dir`` and return its path.

    ``n_labelled`` images go to ``images_training_rev1/`` with their labels in ``training_solutions_rev1.csv``
    (GalaxyID and the 37 columns of :data:`tree.COLUMNS`, 6 decimals, every question summing exactly to its parent
    answer), ``n_unlabelled`` to ``images_test_rev1/``. GalaxyIDs are consecutive 8-digit integers from :data:`FIRST_ID`,
    labelled first. Images are ``size`` x ``size`` pixel RGB JPEGs (424 like Kaggle's). The result depends only on
    the arguments: the same seed gives byte-identical files. The data are synthetic (see ``README.md`` in the output).

    The set is built in a sibling ``<out_dir>.tmp-*`` folder and renamed into place at the end
    (``files.building_dir``), so an interrupted run never leaves a folder that looks complete. An existing non-empty
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
        pool = ThreadPoolExecutor(max_workers=workers)
        try:
            futures = [pool.submit(_make_one, tmp, i, gid, lab, size, seed, quality) for i, gid, lab in jobs]
            # collected in submission order so that progress and the first error come out the same every run
            for done, fut in enumerate(futures, 1):
                rows.append(fut.result())
                if progress is not None:
                    progress(done, total)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        header = ",".join(["GalaxyID", *tree.COLUMNS])
        text = "\n".join([header, *(r for r in rows[:n_labelled] if r is not None)]) + "\n"
        with open(tmp / LABEL_CSV, "w", newline="", encoding="ascii") as f:
            f.write(text)
        with open(tmp / "README.md", "w", newline="", encoding="utf-8") as f:
            f.write(_readme(n_labelled, n_unlabelled, size, seed, quality))
        # The images are whole frames at any `size`: declare it, so that galaxy_core.data reads them as such;
        # and say they are synthetic, so that a model trained on them is not used on real galaxies unwarned.
        with open(tmp / "galaxy_core.json", "w", encoding="ascii") as f:
            f.write(SETTINGS)
    return out


def is_complete_demo(root, n_labelled: int = _DEFAULTS["n_labelled"],
                     n_unlabelled: int = _DEFAULTS["n_unlabelled"]) -> bool:
    """Whether ``root`` holds a finished data set: the CSV with the expected header and rows, an image for every row
    and the expected number of unlabelled images. Images are counted, not decoded."""
    root = Path(root)
    csv = root / LABEL_CSV
    try:
        lines = csv.read_text(encoding="ascii").splitlines()
        train = {p.name for p in (root / LABELLED_DIR).iterdir() if p.suffix == ".jpg"}
        test = [p for p in (root / UNLABELLED_DIR).iterdir() if p.suffix == ".jpg"]
    except (OSError, UnicodeDecodeError):
        return False
    if not lines or lines[0] != ",".join(["GalaxyID", *tree.COLUMNS]) or len(lines) - 1 != n_labelled:
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
    100 unlabelled 424 px images) is returned untouched. An incomplete one that this module wrote (its README says
    so) is rebuilt; any other non-empty folder is left alone and raises FileExistsError. The data are synthetic.
    """
    root = DEFAULT_ROOT if root is None else Path(root)
    counts = _DEFAULTS["n_labelled"], _DEFAULTS["n_unlabelled"]
    with _LOCK:
        if is_complete_demo(root, *counts):
            settings = root / "galaxy_core.json"
            if not settings.is_file() or settings.read_text(encoding="ascii", errors="replace") != SETTINGS:
                atomic_write_text(settings, SETTINGS)  # a demo made before it said "synthetic"
            return root
        ours = (root / "README.md").is_file() and "galaxy_core.demo" in (root / "README.md").read_text(
            encoding="utf-8", errors="replace")
        try:
            return make_demo_dataset(root, **_DEFAULTS, progress=progress, overwrite=ours)
        except FileExistsError:
            if is_complete_demo(root, *counts):   # another process made it meanwhile
                return root
            raise
