"""What the pages that use a trained model share: the model chooser, the cached model, evaluation and merger
predictions, and the Training page's baseline and duration estimate.

Apart from :mod:`pages._common` because everything here imports PyTorch, which takes about 2 s on a first start:
the home page, the sidebar and the Dataset and Distributions pages need none of it, so a start shows them without
waiting (app.py imports this module in the background once the first page is drawn).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import streamlit as st

from galaxy_core import hardware
from galaxy_core.data import layout
from galaxy_core.data.cache import GalaxyCache, split_rows
from galaxy_core.discover import embeddings, own_questions, similarity
from galaxy_core.mergers import fraction, morphology
from galaxy_core.mergers.calibration import calibrated_fraction, calibration_on
from galaxy_core.models import config, registry, runs
from galaxy_core.predict import doubt, evaluation, metrics, modelchoice, plusminus, prediction, uncertainty
from galaxy_core.training import estimate, export
from pages import _common as common
from pages._store import Store

# ------------------------------------------------------------------------------------------------------ training

@st.cache_data(show_spinner=False, max_entries=8)
def mean_baseline(_cache: GalaxyCache, fingerprint: str) -> float:
    train, val = split_rows(_cache, config.TrainConfig(data=str(_cache.path)))
    return metrics.mean_baseline(_cache.labels, _cache.mask, train, val)


@st.cache_data(show_spinner=False)
def is_closed_form(model: str) -> bool:
    """Whether a registered model is fitted in closed form (``mean``), so it has no training settings."""
    return bool(getattr(registry.build_model(model), "closed_form", False))


def _with_bar(text: str, compute, what: str = "galaxies"):
    """``compute(progress)`` with a progress bar counting ``what`` in a slot drawn on every run, bar or not, so that
    the elements below keep their places from run to run."""
    slot = st.empty()

    def run():
        with slot.container():
            bar, update = common.progress_bar(text, what)
        try:
            return compute(update)
        finally:
            slot.empty()

    return run


def duration_probe(cfg: config.TrainConfig, fingerprint: str) -> dict:
    """``estimate.estimate_here`` for ``cfg`` with one epoch (``estimate.probe_key``), over the shipped checkpoints
    and the finished runs: timed once per setting that changes the speed, not per number of epochs, with a
    progress bar while a few steps are timed (several seconds on a first visit: building the model and its first
    step take most of it). In the plain store, so that the bar is not replayed on later visits."""
    key = estimate.probe_key(cfg)

    def probe(update) -> dict:
        return estimate.estimate_here(config.TrainConfig.from_dict(json.loads(key)),
                                      export.shipped_checkpoints() + runs.finished_runs(common.runs_root()),
                                      common.runs_root(), progress=update)

    return stored(("probe", key, fingerprint), _with_bar("Timing a few training steps on this machine:", probe,
                                                         "steps"))


# -------------------------------------------------------------------------------------------------------- models

def model_file(path: Path) -> Path:
    return modelchoice.model_folder(path) / layout.WEIGHTS_FILE


def model_key(path: Path) -> tuple[str, int]:
    """A model's cache key: its folder and the modification time of its weights (a retrained run gets a new one)."""
    return str(path), model_file(path).stat().st_mtime_ns


def choose_model(key: str, label: str = "Model") -> Path | None:
    """A model chooser: the checkpoints shipped in ``checkpoints/`` and the runs with a best checkpoint. Defaults to
    ``modelchoice.default_model`` (the shipped checkpoint, else the newest finished run, as the command line does)
    and says which; None, with an explanation, when there is no model."""
    options: dict[str, Path] = {}
    for c in export.shipped_checkpoints():
        options[f"checkpoint {c['name']} (shipped)"] = c["path"]
    for r in runs.finished_runs(common.runs_root()):
        rmse = r["summary"].get("val_rmse")
        options[f"run {r['name']} ({r['model']}, {r['status']}"
                f"{f', val RMSE {rmse:.4f}' if rmse is not None else ''})"] = r["path"]
    if not options:
        st.warning("No trained model yet: no checkpoint is shipped in `checkpoints/` and no run has finished in "
                   f"`{common.runs_root()}`. Train one on the **Training** page, or from a terminal: "
                   f"`{train_command()}`.")
        return None
    labels = list(options)
    try:
        default, why = modelchoice.default_model(common.runs_root())
        index = [p.resolve() for p in options.values()].index(default.resolve())
    except (FileNotFoundError, ValueError):  # only unfinished runs with a best model so far
        index, why = 0, None
    choice = st.selectbox(label, labels, index=index, key=key)
    if why and modelchoice.default_checkpoint() is None and choice == labels[index]:
        st.caption(f"The default is {why}.")
    return options[choice]


def train_command(epochs: int = 5) -> str:
    """The shortest command that trains a model on the data in use, as a user would type it in the project folder
    (``tests/test_pages.py`` runs it)."""
    ds = st.session_state.get("dataset")
    folder = ds.folder if ds is not None else common.DEFAULT_DATA
    try:
        shown = folder.resolve().relative_to(layout.PROJECT_ROOT)
    except ValueError:
        shown = folder
    return f"python -m galaxy_core train {shown} --epochs {epochs}"


@st.cache_resource(show_spinner="Loading the model ...", max_entries=4)
def _load_model(path: str, mtime_ns: int) -> registry.GalaxyModel:
    return modelchoice.load_model(path, device=hardware.pick_device("auto"))


def load_model(path: Path) -> registry.GalaxyModel:
    return _load_model(*model_key(path))


def warn_domain(path: Path, images_synthetic: bool) -> None:
    """A warning when the model at ``path`` learnt from the synthetic demo and the images are real, or the reverse
    (``modelchoice.domain_warning``)."""
    warning = modelchoice.domain_warning(load_model(path), images_synthetic)
    if warning:
        st.warning(warning[0].upper() + warning[1:], icon=":material/warning:")


@st.cache_data(show_spinner="Evaluating the model (once per model and data) ...", max_entries=8)
def run_evaluation(run: str, best_mtime_ns: int, _cache: GalaxyCache, fingerprint: str,
                   split: str = "val", limit: int | None = None,
                   include_trained: bool = False) -> evaluation.Evaluation:
    """``evaluation.evaluate`` of a run or checkpoint on the dashboard's cache, keyed by the model, its weights'
    modification time and the cache's fingerprint."""
    return evaluation.evaluate(run, _cache, split=split, limit=limit, include_trained=include_trained)


STORE_KEEP = 32
"""How many slow results (merger predictions and bootstraps, embeddings, anomaly scores, training-speed probes)
:func:`result_store` keeps (oldest go first)."""


@st.cache_resource
def result_store() -> Store:
    """Process-wide store of the Mergers, Discover and Training pages' slow results, keyed by the model, its weights'
    modification time, the cache's fingerprint and what was computed; the last :data:`STORE_KEEP`. A
    :class:`pages._store.Store` rather than ``st.cache_data`` so that predicting can draw a progress bar: a cached
    function would replay that bar on every later call."""
    return Store(keep=STORE_KEEP)


def stored(key: tuple, compute):
    """``compute()``, once per ``key`` (see :func:`result_store`), computed outside the store's lock: another
    session's page need not wait for this one's prediction."""
    return result_store().get(key, compute)


def merger_predictions(model: str, mtime_ns: int, cache: GalaxyCache, fingerprint: str, subset: str) -> dict:
    """A model's Class8.6 for one of ``compare.SUBSETS`` of the cache: ``rows``, ``p``, the threshold-free
    ``mean`` estimate (``fraction.mean_probability``; None without galaxies) and ``unseen``
    (``evaluation.unseen_labelled``, for ``val``; else None). Predicted once per model, data and subset, with a
    progress bar (22,740 galaxies take about a minute on two CPU cores)."""
    def compute() -> dict:
        unseen = evaluation.unseen_labelled(model, cache) if subset == "val" else None
        rows = unseen.rows if unseen is not None else cache.indices(subset)
        out = {"rows": rows, "p": np.zeros(0), "mean": None, "unseen": unseen}
        if len(rows):
            bar, update = common.progress_bar("Predicting merger probabilities:")
            try:
                out["p"] = prediction.predict_answer(_load_model(model, mtime_ns), cache, fraction.MERGER_COLUMN,
                                                     rows, progress=update)
            finally:
                bar.empty()
            with st.spinner("Bootstrapping the mean ..."):  # 0.3 s for 22,740 galaxies: no bar needed
                out["mean"] = fraction.mean_probability(out["p"])
        return out

    return stored(("predictions", model, mtime_ns, fingerprint, subset), compute)


def merger_calibration(model: str, mtime_ns: int, cache: GalaxyCache, fingerprint: str, subset: str,
                       on: GalaxyCache | None = None) -> dict:
    """The calibration of a model's Class8.6 against the volunteers, on the labelled galaxies of ``on`` (default:
    the page's own cache) that the model never learnt from (``evaluation.unseen_labelled``), applied to the page's
    ``subset``.

    Returns ``unseen`` (those galaxies, with how many were left out as trained on), ``n`` and ``n_mergers`` (those
    with a volunteer Class8.6, and the volunteer mergers among them), ``too_few`` (``calibration_shortfall``:
    None when enough), and, when enough, ``pairs``, ``calibration`` (``calibrate``) and ``matched``
    (``calibrated_fraction`` of the subset, whose bootstrap takes ~1 s); these three are None otherwise."""
    on = cache if on is None else on
    cal = merger_predictions(model, mtime_ns, on, on.fingerprint, "val")
    out = {"unseen": cal["unseen"], "matched": None,
           **calibration_on(cal["p"], on.labels[cal["rows"]], on.mask[cal["rows"]])}
    if out["pairs"] is not None:
        pairs = out["pairs"]
        p = merger_predictions(model, mtime_ns, cache, fingerprint, subset)["p"]

        def matched() -> fraction.FractionEstimate:
            with st.spinner("Bootstrapping the calibrated fraction ..."):
                return calibrated_fraction(p, *pairs.pair)

        out["matched"] = stored(("matched", model, mtime_ns, fingerprint, subset, on.fingerprint), matched)
    return out


# ------------------------------------------------------------------------------------------------------- spreads

def members(path: Path) -> list[registry.GalaxyModel]:
    """The model at ``path`` as a one-member list, or an ensemble folder's members
    (``modelchoice.member_folders``), each loaded once per weights (:func:`load_model`)."""
    folders = modelchoice.member_folders(path)
    return [load_model(path)] if len(folders) == 1 else [load_model(f) for f in folders]


def members_key(path: Path) -> tuple:
    """:func:`model_key` of the model at ``path``, or of each member of an ensemble folder."""
    folders = modelchoice.member_folders(path)
    return (model_key(path),) if len(folders) == 1 else tuple(model_key(f) for f in folders)


def spread_calibration(path: Path, cache: GalaxyCache, fingerprint: str) -> doubt.Calibration:
    """``doubt.calibrate``: the model's (or ensemble's) spread on the labelled galaxies of the cache that it never
    learnt from, and the scale the pages show it with. Once per model, data and ``uncertainty.MIN_SCALE_GALAXIES``,
    with a progress bar the first time (8 views of 1,000 galaxies: about a minute on two busy CPU cores); the
    predictions are kept with the cache, so a restart reads them back."""
    run = _with_bar(f"Predicting {doubt.VIEWS} views of the labelled galaxies the model never learnt from, to scale "
                    "its spread (once per model and data):", lambda update: doubt.calibrate(members(path), cache,
                                                                                             progress=update))
    return stored(("spread calibration", members_key(path), fingerprint, uncertainty.MIN_SCALE_GALAXIES), run)


def _spread_key(path: Path, fingerprint: str, rows) -> tuple:
    rows = np.asarray(rows, np.int64)
    return "spread", members_key(path), fingerprint, hashlib.sha1(rows.tobytes()).hexdigest()


def spread_of(path: Path, cache: GalaxyCache, fingerprint: str, rows, keep: bool = False):
    """``doubt.spread_of``: the value and spread of ``rows`` of the cache (an ``uncertainty.Spread``), with a
    progress bar while predicting. ``keep``: a large set of galaxies a later visit asks for again, stored with the
    cache and kept here whole; else a gallery's handful, whose galaxies are kept one by one
    (``doubt.GalaxySpreads``), so that the next gallery predicts only the galaxies it adds."""
    text = f"Predicting {doubt.VIEWS} views of these galaxies for their spread:"
    if keep:
        return stored(_spread_key(path, fingerprint, rows), _with_bar(text, lambda update: doubt.spread_of(
            members(path), cache, rows, progress=update)))
    known = stored(("galaxy spreads", members_key(path), fingerprint), doubt.GalaxySpreads)
    missing = known.missing(rows)
    if len(missing):
        known.add(missing, _with_bar(text, lambda update: doubt.spread_of(members(path), cache, missing,
                                                                          progress=update, store=False))())
    return known.of(rows)


def has_spread(path: Path, fingerprint: str, rows) -> bool:
    """Whether :func:`spread_of` of these rows with ``keep`` is ready, without computing it."""
    return _spread_key(path, fingerprint, rows) in result_store()


def count_above(path: Path, fingerprint: str, spread, scale: plusminus.Scale, column: str, threshold: float,
                rows_key: str) -> dict:
    """``doubt.count_above`` (the probabilistic count and its two intervals: ~0.5 s of draws for 20,000 galaxies),
    once per model, data, galaxies (``rows_key``), answer, threshold and scale."""
    return stored(("count above", members_key(path), fingerprint, rows_key, column, threshold, scale.factor),
                  lambda: doubt.count_above(spread, scale, column, threshold))


def morphology_mtime(cache: GalaxyCache) -> int:
    """When the cache's stored morphology last changed (0 when none): the key that makes the table below fresh."""
    path = morphology.store_path(cache)
    return path.stat().st_mtime_ns if path.exists() else 0


@st.cache_data(show_spinner=False, max_entries=8)
def morphology_stored(_cache: GalaxyCache, fingerprint: str, mtime_ns: int):
    """``morphology.stored`` of the cache, read again when the file changes (``mtime_ns``)."""
    return morphology.stored(_cache)


def embedded(model: Path, cache: GalaxyCache, fingerprint: str) -> np.ndarray:
    """Every galaxy's embedding by ``model`` (``embeddings.embed_cache``, 4 views, kept with the cache), with a
    progress bar the first time (22,740 galaxies take about a minute on two CPU cores)."""
    key = model_key(model)
    compute = _with_bar("Embedding the galaxies (once per model and data):",
                        lambda update: embeddings.embed_cache(_load_model(*key), cache, tta=4, progress=update))
    return stored(("embeddings", *key, fingerprint), compute)


@st.cache_resource(show_spinner="Indexing the embeddings ...", max_entries=4)
def search_index(model: str, mtime_ns: int, _vectors: np.ndarray, fingerprint: str, dims: int | None,
                 approximate: bool) -> similarity.Index:
    return similarity.Index(_vectors, dims, approximate)


def anomaly_scores(model: str, mtime_ns: int, vectors: np.ndarray, fingerprint: str, k: int,
                   dims: int | None = None, approximate: bool = False) -> np.ndarray:
    """``similarity.Index.anomaly_scores`` of the embeddings, once per model, data and setting, with a progress
    bar over the galaxies (about 10 s for 22,740 on two CPU cores)."""
    compute = _with_bar("Ranking the galaxies by how unusual they are:", lambda update: search_index(
        model, mtime_ns, vectors, fingerprint, dims, approximate).anomaly_scores(k, progress=update))
    return stored(("anomaly", model, mtime_ns, fingerprint, k, dims, approximate), compute)


@st.cache_data(show_spinner=False, max_entries=16)
def own_head(model: str, mtime_ns: int, fingerprint: str, answers: tuple[tuple[str, bool], ...],
             _marked: np.ndarray) -> own_questions.Head:
    """``own_questions.fit`` on ``_marked``, the embeddings of the galaxies answered in ``answers`` ((GalaxyID, yes), in
    the same order), once per model, data and answers: its penalty is cross-validated (0.2-0.3 s at 100 marks on
    two busy CPU cores), and every click on the page reruns it."""
    return own_questions.fit(_marked, np.array([a for _, a in answers], bool))
