"""Time every dashboard page on a cache the size of the Kaggle training set (61,578 galaxies at 80 px).

Not collected by pytest (no ``test_`` prefix). Run from the project folder::

    python benchmarks/bench_pages.py [--n 61578] [--work /tmp/galaxy_bench] [--keep]

It writes a synthetic cache directly in the ``galaxy_core.data.cache`` cache format (meta.json, images.u8 memory map,
ids, labels, mask and split .npy) by tiling the images and labels of a small synthetic demo set, fits the ``mean`` model
on it (so that the Evaluation, Mergers and Predict pages have a run), points the app at the cache through
``GALAXY_DATA`` and ``GALAXY_RUNS``, and renders every page twice with Streamlit's AppTest: the first render fills the
caches (cold), the second is what a user sees on every later interaction. Prints a table of seconds."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from galaxy_core.data.cache import (  # noqa: E402
    CACHE_VERSION,
    DEFAULT_SIZE,
    SPLIT_TRAIN,
    SPLIT_VAL,
    GalaxyCache,
    make_split,
    open_cache,
)
from galaxy_core.data.prepare import prepare  # noqa: E402
from galaxy_core.demo import demo_set  # noqa: E402
from galaxy_core.models import config, runs  # noqa: E402
from galaxy_core.training import loop  # noqa: E402

PAGES = ["pages/dataset.py", "pages/distributions.py", "pages/training.py", "pages/evaluation.py",
         "pages/mergers.py", "pages/predict.py"]


def synthetic_cache(out: Path, n: int, size: int = DEFAULT_SIZE, n_base: int = 400) -> GalaxyCache:
    """A cache of ``n`` fully labelled galaxies made by tiling ``n_base`` synthetic demo galaxies."""
    base_dir = out.parent / "base"
    if not (base_dir / "meta.json").is_file():
        src = out.parent / "demo"
        if not src.exists():
            demo_set.make_demo_dataset(src, n_labelled=n_base, n_unlabelled=0, size=128, seed=7)
        prepare(src, base_dir, size=size)
    base = open_cache(base_dir)
    k = len(base)
    idx = np.arange(n) % k
    out.mkdir(parents=True, exist_ok=True)
    images = np.memmap(out / "images.u8", dtype=np.uint8, mode="w+", shape=(n, 3, size, size))
    for s in range(0, n, 4096):
        images[s:s + 4096] = base.images[idx[s:s + 4096]]
    images.flush()
    del images
    ids = np.array([str(100000 + i) for i in range(n)])
    kind = np.full(n, "full")
    split = make_split(ids, kind, 0.1, 0)
    np.save(out / "ids.npy", ids)
    np.save(out / "labels.npy", base.labels[idx].astype(np.float32))
    np.save(out / "mask.npy", np.ones((n, 37), bool))
    np.save(out / "split.npy", split)
    fingerprint = hashlib.sha1(f"synthetic|{n}|{size}|{k}".encode()).hexdigest()
    meta = {"version": CACHE_VERSION, "source": "synthetic (benchmarks/bench_pages.py)", "source_fov": 1.0,
            "fov": base.fov, "size": size, "n": n, "n_full": n, "n_partial": 0, "n_unlabelled": 0,
            "n_train": int((split == SPLIT_TRAIN).sum()), "n_val": int((split == SPLIT_VAL).sum()),
            "val_fraction": 0.1, "seed": 0, "fingerprint": fingerprint, "synthetic": True, "skipped": [],
            "problems": [],
            "seconds": 0.0, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    (out / "meta.json").write_text(json.dumps(meta, indent=2))
    return open_cache(out)


def render(at, page: str) -> float:
    t = time.perf_counter()
    if page != "home":
        at.switch_page(page)
    at.run()
    seconds = time.perf_counter() - t
    if at.exception:
        raise RuntimeError(f"{page}: {at.exception[0].value}")
    return seconds


def interactions(at) -> list[tuple[str, float]]:
    """Time a few widget changes, each a full rerun of its page."""

    def timed(what: str, change) -> tuple[str, float]:
        change()
        t = time.perf_counter()
        at.run()
        if at.exception:
            raise RuntimeError(f"{what}: {at.exception[0].value}")
        return what, time.perf_counter() - t

    out = []
    at.switch_page("pages/dataset.py").run()
    out.append(timed("dataset: sort by Class8.6, filter by Class1.1", lambda: (
        at.selectbox(key="ds_sort").set_value("Class8.6"), at.selectbox(key="ds_filter").set_value("Class1.1"))))
    out.append(timed("dataset: keep Class1.1 in [0.5, 1]", lambda: at.slider(key="ds_range").set_value((0.5, 1.0))))
    out.append(timed("dataset: 96 thumbnails per page", lambda: at.selectbox(key="ds_per_page").set_value(96)))
    at.switch_page("pages/distributions.py").run()
    out.append(timed("distributions: validation split (cold), log counts", lambda: (
        at.radio(key="dist_subset").set_value("val"), at.toggle(key="dist_log").set_value(True))))
    at.switch_page("pages/evaluation.py").run()
    out.append(timed("evaluation: true vs predicted for all 37 answers", lambda: (
        at.selectbox(key="ev_answer").select_index(0))))
    at.switch_page("pages/mergers.py").run()
    out.append(timed("mergers: threshold 0.3", lambda: at.slider(key="mg_threshold").set_value(0.3)))
    out.append(timed("mergers: all labelled galaxies (cold: 61,578 predictions)", lambda: (
        at.radio(key="mg_subset").set_value("labelled"))))
    out.append(timed("mergers: threshold 0.1 on all labelled", lambda: at.slider(key="mg_threshold").set_value(0.1)))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=61_578, help="galaxies in the synthetic cache")
    p.add_argument("--work", default=None, help="working folder (default: a temporary one)")
    p.add_argument("--keep", action="store_true", help="keep the working folder")
    args = p.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="galaxy_bench_"))
    try:
        t = time.perf_counter()
        cache_dir = work / f"cache-{args.n}"
        cache = open_cache(cache_dir) if (cache_dir / "meta.json").is_file() else \
            synthetic_cache(cache_dir, args.n)
        print(f"cache {cache.path}: {len(cache):,} galaxies at {cache.size} px "
              f"({cache.images.nbytes / 2**30:.2f} GiB) in {time.perf_counter() - t:.1f} s")
        runs_root = work / "runs"
        if not runs.list_runs(runs_root):
            loop.train(config.config_for("mean", data=str(cache.path), out=str(runs_root), name="mean"))
        os.environ["GALAXY_DATA"] = str(cache.path)
        os.environ["GALAXY_RUNS"] = str(runs_root)

        from streamlit.testing.v1 import AppTest

        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
        # The home page is the app's default page (a function in app.py, not a file): its first render also pays
        # for the imports and for opening the cache.
        rows = [("home (app.py)", render(at, "home"), render(at, "home"))]
        rows += [(page, render(at, page), render(at, page)) for page in PAGES]
        print(f"{'page':28s} {'first s':>8s} {'cached s':>9s}")
        for page, first, second in rows:
            print(f"{page:28s} {first:8.2f} {second:9.2f}")
        print(f"\n{'interaction':58s} {'s':>6s}")
        for what, seconds in interactions(at):
            print(f"{what:58s} {seconds:6.2f}")
        print(f"\n{os.cpu_count()} CPU cores; {len(cache):,} galaxies")
    finally:
        if not args.keep and args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
