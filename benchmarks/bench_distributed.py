"""How training and prediction scale with processes on this machine: one process against ``torchrun`` with N.

Not collected by pytest (no ``test_`` prefix). Run from the project folder with nothing else running::

    python benchmarks/bench_distributed.py CACHE IMAGES [--procs 2] [--epochs 3] [--max-train 4096] [--source-fov F]

``CACHE`` is a prepared cache (or data folder) to train on, ``IMAGES`` a folder of images to predict. Each
command runs once with one process (all cores as threads) and once under ``torchrun --standalone
--nproc_per_node=N`` (the cores shared out as threads), side by side, and the table gives their speeds and the
ratio. Training speed is the median images/s of the epochs after the first (``metrics.csv``); prediction speed is
images over the command's wall time, start-up included, as a user waits for it. On a GPU machine each process
takes one GPU.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from galaxy_core import distributed  # noqa: E402
from galaxy_core.models import runs  # noqa: E402
from galaxy_core.predict import prediction  # noqa: E402


def run(args: list[str], procs: int) -> float:
    head, env = distributed.launcher(procs)
    t0 = time.perf_counter()
    res = subprocess.run(head + args, cwd=ROOT, env=env, capture_output=True, text=True)
    if res.returncode:
        sys.exit(f"failed: {' '.join(head + args)}\n{res.stderr[-3000:]}")
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("cache")
    p.add_argument("images")
    p.add_argument("--procs", type=int, default=2)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--max-train", type=int, default=4096)
    p.add_argument("--source-fov", help="of the images to predict (0.6038 for the 96 px packs)")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="galaxy_dist_"))
    rows = []
    try:
        for procs in (1, args.procs):
            name = f"p{procs}"
            run(["train", args.cache, "--out", str(work), "--name", name, "--epochs", str(args.epochs),
                 "--max-train", str(args.max_train), "--tta", "1"], procs)
            m = runs.read_metrics(work / name)
            train_ips = float(np.median([r["images_per_s"] for r in m[1:]]))
            n = len(prediction.image_paths(args.images))
            fov = ["--source-fov", args.source_fov] if args.source_fov else []
            seconds = run(["predict", args.images, "--out", str(work / f"{name}.csv"), *fov], procs)
            rows.append((procs, train_ips, n / seconds, seconds))
            print(f"{procs} process(es): training {train_ips:,.0f} images/s, prediction {n / seconds:,.0f} images/s "
                  f"({n:,} in {seconds:.1f} s)", file=sys.stderr, flush=True)
        same = (work / "p1.csv").read_bytes() == (work / f"p{args.procs}.csv").read_bytes()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("| processes | training images/s | ratio | prediction images/s (wall, start-up included) | ratio |\n"
          "| ---: | ---: | ---: | ---: | ---: |")
    for procs, t, pr, _ in rows:
        print(f"| {procs} | {t:,.0f} | {t / rows[0][1]:.2f} | {pr:,.0f} | {pr / rows[0][2]:.2f} |")
    print(f"\n{os.cpu_count()} CPU cores, {time.strftime('%Y-%m-%d')}; {args.max_train:,} training galaxies per "
          f"epoch; the prediction CSVs are {'identical' if same else 'DIFFERENT'}")


if __name__ == "__main__":
    main()
