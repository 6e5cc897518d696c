"""Peak memory and speed of ``prepare`` as the number of images grows: bounded memory, measured.

Not collected by pytest (no ``test_`` prefix). Run from the project folder with nothing else running::

    python benchmarks/bench_prepare.py [--sizes 10000,200000] [--work /tmp/galaxy_prepare] [--workers 2]

For each size it writes a synthetic folder in the Kaggle layout (a tenth labelled, the rest unlabelled; 32 px
JPEGs of a noisy elliptical blob, declared whole frames by ``galaxy_core.json``; made here, never committed), then
runs ``python -m galaxy_core prepare`` on it at 16 px in a fresh process and reads that process's peak resident
memory from the kernel (``getrusage``). The decoding workers start fresh (spawn) and hold 64 images at a time; their
own ``ru_maxrss`` is not shown, since it counts the parent's pages at the instant of the fork before ``exec``. The
table gives the peak with the time and the size of the cache; what grows with the images is what ``prepare`` holds
per galaxy (the catalog's ids, paths and labels, and the arrays it saves), never the images.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from galaxy_core import tree  # noqa: E402
from galaxy_core.data import layout  # noqa: E402

SIDE = 32


def _write_images(job: tuple[str, int, int]) -> None:
    folder, start, stop = job
    rng = np.random.default_rng(start)
    yy, xx = np.mgrid[:SIDE, :SIDE] - SIDE / 2
    for i in range(start, stop):
        a, b = rng.uniform(2, 8, 2)
        blob = 255 * np.exp(-(xx / a) ** 2 - (yy / b) ** 2)
        img = np.clip(blob[..., None] * rng.uniform(0.5, 1, 3) + rng.normal(0, 8, (SIDE, SIDE, 3)), 0, 255)
        buf = io.BytesIO()
        Image.fromarray(img.astype(np.uint8)).save(buf, "JPEG", quality=85)
        (Path(folder) / f"{100000 + i}.jpg").write_bytes(buf.getvalue())


def make_folder(root: Path, n: int, workers: int) -> None:
    """``n`` synthetic galaxies: the first tenth labelled (uniform vote fractions, good enough for a cache)."""
    if (root / layout.LABEL_CSV).is_file() and len(list((root / layout.UNLABELLED_DIR).iterdir())) == n - n // 10:
        return
    shutil.rmtree(root, ignore_errors=True)
    n_lab = n // 10
    jobs = []
    for sub, start, stop in ((layout.LABELLED_DIR, 0, n_lab), (layout.UNLABELLED_DIR, n_lab, n)):
        (root / sub).mkdir(parents=True)
        jobs += [(str(root / sub), s, min(s + 2000, stop)) for s in range(start, stop, 2000)]
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_write_images, jobs))
    labels = np.random.default_rng(0).uniform(0, 1, (n_lab, tree.N_ANSWERS))
    lines = ["GalaxyID," + ",".join(tree.COLUMNS)] + \
        [f"{100000 + i}," + ",".join(f"{v:.4f}" for v in row) for i, row in enumerate(labels)]
    (root / layout.LABEL_CSV).write_text("\n".join(lines) + "\n")
    (root / layout.FOLDER_CONFIG).write_text('{"source_fov": 1.0}\n')


def measure(root: Path, cache: Path, workers: int) -> dict:
    """Run prepare in a child process; its time, peak RSS (``getrusage``) and the cache's size."""
    shutil.rmtree(cache, ignore_errors=True)
    code = ("import resource, sys; from galaxy_core import cli; rc = cli.main(sys.argv[1:]); "
            "print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(rc)")
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", code, "prepare", str(root), "--out", str(cache), "--size", "16",
                          "--workers", str(workers)], cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if res.returncode:
        sys.exit(res.stderr[-3000:])
    peak_kb = int(res.stdout.split("PEAK")[1].split()[0])
    return {"seconds": seconds, "peak_mb": peak_kb / 1024,
            "cache_mb": sum(f.stat().st_size for f in cache.iterdir()) / 2**20}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="10000,200000")
    p.add_argument("--work", default="/tmp/galaxy_prepare")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = p.parse_args()
    work = Path(args.work)
    rows = []
    for n in (int(v) for v in args.sizes.split(",")):
        t0 = time.perf_counter()
        make_folder(work / f"data-{n}", n, args.workers)
        made = time.perf_counter() - t0
        m = measure(work / f"data-{n}", work / f"cache-{n}", args.workers)
        rows.append((n, m))
        print(f"{n:,} images (made in {made:.0f} s): {m}", file=sys.stderr, flush=True)
    print("| images | prepare s | images/s | peak memory MB | cache MB |\n| ---: | ---: | ---: | ---: | ---: |")
    for n, m in rows:
        print(f"| {n:,} | {m['seconds']:.1f} | {n / m['seconds']:,.0f} | {m['peak_mb']:,.0f} | {m['cache_mb']:,.0f} |")
    if len(rows) > 1:
        (n0, m0), (n1, m1) = rows[0], rows[-1]
        print(f"\ngrowth: {(m1['peak_mb'] - m0['peak_mb']) * 2**20 / (n1 - n0):,.0f} bytes of memory per galaxy")
    print(f"\n{os.cpu_count()} CPU cores, {args.workers} decoding workers, {time.strftime('%Y-%m-%d')}; "
          f"{SIDE} px JPEGs prepared at 16 px; peak resident memory from getrusage (ru_maxrss)")


if __name__ == "__main__":
    main()
