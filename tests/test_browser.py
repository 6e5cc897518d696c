"""The dashboard in a real headless Chromium: start ``streamlit run app.py`` on tiny synthetic data (with one finished
run, so that every page has something to show), open every page, wait for the script to finish, check that no
exception is shown and save a screenshot of each page into $SCREENSHOT_DIR (default: the test's tmp_path).

Needs the ``playwright`` Python package and a Chromium at /usr/bin/chromium (Debian's ``chromium`` package); skipped
otherwise. Playwright's own browser download is never used.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import make_tiny

from galaxy_core import data, training

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# url path -> the page's title, seen once the page has rendered
# The first visit after the server starts opens a page's URL directly (see pages/_common.require_app).
PAGES = {"dataset": "Dataset browser", "": "Galaxy Zoo 2 morphology",
         "distributions": "Distributions of the 37 answers", "training": "Training", "evaluation": "Evaluation",
         "mergers": "Mergers", "predict": "Predict"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
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


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``streamlit run app.py`` on a tiny data set with one finished run: {"url", "data"}; killed at the end."""
    base = tmp_path_factory.mktemp("browser")
    root = make_tiny(base / "data")
    cache = data.prepare(root, workers=1)  # the default location the app uses, so its first render is quick
    runs = base / "runs"
    training.train(training.config_for("mean", data=str(cache.path), out=str(runs), name="mean-baseline"))
    port = _free_port()
    env = {**os.environ, "GALAXY_DATA": str(root), "GALAXY_RUNS": str(runs)}
    with open(base / "streamlit.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port",
             str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc)
        yield {"url": url, "data": root}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # its own session: the server and nothing else
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


def _wait_until_idle(page, quiet_ms: int = 1500, timeout_ms: int = 60_000) -> None:
    """Wait until Streamlit's 'running' indicator has been gone for ``quiet_ms`` (the script finished)."""
    page.wait_for_function(
        """([quiet]) => {
            const running = document.querySelector('[data-testid="stStatusWidget"]') !== null;
            const now = Date.now();
            if (running || window.__idleSince === undefined) { window.__idleSince = running ? undefined : now; }
            return !running && window.__idleSince !== undefined && now - window.__idleSince >= quiet;
        }""", arg=[quiet_ms], timeout=timeout_ms, polling=250)


def _train_one_epoch(page, server) -> None:
    """Launch one epoch of the default model (galaxynet with the CPU recipe) and wait for the live view (a fragment
    refreshing itself every 2 s) to report the run finished."""
    epochs = page.get_by_label("Epochs")
    epochs.fill("1")
    epochs.press("Enter")
    _wait_until_idle(page)
    page.get_by_role("button", name="Start training").click()
    page.get_by_role("heading", name="galaxynet").get_by_text("finished").wait_for(timeout=120_000)


def _upload(page, server) -> None:
    """Upload three unlabelled images, say that they are whole frames (they are 128 px, not 424 px originals, and
    uploads carry no galaxy_core.json), and wait for their predictions."""
    fov = page.locator('[data-testid="stMain"]').get_by_role("spinbutton", name="Source field of view")
    fov.fill("1")
    fov.press("Enter")
    _wait_until_idle(page)
    files = sorted((server["data"] / data.UNLABELLED_DIR).glob("*.jpg"))[:3]
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files([str(f) for f in files])
    page.get_by_role("heading", name="3 galaxies").wait_for(timeout=60_000)


ACTIONS = {"training": _train_one_epoch, "predict": _upload}


def _screenshot(page, path: Path) -> None:
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


@pytest.mark.parametrize("path", list(PAGES))
def test_page_renders_without_exception(browser, server, path, tmp_path):
    shots = Path(os.environ.get("SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(f"{server['url']}/{path}", wait_until="domcontentloaded", timeout=60_000)
        page.get_by_role("heading", name=PAGES[path], exact=True).first.wait_for(timeout=60_000)
        _wait_until_idle(page)
        if path in ACTIONS:
            ACTIONS[path](page, server)
            _wait_until_idle(page)
        if page.locator('[data-testid="stPlotlyChart"]').count():
            page.locator(".js-plotly-plot").first.wait_for(timeout=30_000)
        _screenshot(page, shots / f"{path or 'home'}.png")
        errors = page.locator('[data-testid="stException"]')
        assert errors.count() == 0, errors.first.inner_text()
        assert page.get_by_text("Page not found").count() == 0
        nav = page.locator('[data-testid="stSidebarNav"]').inner_text()
        assert "Dataset browser" in nav and "common" not in nav  # app.py's menu, not a listing of pages/
    finally:
        page.close()
