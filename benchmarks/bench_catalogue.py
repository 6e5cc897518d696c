"""Reading a 100,000-row catalogue and writing a predictions table in each format (issue 33).

A synthetic catalogue (made-up ids, positions, redshifts and magnitudes; each row points at one of the real images of
``../shared/data/gz2-kaggle-96``, cycled) is written as CSV, FITS, VOTable and Parquet. Then, for each format:
``catalogue_table.read_sky_catalogue`` (the whole read: columns found, ids checked, RA/Dec checked, every image file
looked up) against pandas reading the same rows from CSV alone, and ``tables.write_table`` of a predictions table (the
catalogue's columns and 37 answers) with units and provenance.

    python benchmarks/bench_catalogue.py [--rows 100000] [--repeat 3]

Prints one table (best of ``--repeat`` runs, seconds).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from galaxy_core import tables, tree  # noqa: E402
from galaxy_core.data import catalogue_table  # noqa: E402

PACK = ROOT.parent / "shared" / "data" / "gz2-kaggle-96" / "images_training_rev1"
FORMATS = {"CSV": "csv", "FITS": "fits", "VOTable": "vot", "Parquet": "parquet"}


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def catalogue(n: int) -> pd.DataFrame:
    files = sorted(p.name for p in PACK.iterdir())
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "objid": np.arange(1_237_650_000_000_000_000, 1_237_650_000_000_000_000 + n, dtype=np.int64),
        "file_loc": [str(PACK / files[i % len(files)]) for i in range(n)],
        "ra": rng.uniform(0, 360, n), "dec": np.degrees(np.arcsin(rng.uniform(-1, 1, n))),
        "z": rng.uniform(0.01, 0.3, n), "petroMag_r": rng.normal(16.5, 0.8, n)})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    if not PACK.is_dir():
        sys.exit(f"needs {PACK}")
    frame = catalogue(args.rows)
    answers = pd.DataFrame(np.random.default_rng(1).random((args.rows, tree.N_ANSWERS)).round(6),
                           columns=list(tree.COLUMNS))
    predictions = pd.concat([frame.astype({"objid": str}).rename(columns={"objid": "GalaxyID"}), answers], axis=1)
    meta = tables.provenance(command="bench_catalogue", model="checkpoints/default", fov=0.6038)
    units = {"ra": "deg", "dec": "deg", "petroMag_r": "mag"}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, ext in FORMATS.items():
            path = Path(tmp) / f"catalogue.{ext}"
            tables.write_table(frame, path, units=units)
            read = best(lambda: catalogue_table.read_sky_catalogue(path), args.repeat)
            out = Path(tmp) / f"answers.{ext}"
            write = best(lambda: tables.write_table(predictions, out, units=units, meta=meta), args.repeat)
            rows.append((name, path.stat().st_size / 2**20, read, write, out.stat().st_size / 2**20))
        csv = Path(tmp) / "catalogue.csv"
        plain = best(lambda: pd.read_csv(csv), args.repeat)
    print(f"{args.rows:,} rows, {len(frame.columns)} catalogue columns; predictions table: those and 37 answers "
          f"(best of {args.repeat})")
    print(f"| format | catalogue MiB | read_sky_catalogue s | x pandas CSV ({plain:.2f} s) | write predictions s "
          f"| predictions MiB |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, size, read, write, out_size in rows:
        print(f"| {name} | {size:.1f} | {read:.2f} | {read / plain:.1f} | {write:.2f} | {out_size:.1f} |")


if __name__ == "__main__":
    main()
