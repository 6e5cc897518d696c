"""Time every dashboard page in a real headless Chromium, from navigation to the last change on the page.

Not collected by pytest (no ``test_`` prefix). Run from the project folder::

    python benchmarks/bench_browser.py [--n 61578] [--work /tmp/galaxy_browser] [--shots DIR]

For each data set (the built-in synthetic demo, as a newcomer meets it, and, unless ``--n 0``, a cache of ``--n``
galaxies tiled from synthetic ones by ``benchmarks/bench_pages.py``, the size of the Kaggle training set), it starts
``streamlit run app.py`` with an empty runs folder, so the pages use the shipped checkpoint, and opens:

- ``cold start``: the home page right after the server starts (imports and opening the data; for the demo, which
  lives in the project's ``data/demo``, drawing it and preparing its cache, unless an earlier start did); then
  ``--pause`` seconds on it before the first click;
- for every page, reached through the app's menu as a user moves around: ``first``, with nothing of that page
  cached yet, and ``warm``, the same page again after a visit to the home page;
- ``reload``: the browser tab reloaded on the last page (the whole frontend starts again).

A render ends when the page's title is shown, Streamlit's "running" widget has been gone for 1.5 s and every
plotly chart is drawn; its time runs from the click (or the navigation) to the last element added or changed
before then, measured in the page (``performance.now()``). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_pages import synthetic_cache  # noqa: E402

from galaxy_core.demo import demo_set  # noqa: E402

from browser import PAGES, WATCH_SCRIPT, chromium, rendered, screenshot, streamlit_server  # noqa: E402

GOAL_FIRST, GOAL_WARM = 2.0, 1.0
MENU = {"": "Home", "dataset": "Dataset browser", "distributions": "Distributions", "training": "Training",
        "evaluation": "Evaluation", "mergers": "Mergers", "predict": "Predict"}
"""URL path -> the page's entry in app.py's menu."""


def visit(page, title: str, link: str | None, shot: Path | None = None) -> float:
    """Seconds from clicking the menu entry ``link`` (None: reload the page) to the last change of the page."""
    page.evaluate("window.__lastChange = 0; window.__idleSince = undefined")
    start = page.evaluate("performance.now()")
    if link is None:
        page.reload(wait_until="commit", timeout=600_000)
        start = 0.0
    else:
        page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=link, exact=True).click()
    rendered(page, title, timeout_ms=600_000)
    errors = page.locator('[data-testid="stException"]')
    if errors.count():
        raise RuntimeError(f"{title}: {errors.first.inner_text()}")
    if shot is not None:
        screenshot(page, shot)
        page.set_viewport_size({"width": 1400, "height": 1000})
    return (page.evaluate("window.__lastChange") - start) / 1000


def bench(name: str, data: Path, work: Path, shots: Path | None, pause: float) -> list[tuple]:
    runs = work / f"runs-{name}"
    runs.mkdir(parents=True, exist_ok=True)
    rows = []
    with streamlit_server(data, runs, work / f"streamlit-{name}.log") as url, chromium() as browser:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.add_init_script(WATCH_SCRIPT)
        t0 = time.perf_counter()
        page.goto(url, wait_until="commit", timeout=600_000)
        # What a user sees first: the app's own menu (not a listing of pages/), and a word in the main area.
        page.locator('[data-testid="stSidebarNav"]').wait_for(timeout=600_000)
        menu = page.evaluate("performance.now()") / 1000
        if shots:
            page.screenshot(path=str(shots / f"{name}-cold-first-frame.png"))
        rendered(page, PAGES[""], timeout_ms=600_000)
        print(f"{name}: cold start done", file=sys.stderr, flush=True)
        rows.append((name, "cold start: menu shown", menu, None))
        rows.append((name, "cold start: home rendered", page.evaluate("window.__lastChange") / 1000, None))
        wall = time.perf_counter() - t0
        time.sleep(pause)  # a user reading the home page, while the app imports PyTorch in the background
        # Every page through the menu, as a user moves around: first with that page's data not yet cached, then
        # again after a round trip through another page; last, one full reload of the browser tab.
        for path, title in PAGES.items():
            link = MENU[path]
            shot = shots / f"{name}-{path or 'home'}.png" if shots else None
            if path:
                first = visit(page, title, link, shot)
                visit(page, PAGES[""], MENU[""])
                warm = visit(page, title, link)
            else:
                first = warm = visit(page, title, link, shot)
            rows.append((name, path or "home", first, warm))
            print(f"{name}: {path or 'home'} {first:.2f} s, then {warm:.2f} s", file=sys.stderr, flush=True)
        rows.append((name, "reload (whole app in the tab)", visit(page, PAGES["predict"], None), None))
        page.close()
        context.close()
    print(f"{name}: cold start {wall:.1f} s wall (including the browser's start)", file=sys.stderr)
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=61_578, help="galaxies in the large synthetic cache (0: demo only)")
    p.add_argument("--work", default=None, help="working folder (default: a temporary one, removed)")
    p.add_argument("--shots", default=None, help="save a screenshot of each page's first render here")
    p.add_argument("--pause", type=float, default=0.0,
                   help="seconds on the home page after the start before the first click, as a user reading it "
                        "(the app imports PyTorch in the background meanwhile); default 0, clicking at once")
    args = p.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="galaxy_browser_"))
    shots = Path(args.shots) if args.shots else None
    if shots:
        shots.mkdir(parents=True, exist_ok=True)
    try:
        # The newcomer's path: the project's data/ without images, so the app draws the demo into data/demo at
        # the cold start (unless an earlier start already did, which the table then says).
        drawn = demo_set.is_complete_demo(demo_set.DEFAULT_ROOT)
        rows = bench("demo" + (" (drawn before)" if drawn else ""), ROOT / "data", work, shots, args.pause)
        if args.n:
            cache_dir = work / f"cache-{args.n}"
            if not (cache_dir / "meta.json").is_file():
                synthetic_cache(cache_dir, args.n)
            rows += bench(f"{args.n:,} galaxies", cache_dir, work, shots, args.pause)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print("| data | page | first render s | warm render s |\n| --- | --- | ---: | ---: |")
    for name, page, first, warm in rows:
        mark = "" if first < GOAL_FIRST and (warm is None or warm < GOAL_WARM) else " (over goal)"
        print(f"| {name} | {page} | {first:.2f} | {'-' if warm is None else f'{warm:.2f}'}{mark} |")
    print(f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
          f"{time.strftime('%Y-%m-%d')}; goals: first < {GOAL_FIRST:g} s, warm < {GOAL_WARM:g} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
