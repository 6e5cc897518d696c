"""The merger fraction against redshift on a synthetic catalogue with planted fractions: does
:func:`galaxy_core.mergers.evolution.fraction_by` recover each bin's fraction inside its intervals, and how long
does it take? Prints one table. Not collected by pytest::

    python benchmarks/bench_fraction_by.py [--n 100000] [--seed 0] [--boot 2000]

The catalogue: ``--n`` galaxies with redshifts uniform in 0-0.4, 8 equal-width bins, each with a planted merger
fraction rising from 0.5 % to 10 %; a galaxy is a merger with its bin's probability (a Bernoulli draw) and then
gets a Class8.6 above 0.5 (uniform in 0.5-1), the others below (uniform in 0-0.5). A bin's recovered fraction
differs from the planted one by the draw's scatter, so about 1 bin in 20 should miss its 95 % interval.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from galaxy_core.mergers import evolution  # noqa: E402
from galaxy_core.mergers.fraction import percent_text  # noqa: E402

EDGES = np.linspace(0, 0.4, 9)
PLANTED = np.array([0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.07, 0.10])


def catalogue(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    z = rng.uniform(EDGES[0], EDGES[-1], n)
    planted = PLANTED[np.clip(np.searchsorted(EDGES, z, side="right") - 1, 0, len(PLANTED) - 1)]
    merger = rng.random(n) < planted
    p = np.where(merger, rng.uniform(np.nextafter(0.5, 1), 1.0, n), rng.uniform(0.0, 0.5, n))
    return z, p


def cpu() -> str:
    try:
        names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")]
        return f"{names[0]}, {len(names)} cores" if names else platform.processor()
    except OSError:
        return platform.processor() or platform.machine()


def main() -> None:
    a = argparse.ArgumentParser()
    a.add_argument("--n", type=int, default=100_000)
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--boot", type=int, default=2000)
    args = a.parse_args()
    z, p = catalogue(args.n, args.seed)
    t0 = time.perf_counter()
    result = evolution.fraction_by(z, p, EDGES, n_boot=args.boot)
    seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    quantile = evolution.fraction_by(z, p, 8, n_boot=args.boot)
    seconds_q = time.perf_counter() - t0
    # A calibration on 745 labelled galaxies (the size of the pack's validation split), the threshold's uncertainty
    # bootstrapped in every bin: the slow path.
    rng = np.random.default_rng(args.seed + 1)
    p_true = np.clip(rng.beta(0.3, 8, 745), 0, 1)
    p_pred = np.clip(0.8 * p_true + rng.normal(0, 0.02, 745), 0, 1)
    t0 = time.perf_counter()
    evolution.fraction_by(z, p, EDGES, n_boot=args.boot, calibration=(p_pred, p_true))
    seconds_c = time.perf_counter() - t0
    print(f"{args.n:,} galaxies, {len(PLANTED)} redshift bins, {args.boot} bootstrap resamples a bin, seed "
          f"{args.seed}; {cpu()}; {time.strftime('%Y-%m-%d')}\n")
    print("| z | galaxies | mergers | planted | recovered | 95 % Wilson | inside | bootstrap | inside |")
    print("| --- | ---: | ---: | ---: | ---: | --- | --- | --- | --- |")
    inside = 0
    for b, f in zip(result.bins, PLANTED):
        w, bo = b.wilson_lo < f < b.wilson_hi, b.boot_lo < f < b.boot_hi
        inside += w
        print(f"| {b.lo:g}-{b.hi:g} | {b.n:,} | {b.n_mergers:,} | {percent_text(f)} | {percent_text(b.fraction)} | "
              f"{percent_text(b.wilson_lo)}-{percent_text(b.wilson_hi)} | {'yes' if w else 'no'} | "
              f"{percent_text(b.boot_lo)}-{percent_text(b.boot_hi)} | {'yes' if bo else 'no'} |")
    print(f"\n{inside} of {len(PLANTED)} planted fractions inside their Wilson interval; too small: "
          f"{sum(b.too_small for b in result.bins)} bins. fraction_by took {seconds:.3f} s with explicit edges, "
          f"{seconds_q:.3f} s with 8 equal-count bins ({', '.join(f'{e:.3f}' for e in quantile.edges)}), "
          f"{seconds_c:.1f} s calibrated on 745 labelled pairs (the threshold bootstrapped in each bin).")


if __name__ == "__main__":
    main()
