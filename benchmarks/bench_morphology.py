"""The morphology check's numbers: statmorph's speed on one and on every core, its flags, how much the assumed asinh
softening Q moves the statistics, and how far the project's former batched code agreed with statmorph.

Not collected by pytest (no ``test_`` prefix). Run from the project folder with nothing else running::

    python benchmarks/bench_morphology.py DATA [--n 1000] [--source-fov 0.6038] [--q-n 200] [--old f018821]

``DATA`` is a data folder or a prepared cache (``../shared/data/gz2-kaggle-96-unlabelled`` with ``--source-fov
0.6038``); the first ``--n`` galaxies are measured at the cache's 80 px by ``galaxy_core.mergers.morphology`` (linear
flux with Q = 4.623, photutils segmentation, statmorph). Prints:

* speed, galaxies/s, with 1 process and with one per core, on the same galaxies;
* statmorph's flags and why measurements were dropped;
* for Q = 0 (the JPEG values taken as linear), 4.623 (the default, ``morphology.LUPTON_Q``), 8 (make_lupton_rgb's
  default) and 12, on the first ``--q-n`` galaxies: the median Gini, M20 and asymmetry and the Gini-M20 and
  asymmetry merger fractions;
* with ``--old REV`` (a git revision that still has the project's own batched Gini, M20 and asymmetry in
  ``galaxy_core/morphology.py``; f018821 is the last), that code against statmorph on the same galaxies: the median
  and 90th-percentile absolute difference, the rank correlation, and its speed. The old code sees the same linear
  image and makes its own segmentation, as it did in the package; then, as the package ran it, the JPEG values.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from galaxy_core.data.prepare import resolve_cache  # noqa: E402
from galaxy_core.mergers import morphology  # noqa: E402

AGREEMENT = ("gini", "m20", "asymmetry")


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def old_code(rev: str) -> types.ModuleType:
    """The removed batched code, as a module, from ``git show REV:galaxy_core/morphology.py``."""
    src = subprocess.run(["git", "show", f"{rev}:galaxy_core/morphology.py"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    mod = types.ModuleType("old_morphology")
    exec(compile(src, f"{rev}:galaxy_core/morphology.py", "exec"), mod.__dict__)  # noqa: S102 - removed code, from git
    return mod


def agreement(ours: pd.DataFrame, ref: pd.DataFrame) -> None:
    both = ours.merge(ref[morphology.usable(ref)], on="GalaxyID", suffixes=("", "_statmorph"))
    print(f"{len(both):,} galaxies compared\n\n| statistic | median abs difference | 90th percentile | "
          "rank correlation | old median | statmorph median |\n| --- | ---: | ---: | ---: | ---: | ---: |")
    for s in AGREEMENT:
        a, b = both[s].to_numpy(float), both[f"{s}_statmorph"].to_numpy(float)
        ok = np.isfinite(a) & np.isfinite(b)
        d = np.abs(a[ok] - b[ok])
        rho = pd.Series(a[ok]).rank().corr(pd.Series(b[ok]).rank())
        print(f"| {s} | {np.median(d):.3f} | {np.percentile(d, 90):.3f} | {rho:.2f} | {np.median(a[ok]):.3f} | "
              f"{np.median(b[ok]):.3f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("data")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--source-fov", type=float, default=None)
    p.add_argument("--q-n", type=int, default=200)
    p.add_argument("--old", default=None, metavar="REV")
    args = p.parse_args()
    cache = resolve_cache(args.data, source_fov=args.source_fov)
    n = min(args.n, len(cache))
    images, ids = np.asarray(cache.images[:n]), cache.ids[:n]
    cores = os.cpu_count() or 1
    print(f"{n:,} galaxies of {cache.path} at {cache.size} px; {cores} cores; {time.strftime('%Y-%m-%d')}\n")

    one, t_one = timed(lambda: morphology.morphology_table(images, ids, workers=1))
    ref, t_all = timed(lambda: morphology.morphology_table(images, ids, workers=cores))
    pd.testing.assert_frame_equal(one, ref)  # the pool changes nothing but the time
    print(f"| processes | galaxies/s | seconds |\n| ---: | ---: | ---: |\n| 1 | {n / t_one:.1f} | {t_one:.0f} |\n"
          f"| {cores} | {n / t_all:.1f} | {t_all:.0f} |\n")
    flags = ref["flag"].value_counts().sort_index()
    print("statmorph flags (-1: not run): " + ", ".join(f"{int(f)}: {c:,}" for f, c in flags.items()))
    print("dropped: " + ("; ".join(f"{k} {v:,}" for k, v in morphology.dropped(ref).items()) or "none") + "\n")

    qn = min(args.q_n, n)
    print(f"| Q | median Gini | median M20 | median A | Gini-M20 mergers | A > 0.35 | usable |  ({qn:,} galaxies)\n"
          "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for q in (0.0, morphology.LUPTON_Q, 8.0, 12.0):
        t = ref.iloc[:qn] if q == morphology.LUPTON_Q else morphology.morphology_table(images[:qn], ids[:qn], q=q)
        good = morphology.usable(t)
        med = t[good][["gini", "m20", "asymmetry"]].median()
        print(f"| {q:.3g} | {med['gini']:.3f} | {med['m20']:.3f} | {med['asymmetry']:.3f} | "
              f"{t['gm20_merger'][good].mean():.1%} | {t['asym_merger'][good].mean():.1%} | {good.sum():,} |")

    if args.old:
        old = old_code(args.old)
        lin = morphology.linear_flux(images)
        ours, t_old = timed(lambda: old.morphology_table(lin, ids))
        print(f"\nthe batched code of {args.old} on the same linear images, one core: {n / t_old:,.0f} galaxies/s, "
              f"{t_one / t_old:,.0f} times statmorph's speed on one core")
        agreement(ours, ref)
        print(f"\nthe batched code of {args.old} as the package ran it, on the JPEG values, against statmorph on "
              "linear flux")
        agreement(old.morphology_table(images, ids), ref)


if __name__ == "__main__":
    main()
