"""The project's batched Gini, M20 and asymmetry (``galaxy_core.morphology``) against statmorph, the field's
reference implementation (Rodriguez-Gomez et al. 2019, MNRAS 483, 4140), on the same galaxies: agreement and speed.

Not collected by pytest (no ``test_`` prefix). Needs ``pip install statmorph`` (which brings ``photutils`` and
``astropy``). Run from the project folder with nothing else running::

    python tests/bench_morphology.py DATA [--n 1000] [--source-fov 0.6038]

``DATA`` is a data folder or a prepared cache (``../shared/data/gz2-kaggle-96-unlabelled`` with ``--source-fov
0.6038``); the first ``--n`` galaxies are measured, at the cache's 80 px. Both codes see the same input: the grey
image (mean of the three channels), minus the sky level that the project measures from a border frame, and the
project's segmentation of the central galaxy. statmorph also gets a weight map: the sky noise the project measures
(1.4826 x MAD of the border), the same for every pixel, and ``skybox_size=16`` (its default 32 px box does not fit
in the corners of an 80 px cutout beside a galaxy). statmorph then applies its own definitions on top: Gini and M20
on its Gini segmentation (pixels above the surface brightness at the Petrosian radius; Lotz et al. 2004), asymmetry
in a circle of 1.5 Petrosian radii about the point that minimises it, with the sky asymmetry of a sky box (Conselice
2003). Galaxies statmorph flags as bad (``flag > 1``) are left out of the agreement and counted.

Prints the median and 90th-percentile absolute difference and the rank correlation of each statistic, and the speed
of each code on one core. The pixels are stretched 8-bit JPEG values, not linear flux, for both: this measures the
two implementations against each other, not either against the papers' scales.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from galaxy_core import data, morphology  # noqa: E402

STATS = ("gini", "m20", "asymmetry")


def statmorph_table(images: np.ndarray, ids: np.ndarray) -> pd.DataFrame:
    """statmorph's Gini, M20, asymmetry and flag for each cutout, on the project's sky-subtracted grey image and
    segmentation (see the module docstring)."""
    import statmorph

    seg = morphology._segment_batch(morphology._grey(images), 2.0)
    rows = []
    for k in range(len(images)):
        x, m, sigma = seg["image"][k], seg["mask"][k], float(seg["sigma"][k])
        row = {"GalaxyID": str(ids[k]), "flag": 4, **{s: np.nan for s in STATS}}
        if m.sum() >= 10 and sigma > 0:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # statmorph warns for every suspect measurement; the flag says it
                try:
                    sm = statmorph.SourceMorphology(x, m.astype(np.int32), 1, weightmap=np.full(x.shape, sigma),
                                                    skybox_size=16)
                    row.update(flag=int(sm.flag), gini=sm.gini, m20=sm.m20, asymmetry=sm.asymmetry)
                except Exception as e:  # noqa: BLE001 - counted as a failed measurement
                    row.update(error=f"{type(e).__name__}: {e}")
        rows.append(row)
    return pd.DataFrame(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("data")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--source-fov", type=float, default=None)
    args = p.parse_args()
    cache = data.resolve_cache(args.data, source_fov=args.source_fov)
    n = min(args.n, len(cache))
    images, ids = np.asarray(cache.images[:n]), cache.ids[:n]

    t0 = time.perf_counter()
    ours = morphology.morphology_table(images, ids)
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = statmorph_table(images, ids)
    t_ref = time.perf_counter() - t0

    both = ours.merge(ref, on="GalaxyID", suffixes=("", "_statmorph"))
    good = both[(both["flag"] <= 1)]
    flags = ref["flag"].value_counts().sort_index()
    print(f"{n:,} galaxies of {cache.path} at {cache.size} px; statmorph flags: "
          + ", ".join(f"{int(f)}: {c:,}" for f, c in flags.items())
          + f" (4 here: no segmentation or statmorph raised); {len(good):,} compared\n")
    print("| statistic | median abs difference | 90th percentile | rank correlation | project median | "
          "statmorph median |\n| --- | ---: | ---: | ---: | ---: | ---: |")
    for s in STATS:
        a, b = good[s].to_numpy(float), good[f"{s}_statmorph"].to_numpy(float)
        ok = np.isfinite(a) & np.isfinite(b)
        d = np.abs(a[ok] - b[ok])
        rho = pd.Series(a[ok]).rank().corr(pd.Series(b[ok]).rank())
        print(f"| {s} | {np.median(d):.3f} | {np.percentile(d, 90):.3f} | {rho:.2f} | {np.median(a[ok]):.3f} | "
              f"{np.median(b[ok]):.3f} |")
    print(f"\nspeed on one core: project {n / t_ours:,.0f} galaxies/s ({t_ours:.1f} s), statmorph "
          f"{n / t_ref:,.1f} galaxies/s ({t_ref:.1f} s): {t_ref / t_ours:,.0f} times; "
          f"{time.strftime('%Y-%m-%d')}")


if __name__ == "__main__":
    main()
