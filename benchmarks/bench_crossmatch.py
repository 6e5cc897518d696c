"""Crossmatch speed and truth: 100,000 left positions against 1,000,000 right positions within 1 arcsec.

Not collected by pytest (no ``test_`` prefix). Run from the project folder with nothing else running::

    python benchmarks/bench_crossmatch.py [--n-left 100000] [--n-right 1000000] [--planted 90000] [--seed 33]

Both catalogues are synthetic and uniform on the sphere (RA uniform, sin Dec uniform), from a fixed seed. The first
``--planted`` left positions are true counterparts of distinct right rows, offset from them by less than 0.5 arcsec
(uniform over the disc, at a uniform position angle, by ``SkyCoord.directional_offset_by``); the other left
positions are drawn independently and have no counterpart. Prints the seconds taken:

* build: the two ``SkyCoord`` objects, then astropy's KD-tree over the right catalogue (built by the first match and
  kept on the catalogue; timed with a one-position match);
* match: ``match_to_catalog_sky`` for every left position on that tree;
* ``galaxy_core.data.crossmatch``: the package's whole left join (validation, both steps above, the columns brought);

each once, after a 10-row warm-up that takes the imports out of the timings; and the matches found against those
planted: true positives (the planted counterpart found), false matches (a left row matched to another right row: a
chance neighbour within 1 arcsec), missed (a planted counterpart not found).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from astropy import units as u
from astropy.coordinates import SkyCoord

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from galaxy_core.data import crossmatch  # noqa: E402


def on_sphere(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` positions uniform on the sphere, RA and Dec in degrees."""
    return rng.uniform(0, 360, n), np.degrees(np.arcsin(rng.uniform(-1, 1, n)))


def catalogues(n_left: int, n_right: int, planted: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The right catalogue (``row`` its position) and the left one (``truth`` the planted right row, -1 none)."""
    rng = np.random.default_rng(seed)
    ra, dec = on_sphere(rng, n_right)
    right = pd.DataFrame({"ra": ra, "dec": dec, "row": np.arange(n_right)})
    truth = rng.choice(n_right, planted, replace=False)
    offset = 0.5 * np.sqrt(rng.uniform(0, 1, planted)) * u.arcsec  # uniform over the disc; < 0.5 arcsec
    moved = SkyCoord(ra[truth] * u.deg, dec[truth] * u.deg).directional_offset_by(
        rng.uniform(0, 360, planted) * u.deg, offset)
    lra, ldec = on_sphere(rng, n_left - planted)
    left = pd.DataFrame({"ra": np.concatenate([moved.ra.deg, lra]), "dec": np.concatenate([moved.dec.deg, ldec]),
                         "truth": np.concatenate([truth, np.full(n_left - planted, -1)])})
    return left, right


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
                 platform.processor()) if os.path.exists("/proc/cpuinfo") else platform.processor()
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-left", type=int, default=100_000)
    p.add_argument("--n-right", type=int, default=1_000_000)
    p.add_argument("--planted", type=int, default=90_000)
    p.add_argument("--seed", type=int, default=33)
    p.add_argument("--max-sep", default="1arcsec")
    a = p.parse_args()
    import astropy
    import scipy

    print(f"machine: {machine()}; astropy {astropy.__version__}, scipy {scipy.__version__}, "
          f"numpy {np.__version__}, pandas {pd.__version__}")
    (left, right), t_make = timed(lambda: catalogues(a.n_left, a.n_right, a.planted, a.seed))
    print(f"{a.n_left:,} left ({a.planted:,} planted) against {a.n_right:,} right, max_sep {a.max_sep}; "
          f"catalogues made in {t_make:.1f} s")

    crossmatch.crossmatch(left[:10], right[:10], a.max_sep)  # imports (scipy's KD-tree) out of the timings
    (here, there), t_coords = timed(lambda: (SkyCoord(left["ra"].to_numpy() * u.deg, left["dec"].to_numpy() * u.deg),
                                             SkyCoord(right["ra"].to_numpy() * u.deg,
                                                      right["dec"].to_numpy() * u.deg)))
    _, t_tree = timed(lambda: here[:1].match_to_catalog_sky(there))  # builds and keeps the KD-tree on ``there``
    _, t_match = timed(lambda: here.match_to_catalog_sky(there))
    (joined, report), t_package = timed(lambda: crossmatch.crossmatch(left, right, a.max_sep, columns=["row"]))

    found = joined["row"].to_numpy(dtype=float, na_value=np.nan)
    truth = left["truth"].to_numpy()
    true_pos = int((found == truth).sum())
    false = int((~np.isnan(found) & (found != truth)).sum())
    missed = int(((truth >= 0) & (found != truth)).sum())
    rows = [("build: SkyCoord x 2", t_coords), (f"build: KD-tree ({a.n_right:,})", t_tree),
            (f"match: {a.n_left:,} queries", t_match), ("build + match", t_coords + t_tree + t_match),
            ("galaxy_core.data.crossmatch (all)", t_package)]
    print("\n| step | seconds |\n| --- | ---: |")
    for name, s in rows:
        print(f"| {name} | {s:.2f} |")
    print(f"\n| planted | matched | true positives | false | missed | matched more than once |\n"
          f"| ---: | ---: | ---: | ---: | ---: | ---: |\n"
          f"| {a.planted:,} | {report.matched:,} | {true_pos:,} | {false:,} | {missed:,} | "
          f"{report.matched_more_than_once:,} |")


if __name__ == "__main__":
    main()
