"""Synthetic galaxies: the kinds of object the demo draws, their generating parameters and made-up Galaxy Zoo labels.

Nothing here is a real galaxy. Each object is one flat dict of parameters (:func:`sample_params`) from which
``render`` draws the image and :func:`labels_from_params` makes up the 37 labels: per-question answer distributions
that follow from the model (a cigar-shaped elliptical is "smooth, cigar-shaped", a merger is "odd, merger") blurred by
a Dirichlet draw that mimics volunteer disagreement, then turned into Kaggle's cumulative fractions with
:func:`galaxy_core.tree.cumulative`, so they obey the decision tree exactly. They are good for exercising the
pipeline and the dashboard, and useless for science.

Units: lengths in the parameter dicts are fractions of the image width (``r90 = 0.118`` is 50 px at 424 px, the
scale of the GZ2 cutouts, which were made 0.02 * petroR90_r arcsec per pixel), angles are radians unless the key ends
in ``_deg``, brightnesses are surface brightnesses in units of the sky noise sigma, and labels are vote fractions in
[0, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from galaxy_core import tree

__all__ = ["KINDS", "R90_FRAME", "Kind", "labels_from_params", "sample_params"]

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

