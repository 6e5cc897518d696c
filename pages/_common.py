"""What the dashboard's pages share: the sidebar's data-folder chooser, the cached loaders of the data and a few
drawing helpers, Streamlit glue only (what a user may read, uploads included, is decided by
``galaxy_core.show.access``).
What needs a trained model (and so PyTorch) is in :mod:`pages._models`; nothing here imports PyTorch, so that a
start draws the home page, the Dataset browser and Distributions without it.

Not a page: app.py lists the pages explicitly with ``st.navigation``. Everything slow is cached and keyed by the
cache's fingerprint (``st.cache_data`` for data, ``st.cache_resource`` for the cache), so preparing a new cache
invalidates what was computed from the old one.

Environment variables (for tests and scripted use): ``GALAXY_DATA`` is the sidebar's starting data folder (default
``data``), ``GALAXY_RUNS`` the folder of training runs (default ``runs`` at the project root), and
``GALAXY_DATA_ROOTS`` the folders whose contents a folder typed into the dashboard may name (see
``access.data_roots``): the dashboard may be served to others, who must not browse the server's disk through it.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from galaxy_core import progress, tree
from galaxy_core.data import catalog, images, layout, prepare
from galaxy_core.data.cache import GalaxyCache
from galaxy_core.demo import demo_set
from galaxy_core.errors import DataError
from galaxy_core.show import access, explore, figures, skyviews
from pages._samp import samp_button
from pages._store import Store

RUNS_ENV = "GALAXY_RUNS"
DEFAULT_DATA = layout.PROJECT_ROOT / "data"
ANSWERS = list(tree.COLUMNS)


@dataclass
class Dataset:
    """The data the dashboard works on: the folder chosen in the sidebar and its prepared cache."""

    folder: Path
    cache: GalaxyCache
    demo: bool

    @property
    def fingerprint(self) -> str:
        return self.cache.fingerprint


# -------------------------------------------------------------------------------------------------------- the data

def discoveries_root() -> Path:
    """Where the Discover page saves a question's labels, head and ranking: ``discoveries/`` beside ``runs/``."""
    return runs_root().parent / "discoveries"


def saved_upload(upload) -> Path:
    """One uploaded file written under its own base name into a temporary folder of this session
    (``access.write_uploads``), for the readers that take a path (a FITS file's name says its layout). Raises
    ImageError (a DataError) for a file ``access.check_uploads`` refuses."""
    folder = st.session_state.get("_upload_dir")
    path = access.write_uploads([upload], folder, prefix="galaxy_query_")[0]
    st.session_state["_upload_dir"] = path.parent  # made on the first upload, kept for the session's others
    return path


def runs_root() -> Path:
    """Where training runs go: ``$GALAXY_RUNS``, else ``runs/`` at the project root."""
    return Path(os.environ.get(RUNS_ENV) or layout.PROJECT_ROOT / "runs").resolve()


@st.cache_resource
def _prepared() -> Store:
    """Process-wide store of opened caches keyed by (folder, source fov, folder signature), one per folder (a
    changed folder's new cache replaces the old). A :class:`pages._store.Store` rather than a cached function so that
    preparing can draw a progress bar (Streamlit would replay a cached function's elements on every later call)."""
    return Store(slot=lambda key: key[0])


def progress_bar(text: str, what: str = "galaxies"):
    """A Streamlit progress bar and a ``progress(done, total)`` callback that moves it and says the count of
    ``what`` and the time left (``progress.progress_text``: "12,000 of 22,740 galaxies, about 20 s left")."""
    bar, start = st.progress(0.0, text=text), time.perf_counter()

    def update(done: int, total: int) -> None:
        bar.progress(min(done / max(total, 1), 1.0),
                     text=f"{text} {progress.progress_text(done, total, time.perf_counter() - start, what)}")

    return bar, update


def open_dataset(text: str, source_fov: float | None = None) -> Dataset:
    """The data named in the sidebar (a Kaggle-layout data folder, a plain folder of cutouts, a catalogue table or
    a prepared cache), prepared once per state of it. The default ``data/`` without images falls back to the
    built-in synthetic demo, made on first use. Raises PermissionError for a folder outside ``access.data_roots``."""
    folder, is_demo = access.allowed_folder(text), False
    if demo_set.stands_for_demo(folder):
        folder, is_demo = demo_set.DEFAULT_ROOT, True
    if not folder.exists() and not is_demo:
        raise FileNotFoundError(f"{folder} does not exist")
    store = _prepared()
    key = (str(folder), source_fov, catalog.folder_signature(folder))
    # One session at a time: making the demo and preparing a cache write files that two at once would both write.
    with store.lock:
        if key not in store and is_demo and not demo_set.is_complete_demo(folder):
            bar, update = progress_bar("Making the synthetic demo data set (first run only):")
            demo_set.ensure_demo_dataset(folder, progress=update)
            bar.empty()
            key = (str(folder), source_fov, catalog.folder_signature(folder))
        return Dataset(folder, store.get(key, lambda: _prepare(folder, source_fov)), is_demo)


def _prepare(folder: Path, source_fov: float | None) -> GalaxyCache:
    """``prepare.resolve_cache`` of ``folder`` with a progress bar, removed when done or failed."""
    bar, update = progress_bar("Preparing the image cache:")
    try:
        return prepare.resolve_cache(folder, source_fov=source_fov, progress=update)
    finally:
        bar.empty()


def sidebar() -> Dataset | None:
    """The sidebar's data chooser. Stores the chosen :class:`Dataset` in the session for the pages (None on error)."""
    with st.sidebar:
        st.subheader("Data")
        text = st.text_input(
            "Data folder, catalogue or prepared cache", value=os.environ.get(access.DATA_ENV, "data"),
            key="data_folder",
            help="A folder in the Kaggle layout (images_training_rev1/, images_test_rev1/, "
                 "training_solutions_rev1.csv), a plain folder of cutouts (JPEG, PNG, FITS), a catalogue table "
                 "(.csv, .fits, .vot, .parquet with an id and an image file column, optional ra/dec in degrees) or "
                 "a cache made by `python -m galaxy_core prepare`. Relative paths "
                 "are from the project folder. `data` without images uses the built-in synthetic demo. Only "
                 f"folders inside {access.ROOTS_ENV} (default: the project folder and ../shared/data) can be used.")
        fov = st.number_input(
            "Source field of view (optional)", min_value=0.05, max_value=1.0, value=None, step=0.01, format="%.4f",
            key="source_fov", placeholder="automatic",
            help="The fraction of the 424 px Kaggle frame the images show: 1.0 for the originals, 0.6038 for "
                 "pre-cropped packs such as gz2-kaggle-96 (their central 256 px). Left empty (automatic): the "
                 "folder's galaxy_core.json, else 1.0 for 424 px originals; other images are asked about.")
    # Opened outside the sidebar, so that a first start's demo build and cache preparation show their progress in
    # the main area, where a user looks.
    try:
        ds, error = open_dataset(text, fov), None
    except (DataError, OSError, ValueError) as e:
        ds, error = None, e
    if isinstance(error, images.FieldUnknown):
        ask_field(error)
    with st.sidebar:
        if isinstance(error, images.FieldUnknown):
            st.error("This folder needs its field of view: see the main area.")
        elif error is not None:
            st.error(f"Cannot use this data: {error}")
        if ds is not None:
            m = ds.cache.meta
            st.caption(f"{'Synthetic demo data' if ds.demo else 'Data'}: {len(ds.cache):,} galaxies, "
                       f"{m['n_train']:,} train / {m['n_val']:,} validation, cached at {ds.cache.size} px "
                       f"(field {ds.cache.fov:.3f} of the 424 px frame) in `{ds.cache.path}`")
    st.session_state["dataset"], st.session_state["dataset_error"] = ds, error
    return ds


def _set_field(value: float) -> None:
    # The exact 256 / 424 the packs show, not the rounded 0.6038 on the button: a cache is keyed by its field.
    st.session_state["source_fov"] = value


def ask_field(error: "images.FieldUnknown") -> None:
    """In the main area, where a user looks: the folder's images are not 424 px originals, so ask which part of the
    frame they show, with one click for the two usual answers (they fill the sidebar's field box)."""
    w, h = error.size
    st.warning(f"**Which part of the sky do these images show?** They are {w} x {h} px, not the 424 x 424 px Kaggle "
               "originals, so the tool cannot tell what field of view they cover, and guessing wrong would spoil "
               "every prediction. Type the fraction of the 424 px frame they show into **Source field of view** "
               f"in the sidebar, or choose one here: **{images.PACK_FOV:.4f}** for the central 256 px of the "
               "originals (as in the gz2-kaggle-96 packs), **1.0** for whole frames at a lower resolution.",
               icon=":material/help:")
    c1, c2, _ = st.columns([2, 2, 3])
    c1.button(f"Central 256 px: {images.PACK_FOV:.4f}", key="fov_pack", on_click=_set_field,
              args=(images.PACK_FOV,), type="primary")
    c2.button("Whole frames: 1.0", key="fov_whole", on_click=_set_field, args=(1.0,))


def require_app(page_file: str) -> None:
    """Make sure a page runs inside app.py. Call first in every page with ``__file__``.

    Until app.py has called ``st.navigation`` once, Streamlit treats ``pages/`` as an old-style pages folder: the very
    first visit after the server starts, if it opens a page's URL directly, runs that page file on its own (without
    app.py's sidebar) and lists every file in ``pages/`` in the menu. Calling ``st.navigation`` turns that mode off
    for the whole server, and the rerun then goes through app.py to the same page (a page's identity is its URL
    path)."""
    if "dataset" not in st.session_state:  # app.py sets it on every run before running the page
        # The first page is the default, whose URL is the root, so this page goes second to keep its own URL.
        st.navigation([st.Page(_placeholder, title="Home", default=True), st.Page(page_file)], position="hidden")
        st.rerun()


def _placeholder() -> None:
    """Stands in for app.py's home page in :func:`require_app`'s one-off navigation; never run."""


def dataset() -> Dataset:
    """The data chosen in the sidebar; stops the page with a message when there is none."""
    ds = st.session_state.get("dataset")
    if ds is None:
        if not isinstance(st.session_state.get("dataset_error"), images.FieldUnknown):  # else asked already
            st.info("Choose a data folder in the sidebar to start.")
        st.stop()
    return ds


# ------------------------------------------------------------------------------------------------ cached summaries

@st.cache_data(show_spinner=False, max_entries=8)
def cache_summary(_cache: GalaxyCache, fingerprint: str) -> dict:
    return explore.cache_summary(_cache)


@st.cache_data(show_spinner="Reading every image header once (cached afterwards) ...", max_entries=8)
def folder_summary(root: str, source_fov: float | None, fingerprint: str) -> dict:
    return explore.summarize(root, source_fov)


@st.cache_data(show_spinner=False, max_entries=16)
def label_statistics(_cache: GalaxyCache, fingerprint: str, subset: str) -> dict:
    """Per-answer statistics, histograms and the correlation matrix of a subset of the cache."""
    rows = _cache.indices(subset)
    y, m = _cache.labels[rows], _cache.mask[rows]
    return {"n": len(rows), "stats": explore.answer_stats(y, m), "hist": explore.histograms(y, m),
            "corr": explore.correlation(y, m)}


@st.cache_resource(show_spinner=False, max_entries=16)
def histogram_grid(_cache: GalaxyCache, fingerprint: str, subset: str, log: bool, question: str | None = None):
    """The histogram panels of one question's answers, or of all 37 (``question`` None; slow to build and to draw:
    plotly lays out 37 subplots). A resource, not data: the figure is only read (by st.plotly_chart), so every
    session can share one object instead of unpickling a copy."""
    s = label_statistics(_cache, fingerprint, subset)
    columns = tree.BY_KEY[question].columns if question else None
    return figures.histogram_grid_figure(s["hist"], s["stats"], log=log, columns=columns)


@st.cache_resource(show_spinner=False, max_entries=16)
def histogram_overview(_cache: GalaxyCache, fingerprint: str, subset: str):
    """All 37 histograms as one heatmap (``figures.histogram_overview_figure``), shared like :func:`histogram_grid`."""
    s = label_statistics(_cache, fingerprint, subset)
    return figures.histogram_overview_figure(s["hist"], s["stats"])


@st.cache_data(show_spinner=False, max_entries=8)
def split_comparison(_cache: GalaxyCache, fingerprint: str):
    return explore.split_comparison(_cache.labels, _cache.mask, _cache.split)


@st.cache_data(show_spinner=False, max_entries=8)
def prototypes(_cache: GalaxyCache, fingerprint: str):
    return explore.prototypes(_cache.ids, _cache.labels, _cache.mask)


# ------------------------------------------------------------------------------------------------------- drawing

def answer_select(label: str, key: str, default: str = "Class1.1", none: str | None = None, **kwargs) -> str | None:
    """A selectbox over the 37 answers shown with their descriptive names; ``none`` adds a first 'no answer' entry
    (returned as None)."""
    options = ([None] if none else []) + ANSWERS
    return st.selectbox(label, options, index=options.index(default) if default in options else 0, key=key,
                        format_func=lambda c: none if c is None else explore.label(c), **kwargs)


def gallery(cache: GalaxyCache, rows, captions: list[str] | None = None, width: int = 110,
            samp: str | None = None) -> None:
    """Cached images of some rows as a flowing gallery (straight from the cache's memory map), sent inside the page
    (``figures.image_data_url``: never a broken thumbnail after fast slider moves). Where the data have positions,
    each thumbnail also carries its RA/Dec and links to the Legacy Survey and SDSS viewers (one HTML grid,
    ``skyviews.cache_gallery_html``; the demo's positions marked made up). ``samp``: the name under which a button
    sends these galaxies' table (``skyviews.galaxies_table``) to TOPCAT or Aladin; unique on its page."""
    rows = [int(r) for r in rows]
    if not rows:
        st.caption("No galaxies to show.")
        return
    grid = skyviews.cache_gallery_html(cache, rows, captions, width)
    if grid is None:
        st.image([figures.image_data_url(cache.image(r)) for r in rows], caption=captions, width=width)
    else:
        st.html(grid)
    if samp is not None:
        samp_rows(cache, rows, samp)


def samp_rows(cache: GalaxyCache, rows, name: str) -> None:
    """A "Send to TOPCAT / Aladin" button for some galaxies of ``cache``: their ids, catalogue columns and the
    volunteers' answers, as ``name``; nothing for no galaxies."""
    if len(rows):
        samp_button(skyviews.galaxies_table(cache, rows), name, key=f"samp_{name}")


@st.cache_resource(show_spinner=False, max_entries=16)
def sky_map(_cache: GalaxyCache, fingerprint: str, rows, colour):
    """``skyviews.sky_map`` of ``rows`` coloured by ``colour``, and how many it shows; a resource shared by every
    session (the figure is only read), keyed by the cache's fingerprint, the rows and the colour."""
    return skyviews.sky_map(_cache, rows, colour)


def tree_chart(values, other=None, names=("volunteers", "model"), known=None, key: str | None = None,
               height: int | None = None) -> None:
    """One galaxy's 37 answers drawn as the decision tree (see ``figures.tree_figure``)."""
    st.plotly_chart(figures.tree_figure(values, other, names, known, height=height), key=key)


def preload_frontend() -> None:
    """Once per browser session, after its first page: one element of each kind the pages use whose browser code
    Streamlit fetches only when a page first shows one, drawn in a hidden container. The browser then loads and
    compiles that code (the plotly chart's alone is 4.7 MB of JavaScript) while the user reads the first page,
    instead of showing grey placeholders for about 1.4 s on the first visit to a page with charts and tables."""
    if st.session_state.get("_frontend_preloaded"):
        return
    st.session_state["_frontend_preloaded"] = True
    # Sent a moment after the page, so that the browser loads the code of the page's own elements first.
    time.sleep(0.5)
    with st.container(key="preload"):
        st.html("<style>.st-key-preload {display: none}</style>")
        st.plotly_chart(go.Figure(), key="_preload_plotly")
        st.table({"a": [1]})
        st.dataframe({"a": [1]}, key="_preload_dataframe")
        st.image(np.zeros((1, 1, 3), np.uint8))
        st.latex("x")
        for widget in (st.selectbox, st.radio, st.multiselect):
            widget("preload", ["a"], key=f"_preload_{widget.__name__}", label_visibility="collapsed")
        st.slider("preload", key="_preload_slider", label_visibility="collapsed")
        st.toggle("preload", key="_preload_toggle", label_visibility="collapsed")
