"""What the browser test and the browser benchmark share: a ``streamlit run app.py`` server and a headless
Chromium driven by Playwright (Debian's ``chromium`` package; Playwright's own browser download is never used).

Not a test module (no ``test_`` prefix): ``tests/test_browser.py`` and ``benchmarks/bench_browser.py`` import it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PAGES = {"": "Galaxy Zoo 2 morphology", "dataset": "Dataset browser",
         "distributions": "Distributions of the 37 answers", "training": "Training", "evaluation": "Evaluation",
         "mergers": "Mergers", "predict": "Predict", "discover": "Discover"}
"""URL path -> the page's title, seen once the page has rendered."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"streamlit did not answer at {url} within {timeout} s")


@contextlib.contextmanager
def streamlit_server(data: Path, runs: Path, log: Path, extra_env: dict | None = None) -> Iterator[str]:
    """``streamlit run app.py`` from the project folder (so its .streamlit/config.toml applies) on ``data`` with
    runs in ``runs``; yields its URL once healthy and kills it (its own process group) at the end."""
    port = free_port()
    env = {**os.environ, "GALAXY_DATA": str(data), "GALAXY_RUNS": str(runs), **(extra_env or {})}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port",
             str(port), "--server.address", "127.0.0.1"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextlib.contextmanager
def chromium() -> Iterator:
    """A headless Chromium (raises ImportError without the playwright package, FileNotFoundError without it)."""
    if not CHROMIUM.is_file():
        raise FileNotFoundError(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


# Records when an element was last added, removed or changed its text (relative to the navigation; attribute
# changes such as fading styles are not content): what the benchmark calls the last element.
WATCH_SCRIPT = """
window.__lastChange = 0;
new MutationObserver((records) => {
    // Only changes a user can see in the page or its sidebar: not those inside hidden elements (the app's preloading
    // of the browser code) nor the helper nodes that libraries add to the document's body (plotly's text measuring).
    const seen = records.some((r) => {
        const el = r.target.nodeType === 1 ? r.target : r.target.parentElement;
        return el && el.isConnected && el.checkVisibility() &&
            el.closest('[data-testid="stMain"], [data-testid="stSidebar"]') !== null;
    });
    if (seen) window.__lastChange = performance.now();
}).observe(document, {subtree: true, childList: true, characterData: true});
"""


def wait_until_idle(page, quiet_ms: int = 1500, timeout_ms: int = 120_000) -> None:
    """Wait until Streamlit's 'running' indicator has been gone for ``quiet_ms`` (the script finished), counted from
    this call: a click's rerun can take a moment to show the indicator, and an idle time from before the click must
    not count."""
    page.evaluate("window.__idleSince = undefined")
    page.wait_for_function(
        """([quiet]) => {
            const running = document.querySelector('[data-testid="stStatusWidget"]') !== null;
            const now = Date.now();
            if (running || window.__idleSince === undefined) { window.__idleSince = running ? undefined : now; }
            return !running && window.__idleSince !== undefined && now - window.__idleSince >= quiet;
        }""", arg=[quiet_ms], timeout=timeout_ms, polling=100)


def rendered(page, title: str, timeout_ms: int = 300_000) -> None:
    """Wait for a page to finish: its title shown, the script idle, no grey placeholder left (Streamlit shows one
    while the browser loads an element's code, on the first use of a kind of element) and every plotly chart
    drawn."""
    page.get_by_role("heading", name=title, exact=True).first.wait_for(timeout=timeout_ms)
    wait_until_idle(page, timeout_ms=timeout_ms)
    page.wait_for_function("document.querySelectorAll('[data-testid=\"stSkeleton\"]').length === 0",
                           timeout=timeout_ms, polling=100)
    charts = page.locator('[data-testid="stPlotlyChart"]').count()
    if charts:
        page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= {charts}",
                               timeout=timeout_ms)


def screenshot(page, path: Path) -> None:
    """The whole page: Streamlit scrolls inside its main block, so the window is made as tall as that block (and
    measured again, since images and charts reflow it) before the shot."""
    height = 0
    for _ in range(4):
        page.wait_for_timeout(700)
        h = page.evaluate("Math.ceil(document.querySelector('[data-testid=\"stMainBlockContainer\"]')"
                          ".getBoundingClientRect().height)")
        if abs(h - height) < 5:
            break
        height = h
        page.set_viewport_size({"width": 1400, "height": min(max(1000, h + 120), 12_000)})
    page.screenshot(path=str(path))
