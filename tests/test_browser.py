"""The dashboard in a real headless Chromium: start ``streamlit run app.py`` on tiny synthetic data (with one finished
run, so that every page has something to show), open every page, wait for the script to finish, check that no
exception is shown and save a screenshot of each page into $SCREENSHOT_DIR (default: the test's tmp_path).

Needs the ``playwright`` Python package and a Chromium at /usr/bin/chromium (Debian's ``chromium`` package); skipped
otherwise. Playwright's own browser download is never used.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from galaxy_core.data import layout
from galaxy_core.data.prepare import prepare
from galaxy_core.models import config
from galaxy_core.training import loop

from browser import CHROMIUM, PAGES, chromium, screenshot, streamlit_server, wait_until_idle
from conftest import make_tiny

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# The first visit after the server starts opens a page's URL directly (see pages/_common.require_app).
ORDER = ["dataset", "", "distributions", "training", "evaluation", "mergers", "predict"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``streamlit run app.py`` on a tiny data set with one finished run: {"url", "data"}; killed at the end."""
    base = tmp_path_factory.mktemp("browser")
    root = make_tiny(base / "data")
    cache = prepare(root, workers=1)  # the default location the app uses, so its first render is quick
    runs = base / "runs"
    loop.train(config.config_for("mean", data=str(cache.path), out=str(runs), name="mean-baseline"))
    with streamlit_server(root, runs, base / "streamlit.log") as url:
        yield {"url": url, "data": root, "log": base / "streamlit.log"}


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    with chromium() as b:
        yield b


def _train_one_epoch(page, server) -> None:
    """Launch one epoch of the default model (galaxynet with the CPU recipe) and wait for the live view (a fragment
    refreshing itself every 2 s) to report the run finished."""
    epochs = page.get_by_label("Epochs")
    epochs.fill("1")
    epochs.press("Enter")
    wait_until_idle(page)
    page.get_by_role("button", name="Start training").click()
    page.get_by_role("heading", name="galaxynet").get_by_text("finished").wait_for(timeout=120_000)


def _upload(page, server) -> None:
    """Upload three unlabelled images, say that they are whole frames (they are 128 px, not 424 px originals, and
    uploads carry no galaxy_core.json), and wait for their predictions."""
    fov = page.locator('[data-testid="stMain"]').get_by_role("spinbutton", name="Source field of view")
    fov.fill("1")
    fov.press("Enter")
    wait_until_idle(page)
    files = sorted((server["data"] / layout.UNLABELLED_DIR).glob("*.jpg"))[:3]
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files([str(f) for f in files])
    page.get_by_role("heading", name="3 galaxies").wait_for(timeout=60_000)


ACTIONS = {"training": _train_one_epoch, "predict": _upload}


@pytest.mark.parametrize("path", ORDER)
def test_page_renders_without_exception(browser, server, path, tmp_path):
    shots = Path(os.environ.get("SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(f"{server['url']}/{path}", wait_until="domcontentloaded", timeout=60_000)
        page.get_by_role("heading", name=PAGES[path], exact=True).first.wait_for(timeout=60_000)
        wait_until_idle(page)
        if path in ACTIONS:
            ACTIONS[path](page, server)
            wait_until_idle(page)
        if page.locator('[data-testid="stPlotlyChart"]:visible').count():  # not app.py's hidden preloading one
            page.locator(".js-plotly-plot:visible").first.wait_for(timeout=30_000)
        screenshot(page, shots / f"{path or 'home'}.png")
        errors = page.locator('[data-testid="stException"]')
        assert errors.count() == 0, errors.first.inner_text()
        assert page.get_by_text("Page not found").count() == 0
        nav = page.locator('[data-testid="stSidebarNav"]').inner_text()
        assert "Dataset browser" in nav and "common" not in nav  # app.py's menu, not a listing of pages/
    finally:
        page.close()
